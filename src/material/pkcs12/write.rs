//! Writing stores, for development certificates (`dev` feature): PBES2 with PBKDF2-SHA256 and
//! AES-256-CBC for the key, an HMAC-SHA256 integrity MAC, as OpenSSL 3 and Java 17 write them.

use der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use hmac::{Hmac, Mac};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::{DATA, FRIENDLY_NAME, JAVA_TRUSTED_KEY_USAGE, LOCAL_KEY_ID, Password, SHA256};

const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const ITERATIONS: u32 = 10_000;

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    crate::util::provider::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "no randomness available".to_owned())?;
    Ok(bytes)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<x509_cert::attr::Attribute, String> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(|e| e.to_string())?;
    Ok(x509_cert::attr::Attribute { oid, values })
}

fn attributes(
    alias: &str,
    local_key_id: Option<&[u8]>,
    trusted: bool,
) -> Result<x509_cert::attr::Attributes, String> {
    let e = |e: der::Error| e.to_string();
    let mut set = SetOfVec::new();
    let name = BmpString::from_utf8(alias).map_err(e)?;
    set.insert(attribute(
        FRIENDLY_NAME,
        Any::encode_from(&name).map_err(e)?,
    )?)
    .map_err(e)?;
    if let Some(id) = local_key_id {
        let id = OctetString::new(id).map_err(e)?;
        set.insert(attribute(LOCAL_KEY_ID, Any::encode_from(&id).map_err(e)?)?)
            .map_err(e)?;
    }
    if trusted {
        set.insert(attribute(
            JAVA_TRUSTED_KEY_USAGE,
            Any::encode_from(&ANY_EXTENDED_KEY_USAGE).map_err(e)?,
        )?)
        .map_err(e)?;
    }
    Ok(set)
}

fn cert_bag(
    der: &CertificateDer<'_>,
    attributes: x509_cert::attr::Attributes,
) -> Result<pkcs12::safe_bag::SafeBag, String> {
    let bag = pkcs12::cert_type::CertBag {
        cert_id: pkcs12::PKCS_12_X509_CERT_OID,
        cert_value: OctetString::new(der.as_ref()).map_err(|e| e.to_string())?,
    };
    Ok(pkcs12::safe_bag::SafeBag {
        bag_id: pkcs12::PKCS_12_CERT_BAG_OID,
        bag_value: bag.to_der().map_err(|e| e.to_string())?,
        bag_attributes: Some(attributes),
    })
}

/// Plain `data` content holding `bags`.
fn data(bags: &[pkcs12::safe_bag::SafeBag]) -> Result<cms::content_info::ContentInfo, String> {
    let e = |e: der::Error| e.to_string();
    let contents = bags.to_vec().to_der().map_err(e)?;
    Ok(cms::content_info::ContentInfo {
        content_type: DATA,
        content: Any::encode_from(&OctetString::new(contents).map_err(e)?).map_err(e)?,
    })
}

/// The whole store: the safes, and a MAC over them under `password`.
fn pfx(safes: Vec<cms::content_info::ContentInfo>, password: &Password) -> Result<Vec<u8>, String> {
    let e = |e: der::Error| e.to_string();
    let auth_safe = safes.to_der().map_err(e)?;
    let salt: [u8; 16] = random()?;
    let key = Zeroizing::new(
        pkcs12::kdf::derive_key_utf8::<sha2::Sha256>(
            password.as_str(),
            &salt,
            pkcs12::kdf::Pkcs12KeyType::Mac,
            ITERATIONS as i32,
            32,
        )
        .map_err(e)?,
    );
    let mut hmac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    hmac.update(&auth_safe);
    let digest = hmac.finalize().into_bytes();
    let pfx = pkcs12::pfx::Pfx {
        version: pkcs12::pfx::Version::V3,
        auth_safe: cms::content_info::ContentInfo {
            content_type: DATA,
            content: Any::encode_from(&OctetString::new(auth_safe).map_err(e)?).map_err(e)?,
        },
        mac_data: Some(pkcs12::mac_data::MacData {
            mac: pkcs12::digest_info::DigestInfo {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: SHA256,
                    parameters: Some(Any::from(der::asn1::Null)),
                },
                digest: OctetString::new(digest.to_vec()).map_err(e)?,
            },
            mac_salt: OctetString::new(salt.to_vec()).map_err(e)?,
            iterations: ITERATIONS as i32,
        }),
    };
    pfx.to_der().map_err(e)
}

/// A keystore with one private-key entry: `chain` (leaf first) and its PKCS#8 key.
pub(crate) fn keystore(
    chain: &[CertificateDer<'_>],
    pkcs8_key: &[u8],
    alias: &str,
    password: &Password,
) -> Result<Vec<u8>, String> {
    let e = |e: der::Error| e.to_string();
    let key_id: [u8; 20] = random()?;
    let salt: [u8; 16] = random()?;
    let iv: [u8; 16] = random()?;
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, &iv)
        .map_err(|e| e.to_string())?;
    let scheme = pkcs5::EncryptionScheme::from(params);
    let encrypted = scheme
        .encrypt(password.as_str().as_bytes(), pkcs8_key)
        .map_err(|e| e.to_string())?;
    let algorithm =
        spki::AlgorithmIdentifierOwned::from_der(&scheme.to_der().map_err(e)?).map_err(e)?;
    let shrouded = pkcs12::pbe_params::EncryptedPrivateKeyInfo {
        encryption_algorithm: algorithm,
        encrypted_data: OctetString::new(encrypted).map_err(e)?,
    };
    let key_bag = pkcs12::safe_bag::SafeBag {
        bag_id: pkcs12::PKCS_12_PKCS8_KEY_BAG_OID,
        bag_value: shrouded.to_der().map_err(e)?,
        bag_attributes: Some(attributes(alias, Some(&key_id), false)?),
    };
    let mut cert_bags = Vec::new();
    for (i, cert) in chain.iter().enumerate() {
        let attrs = if i == 0 {
            attributes(alias, Some(&key_id), false)?
        } else {
            attributes(&format!("{alias}-ca-{i}"), None, false)?
        };
        cert_bags.push(cert_bag(cert, attrs)?);
    }
    pfx(vec![data(&cert_bags)?, data(&[key_bag])?], password)
}

/// A truststore: each certificate a trusted entry, named by `aliases`.
pub(crate) fn truststore(
    certs: &[(String, CertificateDer<'_>)],
    password: &Password,
) -> Result<Vec<u8>, String> {
    let mut bags = Vec::new();
    for (alias, cert) in certs {
        bags.push(cert_bag(cert, attributes(alias, None, true)?)?);
    }
    pfx(vec![data(&bags)?], password)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose key sits in a nested SafeContents bag, beside unmarked CA certificates.
    fn nested_keystore(ca: &CertificateDer<'_>, password: &Password) -> Vec<u8> {
        let key_bag = pkcs12::safe_bag::SafeBag {
            bag_id: pkcs12::PKCS_12_KEY_BAG_OID,
            bag_value: b"\x04\x00".to_vec(),
            bag_attributes: None,
        };
        let nested = pkcs12::safe_bag::SafeBag {
            bag_id: pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID,
            bag_value: vec![key_bag].to_der().unwrap(),
            bag_attributes: None,
        };
        let ca_bag = cert_bag(ca, x509_cert::attr::Attributes::new()).unwrap();
        pfx(vec![data(&[ca_bag, nested]).unwrap()], password).unwrap()
    }

    #[test]
    fn a_store_with_a_nested_bag_is_never_read_as_keyless() {
        let ca = crate::dev::DevCa::new("public ca").unwrap();
        let der = ca.trust().unwrap().certificates()[0].clone();
        let password = Password::new("changeit");
        let err = crate::TrustBundle::from_pkcs12(&nested_keystore(&der, &password), &password)
            .unwrap_err();
        assert!(
            matches!(err, crate::LoadError::KeystoreAsTruststore { .. }),
            "{err}"
        );
        // The same certificate alone, unmarked, is what `openssl pkcs12 -nokeys` writes.
        let plain = pfx(
            vec![data(&[cert_bag(&der, x509_cert::attr::Attributes::new()).unwrap()]).unwrap()],
            &password,
        )
        .unwrap();
        assert!(crate::TrustBundle::from_pkcs12(&plain, &password).is_ok());
    }
}
