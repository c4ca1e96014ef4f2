//! [`Client`]: a pooled HTTPS client that presents our certificate, verifies the server, and
//! puts the server's [`PeerIdentity`] into every response.

pub(crate) mod error;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::error::ClientError;
use crate::error::{Error, HandshakeFailure, alert_name, is_certificate_alert};
use crate::handshake::{InGeneration, within_generation};
use crate::live::LiveClient;
use crate::live::tls::{Runner, TlsOptions, client_generation, live_client_config};
use crate::material::{Identity, TrustBundle};
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::rotate::builder::{Builder, Side};
use crate::rotate::status::{CertificateStatus, status};
use crate::rotate::{Live, MaterialSpec, ReloadState, Role, Rotate, Target, Update, rotate};
use crate::util::provider::crypto_provider;
use crate::verify::ServerNotAllowed;

/// Default limit on TCP connect plus TLS handshake.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::DEFAULT_CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures a [`Client`]: the shared material setters of [`Builder`], and the client's own
/// below (how the server is verified, timeouts, the connection pool).
///
/// # Examples
///
/// ```no_run
/// # fn build() -> Result<mtls::Client, mtls::Error> {
/// let client = mtls::Client::builder()
///     .identity_files("certs/orders.pem", "certs/orders.key")
///     .trust_file("certs/ca.pem")
///     .build()?;
/// # Ok(client) }
/// ```
pub type ClientBuilder = Builder<Client>;

/// What only a client's builder sets.
#[derive(Debug)]
pub struct ClientSettings {
    expect_server: Option<Authorizer>,
    connect_timeout: Duration,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            expect_server: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
        }
    }
}

impl Side for Client {
    type Settings = ClientSettings;
    const BUILDER: &'static str = "ClientBuilder";
}

impl Builder<Client> {
    /// Verifies the server by identity instead of by the URL's host name.
    ///
    /// The server's chain is validated (trust anchors, validity, EKU serverAuth), then its
    /// leaf must match `policy`, typically [`Authorizer::spiffe_id`]. This suits SPIFFE
    /// workloads whose certificates carry no DNS names. Without it, the DNS name or IP of the
    /// URL is checked as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust(ca.trust()?.for_trust_domain("example.org")?)
    ///     .expect_server(mtls::Authorizer::spiffe_id("spiffe://example.org/inventory")?)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expect_server(mut self, policy: Authorizer) -> Self {
        self.side.expect_server = Some(policy);
        self
    }

    /// Limit on TCP connect plus TLS handshake for a new connection. Default: 10 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Client::builder().connect_timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.side.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept. `None` keeps it until the server closes it.
    /// Default: 90 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Client::builder().pool_idle_timeout(Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.side.pool_idle_timeout = timeout;
        self
    }

    /// Most idle connections kept per host. `0` disables pooling: every request opens a new
    /// connection (resuming the TLS session where the server allows). Default: unlimited.
    ///
    /// # Examples
    ///
    /// ```
    /// let no_pooling = mtls::Client::builder().pool_max_idle_per_host(0);
    /// ```
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.side.pool_max_idle_per_host = max;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::MissingIdentity`] and [`Error::MissingTrust`] when material was not given (a
    /// client without [`ClientBuilder::expect_server`] needs a bundle not bound to a trust
    /// domain), [`Error::Load`] when it could not be loaded, and [`Error::Tls`] or
    /// [`Error::Verifier`] when rustls refuses it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .build()?;
    /// assert!(matches!(mtls::Client::builder().build(), Err(mtls::Error::MissingIdentity)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Client, Error> {
        let interval = self.material.reload_interval;
        let (live, files) = self.material.resolve()?;
        let provider = crypto_provider();
        let generation = client_generation(
            &provider,
            &live.identity,
            &live.effective_trust(),
            self.side.expect_server.clone(),
            self.tls,
        )?;
        let current = LiveClient::new(generation);
        let build = |runner| live_client_config(&provider, &current, self.tls, runner);
        let (ours, handed_out) = (build(Runner::Ours)?, build(Runner::OtherLibrary)?);
        let config = Arc::new(ours);
        let shared = Arc::new(ClientShared {
            live: current,
            handed_out: Arc::new(handed_out),
            material: Mutex::new(ClientMaterial {
                live,
                expect_server: self.side.expect_server,
                tls: self.tls,
            }),
            provider,
            reload: ReloadState::default(),
        });
        MaterialSpec::watch(&shared, files, interval);
        let connector = Connector(Arc::new(ConnectorInner {
            tls: TlsConnector::from(config),
            live: Arc::clone(&shared.live),
            connect_timeout: self.side.connect_timeout,
            recent: Arc::default(),
        }));
        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(self.side.pool_idle_timeout)
            .pool_max_idle_per_host(self.side.pool_max_idle_per_host)
            .pool_timer(hyper_util::rt::TokioTimer::new());
        Ok(Client(Arc::new(ClientInner {
            http: builder.build(connector.clone()),
            connector,
            shared,
        })))
    }
}

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
#[derive(Clone)]
pub struct Client(Arc<ClientInner>);

/// Behind one `Arc`, so that a clone (per request, in many programs) is one reference count
/// and not one per part: each is an atomic write to a line every thread shares.
struct ClientInner {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    connector: Connector,
    shared: Arc<ClientShared>,
}

/// The client's live TLS configuration and what it was built from.
struct ClientShared {
    /// The material each handshake reads; a swap reaches new connections only.
    live: Arc<LiveClient>,
    /// The config `rustls_config()` hands out: over the same `live` as the connector's, with
    /// no session store.
    handed_out: Arc<ClientConfig>,
    material: Mutex<ClientMaterial>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    reload: ReloadState,
}

struct ClientMaterial {
    live: Live,
    expect_server: Option<Authorizer>,
    tls: TlsOptions,
}

impl Target for ClientShared {
    fn role(&self) -> Role {
        Role::Client
    }

    fn current(&self) -> Live {
        let m = self.material.lock().unwrap_or_else(PoisonError::into_inner);
        m.live.clone()
    }

    fn install(&self, live: Live) -> Result<(), Error> {
        let mut m = self.material.lock().unwrap_or_else(PoisonError::into_inner);
        // The server check (`expect_server` or the host name) is kept as it was.
        let generation = client_generation(
            &self.provider,
            &live.identity,
            &live.effective_trust(),
            m.expect_server.clone(),
            m.tls,
        )?;
        self.live.install(generation);
        m.live = live;
        Ok(())
    }

    fn reload_state(&self) -> &ReloadState {
        &self.reload
    }

    fn tolerates_expired_crls(&self) -> bool {
        let m = self.material.lock().unwrap_or_else(PoisonError::into_inner);
        m.tls.revocation.allow_expired_crls
    }
}

impl Rotate for Client {
    fn set_identity(&self, identity: Identity) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::identity(identity))
    }

    fn set_trust(&self, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::trust(trust))
    }

    fn set_material(&self, identity: Identity, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::material(identity, trust))
    }

    fn certificate_status(&self) -> CertificateStatus {
        status(&*self.0.shared)
    }
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
    /// [`PemDirectory`](crate::PemDirectory) for the layout.
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
    pub fn pem_directory(&self, dir: impl AsRef<Path>) -> Result<crate::PemDirectory, Error> {
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

/// "received fatal alert: UnknownCA" → `AlertDescription::UnknownCA` (the alert's `Debug`
/// name, as rustls writes it).
fn alert_in_text(text: &str) -> Option<rustls::AlertDescription> {
    let name = text.split("received fatal alert: ").nth(1)?;
    let name = name.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (0..=u8::MAX)
        .map(rustls::AlertDescription::from)
        .find(|a| format!("{a:?}") == name)
}

/// The host (without the brackets `Uri::host` keeps around an IPv6 literal) and port (443
/// by default) a connection to `uri` goes to.
fn host_port(uri: &Uri) -> (&str, u16) {
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, uri.port_u16().unwrap_or(443))
}

/// `host:port`: how errors name where a connection went.
fn authority_of(uri: &Uri) -> String {
    let (host, port) = host_port(uri);
    format!("{host}:{port}")
}

/// A hash of the URI's authority as written (ignoring case, as the connection pool's key
/// does): the key under which a connection records its TLS failure for the connector, and a
/// failed request looks it up. A request only ever uses a connection made for its own
/// authority, so both sides hash the same text. Two authorities sharing a hash would at
/// worst let one's request report the other's recent alert, within the five seconds that
/// record lasts.
fn authority_key(uri: &Uri) -> u64 {
    // FNV-1a over the lowercased bytes: a few nanoseconds for a host name, where a `Hasher`
    // fed byte by byte (as `Authority`'s `Hash` does) costs a hundred or more.
    let text = uri.authority().map_or("", |a| a.as_str());
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether a request failed because its connection was gone before it was sent.
fn closed_early(error: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error as _;
    error
        .source()
        .and_then(|e| e.downcast_ref::<hyper::Error>())
        .is_some_and(|e| e.is_closed() || e.is_canceled())
}

fn check_uri(uri: &Uri) -> Result<(), ClientError> {
    let invalid = |reason| ClientError::InvalidUri {
        uri: uri.to_string(),
        reason,
    };
    match uri.scheme_str() {
        Some("https") => {}
        Some(_) => return Err(invalid("mutual TLS needs an `https://` URL")),
        None => {
            return Err(invalid(
                "the URL must be absolute, like `https://host:port/path`",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(())
}

/// Names the failure inside a hyper-util client error.
fn classify(error: hyper_util::client::legacy::Error) -> ClientError {
    // HTTP/2 turns I/O errors into strings, so a TLS alert read after the handshake is found
    // through the connection's own record of it, not through the error chain.
    if let Some(connected) = error.connect_info() {
        let mut extras = http::Extensions::new();
        connected.get_extras(&mut extras);
        if let Some(tls) = extras.get::<TlsFailure>().and_then(TlsFailure::get) {
            return from_tls(&tls);
        }
    }
    if let Some(named) = ClientError::find_in(&error) {
        return named;
    }
    ClientError::Http(Box::new(error))
}

/// A rustls error seen by the client, during or right after the handshake.
fn from_tls(error: &rustls::Error) -> ClientError {
    match error {
        rustls::Error::AlertReceived(alert) if is_certificate_alert(*alert) => {
            ClientError::ServerRejectedCertificate {
                alert: alert_name(*alert),
            }
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if other.0.downcast_ref::<ServerNotAllowed>().is_some() =>
        {
            let denied = other.0.downcast_ref::<ServerNotAllowed>().map(|n| &n.0);
            ClientError::ServerNotAllowed {
                expected: denied.map(|d| d.policy.clone()).unwrap_or_default(),
                presented: denied.map(|d| d.presented.clone()).unwrap_or_default(),
            }
        }
        rustls::Error::InvalidCertificate(_) => ClientError::ServerCertificate {
            reason: HandshakeFailure::from_rustls(error),
            detail: error.to_string(),
        },
        _ => ClientError::Handshake {
            reason: HandshakeFailure::from_rustls(error),
            detail: error.to_string(),
        },
    }
}

impl ClientError {
    /// Names a rustls error seen by a client: the server rejected our certificate (an alert),
    /// we rejected the server's (and why), or another handshake failure.
    ///
    /// ```
    /// let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
    /// let named = mtls::ClientError::from_rustls(&alert);
    /// assert!(named.to_string().starts_with("server rejected our client certificate (alert: unknown_ca)"));
    /// ```
    pub fn from_rustls(error: &rustls::Error) -> ClientError {
        from_tls(error)
    }

    /// Finds the TLS failure in any error's chain of sources, for errors from libraries that
    /// run on [`Client::rustls_config`] (reqwest, tonic, tokio-postgres) and so report our
    /// verifier's and the server's verdicts wrapped in their own types. `None` when the chain
    /// holds no rustls error.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::{CertificateError, Error as TlsError};
    ///
    /// // As another library (reqwest, tonic) would wrap it:
    /// let wrapped = std::io::Error::new(
    ///     std::io::ErrorKind::InvalidData,
    ///     TlsError::InvalidCertificate(CertificateError::Expired),
    /// );
    /// let found = mtls::ClientError::find_in(&wrapped).expect("a TLS failure");
    /// assert_eq!(found.reason(), Some(mtls::HandshakeFailure::Expired));
    /// ```
    pub fn find_in(error: &(dyn std::error::Error + 'static)) -> Option<ClientError> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(ours) = e.downcast_ref::<ClientError>() {
                return Some(ours.duplicate());
            }
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(from_tls(tls));
            }
            // io::Error::source skips the error it wraps, so look inside explicitly.
            if let Some(tls) = e
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(from_tls(tls));
            }
            // rustls reports an alert that arrives after the handshake as text once it has
            // been read ("received fatal alert: UnknownCA"), and HTTP/2 keeps only the text.
            if let Some(alert) = alert_in_text(&e.to_string()) {
                return Some(from_tls(&rustls::Error::AlertReceived(alert)));
            }
            cause = e.source();
        }
        None
    }

    /// The named reason of a TLS failure (for a rejection by the server,
    /// [`HandshakeFailure::RejectedByPeer`]); `None` for errors that are not about TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
    /// let err = mtls::ClientError::from_rustls(&alert);
    /// assert_eq!(err.reason(), Some(mtls::HandshakeFailure::RejectedByPeer));
    /// ```
    pub fn reason(&self) -> Option<HandshakeFailure> {
        match self {
            ClientError::ServerRejectedCertificate { .. } => Some(HandshakeFailure::RejectedByPeer),
            ClientError::ServerNotAllowed { .. } => Some(HandshakeFailure::NotAuthorized),
            ClientError::ServerCertificate { reason, .. }
            | ClientError::Handshake { reason, .. } => Some(*reason),
            ClientError::Timeout { .. } => Some(HandshakeFailure::Timeout),
            _ => None,
        }
    }

    /// A copy of a connector error found by reference in an error chain.
    fn duplicate(&self) -> ClientError {
        match self {
            ClientError::InvalidUri { uri, reason } => ClientError::InvalidUri {
                uri: uri.clone(),
                reason,
            },
            ClientError::Connect { authority, source } => ClientError::Connect {
                authority: authority.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            ClientError::ServerRejectedCertificate { alert } => {
                ClientError::ServerRejectedCertificate {
                    alert: alert.clone(),
                }
            }
            ClientError::ServerNotAllowed {
                expected,
                presented,
            } => ClientError::ServerNotAllowed {
                expected: expected.clone(),
                presented: presented.clone(),
            },
            ClientError::ServerCertificate { reason, detail } => ClientError::ServerCertificate {
                reason: *reason,
                detail: detail.clone(),
            },
            ClientError::Handshake { reason, detail } => ClientError::Handshake {
                reason: *reason,
                detail: detail.clone(),
            },
            ClientError::Timeout { authority, after } => ClientError::Timeout {
                authority: authority.clone(),
                after: *after,
            },
            ClientError::Http(e) => ClientError::Handshake {
                reason: HandshakeFailure::Other,
                detail: e.to_string(),
            },
        }
    }
}

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
#[derive(Clone)]
pub struct Connector(Arc<ConnectorInner>);

/// Behind one `Arc`: the HTTP client clones its connector for every request.
struct ConnectorInner {
    /// Over the client's own live config (with its session store): each handshake reads the
    /// current material.
    tls: TlsConnector,
    /// For re-verifying a resumed session against the current trust.
    live: Arc<LiveClient>,
    connect_timeout: Duration,
    /// The last fatal TLS error any of this connector's connections hit after its handshake.
    recent: RecentFailure,
}

/// Where a connection records the alert that ended it, for a request whose error lost it: an
/// HTTP/2 connection that reads the server's alert before the request is dispatched ends, and
/// the request fails as "channel closed" with no trace of the alert.
///
/// A heuristic with two limits: it is one slot for the whole connector (a failure on another
/// host replaces it, so the request then reports its own, less precise error), and within its
/// five seconds any request to the same authority (as its URL writes it, ignoring case: see
/// [`authority_key`]) that fails as closed or canceled before dispatch, with no connection
/// named, is reported as that alert. It is consulted only then (`Client::request`); errors
/// that name their connection carry their own record.
type RecentFailure = Arc<Mutex<Option<(u64, std::time::Instant, rustls::Error)>>>;

impl Connector {
    /// The TLS failure a connection to the authority (see [`authority_key`]) recorded in the
    /// last few seconds.
    fn recent_failure(&self, authority: u64) -> Option<rustls::Error> {
        let slot = self.0.recent.lock().ok()?;
        let (seen, at, error) = slot.as_ref()?;
        (*seen == authority && at.elapsed() < Duration::from_secs(5)).then(|| error.clone())
    }
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
    /// assert_eq!(connection.peer_identity().tls_version(), Some(mtls::TlsVersion::Tls13));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
/// let connection: mtls::TlsConnection = client.connector().connect(url).await?;
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

/// The fatal TLS error a connection hit after its handshake, such as the alert a TLS 1.3
/// server sends when it rejects our certificate.
///
/// It is in every response's extensions (as the identity is), so a clone is one reference
/// count.
#[derive(Clone)]
struct TlsFailure(Arc<FailureRecord>);

struct FailureRecord {
    error: Mutex<Option<rustls::Error>>,
    /// `host:port` ([`authority_key`]), for the connector's record.
    authority: u64,
    recent: RecentFailure,
}

impl TlsFailure {
    fn get(&self) -> Option<rustls::Error> {
        self.0.error.lock().ok().and_then(|slot| slot.clone())
    }

    fn record<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &result
            && let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            if let Ok(mut slot) = self.0.error.lock() {
                slot.get_or_insert_with(|| tls.clone());
            }
            if let Ok(mut recent) = self.0.recent.lock() {
                *recent = Some((self.0.authority, std::time::Instant::now(), tls.clone()));
            }
        }
        result
    }
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

#[cfg(test)]
mod alert_text_tests {
    use super::*;

    #[test]
    fn an_alert_reported_as_text_is_found_and_named() {
        // As tokio-rustls reports a late alert through HTTP/2: text only.
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            "received fatal alert: AccessDenied",
        );
        let found = ClientError::find_in(&wrapped).expect("a TLS failure");
        assert!(
            matches!(&found, ClientError::ServerRejectedCertificate { alert } if alert == "access_denied"),
            "{found}"
        );
        assert!(alert_in_text("received fatal alert: NoSuchAlert").is_none());
        assert!(alert_in_text("received fatal alert: BadCertificate, then more").is_some());
        assert!(alert_in_text("connection reset").is_none());
    }

    #[test]
    fn a_connection_and_a_failed_request_name_the_same_authority() {
        for (uri, authority) in [
            ("https://[::1]/", "::1:443"),
            ("https://[::1]:8443/x", "::1:8443"),
            ("https://orders.internal/", "orders.internal:443"),
            ("https://127.0.0.1:9000/", "127.0.0.1:9000"),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(authority_of(&uri), authority);
            let (host, port) = host_port(&uri);
            assert_eq!(format!("{host}:{port}"), authority);
        }
        // The failure record's key: the same for one authority whatever the path or the case
        // (as the connection pool's key), different for another host or port.
        let key = |uri: &str| authority_key(&uri.parse().unwrap());
        assert_eq!(key("https://[::1]/"), key("https://[::1]/other?q=1"));
        assert_eq!(
            key("https://Orders.internal:9000/a"),
            key("https://orders.internal:9000/b")
        );
        assert_ne!(key("https://[::1]/"), key("https://[::1]:8443/"));
        assert_ne!(
            key("https://orders.internal/"),
            key("https://billing.internal/")
        );
        assert_ne!(
            key("https://127.0.0.1:9000/"),
            key("https://127.0.0.2:9000/")
        );
    }
}
