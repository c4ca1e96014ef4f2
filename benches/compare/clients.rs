//! Our `Client` against a hyper-util client written by hand over tokio-rustls, with the same
//! TLS settings, both calling the same server with the same load.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::certs::Certs;
use crate::load::{CONCURRENCY, Outcome};

/// Requests per second through our `Client`: `CONCURRENCY` callers sharing one client, each
/// sending a GET and reading the whole body, over and over.
pub async fn ours(dir: &Path, uri: Uri, seconds: f64) -> Outcome {
    let client = mtls::Client::builder()
        .identity(
            mtls::Identity::from_pem_files(dir.join("client.pem"), dir.join("client.key")).unwrap(),
        )
        .trust(mtls::TrustBundle::from_pem_file(dir.join("ca.pem")).unwrap())
        .build()
        .unwrap();
    drive(seconds, move || {
        let client = client.clone();
        let uri = uri.clone();
        async move {
            let resp = client.get(uri).await?;
            if resp.status() != http::StatusCode::OK {
                return Err("not a 200 response".into());
            }
            resp.into_body().collect().await?;
            Ok(())
        }
    })
    .await
}

/// The same through the hand-written client.
pub async fn hand_written(certs: &Certs, uri: Uri, seconds: f64) -> Outcome {
    let client = hand_client(certs);
    drive(seconds, move || {
        let client = client.clone();
        let uri = uri.clone();
        async move {
            let mut req = http::Request::new(Full::<Bytes>::default());
            *req.uri_mut() = uri;
            let resp = client.request(req).await?;
            if resp.status() != http::StatusCode::OK {
                return Err("not a 200 response".into());
            }
            resp.into_body().collect().await?;
            Ok(())
        }
    })
    .await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn drive<F, Fut>(seconds: f64, call: F) -> Outcome
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let call = Arc::new(call);
    crate::load::run(CONCURRENCY, seconds, move |_, c, stop| {
        let call = Arc::clone(&call);
        async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(10), call()).await {
                    Ok(Ok(())) => {
                        c.done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    })
    .await
}

/// What a careful user writes with hyper-util's pooled client and tokio-rustls: the same
/// rustls settings as our `Client` (provider, TLS 1.3 and 1.2, the CA as the only root, our
/// certificate, ALPN h2 and http/1.1, rustls' default session cache), the same pool settings
/// (90 s idle timeout, a Tokio timer) and the same 10 s connect timeout.
fn hand_client(certs: &Certs) -> hyper_util::client::legacy::Client<HandConnector, Full<Bytes>> {
    let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(certs.roots())
        .with_client_auth_cert(certs.client_chain.clone(), certs.client_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = HandConnector {
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
    };
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

#[derive(Clone)]
struct HandConnector {
    tls: tokio_rustls::TlsConnector,
}

impl tower_service::Service<Uri> for HandConnector {
    type Response = HandConnection;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<HandConnection>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "bad URI");
            let host = uri.host().ok_or_else(invalid)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone()).map_err(|_| invalid())?;
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            Ok(HandConnection(TokioIo::new(stream)))
        })
    }
}

struct HandConnection(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl Connection for HandConnection {
    fn connected(&self) -> Connected {
        if self.0.inner().get_ref().1.alpn_protocol() == Some(b"h2") {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl hyper::rt::Read for HandConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for HandConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
