//! Reading a whole store: the magic, the integrity MAC, decryption of every safe and key bag
//! (PBES2 only, each derivation charged to a [`Budget`] first), and the entries of each bag.

use std::path::{Path, PathBuf};

use der::asn1::OctetString;
use der::{Decode, Encode};
use hmac::Mac;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, FixedOutputReset};
use zeroize::Zeroizing;

use super::cost::Budget;
use super::{
    CertEntry, DATA, ENCRYPTED_DATA, FRIENDLY_NAME, JAVA_TRUSTED_KEY_USAGE, KeyEntry, LOCAL_KEY_ID,
    Password, SHA1, SHA256, Store,
};
use crate::error::{LoadError, Origin};

/// PKCS#12's own (legacy) PBE algorithms: 1.2.840.113549.1.12.1.*.
const PKCS12_PBE_PREFIX: &str = "1.2.840.113549.1.12.1.";
/// PKCS#5 PBES1 (MD5/SHA-1 with DES or RC2): 1.2.840.113549.1.5.{1,3,4,6,10,11}.
const PBES1: [&str; 6] = [
    "1.2.840.113549.1.5.1",
    "1.2.840.113549.1.5.3",
    "1.2.840.113549.1.5.4",
    "1.2.840.113549.1.5.6",
    "1.2.840.113549.1.5.10",
    "1.2.840.113549.1.5.11",
];

fn is_legacy(oid: &der::asn1::ObjectIdentifier) -> bool {
    let text = oid.to_string();
    text.starts_with(PKCS12_PBE_PREFIX) || PBES1.contains(&text.as_str())
}

/// Reads a whole store: checks the magic, the MAC, decrypts every safe and bag.
pub(super) fn read(bytes: &[u8], password: &Password, origin: &Origin) -> Result<Store, LoadError> {
    let bad = |detail: String| LoadError::Pkcs12 {
        origin: origin.clone(),
        detail,
    };
    match bytes.get(..4) {
        Some([0xfe, 0xed, 0xfe, 0xed]) | Some([0xce, 0xce, 0xce, 0xce]) => {
            return Err(LoadError::JksKeystore {
                origin: origin.clone(),
            });
        }
        _ => {}
    }
    let pfx =
        pkcs12::pfx::Pfx::from_der(bytes).map_err(|e| bad(format!("not a PKCS#12 store ({e})")))?;
    if pfx.auth_safe.content_type != DATA {
        return Err(bad(
            "the store is signed with a public key, not protected by a password".to_owned(),
        ));
    }
    let content = pfx
        .auth_safe
        .content
        .decode_as::<OctetString>()
        .map_err(|e| bad(format!("unreadable content ({e})")))?;
    let content = content.as_bytes();
    let mut budget = Budget::default();
    match &pfx.mac_data {
        Some(mac) => verify_mac(mac, password, content, origin, &mut budget)?,
        None => {
            return Err(bad(
                "the store has no integrity MAC, so a wrong password or a tampered file could \
                 not be told apart; export it again with a password"
                    .to_owned(),
            ));
        }
    }
    let safes = pkcs12::authenticated_safe::AuthenticatedSafe::from_der(content)
        .map_err(|e| bad(format!("unreadable contents ({e})")))?;
    let mut store = Store {
        keys: Vec::new(),
        certs: Vec::new(),
        unread_bags: false,
    };
    for safe in safes.iter() {
        // Plain or decrypted, the entries may hold a key in the clear.
        let plain = if safe.content_type == DATA {
            Zeroizing::new(
                safe.content
                    .decode_as::<OctetString>()
                    .map_err(|e| bad(format!("unreadable contents ({e})")))?
                    .as_bytes()
                    .to_vec(),
            )
        } else if safe.content_type == ENCRYPTED_DATA {
            let encrypted = safe
                .content
                .decode_as::<cms::encrypted_data::EncryptedData>()
                .map_err(|e| bad(format!("unreadable encrypted contents ({e})")))?;
            let info = encrypted.enc_content_info;
            let ciphertext = info
                .encrypted_content
                .ok_or_else(|| bad("encrypted contents are missing".to_owned()))?;
            decrypt(
                &info.content_enc_alg,
                ciphertext.as_bytes(),
                password,
                origin,
                &mut budget,
            )?
        } else {
            return Err(bad(format!(
                "contents of type {} are not supported",
                safe.content_type
            )));
        };
        read_bags(&plain, password, origin, &mut store, &mut budget)?;
    }
    Ok(store)
}

fn verify_mac(
    mac: &pkcs12::mac_data::MacData,
    password: &Password,
    content: &[u8],
    origin: &Origin,
    budget: &mut Budget,
) -> Result<(), LoadError> {
    let rounds = budget.mac(mac.iterations, origin)?;
    let (salt, expected) = (mac.mac_salt.as_bytes(), mac.mac.digest.as_bytes());
    let matches = match mac.mac.algorithm.oid {
        oid if oid == SHA256 => {
            mac_matches::<sha2::Sha256>(password, salt, rounds, content, expected)
        }
        oid if oid == SHA1 => mac_matches::<sha1::Sha1>(password, salt, rounds, content, expected),
        other => {
            return Err(LoadError::Pkcs12Legacy {
                origin: origin.clone(),
                algorithm: format!("integrity MAC {other}"),
            });
        }
    };
    match matches {
        Ok(true) => Ok(()),
        Ok(false) => Err(LoadError::WrongPassword {
            origin: origin.clone(),
        }),
        Err(detail) => Err(LoadError::Pkcs12 {
            origin: origin.clone(),
            detail,
        }),
    }
}

/// Whether `expected` is the HMAC of `content` under the key PKCS#12 derives from the password
/// (encoded as a BMPString) in `rounds` rounds of `D`.
fn mac_matches<D: Digest + FixedOutputReset + BlockSizeUser>(
    password: &Password,
    salt: &[u8],
    rounds: i32,
    content: &[u8],
    expected: &[u8],
) -> Result<bool, String> {
    let key = Zeroizing::new(
        pkcs12::kdf::derive_key_utf8::<D>(
            password.as_str(),
            salt,
            pkcs12::kdf::Pkcs12KeyType::Mac,
            rounds,
            <D as Digest>::output_size(),
        )
        .map_err(|e| format!("the password cannot be encoded ({e})"))?,
    );
    let mut hmac = <hmac::SimpleHmac<D> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    hmac.update(content);
    Ok(hmac.verify_slice(expected).is_ok())
}

/// Decrypts PBES2 content; legacy schemes are refused by name.
fn decrypt(
    algorithm: &spki::AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &Password,
    origin: &Origin,
    budget: &mut Budget,
) -> Result<Zeroizing<Vec<u8>>, LoadError> {
    if is_legacy(&algorithm.oid) {
        return Err(LoadError::Pkcs12Legacy {
            origin: origin.clone(),
            algorithm: algorithm.oid.to_string(),
        });
    }
    let encoded = algorithm.to_der().map_err(|e| LoadError::Pkcs12 {
        origin: origin.clone(),
        detail: e.to_string(),
    })?;
    let scheme = pkcs5::EncryptionScheme::from_der(&encoded).map_err(|e| LoadError::Pkcs12 {
        origin: origin.clone(),
        detail: format!("unsupported encryption ({e}); export the store again with PBES2/AES"),
    })?;
    let params = scheme.pbes2().ok_or_else(|| LoadError::Pkcs12Legacy {
        origin: origin.clone(),
        algorithm: algorithm.oid.to_string(),
    })?;
    budget.pbes2(params, origin)?;
    scheme
        .decrypt(password.as_str().as_bytes(), ciphertext)
        .map(Zeroizing::new)
        // The MAC already checked the password; a failure here is a damaged store.
        .map_err(|e| LoadError::Pkcs12 {
            origin: origin.clone(),
            detail: format!("cannot decrypt ({e})"),
        })
}

fn read_bags(
    contents: &[u8],
    password: &Password,
    origin: &Origin,
    store: &mut Store,
    budget: &mut Budget,
) -> Result<(), LoadError> {
    let bad = |detail: String| LoadError::Pkcs12 {
        origin: origin.clone(),
        detail,
    };
    let bags = <Vec<pkcs12::safe_bag::SafeBag>>::from_der(contents)
        .map_err(|e| bad(format!("unreadable entries ({e})")))?;
    for bag in bags {
        let pkcs12::safe_bag::SafeBag {
            bag_id,
            bag_value,
            bag_attributes,
        } = bag;
        // A key bag holds the key in the clear; the value is borrowed, never copied.
        let bag_value = Zeroizing::new(bag_value);
        // The value sits inside an explicit [0] tag.
        let wrapped = der::AnyRef::from_der(&bag_value)
            .map_err(|e| bad(format!("unreadable entry ({e})")))?;
        let value = wrapped.value();
        let (mut alias, mut local_key_id, mut trusted) = (None, None, false);
        for attribute in bag_attributes.iter().flat_map(|a| a.iter()) {
            trusted |= attribute.oid == JAVA_TRUSTED_KEY_USAGE;
            let Some(first) = attribute.values.iter().next() else {
                continue;
            };
            if attribute.oid == FRIENDLY_NAME {
                alias = first
                    .decode_as::<der::asn1::BmpString>()
                    .ok()
                    .map(|s| s.to_string());
            } else if attribute.oid == LOCAL_KEY_ID {
                local_key_id = first
                    .decode_as::<OctetString>()
                    .ok()
                    .map(|o| o.as_bytes().to_vec());
            }
        }
        if bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
            let cert = pkcs12::cert_type::CertBag::from_der(value)
                .map_err(|e| bad(format!("unreadable certificate entry ({e})")))?;
            store.certs.push(CertEntry {
                alias,
                local_key_id,
                trusted,
                der: cert.cert_value.as_bytes().to_vec(),
            });
        } else if bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
            let shrouded = pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(value)
                .map_err(|e| bad(format!("unreadable key entry ({e})")))?;
            let key = decrypt(
                &shrouded.encryption_algorithm,
                shrouded.encrypted_data.as_bytes(),
                password,
                origin,
                budget,
            )?;
            store.keys.push(KeyEntry {
                alias,
                local_key_id,
                key,
            });
        } else if bag_id == pkcs12::PKCS_12_KEY_BAG_OID {
            store.keys.push(KeyEntry {
                alias,
                local_key_id,
                key: Zeroizing::new(value.to_vec()),
            });
        } else {
            // CRL, secret and nested bags carry nothing an identity or a bundle uses.
            store.unread_bags = true;
        }
    }
    Ok(())
}

pub(super) fn read_file(path: &Path) -> Result<(Zeroizing<Vec<u8>>, Origin), LoadError> {
    let origin = Origin::File(PathBuf::from(path));
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok((Zeroizing::new(bytes), origin))
}
