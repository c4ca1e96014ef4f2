//! Named failures that need a peer misbehaving on purpose, and protocol promises that only a
//! hand-built client can test: each produced by a real handshake on 127.0.0.1, counted under
//! its own reason.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mtls::{HandshakeFailure, server::ServerStats};
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
    refusal::assert_served(&server, &client(&ca, &ca.client("good"))).await;
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
    let config = presenting_config(
        &ca,
        vec![forged.into()],
        leaf.key(),
        &[&rustls::version::TLS13],
    );
    refusal::assert_refused_raw(
        &server,
        config,
        rustls::AlertDescription::DecryptError,
        HandshakeFailure::BadSignature,
        &client(&ca, &ca.client("good")),
    )
    .await;
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

#[tokio::test]
async fn a_certificate_message_over_64_kib_is_refused() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // Each certificate under 64 KiB, the Certificate message carrying them over it.
    let leaf = padded_client(&ca, 1500);
    assert!(leaf.der.len() < 64 * 1024 && leaf.der.len() * 2 > 64 * 1024);
    let chain = vec![leaf.der.clone().into(), leaf.der.clone().into()];
    let config = presenting_config(&ca, chain, leaf.key(), &[&rustls::version::TLS13]);
    assert!(raw_get(server.addr, config).await.is_err());
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

/// HTTP/2 spoken by hand, for what a well-behaved client never sends: frames are written as
/// given and read back one at a time.
mod h2 {
    use super::*;

    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const GOAWAY: u8 = 0x7;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const CANCEL: u32 = 0x8;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A header block (HPACK, no dynamic table) for `GET /`, with `extra` as one more
    /// header's value if given.
    pub fn get(extra: Option<&str>) -> Vec<u8> {
        // :method GET, :scheme https, :path / from the static table; :authority literal.
        let mut block = vec![0x82, 0x87, 0x84, 0x01];
        integer(&mut block, 7, b"localhost".len());
        block.extend_from_slice(b"localhost");
        if let Some(value) = extra {
            block.push(0x00);
            integer(&mut block, 7, b"x-big".len());
            block.extend_from_slice(b"x-big");
            integer(&mut block, 7, value.len());
            block.extend_from_slice(value.as_bytes());
        }
        block
    }

    /// An HPACK integer with an `n`-bit prefix (the prefix's other bits zero).
    fn integer(out: &mut Vec<u8>, n: u32, value: usize) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(value as u8);
            return;
        }
        out.push(max as u8);
        let mut rest = value - max;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }

    pub fn request(stream: u32, extra: Option<&str>) -> Vec<u8> {
        frame(HEADERS, END_STREAM | END_HEADERS, stream, &get(extra))
    }

    pub fn reset(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// A verified HTTP/2 connection that has sent the preface and empty settings.
    pub async fn connect(server: &Running, ca: &Ca) -> tokio_rustls::client::TlsStream<TcpStream> {
        let config = raw_config(
            ca,
            Some(&ca.client("orders")),
            &[&rustls::version::TLS13],
            &[b"h2"],
        );
        let mut tls = raw_connect(server.addr, config).await.unwrap();
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        tls.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        tls
    }

    /// The next frame (kind, flags, stream, payload), or `None` once the server has closed.
    pub async fn next(
        tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    ) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(30), tls.read_exact(&mut head))
            .await
            .expect("the server answers or closes");
        read.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        tls.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }

    /// A response's HEADERS block says 200 (`:status 200` is HPACK static entry 8).
    pub fn is_ok(block: &[u8]) -> bool {
        block.first() == Some(&0x88)
    }

    pub fn code(payload: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(payload[at..at + 4].try_into().unwrap())
    }
}

#[tokio::test]
async fn an_http2_header_list_over_the_limit_is_refused() {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).max_header_size(8 * 1024)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"h2"]);
    let tls = raw_connect(server.addr, config).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = |header: usize| {
        hyper::Request::get("https://localhost/")
            .header("x-big", "a".repeat(header))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // A list over the 8 KiB the server announced is answered 431 on its stream...
    let resp = sender.send_request(get(16 * 1024)).await.unwrap();
    assert_eq!(resp.status(), 431, "an oversized header list was served");
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    // ...and the connection goes on serving a list under the limit.
    let resp = sender.send_request(get(4 * 1024)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "only the small request ran"
    );
    server.shutdown().await;
}

/// Opens `n` streams and resets each at once, all in one write, then asks for `GET /` on a
/// fresh stream. Returns the GOAWAY error code if the server closed the connection, or
/// `None` if it answered the request.
async fn rapid_reset(server: &Running, ca: &Ca, n: u32) -> Option<u32> {
    let mut tls = h2::connect(server, ca).await;
    let mut burst = Vec::new();
    for i in 0..n {
        burst.extend(h2::request(2 * i + 1, None));
        burst.extend(h2::reset(2 * i + 1, h2::CANCEL));
    }
    let last = 2 * n + 1;
    burst.extend(h2::request(last, None));
    let _ = tls.write_all(&burst).await;
    while let Some((kind, _, stream, payload)) = h2::next(&mut tls).await {
        match kind {
            h2::GOAWAY => return Some(h2::code(&payload, 4)),
            h2::HEADERS if stream == last => {
                assert!(h2::is_ok(&payload), "{payload:?}");
                return None;
            }
            _ => {}
        }
    }
    panic!("closed without GOAWAY or an answer");
}

#[tokio::test]
async fn http2_rapid_reset_is_capped_at_64_pending_resets() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // Under the cap (and over h2's own default of 20): the connection goes on serving.
    assert_eq!(rapid_reset(&server, &ca, 40).await, None);
    // Far over it: the server closes the connection with ENHANCE_YOUR_CALM...
    assert_eq!(
        rapid_reset(&server, &ca, 200).await,
        Some(h2::ENHANCE_YOUR_CALM)
    );
    // ...and goes on serving everyone else.
    refusal::assert_served(&server, &client(&ca, &ca.client("good"))).await;
    server.shutdown().await;
}
