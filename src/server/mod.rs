//! [`Server`]: the accept loop, a handshake task per connection, HTTP/1.1 and HTTP/2 by ALPN,
//! the peer's identity in every request, and graceful shutdown.

pub(crate) mod connection;
pub(crate) mod drain;
pub(crate) mod health;
pub(crate) mod incoming;
pub(crate) mod limits;
pub(crate) mod service;
pub(crate) mod stats;

use std::fmt;
use std::future::{Future, pending};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::Error;
use crate::handshake::Handshake;
use crate::live::tls::{ClientAuth, Runner, TlsOptions, live_server_config, server_generation};
use crate::live::{LiveServer, ServerGeneration};
use crate::material::{Identity, TrustBundle};
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::rotate::builder::{Builder, Side};
use crate::rotate::status::{CertificateStatus, status};
use crate::rotate::{Live, MaterialSpec, ReloadState, Role, Rotate, Target, Update, rotate};
use crate::server::connection::{Connection, HttpBuilders};
use crate::server::drain::{Drain, Order, Timeouts};
use crate::server::limits::Limits;
use crate::server::service::HttpService;
use crate::server::stats::ServerStats;
use crate::util::provider::crypto_provider;

/// Configures and binds a [`Server`]: the shared material setters of [`Builder`], and the
/// server's own below (policy, client authentication, limits).
///
/// A client certificate is required by default; see [`ServerBuilder::client_auth`].
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = mtls::Server::builder()
///     .identity_files("certs/inventory.pem", "certs/inventory.key")
///     .trust_file("certs/ca.pem")
///     .authorize(mtls::Authorizer::trust_domain("example.org")?)
///     .bind("127.0.0.1:8443")
///     .await?;
/// println!("listening on {}", server.local_addr());
/// # Ok(()) }
/// ```
pub type ServerBuilder = Builder<Server>;

/// What only a server's builder sets.
#[derive(Debug)]
pub struct ServerSettings {
    policy: Option<Authorizer>,
    client_auth: ClientAuth,
    limits: Limits,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            policy: None,
            client_auth: ClientAuth::Required,
            limits: Limits::default(),
        }
    }
}

impl Side for Server {
    type Settings = ServerSettings;
    const BUILDER: &'static str = "ServerBuilder";
}

impl Builder<Server> {
    /// Which verified clients may connect. Required: a server without a policy does not bind.
    ///
    /// The policy runs inside the handshake, before any HTTP byte is read. A client it denies
    /// gets the `access_denied` alert and never reaches a handler. Use
    /// [`Authorizer::any_verified`] to admit every client whose certificate chains to the
    /// trust bundle.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let handle = mtls::Server::builder()
    /// #   .identity(ca.server("inventory")?.identity()?)
    /// #   .trust(ca.trust()?)
    ///     .authorize(mtls::Authorizer::trust_domain("example.org")?)
    ///     .build_rustls_config()?;
    /// assert_eq!(handle.authorizer().to_string(), "trust_domain(example.org)");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorize(mut self, policy: Authorizer) -> Self {
        self.side.policy = Some(policy);
        self
    }

    /// Whether clients must present a certificate. Default: [`ClientAuth::Required`].
    ///
    /// With [`ClientAuth::Optional`], clients without a certificate are served and their
    /// requests carry no [`PeerIdentity`](crate::PeerIdentity); a certificate that is presented must still verify.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Authorizer, ClientAuth};
    ///
    /// let builder = mtls::Server::builder()
    ///     .client_auth(ClientAuth::Optional)
    ///     .authorize(Authorizer::any_of([Authorizer::anonymous(), Authorizer::any_verified()])?);
    /// # Ok::<(), mtls::PolicyError>(())
    /// ```
    pub fn client_auth(mut self, mode: ClientAuth) -> Self {
        self.side.client_auth = mode;
        self
    }

    /// Whether the CertificateRequest names the CAs we trust, so that clients holding several
    /// certificates pick the right one. Default: on. Turn it off to keep the list of trusted
    /// CAs private or the handshake small with large bundles.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().send_ca_hints(false);
    /// ```
    pub fn send_ca_hints(mut self, send: bool) -> Self {
        self.tls.ca_hints = send;
        self
    }

    /// All limits at once; see [`Limits`] for each default.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut limits = mtls::Limits::default();
    /// limits.max_connections = 1_000;
    /// let builder = mtls::Server::builder().limits(limits);
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.side.limits = limits;
        self
    }

    /// How long a client has to complete the TLS handshake. Default: 10 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().handshake_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.side.limits.handshake_timeout = timeout;
        self
    }

    /// How many handshakes may run at once; beyond it the server stops accepting until one
    /// finishes. Default: 1,024.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().max_handshakes(256);
    /// ```
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.side.limits.max_handshakes = max.max(1);
        self
    }

    /// How many connections may be open at once; beyond it the server stops accepting until
    /// one closes. Default: 10,000.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().max_connections(1_000);
    /// ```
    pub fn max_connections(mut self, max: usize) -> Self {
        self.side.limits.max_connections = max.max(1);
        self
    }

    /// How long a client has to send a complete HTTP/1 request head, from its first byte
    /// (for a connection's first request, from the end of the handshake). Default: 30
    /// seconds. Time spent waiting for the next request on a keep-alive connection counts
    /// toward [`ServerBuilder::idle_timeout`] instead. (Without ALPN, where the protocol is
    /// detected from the first bytes, hyper's own timer applies, which also counts the wait.)
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().header_read_timeout(std::time::Duration::from_secs(10));
    /// ```
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.side.limits.header_read_timeout = timeout;
        self
    }

    /// How long a connection may sit with no request in flight and no bytes moving before it
    /// is closed. Default: 5 minutes.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().idle_timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.side.limits.idle_timeout = timeout;
        self
    }

    /// Largest accepted request head in bytes (HTTP/1 buffer, HTTP/2 header list). Default:
    /// 64 KiB; the HTTP/1 buffer never goes below 8 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().max_header_size(16 * 1024);
    /// ```
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.side.limits.max_header_size = bytes;
        self
    }

    /// Concurrent HTTP/2 streams per connection. Default: 256.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().http2_max_concurrent_streams(100);
    /// ```
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.side.limits.http2_max_concurrent_streams = max;
        self
    }

    /// How long in-flight requests may run once shutdown begins. Default: 30 seconds.
    /// Connections still open after it are closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().shutdown_timeout(std::time::Duration::from_secs(10));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.side.limits.shutdown_timeout = timeout;
        self
    }

    /// Builds the TLS configuration and binds the listening socket.
    ///
    /// Port 0 picks a free port; read it back with [`Server::local_addr`].
    ///
    /// # Errors
    ///
    /// [`Error::MissingIdentity`], [`Error::MissingTrust`] and [`Error::MissingPolicy`] when
    /// one was not given, [`Error::Load`] when material could not be loaded,
    /// [`Error::Verifier`] or [`Error::Tls`] when rustls refuses it, and [`Error::Bind`] when
    /// the address cannot be bound.
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
    /// assert_ne!(server.local_addr().port(), 0); // the port picked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn bind(self, addr: impl ToSocketAddrs + fmt::Display) -> Result<Server, Error> {
        let shown = addr.to_string();
        let unwatched = self.shared()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: shown.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: shown,
            source,
        })?;
        let shared = unwatched.watch();
        Ok(Server {
            listener,
            local_addr,
            shared,
        })
    }

    /// Builds the TLS configuration without binding a socket, for serving through something
    /// else: a plain `tokio_rustls::TlsAcceptor`, tonic's `serve_with_incoming`, a custom
    /// protocol. Take the config from [`ServerHandle::rustls_config`].
    ///
    /// Certificate files are watched while the handle (or a clone of it) is alive.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::bind`], without the bind error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let handle = mtls::Server::builder()
    ///     .identity_files("certs/server.pem", "certs/server.key")
    ///     .trust_file("certs/ca.pem")
    ///     .authorize(mtls::Authorizer::trust_domain("example.org")?)
    ///     .build_rustls_config()?;
    /// let acceptor = tokio_rustls::TlsAcceptor::from(handle.rustls_config());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    /// let (tcp, _) = listener.accept().await?;
    /// let stream = acceptor.accept(tcp).await?; // verified and authorized
    /// # drop(stream);
    /// # Ok(()) }
    /// ```
    pub fn build_rustls_config(self) -> Result<ServerHandle, Error> {
        let shared = self.shared()?.watch();
        Ok(ServerHandle { shared })
    }

    /// Everything but the socket; the watcher starts once the caller says so (after a bind
    /// that may still fail).
    fn shared(self) -> Result<Unwatched, Error> {
        let interval = self.material.reload_interval;
        let (live, files) = self.material.resolve()?;
        let policy = self.side.policy.ok_or(Error::MissingPolicy)?;
        if self.side.client_auth == ClientAuth::Optional && !policy.admits_anonymous() {
            // Fails closed, but say so: the caller asked for optional and will not get it.
            tracing::warn!(
                %policy,
                "client_auth(Optional) with a policy that admits no anonymous peer: client \
                 certificates stay mandatory; allow Authorizer::anonymous() in the policy to \
                 let clients without one in"
            );
        }
        let material = Material {
            live,
            policy,
            client_auth: self.side.client_auth,
            tls: self.tls,
        };
        let provider = crypto_provider();
        let stats = Arc::<ServerStats>::default();
        let live = LiveServer::new(material.generation(&provider)?, Arc::clone(&stats) as _);
        let build = |runner| live_server_config(&provider, &live, material.tls, runner);
        let (ours, handed_out) = (build(Runner::Ours)?, build(Runner::OtherLibrary)?);
        let shared = Arc::new(Shared {
            live,
            config: Arc::new(ours),
            handed_out: Arc::new(handed_out),
            material: Mutex::new(material),
            provider,
            stats,
            reload: ReloadState::default(),
            limits: self.side.limits.clone(),
        });
        Ok(Unwatched {
            shared,
            files,
            interval,
        })
    }
}

/// A server's state before its files are watched.
struct Unwatched {
    shared: Arc<Shared>,
    files: crate::rotate::Files,
    interval: Option<Duration>,
}

impl Unwatched {
    fn watch(self) -> Arc<Shared> {
        MaterialSpec::watch(&self.shared, self.files, self.interval);
        self.shared
    }
}

/// An mTLS server bound to a socket. Start it with [`Server::serve`] or
/// [`Server::serve_with_shutdown`].
///
/// Every connection is handled in its own task: the TLS handshake (with a timeout), then
/// HTTP/1.1 or HTTP/2 as negotiated by ALPN. Each request's extensions carry the client's
/// [`PeerIdentity`](crate::PeerIdentity), parsed once per connection.
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
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// What every connection task reads.
pub(crate) struct Shared {
    /// The material handshakes read; swapping a generation changes new handshakes only.
    pub(crate) live: Arc<LiveServer>,
    /// Our accept loop's rustls config, over `live`, with its session caches.
    pub(crate) config: Arc<ServerConfig>,
    /// The config `rustls_config()` hands out: over the same `live`, with no session cache.
    handed_out: Arc<ServerConfig>,
    /// What the current generation was built from, to rebuild it when one part changes.
    material: Mutex<Material>,
    provider: Arc<CryptoProvider>,
    pub(crate) stats: Arc<ServerStats>,
    reload: ReloadState,
    pub(crate) limits: Limits,
}

impl Shared {
    fn material(&self) -> std::sync::MutexGuard<'_, Material> {
        self.material
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds a generation from the changed material and swaps it in; on error nothing
    /// changes.
    fn update(&self, change: impl FnOnce(&mut Material)) -> Result<(), Error> {
        let mut material = self.material();
        let mut candidate = material.clone();
        change(&mut candidate);
        self.live.install(candidate.generation(&self.provider)?);
        *material = candidate;
        Ok(())
    }
}

impl Target for Shared {
    fn role(&self) -> Role {
        Role::Server
    }

    fn current(&self) -> Live {
        let material = self.material();
        material.live.clone()
    }

    fn install(&self, live: Live) -> Result<(), Error> {
        // Only identity, trust and CRLs change: the policy and client-auth mode are kept, so
        // a reload can never turn client authentication off.
        self.update(|m| m.live = live)
    }

    fn reload_state(&self) -> &ReloadState {
        &self.reload
    }

    fn tolerates_expired_crls(&self) -> bool {
        self.material().tls.revocation.allow_expired_crls
    }
}

#[derive(Clone)]
struct Material {
    live: Live,
    policy: Authorizer,
    client_auth: ClientAuth,
    tls: TlsOptions,
}

impl Material {
    fn generation(&self, provider: &Arc<CryptoProvider>) -> Result<ServerGeneration, Error> {
        server_generation(
            provider,
            &self.live.identity,
            &self.live.effective_trust(),
            self.client_auth,
            &self.policy,
            self.tls,
        )
    }
}

/// Changes a running [`Server`]: get one with [`Server::handle`] before serving.
///
/// Each change builds and validates a complete new TLS configuration first; on error nothing
/// changes. New handshakes use the new configuration; established connections keep theirs.
/// Sessions issued under the old configuration cannot resume under the new one.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// handle.set_authorizer(mtls::Authorizer::trust_domain("example.org")?)?;
/// assert_eq!(handle.authorizer().to_string(), "trust_domain(example.org)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    #[cfg(test)]
    pub(crate) fn live(&self) -> &LiveServer {
        &self.shared.live
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("policy", self.shared.live.current().verifier.policy())
            .finish_non_exhaustive()
    }
}

impl Rotate for ServerHandle {
    fn set_identity(&self, identity: Identity) -> Result<(), Error> {
        rotate(&*self.shared, Update::identity(identity))
    }

    fn set_trust(&self, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.shared, Update::trust(trust))
    }

    fn set_material(&self, identity: Identity, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.shared, Update::material(identity, trust))
    }

    fn certificate_status(&self) -> CertificateStatus {
        status(&*self.shared)
    }
}

impl ServerHandle {
    /// Replaces the policy for new handshakes, and re-checks resumed sessions against it.
    ///
    /// # Errors
    ///
    /// [`Error::Verifier`] or [`Error::Tls`] if the new configuration cannot be built (the
    /// old one stays).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// handle.set_authorizer(mtls::Authorizer::spiffe_id("spiffe://example.org/orders")?)?;
    /// assert_eq!(handle.authorizer().to_string(), "spiffe_id(spiffe://example.org/orders)");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_authorizer(&self, policy: Authorizer) -> Result<(), Error> {
        self.shared.update(|m| m.policy = policy)
    }

    /// The policy new handshakes are checked against.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// assert_eq!(handle.authorizer().to_string(), "any_verified");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorizer(&self) -> Authorizer {
        self.shared.live.current().verifier.policy().clone()
    }

    /// Health facts for a `/healthz` or readiness route: our certificate's expiry, how
    /// reloading went, and the handshake failures by reason, since start and in the last
    /// minute. See [`Health`](crate::Health).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let health = handle.health();
    /// assert!(health.healthy() && health.problems().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health(&self) -> crate::Health {
        crate::Health::new(status(&*self.shared), &self.shared.stats)
    }

    /// Serves `/healthz`, `/readyz`, `/livez` and `/metrics` over plain HTTP on `addr`, for
    /// probes and scrapers that cannot present a client certificate: see
    /// [`HealthListener`](crate::HealthListener) for the routes and what to bind it to. It
    /// runs until the returned listener is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when `addr` cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let server = mtls::Server::builder()
    ///     .identity(ca.server("localhost")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .authorize(mtls::Authorizer::any_verified())
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// let probes = server.handle().serve_health("127.0.0.1:0").await?; // e.g. "0.0.0.0:8081"
    /// let mut tcp = tokio::net::TcpStream::connect(probes.local_addr()).await?;
    /// tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n").await?;
    /// let mut answer = String::new();
    /// tcp.read_to_string(&mut answer).await?;
    /// assert!(answer.starts_with("HTTP/1.1 200 OK"));
    /// assert!(answer.contains("\"healthy\":true"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn serve_health(
        &self,
        addr: impl ToSocketAddrs + fmt::Debug,
    ) -> Result<crate::HealthListener, Error> {
        crate::server::health::serve_health(self.clone(), addr).await
    }

    /// The server's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let stats = handle.stats();
    /// assert_eq!(stats.handshakes_accepted(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Writes our current identity and trust as PEM files into `dir` and rewrites them
    /// atomically on every rotation. See [`PemDirectory`](crate::PemDirectory).
    ///
    /// # Errors
    ///
    /// [`Error::PemDirectory`] naming the file that could not be written.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-server-pem-directory-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?; // e.g. "/run/inventory/tls"
    /// assert!(std::fs::read_to_string(pem.ca_path())?.starts_with("-----BEGIN CERTIFICATE-----"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pem_directory(&self, dir: impl AsRef<Path>) -> Result<crate::PemDirectory, Error> {
        crate::rotate::pem_directory(&*self.shared, dir.as_ref())
    }

    /// A rustls configuration over the server's material, for any rustls-based acceptor.
    ///
    /// It is not a copy: its certificate resolver and client verifier read the server's
    /// *current* material at every handshake, as the server's own do, so rotation and
    /// [`ServerHandle::set_authorizer`] reach every handshake made with it. The policy runs
    /// in the handshake (an unauthorized client gets `access_denied`), failures are logged
    /// with their named reason, and certificate rejections are counted in
    /// [`ServerHandle::stats`]. It has no session cache and issues no tickets, so handshakes
    /// accepted by another library never resume a session, neither one of theirs nor one our
    /// accept loop issued: rustls would not verify a resumed client again, and nothing there
    /// re-checks it against the current trust, CRLs and policy.
    ///
    /// What only [`Server`] adds: the [`PeerIdentity`](crate::PeerIdentity) in each request,
    /// session resumption (sessions stored only under the material they were verified with,
    /// and every resumed session checked again against the current trust and policy), the
    /// same re-check for a handshake that straddled a swap, counters for every outcome,
    /// handshake timeouts, connection and handshake limits, HTTP limits and graceful
    /// shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let config = handle.rustls_config();
    /// assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    /// let acceptor = tokio_rustls::TlsAcceptor::from(config);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rustls_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.shared.handed_out)
    }
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
    /// HTTP: see [`TlsIncoming`](crate::TlsIncoming). Timeouts, limits, the policy and the
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
    pub fn incoming(self) -> crate::TlsIncoming {
        crate::TlsIncoming::start(self.listener, self.local_addr, self.shared)
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
    /// tokio::spawn(server.serve_connections(|conn: &mtls::ConnectionInfo| {
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
    ///     |_conn: &mtls::ConnectionInfo| {
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

    /// The accept loop: `make` gives each verified connection its service; with
    /// `extensions`, each request also carries the peer's identity in its extensions.
    async fn run<F, H, B, G>(self, make: F, extensions: bool, signal: G) -> Result<(), Error>
    where
        F: Fn(&ConnectionInfo) -> H + Send + Sync + 'static,
        H: hyper::service::Service<Request<Incoming>, Response = http::Response<B>>
            + Send
            + 'static,
        H::Future: Send + 'static,
        H::Error: Into<crate::server::connection::BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<crate::server::connection::BoxError>,
        G: Future<Output = ()> + Send,
    {
        let make = Arc::new(make);
        let Server {
            listener, shared, ..
        } = self;
        let shutdown_timeout = shared.limits.shutdown_timeout;
        let http = Arc::new(HttpBuilders::new(&shared.limits));
        // Within what a semaphore can hold, and never zero (which would never accept).
        let permits = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
        let connections = Arc::new(Semaphore::new(permits(shared.limits.max_connections)));
        let handshakes = Arc::new(Semaphore::new(permits(shared.limits.max_handshakes)));
        // Every connection task checks its order at each wake without a lock; the order to
        // drain reaches handshakes in progress too, which are dropped at once: graceful
        // shutdown drains requests, and a peer still handshaking has none (nor may a
        // stalled one hold shutdown up until its handshake timeout). Dropping the serve
        // future drops `drain`, which closes every connection.
        let drain = Drain::watched(Timeouts {
            idle: shared.limits.idle_timeout,
            head: shared.limits.header_read_timeout,
        });
        tokio::pin!(signal);

        loop {
            tokio::select! {
                () = &mut signal => break,
                // Permits first: at a limit we stop accepting and the kernel queues (and in
                // the end refuses) new connections, rather than piling up tasks.
                accepted = accept(&listener, &connections, &handshakes) => match accepted {
                    Ok((tcp, addr, connection_permit, handshake_permit)) => {
                        let member = drain.join();
                        let connection = Connection {
                            shared: Arc::clone(&shared),
                            addr,
                        };
                        let make = Arc::clone(&make);
                        let http = Arc::clone(&http);
                        // The peer's identity is recorded on the span once the handshake
                        // has verified it, so every event of the connection carries it.
                        let span = tracing::info_span!(
                            "mtls.connection",
                            peer.addr = %addr,
                            peer.identity = tracing::field::Empty,
                            peer.serial = tracing::field::Empty,
                            tls.version = tracing::field::Empty,
                            tls.resumed = tracing::field::Empty,
                        );
                        let stats = Arc::clone(&shared.stats);
                        tokio::spawn(async move {
                            let _active = stats.connection_opened();
                            let _connection_permit = connection_permit;
                            // The verifier reads the connection's context: only the handshake
                            // runs in its scope, so requests do not pay for entering it. Boxed,
                            // so that its state (over a kilobyte) is freed when it ends rather
                            // than kept in the task for the connection's life.
                            let handshake = Box::pin(Handshake::scope(addr, connection.handshake(tcp, &member)))
                                .await;
                            drop(handshake_permit);
                            if let Some((tls, peer)) = handshake {
                                let info = ConnectionInfo { peer, remote_addr: addr };
                                let service = make(&info);
                                let peer = if extensions { info.peer } else { None };
                                connection.serve((tls, peer), service, &member, &http).await;
                            }
                        }.instrument(span));
                    }
                    Err(e) => accept_error(e).await,
                },
            }
        }

        drop(listener);
        tracing::info!(
            in_flight = drain.count(),
            "shutting down: stopped accepting, draining connections"
        );
        drain.order(Order::Drain);
        if tokio::time::timeout(shutdown_timeout, drain.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?shutdown_timeout,
                "shutdown timeout reached; closing the remaining connections"
            );
            drain.order(Order::Close);
            // A closed connection ends at its next poll; the slowest path left is a failed
            // handshake's one-second linger.
            let _ = tokio::time::timeout(Duration::from_secs(5), drain.closed()).await;
        }
        Ok(())
    }
}

/// What a verified connection established, given to [`Server::serve_connections`]'s
/// `make` once per connection.
///
/// # Examples
///
/// ```
/// fn greeting(conn: &mtls::ConnectionInfo) -> String {
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
    /// fn caller(conn: &mtls::ConnectionInfo) -> Option<String> {
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
    /// fn from_loopback(conn: &mtls::ConnectionInfo) -> bool {
    ///     conn.remote_addr().ip().is_loopback()
    /// }
    /// ```
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }
}

pub(crate) type Accepted = (
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// Waits for a connection slot and a handshake slot, then accepts. Cancel-safe: dropping it
/// returns the permits and leaves the connection in the kernel's queue.
pub(crate) async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
    handshakes: &Arc<Semaphore>,
) -> std::io::Result<Accepted> {
    let closed = |_| std::io::Error::other("limit semaphore closed");
    let connection = Arc::clone(connections)
        .acquire_owned()
        .await
        .map_err(closed)?;
    let handshake = Arc::clone(handshakes)
        .acquire_owned()
        .await
        .map_err(closed)?;
    let (tcp, addr) = listener.accept().await?;
    Ok((tcp, addr, connection, handshake))
}

/// Accept errors are per connection (the peer reset before we accepted it) or per process
/// (out of file descriptors); neither should stop the server.
pub(crate) async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => {}
        _ => {
            tracing::error!(%error, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
