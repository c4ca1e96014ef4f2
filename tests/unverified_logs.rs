//! What a peer whose chain does not verify can put into our logs: its names, escaped, bounded
//! and marked unverified, never a forged log line or an unbounded event.

mod common;

use std::sync::Arc;

use common::*;
use mtls::{CertificateDer, HandshakeFailure, PrivateKeyDer};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType, string::Ia5String,
};

/// A line an attacker would like to see in our log, as if we had written it.
const FORGED: &str = "INFO mtls.connection{peer.addr=10.0.0.1:1}: mTLS handshake accepted peer.identity=spiffe://example.org/admin";

/// The most an event about one refused handshake may take: subject, issuer and detail at
/// 256 characters each, eight SANs at 256, the fixed fields and the cut markers.
const EVENT_BOUND: usize = 4 * 1024;

/// A self-signed client certificate with `cn` as its common name and `sans` as DNS names,
/// with `uri` first if given.
fn self_signed(cn: &str, uri: Option<&str>, sans: &[String]) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(uri) = uri {
        params
            .subject_alt_names
            .push(SanType::URI(Ia5String::try_from(uri).unwrap()));
    }
    for san in sans {
        params
            .subject_alt_names
            .push(SanType::DnsName(Ia5String::try_from(san.as_str()).unwrap()));
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

/// A client config that trusts `ca` and presents `cert`, whatever the server asks for.
fn presenting(ca: &Ca, cert: CertificateDer<'static>, key: &KeyPair) -> Arc<rustls::ClientConfig> {
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    presenting_config(ca, vec![cert], key, rustls::DEFAULT_VERSIONS)
}

/// The one captured event that mentions `marker`, once the server has emitted it.
async fn event_about(capture: &Capture, marker: &str) -> String {
    let found = |events: Vec<String>| events.into_iter().find(|e| e.contains(marker));
    assert!(
        eventually(|| found(capture.events()).is_some()).await,
        "no event mentions {marker}"
    );
    found(capture.events()).unwrap()
}

#[tokio::test]
async fn an_unverified_peer_cannot_forge_log_lines_or_flood_an_event() {
    let capture = Capture::global();
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let handle = server.handle();
    let running = start(server);

    // A SAN and a subject with a newline and a forged line after it.
    let newline_san = format!("host.example\n{FORGED}");
    let (cert, key) = self_signed(
        &format!("hostile-newline\r\n{FORGED}"),
        None,
        &[newline_san, "ok.example".to_owned()],
    );
    let refused = raw_get(running.addr, presenting(&ca, cert, &key)).await;
    assert!(!refused.is_ok_and(|a| a.contains("200 OK")), "served");
    let event = event_about(&capture, "hostile-newline").await;
    assert!(event.contains("reason=unknown_issuer;"), "{event}");
    assert!(event.contains("unverified=true;"), "{event}");
    assert!(!event.contains('\n') && !event.contains('\r'), "{event}");
    assert!(
        event.contains(&format!("DNS:host.example\\n{FORGED}")),
        "the SAN is shown, escaped: {event}"
    );
    assert!(
        event.contains(&format!("hostile-newline\\r\\n{FORGED}")),
        "the subject is shown, escaped: {event}"
    );

    // Thousands of SANs, the first of them 16 KiB long: a certificate near the TLS limit.
    let long_uri = format!("spiffe://example.org/{}", "a".repeat(16 * 1024));
    let many: Vec<String> = (0..2000)
        .map(|i| format!("n{i:04}.flood.example"))
        .collect();
    let (cert, key) = self_signed("hostile-many-sans", Some(&long_uri), &many);
    assert!(cert.len() > 56 * 1024, "{} bytes", cert.len());
    let refused = raw_get(running.addr, presenting(&ca, cert, &key)).await;
    assert!(!refused.is_ok_and(|a| a.contains("200 OK")), "served");
    let event = event_about(&capture, "hostile-many-sans").await;
    assert!(event.contains("unverified=true;"), "{event}");
    assert!(event.len() <= EVENT_BOUND, "{} bytes: {event}", event.len());
    let sans = event
        .split(';')
        .find_map(|field| field.strip_prefix("peer.sans="))
        .unwrap_or_else(|| panic!("no peer.sans in {event}"));
    assert!(
        sans.starts_with(&format!("spiffe://example.org/{}", "a".repeat(100))),
        "{sans}"
    );
    assert!(sans.contains("…(+"), "the long URI is cut: {sans}");
    assert!(
        sans.contains("DNS:n0006.flood.example,… and 1993 more"),
        "eight names, then a count: {sans}"
    );
    assert!(!sans.contains("n0007.flood"), "{sans}");

    // A good client is still served, and the health report carries counts, not names.
    let friend = raw_config(
        &ca,
        Some(&ca.client("friend")),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    let answer = raw_get(running.addr, friend).await.unwrap();
    assert!(answer.contains("200 OK"), "{answer}");
    let stats = Arc::clone(&running.stats);
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::UnknownIssuer) == 2).await);
    let health = handle.health();
    let json = health.to_json();
    assert!(
        !json.contains("hostile") && !json.contains("flood") && !json.contains('\n'),
        "{json}"
    );
    assert!(
        health
            .problems()
            .iter()
            .any(|p| p.starts_with("2 handshakes failed as unknown_issuer")),
        "{:?}",
        health.problems()
    );
    running.shutdown().await;
}
