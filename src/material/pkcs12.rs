//! PKCS#12 keystores and truststores, as Java services hold them (feature `pkcs12`):
//! [`Identity::from_pkcs12`](crate::Identity::from_pkcs12) and
//! [`TrustBundle::from_pkcs12`](crate::TrustBundle::from_pkcs12), with [`Password`]s that come
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
//!
//! Here: what a store holds once read, and the object identifiers its reading and writing
//! share. [`Password`] is in `password`, the decoding of a store (MAC, decryption, bags) in
//! `read`, and what an identity and a bundle take from it in `keystore` and `truststore`.

mod cost;
mod keystore;
mod password;
mod read;
mod truststore;
#[cfg(feature = "dev")]
pub(crate) mod write;

use zeroize::Zeroizing;

pub use password::Password;

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
