//! One accepted connection: the TLS handshake under a timeout, the post-handshake policy check,
//! then HTTP/1.1 or HTTP/2 with the peer's identity in every request, closed when idle.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::UnixTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::error::HandshakeFailure;
use crate::handshake::{self, already_logged, take_verified};
use crate::peer::PeerIdentity;
use crate::server::Shared;
use crate::server::drain::{Member, Order, Registered, Signal};
use crate::server::limits::Limits;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Boxed: a TLS stream is over a kilobyte, and a connection task's future would otherwise
/// carry it (and the handshake's and HTTP connection's states) inline, twice over where the
/// compiler keeps a moved-from slot. On cache lines of its own, as it is written on every
/// request by the thread that runs the connection ([`Aligned`]).
pub(crate) type TlsStream = Box<Aligned<tokio_rustls::server::TlsStream<TcpStream>>>;

/// A value on cache lines of its own (128 bytes: two lines, which adjacent-line prefetching
/// pairs): the boxed TLS stream. Per-connection state written on every request by the thread
/// that runs the connection must not share a line with another connection's, which the other
/// worker thread writes: every write would miss the cache. (The HTTP connection lives in the
/// connection's task, which tokio aligns the same way.) Its I/O is reached through `inner`.
#[repr(align(128))]
pub(crate) struct Aligned<T> {
    pub(crate) inner: T,
}

impl<T> Aligned<T> {
    pub(crate) fn new(inner: T) -> Self {
        Aligned { inner }
    }
}

const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// One HTTP connection builder per ALPN outcome, shared by every connection.
pub(crate) struct HttpBuilders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    /// Without ALPN the protocol is detected from the first bytes.
    detect: auto::Builder<TokioExecutor>,
}

impl HttpBuilders {
    pub(crate) fn new(limits: &Limits) -> Self {
        // The builders are configured in place through `&mut`, never passed to a closure by
        // value: rustc before 1.97 (MIR GVN, rust-lang/rust#155241) merges equal by-value
        // closure arguments and lets the second call reuse the first call's storage, which
        // freed the first builder's timer while it was still in use (reproduced by
        // `tests/miscompile`, checked by the release build under valgrind in CI).
        let configure = |b: &mut auto::Builder<TokioExecutor>| {
            b.http1()
                .timer(TokioTimer::new())
                // hyper adds this to the clock unchecked: a year stands for "no limit".
                .header_read_timeout(limits.header_read_timeout.min(ONE_YEAR))
                .max_buf_size(limits.max_header_size.max(8192));
            b.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.http2_max_concurrent_streams)
                .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
                // Bound streams reset by the peer before we answer (HTTP/2 rapid reset).
                .max_pending_accept_reset_streams(Some(64));
        };
        let mut h1 = auto::Builder::new(TokioExecutor::new());
        let mut h2 = auto::Builder::new(TokioExecutor::new());
        let mut detect = auto::Builder::new(TokioExecutor::new());
        configure(&mut h1);
        configure(&mut h2);
        configure(&mut detect);
        // Over ALPN http/1.1 the request-head timeout is ours (the server's watch): hyper's runs
        // from the end of the previous response, so it would also cut keep-alive connections
        // that are merely waiting for their next request, long before the idle timeout.
        h1.http1().header_read_timeout(None);
        HttpBuilders {
            h1: h1.http1_only(),
            h2: h2.http2_only(),
            detect,
        }
    }

    fn for_alpn(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.h2,
            Some(_) => &self.h1,
            None => &self.detect,
        }
    }
}

pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addr: SocketAddr,
}

impl Connection {
    /// Runs the handshake with a timeout; on failure, records and logs the reason.
    ///
    /// A server that starts to drain or close ends the handshake at once (`None`).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        member: &Member,
    ) -> Option<(TlsStream, Option<PeerIdentity>)> {
        let _ = tcp.set_nodelay(true);
        let generation = self.shared.live.current().id;
        let timeout = self.shared.limits.handshake_timeout;
        // On the heap, so that the task does not carry the handshake's state (over a
        // kilobyte) for the connection's whole life. Built in a block: a binding moved from
        // but still in scope at an `await` keeps its place in the future.
        let mut accept = {
            let acceptor = TlsAcceptor::from(Arc::clone(&self.shared.config));
            let accept = acceptor.accept(tcp).into_fallible();
            Box::pin(tokio::time::timeout(
                timeout,
                handshake::InGeneration::new(generation, accept),
            ))
        };
        let mut registered = Registered::default();
        let accepted = std::future::poll_fn(|cx| {
            if member.poll_order(cx, &mut registered) != Order::Run {
                return Poll::Ready(None);
            }
            accept.as_mut().poll(cx).map(Some)
        });
        // Boxed at once: a match keeps its scrutinee across the awaits in its arms.
        let tls = match accepted
            .await?
            .map(|r| r.map(|tls| Box::new(Aligned::new(tls))))
        {
            Ok(Ok(tls)) => tls,
            Ok(Err((error, tcp))) => {
                let reason = HandshakeFailure::from_io(&error);
                if already_logged() {
                    // The verifier already logged it, with the certificate it saw.
                    self.shared.stats.record_failure(reason);
                } else {
                    self.failed(reason, &error);
                }
                // Boxed: its buffer is needed only on this path.
                Box::pin(linger(tcp)).await;
                return None;
            }
            Err(_) => {
                self.failed(
                    HandshakeFailure::Timeout,
                    &format_args!("no complete handshake within {timeout:?}"),
                );
                return None;
            }
        };
        let conn = tls.inner.get_ref().1;
        let presented = conn.peer_certificates().is_some();
        // One generation for the binding, the swap check and the re-verification, so a swap
        // landing between them cannot leave a peer bound by one and checked by another.
        // An `Arc`, not the load guard: guards are never held across an `.await`.
        let current = arc_swap::Guard::into_inner(self.shared.live.current());
        // As the current bundles know it: a peer a bound bundle vouched for is known by its
        // SPIFFE ID alone, on resumed sessions too (re-verified below against the same bundles).
        let peer =
            PeerIdentity::from_connection(conn, take_verified()).map(|p| current.verifier.vouch(p));
        if presented && peer.is_none() {
            // rustls verified a chain we cannot describe: refuse rather than serve anonymously.
            self.failed(
                HandshakeFailure::BadCertificate,
                &"the verified client certificate could not be parsed",
            );
            return None;
        }
        // rustls does not run the verifier on a resumed session: the stored chain is verified
        // again here against the current trust, CRLs, dates and policy (a swap of any of them
        // also starts a new session cache, but a session stored while a swap was under way
        // must not slip through). An anonymous peer never reaches the verifier: it is checked
        // against the current policy.
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        // A full handshake verified under a generation swapped out since (a CRL or policy
        // change landed mid-handshake) is checked again against the current one too.
        let swapped = current.id != generation;
        let refusal = match &peer {
            Some(p) if resumed || swapped => {
                let verifier = Arc::clone(&current.verifier);
                handshake::set_resuming();
                p.chain()
                    .split_first()
                    .map(|(leaf, rest)| verifier.verify_client_cert(leaf, rest, UnixTime::now()))
                    .and_then(Result::err)
                    .map(|e| HandshakeFailure::from_rustls(&e))
            }
            Some(_) => None,
            None => {
                let policy = current.verifier.policy().clone();
                policy.check(None).err().map(|denied| {
                    crate::verify::log_not_authorized(&self.addr, None, &denied, resumed);
                    HandshakeFailure::NotAuthorized
                })
            }
        };
        drop(current);
        if let Some(reason) = refusal {
            if already_logged() || peer.is_none() {
                self.shared.stats.record_failure(reason);
            } else {
                self.failed(reason, &"the resumed session no longer verifies");
            }
            let mut tls = tls;
            let _ = tokio::time::timeout(Duration::from_secs(1), tls.inner.shutdown()).await;
            return None;
        }
        self.shared.stats.record_accepted(resumed);
        let span = tracing::Span::current();
        if let Some(p) = &peer {
            span.record("peer.identity", tracing::field::display(p));
            span.record("peer.serial", p.serial());
        }
        match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => span.record("tls.version", "TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => span.record("tls.version", "TLSv1.2"),
            _ => &span,
        };
        span.record("tls.resumed", resumed);
        match &peer {
            Some(p) => {
                tracing::debug!(peer.addr = %self.addr, peer.identity = %p, resumed, "mTLS handshake accepted")
            }
            None => {
                tracing::debug!(peer.addr = %self.addr, "TLS handshake accepted without a client certificate")
            }
        }
        Some((tls, peer))
    }

    fn failed(&self, reason: HandshakeFailure, detail: &dyn fmt::Display) {
        self.shared.stats.record_failure(reason);
        match reason {
            HandshakeFailure::PeerClosed => tracing::info!(
                peer.addr = %self.addr, reason = %reason.as_str(), detail = %detail,
                "TLS handshake failed: {reason}"
            ),
            _ => tracing::warn!(
                peer.addr = %self.addr, reason = %reason.as_str(), detail = %detail,
                "TLS handshake failed: {reason}"
            ),
        }
    }

    /// Serves HTTP until the peer leaves, the connection idles out or the server drains or
    /// closes it.
    pub(crate) async fn serve<S, B>(
        &self,
        (tls, peer): (TlsStream, Option<PeerIdentity>),
        service: S,
        member: &Member,
        http: &HttpBuilders,
    ) where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let alpn = tls.inner.get_ref().1.alpn_protocol();
        // HTTP/1 by ALPN: we time request heads (hyper does for the rest, see HttpBuilders).
        let time_heads = matches!(alpn, Some(a) if a != b"h2");
        let builder = http.for_alpn(alpn);
        // The server's watch enforces the idle and head timeouts from what these record.
        let signal = member.signal();
        signal.activity.serving(time_heads);
        let service = WithPeer {
            inner: service,
            peer,
            signal: Arc::clone(&signal),
        };
        // The TLS stream stays in its own box: moved into the HTTP connection's, it would be
        // counted twice there (hyper's connection is an enum of its HTTP/1 and HTTP/2
        // states, each holding the I/O); the cost per connection is in docs/PERFORMANCE.md.
        let io = TokioIo::new(Tracked { io: tls, signal });
        // Without upgrades: an upgraded stream would leave the connection task, and with it
        // the connection limit, the idle timeout and graceful shutdown.
        // In the task itself, which tokio keeps on cache lines of its own: the handshake's
        // state is boxed (and freed when it ends), so the task's future is about as large
        // as this, and a box of its own would only add an allocation to touch at every wake
        // (docs/PERFORMANCE.md, "The HTTP connection in the connection's task").
        let conn = builder.serve_connection(io, service).into_owned();
        tokio::pin!(conn);
        let mut draining = false;
        let mut registered = Registered::default();
        // One future polled at every wake: the order first (an atomic load), then the
        // connection. No timer of its own: the server's watch gives the order to close.
        let end = std::future::poll_fn(|cx| {
            match member.poll_order(cx, &mut registered) {
                Order::Run => {}
                Order::Drain => {
                    if !draining {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                Order::Close => return Poll::Ready(End::Closed),
                Order::Idle => return Poll::Ready(End::Idle),
                Order::HeadTimeout => return Poll::Ready(End::HeadTimeout),
            }
            conn.as_mut().poll(cx).map(End::Done)
        })
        .await;
        match end {
            End::Done(Ok(())) => {}
            End::Done(Err(error)) => {
                tracing::debug!(peer.addr = %self.addr, %error, "connection ended with an error");
            }
            End::Idle => tracing::debug!(peer.addr = %self.addr, "closing idle connection"),
            End::HeadTimeout => tracing::debug!(
                peer.addr = %self.addr,
                "closing connection: request head not complete in time"
            ),
            End::Closed => tracing::debug!(
                peer.addr = %self.addr,
                "closing connection: the server is shutting down"
            ),
        }
    }
}

/// Why [`Connection::serve`] ended.
enum End {
    Done(Result<(), BoxError>),
    Idle,
    HeadTimeout,
    Closed,
}

/// The connection's I/O, noting activity for the idle timeout and the start of request heads.
struct Tracked {
    io: TlsStream,
    signal: Arc<Signal>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io.inner).poll_read(cx, buf);
        if result.is_ready() {
            self.signal.activity.touch();
            if buf.filled().len() > before {
                self.signal.activity.bytes_in();
            }
        }
        result
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io.inner).poll_write(cx, buf);
        if result.is_ready() {
            self.signal.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io.inner).poll_write_vectored(cx, bufs);
        if result.is_ready() {
            self.signal.activity.touch();
        }
        result
    }
}

/// After a failed handshake, the alert is written; closing at once while the client's data is
/// still arriving makes the kernel send a reset, which destroys the alert before the client
/// reads it. So we half-close and drain briefly, as nginx's lingering close does, so that the
/// client sees "unknown_ca", not "connection reset".
async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 1024];
    let drain = async {
        let mut total = 0usize;
        while let Ok(n) = tcp.read(&mut buf).await {
            total += n;
            if n == 0 || total > 64 * 1024 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Inserts the connection's peer identity into each request's extensions, and counts the
/// request as in flight until its response body has been sent (or dropped): bytes that arrive
/// while a response is still streaming (a pipelined next request, a full-duplex request body)
/// do not start the request-head timer.
struct WithPeer<S> {
    inner: S,
    peer: Option<PeerIdentity>,
    signal: Arc<Signal>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for WithPeer<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    B: Body,
{
    type Response = Response<Guarded<B>>;
    type Error = S::Error;
    type Future = InFlight<S::Future>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(peer.clone());
        }
        self.signal.activity.request_started();
        InFlight {
            head: req.method() == http::Method::HEAD,
            inner: self.inner.call(req),
            guard: Some(InFlightGuard(Arc::clone(&self.signal))),
        }
    }
}

struct InFlightGuard(Arc<Signal>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.activity.request_ended();
    }
}

pin_project_lite::pin_project! {
    /// A handler's future, counted as in flight until it completes or is dropped; its
    /// response's body carries the count on.
    pub(crate) struct InFlight<F> {
        #[pin]
        inner: F,
        guard: Option<InFlightGuard>,
        head: bool,
    }
}

impl<F, B, E> Future for InFlight<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<Guarded<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        let head = *this.head;
        Poll::Ready(result.map(|mut resp| {
            if head {
                // HEAD answers with GET's headers and no body on either protocol (hyper drops
                // a handler's body over HTTP/1.1 only; over HTTP/2 it would be sent, which
                // clients reject as a protocol error): the length GET would send stays.
                if let (None, Some(len)) = (
                    resp.headers().get(http::header::CONTENT_LENGTH),
                    resp.body().size_hint().exact(),
                ) {
                    resp.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                }
            }
            resp.map(|inner| Guarded { inner, guard, head })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it ends or is
    /// dropped; empty for a HEAD request.
    pub(crate) struct Guarded<B> {
        #[pin]
        inner: B,
        guard: Option<InFlightGuard>,
        head: bool,
    }
}

impl<B: Body> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.head {
            *this.guard = None;
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            *this.guard = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.head || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.head {
            true => hyper::body::SizeHint::with_exact(0),
            false => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_state_written_by_one_thread_sits_on_its_own_cache_lines() {
        assert_eq!(std::mem::align_of::<Signal>(), 128);
        assert_eq!(std::mem::align_of::<Aligned<u8>>(), 128);
        assert_eq!(crate::peer::INNER_ALIGN, 128);
    }
}
