//! The events of a refused peer: a chain that did not verify, or a verified peer the policy
//! denied.

use std::fmt;

use crate::error::{Denied, HandshakeFailure};
use crate::handshake::{mark_logged, peer_addr, quiet, resuming};
use crate::peer::PeerIdentity;
use crate::util::text::{Escaped, Names};

/// Logs a rejected client certificate with what it claimed. Runs inside the connection's
/// span, which carries the peer address.
///
/// The chain did not verify, so every name in it is the peer's own unchecked text: the event
/// says so (`unverified = true`) and shows the names escaped and bounded ([`crate::util::text`]).
pub(super) fn log_rejected(peer: &PeerIdentity, error: &rustls::Error) {
    if quiet() {
        return;
    }
    mark_logged();
    let reason = HandshakeFailure::from_rustls(error);
    tracing::warn!(
        peer.addr = %peer_addr(),
        reason = %reason.as_str(),
        unverified = true,
        peer.subject = %Escaped(peer.subject()),
        peer.sans = %sans_of(peer),
        peer.issuer = %Escaped(peer.issuer()),
        peer.not_before = %crate::util::time::humantime(peer.not_before()),
        peer.not_after = %crate::util::time::humantime(peer.not_after()),
        detail = %Escaped(error),
        resumed = resuming(),
        "TLS handshake failed: {reason}"
    );
}

/// One SAN as the failure events show it: a URI as it is, a `DNS:` name or an `IP:` address.
#[derive(Clone, Copy)]
enum San<'a> {
    Uri(&'a str),
    Dns(&'a str),
    Ip(&'a std::net::IpAddr),
}

impl fmt::Display for San<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Uri(uri) => f.write_str(uri),
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// The SANs of `peer` in one field, escaped and bounded: URIs, then DNS names, then IPs.
fn sans_of(peer: &PeerIdentity) -> Names<impl Iterator<Item = San<'_>> + Clone> {
    Names(
        peer.uris()
            .iter()
            .map(|u| San::Uri(u))
            .chain(peer.dns_names().iter().map(|d| San::Dns(d)))
            .chain(peer.ip_addresses().iter().map(San::Ip)),
    )
}

/// Logs a peer the policy denied, with the certificate it presented (if any) and the policy.
/// Its chain verified, so a CA we trust vouched for the names; they are escaped and bounded
/// all the same, since a CA's names are still not ours to print raw.
pub(crate) fn log_not_authorized(
    addr: &dyn fmt::Display,
    peer: Option<&PeerIdentity>,
    denied: &Denied,
    resumed: bool,
) {
    if quiet() {
        return;
    }
    let reason = HandshakeFailure::NotAuthorized;
    match peer {
        Some(peer) => tracing::warn!(
            peer.addr = %addr,
            reason = %reason.as_str(),
            peer.identity = %Escaped(&denied.presented),
            peer.subject = %Escaped(peer.subject()),
            peer.sans = %sans_of(peer),
            peer.issuer = %Escaped(peer.issuer()),
            peer.not_before = %crate::util::time::humantime(peer.not_before()),
            peer.not_after = %crate::util::time::humantime(peer.not_after()),
            policy = %denied.policy,
            resumed,
            "TLS handshake failed: peer not authorized by policy"
        ),
        None => tracing::warn!(
            peer.addr = %addr,
            reason = %reason.as_str(),
            peer.identity = %denied.presented,
            policy = %denied.policy,
            resumed,
            "TLS handshake failed: peer not authorized by policy"
        ),
    }
}
