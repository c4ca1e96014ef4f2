//! PKCS#12 keystores and truststores of the development CA's material, as Java's keytool
//! and OpenSSL 3 read them (feature `pkcs12`).

use super::ca::DevCa;
use super::cert::DevCert;
use super::error::DevCaError;

impl DevCa {
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
}

impl DevCert {
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
}

#[cfg(test)]
mod tests {
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
