//! Every problem of a server certificate we rejected, the chain's first.
//!
//! rustls reports one error per handshake: webpki checks the leaf's own dates and extended key
//! usage before it looks for the leaf's issuer, and rustls checks the name only once the chain
//! verified. So a clientAuth-only certificate from a CA we do not trust is reported as a wrong
//! usage alone, and any chain error hides a wrong name. Each check runs here on its own, on the
//! chain the server sent, in chain order: the issuing CA, the leaf's dates, its usage, its
//! names.

use std::time::{SystemTime, UNIX_EPOCH};

use rustls::CertificateError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert::Facts;

/// The problems of the server's `chain`, first in the chain first. `reported` (what the
/// handshake failed with) is always among them, in its own words; an error outside these checks
/// (revocation, a signature, `--expect-server`) is named alone.
pub fn every_problem(
    reported: &CertificateError,
    chain: &[CertificateDer<'static>],
    leaf: &Facts,
    anchors: &[CertificateDer<'static>],
    host: &str,
    provider: &CryptoProvider,
) -> Vec<CertificateError> {
    let (Some(reported_rank), Some((end_entity, intermediates))) =
        (rank(reported), chain.split_first())
    else {
        return vec![reported.clone()];
    };
    let now = SystemTime::now();
    let mut found = Vec::new();
    // Checked at a time the leaf is valid, so that its dates do not stand in for its issuer.
    let within = if now < leaf.not_before_time {
        leaf.not_before_time
    } else if now > leaf.not_after_time {
        leaf.not_after_time
    } else {
        now
    };
    if untrusted(end_entity, intermediates, anchors, within, provider) {
        found.push(CertificateError::UnknownIssuer);
    }
    if now > leaf.not_after_time {
        found.push(CertificateError::Expired);
    } else if now < leaf.not_before_time {
        found.push(CertificateError::NotValidYet);
    }
    // webpki takes no anyExtendedKeyUsage for serverAuth: an EKU without serverAuth is refused.
    if leaf.eku.is_some() && !leaf.extended_key_usage.iter().any(|u| u == "serverAuth") {
        found.push(CertificateError::InvalidPurpose);
    }
    if wrong_name(end_entity, host) {
        found.push(CertificateError::NotValidForName);
    }
    match found.iter().position(|e| rank(e) == Some(reported_rank)) {
        Some(i) => found[i] = reported.clone(),
        None => found.push(reported.clone()),
    }
    found.sort_by_key(rank);
    found
}

/// The place of a problem in the chain, for the errors checked here.
fn rank(error: &CertificateError) -> Option<u8> {
    #[allow(deprecated)]
    match error {
        CertificateError::UnknownIssuer => Some(0),
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => Some(1),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            Some(2)
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Some(3)
        }
        _ => None,
    }
}

/// Whether no path leads from the leaf to one of `anchors`, whatever the leaf's usage.
fn untrusted(
    end_entity: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
    at: SystemTime,
    provider: &CryptoProvider,
) -> bool {
    let Ok(leaf) = webpki::EndEntityCert::try_from(end_entity) else {
        return false;
    };
    let anchors: Vec<_> = anchors
        .iter()
        .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
        .collect();
    let time = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap_or_default());
    matches!(
        leaf.verify_for_usage(
            provider.signature_verification_algorithms.all,
            &anchors,
            intermediates,
            time,
            AnyUsage,
            None,
            None,
        ),
        Err(webpki::Error::UnknownIssuer)
    )
}

/// Accepts every extended key usage: the usage is checked on its own.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

fn wrong_name(end_entity: &CertificateDer<'static>, host: &str) -> bool {
    let (Ok(leaf), Ok(name)) = (
        webpki::EndEntityCert::try_from(end_entity),
        ServerName::try_from(host),
    ) else {
        return false;
    };
    leaf.verify_is_valid_for_subject_name(&name).is_err()
}
