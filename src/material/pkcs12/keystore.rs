//! [`Identity::from_pkcs12`]: the private-key entry of a keystore, with the chain its store's
//! certificates give it.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Password;
use super::read::{read, read_file};
use crate::error::{LoadError, Origin};
use crate::material::Identity;

impl Identity {
    /// Loads the private-key entry of a PKCS#12 keystore as our identity: its certificate,
    /// the CA certificates of the store that chain it (in order), and its key.
    ///
    /// With several key entries, `alias` picks one (as `keytool -alias` names it); without
    /// an alias, more than one key entry is an error that lists them.
    ///
    /// # Errors
    ///
    /// [`LoadError::WrongPassword`], [`LoadError::JksKeystore`] (with the conversion command),
    /// [`LoadError::Pkcs12Legacy`] (with the re-export command), [`LoadError::Pkcs12TooCostly`]
    /// (for a store that asks for more key-derivation work than is run), [`LoadError::EmptyKeystore`],
    /// [`LoadError::AmbiguousAlias`], [`LoadError::AliasNotFound`],
    /// [`LoadError::Pkcs12`] for a damaged store, and the errors of [`Identity::from_der`].
    ///
    /// # Examples
    ///
    /// ```
    /// // A JKS store is recognised and the conversion command given.
    /// let jks = [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2];
    /// let err = mtls::Identity::from_pkcs12(&jks, &mtls::Password::new("changeit"), None).unwrap_err();
    /// assert!(err.to_string().contains("keytool -importkeystore"));
    /// ```
    pub fn from_pkcs12(
        bytes: &[u8],
        password: &Password,
        alias: Option<&str>,
    ) -> Result<Identity, LoadError> {
        Self::pkcs12(bytes, password, alias, Origin::Memory("PKCS#12 keystore"))
    }

    /// As [`Identity::from_pkcs12`], from a file.
    ///
    /// # Errors
    ///
    /// As [`Identity::from_pkcs12`], and [`LoadError::Read`] naming the file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let password = mtls::Password::from_env("KEYSTORE_PASSWORD")?;
    /// let identity = mtls::Identity::from_pkcs12_file("certs/orders.p12", &password, Some("orders"))?;
    /// # drop(identity);
    /// # Ok::<(), mtls::LoadError>(())
    /// ```
    pub fn from_pkcs12_file(
        path: impl AsRef<Path>,
        password: &Password,
        alias: Option<&str>,
    ) -> Result<Identity, LoadError> {
        let (bytes, origin) = read_file(path.as_ref())?;
        Self::pkcs12(&bytes, password, alias, origin)
    }

    fn pkcs12(
        bytes: &[u8],
        password: &Password,
        alias: Option<&str>,
        origin: Origin,
    ) -> Result<Identity, LoadError> {
        let mut store = read(bytes, password, &origin)?;
        let aliases = || {
            store
                .keys
                .iter()
                .map(|k| k.alias.clone().unwrap_or_else(|| "(no alias)".to_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = match alias {
            Some(wanted) => store
                .keys
                .iter()
                .position(|k| k.alias.as_deref() == Some(wanted))
                .ok_or_else(|| LoadError::AliasNotFound {
                    origin: origin.clone(),
                    alias: wanted.to_owned(),
                    aliases: aliases(),
                })?,
            None => match store.keys.len() {
                0 => {
                    return Err(LoadError::EmptyKeystore {
                        origin,
                        what: "private-key entry",
                    });
                }
                1 => 0,
                _ => {
                    return Err(LoadError::AmbiguousAlias {
                        origin: origin.clone(),
                        aliases: aliases(),
                    });
                }
            },
        };
        let mut entry = store.keys.swap_remove(index);
        // The leaf is the certificate with the key's local key id (or, without ids, the
        // only certificate whose public key matches, which Identity checks below).
        let leaf = store
            .certs
            .iter()
            .find(|c| c.local_key_id.is_some() && c.local_key_id == entry.local_key_id)
            .or_else(|| store.certs.first())
            .ok_or_else(|| LoadError::NoCertificate {
                origin: origin.clone(),
            })?;
        let mut chain = vec![CertificateDer::from(leaf.der.clone())];
        let mut current = leaf.der.clone();
        // Follow issuers through the store's other certificates, at most once each.
        let mut used = vec![false; store.certs.len()];
        while let Some((subject, issuer)) = subject_and_issuer(&current) {
            if subject == issuer {
                break;
            }
            let next = store.certs.iter().enumerate().find(|(i, c)| {
                !used[*i]
                    && c.der != leaf.der
                    && subject_and_issuer(&c.der).is_some_and(|(s, _)| s == issuer)
            });
            let Some((i, cert)) = next else { break };
            used[i] = true;
            // A self-signed root is not sent: peers have it, and rustls ignores it.
            if subject_and_issuer(&cert.der).is_some_and(|(s, i)| s == i) {
                break;
            }
            chain.push(CertificateDer::from(cert.der.clone()));
            current = cert.der.clone();
        }
        // The key moves to the identity: no copy of it is left behind here.
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(std::mem::take(&mut *entry.key)));
        Identity::from_der_with_origin(chain, key, origin.clone(), origin)
    }
}

fn subject_and_issuer(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((
        cert.subject().as_raw().to_vec(),
        cert.issuer().as_raw().to_vec(),
    ))
}
