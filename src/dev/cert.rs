//! [`DevCert`]: an issued leaf, its chain and its key.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::DevCaError;
use super::files::write_pair;
use crate::material::Identity;

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
    pub(super) cert_pem: String,
    /// Wiped when dropped.
    pub(super) key_pem: zeroize::Zeroizing<String>,
    pub(super) der: Vec<u8>,
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

    pub(super) fn serial(&self) -> Result<Vec<u8>, String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&self.der).map_err(|e| e.to_string())?;
        Ok(cert.raw_serial().to_vec())
    }
}
