//! [`ServerHandle`](crate::ServerHandle): changes to a running server.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::ToSocketAddrs;

use crate::error::Error;
use crate::material::{Identity, TrustBundle};
use crate::policy::authorizer::Authorizer;
use crate::rotate::status::{CertificateStatus, status};
use crate::rotate::{Rotate, Update, rotate};
use crate::server::stats::ServerStats;

use crate::server::state::Shared;

/// Changes a running [`Server`](crate::Server): get one with [`Server::handle`](crate::Server::handle) before serving.
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
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    #[cfg(test)]
    pub(crate) fn live(&self) -> &crate::live::LiveServer {
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
    /// [`HealthListener`](crate::server::HealthListener) for the routes and what to bind it to. It
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
    ) -> Result<crate::server::HealthListener, Error> {
        crate::server::probes::serve_health(self.clone(), addr).await
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
    /// atomically on every rotation. See [`PemDirectory`](crate::rotate::PemDirectory).
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
    pub fn pem_directory(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<crate::rotate::PemDirectory, Error> {
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
    /// What only [`Server`](crate::Server) adds: the [`PeerIdentity`](crate::PeerIdentity) in each request,
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
