//! Errors: loading material ([`LoadError`]), building and running ([`Error`]), calling out
//! ([`ClientError`](crate::ClientError)), and why a handshake failed ([`HandshakeFailure`]).

use std::fmt;
use std::io;
use std::path::PathBuf;

use rustls::{AlertDescription, CertificateError, PeerIncompatible};

use crate::spiffe::SpiffeIdError;

/// Where a piece of material came from, so that an error can point at it.
///
/// # Examples
///
/// ```
/// use mtls::{LoadError, Origin};
///
/// assert_eq!(Origin::File("certs/ca.pem".into()).to_string(), "`certs/ca.pem`");
/// let err = mtls::TrustBundle::from_pem(b"").unwrap_err();
/// assert!(matches!(err, LoadError::EmptyTrustBundle { origin: Origin::Memory(_) }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// Bytes handed over in memory; the label says what they were meant to be.
    Memory(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "`{}`", path.display()),
            Origin::Memory(label) => write!(f, "the in-memory {label}"),
        }
    }
}

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

/// An error building or running a [`Server`](crate::Server) or [`Client`](crate::Client).
///
/// # Examples
///
/// ```
/// let err = mtls::Client::builder().build().unwrap_err();
/// assert!(matches!(err, mtls::Error::MissingIdentity));
/// assert!(err.to_string().starts_with("no identity configured"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Certificates, key or CAs could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The builder was not given our own certificate and key.
    #[error(
        "no identity configured; call `.identity(Identity::from_pem_files(cert, key)?)` or `.identity_files(cert, key)` on the builder"
    )]
    MissingIdentity,
    /// The builder was not given the CAs to verify peers against.
    #[error(
        "no trust bundle configured; call `.trust(TrustBundle::from_pem_file(ca)?)` or `.trust_file(ca)` on the builder, since mutual TLS verifies every peer against the CAs you trust"
    )]
    MissingTrust,
    /// A client whose bundles are all bound to trust domains was given no `expect_server`.
    #[error(
        "every trust bundle is bound to a SPIFFE trust domain, so servers cannot be verified by host name; call `.expect_server(Authorizer::spiffe_id(...)?)` on the client builder, or add a bundle not bound to a trust domain"
    )]
    NeedsExpectServer,
    /// The server builder was not given a policy.
    #[error(
        "no authorization policy configured; call `.authorize(...)` on the builder, for example `.authorize(Authorizer::any_verified())` to admit every client whose certificate chains to your CAs, or `Authorizer::trust_domain(\"example.org\")?` for a narrower policy"
    )]
    MissingPolicy,
    /// A policy could not be built.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A new certificate is not valid at this moment (rotation refuses it).
    #[error("the certificate `{subject}` is not valid now (valid from {} to {}); keeping the current one until a valid certificate arrives", crate::util::time::humantime(*not_before), crate::util::time::humantime(*not_after))]
    NotValidNow {
        /// Subject of the refused leaf.
        subject: String,
        /// Its start of validity.
        not_before: std::time::SystemTime,
        /// Its end of validity.
        not_after: std::time::SystemTime,
    },
    /// Our new certificate (or the current one, with a new trust bundle) does not chain to the
    /// trust bundle, although the current one did.
    #[error(
        "the certificate `{subject}` does not chain to the trust bundle, although the current one does; keeping the current material (during a CA rotation, add the new CA to the bundle before issuing from it, and remove the old CA last)"
    )]
    DoesNotChain {
        /// Subject of the refused leaf.
        subject: String,
    },
    /// The listening socket could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; check that the address is local and the port is free"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A PEM directory could not be written.
    #[error(
        "cannot write the PEM directory `{}`: {source}; check that the directory is writable \
         by this process",
        path.display()
    )]
    PemDirectory {
        /// The file or directory that could not be written.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls refused to build a certificate verifier from the trust bundle.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Why a TLS handshake with a peer failed.
///
/// The server reports it in a `tracing` event and counts it in [`ServerStats`](crate::ServerStats);
/// the client reports it in [`ClientError::ServerCertificate`](crate::ClientError::ServerCertificate).
///
/// # Examples
///
/// ```
/// use mtls::HandshakeFailure;
///
/// let reason = HandshakeFailure::from_rustls(&rustls::Error::NoCertificatesPresented);
/// assert_eq!(reason, HandshakeFailure::NoCertificate);
/// assert_eq!(reason.to_string(), "no certificate presented");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The peer sent no certificate, but one is required.
    NoCertificate,
    /// The peer's certificate does not chain to a CA we trust.
    UnknownIssuer,
    /// The peer's certificate (or one in its chain) has expired.
    Expired,
    /// The peer's certificate (or one in its chain) is not valid yet.
    NotYetValid,
    /// The peer's certificate has been revoked.
    Revoked,
    /// No CRL covers the peer's certificate (or one in its chain), and unknown status is denied.
    RevocationUnknown,
    /// A signature in the peer's chain does not verify, or uses an unsupported algorithm.
    BadSignature,
    /// The peer's certificate is not allowed for this use (extended key usage).
    WrongKeyUsage,
    /// The server's certificate is not valid for the name we connected to.
    WrongName,
    /// The peer is valid but not allowed by the policy.
    NotAuthorized,
    /// The peer's certificate could not be parsed.
    BadCertificate,
    /// The peer rejected our certificate (it sent a certificate alert).
    RejectedByPeer,
    /// No TLS version in common (we speak TLS 1.2 and 1.3 only).
    ProtocolVersion,
    /// No cipher suite, key exchange group or signature scheme in common.
    NoSharedCipher,
    /// The handshake took longer than the configured timeout.
    Timeout,
    /// The peer closed the connection during the handshake.
    PeerClosed,
    /// The peer sent something that is not a valid TLS handshake.
    Malformed,
    /// Any other failure; the event carries the detail.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in a stable order (used for counters).
    ///
    /// # Examples
    ///
    /// ```
    /// let names: Vec<&str> = mtls::HandshakeFailure::ALL.iter().map(|r| r.as_str()).collect();
    /// assert_eq!(names[..2], ["no_certificate", "unknown_issuer"]);
    /// ```
    pub const ALL: [HandshakeFailure; 18] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::UnknownIssuer,
        HandshakeFailure::Expired,
        HandshakeFailure::NotYetValid,
        HandshakeFailure::Revoked,
        HandshakeFailure::RevocationUnknown,
        HandshakeFailure::BadSignature,
        HandshakeFailure::WrongKeyUsage,
        HandshakeFailure::WrongName,
        HandshakeFailure::NotAuthorized,
        HandshakeFailure::BadCertificate,
        HandshakeFailure::RejectedByPeer,
        HandshakeFailure::ProtocolVersion,
        HandshakeFailure::NoSharedCipher,
        HandshakeFailure::Timeout,
        HandshakeFailure::PeerClosed,
        HandshakeFailure::Malformed,
        HandshakeFailure::Other,
    ];

    /// A short `snake_case` name, stable for logs and metrics labels.
    ///
    /// ```
    /// assert_eq!(mtls::HandshakeFailure::UnknownIssuer.as_str(), "unknown_issuer");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::UnknownIssuer => "unknown_issuer",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::NotYetValid => "not_yet_valid",
            HandshakeFailure::Revoked => "revoked",
            HandshakeFailure::RevocationUnknown => "revocation_unknown",
            HandshakeFailure::BadSignature => "bad_signature",
            HandshakeFailure::WrongKeyUsage => "wrong_key_usage",
            HandshakeFailure::WrongName => "wrong_name",
            HandshakeFailure::NotAuthorized => "not_authorized",
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::RejectedByPeer => "rejected_by_peer",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::NoSharedCipher => "no_shared_cipher",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::PeerClosed => "peer_closed",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::Other => "other",
        }
    }

    pub(crate) fn index(self) -> usize {
        HandshakeFailure::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(HandshakeFailure::ALL.len() - 1)
    }

    /// Classifies a rustls error.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::{CertificateError, Error};
    ///
    /// let expired = Error::InvalidCertificate(CertificateError::Expired);
    /// assert_eq!(mtls::HandshakeFailure::from_rustls(&expired), mtls::HandshakeFailure::Expired);
    /// ```
    pub fn from_rustls(error: &rustls::Error) -> Self {
        use rustls::Error as E;
        match error {
            E::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            E::InvalidCertificate(cert) => Self::from_certificate_error(cert),
            E::PeerIncompatible(p) => match p {
                PeerIncompatible::NoCipherSuitesInCommon
                | PeerIncompatible::NoKxGroupsInCommon
                | PeerIncompatible::NoSignatureSchemesInCommon
                | PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon => {
                    HandshakeFailure::NoSharedCipher
                }
                PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                // Signature algorithms arrived with TLS 1.2: a hello without them is older.
                | PeerIncompatible::SignatureAlgorithmsExtensionRequired => {
                    HandshakeFailure::ProtocolVersion
                }
                _ => HandshakeFailure::Other,
            },
            E::AlertReceived(alert) => Self::from_alert(*alert),
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerMisbehaved(_)
            | E::PeerSentOversizedRecord => HandshakeFailure::Malformed,
            E::DecryptError => HandshakeFailure::BadSignature,
            E::InvalidCertRevocationList(_) => HandshakeFailure::RevocationUnknown,
            _ => HandshakeFailure::Other,
        }
    }

    /// Classifies a TLS alert received from the peer. An alert about the certificate we sent
    /// (`unknown_ca`, `access_denied`, `certificate_required` or SSL 3's `no_certificate` for
    /// none at all, and the like) is [`HandshakeFailure::RejectedByPeer`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::HandshakeFailure;
    /// use rustls::AlertDescription;
    ///
    /// let missing = HandshakeFailure::from_alert(AlertDescription::CertificateRequired);
    /// assert_eq!(missing, HandshakeFailure::RejectedByPeer);
    /// let versions = HandshakeFailure::from_alert(AlertDescription::ProtocolVersion);
    /// assert_eq!(versions, HandshakeFailure::ProtocolVersion);
    /// ```
    pub fn from_alert(alert: AlertDescription) -> Self {
        match alert {
            AlertDescription::ProtocolVersion => HandshakeFailure::ProtocolVersion,
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
                HandshakeFailure::NoSharedCipher
            }
            a if is_certificate_alert(a) => HandshakeFailure::RejectedByPeer,
            _ => HandshakeFailure::Other,
        }
    }

    /// Finds the rustls error in an error's chain of sources, for
    /// [`HandshakeFailure::from_rustls`] to classify: the error itself, one that an
    /// [`io::Error`] wraps (its `source` skips it), or an alert that rustls reports only as
    /// text once it has been read after the handshake ("received fatal alert: UnknownCA"),
    /// which is all HTTP/2 keeps. `None` when the chain holds no rustls error.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::HandshakeFailure;
    /// use rustls::AlertDescription;
    ///
    /// // As hyper reports an alert read after a TLS 1.3 handshake:
    /// let text = std::io::Error::other("received fatal alert: CertificateRequired");
    /// let found = HandshakeFailure::tls_error_in(&text);
    /// let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
    /// assert_eq!(found, Some(required));
    /// assert_eq!(HandshakeFailure::tls_error_in(&std::fmt::Error), None);
    /// ```
    pub fn tls_error_in(error: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(tls.clone());
            }
            if let Some(tls) = e
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(tls.clone());
            }
            if let Some(alert) = alert_in_text(&e.to_string()) {
                return Some(rustls::Error::AlertReceived(alert));
            }
            cause = e.source();
        }
        None
    }

    fn from_certificate_error(error: &CertificateError) -> Self {
        #[allow(deprecated)]
        match error {
            CertificateError::UnknownIssuer => HandshakeFailure::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeFailure::NotYetValid
            }
            CertificateError::Revoked => HandshakeFailure::Revoked,
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => {
                HandshakeFailure::RevocationUnknown
            }
            CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithm
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                HandshakeFailure::BadSignature
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                HandshakeFailure::WrongKeyUsage
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                HandshakeFailure::WrongName
            }
            CertificateError::ApplicationVerificationFailure => HandshakeFailure::NotAuthorized,
            CertificateError::Other(other)
                if other.0.downcast_ref::<ServerNotAllowed>().is_some() =>
            {
                HandshakeFailure::NotAuthorized
            }
            CertificateError::BadEncoding | CertificateError::UnhandledCriticalExtension => {
                HandshakeFailure::BadCertificate
            }
            _ => HandshakeFailure::Other,
        }
    }

    /// Classifies an I/O error from a handshake, looking inside it for a rustls error.
    ///
    /// # Examples
    ///
    /// ```
    /// let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    /// assert_eq!(mtls::HandshakeFailure::from_io(&eof), mtls::HandshakeFailure::PeerClosed);
    /// ```
    pub fn from_io(error: &io::Error) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Self::from_rustls(tls);
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => HandshakeFailure::PeerClosed,
            io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            io::ErrorKind::InvalidData => HandshakeFailure::Malformed,
            _ => HandshakeFailure::Other,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeFailure::NoCertificate => "no certificate presented",
            HandshakeFailure::UnknownIssuer => "certificate issued by an unknown CA",
            HandshakeFailure::Expired => "certificate expired",
            HandshakeFailure::NotYetValid => "certificate not yet valid",
            HandshakeFailure::Revoked => "certificate revoked",
            HandshakeFailure::RevocationUnknown => "certificate revocation status unknown",
            HandshakeFailure::BadSignature => "bad signature",
            HandshakeFailure::WrongKeyUsage => {
                "certificate not valid for this use (extended key usage)"
            }
            HandshakeFailure::WrongName => "certificate not valid for the requested name",
            HandshakeFailure::NotAuthorized => "peer not authorized by policy",
            HandshakeFailure::BadCertificate => "certificate cannot be parsed",
            HandshakeFailure::RejectedByPeer => "peer rejected our certificate",
            HandshakeFailure::ProtocolVersion => "no TLS version in common",
            HandshakeFailure::NoSharedCipher => "no cipher suite in common",
            HandshakeFailure::Timeout => "handshake timed out",
            HandshakeFailure::PeerClosed => "peer closed the connection",
            HandshakeFailure::Malformed => "malformed TLS message",
            HandshakeFailure::Other => "other handshake failure",
        })
    }
}

/// Whether an alert is about the certificate we sent.
pub(crate) fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
            | AlertDescription::NoCertificate
            | AlertDescription::DecryptError
    )
}

/// "received fatal alert: UnknownCA" → `AlertDescription::UnknownCA` (the alert's `Debug`
/// name, as rustls writes it; "AccessDenied, then ..." still counts).
fn alert_in_text(text: &str) -> Option<AlertDescription> {
    let name = text.split("received fatal alert: ").nth(1)?;
    let name = name.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (0..=u8::MAX)
        .map(AlertDescription::from)
        .find(|a| format!("{a:?}") == name)
}

/// What a certificate alert from the server most likely means for us.
pub(crate) fn rejection_hint(alert: &str) -> &'static str {
    match alert {
        "unknown_ca" => {
            "the server does not trust the CA that issued our certificate (or, with CRLs, cannot tell whether it is revoked)"
        }
        "certificate_expired" => "our certificate is expired or not yet valid",
        "certificate_revoked" => "our certificate has been revoked",
        "access_denied" => {
            "our certificate is valid but the server's policy does not allow our identity"
        }
        "certificate_required" | "no_certificate" => "we sent no certificate",
        "unsupported_certificate" => {
            "our certificate is not valid for client authentication (check its extended key usage)"
        }
        _ => "check that the server trusts our CA and that our certificate is valid",
    }
}

/// The TLS name of an alert, as the RFCs and OpenSSL write it (`unknown_ca`,
/// `certificate_required`, `unknown_psk_identity`): the spelling of
/// [`ClientError::ServerRejectedCertificate`](crate::ClientError::ServerRejectedCertificate)'s `alert` and of our `tracing` events.
///
/// # Examples
///
/// ```
/// use rustls::AlertDescription;
///
/// assert_eq!(mtls::alert_name(AlertDescription::UnknownCA), "unknown_ca");
/// assert_eq!(mtls::alert_name(AlertDescription::UnknownPSKIdentity), "unknown_psk_identity");
/// ```
pub fn alert_name(alert: AlertDescription) -> String {
    // From rustls' `Debug` name: a word starts at an upper-case letter after a lower-case
    // one, or at the last capital of an acronym that a word follows ("PSKIdentity").
    let debug = format!("{alert:?}");
    let chars: Vec<char> = debug.chars().collect();
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        let acronym_goes_on = i > 0
            && chars[i - 1].is_uppercase()
            && chars.get(i + 1).is_none_or(|n| n.is_uppercase());
        if c.is_uppercase() && i > 0 && !acronym_goes_on {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Why a policy could not be built.
///
/// # Examples
///
/// ```
/// use mtls::{Authorizer, PolicyError};
///
/// let err = Authorizer::spiffe_id("spiffe://example.org").unwrap_err();
/// assert!(matches!(err, PolicyError::MissingPath(_)));
/// assert!(matches!(Authorizer::any_of(Vec::new()), Err(PolicyError::Empty(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A SPIFFE ID in the policy is invalid.
    #[error("invalid SPIFFE ID in policy: {0}")]
    SpiffeId(#[from] SpiffeIdError),
    /// A workload SPIFFE ID was expected but the ID has no path.
    #[error(
        "`{0}` is a trust domain ID, not a workload ID; add the workload path (spiffe://domain/path), or use `Authorizer::trust_domain`"
    )]
    MissingPath(String),
    /// The trust domain name is invalid.
    #[error(
        "`{0}` is not a valid trust domain; use lower-case letters, digits, `.`, `-` and `_`, without `spiffe://`"
    )]
    TrustDomain(String),
    /// The DNS name or pattern is invalid.
    #[error(
        "`{0}` is not a valid DNS name pattern; use `host.example.org` or `*.example.org` (one wildcard label, leftmost, followed by at least two labels)"
    )]
    DnsName(String),
    /// An empty name, list or combinator.
    #[error("{0} needs at least one entry; an empty policy would deny everyone silently")]
    Empty(&'static str),
    /// An identity pattern in none of the known forms.
    #[error(
        "`{0}` is not an identity pattern; use `spiffe://domain/path` (exact), \
         `spiffe://domain/path/*` (path prefix), `spiffe://domain` (trust domain), `dns:NAME` \
         or `cn:NAME`"
    )]
    Pattern(String),
}

/// Why a peer was denied: the policy and the identity it was checked against.
///
/// # Examples
///
/// ```
/// let policy = mtls::Authorizer::spiffe_id("spiffe://example.org/admin")?;
/// let denied = policy.check(None).unwrap_err();
/// assert_eq!(denied.presented, "anonymous");
/// assert_eq!(denied.policy, "spiffe_id(spiffe://example.org/admin)");
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("peer {presented} is not allowed by policy {policy}")]
pub struct Denied {
    /// The policy that denied, in its `Display` form.
    pub policy: String,
    /// The peer's identity (SPIFFE ID, else subject), or `anonymous`.
    pub presented: String,
}

/// The server's certificate is valid but not the identity we expected.
///
/// # Examples
///
/// ```
/// let policy = mtls::Authorizer::spiffe_id("spiffe://example.org/inventory")?;
/// let err = mtls::verify::ServerNotAllowed(policy.check(None).unwrap_err());
/// assert_eq!(
///     err.to_string(),
///     "server anonymous is not the expected identity spiffe_id(spiffe://example.org/inventory)"
/// );
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("server {} is not the expected identity {}", .0.presented, .0.policy)]
pub struct ServerNotAllowed(pub Denied);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_rfc_spelling() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(
            alert_name(AlertDescription::BadCertificate),
            "bad_certificate"
        );
        assert_eq!(
            alert_name(AlertDescription::UnknownPSKIdentity),
            "unknown_psk_identity"
        );
        assert_eq!(
            alert_name(AlertDescription::ProtocolVersion),
            "protocol_version"
        );
    }

    #[test]
    fn an_alert_saying_we_sent_no_certificate_is_a_rejection_of_us() {
        for alert in [
            AlertDescription::CertificateRequired,
            AlertDescription::NoCertificate,
        ] {
            assert_eq!(
                HandshakeFailure::from_alert(alert),
                HandshakeFailure::RejectedByPeer
            );
        }
    }

    #[test]
    fn a_tls_error_is_found_wrapped_or_as_the_text_of_an_alert() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        assert_eq!(
            HandshakeFailure::tls_error_in(&wrapped),
            Some(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
        );
        let text = io::Error::other("received fatal alert: AccessDenied, then more");
        assert_eq!(
            HandshakeFailure::tls_error_in(&text),
            Some(rustls::Error::AlertReceived(AlertDescription::AccessDenied))
        );
        let unknown = io::Error::other("received fatal alert: NoSuchAlert");
        assert_eq!(HandshakeFailure::tls_error_in(&unknown), None);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(HandshakeFailure::tls_error_in(&reset), None);
    }

    #[test]
    fn every_reason_has_a_distinct_index_and_name() {
        let mut names: Vec<_> = HandshakeFailure::ALL.iter().map(|r| r.as_str()).collect();
        for (i, r) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HandshakeFailure::ALL.len());
    }

    #[test]
    fn rustls_errors_are_classified() {
        use rustls::Error as E;
        assert_eq!(
            HandshakeFailure::from_rustls(&E::NoCertificatesPresented),
            HandshakeFailure::NoCertificate
        );
        assert_eq!(
            HandshakeFailure::from_rustls(&E::InvalidCertificate(CertificateError::UnknownIssuer)),
            HandshakeFailure::UnknownIssuer
        );
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            E::InvalidCertificate(CertificateError::Expired),
        );
        assert_eq!(HandshakeFailure::from_io(&io), HandshakeFailure::Expired);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            HandshakeFailure::from_io(&eof),
            HandshakeFailure::PeerClosed
        );
    }
}
