//! Step 1: our own material, read and checked before connecting: the certificate and key,
//! their validity and usage, and the chain up to a CA.

use std::time::SystemTime;

use mtls::CertificateDer;

use super::{Report, Status, clocks_or, diagnosis};
use crate::cert::{Facts, chain_order, words};
use crate::load::{LoadFailure, Loaded};

/// Our material, read and found usable: what the later steps compare the server's answers
/// with.
pub(super) struct Ours {
    /// The library's client built on it, whose configuration the handshake runs on.
    pub client: mtls::Client,
    /// Our leaf certificate, with the names of its chain.
    pub leaf: Facts,
    /// The CAs we trust for the server's certificate.
    pub anchors: Vec<CertificateDer<'static>>,
    /// The same CAs, read.
    pub trusted: Vec<Facts>,
}

/// Our material, or why it cannot be used (recorded). `None`: a fatal problem.
pub(super) fn check(loaded: Result<Loaded, LoadFailure>, report: &mut Report) -> Option<Ours> {
    let loaded = match loaded {
        Ok(l) => l,
        Err(failure) => {
            unusable(failure, report);
            return None;
        }
    };
    let anchors: Vec<CertificateDer<'static>> = loaded
        .trust
        .iter()
        .flat_map(|b| b.certificates().iter().cloned())
        .collect();
    let trusted: Vec<Facts> = anchors.iter().filter_map(|c| Facts::of(c).ok()).collect();
    let leaf = check_own_material(&loaded, &trusted, report)?;
    Some(Ours {
        client: loaded.client,
        leaf,
        anchors,
        trusted,
    })
}

/// Material that could not be loaded, attributed to the part it concerns.
fn unusable(failure: LoadFailure, report: &mut Report) {
    let (step, what, fix) = match &failure {
        LoadFailure::Identity(_) => (
            "identity",
            "our certificate and key",
            "point --cert/--key (or --keystore) at a certificate and the key it was issued for",
        ),
        LoadFailure::Trust(_) => (
            "trust",
            "the CAs we trust",
            "point --ca (or --truststore) at the PEM or PKCS#12 file of the CA that issues the server's certificate",
        ),
        LoadFailure::Config(_) => (
            "config",
            "the configuration file",
            "correct the file as the message says (docs/CONFIG.md)",
        ),
        LoadFailure::Client(_) => (
            "identity",
            "our TLS client",
            "correct the material or options named in the message",
        ),
    };
    let message = match failure {
        LoadFailure::Identity(m)
        | LoadFailure::Trust(m)
        | LoadFailure::Config(m)
        | LoadFailure::Client(m) => m,
    };
    report.fail(
        step,
        format!("{what}: cannot be used"),
        diagnosis(message, fix),
    );
}

/// Our leaf and chain, checked before connecting. `None`: a fatal problem (recorded).
fn check_own_material(loaded: &Loaded, trusted: &[Facts], report: &mut Report) -> Option<Facts> {
    let chain: Vec<Facts> = loaded
        .identity
        .chain()
        .iter()
        .filter_map(|c| Facts::of(c).ok())
        .collect();
    let leaf = identity(&chain, report)?;
    (validity(&leaf, loaded, report)
        && usage(&leaf, report)
        && chain_up_to_a_ca(&chain, trusted, report))
    .then_some(leaf)
}

/// Our leaf, readable, with the names of its chain.
fn identity(chain: &[Facts], report: &mut Report) -> Option<Facts> {
    let Some(mut leaf) = chain.first().cloned() else {
        report.fail(
            "identity",
            "our certificate: unreadable",
            diagnosis(
                "our certificate could not be parsed",
                "check the certificate file with `mtls inspect`",
            ),
        );
        return None;
    };
    leaf.chain_names = chain
        .iter()
        .flat_map(|c| [c.subject.clone(), c.issuer.clone()])
        .collect();
    report.push(
        "identity",
        Status::Ok,
        format!(
            "our certificate: {}, key matches ({})",
            leaf.name(),
            leaf.key
        ),
    );
    Some(leaf)
}

/// Whether our leaf is valid now (a renewal that is due is a warning). `false`: recorded.
fn validity(leaf: &Facts, loaded: &Loaded, report: &mut Report) -> bool {
    let now = SystemTime::now();
    if leaf.expired() {
        let ago = now.duration_since(leaf.not_after_time).unwrap_or_default();
        report.fail(
            "validity",
            format!("our certificate expired at {}", leaf.not_after),
            diagnosis(
                format!("our certificate {} expired {} ago", leaf.name(), words(ago)),
                clocks_or(
                    ago,
                    "renew our certificate (with `mtls ca issue` for a development CA)",
                ),
            ),
        );
        return false;
    }
    if leaf.not_yet_valid() {
        let wait = leaf.not_before_time.duration_since(now).unwrap_or_default();
        report.fail(
            "validity",
            format!("our certificate is valid only from {}", leaf.not_before),
            diagnosis(
                format!(
                    "our certificate {} becomes valid in {}",
                    leaf.name(),
                    words(wait)
                ),
                clocks_or(wait, "use a certificate that is valid now"),
            ),
        );
        return false;
    }
    // The library's renewal rule (two thirds of the lifetime, or a day left), as our
    // server's and client's health reports apply it.
    let status = mtls::Rotate::certificate_status(&loaded.client).identity;
    let due = status.renewal_due;
    let s = report.push(
        "validity",
        if due { Status::Warn } else { Status::Ok },
        format!(
            "our certificate is valid until {} ({})",
            leaf.not_after, leaf.time_left
        ),
    );
    if due {
        s.cause = Some(format!(
            "renewal is due: {} left, under a third of its lifetime or under a day",
            words(status.remaining)
        ));
        s.fix = Some("renew it soon".to_owned());
    }
    true
}

/// Whether our leaf may be used by a TLS client. `false`: recorded.
fn usage(leaf: &Facts, report: &mut Report) -> bool {
    if leaf.allows_client_auth() {
        report.push(
            "usage",
            Status::Ok,
            "our certificate may be used by a TLS client (clientAuth)",
        );
        return true;
    }
    report.fail(
        "usage",
        format!(
            "our certificate is not for TLS clients (extended key usage: {})",
            leaf.extended_key_usage.join(", ")
        ),
        diagnosis(
            format!(
                "our certificate {} lacks the clientAuth extended key usage, so servers refuse it",
                leaf.name()
            ),
            "reissue it with extendedKeyUsage = clientAuth (`mtls ca issue --client` or --both)",
        ),
    );
    false
}

/// Whether our chain is in order (a fatal problem when not, recorded), and up to a CA: ours
/// or the server's, we cannot know which, so an unknown top is a warning.
fn chain_up_to_a_ca(chain: &[Facts], trusted: &[Facts], report: &mut Report) -> bool {
    let order = chain_order(chain);
    if !order.breaks.is_empty() {
        let fix = match &order.suggested {
            Some(o) => format!(
                "put the certificates in the file in this order: {}",
                o.iter()
                    .map(|i| chain[*i].subject.clone())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            None => "put our certificate first, then each issuer after the certificate it signed"
                .to_owned(),
        };
        report.fail(
            "chain",
            "our chain is out of order",
            diagnosis(
                format!(
                    "certificate {} ({}) is not issued by the next one ({})",
                    order.breaks[0] + 1,
                    chain[order.breaks[0]].subject,
                    chain[order.breaks[0] + 1].subject
                ),
                fix,
            ),
        );
        return false;
    }
    let top = chain.last().expect("non-empty");
    let links = chain.iter().map(|c| c.subject.clone()).collect::<Vec<_>>();
    if top.self_signed || trusted.iter().any(|t| t.subject == top.issuer) {
        report.push(
            "chain",
            Status::Ok,
            format!("our chain: {} → {}", links.join(" → "), top.issuer),
        );
    } else {
        let s = report.push(
            "chain",
            Status::Warn,
            format!(
                "our chain ends at {}, issued by {}, which is not among the CAs we trust",
                top.subject, top.issuer
            ),
        );
        s.cause = Some(format!(
            "the server must trust {} itself (we cannot check that from here)",
            top.issuer
        ));
        s.fix = Some(
            "if the server says unknown CA, add the missing intermediate to our certificate file or the CA to the server's trust"
                .to_owned(),
        );
    }
    true
}
