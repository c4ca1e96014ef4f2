//! [`TrustBundle::from_pkcs12`]: the entries of a truststore that it marks as trusted, and never
//! a key entry's own chain.

use std::path::Path;

use rustls_pki_types::CertificateDer;

use super::read::{read, read_file};
use super::{CertEntry, Password};
use crate::error::{LoadError, Origin};
use crate::material::TrustBundle;

impl TrustBundle {
    /// Loads the trusted certificate entries of a PKCS#12 truststore as trust anchors.
    ///
    /// When any certificate entry carries Java's trusted-certificate attribute (as
    /// `keytool -importcert` writes them, and from OpenSSL 3.2 `openssl pkcs12 -export -nokeys
    /// -jdktrust anyExtendedKeyUsage`), exactly those entries are anchors. Otherwise, a store
    /// without a private-key entry (as `openssl pkcs12 -export -nokeys` writes it) trusts its
    /// certificates. A store with a private-key entry and no trusted entry is a keystore, and is
    /// refused: its certificates are that key's chain, and trusting them would trust the CA
    /// that issued it.
    ///
    /// # Errors
    ///
    /// [`LoadError::KeystoreAsTruststore`] for a keystore, [`LoadError::WrongPassword`],
    /// [`LoadError::JksKeystore`], [`LoadError::Pkcs12Legacy`], [`LoadError::Pkcs12TooCostly`],
    /// [`LoadError::EmptyKeystore`], [`LoadError::Pkcs12`], and [`LoadError::NotCaEntry`] for
    /// an entry that is not a CA (naming its alias).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mtls::TrustBundle::from_pkcs12(b"not a store", &mtls::Password::new("x")).unwrap_err();
    /// assert!(matches!(err, mtls::LoadError::Pkcs12 { .. }));
    /// ```
    pub fn from_pkcs12(bytes: &[u8], password: &Password) -> Result<TrustBundle, LoadError> {
        Self::pkcs12(bytes, password, Origin::Memory("PKCS#12 truststore"))
    }

    /// As [`TrustBundle::from_pkcs12`], from a file.
    ///
    /// # Errors
    ///
    /// As [`TrustBundle::from_pkcs12`], and [`LoadError::Read`] naming the file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let password = mtls::Password::from_file("secrets/trust.pass")?;
    /// let trust = mtls::TrustBundle::from_pkcs12_file("certs/trust.p12", &password)?;
    /// # drop(trust);
    /// # Ok::<(), mtls::LoadError>(())
    /// ```
    pub fn from_pkcs12_file(
        path: impl AsRef<Path>,
        password: &Password,
    ) -> Result<TrustBundle, LoadError> {
        let (bytes, origin) = read_file(path.as_ref())?;
        Self::pkcs12(&bytes, password, origin)
    }

    fn pkcs12(bytes: &[u8], password: &Password, origin: Origin) -> Result<TrustBundle, LoadError> {
        let store = read(bytes, password, &origin)?;
        let anchors: Vec<&CertEntry> = if store.certs.iter().any(|c| c.trusted) {
            store.certs.iter().filter(|c| c.trusted).collect()
        } else if store.keys.is_empty() && !store.unread_bags {
            // No entry is marked and no key owns a chain: every certificate was put there to
            // be trusted (`openssl pkcs12 -export -nokeys`).
            store
                .certs
                .iter()
                .filter(|c| c.local_key_id.is_none())
                .collect()
        } else {
            return Err(LoadError::KeystoreAsTruststore { origin });
        };
        if anchors.is_empty() {
            return Err(LoadError::EmptyKeystore {
                origin,
                what: "certificate entry",
            });
        }
        TrustBundle::from_der_named(
            anchors
                .iter()
                .map(|c| (CertificateDer::from(c.der.clone()), c.alias.clone()))
                .collect(),
            origin,
        )
    }
}
