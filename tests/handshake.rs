//! Who gets in: verified clients are served with their identity, everyone else is rejected
//! with a named reason. Real TLS over 127.0.0.1 with certificates made in each test.

mod common;

use std::time::Duration;

use common::*;
use mtls::{HandshakeFailure, peer::TlsVersion};
use rcgen::ExtendedKeyUsagePurpose;

/// `leaf` is refused by a server of `ca` with `alert` and `reason`, and a good client of `ca`
/// is served after it.
async fn assert_rejected_by_server(ca: &Ca, leaf: Issued, reason: HandshakeFailure, alert: &str) {
    let server = serve(server_builder(ca)).await;
    let good = client(ca, &ca.client("good"));
    refusal::assert_refused(&server, &client(ca, &leaf), alert, reason, &good).await;
    server.shutdown().await;
}

#[tokio::test]
async fn good_client_gets_200_with_identity_over_http2() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    let resp = client(&ca, &leaf).get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        body_string(resp).await,
        "hello spiffe://example.org/orders over HTTP/2.0"
    );
    let peer = server.last_peer().expect("handler saw an identity");
    assert_eq!(peer.alpn_protocol(), Some(&b"h2"[..]));
    server.shutdown().await;
}

#[tokio::test]
async fn good_client_gets_200_with_identity_over_http1() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let text = raw_get(server.addr, config).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("hello CN=orders, O=Example over HTTP/1.1"),
        "{text}"
    );
    let peer = server.last_peer().unwrap();
    assert_eq!(peer.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(peer.common_name(), Some("orders"));
    server.shutdown().await;
}

#[tokio::test]
async fn client_without_alpn_is_served_http1() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[]);
    let text = raw_get(server.addr, config).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(server.last_peer().unwrap().alpn_protocol(), None);
    server.shutdown().await;
}

/// The suite a client with `suites` (in its order of preference) gets from our server.
async fn negotiated_suite(
    suites: &[rustls::CipherSuite],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::CipherSuite {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("orders");
    let mut provider = (*mtls::crypto_provider()).clone();
    provider.cipher_suites = suites
        .iter()
        .map(|want| {
            *provider
                .cipher_suites
                .iter()
                .find(|s| s.suite() == *want)
                .expect("the provider has the suite")
        })
        .collect();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(&ca))
        .with_client_auth_cert(leaf.identity().chain().to_vec(), leaf.key())
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    drop(tls);
    server.shutdown().await;
    suite
}

#[tokio::test]
async fn the_server_picks_aes_128_gcm_whatever_the_client_prefers() {
    use rustls::CipherSuite::*;
    // OpenSSL, Java and rustls clients put AES-256-GCM first.
    let tls13 = [
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS13_AES_128_GCM_SHA256,
    ];
    assert_eq!(
        negotiated_suite(&tls13, &[&rustls::version::TLS13]).await,
        TLS13_AES_128_GCM_SHA256
    );
    let tls12 = [
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    assert_eq!(
        negotiated_suite(&tls12, &[&rustls::version::TLS12]).await,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
    // A client that offers only AES-256-GCM still gets it: no suite was dropped.
    assert_eq!(
        negotiated_suite(&[TLS13_AES_256_GCM_SHA384], &[&rustls::version::TLS13]).await,
        TLS13_AES_256_GCM_SHA384
    );
}

#[tokio::test]
async fn tls12_client_is_served() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS12], &[b"http/1.1"]);
    let text = raw_get(server.addr, config).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        server.last_peer().unwrap().tls_version(),
        Some(TlsVersion::Tls12)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_without_certificate_is_rejected() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    refusal::assert_refused_raw(
        &server,
        raw_config(&ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]),
        rustls::AlertDescription::CertificateRequired,
        HandshakeFailure::NoCertificate,
        &client(&ca, &ca.client("good")),
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_from_foreign_ca_is_rejected() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign root");
    assert_rejected_by_server(
        &ca,
        foreign.client("intruder"),
        HandshakeFailure::UnknownIssuer,
        "unknown_ca",
    )
    .await;
}

#[tokio::test]
async fn expired_client_certificate_is_rejected() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        not_before: time::Duration::days(-10),
        not_after: time::Duration::days(-1),
        ..Leaf::client("old")
    });
    assert_rejected_by_server(&ca, leaf, HandshakeFailure::Expired, "certificate_expired").await;
}

#[tokio::test]
async fn not_yet_valid_client_certificate_is_rejected() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        not_before: time::Duration::days(1),
        not_after: time::Duration::days(10),
        ..Leaf::client("early")
    });
    assert_rejected_by_server(
        &ca,
        leaf,
        HandshakeFailure::NotYetValid,
        "certificate_expired",
    )
    .await;
}

#[tokio::test]
async fn server_auth_only_certificate_is_rejected_as_client() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..Leaf::client("server-only")
    });
    assert_rejected_by_server(
        &ca,
        leaf,
        HandshakeFailure::WrongKeyUsage,
        "unsupported_certificate",
    )
    .await;
}

#[tokio::test]
async fn intermediate_ca_chain_is_accepted() {
    let root = Ca::new("root");
    let intermediate = root.intermediate("issuing ca");
    let server = serve(server_builder(&root)).await;
    let leaf = intermediate.client("orders");
    let resp = client(&root, &leaf).get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let peer = server.last_peer().unwrap();
    assert_eq!(peer.chain().len(), 2, "leaf and intermediate");
    assert_eq!(peer.issuer(), "CN=issuing ca");
    server.shutdown().await;
}

#[tokio::test]
async fn plaintext_http_client_is_rejected_as_malformed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    let stats = server.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Malformed) == 1).await);
    assert!(server.seen.lock().unwrap().is_empty());
    refusal::assert_served(&server, &client(&ca, &ca.client("good"))).await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls11_client_is_rejected_for_protocol_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // A TLS 1.1 ClientHello: legacy version 3.2, no supported_versions extension.
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x02, 0xc0, 0x13]); // ECDHE_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    // signature_algorithms (ecdsa_secp256r1_sha256), so that the version is what fails.
    hello.extend_from_slice(&[0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    assert_eq!(
        buf.first(),
        Some(&0x15),
        "the server answers with an alert record"
    );
    let stats = server.stats.clone();
    assert!(
        eventually(|| stats.handshake_failures(HandshakeFailure::ProtocolVersion) == 1).await,
        "{:?}",
        stats.failures()
    );
    refusal::assert_served(&server, &client(&ca, &ca.client("good"))).await;
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_handshake_does_not_block_others_and_times_out() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    // A handshake timeout no stall reaches in this test: the good client is served while the
    // stalled peer still holds its handshake open, not after it timed out.
    let patient = serve(server_builder(&ca).handshake_timeout(Duration::from_secs(600))).await;
    let _stalled = tokio::net::TcpStream::connect(patient.addr).await.unwrap();
    let stats = patient.stats.clone();
    assert!(eventually(|| stats.active_connections() == 1).await);
    let resp = client(&ca, &leaf).get(patient.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    // The stall has not ended: it would be counted as a timeout or a close.
    assert_eq!(
        stats.handshake_failures_total(),
        0,
        "{:?}",
        stats.failures()
    );
    patient.shutdown().await;
    // A short timeout, and no good client whose own handshake it could cut: the stall is
    // timed out and named.
    let strict = serve(server_builder(&ca).handshake_timeout(Duration::from_millis(300))).await;
    let mut stalled = tokio::net::TcpStream::connect(strict.addr).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the stalled handshake is closed");
    let stats = strict.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Timeout) == 1).await);
    strict.shutdown().await;
}

#[tokio::test]
async fn optional_mode_serves_anonymous_clients_without_identity() {
    let ca = Ca::new("root");
    let policy = mtls::Authorizer::any_of([
        mtls::Authorizer::anonymous(),
        mtls::Authorizer::any_verified(),
    ])
    .unwrap();
    let server = serve(
        server_builder(&ca)
            .client_auth(mtls::ClientAuth::Optional)
            .authorize(policy),
    )
    .await;
    let config = raw_config(&ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let text = raw_get(server.addr, config).await.unwrap();
    assert!(text.ends_with("hello anonymous"), "{text}");
    assert!(server.last_peer().is_none());
    // A client with a certificate is still identified.
    let leaf = ca.client("orders");
    let resp = client(&ca, &leaf).get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.last_peer().unwrap().common_name(), Some("orders"));
    server.shutdown().await;
}

#[tokio::test]
async fn optional_mode_still_rejects_an_untrusted_certificate() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&ca).client_auth(mtls::ClientAuth::Optional)).await;
    refusal::assert_refused(
        &server,
        &client(&ca, &foreign.client("intruder")),
        "unknown_ca",
        HandshakeFailure::UnknownIssuer,
        &client(&ca, &ca.client("orders")),
    )
    .await;
    assert_eq!(server.last_peer().unwrap().common_name(), Some("orders"));
    server.shutdown().await;
}

#[tokio::test]
async fn handshake_failure_emits_a_tracing_event_with_the_reason() {
    let capture = Capture::global();

    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&ca)).await;
    let _ = client(&ca, &foreign.client("traced-intruder"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    let stats = server.stats.clone();
    assert!(eventually(|| stats.handshake_failures_total() == 1).await);
    let events = capture.events();
    let event = events
        .iter()
        .find(|e| e.contains("reason=unknown_issuer") && e.contains("traced-intruder"))
        .unwrap_or_else(|| panic!("no failure event in {events:?}"));
    assert!(event.contains("peer.addr=127.0.0.1:"), "{event}");
    // The certificate that was presented is described.
    assert!(
        event.contains("peer.subject=CN=traced-intruder, O=Example"),
        "{event}"
    );
    assert!(event.contains("peer.issuer=CN=foreign"), "{event}");
    assert!(event.contains("peer.not_after="), "{event}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("reason=") && e.contains("traced-intruder"))
            .count(),
        1,
        "one event per failure: {events:?}"
    );
    server.shutdown().await;
}

/// Connects presenting `cert` (DER) with `key_pem` and sends one request; the response text
/// or the error.
async fn get_presenting(
    addr: std::net::SocketAddr,
    ca: &Ca,
    cert: Vec<u8>,
    key_pem: &str,
) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let key = mtls::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = presenting_config(ca, vec![cert.into()], key, &[&rustls::version::TLS13]);
    raw_get(addr, config).await
}

#[tokio::test]
async fn a_tampered_copy_of_an_accepted_certificate_is_rejected() {
    // The CA's signature on a certificate that verified is remembered (one verification
    // less when the same client comes back): a copy with one byte changed must not match.
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("orders");
    let genuine = leaf.identity().chain()[0].to_vec();
    for _ in 0..2 {
        let text = get_presenting(server.addr, &ca, genuine.clone(), &leaf.key_pem)
            .await
            .unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    // The signature's last byte, and a byte of the signed part (the CN "orders").
    let mut bad_signature = genuine.clone();
    *bad_signature.last_mut().unwrap() ^= 1;
    let mut bad_subject = genuine.clone();
    let at = genuine
        .windows(6)
        .position(|w| w == b"orders")
        .expect("the CN is in the certificate");
    bad_subject[at + 5] = b't';
    for tampered in [bad_signature, bad_subject] {
        let outcome = get_presenting(server.addr, &ca, tampered, &leaf.key_pem).await;
        assert!(
            outcome.as_ref().map_or(true, |text| text.is_empty()),
            "a tampered certificate was served: {outcome:?}"
        );
    }
    let stats = server.stats.clone();
    assert!(
        eventually(|| stats.handshake_failures(HandshakeFailure::BadSignature) == 2).await,
        "{:?}",
        stats.failures()
    );
    let text = get_presenting(server.addr, &ca, genuine, &leaf.key_pem)
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        server.seen.lock().unwrap().len(),
        3,
        "only the genuine ones"
    );
    server.shutdown().await;
}
