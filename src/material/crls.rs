//! [`Crls`]: certificate revocation lists, from PEM or DER, each parsed as webpki will use it
//! before it is accepted.

use std::path::Path;

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use super::pem::{contains, pem_error, read};
use crate::error::{LoadError, Origin};

/// Certificate revocation lists, checked and ready for a [`TrustBundle`](crate::TrustBundle).
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
pub struct Crls(pub(super) Vec<CertificateRevocationListDer<'static>>);

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

    pub(super) fn parse_pem(
        pem: &[u8],
        origin: &Origin,
        required: bool,
    ) -> Result<Self, LoadError> {
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
