//! The client's side of the shared [`Builder`]: how the server is verified, timeouts, the
//! connection pool, and `build`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use tokio_rustls::TlsConnector;

use crate::client::connector::{Connector, ConnectorInner};
use crate::client::state::{ClientShared, Recipe};
use crate::client::{Client, ClientInner};
use crate::error::Error;
use crate::live::LiveClient;
use crate::live::tls::{Runner, client_generation, live_client_config};
use crate::policy::authorizer::Authorizer;
use crate::rotate::builder::{Builder, Side};
use crate::rotate::{ReloadState, Sources};
use crate::util::provider::crypto_provider;

/// Default limit on TCP connect plus TLS handshake.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::client::DEFAULT_CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
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

impl crate::rotate::builder::sealed::Sealed for Client {}

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
        let interval = self.sources.reload_interval;
        let (material, files) = self.sources.resolve()?;
        let provider = crypto_provider();
        let generation = client_generation(
            &provider,
            &material.identity,
            &material.effective_trust(),
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
            recipe: Mutex::new(Recipe {
                material,
                expect_server: self.side.expect_server,
                tls: self.tls,
            }),
            provider,
            reload: ReloadState::default(),
        });
        Sources::watch(&shared, files, interval);
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
