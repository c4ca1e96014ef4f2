//! Step 4: one HTTP request over the established connection, where a TLS 1.3 server's
//! verdict on our certificate arrives; then the reconnections that check resumption.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mtls::{HandshakeFailure, error::alert_name};
use tokio::net::TcpStream;

use super::handshake::Established;
use super::{Context, Report, Status, alert, diagnosis, truncate, uri_host};
use crate::cert::Facts;

/// GET the URL's path, the server's acceptance of our certificate and its HTTP answer
/// recorded. `None`: no answer, or one that refuses us (recorded).
pub(super) async fn get(
    ctx: &Context,
    ours: &Facts,
    established: Established,
    report: &mut Report,
) -> Option<http::StatusCode> {
    let Established { tls, h2, asked } = established;
    let started = Instant::now();
    let result = tokio::time::timeout(ctx.timeout, request(tls, ctx, h2)).await;
    let (status, body) = match result {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            let stage = if asked.is_some() { "accepted" } else { "http" };
            match HandshakeFailure::tls_error_in(&*e) {
                Some(rustls::Error::AlertReceived(received)) => {
                    let d = alert::explain(received, ours, asked.as_deref(), ctx);
                    let detail = if alert::rejects_us(received) {
                        format!(
                            "server rejected our certificate (alert {})",
                            alert_name(received)
                        )
                    } else {
                        format!(
                            "server ended the connection (alert {})",
                            alert_name(received)
                        )
                    };
                    report.fail(
                        if alert::rejects_us(received) {
                            stage
                        } else {
                            "http"
                        },
                        detail,
                        d,
                    );
                }
                _ => {
                    report.fail(
                        stage,
                        "server closed the connection without answering",
                        diagnosis(
                            format!("the server ended the connection after the handshake without an HTTP answer ({e})"),
                            "read the server's log for the rejection: some servers reject a client certificate by closing the connection",
                        ),
                    );
                }
            }
            return None;
        }
        Err(_) => {
            report.fail(
                "http",
                "HTTP request: no answer",
                diagnosis(
                    format!(
                        "the server did not answer GET {} within {} s",
                        ctx.path,
                        ctx.timeout.as_secs_f64()
                    ),
                    "check the server's handler and load, or raise --timeout",
                ),
            );
            return None;
        }
    };
    if asked.is_some() {
        report.push(
            "accepted",
            Status::Ok,
            format!("server accepted our certificate ({})", ours.name()),
        );
    }
    report.http_status = Some(status.as_u16());
    let took = started.elapsed().as_millis() as u64;
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        let body = body.trim();
        let shown = if body.is_empty() {
            String::new()
        } else {
            format!(": \"{}\"", truncate(body, 300))
        };
        report.fail(
            "http",
            format!("HTTP GET {}: {status}", ctx.path),
            diagnosis(
                format!(
                    "TLS worked, but the service answered {status} for {} to {}{shown}",
                    ctx.path,
                    ours.name()
                ),
                format!(
                    "grant {} access to {} in the server's roles or route rules, or call a route this identity may use",
                    ours.name(),
                    ctx.path
                ),
            ),
        );
        return None;
    }
    report
        .push(
            "http",
            Status::Ok,
            format!("HTTP GET {}: {status}", ctx.path),
        )
        .ms = Some(took);
    Some(status)
}

/// Two more requests through the library's own client, each on a new connection (the doctor's
/// client keeps no idle connections): does the second resume the first's TLS session?
pub(super) async fn resumption(client: &mtls::Client, ctx: &Context) -> String {
    let Ok(uri) =
        format!("https://{}:{}{}", uri_host(&ctx.host), ctx.port, ctx.path).parse::<http::Uri>()
    else {
        return "not checked".to_owned();
    };
    let attempt = async {
        let first = client.get(uri.clone()).await.ok()?;
        let _ = first.into_body().collect().await;
        let second = client.get(uri).await.ok()?;
        let resumed = second
            .extensions()
            .get::<mtls::PeerIdentity>()
            .map(mtls::PeerIdentity::resumed);
        let _ = second.into_body().collect().await;
        resumed
    };
    match tokio::time::timeout(ctx.timeout, attempt).await {
        Ok(Some(true)) => "a reconnection resumed the TLS session (no full handshake)".to_owned(),
        Ok(Some(false)) => {
            "a reconnection made a full handshake (the server did not resume our session)"
                .to_owned()
        }
        _ => "not checked (the reconnections failed)".to_owned(),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// GET the path over the established connection: (status, body text). A failure carries the
/// connection's own error when it has one: that is where a TLS alert from the server lands.
async fn request(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    ctx: &Context,
    h2: bool,
) -> Result<(http::StatusCode, String), BoxError> {
    let authority = if ctx.port == 443 {
        uri_host(&ctx.host)
    } else {
        format!("{}:{}", uri_host(&ctx.host), ctx.port)
    };
    let io = TokioIo::new(tls);
    let (sent, conn): (
        Result<_, BoxError>,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    ) = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
        let conn = tokio::spawn(conn);
        let req = http::Request::get(format!("https://{authority}{}", ctx.path))
            .body(Empty::<Bytes>::new())?;
        (respond(sender.send_request(req).await).await, conn)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        let conn = tokio::spawn(conn);
        let req = http::Request::get(ctx.path.as_str())
            .header(http::header::HOST, authority)
            .body(Empty::<Bytes>::new())?;
        (respond(sender.send_request(req).await).await, conn)
    };
    match sent {
        Ok(answer) => Ok(answer),
        Err(e) => {
            // The connection task ends with the underlying error (an alert, a reset).
            let own = tokio::time::timeout(Duration::from_secs(1), conn).await;
            match own {
                Ok(Ok(Err(conn_error)))
                    if HandshakeFailure::tls_error_in(&conn_error).is_some() =>
                {
                    Err(conn_error.into())
                }
                _ => Err(e),
            }
        }
    }
}

async fn respond(
    response: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<(http::StatusCode, String), BoxError> {
    let response = response?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
