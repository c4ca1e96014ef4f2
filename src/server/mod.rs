//! [`Server`]: the accept loop, a handshake task per connection, HTTP/1.1 and HTTP/2 by ALPN,
//! the peer's identity in every request, and graceful shutdown.
//!
//! Here: `builder` (the server's side of the shared builder, `bind`), `state` (what every
//! connection task reads), `handle` ([`ServerHandle`]: changes to a running server), `accept`
//! (the one accept loop of every listener), `connection` (one connection: handshake, then
//! HTTP), `drain` (graceful shutdown), `incoming` ([`TlsIncoming`]),
//! `limits`, `service` (hyper and tower services alike), `stats`, `health`.
//!
//! `server` may import every module below it (`util` up to `rotate`); only `config` and `dev`
//! sit above it.

pub(crate) mod accept;
pub(crate) mod builder;
pub(crate) mod connection;
pub(crate) mod drain;
pub(crate) mod handle;
pub(crate) mod health;
pub(crate) mod incoming;
pub(crate) mod limits;
pub(crate) mod probes;
pub(crate) mod service;
pub(crate) mod state;
pub(crate) mod stats;

pub use builder::ServerBuilder;
pub use handle::ServerHandle;
pub use health::Health;
pub use incoming::{TlsIncoming, VerifiedStream};
pub use limits::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, Limits};
pub use probes::HealthListener;
pub use service::{HttpService, Hyper, Tower};
pub(crate) use state::Shared;
pub use stats::{RECENT_WINDOW, ServerStats};

use std::fmt;
use std::future::{Future, pending};
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::peer::PeerIdentity;
use crate::rotate::builder::Builder;
use crate::rotate::status::{CertificateStatus, status};

/// An mTLS server bound to a socket. Start it with [`Server::serve`] or
/// [`Server::serve_with_shutdown`].
///
/// Every connection is handled in its own task: the TLS handshake (with a timeout), then
/// HTTP/1.1 or HTTP/2 as negotiated by ALPN. Each request's extensions carry the client's
/// [`PeerIdentity`], parsed once per connection.
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
/// let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
/// tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
/// })));
/// let resp = client.get(url).await?;
/// assert_eq!(resp.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts configuring a server.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder();
    /// assert!(matches!(builder.build_rustls_config(), Err(mtls::Error::MissingIdentity)));
    /// ```
    pub fn builder() -> ServerBuilder {
        Builder::new()
    }

    /// The address the server listens on (with the real port when bound to port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let server = mtls::Server::builder()
    /// #   .identity(ca.server("localhost")?.identity()?)
    /// #   .trust(ca.trust()?)
    /// #   .authorize(mtls::Authorizer::any_verified())
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// assert!(server.local_addr().ip().is_loopback());
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's handshake counters. The handle stays valid while and after the server runs.
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
    /// let stats = server.stats();
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// client.get(url).await?;
    /// assert_eq!(stats.handshakes_accepted(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Health facts for a `/healthz` or readiness route: see [`ServerHandle::health`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let server = mtls::Server::builder()
    ///     .identity(ca.server("localhost")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .authorize(mtls::Authorizer::any_verified())
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// assert!(server.health().to_json().contains("\"accepted\":0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health(&self) -> crate::Health {
        crate::Health::new(status(&*self.shared), &self.shared.stats)
    }

    /// Our certificate and trust anchors with their expiry, and how reloading went.
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
    /// let status = server.certificate_status();
    /// assert!(status.healthy());
    /// assert_eq!(status.trust_anchors.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn certificate_status(&self) -> CertificateStatus {
        status(&*self.shared)
    }

    /// A rustls configuration over the server's material: see [`ServerHandle::rustls_config`].
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
    /// let config = server.rustls_config();
    /// assert!(config.alpn_protocols.contains(&b"h2".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rustls_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.shared.handed_out)
    }

    /// Turns the server into a listener of verified TLS streams, for protocols other than
    /// HTTP: see [`TlsIncoming`]. Timeouts, limits, the policy and the
    /// failure counters apply as they do to [`Server::serve`].
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
    /// assert_eq!(stream.peer_identity().unwrap().to_string(), "spiffe://example.org/orders");
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incoming(self) -> crate::server::TlsIncoming {
        crate::server::TlsIncoming::start(self.listener, self.local_addr, self.shared)
    }

    /// A handle to change the running server (policy, certificates, trust) after
    /// [`Server::serve`] took it.
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
    /// let handle = server.handle();
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// handle.set_authorizer(mtls::Authorizer::trust_domain("example.org")?)?;
    /// assert_eq!(handle.stats().handshakes_accepted(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves `service` until the process ends.
    ///
    /// `service` is any hyper [`Service`](hyper::service::Service), for example one made with
    /// [`hyper::service::service_fn`], or any tower
    /// [`Service`](tower_service::Service), such as an axum `Router` or tonic's `Routes`
    /// (see [`HttpService`]). It is cloned once per connection (a tower service also once
    /// per request).
    ///
    /// # Errors
    ///
    /// This only returns when the server stops; accept errors (such as running out of file
    /// descriptors) are logged and retried, never fatal.
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
    /// use http_body_util::{BodyExt, Full};
    /// use hyper::{Request, Response, body::{Bytes, Incoming}};
    ///
    /// let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// tokio::spawn(server.serve(hyper::service::service_fn(|req: Request<Incoming>| async move {
    ///     let peer = req.extensions().get::<mtls::PeerIdentity>().cloned().expect("required");
    ///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("hello {peer}")))))
    /// })));
    /// let body = client.get(url).await?.into_body().collect().await?.to_bytes();
    /// assert_eq!(body, "hello spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn serve<S, M>(self, service: S) -> Result<(), Error>
    where
        S: HttpService<M>,
    {
        self.serve_with_shutdown(service, pending()).await
    }

    /// Serves `service` until `signal` completes, then shuts down gracefully.
    ///
    /// On shutdown the server stops accepting, drops handshakes still in progress, lets
    /// in-flight requests finish and closes idle connections. Connections still busy after
    /// the shutdown timeout ([`ServerBuilder::shutdown_timeout`]) are closed.
    ///
    /// # Errors
    ///
    /// None at present: the signature leaves room for fatal listener errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future stops accepting at once and abandons connection tasks
    /// without draining them.
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
    /// # let service = hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # });
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn(server.serve_with_shutdown(service, async {
    ///     let _ = stopped.await;
    /// }));
    /// stop.send(()).unwrap();
    /// serving.await??; // stopped accepting, drained, returned
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn serve_with_shutdown<S, M, F>(self, service: S, signal: F) -> Result<(), Error>
    where
        S: HttpService<M>,
        F: Future<Output = ()> + Send,
    {
        let service = service.into_hyper_service();
        self.run(move |_: &ConnectionInfo| service.clone(), true, signal)
            .await
    }

    /// Serves a service made for each connection, once its handshake is verified, from
    /// what the handshake established: the peer's identity is a value of the connection,
    /// read once, instead of an entry in every request's extensions.
    ///
    /// This is the shape of a server written by hand over tokio-rustls, and it is what to
    /// use when a connection's requests share work that depends only on the peer (an
    /// authorization decided once per connection, a per-peer quota or client), or when the
    /// last per-request allocations count: requests served this way carry **no**
    /// [`PeerIdentity`] in their extensions, so nothing is allocated per request for it.
    /// Middleware that reads the identity from the extensions ([`RequireIdentity`](crate::RequireIdentity),
    /// [`Roles`](crate::Roles), the axum extractor) then finds none and refuses every request:
    /// use [`Server::serve`] with those.
    ///
    /// `make` runs only for connections whose handshake and policy check passed (an
    /// unauthorized peer never reaches it), on the connection's task; it should be quick.
    /// Everything else (limits, timeouts, draining) is as for [`Server::serve`].
    ///
    /// # Errors
    ///
    /// None at present: the signature leaves room for fatal listener errors.
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
    /// use std::sync::Arc;
    /// use http_body_util::{BodyExt, Full};
    /// use hyper::{Request, Response, body::{Bytes, Incoming}};
    ///
    /// let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// tokio::spawn(server.serve_connections(|conn: &mtls::server::ConnectionInfo| {
    ///     // Once per connection: the greeting is made here, not per request.
    ///     let name = conn.peer_identity().map_or("anonymous".to_owned(), |p| p.to_string());
    ///     let greeting = Bytes::from(format!("hello {name}"));
    ///     hyper::service::service_fn(move |_req: Request<Incoming>| {
    ///         let body = greeting.clone();
    ///         async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(body))) }
    ///     })
    /// }));
    /// let body = client.get(url).await?.into_body().collect().await?.to_bytes();
    /// assert_eq!(body, "hello spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn serve_connections<F, S, M>(self, make: F) -> Result<(), Error>
    where
        F: Fn(&ConnectionInfo) -> S + Send + Sync + 'static,
        S: HttpService<M>,
    {
        self.serve_connections_with_shutdown(make, pending()).await
    }

    /// [`Server::serve_connections`] until `signal` completes, then a graceful shutdown as
    /// in [`Server::serve_with_shutdown`].
    ///
    /// # Errors
    ///
    /// None at present: the signature leaves room for fatal listener errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future stops accepting at once and abandons connection tasks
    /// without draining them.
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
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn(server.serve_connections_with_shutdown(
    ///     |_conn: &mtls::server::ConnectionInfo| {
    ///         hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///             Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
    ///         })
    ///     },
    ///     async {
    ///         let _ = stopped.await;
    ///     },
    /// ));
    /// stop.send(()).unwrap();
    /// serving.await??; // stopped accepting, drained, returned
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn serve_connections_with_shutdown<F, S, M, G>(
        self,
        make: F,
        signal: G,
    ) -> Result<(), Error>
    where
        F: Fn(&ConnectionInfo) -> S + Send + Sync + 'static,
        S: HttpService<M>,
        G: Future<Output = ()> + Send,
    {
        self.run(
            move |conn: &ConnectionInfo| make(conn).into_hyper_service(),
            false,
            signal,
        )
        .await
    }
}

/// What a verified connection established, given to [`Server::serve_connections`]'s
/// `make` once per connection.
///
/// # Examples
///
/// ```
/// fn greeting(conn: &mtls::server::ConnectionInfo) -> String {
///     match conn.peer_identity() {
///         Some(peer) => format!("hello {peer} from {}", conn.remote_addr().ip()),
///         None => "hello anonymous".to_owned(),
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    peer: Option<PeerIdentity>,
    remote_addr: SocketAddr,
}

impl ConnectionInfo {
    /// The client's verified identity: `None` only for an anonymous client that the
    /// server's policy admits ([`Authorizer::anonymous`](crate::Authorizer::anonymous)).
    ///
    /// # Examples
    ///
    /// ```
    /// fn caller(conn: &mtls::server::ConnectionInfo) -> Option<String> {
    ///     conn.peer_identity().and_then(|peer| peer.spiffe_id()).map(|id| id.to_string())
    /// }
    /// ```
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }

    /// The client's address.
    ///
    /// # Examples
    ///
    /// ```
    /// fn from_loopback(conn: &mtls::server::ConnectionInfo) -> bool {
    ///     conn.remote_addr().ip().is_loopback()
    /// }
    /// ```
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }
}
