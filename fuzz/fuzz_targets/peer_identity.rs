//! `PeerIdentity` parsing from arbitrary DER never panics, and what it yields is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls::{CertificateDer, PeerIdentity};

fuzz_target!(|data: &[u8]| {
    let chain = [CertificateDer::from(data.to_vec())];
    if let Ok(peer) = PeerIdentity::from_chain(&chain) {
        let shown = peer.to_string();
        if let Some(id) = peer.spiffe_id() {
            // A SPIFFE ID is only reported when exactly one spiffe URI SAN holds it.
            assert_eq!(shown, id.as_str());
            assert!(!id.path().is_empty());
            assert_eq!(peer.uris().iter().filter(|u| u.starts_with("spiffe://")).count(), 1);
        }
        let _ = (peer.subject(), peer.issuer(), peer.serial(), peer.fingerprint().to_string());
        let _ = (peer.dns_names(), peer.ip_addresses(), peer.emails(), peer.not_after());
        assert_eq!(peer.leaf().as_ref(), data);
    }
});
