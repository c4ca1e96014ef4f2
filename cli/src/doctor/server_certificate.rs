//! Our verdict on the server's certificate, explained against what we trust and what we
//! connected to.

use std::time::{Duration, SystemTime};

use mtls::CertificateDer;
use rustls::CertificateError;

use super::{Context, Diagnosis, clocks_or, diagnosis};
use crate::cert::{Facts, words};

/// The server's certificate, explained against what we trust and asked for.
pub(super) fn explain(
    error: &CertificateError,
    server: Option<&Facts>,
    chain: Option<&[CertificateDer<'static>]>,
    trusted: &[Facts],
    ctx: &Context,
) -> Diagnosis {
    let who = server
        .map(Facts::name)
        .unwrap_or_else(|| "the server".to_owned());
    let trusted_names = if trusted.is_empty() {
        "none".to_owned()
    } else {
        trusted
            .iter()
            .map(|t| t.subject.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    #[allow(deprecated)]
    match error {
        CertificateError::UnknownIssuer => {
            let top = chain.and_then(|c| c.last()).and_then(|c| Facts::of(c).ok());
            let issuer = top
                .as_ref()
                .map(|t| t.issuer.clone())
                .unwrap_or_else(|| "an unknown CA".to_owned());
            let same_name = trusted.iter().any(|t| t.subject == issuer);
            let cause = if same_name {
                format!(
                    "the server's certificate ({who}) was issued by {issuer}; we trust a CA with that name, but not the one that signed it (another key: was the CA re-created, or is an intermediate missing?)"
                )
            } else {
                format!(
                    "the server's certificate ({who}) was issued by {issuer}, which is not among the CAs we trust ({trusted_names})"
                )
            };
            diagnosis(
                cause,
                format!(
                    "if {} is the right server, add its CA ({issuer}) to our trust (--ca); otherwise the address reaches a server with a certificate from another CA",
                    ctx.host
                ),
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let sans = server
                .map(|s| {
                    if s.sans.is_empty() {
                        "no names".to_owned()
                    } else {
                        s.sans.join(", ")
                    }
                })
                .unwrap_or_else(|| "other names".to_owned());
            diagnosis(
                format!(
                    "the server's certificate is for {sans}, but we connected to {}",
                    ctx.host
                ),
                format!(
                    "connect with one of the certificate's names, or reissue the server's certificate with {} among its names",
                    ctx.host
                ),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let (when, ago) = server
                .map(|s| {
                    (
                        s.not_after.clone(),
                        SystemTime::now()
                            .duration_since(s.not_after_time)
                            .unwrap_or_default(),
                    )
                })
                .unwrap_or_else(|| ("?".to_owned(), Duration::MAX));
            diagnosis(
                format!(
                    "the server's certificate ({who}) expired at {when}, {} ago",
                    words(ago)
                ),
                clocks_or(
                    ago,
                    "renew the server's certificate, and check that the server reloaded it",
                ),
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let (when, wait) = server
                .map(|s| {
                    (
                        s.not_before.clone(),
                        s.not_before_time
                            .duration_since(SystemTime::now())
                            .unwrap_or_default(),
                    )
                })
                .unwrap_or_else(|| ("?".to_owned(), Duration::MAX));
            diagnosis(
                format!(
                    "the server's certificate ({who}) is valid only from {when}, {} from now",
                    words(wait)
                ),
                clocks_or(wait, "give the server a certificate that is valid now"),
            )
        }
        CertificateError::Revoked => diagnosis(
            format!(
                "the server's certificate ({who}, serial {}) is on our revocation list",
                server.map(|s| s.serial.as_str()).unwrap_or("?")
            ),
            "the server needs a new certificate",
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            diagnosis(
                format!(
                    "the server's certificate ({who}) is not for TLS servers (extended key usage: {})",
                    server
                        .map(|s| s.extended_key_usage.join(", "))
                        .unwrap_or_default()
                ),
                "reissue the server's certificate with extendedKeyUsage = serverAuth",
            )
        }
        CertificateError::Other(other)
            if other
                .0
                .downcast_ref::<mtls::verify::ServerNotAllowed>()
                .is_none() =>
        {
            diagnosis(
                format!("we rejected the server's certificate ({who}): {}", other.0),
                "inspect the server's certificate with `mtls inspect` and compare it with our trust",
            )
        }
        CertificateError::ApplicationVerificationFailure | CertificateError::Other(_) => diagnosis(
            format!(
                "the server is {who}, but --expect-server asks for {}",
                ctx.expect.as_deref().unwrap_or("another identity")
            ),
            "connect to the service you meant, or correct --expect-server",
        ),
        other => diagnosis(
            format!("we rejected the server's certificate ({who}): {other:?}"),
            "inspect the server's certificate with `mtls inspect` and compare it with our trust",
        ),
    }
}
