//! Named failures that need a peer misbehaving on purpose, and protocol promises that only a
//! hand-built client can test: each produced by a real handshake on 127.0.0.1, counted under
//! its own reason.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mtls::{HandshakeFailure, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn counted(stats: &Arc<ServerStats>, reason: HandshakeFailure) {
    let stats = Arc::clone(stats);
    assert!(
        eventually(|| stats.handshake_failures(reason) == 1).await,
        "expected one {reason:?}, counted {:?}",
        stats.failures()
    );
}

/// A TLS 1.3 ClientHello with the given cipher suites, X25519 and ECDSA P-256 SHA-256.
fn client_hello(cipher_suites: &[u16]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // empty legacy session id
    body.extend_from_slice(&((cipher_suites.len() * 2) as u16).to_be_bytes());
    for suite in cipher_suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut extensions = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(data);
    };
    extension(0x002b, &[0x02, 0x03, 0x04]); // supported_versions: TLS 1.3
    extension(0x000a, &[0x00, 0x02, 0x00, 0x1d]); // supported_groups: x25519
    extension(0x000d, &[0x00, 0x02, 0x04, 0x03]); // signature_algorithms
    let mut share = vec![0x00, 0x24, 0x00, 0x1d, 0x00, 0x20];
    share.extend_from_slice(&[0x09; 32]); // any 32 bytes are an X25519 public key
    extension(0x0033, &share); // key_share
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn a_hello_with_no_cipher_suite_in_common_is_named() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // TLS_AES_128_CCM_8_SHA256: valid TLS 1.3, implemented by neither provider.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&client_hello(&[0x1305])).await.unwrap();
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first[0], 0x15, "an alert record comes back");
    drop(tcp);
    counted(&server.stats, HandshakeFailure::NoSharedCipher).await;
    // The same hello with a suite we speak gets a ServerHello instead.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&client_hello(&[0x1305, 0x1301]))
        .await
        .unwrap();
    let mut first = [0u8; 1];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 0x16, "a handshake record comes back");
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_closes_mid_hello_is_named() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let hello = client_hello(&[0x1301]);
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&hello[..hello.len() / 2]).await.unwrap();
    drop(tcp);
    counted(&server.stats, HandshakeFailure::PeerClosed).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_with_a_broken_signature_is_named() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("forged");
    // The last byte of an ECDSA certificate is inside the signature's `s`: any change keeps
    // the DER well-formed and the key unchanged, and breaks the CA's signature.
    let mut forged = leaf.der.clone();
    *forged.last_mut().unwrap() ^= 0x01;
    let key = {
        use rustls::pki_types::pem::PemObject;
        mtls::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.trust().certificates()[0].clone()).unwrap();
            roots
        })
        .with_client_auth_cert(vec![forged.into()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let result = raw_get(server.addr, Arc::new(config)).await;
    assert!(
        result.is_err(),
        "a forged certificate was served: {result:?}"
    );
    counted(&server.stats, HandshakeFailure::BadSignature).await;
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    server.shutdown().await;
}

/// A client certificate with `names` DNS SANs (about 32 bytes each), and its key.
fn padded_client(ca: &Ca, names: usize) -> Issued {
    let dns: Vec<&'static str> = (0..names)
        .map(|i| &*Box::leak(format!("host-{i:05}.padding.example.com").into_boxed_str()))
        .collect();
    ca.issue(Leaf {
        dns,
        ..Leaf::client("oversized")
    })
}

fn key_of(leaf: &Issued) -> mtls::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    mtls::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_certificate_message_over_64_kib_is_refused() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // Each certificate under 64 KiB, the Certificate message carrying them over it.
    let leaf = padded_client(&ca, 1500);
    assert!(leaf.der.len() < 64 * 1024 && leaf.der.len() * 2 > 64 * 1024);
    let chain = vec![leaf.der.clone().into(), leaf.der.clone().into()];
    let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.trust().certificates()[0].clone()).unwrap();
            roots
        })
        .with_client_auth_cert(chain, key_of(&leaf))
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    assert!(raw_get(server.addr, Arc::new(config)).await.is_err());
    counted(&server.stats, HandshakeFailure::Malformed).await;
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    // And the server goes on serving.
    let resp = client(&ca, &ca.client("good"))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[test]
fn a_certificate_rustls_cannot_read_is_a_certificate_error_not_a_key_error() {
    let ca = Ca::new("root");
    let leaf = padded_client(&ca, 4000);
    assert!(leaf.der.len() > 64 * 1024);
    let err =
        mtls::Identity::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap_err();
    assert!(
        matches!(err, mtls::LoadError::InvalidCertificate { index: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn early_data_is_never_offered() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.client("eager");
    let mut config =
        (*raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"])).clone();
    config.enable_early_data = true;
    let config = Arc::new(config);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let request = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    for attempt in 0..2 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&config))
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        tls.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.unwrap();
        assert!(String::from_utf8_lossy(&out).contains("200 OK"));
        let conn = tls.get_ref().1;
        assert!(!conn.is_early_data_accepted());
        if attempt == 1 {
            assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        }
    }
    // The client holds tickets from the server and wants 0-RTT: rustls lets it write early
    // data only when a ticket allows some, and ours never do (replayable, and it would reach
    // a handler before the client's certificate is verified).
    let mut next = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    assert!(next.early_data().is_none(), "a ticket allows 0-RTT data");
    server.shutdown().await;
}

#[tokio::test]
async fn an_http2_header_list_over_the_limit_is_refused() {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).max_header_size(8 * 1024)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"h2"]);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let small = hyper::Request::get("https://localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(small).await.unwrap().status(), 200);
    let big = hyper::Request::get("https://localhost/")
        .header("x-big", "a".repeat(16 * 1024))
        .body(Empty::<Bytes>::new())
        .unwrap();
    // Refused either with 431 or before any response (the stream is reset).
    if let Ok(resp) = sender.send_request(big).await {
        assert_eq!(resp.status(), 431, "an oversized header list was served");
    }
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "only the small request ran"
    );
    server.shutdown().await;
}
