//! [`TrustBundle`]: the CA certificates we verify peers against, each checked to be a CA,
//! optionally bound to a SPIFFE trust domain, with the revocation lists that go with them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::crls::Crls;
use super::pem::{parse_certificates, parse_x509, read};
use crate::error::PolicyError;
use crate::error::{LoadError, Origin};
use crate::spiffe::is_trust_domain;

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
    #[cfg(feature = "pkcs12")]
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
