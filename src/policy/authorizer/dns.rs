//! DNS SAN policies ([`Authorizer::dns_name`]): an exact name, matched as rustls matches server
//! names, or one wildcard label.

use std::net::IpAddr;

use rustls::server::ParsedCertificate;
use rustls_pki_types::ServerName;

use super::{Authorizer, Rule};
use crate::error::PolicyError;
use crate::peer::PeerIdentity;

pub(super) enum DnsPattern {
    Exact(String),
    /// `*.rest`: exactly one label in front of `rest`.
    Wildcard(String),
}

impl Authorizer {
    /// A DNS SAN: exactly `name`, or with `*.example.org` any name with exactly one label in
    /// front of `example.org`. Matching is case-insensitive; an exact name also matches a
    /// wildcard certificate the way TLS server name checks do.
    ///
    /// # Errors
    ///
    /// [`PolicyError::DnsName`] for a malformed name or a wildcard anywhere but a whole leftmost
    /// label.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::server("inventory.example.org"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(mtls::Authorizer::dns_name("inventory.example.org")?.allows(Some(&peer)));
    /// assert!(mtls::Authorizer::dns_name("*.example.org")?.allows(Some(&peer)));
    /// assert!(mtls::Authorizer::dns_name("inventory.*.org").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dns_name(name: &str) -> Result<Self, PolicyError> {
        let invalid = || PolicyError::DnsName(name.to_owned());
        let lower = name.to_ascii_lowercase();
        let pattern = match lower.strip_prefix("*.") {
            Some(rest) => {
                if rest.split('.').count() < 2 {
                    return Err(invalid());
                }
                DnsPattern::Wildcard(rest.to_owned())
            }
            None => DnsPattern::Exact(lower.clone()),
        };
        let base = match &pattern {
            DnsPattern::Exact(n) | DnsPattern::Wildcard(n) => n,
        };
        if base.contains('*')
            || ServerName::try_from(base.as_str()).is_err()
            || base.parse::<IpAddr>().is_ok()
        {
            return Err(invalid());
        }
        Ok(Self::new(Rule::DnsName(pattern)))
    }
}

impl DnsPattern {
    /// Whether `peer` has a DNS SAN this pattern matches.
    pub(super) fn matches(&self, peer: &PeerIdentity) -> bool {
        match self {
            DnsPattern::Exact(name) => name_matches(peer, name),
            DnsPattern::Wildcard(rest) => peer.dns_names().iter().any(|san| {
                san.split_once('.').is_some_and(|(label, tail)| {
                    !label.is_empty() && !label.contains('*') && tail.eq_ignore_ascii_case(rest)
                })
            }),
        }
    }
}

/// A DNS SAN check with exactly the name-matching rules rustls applies to server names
/// (including wildcard certificates), so a policy is never looser than a hostname check.
fn name_matches(peer: &PeerIdentity, name: &str) -> bool {
    // A bound bundle vouched for the SPIFFE ID alone, not for the names in the leaf.
    if peer.bound_trust_domain().is_some() {
        return false;
    }
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    ParsedCertificate::try_from(peer.leaf())
        .is_ok_and(|cert| rustls::client::verify_server_name(&cert, &server_name).is_ok())
}
