//! [`LoadError`]: why certificate, key or CA material could not be loaded.

use std::io;
use std::path::PathBuf;

use super::Origin;

/// Why certificate, key or CA material could not be loaded.
///
/// Every variant names where the material came from and ends with a hint on how to fix it.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// let cert = ca.client("spiffe://example.org/orders")?;
/// let other = ca.client("spiffe://example.org/billing")?;
/// let err = mtls::Identity::from_pem(cert.cert_pem().as_bytes(), other.key_pem().as_bytes())
///     .unwrap_err();
/// assert!(matches!(err, mtls::LoadError::KeyMismatch { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is missing or this process may not read it.
    #[error("cannot read `{}`: {source}; check that the path exists and that this process may read it", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The bytes are not well-formed PEM.
    #[error(
        "{origin} is not valid PEM: {detail}; expected `-----BEGIN ...-----` / `-----END ...-----` blocks"
    )]
    Pem {
        /// Where the bytes came from.
        origin: Origin,
        /// What the PEM reader reported.
        detail: String,
    },
    /// No `CERTIFICATE` block was found.
    #[error(
        "no certificate found in {origin}; expected at least one `-----BEGIN CERTIFICATE-----` block"
    )]
    NoCertificate {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A `CERTIFICATE` block holds something that is not an X.509 certificate.
    #[error(
        "certificate #{index} in {origin} cannot be parsed: {detail}; re-export it as a PEM X.509 certificate"
    )]
    InvalidCertificate {
        /// Where the bytes came from.
        origin: Origin,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// What the parser reported.
        detail: String,
    },
    /// No private key block was found.
    #[error(
        "no private key found in {origin}; expected a `-----BEGIN PRIVATE KEY-----` (PKCS#8), `RSA PRIVATE KEY` or `EC PRIVATE KEY` block"
    )]
    NoPrivateKey {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A private key was found but the crypto provider cannot use it.
    #[error(
        "the private key in {origin} is not supported: {detail}; use an ECDSA (P-256, P-384), Ed25519 or RSA (2048 bits or more) key, for example converted with `openssl pkcs8 -topk8 -nocrypt`"
    )]
    UnsupportedKey {
        /// Where the bytes came from.
        origin: Origin,
        /// What the crypto provider reported.
        detail: String,
    },
    /// The private key does not belong to the first (leaf) certificate.
    #[error(
        "the private key in {key} does not match the certificate in {cert}; the key must belong to the first (leaf) certificate of the chain, so check that both files come from the same issuance"
    )]
    KeyMismatch {
        /// Where the certificate chain came from.
        cert: Origin,
        /// Where the key came from.
        key: Origin,
    },
    /// A trust bundle without any certificate.
    #[error(
        "no CA certificate found in {origin}; a trust bundle needs at least one `-----BEGIN CERTIFICATE-----` block holding the CA that issues your peers' certificates"
    )]
    EmptyTrustBundle {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A CRL file holds no `X509 CRL` block.
    #[error(
        "no CRL found in {origin}; expected `-----BEGIN X509 CRL-----` blocks or a DER-encoded CRL"
    )]
    NoCrl {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A CRL cannot be parsed.
    #[error(
        "CRL #{index} in {origin} cannot be parsed ({detail}); CRLs must be X.509 v2 with a CRL number (with `openssl ca -gencrl`, set `crlnumber` and `crl_extensions` in the CA config), PEM or DER"
    )]
    InvalidCrl {
        /// Where the bytes came from.
        origin: Origin,
        /// Position of the CRL in the file, from 1.
        index: usize,
        /// What the parser reported.
        detail: String,
    },
    /// A trust bundle holds a certificate that is not a CA.
    #[error(
        "certificate #{index} in {origin} ({subject}) is not a CA certificate (basicConstraints does not say cA=true); a trust bundle holds the CA that issued your peers' certificates, not a leaf certificate"
    )]
    NotCa {
        /// Where the bytes came from.
        origin: Origin,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// The subject of the offending certificate.
        subject: String,
    },
    /// A truststore entry is not a CA.
    #[error(
        "entry `{alias}` of {origin} ({subject}) is not a CA certificate; a truststore holds the CAs that issued your peers' certificates: remove it with `keytool -delete -alias {alias}`"
    )]
    NotCaEntry {
        /// The store.
        origin: Origin,
        /// The entry's alias (its subject when it has none).
        alias: String,
        /// The entry's subject.
        subject: String,
    },
    /// The environment variable that should hold a password is not set.
    #[error("the password variable `{name}` is not set; export it, or give the password in a file")]
    PasswordVariable {
        /// The variable.
        name: String,
    },
    /// The keystore's integrity check failed: the password is wrong.
    #[error(
        "wrong password for {origin}: the store's integrity check (MAC) fails with the password given; check the password file or variable"
    )]
    WrongPassword {
        /// The store.
        origin: Origin,
    },
    /// A Java KeyStore (JKS or JCEKS), not PKCS#12.
    #[error(
        "{origin} is a JKS keystore, not PKCS#12; convert it with `keytool -importkeystore -srckeystore STORE.jks -destkeystore STORE.p12 -deststoretype pkcs12`"
    )]
    JksKeystore {
        /// The store.
        origin: Origin,
    },
    /// The store is protected with a legacy algorithm (RC2, RC4, DES, 3DES, MD5).
    #[error(
        "{origin} is encrypted with a legacy algorithm ({algorithm}); export it again with AES: `openssl pkcs12 -legacy -in STORE.p12 -noenc -out all.pem` then `openssl pkcs12 -export -in all.pem -out STORE-aes.p12`"
    )]
    Pkcs12Legacy {
        /// The store.
        origin: Origin,
        /// The algorithm's object identifier or name.
        algorithm: String,
    },
    /// The store holds no entry of the kind asked for.
    #[error("{origin} holds no {what}; check that it is the right store (keystore or truststore)")]
    EmptyKeystore {
        /// The store.
        origin: Origin,
        /// What was looked for.
        what: &'static str,
    },
    /// Several key entries and no alias to choose one.
    #[error("{origin} holds several private-key entries ({aliases}); choose one with an alias")]
    AmbiguousAlias {
        /// The store.
        origin: Origin,
        /// The aliases, comma-separated.
        aliases: String,
    },
    /// No key entry has the alias asked for.
    #[error("{origin} has no private-key entry `{alias}` (entries: {aliases})")]
    AliasNotFound {
        /// The store.
        origin: Origin,
        /// The alias asked for.
        alias: String,
        /// The aliases there are, comma-separated.
        aliases: String,
    },
    /// The SPIFFE trust domain a trust file was to be bound to is not a valid name.
    #[error(
        "{origin} cannot be bound to its trust domain: {message}; give the bare trust domain name, e.g. `partner.example`"
    )]
    TrustDomain {
        /// The trust file.
        origin: Origin,
        /// Why the name is refused.
        message: String,
    },
    /// A store read as a truststore is a keystore: it holds a private-key entry and marks no
    /// certificate as trusted, so its certificates are that key's own chain, not CAs to trust.
    #[error(
        "{origin} is a keystore, not a truststore: it holds a private-key entry and marks no certificate as trusted, so its certificates are that key's own chain (and its issuers), not CAs this service should trust; make a truststore with `keytool -importcert -alias ca -file ca.pem -keystore trust.p12 -storetype pkcs12`, or `openssl pkcs12 -export -nokeys -in ca.pem -out trust.p12`, or give the CA as a PEM file"
    )]
    KeystoreAsTruststore {
        /// The store.
        origin: Origin,
    },
    /// The store asks for more password-hashing work than this crate performs: a hostile or
    /// damaged file could otherwise hold a thread for hours or exhaust memory.
    #[error(
        "{origin} asks for {parameter} = {value}, over the limit of {limit}; export it again with the tools' default costs: `openssl pkcs12 -in STORE.p12 -noenc -out all.pem` then `openssl pkcs12 -export -in all.pem -out STORE-new.p12` (2048 iterations), or `keytool -importkeystore -srckeystore STORE.p12 -destkeystore STORE-new.p12 -deststoretype pkcs12` (10000)"
    )]
    Pkcs12TooCostly {
        /// The store.
        origin: Origin,
        /// The cost parameter, as the store names it.
        parameter: &'static str,
        /// Its value in the store.
        value: u64,
        /// The most this crate runs.
        limit: u64,
    },
    /// The store is damaged or in a form this crate does not read.
    #[error("{origin} cannot be read as PKCS#12: {detail}")]
    Pkcs12 {
        /// The store.
        origin: Origin,
        /// What went wrong.
        detail: String,
    },
}
