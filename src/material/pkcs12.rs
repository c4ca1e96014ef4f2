//! PKCS#12 keystores and truststores, as Java services hold them (feature `pkcs12`):
//! [`Identity::from_pkcs12`] and [`TrustBundle::from_pkcs12`], with [`Password`]s that come
//! from a string, a file or an environment variable and are wiped from memory after use.
//!
//! Read with RustCrypto's `pkcs12`, `pkcs5` and `cms` crates: PBES2 (PBKDF2 with HMAC-SHA-256
//! and AES-CBC, what `keytool` since JDK 17 and `openssl pkcs12` 3.x write) and the
//! HMAC-SHA-256 or HMAC-SHA-1 integrity MAC. Legacy RC2/3DES stores are refused with the
//! command that re-exports them, and every key derivation is bounded before it runs ([`cost`]).
//!
//! A truststore trusts what it marks as trusted: the certificate entries carrying Java's
//! trusted-certificate attribute when any entry does (as `keytool -importcert` writes them);
//! otherwise, in a store without a private-key entry (as `openssl pkcs12 -export -nokeys`
//! writes it), its certificates. A key entry's own chain is never trusted.

mod cost;
#[cfg(feature = "dev")]
pub(crate) mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use der::asn1::OctetString;
use der::{Decode, Encode};
use hmac::Mac;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, FixedOutputReset};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::error::{LoadError, Origin};
use crate::material::{Identity, TrustBundle};
use cost::Budget;

/// A keystore or truststore password. It is wiped from memory when dropped and never shown
/// by `Debug` or in errors.
///
/// # Examples
///
/// ```
/// let password = mtls::Password::new("changeit");
/// assert_eq!(format!("{password:?}"), "Password(***)");
/// ```
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// A password given as a string.
    ///
    /// # Examples
    ///
    /// ```
    /// let password = mtls::Password::new(String::from("changeit"));
    /// assert!(!format!("{password:?}").contains("changeit"));
    /// ```
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password in `path`, without a trailing line break (as `echo` writes it).
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pass-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("ks.pass"), "changeit\n")?;
    /// let password = mtls::Password::from_file(dir.join("ks.pass"))?;
    /// assert_eq!(format!("{password:?}"), "Password(***)");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        Ok(Password::new(text.trim_end_matches(['\r', '\n'])))
    }

    /// The password in the environment variable `name`.
    ///
    /// The copy read here is wiped on drop, but the variable itself stays in this process's
    /// environment: readable by the same user and root (`/proc/<pid>/environ` on Linux) and
    /// inherited by every child process started later. This crate cannot remove it for you:
    /// changing the environment of a running multi-threaded process is `unsafe`
    /// (`std::env::remove_var`), and this crate forbids unsafe code. Prefer
    /// [`Password::from_file`] (a Kubernetes secret volume is a tmpfs file); otherwise remove
    /// the variable yourself first thing in `main`, before any thread starts, and start
    /// child processes with `Command::env_remove`.
    ///
    /// # Errors
    ///
    /// [`LoadError::PasswordVariable`] when it is not set (or not UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mtls::Password::from_env("SURELY_NOT_SET_MTLS_PASSWORD").unwrap_err();
    /// assert!(err.to_string().contains("SURELY_NOT_SET_MTLS_PASSWORD"));
    /// ```
    pub fn from_env(name: &str) -> Result<Self, LoadError> {
        std::env::var(name)
            .map(Password::new)
            .map_err(|_| LoadError::PasswordVariable {
                name: name.to_owned(),
            })
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a store held: key entries (chain and key) and trusted certificates.
struct Store {
    keys: Vec<KeyEntry>,
    certs: Vec<CertEntry>,
    /// Bags not read (nested SafeContents, secrets, CRLs): one may hold a key, so a store
    /// with any is never read as keyless.
    unread_bags: bool,
}

struct KeyEntry {
    alias: Option<String>,
    local_key_id: Option<Vec<u8>>,
    key: Zeroizing<Vec<u8>>,
}

struct CertEntry {
    alias: Option<String>,
    local_key_id: Option<Vec<u8>>,
    /// Carries Java's trusted-certificate attribute: a trustedCertEntry.
    trusted: bool,
    der: Vec<u8>,
}

const FRIENDLY_NAME: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const LOCAL_KEY_ID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
/// Java's trusted-certificate attribute (its value, the key usages trusted, is not used): keytool
/// lists a certificate bag that carries it as a trustedCertEntry.
const JAVA_TRUSTED_KEY_USAGE: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.113894.746875.1.1");
const DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const SHA1: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
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
fn read(bytes: &[u8], password: &Password, origin: &Origin) -> Result<Store, LoadError> {
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

fn subject_and_issuer(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((
        cert.subject().as_raw().to_vec(),
        cert.issuer().as_raw().to_vec(),
    ))
}

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

fn read_file(path: &Path) -> Result<(Zeroizing<Vec<u8>>, Origin), LoadError> {
    let origin = Origin::File(PathBuf::from(path));
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok((Zeroizing::new(bytes), origin))
}
