//! Our own identity ([`Identity`]: certificate chain and private key) and the CAs we trust
//! ([`TrustBundle`]), loaded from PEM files, PEM bytes or DER, and checked as they load.

pub(crate) mod crl_info;
#[cfg(feature = "pkcs12")]
pub(crate) mod pkcs12;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::error::PolicyError;
use crate::error::{LoadError, Origin};
use crate::spiffe::is_trust_domain;
use crate::util::provider::crypto_provider;

/// Our own certificate chain and the private key of its leaf.
///
/// The key is checked against the leaf certificate when the identity is built, so a mismatched
/// pair fails at start-up, not at the first handshake. Cloning is cheap.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> Result<(), mtls::LoadError> {
/// let identity = mtls::Identity::from_pem_files("certs/orders.pem", "certs/orders.key")?;
/// assert!(!identity.chain().is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Identity {
    certified: Arc<CertifiedKey>,
    /// The key as loaded, kept only to write it back out (`PemDirectory`); never printed, and
    /// wiped when the last clone of the identity is dropped.
    key: Arc<Zeroizing<PrivateKeyDer<'static>>>,
}

impl Identity {
    /// Loads the chain (leaf first) from `cert` and the private key from `key`, both PEM files.
    ///
    /// Both may be the same file. Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] when a file is missing or unreadable, [`LoadError::NoCertificate`],
    /// [`LoadError::NoPrivateKey`], [`LoadError::UnsupportedKey`], [`LoadError::KeyMismatch`],
    /// [`LoadError::Pem`] or [`LoadError::InvalidCertificate`] for bad content.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-identity-from-pem-files-{}", std::process::id()));
    /// # let (cert, key) = ca.server("localhost")?.write_pem(&dir, "server")?;
    /// let identity = mtls::Identity::from_pem_files(&cert, &key)?; // e.g. "certs/server.pem", "certs/server.key"
    /// assert_eq!(identity.chain().len(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, LoadError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        // Both wiped when dropped: the certificate file may hold the key too.
        let cert_pem = Zeroizing::new(read(cert)?);
        let key_pem = Zeroizing::new(read(key)?);
        Self::load(
            &cert_pem,
            Origin::File(cert.to_owned()),
            &key_pem,
            Origin::File(key.to_owned()),
        )
    }

    /// Builds an identity from PEM bytes: the chain (leaf first) and the private key.
    ///
    /// # Errors
    ///
    /// As [`Identity::from_pem_files`], without [`LoadError::Read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let identity = mtls::Identity::from_pem(cert.cert_pem().as_bytes(), cert.key_pem().as_bytes())?;
    /// assert_eq!(identity.chain().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, LoadError> {
        Self::load(
            cert_pem,
            Origin::Memory("certificate chain"),
            key_pem,
            Origin::Memory("private key"),
        )
    }

    /// Builds an identity from DER: the chain (leaf first) and the private key.
    ///
    /// # Errors
    ///
    /// [`LoadError::NoCertificate`] for an empty chain, [`LoadError::InvalidCertificate`],
    /// [`LoadError::UnsupportedKey`] and [`LoadError::KeyMismatch`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::pki_types::pem::PemObject;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let chain = vec![mtls::CertificateDer::from(cert.der().to_vec())];
    /// let key = mtls::PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes())?;
    /// let identity = mtls::Identity::from_der(chain, key)?;
    /// assert_eq!(identity.chain()[0].as_ref(), cert.der());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, LoadError> {
        Self::build(
            chain,
            key,
            Origin::Memory("certificate chain"),
            Origin::Memory("private key"),
        )
    }

    /// [`Identity::from_der`] with the origins to name in errors.
    pub(crate) fn from_der_with_origin(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_origin: Origin,
        key_origin: Origin,
    ) -> Result<Self, LoadError> {
        Self::build(chain, key, cert_origin, key_origin)
    }

    fn load(
        cert_pem: &[u8],
        cert_origin: Origin,
        key_pem: &[u8],
        key_origin: Origin,
    ) -> Result<Self, LoadError> {
        let chain = parse_certificates(cert_pem, &cert_origin)?;
        let key = parse_private_key(key_pem, &key_origin)?;
        Self::build(chain, key, cert_origin, key_origin)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_origin: Origin,
        key_origin: Origin,
    ) -> Result<Self, LoadError> {
        // Wiped on every path out, this one copy is what the identity keeps.
        let key = Zeroizing::new(key);
        if chain.is_empty() {
            return Err(LoadError::NoCertificate {
                origin: cert_origin,
            });
        }
        for (i, cert) in chain.iter().enumerate() {
            parse_x509(cert, &cert_origin, i + 1)?;
        }
        let provider = crypto_provider();
        // rustls wipes the copy it is given once the provider has parsed it.
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| LoadError::UnsupportedKey {
                origin: key_origin.clone(),
                detail: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(LoadError::KeyMismatch {
                    cert: cert_origin,
                    key: key_origin,
                });
            }
            // The leaf could not be read for its public key (webpki reads less than
            // x509-parser does: no single DER value over 64 KiB, for one): it is the
            // certificate that is unusable, not the key.
            Err(rustls::Error::InvalidCertificate(e)) => {
                return Err(LoadError::InvalidCertificate {
                    origin: cert_origin,
                    index: 1,
                    detail: format!("rustls cannot read it: {e:?}"),
                });
            }
            // Both providers report the public key of every key type they load, so an
            // unknown answer means a key we cannot vouch for: refuse it rather than guess.
            Err(e) => {
                return Err(LoadError::UnsupportedKey {
                    origin: key_origin,
                    detail: format!("cannot check the key against the certificate: {e}"),
                });
            }
        }
        Ok(Identity {
            certified: Arc::new(certified),
            key: Arc::new(key),
        })
    }

    /// The certificate chain, leaf first.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let issuing = ca.intermediate("issuing")?;
    /// let identity = issuing.client("spiffe://example.org/orders")?.identity()?;
    /// assert_eq!(identity.chain().len(), 2); // leaf first, then the intermediate
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    pub(crate) fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self
            .chain()
            .first()
            .and_then(|c| X509Certificate::from_der(c).ok())
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        // The private key never appears here.
        f.debug_struct("Identity")
            .field("leaf", &subject)
            .field("chain_len", &self.chain().len())
            .finish_non_exhaustive()
    }
}

/// The CA certificates we verify peers against.
///
/// Every certificate must be a CA: a leaf in a trust bundle is almost always a mistake that would
/// trust exactly one peer, so it is refused with a clear error. A certificate counts as a leaf
/// when its basicConstraints say `cA=false`, or when it has none and was issued by another
/// certificate; a self-issued root without basicConstraints is accepted.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> Result<(), mtls::LoadError> {
/// let trust = mtls::TrustBundle::from_pem_file("certs/ca.pem")?;
/// assert!(!trust.certificates().is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TrustBundle {
    certs: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    trust_domain: Option<String>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TrustBundle {
    /// Loads every certificate of a PEM file as a trust anchor.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`], [`LoadError::EmptyTrustBundle`], [`LoadError::NotCa`],
    /// [`LoadError::Pem`] and [`LoadError::InvalidCertificate`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-trust-from-pem-file-{}", std::process::id()));
    /// # let (ca_pem, _) = ca.write_pem(&dir, "ca")?;
    /// let trust = mtls::TrustBundle::from_pem_file(&ca_pem)?; // e.g. "certs/ca.pem"
    /// assert_eq!(trust.certificates().len(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let pem = read(path)?;
        Self::load(&pem, Origin::File(path.to_owned()))
    }

    /// Loads every certificate of several PEM files as trust anchors.
    ///
    /// # Errors
    ///
    /// As [`TrustBundle::from_pem_file`], for the first file that fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use mtls::dev::DevCa;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-trust-from-pem-files-{}", std::process::id()));
    /// # let (old_pem, _) = DevCa::new("old CA")?.write_pem(&dir, "old")?;
    /// # let (new_pem, _) = DevCa::new("new CA")?.write_pem(&dir, "new")?;
    /// let trust = mtls::TrustBundle::from_pem_files([&old_pem, &new_pem])?; // e.g. ["old-ca.pem", "new-ca.pem"]
    /// assert_eq!(trust.certificates().len(), 2);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem_files<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, LoadError> {
        let mut certs = Vec::new();
        let mut crls = Vec::new();
        let mut last = Origin::Memory("CA bundle");
        for path in paths {
            let path = path.as_ref();
            let bundle = Self::from_pem_file(path)?;
            certs.extend(bundle.certs);
            crls.extend(bundle.crls);
            last = Origin::File(path.to_owned());
        }
        Ok(Self::build(certs, last)?.with_crls(Crls(crls)))
    }

    /// Loads every certificate of PEM bytes as a trust anchor.
    ///
    /// # Errors
    ///
    /// As [`TrustBundle::from_pem_file`], without [`LoadError::Read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let trust = mtls::TrustBundle::from_pem(ca.root_pem().as_bytes())?;
    /// assert_eq!(trust.certificates().len(), 1);
    /// let leaf = ca.client("spiffe://example.org/orders")?;
    /// let refused = mtls::TrustBundle::from_pem(leaf.cert_pem().as_bytes());
    /// assert!(matches!(refused, Err(mtls::LoadError::NotCa { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(pem: &[u8]) -> Result<Self, LoadError> {
        Self::load(pem, Origin::Memory("CA bundle"))
    }

    /// Builds a bundle from DER certificates.
    ///
    /// # Errors
    ///
    /// [`LoadError::EmptyTrustBundle`], [`LoadError::NotCa`] and [`LoadError::InvalidCertificate`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let der = ca.trust()?.certificates().to_vec();
    /// let trust = mtls::TrustBundle::from_der(der)?;
    /// assert!(mtls::TrustBundle::from_der(Vec::new()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<Self, LoadError> {
        Self::build(certs, Origin::Memory("CA bundle"))
    }

    fn load(pem: &[u8], origin: Origin) -> Result<Self, LoadError> {
        let certs = match parse_certificates(pem, &origin) {
            Err(LoadError::NoCertificate { origin }) => {
                return Err(LoadError::EmptyTrustBundle { origin });
            }
            other => other?,
        };
        // CRLs may travel in the same PEM file as the CAs that issued them.
        let crls = Crls::parse_pem(pem, &origin, false)?;
        Ok(Self::build(certs, origin)?.with_crls(crls))
    }

    /// Adds certificate revocation lists. Once a bundle given to a builder holds CRLs,
    /// revocation is checked for every peer: the whole chain by default, and a certificate
    /// whose status no CRL covers is refused unless unknown status is explicitly allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let stolen = ca.client("spiffe://example.org/stolen")?;
    /// let trust = ca.trust()?.with_crls(ca.crl(&[&stolen])?);
    /// assert_eq!(trust.crls().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_crls(mut self, crls: Crls) -> Self {
        self.crls.extend(crls.0);
        self
    }

    /// The same anchors without revocation lists.
    pub(crate) fn without_crls(&self) -> Self {
        TrustBundle {
            crls: Vec::new(),
            ..self.clone()
        }
    }

    /// Whether both hold the same anchors, trust-domain binding and revocation lists.
    pub(crate) fn same_as(&self, other: &TrustBundle) -> bool {
        self.certs == other.certs
            && self.trust_domain == other.trust_domain
            && self.crls == other.crls
    }

    /// The revocation lists this bundle carries.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.trust()?.crls().is_empty());
    /// let trust = ca.trust()?.with_crls(ca.crl(&[])?);
    /// assert_eq!(trust.crls().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crls(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.crls
    }

    /// A bundle of store entries: a non-CA entry is named by its alias.
    pub(crate) fn from_der_named(
        entries: Vec<(CertificateDer<'static>, Option<String>)>,
        origin: Origin,
    ) -> Result<Self, LoadError> {
        let aliases: Vec<Option<String>> = entries.iter().map(|(_, a)| a.clone()).collect();
        let certs = entries.into_iter().map(|(c, _)| c).collect();
        Self::build(certs, origin).map_err(|e| match e {
            LoadError::NotCa {
                origin,
                index,
                subject,
            } => LoadError::NotCaEntry {
                origin,
                alias: aliases
                    .get(index - 1)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| subject.clone()),
                subject,
            },
            other => other,
        })
    }

    fn build(certs: Vec<CertificateDer<'static>>, origin: Origin) -> Result<Self, LoadError> {
        if certs.is_empty() {
            return Err(LoadError::EmptyTrustBundle { origin });
        }
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            let parsed = parse_x509(cert, &origin, i + 1)?;
            if is_leaf(&parsed) {
                return Err(LoadError::NotCa {
                    origin,
                    index: i + 1,
                    subject: parsed.subject().to_string(),
                });
            }
            roots
                .add(cert.clone())
                .map_err(|e| LoadError::InvalidCertificate {
                    origin: origin.clone(),
                    index: i + 1,
                    detail: e.to_string(),
                })?;
        }
        Ok(TrustBundle {
            certs,
            roots: Arc::new(roots),
            trust_domain: None,
            crls: Vec::new(),
        })
    }

    /// Binds this bundle to a SPIFFE trust domain (federation).
    ///
    /// Once any bundle given to a builder is bound, a certificate with a SPIFFE ID is
    /// validated only against the bundle of its own trust domain, so one domain's CA cannot
    /// mint identities for another. Certificates without a SPIFFE ID are validated against the
    /// unbound bundles.
    ///
    /// # Errors
    ///
    /// [`PolicyError::TrustDomain`] when `trust_domain` is not a valid trust domain name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let partner = mtls::TrustBundle::from_pem_file("partner-ca.pem")?
    ///     .for_trust_domain("partner.example")?;
    /// assert_eq!(partner.trust_domain(), Some("partner.example"));
    /// # Ok(()) }
    /// ```
    pub fn for_trust_domain(mut self, trust_domain: &str) -> Result<Self, PolicyError> {
        // The policy's `Authorizer::trust_domain` accepts exactly the same names.
        if !is_trust_domain(trust_domain) {
            return Err(PolicyError::TrustDomain(trust_domain.to_owned()));
        }
        self.trust_domain = Some(trust_domain.to_owned());
        Ok(self)
    }

    /// This bundle bound to `trust_domain`, a name already validated.
    pub(crate) fn bound_to(mut self, trust_domain: &str) -> Self {
        self.trust_domain = Some(trust_domain.to_owned());
        self
    }

    /// The SPIFFE trust domain this bundle is bound to, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert_eq!(ca.trust()?.trust_domain(), None);
    /// let bound = ca.trust()?.for_trust_domain("example.org")?;
    /// assert_eq!(bound.trust_domain(), Some("example.org"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_domain(&self) -> Option<&str> {
        self.trust_domain.as_deref()
    }

    /// The CA certificates, in the order they were loaded.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::pki_types::pem::PemObject;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let trust = ca.trust()?;
    /// let root = mtls::CertificateDer::from_pem_slice(ca.root_pem().as_bytes())?;
    /// assert_eq!(trust.certificates(), [root]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    pub(crate) fn root_store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects: Vec<String> = self
            .certs
            .iter()
            .filter_map(|c| X509Certificate::from_der(c).ok())
            .map(|(_, c)| c.subject().to_string())
            .collect();
        f.debug_struct("TrustBundle")
            .field("cas", &subjects)
            .field("trust_domain", &self.trust_domain)
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// A certificate that cannot be a trust anchor: basicConstraints says it is not a CA, or it
/// has no basicConstraints and was issued by someone else. A self-issued certificate without
/// basicConstraints (an old v1-style root) is accepted, as rustls accepts it.
fn is_leaf(cert: &X509Certificate<'_>) -> bool {
    match cert.basic_constraints() {
        Ok(Some(bc)) => !bc.value.ca,
        Ok(None) => cert.subject().as_raw() != cert.issuer().as_raw(),
        Err(_) => true,
    }
}

/// Certificate revocation lists, checked and ready for a [`TrustBundle`].
///
/// # Examples
///
/// ```no_run
/// # fn main() -> Result<(), mtls::LoadError> {
/// let trust = mtls::TrustBundle::from_pem_file("ca.pem")?
///     .with_crls(mtls::Crls::from_file("ca.crl")?);
/// assert!(!trust.crls().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Crls(Vec<CertificateRevocationListDer<'static>>);

impl Crls {
    /// Loads CRLs from a file: PEM (`-----BEGIN X509 CRL-----` blocks) or a single DER CRL.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`], [`LoadError::NoCrl`] when a PEM file has no CRL block, and
    /// [`LoadError::InvalidCrl`] when a CRL cannot be parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-crls-from-file-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join("ca.crl");
    /// # std::fs::write(&path, ca.crl_pem(&[])?)?;
    /// let crls = mtls::Crls::from_file(&path)?; // e.g. "certs/ca.crl"
    /// assert_eq!(crls.as_slice().len(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        Self::load(&bytes, &Origin::File(path.to_owned()))
    }

    /// Parses CRLs from PEM or DER bytes.
    ///
    /// # Errors
    ///
    /// As [`Crls::from_file`], without [`LoadError::Read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let crls = mtls::Crls::from_bytes(ca.crl_pem(&[])?.as_bytes())?;
    /// assert_eq!(crls.as_slice().len(), 1);
    /// assert!(mtls::Crls::from_bytes(b"not a CRL").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LoadError> {
        Self::load(bytes, &Origin::Memory("CRL"))
    }

    /// The CRLs as DER.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let crls = ca.crl(&[])?;
    /// assert_eq!(crls.as_slice().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_slice(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.0
    }

    fn load(bytes: &[u8], origin: &Origin) -> Result<Self, LoadError> {
        if contains(bytes, b"-----BEGIN") {
            Self::parse_pem(bytes, origin, true)
        } else {
            let der = CertificateRevocationListDer::from(bytes.to_vec());
            check_crl(&der, origin, 1)?;
            Ok(Crls(vec![der]))
        }
    }

    fn parse_pem(pem: &[u8], origin: &Origin, required: bool) -> Result<Self, LoadError> {
        let crls = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(origin, e))?;
        if required && crls.is_empty() {
            return Err(LoadError::NoCrl {
                origin: origin.clone(),
            });
        }
        for (i, crl) in crls.iter().enumerate() {
            check_crl(crl, origin, i + 1)?;
        }
        Ok(Crls(crls))
    }
}

fn check_crl(
    crl: &CertificateRevocationListDer<'_>,
    origin: &Origin,
    index: usize,
) -> Result<(), LoadError> {
    webpki::OwnedCertRevocationList::from_der(crl)
        .map(|_| ())
        .map_err(|e| LoadError::InvalidCrl {
            origin: origin.clone(),
            index,
            detail: format!("{e:?}"),
        })
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(origin: &Origin, error: pem::Error) -> LoadError {
    LoadError::Pem {
        origin: origin.clone(),
        detail: error.to_string(),
    }
}

/// Every `CERTIFICATE` block, in order. Other blocks (keys, CRLs) are skipped.
pub(crate) fn parse_certificates(
    pem: &[u8],
    origin: &Origin,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(origin, e))?;
    if certs.is_empty() {
        return Err(LoadError::NoCertificate {
            origin: origin.clone(),
        });
    }
    Ok(certs)
}

fn parse_private_key(pem: &[u8], origin: &Origin) -> Result<PrivateKeyDer<'static>, LoadError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            if contains(pem, b"ENCRYPTED PRIVATE KEY") {
                Err(LoadError::UnsupportedKey {
                    origin: origin.clone(),
                    detail: "the key is encrypted; decrypt it first, for example with `openssl pkcs8 -in KEY -out KEY.plain`".to_owned(),
                })
            } else {
                Err(LoadError::NoPrivateKey {
                    origin: origin.clone(),
                })
            }
        }
        Err(e) => Err(pem_error(origin, e)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn parse_x509<'a>(
    cert: &'a CertificateDer<'_>,
    origin: &Origin,
    index: usize,
) -> Result<X509Certificate<'a>, LoadError> {
    match X509Certificate::from_der(cert) {
        Ok(([], parsed)) => Ok(parsed),
        Ok(_) => Err(LoadError::InvalidCertificate {
            origin: origin.clone(),
            index,
            detail: "trailing bytes after the certificate".to_owned(),
        }),
        Err(e) => Err(LoadError::InvalidCertificate {
            origin: origin.clone(),
            index,
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroize;

    use super::*;

    #[test]
    fn the_key_an_identity_keeps_is_never_printed_is_owned_and_is_wiped_when_dropped() {
        let ca = crate::dev::DevCa::new("test CA").unwrap();
        let cert = ca.client("spiffe://example.org/orders").unwrap();
        let identity = cert.identity().unwrap();
        // Debug names the leaf, never the key: no line of its PEM, no run of its bytes.
        let debug = format!("{identity:?}");
        let hex: String = identity.key.secret_der()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !debug.contains(&hex) && !debug.contains("PRIVATE"),
            "{debug}"
        );
        for line in cert.key_pem().lines().filter(|l| !l.starts_with("-----")) {
            assert!(!debug.contains(line), "{debug}");
        }
        // `Zeroizing` wipes its value when dropped; this is what its `Drop` runs.
        let Identity { key, .. } = identity;
        let mut key: Zeroizing<PrivateKeyDer<'static>> = Arc::try_unwrap(key).unwrap();
        assert!(!key.secret_der().is_empty());
        key.zeroize();
        // An owned buffer, so wiping reaches the bytes (a borrowed key would keep them).
        assert!(key.secret_der().is_empty());
    }
}
