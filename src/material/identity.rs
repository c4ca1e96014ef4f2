//! [`Identity`]: our certificate chain and the private key of its leaf, checked against each
//! other as they load; the key is never printed and is wiped when the last clone is dropped.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::pem::{parse_certificates, parse_private_key, parse_x509, read};
use crate::error::{LoadError, Origin};
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

    /// [`Identity::from_der`] with the origins to name in errors (a keystore's entries).
    #[cfg(feature = "pkcs12")]
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
