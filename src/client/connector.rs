//! [`Connector`]: TCP, then TLS with the client's current generation, as a tower service for
//! hyper-util and tonic; [`TlsConnection`]: the connection, carrying the server's identity.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::authority::{authority_key, authority_of, check_uri, host_port};
use crate::client::classify::{FailureRecord, RecentFailure, TlsFailure};
use crate::client::error::ClientError;
use crate::client::error::from_tls;
use crate::error::HandshakeFailure;
use crate::handshake::{InGeneration, within_generation};
use crate::live::LiveClient;
use crate::peer::PeerIdentity;

/// Opens TCP, then TLS with our identity and our check of the server: the connector behind
/// [`Client`], for use on its own.
///
/// It is a tower `Service<Uri>` whose connections implement hyper's `Read` and `Write`, so it
/// plugs into hyper-util's client and tonic's `Endpoint::connect_with_connector`; for other
/// protocols, [`Connector::connect`] and [`TlsConnection::into_inner`] give the TLS stream
/// itself. Every connection reads the client's *current* material, so rotation reaches
/// these connections too, and verifies the server exactly as [`Client`] does (trust bundle,
/// CRLs, name or [`ClientBuilder::expect_server`]). Get one with [`Client::connector`].
///
/// # Examples
///
/// ```no_run
/// # async fn run(client: mtls::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let connection = client.connector().connect("https://inventory.internal:9000".parse()?).await?;
/// println!("connected to {}", connection.peer_identity());
/// let stream = connection.into_inner(); // a tokio-rustls stream: AsyncRead + AsyncWrite
/// # drop(stream);
/// # Ok(()) }
/// ```
///
/// [`Client`]: crate::Client
/// [`Client::connector`]: crate::Client::connector
/// [`ClientBuilder::expect_server`]: crate::ClientBuilder::expect_server
#[derive(Clone)]
pub struct Connector(pub(crate) Arc<ConnectorInner>);

/// Behind one `Arc`: the HTTP client clones its connector for every request.
pub(crate) struct ConnectorInner {
    /// Over the client's own live config (with its session store): each handshake reads the
    /// current material.
    pub(crate) tls: TlsConnector,
    /// For re-verifying a resumed session against the current trust.
    pub(crate) live: Arc<LiveClient>,
    pub(crate) connect_timeout: Duration,
    /// The last fatal TLS error any of this connector's connections hit after its handshake.
    pub(crate) recent: RecentFailure,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.0.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Connects to the `https` URI's host and port (443 by default) and completes the TLS
    /// handshake, within the client's connect timeout.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]: [`ClientError::InvalidUri`], [`ClientError::Connect`],
    /// [`ClientError::Timeout`], and the handshake failures that name which side rejected
    /// which certificate. (In TLS 1.3 a server's rejection of *our* certificate arrives after
    /// the handshake, on the first read.)
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
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// assert_eq!(connection.peer_identity().tls_version(), Some(mtls::peer::TlsVersion::Tls13));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`Client::request`]: crate::Client::request
    pub async fn connect(&self, uri: Uri) -> Result<TlsConnection, ClientError> {
        check_uri(&uri)?;
        let (host, port) = host_port(&uri);
        let host = host.to_owned();
        let authority = authority_of(&uri);
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| ClientError::InvalidUri {
                uri: uri.to_string(),
                reason: "the host is neither a DNS name nor an IP address",
            })?;
        let connector = self.0.tls.clone();
        let timeout = self.0.connect_timeout;
        let generation = self.0.live.current().id;
        let attempt = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|source| ClientError::Connect {
                    authority: authority.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            let handshake = connector.connect(server_name.clone(), tcp);
            InGeneration::new(generation, handshake).await.map_err(|e| {
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls) => from_tls(tls),
                    None => ClientError::Handshake {
                        reason: HandshakeFailure::from_io(&e),
                        detail: e.to_string(),
                    },
                }
            })
        };
        let tls =
            tokio::time::timeout(timeout, attempt)
                .await
                .map_err(|_| ClientError::Timeout {
                    authority: authority.clone(),
                    after: timeout,
                })??;
        // One generation's verifier binds the server and checks a resumed session again.
        let verifier = Arc::clone(&self.0.live.current().verifier);
        let peer = PeerIdentity::from_connection(tls.get_ref().1, None)
            .map(|p| verifier.vouch(p))
            .ok_or_else(|| ClientError::ServerCertificate {
                reason: HandshakeFailure::BadCertificate,
                detail: "the verified server certificate could not be parsed".to_owned(),
            })?;
        if peer.resumed() {
            // rustls does not verify the server again on resumption: the stored chain is
            // checked against the current trust, CRLs, dates and server check.
            if let Some((leaf, rest)) = peer.chain().split_first() {
                verifier
                    .verify_server_cert(leaf, rest, &server_name, &[], UnixTime::now())
                    .map_err(|e| from_tls(&e))?;
            }
        }
        Ok(TlsConnection {
            io: TokioIo::new(tls),
            peer,
            failure: TlsFailure(Arc::new(FailureRecord {
                error: Mutex::default(),
                authority: authority_key(&uri),
                recent: Arc::clone(&self.0.recent),
            })),
            generation,
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TlsConnection;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConnection, ClientError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await })
    }
}

/// A client TLS connection that knows the server's verified identity.
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
/// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
/// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
/// # })));
/// # let client = mtls::Client::builder()
/// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .build()?;
/// let connection: mtls::client::TlsConnection = client.connector().connect(url).await?;
/// assert_eq!(connection.peer_identity().alpn_protocol(), Some(&b"h2"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TlsConnection {
    io: TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    peer: PeerIdentity,
    failure: TlsFailure,
    /// The material generation the connection was verified under: TLS 1.3 session tickets
    /// arrive on later reads, and are kept only while that material is current.
    generation: u64,
}

impl fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl TlsConnection {
    /// The server's verified identity (with the negotiated version, ALPN and resumption).
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
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// assert_eq!(connection.peer_identity().common_name(), Some("localhost"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_identity(&self) -> &PeerIdentity {
        &self.peer
    }

    /// The TLS stream, for protocols other than HTTP.
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
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// let tls = connection.into_inner(); // AsyncRead + AsyncWrite
    /// assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.io.into_inner()
    }
}

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        // `extra` puts the server's identity into every response from this connection.
        let connected = Connected::new()
            .extra(self.peer.clone())
            .extra(self.failure.clone());
        if self.peer.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let generation = self.generation;
        let result = within_generation(generation, || Pin::new(&mut self.io).poll_read(cx, buf));
        self.failure.record(result)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.failure.record(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
