//! The identity a handler sees is exactly the verified client's certificate.

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::*;
use mtls::{PeerIdentity, peer::TlsVersion};
use sha2::Digest;

fn close(a: SystemTime, b: SystemTime) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d < Duration::from_secs(2)
}

#[tokio::test]
async fn identity_fields_are_parsed_exactly() {
    let root = Ca::new("root");
    let issuing = root.intermediate("issuing ca");
    let server = serve(server_builder(&root)).await;
    let leaf = issuing.issue(Leaf {
        dns: vec!["orders.internal"],
        ips: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        uris: vec!["spiffe://example.org/ns/prod/sa/orders"],
        emails: vec!["ops@example.org"],
        serial: Some(&[0x01, 0x23, 0x45]),
        not_before: time::Duration::hours(-2),
        not_after: time::Duration::hours(30),
        ..Leaf::client("orders")
    });
    let requested = SystemTime::now();
    let resp = client(&root, &leaf).get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let peer = server.last_peer().unwrap();

    assert_eq!(peer.subject(), "CN=orders, O=Example");
    assert_eq!(peer.issuer(), "CN=issuing ca");
    assert_eq!(peer.common_name(), Some("orders"));
    assert_eq!(peer.dns_names(), ["orders.internal"]);
    assert_eq!(
        peer.ip_addresses(),
        [
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(peer.uris(), ["spiffe://example.org/ns/prod/sa/orders"]);
    assert_eq!(peer.emails(), ["ops@example.org"]);
    let id = peer.spiffe_id().unwrap();
    assert_eq!(id.trust_domain(), "example.org");
    assert_eq!(id.path(), "/ns/prod/sa/orders");
    assert_eq!(peer.serial(), "012345");
    assert!(close(
        peer.not_before(),
        requested - Duration::from_secs(2 * 3600)
    ));
    assert!(close(
        peer.not_after(),
        requested + Duration::from_secs(30 * 3600)
    ));
    let expected: [u8; 32] = sha2::Sha256::digest(&leaf.der).into();
    assert_eq!(peer.fingerprint().as_bytes(), &expected);
    assert_eq!(peer.fingerprint().to_string().len(), 64);
    assert_eq!(peer.leaf().as_ref(), leaf.der.as_slice());
    assert_eq!(peer.chain().len(), 2);
    assert_eq!(peer.tls_version(), Some(TlsVersion::Tls13));
    assert_eq!(peer.alpn_protocol(), Some(&b"h2"[..]));
    assert!(!peer.resumed());
    assert_eq!(peer.to_string(), "spiffe://example.org/ns/prod/sa/orders");
    server.shutdown().await;
}

#[tokio::test]
async fn identity_is_shared_by_every_request_on_a_connection() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let orders = ca.client("orders");
    let pooled = client(&ca, &orders);
    for _ in 0..2 {
        body_string(pooled.get(server.url("/")).await.unwrap()).await;
    }
    // A second connection presenting the same chain.
    body_string(
        unpooled_client(&ca, &orders)
            .get(server.url("/"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(server.stats.handshakes_accepted(), 2, "two connections");
    let seen = server.seen.lock().unwrap().clone();
    let [a, b, other] = [0, 1, 2].map(|i| seen[i].clone().unwrap());
    // What the connection negotiated is held once per connection: both requests on the
    // first connection share it, the second connection has its own.
    let negotiated = |p: &mtls::PeerIdentity| p.alpn_protocol().unwrap().as_ptr();
    assert_eq!(
        negotiated(&a),
        negotiated(&b),
        "one identity per connection"
    );
    assert_ne!(
        negotiated(&a),
        negotiated(&other),
        "one identity per connection"
    );
    // What the certificate says is parsed once per chain: shared across connections.
    assert!(std::ptr::eq(a.subject(), other.subject()));
    server.shutdown().await;
}

#[test]
fn display_falls_back_to_the_subject_without_a_spiffe_id() {
    let ca = Ca::new("root");
    let leaf = ca.client("legacy");
    let peer = PeerIdentity::from_chain(leaf.identity().chain()).unwrap();
    assert_eq!(peer.spiffe_id(), None);
    assert_eq!(peer.to_string(), "CN=legacy, O=Example");
    assert_eq!(peer.tls_version(), None);
}

#[test]
fn two_spiffe_uris_mean_no_spiffe_id() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/a", "spiffe://example.org/b"],
        ..Leaf::client("twice")
    });
    let peer = PeerIdentity::from_chain(leaf.identity().chain()).unwrap();
    assert_eq!(peer.spiffe_id(), None);
    assert_eq!(peer.uris().len(), 2);
}
