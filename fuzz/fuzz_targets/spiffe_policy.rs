//! SPIFFE ID parsing and policy matching: no panics, and matches keep their promises.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mtls::{Authorizer, PeerIdentity, SpiffeId};

/// A few real identities, made once.
fn peers() -> &'static [PeerIdentity] {
    static PEERS: OnceLock<Vec<PeerIdentity>> = OnceLock::new();
    PEERS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut out = Vec::new();
        for (uri, dns, cn) in [
            (Some("spiffe://example.org/ns/prod/sa/orders"), "orders.internal", "orders"),
            (Some("spiffe://example.org/ns/production"), "a.example.org", "prod"),
            (Some("spiffe://other.org/x"), "db.internal", "spiffe://example.org/ns/prod"),
            (None, "legacy.example.org", "legacy"),
        ] {
            let mut params = rcgen::CertificateParams::new(vec![dns.to_owned()]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
            if let Some(uri) = uri {
                params
                    .subject_alt_names
                    .push(rcgen::SanType::URI(uri.try_into().unwrap()));
            }
            let cert = params.self_signed(&key).unwrap();
            out.push(PeerIdentity::from_chain(&[cert.der().clone()]).unwrap());
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = SpiffeId::parse(text) {
        // A parsed ID round-trips and its parts rebuild it.
        assert_eq!(id.as_str(), text);
        assert_eq!(format!("spiffe://{}{}", id.trust_domain(), id.path()), text);
        assert!(!id.path().ends_with('/'));
        assert!(!id.path().split('/').any(|s| s == "." || s == ".."));
    }
    for peer in peers() {
        if let Ok(policy) = Authorizer::spiffe_id(text) {
            let matched = policy.allows(Some(peer));
            assert_eq!(matched, peer.spiffe_id().map(|id| id.as_str()) == Some(text));
        }
        if let Ok(policy) = Authorizer::spiffe_path_prefix(text) {
            if policy.allows(Some(peer)) {
                let prefix = SpiffeId::parse(text).unwrap();
                let id = peer.spiffe_id().expect("only SPIFFE identities match a prefix");
                assert_eq!(id.trust_domain(), prefix.trust_domain());
                let rest = id.path().strip_prefix(prefix.path()).expect("path under the prefix");
                assert!(rest.is_empty() || rest.starts_with('/'), "segment boundary");
            }
        }
        if let Ok(policy) = Authorizer::trust_domain(text) {
            if policy.allows(Some(peer)) {
                assert_eq!(peer.spiffe_id().unwrap().trust_domain(), text);
            }
        }
        if let Ok(policy) = Authorizer::dns_name(text) {
            let _ = policy.allows(Some(peer));
            let _ = policy.to_string();
        }
        if let Ok(policy) = Authorizer::common_name(text) {
            assert_eq!(policy.allows(Some(peer)), peer.common_name() == Some(text));
        }
        // Nothing but `anonymous` admits a peer without a certificate.
        if let Ok(policy) = Authorizer::spiffe_id(text) {
            assert!(!Authorizer::not(policy).allows(None));
        }
    }
});
