//! What loading shares: reading a file, the PEM blocks of certificates and keys, and the check
//! that each certificate parses whole, with errors that name where the material came from.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{LoadError, Origin};

pub(super) fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn pem_error(origin: &Origin, error: pem::Error) -> LoadError {
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

pub(super) fn parse_private_key(
    pem: &[u8],
    origin: &Origin,
) -> Result<PrivateKeyDer<'static>, LoadError> {
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

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn parse_x509<'a>(
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
