//! [`TlsIncoming`]: the server's accepted, verified and authorized TLS streams, for protocols
//! other than HTTP.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

use crate::handshake::Handshake;
use crate::peer::PeerIdentity;
#[cfg(feature = "tonic")]
use crate::peer::request::VerifiedConnectInfo;
use crate::server::Shared;
use crate::server::accept::{Gate, accept_loop, connection_span};
use crate::server::connection::Connection;
use crate::server::drain::Drain;
use crate::server::stats::ActiveGuard;

/// The streams of a [`Server`](crate::Server) turned into a listener with
/// [`Server::incoming`](crate::Server::incoming): each one has completed the TLS handshake
/// within the handshake timeout, presented a certificate that verified, and passed the
/// policy, exactly as for HTTP. Failures are logged and counted under their reason and never
/// reach you.
///
/// The connection and handshake limits apply: a stream counts against `max_connections`
/// from accept until you drop it. Verified streams wait until taken; while nobody takes them
/// they keep their connection slots, so the server stops accepting at `max_connections`
/// (backpressure, as at any limit). Dropping `TlsIncoming` stops the listener.
///
/// It is a [`Stream`](futures_core::Stream) of `io::Result<VerifiedStream>` (never an
/// error at present), so it fits APIs that take a stream of connections.
///
/// # Examples
///
/// ```no_run
/// # async fn run(server: mtls::Server) -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
///
/// let mut incoming = server.incoming();
/// while let Some(mut stream) = incoming.next().await {
///     let peer = stream.peer_identity().map(|p| p.to_string()).unwrap_or_default();
///     tokio::spawn(async move { stream.write_all(format!("hello {peer}\n").as_bytes()).await });
/// }
/// # Ok(()) }
/// ```
pub struct TlsIncoming {
    streams: mpsc::Receiver<VerifiedStream>,
    accepting: tokio::task::JoinHandle<()>,
    local_addr: SocketAddr,
}

impl fmt::Debug for TlsIncoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIncoming")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TlsIncoming {
    pub(crate) fn start(
        listener: TcpListener,
        local_addr: SocketAddr,
        shared: Arc<Shared>,
    ) -> Self {
        // A few ready streams may wait; beyond that the accept loop waits for the taker.
        let (tx, streams) = mpsc::channel(16);
        let accepting = tokio::spawn(accept_streams(listener, shared, tx));
        TlsIncoming {
            streams,
            accepting,
            local_addr,
        }
    }

    /// The next verified stream; `None` once the listener has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a stream not returned stays queued for the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("the listener is running");
    /// let peer = stream.peer_identity().expect("client auth is required");
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn next(&mut self) -> Option<VerifiedStream> {
        self.streams.recv().await
    }

    /// The address the server listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// let addr = server.local_addr();
    /// let incoming = server.incoming();
    /// assert_eq!(incoming.local_addr(), addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl futures_core::Stream for TlsIncoming {
    type Item = io::Result<VerifiedStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.streams.poll_recv(cx).map(|s| s.map(Ok))
    }
}

async fn accept_streams(
    listener: TcpListener,
    shared: Arc<Shared>,
    tx: mpsc::Sender<VerifiedStream>,
) {
    let gate = Gate::new(shared.limits.max_connections, shared.limits.max_handshakes);
    // Handshakes in progress end when this loop ends (the listener was dropped).
    let drain = Drain::new();
    let stop = {
        let tx = tx.clone();
        async move { tx.closed().await }
    };
    accept_loop(
        &listener,
        &gate,
        stop,
        |(tcp, addr, connection_permit, handshake_permit)| {
            let connection = Connection {
                shared: Arc::clone(&shared),
                addr,
            };
            let active = shared.stats.connection_opened();
            let tx = tx.clone();
            let member = drain.join();
            tokio::spawn(
                Handshake::scope(addr, async move {
                    let handshake = connection.handshake(tcp, &member).await;
                    drop(member);
                    drop(handshake_permit);
                    // Queued only once verified: peers that never finish a handshake cannot
                    // fill the queue. A stream waiting here still holds its connection slot,
                    // so nobody taking streams stops accepting at `max_connections`.
                    if let Some((tls, peer)) = handshake {
                        let _ = tx
                            .send(VerifiedStream {
                                tls,
                                peer,
                                remote_addr: addr,
                                _permit: connection_permit,
                                _active: active,
                            })
                            .await;
                    }
                })
                .instrument(connection_span(addr)),
            );
        },
    )
    .await;
}

/// A TLS stream from [`TlsIncoming`]: handshake done, client verified and authorized.
/// It reads and writes application data ([`AsyncRead`] and [`AsyncWrite`]).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let server = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .bind("127.0.0.1:0")
/// #     .await?;
/// # let client = mtls::Client::builder()
/// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .build()?;
/// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
/// # let connector = client.connector();
/// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
/// use tokio::io::AsyncWriteExt;
///
/// let mut incoming = server.incoming();
/// let mut stream: mtls::server::VerifiedStream = incoming.next().await.expect("a verified stream");
/// stream.write_all(b"hello\n").await?;
/// # let _connection = connecting.await??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VerifiedStream {
    /// Boxed, as the server's connections keep it.
    tls: crate::server::connection::TlsStream,
    peer: Option<PeerIdentity>,
    remote_addr: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _active: ActiveGuard,
}

impl fmt::Debug for VerifiedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedStream")
            .field("remote_addr", &self.remote_addr)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl VerifiedStream {
    /// The client's verified identity; `None` only for an anonymous client the policy
    /// admitted in [`ClientAuth::Optional`](crate::ClientAuth::Optional) mode.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("a verified stream");
    /// assert_eq!(stream.peer_identity().unwrap().common_name(), Some("orders"));
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }

    /// The client's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("a verified stream");
    /// assert!(stream.remote_addr().ip().is_loopback());
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The tokio-rustls stream itself. The stream then no longer counts against
    /// `max_connections`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("a verified stream");
    /// let tls = stream.into_inner(); // tokio_rustls::server::TlsStream
    /// assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> tokio_rustls::server::TlsStream<TcpStream> {
        self.tls.inner
    }
}

#[cfg(feature = "tonic")]
impl tonic::transport::server::Connected for VerifiedStream {
    type ConnectInfo = VerifiedConnectInfo;

    fn connect_info(&self) -> VerifiedConnectInfo {
        VerifiedConnectInfo::new(self.peer.clone(), self.remote_addr)
    }
}

impl AsyncRead for VerifiedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for VerifiedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.inner.is_write_vectored()
    }
}
