//! [`HandshakeFailure`]: why a TLS handshake failed, classified from rustls errors, alerts
//! and I/O errors, and [`alert_name`], the RFC spelling of an alert.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError, PeerIncompatible};

use super::ServerNotAllowed;

/// Why a TLS handshake with a peer failed.
///
/// The server reports it in a `tracing` event and counts it in [`ServerStats`](crate::server::ServerStats);
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
/// assert_eq!(mtls::error::alert_name(AlertDescription::UnknownCA), "unknown_ca");
/// assert_eq!(mtls::error::alert_name(AlertDescription::UnknownPSKIdentity), "unknown_psk_identity");
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
