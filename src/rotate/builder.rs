//! The one builder both sides share: [`Builder<S>`], whose material setters (identity, trust,
//! CRLs, reloading, revocation options, TLS versions) are written once, and whose side-specific
//! setters and `bind`/`build` live beside their side ([`ServerBuilder`](crate::ServerBuilder),
//! [`ClientBuilder`](crate::ClientBuilder)).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::live::tls::TlsOptions;
use crate::material::{Crls, Identity, TrustBundle};
use crate::rotate::Sources;

/// The side a [`Builder`] configures: [`Server`](crate::Server) or [`Client`](crate::Client).
/// Sealed: only this crate implements it.
pub trait Side: sealed::Sealed {
    /// What only this side configures (its policy, limits, pool settings…).
    #[doc(hidden)]
    type Settings: Default + fmt::Debug;
    /// The builder's name in `Debug` output.
    #[doc(hidden)]
    const BUILDER: &'static str;
}

/// Implemented beside each side (`server/builder.rs`, `client/builder.rs`), so this module
/// names neither.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Configures a [`Server`](crate::Server) ([`ServerBuilder`](crate::ServerBuilder), from
/// [`Server::builder`](crate::Server::builder)) or a [`Client`](crate::Client)
/// ([`ClientBuilder`](crate::ClientBuilder), from [`Client::builder`](crate::Client::builder)).
///
/// The material setters below are the same on both sides. Material given as files is loaded
/// when the server binds or the client is built, and a load error is returned there; the files
/// are then watched ([`Builder::reload_interval`]).
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// let client = mtls::Client::builder()
///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
///     .trust(ca.trust()?)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until a server binds it or a client is built from it"]
pub struct Builder<S: Side> {
    pub(crate) sources: Sources,
    pub(crate) tls: TlsOptions,
    pub(crate) side: S::Settings,
}

impl<S: Side> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(S::BUILDER)
            .field("sources", &self.sources)
            .field("tls", &self.tls)
            .field("side", &self.side)
            .finish()
    }
}

impl<S: Side> Builder<S> {
    pub(crate) fn new() -> Self {
        Builder {
            sources: Sources::default(),
            tls: TlsOptions::default(),
            side: S::Settings::default(),
        }
    }

    /// The certificate chain and key we present to peers.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let identity = mtls::Identity::from_pem(cert.cert_pem().as_bytes(), cert.key_pem().as_bytes())?;
    /// let client = mtls::Client::builder()
    ///     .identity(identity)
    ///     .trust(ca.trust()?)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(mut self, identity: Identity) -> Self {
        self.sources.identity(identity);
        self
    }

    /// Loads our chain and key from PEM files, re-read when they change (see
    /// [`Builder::reload_interval`]). A load error is returned when the server binds or the
    /// client is built.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-identity-files-{}", std::process::id()));
    /// # let (cert, key) = ca.client("spiffe://example.org/orders")?.write_pem(&dir, "orders")?;
    /// let client = mtls::Client::builder()
    ///     .identity_files(&cert, &key) // e.g. "certs/orders.pem", "certs/orders.key"
    ///     .trust(ca.trust()?)
    ///     .build()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity_files(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.sources.identity_files(cert.as_ref(), key.as_ref());
        self
    }

    /// Our identity from a PKCS#12 keystore (as `keytool` and `openssl pkcs12` write them),
    /// re-read when the file changes like PEM files are. With several key entries, `alias`
    /// picks one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build() -> Result<(), mtls::LoadError> {
    /// let password = mtls::Password::from_file("secrets/keystore.pass")?;
    /// let builder = mtls::Server::builder()
    ///     .identity_pkcs12_file("certs/service.p12", password, None);
    /// # drop(builder);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "pkcs12")]
    pub fn identity_pkcs12_file(
        mut self,
        path: impl AsRef<Path>,
        password: crate::Password,
        alias: Option<&str>,
    ) -> Self {
        self.sources.identity_pkcs12(path.as_ref(), password, alias);
        self
    }

    /// Trust anchors from a PKCS#12 truststore, re-read when the file changes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build() -> Result<(), mtls::LoadError> {
    /// let password = mtls::Password::from_env("TRUSTSTORE_PASSWORD")?;
    /// let builder = mtls::Client::builder()
    ///     .trust_pkcs12_file("certs/trust.p12", password);
    /// # drop(builder);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "pkcs12")]
    pub fn trust_pkcs12_file(mut self, path: impl AsRef<Path>, password: crate::Password) -> Self {
        self.sources
            .trust_pkcs12(path.as_ref(), password, None, &[]);
        self
    }

    /// Adds CAs the peer's certificate may chain to (client certificates on a server, server
    /// certificates on a client). Call it once per bundle; a bundle bound with
    /// [`TrustBundle::for_trust_domain`] only validates identities of its trust domain.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let handle = mtls::Server::builder()
    ///     .identity(ca.server("inventory")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .authorize(mtls::Authorizer::any_verified())
    ///     .build_rustls_config()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust(mut self, trust: TrustBundle) -> Self {
        self.sources.trust(trust);
        self
    }

    /// Adds the CAs of a PEM file, re-read when it changes (see [`Builder::reload_interval`]).
    /// A load error is returned when the server binds or the client is built.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-trust-file-{}", std::process::id()));
    /// # let (ca_pem, _) = ca.write_pem(&dir, "ca")?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust_file(&ca_pem) // e.g. "certs/ca.pem"
    ///     .build()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_file(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.trust_file(path.as_ref(), None, &[]);
        self
    }

    /// Adds the CAs of a PEM file bound to a SPIFFE trust domain (federation), re-read when
    /// the file changes as [`trust_file`](Self::trust_file) is: the file a federation agent
    /// such as spiffe-helper writes for a partner domain, or a
    /// [`PemDirectory`](crate::rotate::PemDirectory)'s `ca-<trust domain>.crt`. Every version read
    /// is bound as [`TrustBundle::for_trust_domain`] binds, so the partner's CAs vouch for
    /// that domain's SPIFFE IDs and nothing else, however often they rotate. An invalid
    /// trust domain name is a load error, returned when the server binds or the client is
    /// built.
    ///
    /// # Examples
    ///
    /// ```
    /// // Loaded at `bind`; an error (a missing file, an invalid name) is returned there.
    /// let builder = mtls::Server::builder()
    ///     .trust_file("certs/ca.pem")
    ///     .trust_file_for_domain("certs/partner-bundle.pem", "partner.example");
    /// ```
    pub fn trust_file_for_domain(mut self, path: impl AsRef<Path>, trust_domain: &str) -> Self {
        self.sources
            .trust_file(path.as_ref(), Some(trust_domain), &[]);
        self
    }

    /// How often certificate, key, CA and CRL files are checked for changes; `None` turns
    /// reloading off. Default: every 5 seconds. A client reloads only when it is built inside
    /// a tokio runtime.
    ///
    /// Files are re-read through their paths, so a Kubernetes `..data` symlink swap or a
    /// rename is picked up. A changed set is validated as a whole ([`Rotate`](crate::Rotate))
    /// before it is swapped in; a broken or half-written set leaves the last good material in
    /// use and is retried on the next tick. New connections present the new certificate;
    /// established ones keep theirs until they close.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let every_minute = mtls::Server::builder().reload_interval(Some(Duration::from_secs(60)));
    /// let never = mtls::Client::builder().reload_interval(None);
    /// ```
    pub fn reload_interval(mut self, interval: Option<Duration>) -> Self {
        self.sources.reload_interval = interval;
        self
    }

    /// Adds certificate revocation lists (PEM or DER), checked for every peer certificate: the
    /// whole chain by default, and a certificate no CRL covers is refused. The file is re-read
    /// when it changes; a load error is returned when the server binds or the client is built.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-crl-file-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let crl = dir.join("ca.crl");
    /// # std::fs::write(&crl, ca.crl_pem(&[])?)?;
    /// let client = mtls::Client::builder()
    ///     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    ///     .trust(ca.trust()?)
    ///     .crl_file(&crl) // e.g. "certs/ca.crl"
    ///     .build()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.crl_file(path.as_ref());
        self
    }

    /// Adds certificate revocation lists, as [`Builder::crl_file`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let crls = ca.crl(&[])?; // or mtls::Crls::from_file("certs/ca.crl")?
    /// let builder = mtls::Server::builder().crls(crls);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crls(mut self, crls: Crls) -> Self {
        self.sources.crls(crls);
        self
    }

    /// Checks revocation of the leaf only, not of intermediates. Default: the whole chain.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().revocation_leaf_only();
    /// ```
    pub fn revocation_leaf_only(mut self) -> Self {
        self.tls.revocation.leaf_only = true;
        self
    }

    /// Accepts a certificate whose revocation status no CRL covers. Default: refuse it.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Client::builder().allow_unknown_revocation_status();
    /// ```
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.tls.revocation.allow_unknown_status = true;
        self
    }

    /// Uses a CRL past its `nextUpdate` as if it were current. Default: a peer whose status
    /// only an expired CRL gives is refused (`revocation_unknown`), as OpenSSL's CRL check
    /// does. [`CertificateStatus::crls`](crate::CertificateStatus::crls) shows each CRL's
    /// `nextUpdate` before it passes.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Server::builder().allow_expired_crls();
    /// ```
    pub fn allow_expired_crls(mut self) -> Self {
        self.tls.revocation.allow_expired_crls = true;
        self
    }

    /// Negotiates TLS 1.3 only. Default: TLS 1.3 and 1.2.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mtls::Client::builder().tls13_only();
    /// ```
    pub fn tls13_only(mut self) -> Self {
        self.tls.tls13_only = true;
        self
    }
}
