//! [`HealthListener`]: the plain-HTTP listener for probes and metrics, beside the TLS port.

use std::time::Duration;

use crate::server::accept::{Gate, accept_loop};

/// A plain-HTTP listener for health probes and metrics scrapes that cannot present a client
/// certificate (a kubelet's `httpGet` probe, a Prometheus without a client identity), started
/// by [`ServerHandle::serve_health`](crate::ServerHandle::serve_health). It stops when dropped.
///
/// | route | answer |
/// |---|---|
/// | `GET /healthz`, `GET /readyz` | [`Health::to_json`](crate::Health::to_json); 200 when [`Health::healthy`](crate::Health::healthy), else 503 |
/// | `GET /livez` | 200 `ok` while the process serves |
/// | `GET /metrics` | [`ServerStats::prometheus_text`](crate::server::stats::ServerStats::prometheus_text) |
///
/// It carries no TLS and no client authentication, and answers only these routes: bind it to
/// an address that only the probes reach (the pod IP on its own port, or loopback), since the
/// JSON names our certificate's subject and expiry and the reload error. `/livez` says `ok`
/// and nothing else, and reads no shared state.
///
/// One request per connection (answered with `connection: close`), 2 s from accept to a
/// complete request head, 5 s per connection. It serves 64 connections at once; when all are
/// taken, a new connection closes the oldest one that has not yet sent its request head, so
/// connections that hold a slot without asking cannot keep a probe from being answered.
#[derive(Debug)]
pub struct HealthListener {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HealthListener {
    /// The address it listens on (useful after binding port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let health = handle.serve_health("127.0.0.1:0").await?;
    /// assert!(health.local_addr().ip().is_loopback());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for HealthListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connections served at once. When all are taken, a new connection closes the oldest one
/// still waiting for its request head (or, if every one is being answered, the oldest).
const HEALTH_SLOTS: usize = 64;
/// From accept to a complete request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// From accept to close, the answer included.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// The most a request head may take (hyper's minimum read buffer is 8 KiB).
const HEAD_BYTES: usize = 16 * 1024;

/// The connections the listener serves, oldest first.
///
/// Only the accept loop touches it, so no lock is taken. A connection's task is aborted (and
/// its socket closed) when its [`Slot`] is dropped: evicted, or with the listener.
#[derive(Default)]
struct Slots(std::collections::VecDeque<Slot>);

struct Slot {
    task: tokio::task::AbortHandle,
    /// Set once the connection's request head has been read and it is being answered.
    answering: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Slots {
    /// Frees a slot for a new connection: forgets finished ones, then, if all are taken,
    /// closes the oldest connection that has not sent a complete request head. A probe sends
    /// its head at once and is answered without waiting on anything, so idle or slow
    /// connections are the ones that go, however many there are.
    fn make_room(&mut self) {
        self.0.retain(|slot| !slot.task.is_finished());
        if self.0.len() >= HEALTH_SLOTS {
            let oldest_idle = self
                .0
                .iter()
                .position(|slot| !slot.answering.load(std::sync::atomic::Ordering::Relaxed))
                .unwrap_or(0);
            self.0.remove(oldest_idle);
        }
    }
}

pub(crate) async fn serve_health(
    handle: crate::ServerHandle,
    addr: impl tokio::net::ToSocketAddrs + std::fmt::Debug,
) -> Result<HealthListener, crate::Error> {
    let shown = format!("{addr:?}");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Bind {
            addr: shown.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| crate::Error::Bind {
        addr: shown,
        source,
    })?;
    let task = tokio::spawn(async move {
        let mut slots = Slots::default();
        // No slot limits here: `Slots` makes room by closing the oldest idle connection.
        let gate = Gate::new(usize::MAX, usize::MAX);
        accept_loop(&listener, &gate, std::future::pending(), |(tcp, ..)| {
            slots.make_room();
            let answering = std::sync::Arc::default();
            let task = tokio::spawn(serve_probe(
                handle.clone(),
                tcp,
                std::sync::Arc::clone(&answering),
            ));
            slots.0.push_back(Slot {
                task: task.abort_handle(),
                answering,
            });
        })
        .await;
    });
    Ok(HealthListener { addr: local, task })
}

/// One request on one connection, within [`HEAD_DEADLINE`] and [`CONNECTION_DEADLINE`].
async fn serve_probe(
    handle: crate::ServerHandle,
    tcp: tokio::net::TcpStream,
    answering: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let service = hyper::service::service_fn(move |req| {
        answering.store(true, std::sync::atomic::Ordering::Relaxed);
        std::future::ready(Ok::<_, std::convert::Infallible>(health_route(
            &handle, &req,
        )))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(HEAD_BYTES)
        .keep_alive(false);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
}

fn health_route<B>(
    handle: &crate::ServerHandle,
    req: &http::Request<B>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http::{Method, StatusCode, header};
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match req.uri().path() {
        "/healthz" | "/readyz" => {
            let health = handle.health();
            let status = if health.healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "application/json", health.to_json() + "\n")
        }
        // Reads nothing shared and says nothing but that the process answers.
        "/livez" => reply(StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            handle.stats().prometheus_text(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /healthz, /readyz, /livez and /metrics are served here\n".to_owned(),
        ),
    }
}
