//! `Server::serve_connections`: a service made once per verified connection, from what the
//! handshake established, with nothing added to each request.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::{
    Authorizer, ClientAuth, HandshakeFailure, PeerIdentity, ServerBuilder, server::ConnectionInfo,
    server::ServerStats,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// What `make` saw: one entry per connection it was called for; and the server's counters.
#[derive(Default)]
struct Made {
    calls: AtomicUsize,
    peers: Mutex<Vec<(Option<String>, SocketAddr)>>,
    stats: std::sync::OnceLock<Arc<ServerStats>>,
}

impl Made {
    /// Asserts that a raw client with `config` is refused with `alert`, and that the server
    /// names and counts the refusal as `reason`.
    async fn assert_refused(
        &self,
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        alert: rustls::AlertDescription,
        reason: HandshakeFailure,
    ) {
        let stats = Arc::clone(self.stats.get().unwrap());
        let before = stats.handshake_failures(reason);
        let err = raw_get(addr, config).await.expect_err("refused");
        assert_eq!(refusal::alert_of(&err), Some(alert), "{err:?}");
        assert!(
            eventually(|| stats.handshake_failures(reason) == before + 1).await,
            "expected one more {reason:?}: {:?}",
            stats.failures()
        );
    }
}

/// Serves `builder` with a per-connection service that answers `<peer> <n> <extension>`:
/// the peer `make` saw, the request's number on its connection, and whether the request
/// carried a `PeerIdentity` extension.
async fn serve_made(builder: ServerBuilder) -> (SocketAddr, Arc<Made>, oneshot::Sender<()>) {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let made = Arc::new(Made::default());
    made.stats.set(server.stats()).unwrap();
    let record = Arc::clone(&made);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve_connections_with_shutdown(
        move |conn: &ConnectionInfo| {
            record.calls.fetch_add(1, Ordering::SeqCst);
            let name = conn.peer_identity().map(|p| p.to_string());
            record
                .peers
                .lock()
                .unwrap()
                .push((name.clone(), conn.remote_addr()));
            let name = name.unwrap_or_else(|| "anonymous".to_owned());
            let served = Arc::new(AtomicUsize::new(0));
            service_fn(move |req: Request<Incoming>| {
                let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                let extension = req.extensions().get::<PeerIdentity>().is_some();
                let body = format!("{name} {n} {extension}");
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            })
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, made, stop)
}

fn url(addr: SocketAddr, path: &str) -> hyper::Uri {
    format!("https://localhost:{}{path}", addr.port())
        .parse()
        .unwrap()
}

/// Sends `count` HTTP/1.1 requests on one raw connection and returns the bodies' last lines.
async fn requests_on_one_connection(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    count: usize,
) -> std::io::Result<Vec<String>> {
    let mut tls = raw_connect(addr, config).await?;
    let mut bodies = Vec::new();
    for i in 0..count {
        let close = if i + 1 == count {
            "connection: close\r\n"
        } else {
            ""
        };
        tls.write_all(format!("GET / HTTP/1.1\r\nhost: localhost\r\n{close}\r\n").as_bytes())
            .await?;
        // Each response is small and sent in one go: read until its body has arrived.
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&response).into_owned();
        bodies.push(text.rsplit("\r\n").next().unwrap_or_default().to_owned());
    }
    Ok(bodies)
}

#[tokio::test]
async fn make_runs_once_per_connection_and_requests_carry_no_extension() {
    let ca = Ca::new("per-connection CA");
    let (addr, made, _stop) = serve_made(server_builder(&ca)).await;
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);

    let bodies = requests_on_one_connection(addr, Arc::clone(&config), 3)
        .await
        .unwrap();
    assert_eq!(
        bodies,
        [
            "spiffe://example.org/orders 1 false",
            "spiffe://example.org/orders 2 false",
            "spiffe://example.org/orders 3 false"
        ],
        "one service for the connection's three requests, and no identity extension"
    );
    assert_eq!(made.calls.load(Ordering::SeqCst), 1);

    // A second connection gets a service of its own, made from its own handshake.
    let bodies = requests_on_one_connection(addr, config, 1).await.unwrap();
    assert_eq!(bodies, ["spiffe://example.org/orders 1 false"]);
    assert_eq!(made.calls.load(Ordering::SeqCst), 2);
    assert!(made.peers.lock().unwrap().iter().all(|(peer, remote)| {
        peer.as_deref() == Some("spiffe://example.org/orders") && remote.ip().is_loopback()
    }));

    // Over HTTP/2 too, through our own client.
    let resp = client(&ca, &leaf).get(url(addr, "/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        body_string(resp).await,
        "spiffe://example.org/orders 1 false"
    );
}

#[tokio::test]
async fn an_unauthorized_or_unverified_peer_never_reaches_make() {
    let ca = Ca::new("per-connection CA");
    let builder = server_builder(&ca)
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders").unwrap());
    let (addr, made, _stop) = serve_made(builder).await;

    // Verified, but not allowed by the policy.
    let billing = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/billing"],
        ..Leaf::client("billing")
    });
    let config = raw_config(
        &ca,
        Some(&billing),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    made.assert_refused(
        addr,
        config,
        rustls::AlertDescription::AccessDenied,
        HandshakeFailure::NotAuthorized,
    )
    .await;
    // No certificate at all.
    let config = raw_config(&ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    made.assert_refused(
        addr,
        config,
        rustls::AlertDescription::CertificateRequired,
        HandshakeFailure::NoCertificate,
    )
    .await;
    // A certificate from another CA.
    let other = Ca::new("another CA");
    let stranger = other.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("stranger")
    });
    let config = raw_config(
        &ca,
        Some(&stranger),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    made.assert_refused(
        addr,
        config,
        rustls::AlertDescription::UnknownCA,
        HandshakeFailure::UnknownIssuer,
    )
    .await;
    assert_eq!(
        made.calls.load(Ordering::SeqCst),
        0,
        "make ran for a refused peer"
    );

    // The allowed peer is served, which shows the server was up all along.
    let orders = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    let config = raw_config(
        &ca,
        Some(&orders),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    let served = raw_get(addr, config).await.unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert_eq!(made.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_admitted_anonymous_peer_gets_no_identity() {
    let ca = Ca::new("per-connection CA");
    let builder = server_builder(&ca)
        .client_auth(ClientAuth::Optional)
        .authorize(
            Authorizer::any_of([Authorizer::any_verified(), Authorizer::anonymous()]).unwrap(),
        );
    let (addr, made, _stop) = serve_made(builder).await;
    let config = raw_config(&ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let bodies = requests_on_one_connection(addr, config, 1).await.unwrap();
    assert_eq!(bodies, ["anonymous 1 false"]);
    assert_eq!(made.peers.lock().unwrap()[0].0, None);
}

#[tokio::test]
async fn the_idle_timeout_and_shutdown_apply_as_with_serve() {
    let ca = Ca::new("per-connection CA");
    // The head timeout is long: only the idle timeout closes a silent connection here.
    let builder = server_builder(&ca)
        .idle_timeout(Duration::from_millis(200))
        .header_read_timeout(Duration::from_secs(600));
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_connections_with_shutdown(
        |_conn: &ConnectionInfo| {
            service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hi"))))
            })
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let bodies = requests_on_one_connection(addr, Arc::clone(&config), 1)
        .await
        .unwrap();
    assert_eq!(bodies, ["hi"]);

    // A connection that says nothing after its handshake is closed by the idle timeout.
    let mut idle = raw_connect(addr, config).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was not closed: {closed:?}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("shutdown completed")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let ca = Ca::new("per-connection CA");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    // The handler says when it has started, then waits for the test to let it answer.
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (entered_tx, release_rx) = (Arc::clone(&entered), Arc::clone(&release));
    let serving = tokio::spawn(server.serve_connections_with_shutdown(
        move |_conn: &ConnectionInfo| {
            let (entered, release) = (Arc::clone(&entered_tx), Arc::clone(&release_rx));
            service_fn(move |_req: Request<Incoming>| {
                let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
                async move {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("slow"))))
                }
            })
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let in_flight = tokio::spawn(requests_on_one_connection(addr, config, 1));
    entered.notified().await;
    // The shutdown has begun once the listener is closed; the request is still in its handler.
    stop.send(()).unwrap();
    assert!(
        eventually(|| std::net::TcpStream::connect(addr).is_err()).await,
        "the server stopped accepting"
    );
    assert!(!in_flight.is_finished());
    release.notify_one();
    let bodies = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the request finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        bodies,
        ["slow"],
        "the request in flight was answered, not cut"
    );
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("shutdown completed")
        .unwrap()
        .unwrap();
}
