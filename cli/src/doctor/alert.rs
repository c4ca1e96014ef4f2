//! The server's TLS alerts, in words: whether one is its verdict on our certificate, and
//! what it means for our material.

use mtls::{HandshakeFailure, error::alert_name};
use rustls::AlertDescription;

use super::{Context, Diagnosis, diagnosis};
use crate::cert::{Facts, dn_text};

/// Whether an alert is the server's verdict on our certificate, as the library classifies
/// it (so that the doctor and a failed call of the library name the same alerts).
pub(super) fn rejects_us(alert: AlertDescription) -> bool {
    HandshakeFailure::from_alert(alert) == HandshakeFailure::RejectedByPeer
}

/// The server's alert about our certificate (or the handshake), in words.
pub(super) fn explain(
    alert: AlertDescription,
    ours: &Facts,
    hints: Option<&[Vec<u8>]>,
    ctx: &Context,
) -> Diagnosis {
    let hint_list = hints
        .filter(|h| !h.is_empty())
        .map(|h| h.iter().map(|n| dn_text(n)).collect::<Vec<_>>());
    match alert {
        AlertDescription::UnknownCA => {
            let (cause_tail, fix) = match &hint_list {
                Some(names) if !ours.hinted(names) => (
                    format!("; it trusts {}, and our issuer is not among them", names.join("; ")),
                    format!(
                        "get a certificate issued by {}, or add {} to the server's trust bundle",
                        names.join(" or "),
                        ours.issuer
                    ),
                ),
                Some(_) => (
                    "; its CA hints do list our issuer, so an intermediate is missing or the CA certificate differs (same name, another key)".to_owned(),
                    "send the full chain (our certificate, then its intermediates) and compare the server's CA file with ours by fingerprint (`mtls inspect`)".to_owned(),
                ),
                None => (
                    String::new(),
                    format!("add {} (our issuer) to the server's trust bundle, or get a certificate from the CA the server trusts", ours.issuer),
                ),
            };
            diagnosis(
                format!(
                    "the server does not trust the CA that issued our certificate ({}){cause_tail}",
                    ours.issuer
                ),
                fix,
            )
        }
        AlertDescription::CertificateExpired => diagnosis(
            format!(
                "the server says our certificate is expired, but by our clock it is valid until {}",
                ours.not_after
            ),
            "check the server's clock, and whether it checks an older certificate of ours (a stale file or cache)",
        ),
        AlertDescription::CertificateRevoked => diagnosis(
            format!(
                "the server has our certificate (serial {}) on its revocation list",
                ours.serial
            ),
            "get a new certificate; a revoked one cannot be used again",
        ),
        AlertDescription::AccessDenied => diagnosis(
            format!(
                "the server verified our certificate, but its policy does not allow {}",
                ours.name()
            ),
            format!(
                "ask the owner of {}:{} to allow {} (its authorization policy or allow list), or present the identity it expects",
                ctx.host,
                ctx.port,
                ours.name()
            ),
        ),
        // `no_certificate` is SSL 3's spelling of the same refusal.
        AlertDescription::CertificateRequired | AlertDescription::NoCertificate => diagnosis(
            "the server requires a client certificate and received none",
            "check that our certificate file holds a certificate, and that it matches the CAs the server hints",
        ),
        AlertDescription::ProtocolVersion => diagnosis(
            "the server and we share no TLS version",
            "enable TLS 1.3 on the server, or allow TLS 1.2 on our side (drop --tls13-only / tls13_only)",
        ),
        AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => diagnosis(
            "the server and we share no cipher suite, key-exchange group or signature algorithm",
            "compare the server's TLS settings with ours: TLS 1.3 AES-GCM or ChaCha20-Poly1305 suites, groups X25519, P-256 or P-384, ECDSA, Ed25519 or RSA-PSS signatures",
        ),
        AlertDescription::DecryptError => diagnosis(
            "the server could not verify the signature made with our key",
            "check that our key belongs to our certificate (`mtls inspect CERT KEY`)",
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown => diagnosis(
            format!(
                "the server refused our certificate as {} ({})",
                alert_name(alert).replace('_', " "),
                if ours.allows_client_auth() {
                    "its usage allows TLS clients, so the server's log has the reason: often a chain it cannot build, or a policy"
                } else {
                    "it lacks the clientAuth extended key usage"
                }
            ),
            "read the server's log for the reason, and compare our certificate with what the server requires (`mtls inspect`)",
        ),
        other => diagnosis(
            format!(
                "the server ended the connection with TLS alert {}",
                alert_name(other)
            ),
            "read the server's log for the reason",
        ),
    }
}
