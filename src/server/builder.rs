//! The server's side of the shared [`Builder`](crate::Builder): its policy, client
//! authentication and limits, and `bind`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};

use crate::error::Error;
use crate::live::LiveServer;
use crate::live::tls::{Runner, live_server_config};
use crate::policy::authorizer::Authorizer;
use crate::rotate::builder::{Builder, Side};
use crate::rotate::{ReloadState, Sources};
use crate::server::limits::Limits;
use crate::server::stats::ServerStats;
use crate::util::provider::crypto_provider;
use crate::verify::ClientAuth;

use crate::server::state::{Recipe, Shared};
use crate::server::{Server, ServerHandle};

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

impl crate::rotate::builder::sealed::Sealed for Server {}

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
        let interval = self.sources.reload_interval;
        let (material, files) = self.sources.resolve()?;
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
        let recipe = Recipe {
            material,
            policy,
            client_auth: self.side.client_auth,
            tls: self.tls,
        };
        let provider = crypto_provider();
        let stats = Arc::<ServerStats>::default();
        let live = LiveServer::new(recipe.generation(&provider)?, Arc::clone(&stats) as _);
        let build = |runner| live_server_config(&provider, &live, recipe.tls, runner);
        let (ours, handed_out) = (build(Runner::Ours)?, build(Runner::OtherLibrary)?);
        let shared = Arc::new(Shared {
            live,
            config: Arc::new(ours),
            handed_out: Arc::new(handed_out),
            recipe: Mutex::new(recipe),
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
pub(crate) struct Unwatched {
    pub(crate) shared: Arc<Shared>,
    pub(crate) files: crate::rotate::Files,
    pub(crate) interval: Option<Duration>,
}

impl Unwatched {
    fn watch(self) -> Arc<Shared> {
        Sources::watch(&self.shared, self.files, self.interval);
        self.shared
    }
}
