//! [`Client`]: a pooled HTTPS client that presents our certificate, verifies the server, and
//! puts the server's [`PeerIdentity`](crate::PeerIdentity) into every response.
//!
//! Layout: this file (`Client` and its requests), `builder` (the client's side of the shared
//! builder, and `build`), `state` (what its connections read, and what rotation replaces),
//! `connector` ([`Connector`] and [`TlsConnection`]: TCP, then TLS with the current
//! generation), `authority` (where a call goes), `error` ([`ClientError`]
//! and how a rustls error or alert is named), `classify` (naming a failed request, from what
//! its connection recorded). It may import any module below it (`util` up to `server`);
//! `config` imports it.

pub(crate) mod authority;
pub(crate) mod builder;
pub(crate) mod classify;
pub(crate) mod connector;
pub(crate) mod error;
pub(crate) mod state;

pub use builder::{ClientBuilder, DEFAULT_CONNECT_TIMEOUT};
pub use connector::{Connector, TlsConnection};
pub use error::ClientError;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use rustls::ClientConfig;

use crate::client::authority::{authority_key, check_uri};
use crate::client::classify::{classify, closed_early};
use crate::client::error::from_tls;
use crate::client::state::ClientShared;
use crate::error::Error;
use crate::material::{Identity, TrustBundle};
use crate::rotate::Target;
use crate::rotate::builder::Builder;

/// A pooled HTTPS client that authenticates with our certificate.
///
/// Each response carries the server's verified [`PeerIdentity`] in its extensions. Cloning is
/// cheap and clones share the connection pool and the TLS session cache.
///
/// # Examples
///
/// ```no_run
/// # async fn call(client: mtls::Client) -> Result<(), mtls::ClientError> {
/// let resp = client.get("https://inventory.internal:8443/stock".parse().unwrap()).await?;
/// let server = resp.extensions().get::<mtls::PeerIdentity>().expect("set on every response");
/// println!("{} answered {}", server, resp.status());
/// # Ok(()) }
/// ```
///
/// [`PeerIdentity`]: crate::PeerIdentity
#[derive(Clone)]
pub struct Client(pub(crate) Arc<ClientInner>);

/// Behind one `Arc`, so that a clone (per request, in many programs) is one reference count
/// and not one per part: each is an atomic write to a line every thread shares.
pub(crate) struct ClientInner {
    pub(crate) http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    pub(crate) connector: Connector,
    pub(crate) shared: Arc<ClientShared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Client::builder();
    /// assert!(matches!(builder.build(), Err(mtls::Error::MissingIdentity)));
    /// ```
    pub fn builder() -> ClientBuilder {
        Builder::new()
    }

    /// A rustls configuration over this client's material, for any rustls-based library
    /// (reqwest's `use_preconfigured_tls`, tokio-postgres-rustls, a plain
    /// `tokio_rustls::TlsConnector`).
    ///
    /// It is not a copy: its certificate resolver and server verifier read this client's
    /// *current* material at every handshake, as the client's own do, so rotation (files or
    /// [`Rotate`]) reaches every connection made with it, and the server is checked exactly
    /// as [`Client`] checks it (trust, CRLs, name or [`ClientBuilder::expect_server`]). It
    /// stores and offers no session, so connections made by other libraries never resume,
    /// neither with a ticket of theirs nor with one our own connections hold: rustls would
    /// not verify a resumed server again, and only our own connections re-check it.
    ///
    /// What only [`Client`] and [`Client::connector`] add: the server's [`PeerIdentity`] on
    /// responses and connections, TLS 1.3 resumption (tickets kept only while the material
    /// they were verified with is current, and the resumed server's certificate checked
    /// again against the current trust), the connect timeout, and errors that say in words
    /// which side rejected which certificate (for other libraries' errors,
    /// [`ClientError::find_in`]). File watching runs while this client (or a clone) is
    /// alive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: mtls::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = tokio_rustls::TlsConnector::from(client.rustls_config());
    /// let tcp = tokio::net::TcpStream::connect("127.0.0.1:5432").await?;
    /// let stream = tls.connect("db.internal".try_into()?, tcp).await?;
    /// # drop(stream);
    /// # Ok(()) }
    /// ```
    ///
    /// [`PeerIdentity`]: crate::PeerIdentity
    /// [`Rotate`]: crate::Rotate
    pub fn rustls_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.0.shared.handed_out)
    }

    /// The identity this client presents now (after any rotation): its chain and key.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .build()?;
    /// let ours = mtls::PeerIdentity::from_chain(client.identity().chain())?;
    /// assert_eq!(ours.spiffe_id().unwrap().as_str(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(&self) -> Identity {
        self.0.shared.current().identity
    }

    /// The trust bundles this client verifies servers against now, with any CRLs given
    /// separately attached to the first.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .build()?;
    /// assert_eq!(client.trust()[0].certificates().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust(&self) -> Vec<TrustBundle> {
        self.0.shared.current().effective_trust()
    }

    /// Writes our current identity and trust as PEM files into `dir` and rewrites them
    /// atomically on every rotation, for libraries that only take file paths. See
    /// [`PemDirectory`](crate::rotate::PemDirectory) for the layout.
    ///
    /// # Errors
    ///
    /// [`Error::PemDirectory`] naming the file that could not be written.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-client-pem-directory-{}", std::process::id()));
    /// let pem = client.pem_directory(&dir)?; // e.g. "/run/orders/tls"
    /// assert!(std::fs::read_to_string(pem.cert_path())?.starts_with("-----BEGIN CERTIFICATE-----"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pem_directory(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<crate::rotate::PemDirectory, Error> {
        crate::rotate::pem_directory(&*self.0.shared, dir.as_ref())
    }

    /// The connector this client opens connections with: TCP, then TLS with our current
    /// identity and our check of the server. Use it for tonic's
    /// `Endpoint::connect_with_connector`, another hyper client, or raw TLS streams.
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
    /// let connector = client.connector();
    /// let connection = connector.connect(url).await?;
    /// assert_eq!(connection.peer_identity().dns_names(), ["localhost"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connector(&self) -> Connector {
        self.0.connector.clone()
    }

    /// Sends a `GET` request to `uri`, which must be `https`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
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
    /// let resp = client.get(url).await?; // e.g. "https://inventory.internal:8443/stock"
    /// assert_eq!(resp.status(), 200);
    /// let server = resp.extensions().get::<mtls::PeerIdentity>().expect("on every response");
    /// assert_eq!(server.common_name(), Some("localhost"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn get(&self, uri: Uri) -> Result<Response<Incoming>, ClientError> {
        let mut req = Request::new(Full::default());
        *req.uri_mut() = uri;
        self.request(req).await
    }

    /// Sends a request. Its URI must be absolute and `https`.
    ///
    /// # Errors
    ///
    /// - [`ClientError::InvalidUri`]: not `https`, or no host;
    /// - [`ClientError::Connect`]: connection refused, unreachable, or the name does not resolve;
    /// - [`ClientError::Timeout`]: connect plus handshake took longer than the connect timeout;
    /// - [`ClientError::ServerCertificate`]: we refused the server's certificate (unknown CA,
    ///   expired, wrong name...);
    /// - [`ClientError::ServerRejectedCertificate`]: the server refused ours;
    /// - [`ClientError::Handshake`]: another TLS failure;
    /// - [`ClientError::Http`]: the HTTP exchange failed.
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
    /// use http_body_util::Full;
    ///
    /// let req = http::Request::post(url).body(Full::new(hyper::body::Bytes::from("order #1")))?;
    /// let resp = client.request(req).await?;
    /// assert_eq!(resp.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ClientError> {
        check_uri(req.uri())?;
        // Only needed on failure: a hash, neither an allocation nor a shared reference count.
        let authority = authority_key(req.uri());
        self.0.http.request(req).await.map_err(|error| {
            // Only when the error names no connection: one that does carries its own record.
            let closed = closed_early(&error) && error.connect_info().is_none();
            match classify(error) {
                // The connection ended before the request went out: if it ended on a TLS
                // alert (the server refusing our certificate), that is the answer.
                ClientError::Http(error) if closed => {
                    match self.0.connector.recent_failure(authority) {
                        Some(tls) => from_tls(&tls),
                        None => ClientError::Http(error),
                    }
                }
                other => other,
            }
        })
    }
}
