//! [`DevCa`]: a throwaway certificate authority for tests, examples and local development
//! (feature `dev`).
//!
//! It issues root and intermediate CAs and leaf certificates with SPIFFE IDs, DNS and IP SANs,
//! chosen lifetimes (expired and not yet valid included), and chosen key usages, entirely in
//! memory. Hand the results straight to the builders, or write them as PEM files.
//!
//! **Not for production.** Keys are generated in process memory and written without
//! encryption; there is no revocation service, audit or key protection.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::error::LoadError;
use crate::material::{Crls, Identity, TrustBundle};

/// Why the development CA could not issue or write something.
///
/// # Examples
///
/// ```
/// use mtls::dev::{DevCa, DevCaError, LeafSpec};
///
/// let ca = DevCa::new("test CA")?;
/// let err = ca.issue(&LeafSpec::server("na\u{ef}ve.example")).unwrap_err(); // not ASCII
/// assert!(matches!(err, DevCaError::Issue { .. }));
/// # Ok::<(), DevCaError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCaError {
    /// A name, SPIFFE ID or date the certificate generator refused.
    #[error("cannot issue `{subject}`: {detail}")]
    Issue {
        /// The subject being issued.
        subject: String,
        /// What the generator reported.
        detail: String,
    },
    /// A CA certificate or key given back to [`DevCa::from_pem`] could not be used.
    #[error(
        "cannot load the development CA: {detail}; give the PEM certificate and PEM key that DevCa::write_pem wrote"
    )]
    LoadCa {
        /// What went wrong.
        detail: String,
    },
    /// Writing a file failed.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The issued material did not load back (a bug if it happens).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A PKCS#12 store could not be written.
    #[error("cannot write the PKCS#12 store: {detail}")]
    Pkcs12 {
        /// What went wrong.
        detail: String,
    },
}

/// A certificate authority that lives in memory, for tests and development.
///
/// # Examples
///
/// ```
/// use mtls::dev::{DevCa, LeafSpec};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = DevCa::new("test CA")?;
/// let server = ca.issue(&LeafSpec::server("inventory"))?;
/// let client = ca.issue(&LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
/// let identity = client.identity()?;
/// assert_eq!(identity.chain().len(), 1);
/// assert!(server.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let trust = ca.trust()?;
/// assert_eq!(trust.certificates().len(), 1);
/// # Ok(()) }
/// ```
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// The intermediates from this CA up to (not including) the root, this CA first.
    chain_pem: String,
    /// The root's certificate (this CA's own for a root).
    root_pem: String,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("issuer", &self.issuer)
            .field("intermediate", &!self.chain_pem.is_empty())
            .finish_non_exhaustive()
    }
}

fn ca_params(name: &str) -> Result<CertificateParams, DevCaError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| issue_error(name, e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

fn issue_error(subject: &str, e: impl fmt::Display) -> DevCaError {
    DevCaError::Issue {
        subject: subject.to_owned(),
        detail: e.to_string(),
    }
}

impl DevCa {
    /// A new root CA named `name` (its common name), valid for ten years from an hour ago.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if key generation or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn new(name: &str) -> Result<DevCa, DevCaError> {
        let key = KeyPair::generate().map_err(|e| issue_error(name, e))?;
        let params = ca_params(name)?;
        let cert_pem = params
            .self_signed(&key)
            .map_err(|e| issue_error(name, e))?
            .pem();
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            root_pem: cert_pem.clone(),
            cert_pem,
            chain_pem: String::new(),
        })
    }

    /// An intermediate CA named `name`, signed by this CA. Leaves it issues carry the
    /// intermediates in their chain; [`DevCa::trust`] stays the root.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if key generation or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let root = mtls::dev::DevCa::new("root")?;
    /// let issuing = root.intermediate("issuing")?;
    /// let identity = issuing.client("spiffe://example.org/orders")?.identity()?;
    /// assert_eq!(identity.chain().len(), 2); // the leaf, then the intermediate
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn intermediate(&self, name: &str) -> Result<DevCa, DevCaError> {
        let key = KeyPair::generate().map_err(|e| issue_error(name, e))?;
        let params = ca_params(name)?;
        let cert_pem = params
            .signed_by(&key, self.issuer())
            .map_err(|e| issue_error(name, e))?
            .pem();
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            chain_pem: format!("{cert_pem}{}", self.chain_pem),
            cert_pem,
            root_pem: self.root_pem.clone(),
        })
    }

    /// Loads a root CA back from the certificate and key that [`DevCa::write_pem`] wrote, to
    /// go on issuing from it.
    ///
    /// # Errors
    ///
    /// [`DevCaError::LoadCa`] if the PEM is not a certificate and matching key.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::dev::DevCa;
    ///
    /// let ca = DevCa::new("test CA")?;
    /// let (cert_pem, key_pem) = (ca.cert_pem().to_owned(), ca.key_pem()); // e.g. read back from disk
    /// let again = DevCa::from_pem(&cert_pem, &key_pem)?;
    /// let peer = mtls::PeerIdentity::from_chain(again.server("localhost")?.identity()?.chain())?;
    /// assert_eq!(peer.issuer(), "CN=test CA");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevCa, DevCaError> {
        let load = |e: rcgen::Error| DevCaError::LoadCa {
            detail: e.to_string(),
        };
        // The key must be the certificate's: rustls compares it with the certificate's key.
        Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| {
            DevCaError::LoadCa {
                detail: e.to_string(),
            }
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(load)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(load)?;
        Ok(DevCa {
            issuer,
            cert_pem: cert_pem.to_owned(),
            chain_pem: String::new(),
            root_pem: cert_pem.to_owned(),
        })
    }

    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// This CA's own certificate, PEM.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root CA's certificate, PEM: what peers put in their trust bundle.
    ///
    /// # Examples
    ///
    /// ```
    /// let root = mtls::dev::DevCa::new("root")?;
    /// let issuing = root.intermediate("issuing")?;
    /// assert_eq!(issuing.root_pem(), root.cert_pem());
    /// assert_ne!(issuing.cert_pem(), root.cert_pem());
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// This CA's private key, PEM (unencrypted: development only).
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// This CA's root as a PKCS#12 truststore with one trusted entry named `alias` (marked
    /// trusted the way Java's keytool marks it, so Java lists it as a trustedCertEntry).
    ///
    /// # Errors
    ///
    /// [`DevCaError::Pkcs12`] if the store cannot be encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Password, TrustBundle};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let password = Password::new("changeit");
    /// let p12 = ca.truststore_pkcs12("test-ca", &password)?;
    /// let bundle = TrustBundle::from_pkcs12(&p12, &password)?;
    /// assert_eq!(bundle.certificates().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "pkcs12")]
    pub fn truststore_pkcs12(
        &self,
        alias: &str,
        password: &crate::Password,
    ) -> Result<Vec<u8>, DevCaError> {
        let root = self.trust()?;
        let certs: Vec<(String, rustls_pki_types::CertificateDer<'static>)> = root
            .certificates()
            .iter()
            .map(|c| (alias.to_owned(), c.clone()))
            .collect();
        crate::material::pkcs12::write::truststore(&certs, password)
            .map_err(|detail| DevCaError::Pkcs12 { detail })
    }

    /// A trust bundle holding the root CA.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Load`] never in practice (the root is a CA certificate).
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let trust = ca.trust()?;
    /// assert_eq!(trust.certificates().len(), 1);
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn trust(&self) -> Result<TrustBundle, DevCaError> {
        Ok(TrustBundle::from_pem(self.root_pem.as_bytes())?)
    }

    /// Issues a leaf certificate as `spec` describes, with a fresh ECDSA P-256 key.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if a name is not valid for its SAN type (for example a DNS name
    /// with spaces) or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::dev::{DevCa, LeafSpec};
    ///
    /// let ca = DevCa::new("test CA")?;
    /// let cert = ca.issue(&LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn issue(&self, spec: &LeafSpec) -> Result<DevCert, DevCaError> {
        let subject = spec.common_name.as_str();
        let err = |e: rcgen::Error| issue_error(subject, e);
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, subject);
        for id in &spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI(id.as_str().try_into().map_err(err)?));
        }
        for dns in &spec.dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into().map_err(err)?));
        }
        for ip in &spec.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for email in &spec.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(email.as_str().try_into().map_err(err)?));
        }
        params
            .distinguished_name
            .push(DnType::OrganizationName, spec.organization.as_str());
        params.extended_key_usages = spec.usage.ekus();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Some(serial) = &spec.serial {
            params.serial_number = Some(SerialNumber::from_slice(serial));
        }
        params.not_before = to_offset(spec.not_before, subject)?;
        params.not_after = to_offset(spec.not_after, subject)?;
        let cert = params.signed_by(&key, self.issuer()).map_err(err)?;
        Ok(DevCert {
            cert_pem: format!("{}{}", cert.pem(), self.chain_pem),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
            der: cert.der().to_vec(),
        })
    }

    /// A server certificate for `name` (also `localhost`, `127.0.0.1` and `::1`), valid for
    /// a week. Shorthand for `issue(&LeafSpec::server(name))`.
    ///
    /// # Errors
    ///
    /// As [`DevCa::issue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.server("inventory")?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["inventory", "localhost"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server(&self, name: &str) -> Result<DevCert, DevCaError> {
        self.issue(&LeafSpec::server(name))
    }

    /// A client certificate with the SPIFFE ID `spiffe_id` (its path is the common name),
    /// valid for a week. Shorthand for `issue(&LeafSpec::client(..).spiffe_id(spiffe_id))`.
    ///
    /// # Errors
    ///
    /// As [`DevCa::issue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(&self, spiffe_id: &str) -> Result<DevCert, DevCaError> {
        let name = spiffe_id.rsplit('/').next().unwrap_or(spiffe_id);
        self.issue(&LeafSpec::client(name).spiffe_id(spiffe_id))
    }

    /// A CRL signed by this CA that revokes `revoked`, valid from an hour ago for a week.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let stolen = ca.client("spiffe://example.org/stolen")?;
    /// let crls = ca.crl(&[&stolen])?;
    /// let trust = ca.trust()?.with_crls(crls);
    /// assert_eq!(trust.crls().len(), 1);
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn crl(&self, revoked: &[&DevCert]) -> Result<Crls, DevCaError> {
        let mut serials = Vec::new();
        for cert in revoked {
            serials.push(cert.serial().map_err(|e| issue_error("CRL", e))?);
        }
        let serials: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
        Ok(Crls::from_bytes(self.crl_pem(&serials)?.as_bytes())?)
    }

    /// A PEM CRL signed by this CA that revokes the given serial numbers (big-endian bytes),
    /// valid from an hour ago for a week.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let serial: &[u8] = &[0x12, 0x34];
    /// let pem = ca.crl_pem(&[serial])?;
    /// assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crl_pem(&self, revoked_serials: &[&[u8]]) -> Result<String, DevCaError> {
        let next_update = std::time::SystemTime::now() + std::time::Duration::from_secs(7 * 86_400);
        self.crl_pem_until(revoked_serials, next_update)
    }

    /// As [`DevCa::crl_pem`], with the given `nextUpdate` (in the past, for a stale CRL). Its
    /// `thisUpdate` is an hour before the earlier of now and `next_update`.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let stale = ca.crl_pem_until(&[], SystemTime::now() - Duration::from_secs(3600))?;
    /// let crls = mtls::Crls::from_bytes(stale.as_bytes())?; // loads; refused in use by default
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crl_pem_until(
        &self,
        revoked_serials: &[&[u8]],
        next_update: std::time::SystemTime,
    ) -> Result<String, DevCaError> {
        let err = |e: rcgen::Error| issue_error("CRL", e);
        let now = OffsetDateTime::now_utc();
        let next_update = OffsetDateTime::from(next_update);
        let params = CertificateRevocationListParams {
            this_update: now.min(next_update) - time::Duration::hours(1),
            next_update,
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(self.issuer())
            .map_err(err)?
            .pem()
            .map_err(err)
    }

    /// Writes this CA's certificate and key as `<name>.pem` and `<name>.key` in `dir` (which
    /// is created if missing); the key file is readable by its owner only (mode 0600 on
    /// Unix). Returns both paths.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Write`] naming the file that could not be written.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-devca-write-pem-{}", std::process::id()));
    /// let (cert, key) = ca.write_pem(&dir, "ca")?; // dir/ca.pem and dir/ca.key
    /// let trust = mtls::TrustBundle::from_pem_file(&cert)?;
    /// assert_eq!(key, dir.join("ca.key"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_pem(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), DevCaError> {
        write_pair(
            dir,
            name,
            &format!("{}{}", self.cert_pem, self.chain_pem_after_self()),
            &zeroize::Zeroizing::new(self.key_pem()),
        )
    }

    fn chain_pem_after_self(&self) -> &str {
        self.chain_pem
            .strip_prefix(self.cert_pem.as_str())
            .unwrap_or("")
    }
}

fn to_offset(t: SystemTime, subject: &str) -> Result<OffsetDateTime, DevCaError> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| issue_error(subject, format!("date out of range: {e}")))
}

/// Writes `<name>.pem` and `<name>.key` (owner-only) into `dir`.
fn write_pair(
    dir: &Path,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(PathBuf, PathBuf), DevCaError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| DevCaError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, cert_pem).map_err(write_err(&cert))?;
    write_private(&key, key_pem).map_err(write_err(&key))?;
    Ok((cert, key))
}

/// Creates (or truncates) `path` readable by its owner only, then writes `contents`.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    // A new file every time: an existing one (or a symlink in its place) could carry a wider
    // mode or open descriptors.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        options.open(path)?.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(contents.as_bytes())
    }
}

/// Which extended key usages a leaf carries.
///
/// # Examples
///
/// ```
/// use rustls::server::danger::ClientCertVerifier;
/// use mtls::dev::{LeafSpec, Usage};
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let verifier = mtls::verify::ClientIdentityVerifier::new(
/// #     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(), mtls::ClientAuth::Required, Default::default())?;
/// let mesh = ca.issue(&LeafSpec::new("orders").usage(Usage::Both))?;
/// let leaf = mtls::CertificateDer::from(mesh.der().to_vec());
/// let now = rustls::pki_types::UnixTime::now();
/// assert!(verifier.verify_client_cert(&leaf, &[], now).is_ok()); // usable as a client
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Usage {
    /// TLS server only (`serverAuth`): refused when presented as a client.
    Server,
    /// TLS client only (`clientAuth`): refused when presented as a server.
    Client,
    /// Both, as service meshes issue them.
    Both,
}

impl Usage {
    fn ekus(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// What to put in a leaf certificate: a builder for [`DevCa::issue`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mtls::dev::{DevCa, LeafSpec, Usage};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = DevCa::new("test CA")?;
/// let expired = ca.issue(&LeafSpec::client("old").expired())?;
/// let workload = ca.issue(
///     &LeafSpec::new("billing")
///         .spiffe_id("spiffe://example.org/ns/prod/sa/billing")
///         .dns("billing.prod.svc")
///         .ip("10.0.0.7".parse()?)
///         .usage(Usage::Both)
///         .valid_for(Duration::from_secs(3600)),
/// )?;
/// let peer = mtls::PeerIdentity::from_chain(workload.identity()?.chain())?;
/// assert_eq!(peer.spiffe_id().unwrap().path(), "/ns/prod/sa/billing");
/// # drop(expired);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LeafSpec {
    common_name: String,
    uris: Vec<String>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    emails: Vec<String>,
    organization: String,
    usage: Usage,
    serial: Option<Vec<u8>>,
    not_before: SystemTime,
    not_after: SystemTime,
}

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

impl LeafSpec {
    /// A leaf with common name `common_name`, both usages, no SANs, valid from an hour ago for
    /// a week (long enough that the 24-hour renewal warning stays quiet).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::new("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.subject(), "CN=orders, O=mtls development");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(common_name: &str) -> LeafSpec {
        let now = SystemTime::now();
        LeafSpec {
            common_name: common_name.to_owned(),
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            emails: Vec::new(),
            organization: "mtls development".to_owned(),
            usage: Usage::Both,
            serial: None,
            not_before: now - HOUR,
            not_after: now + 7 * DAY,
        }
    }

    /// A server leaf: `serverAuth` only, with DNS names `name` and `localhost` and the IP
    /// addresses `127.0.0.1` and `::1`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::server("inventory"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["inventory", "localhost"]);
    /// assert_eq!(peer.ip_addresses().len(), 2); // 127.0.0.1 and ::1
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server(name: &str) -> LeafSpec {
        let mut spec = LeafSpec::new(name).usage(Usage::Server).dns(name);
        if name != "localhost" {
            spec = spec.dns("localhost");
        }
        spec.ip(IpAddr::from([127, 0, 0, 1]))
            .ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]))
    }

    /// A client leaf: `clientAuth` only, no SANs until you add them.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// assert!(peer.dns_names().is_empty() && peer.uris().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(name: &str) -> LeafSpec {
        LeafSpec::new(name).usage(Usage::Client)
    }

    /// Adds a `spiffe://` URI SAN (added as given, so tests can issue malformed IDs too).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.spiffe_id().map(|id| id.as_str()), Some("spiffe://example.org/orders"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_id(self, id: &str) -> LeafSpec {
        self.uri(id)
    }

    /// Adds a URI SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").uri("https://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.uris(), ["https://example.org/orders"]);
    /// assert!(peer.spiffe_id().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uri(mut self, uri: &str) -> LeafSpec {
        self.uris.push(uri.to_owned());
        self
    }

    /// Adds a DNS SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("db").dns("db.internal"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["db.internal"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dns(mut self, name: &str) -> LeafSpec {
        self.dns.push(name.to_owned());
        self
    }

    /// Adds an IP address SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("sensor").ip("10.0.0.7".parse()?))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.ip_addresses(), ["10.0.0.7".parse::<std::net::IpAddr>()?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ip(mut self, ip: IpAddr) -> LeafSpec {
        self.ips.push(ip);
        self
    }

    /// Adds an email (rfc822Name) SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("ops").email("ops@example.org"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.emails(), ["ops@example.org"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn email(mut self, email: &str) -> LeafSpec {
        self.emails.push(email.to_owned());
        self
    }

    /// Sets the subject's organization (O); `mtls development` by default.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").organization("Example"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.subject(), "CN=orders, O=Example");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn organization(mut self, organization: &str) -> LeafSpec {
        self.organization = organization.to_owned();
        self
    }

    /// Sets the extended key usages.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::server::danger::ClientCertVerifier;
    /// use mtls::dev::{LeafSpec, Usage};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let verifier = mtls::verify::ClientIdentityVerifier::new(
    /// #     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(), mtls::ClientAuth::Required, Default::default())?;
    /// let web = ca.issue(&LeafSpec::new("web").usage(Usage::Server))?;
    /// let leaf = mtls::CertificateDer::from(web.der().to_vec());
    /// let now = rustls::pki_types::UnixTime::now();
    /// assert!(verifier.verify_client_cert(&leaf, &[], now).is_err()); // serverAuth only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usage(mut self, usage: Usage) -> LeafSpec {
        self.usage = usage;
        self
    }

    /// Sets the serial number (big-endian bytes); random otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").serial(&[0x12, 0x34]))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.serial(), "1234");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serial(mut self, serial: &[u8]) -> LeafSpec {
        self.serial = Some(serial.to_vec());
        self
    }

    /// Valid from now for `lifetime`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").valid_for(Duration::from_secs(3600)))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.not_after().duration_since(peer.not_before())?, Duration::from_secs(3600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn valid_for(mut self, lifetime: Duration) -> LeafSpec {
        self.not_before = SystemTime::now();
        self.not_after = self.not_before + lifetime;
        self
    }

    /// Valid from `not_before` to `not_after`, exactly.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let from = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let spec = mtls::dev::LeafSpec::client("orders").validity(from, from + Duration::from_secs(86_400));
    /// let peer = mtls::PeerIdentity::from_chain(ca.issue(&spec)?.identity()?.chain())?;
    /// assert_eq!(peer.not_before(), from);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> LeafSpec {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Expired yesterday (valid from three days ago to one day ago).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("old").expired())?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(peer.not_after() < std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expired(self) -> LeafSpec {
        let now = SystemTime::now();
        self.validity(now - 3 * DAY, now - DAY)
    }

    /// Valid from tomorrow for two days.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("early").not_yet_valid())?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(peer.not_before() > std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn not_yet_valid(self) -> LeafSpec {
        let now = SystemTime::now();
        self.validity(now + DAY, now + 3 * DAY)
    }
}

/// An issued leaf: its PEM chain (leaf first, then any intermediates), its PEM key and the
/// leaf's DER.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// let cert: mtls::dev::DevCert = ca.client("spiffe://example.org/orders")?;
/// let identity = cert.identity()?;
/// assert_eq!(identity.chain()[0].as_ref(), cert.der());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DevCert {
    cert_pem: String,
    /// Wiped when dropped.
    key_pem: zeroize::Zeroizing<String>,
    der: Vec<u8>,
}

impl fmt::Debug for DevCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCert")
            .field("der_len", &self.der.len())
            .finish_non_exhaustive()
    }
}

impl DevCert {
    /// The chain as PEM, leaf first.
    ///
    /// # Examples
    ///
    /// ```
    /// let issuing = mtls::dev::DevCa::new("root")?.intermediate("issuing")?;
    /// let cert = issuing.client("spiffe://example.org/orders")?;
    /// assert_eq!(cert.cert_pem().matches("BEGIN CERTIFICATE").count(), 2); // leaf, intermediate
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PKCS#8 PEM (unencrypted).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf certificate's DER.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let leaf = mtls::CertificateDer::from(cert.der().to_vec());
    /// let peer = mtls::PeerIdentity::from_chain(&[leaf])?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The identity to give a server or client builder.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Load`] if the material does not load (for instance a certificate larger
    /// than rustls reads).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let identity = ca.client("spiffe://example.org/orders")?.identity()?;
    /// let client = mtls::Client::builder().identity(identity).trust(ca.trust()?).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(&self) -> Result<Identity, DevCaError> {
        Ok(Identity::from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )?)
    }

    /// Writes `<name>.pem` (the chain) and `<name>.key` (owner-only, mode 0600 on Unix) into
    /// `dir`, creating it if missing. Returns both paths, ready for
    /// [`ServerBuilder::identity_files`](crate::ServerBuilder::identity_files).
    ///
    /// # Errors
    ///
    /// [`DevCaError::Write`] naming the file that could not be written.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-devcert-write-pem-{}", std::process::id()));
    /// let (cert, key) = ca.server("localhost")?.write_pem(&dir, "server")?;
    /// let identity = mtls::Identity::from_pem_files(&cert, &key)?; // dir/server.pem, dir/server.key
    /// assert_eq!(cert, dir.join("server.pem"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_pem(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), DevCaError> {
        write_pair(dir, name, &self.cert_pem, &self.key_pem)
    }

    /// This certificate, its chain and its key as a PKCS#12 keystore (the key entry named
    /// `alias`), encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC) and an HMAC-SHA256 MAC, as
    /// Java's keytool and OpenSSL 3 read them.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Pkcs12`] if the store cannot be encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Identity, Password};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let password = Password::new("changeit");
    /// let p12 = cert.to_pkcs12("orders", &password)?;
    /// let identity = Identity::from_pkcs12(&p12, &password, Some("orders"))?;
    /// assert_eq!(identity.chain()[0].as_ref(), cert.der());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "pkcs12")]
    pub fn to_pkcs12(
        &self,
        alias: &str,
        password: &crate::Password,
    ) -> Result<Vec<u8>, DevCaError> {
        use rustls_pki_types::pem::PemObject;
        let bad = |detail: String| DevCaError::Pkcs12 { detail };
        let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map(zeroize::Zeroizing::new)
            .map_err(|e| bad(e.to_string()))?;
        crate::material::pkcs12::write::keystore(&chain, key.secret_pkcs8_der(), alias, password)
            .map_err(bad)
    }

    fn serial(&self) -> Result<Vec<u8>, String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&self.der).map_err(|e| e.to_string())?;
        Ok(cert.raw_serial().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_carry_what_the_spec_says() {
        let ca = DevCa::new("root").unwrap();
        let inter = ca.intermediate("issuing").unwrap();
        let cert = inter
            .issue(
                &LeafSpec::client("orders")
                    .spiffe_id("spiffe://example.org/orders")
                    .dns("orders.local")
                    .serial(&[0x12, 0x34]),
            )
            .unwrap();
        let identity = cert.identity().unwrap();
        assert_eq!(identity.chain().len(), 2, "leaf and intermediate");
        let peer = crate::PeerIdentity::from_chain(identity.chain()).unwrap();
        assert_eq!(
            peer.spiffe_id().unwrap().as_str(),
            "spiffe://example.org/orders"
        );
        assert_eq!(peer.dns_names(), ["orders.local"]);
        assert_eq!(peer.serial(), "1234");
        assert!(peer.issuer().contains("issuing"));
    }

    #[test]
    fn lifetimes_are_exact() {
        let ca = DevCa::new("root").unwrap();
        let expired = ca.issue(&LeafSpec::client("old").expired()).unwrap();
        let peer = crate::PeerIdentity::from_chain(expired.identity().unwrap().chain()).unwrap();
        assert!(peer.not_after() < SystemTime::now());
        let early = ca.issue(&LeafSpec::client("new").not_yet_valid()).unwrap();
        let peer = crate::PeerIdentity::from_chain(early.identity().unwrap().chain()).unwrap();
        assert!(peer.not_before() > SystemTime::now());
    }

    #[test]
    fn a_ca_written_and_loaded_back_issues_leaves_that_chain_to_it() {
        let dir = std::env::temp_dir().join(format!("mtls-devca-{}", std::process::id()));
        let ca = DevCa::new("persisted").unwrap();
        let (cert, key) = ca.write_pem(&dir, "ca").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = DevCa::from_pem(
            &std::fs::read_to_string(&cert).unwrap(),
            &std::fs::read_to_string(&key).unwrap(),
        )
        .unwrap();
        let leaf = again.issue(&LeafSpec::server("svc")).unwrap();
        let peer = crate::PeerIdentity::from_chain(leaf.identity().unwrap().chain()).unwrap();
        assert_eq!(peer.issuer(), "CN=persisted");
        // A key that is not the certificate's is refused.
        let other = DevCa::new("other").unwrap();
        assert!(matches!(
            DevCa::from_pem(ca.cert_pem(), &other.key_pem()),
            Err(DevCaError::LoadCa { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_bad_dns_name_is_an_error_not_a_panic() {
        let ca = DevCa::new("root").unwrap();
        let err = ca
            .issue(&LeafSpec::server("na\u{ef}ve.example"))
            .unwrap_err();
        assert!(matches!(err, DevCaError::Issue { .. }), "{err:?}");
    }
}

#[cfg(all(test, feature = "pkcs12"))]
mod pkcs12_tests {
    /// What the store is protected with, as promised: found by the algorithms' DER OIDs.
    #[test]
    fn keystores_use_pbes2_aes_256_cbc_and_an_hmac_sha256_mac() {
        let ca = super::DevCa::new("test CA").unwrap();
        let password = crate::Password::new("changeit");
        let keystore = ca
            .client("spiffe://example.org/orders")
            .unwrap()
            .to_pkcs12("orders", &password)
            .unwrap();
        let truststore = ca.truststore_pkcs12("test-ca", &password).unwrap();
        let has = |der: &[u8], oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        // 2.16.840.1.101.3.4.1.42 (aes256-CBC), 1.2.840.113549.1.5.13 (PBES2),
        // 1.2.840.113549.2.9 (hmacWithSHA256), 2.16.840.1.101.3.4.2.1 (SHA-256, the MAC's).
        let aes256_cbc = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
        let pbes2 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
        let hmac_sha256 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
        let sha256 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        for oid in [&aes256_cbc[..], &pbes2, &hmac_sha256, &sha256] {
            assert!(has(&keystore, oid), "keystore lacks {oid:02x?}");
        }
        assert!(has(&truststore, &sha256), "the truststore's MAC is SHA-256");
        // No legacy 3DES or RC2 (pbeWithSHAAnd3-KeyTripleDES-CBC, pbeWithSHAAnd40BitRC2-CBC).
        let legacy = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
        assert!(!has(&keystore, &legacy) && !has(&truststore, &legacy));
    }
}
