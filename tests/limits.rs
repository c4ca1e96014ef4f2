//! Limits and abuse: bounded resources, backpressure, timeouts, and a server that keeps serving
//! good clients while bad ones misbehave. Loopback only, bounded in count and time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mtls::{Client, HandshakeFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server whose request heads must arrive within 300 ms and whose connections may idle
/// between requests for `idle`.
async fn head_timeout_server(ca: &Ca, idle: Duration) -> Running {
    serve(
        server_builder(ca)
            .header_read_timeout(Duration::from_millis(300))
            .idle_timeout(idle),
    )
    .await
}

/// Opens a TLS connection with a client certificate and completes the handshake.
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca: &Ca,
    leaf: &Issued,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = raw_config(ca, Some(leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = raw_connect(addr, config).await?;
    // TLS 1.3: the server's verdict arrives after our Finished; a request makes it visible.
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut buf = [0u8; 512];
    let n = tls.read(&mut buf).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(tls)
}

/// Sends one more request on an open keep-alive connection and reads its answer.
async fn round_trip(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) {
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

async fn good_request(ca: &Ca, server: &Running) {
    let resp = client(ca, &ca.client("good"))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn max_connections_stops_accepting_until_one_closes() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).max_connections(2)).await;
    let leaf = ca.client("orders");
    let first = tls_connect(server.addr, &ca, &leaf).await.unwrap();
    let mut second = tls_connect(server.addr, &ca, &leaf).await.unwrap();
    assert_eq!(server.stats.active_connections(), 2);
    // The third connection reaches the listener's queue; its handshake waits for a slot.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let third = tokio::spawn(raw_handshake(tcp, config));
    // A request on an open connection after that: an accept loop free to take the third
    // connection has had its turn by now.
    round_trip(&mut second).await;
    assert_eq!(
        server.stats.active_connections(),
        2,
        "a third connection is not accepted while two are open"
    );
    assert_eq!(server.stats.handshakes_accepted(), 2);
    assert!(!third.is_finished());
    drop(first);
    tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("served once a slot frees")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn max_handshakes_bounds_concurrent_handshakes_not_connections() {
    let ca = Ca::new("root");
    // A handshake timeout no stall reaches in this test: only the test frees the slot.
    let server = serve(
        server_builder(&ca)
            .max_handshakes(1)
            .handshake_timeout(Duration::from_secs(600)),
    )
    .await;
    let leaf = ca.client("orders");
    // More open connections than handshake slots.
    let mut first = tls_connect(server.addr, &ca, &leaf).await.unwrap();
    let mut second = tls_connect(server.addr, &ca, &leaf).await.unwrap();
    // A silent peer takes the only handshake slot...
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let stats = server.stats.clone();
    assert!(eventually(|| stats.active_connections() == 3).await);
    // ...and the open connections go on being served.
    round_trip(&mut first).await;
    round_trip(&mut second).await;
    // A good client's connection reaches the listener's queue and waits for the slot.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let waiting = tokio::spawn(raw_handshake(tcp, config));
    // A request after that: an accept loop free to take it has had its turn by now.
    round_trip(&mut first).await;
    assert_eq!(
        stats.active_connections(),
        3,
        "a second handshake is not started while one is in progress"
    );
    assert!(!waiting.is_finished());
    // The silent peer leaves; the waiting client gets the slot and is served.
    drop(silent);
    let mut third = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("served once the handshake slot frees")
        .unwrap()
        .unwrap();
    round_trip(&mut third).await;
    assert_eq!(stats.handshakes_accepted(), 3);
    assert_eq!(stats.active_connections(), 3, "three connections are open");
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::PeerClosed) == 1).await);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connection_is_closed_but_a_slow_request_is_not() {
    let ca = Ca::new("root");
    // The head timeout is long: between requests only the idle timeout closes a connection.
    let server = serve(
        server_builder(&ca)
            .idle_timeout(Duration::from_millis(200))
            .header_read_timeout(Duration::from_secs(600)),
    )
    .await;
    let leaf = ca.client("orders");
    // A slow request (500 ms in the handler) outlives the idle timeout and still completes.
    let client = client(&ca, &leaf);
    let resp = client.get(server.url("/slow")).await.unwrap();
    assert_eq!(resp.status(), 200);
    body_string(resp).await;
    // An established connection that says nothing is closed.
    let mut tls = tls_connect(server.addr, &ca, &leaf).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).max_header_size(8 * 1024)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let request = |header: usize| {
        let value = "a".repeat(header);
        format!("GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nx-big: {value}\r\n\r\n")
    };
    // A head under the limit is served.
    let text = raw_request(server.addr, config.clone(), request(4 * 1024).as_bytes())
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    // A head far over it is answered 431 and reaches no handler.
    let mut tls = raw_connect(server.addr, config).await.unwrap();
    let _ = tls.write_all(request(64 * 1024).as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut out))
        .await
        .expect("the server answers and closes");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{text}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 1, "no handler ran");
    server.shutdown().await;
}

#[tokio::test]
async fn tls13_only_refuses_tls12() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).tls13_only()).await;
    let leaf = ca.client("orders");
    refusal::assert_refused_raw(
        &server,
        raw_config(&ca, Some(&leaf), &[&rustls::version::TLS12], &[b"http/1.1"]),
        rustls::AlertDescription::ProtocolVersion,
        HandshakeFailure::ProtocolVersion,
        &client(&ca, &leaf),
    )
    .await;
    server.shutdown().await;
}

/// A client certificate resolver that records the CA names the server hinted.
#[derive(Debug)]
struct HintRecorder {
    inner: Arc<rustls::sign::CertifiedKey>,
    hints: Mutex<Option<usize>>,
}

impl rustls::client::ResolvesClientCert for HintRecorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.hints.lock().unwrap() = Some(root_hint_subjects.len());
        Some(Arc::clone(&self.inner))
    }
    fn has_certs(&self) -> bool {
        true
    }
}

async fn hints_seen(send: bool) -> usize {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).send_ca_hints(send)).await;
    let hints = hints_at(&ca, &server).await;
    server.shutdown().await;
    hints
}

/// How many CA names the server hinted in its CertificateRequest to a client of `ca`.
async fn hints_at(ca: &Ca, server: &Running) -> usize {
    let leaf = ca.client("orders");
    let provider = mtls::crypto_provider();
    let key = rustls::sign::CertifiedKey::from_der(
        leaf.identity().chain().to_vec(),
        {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap()
        },
        &provider,
    )
    .unwrap();
    let recorder = Arc::new(HintRecorder {
        inner: Arc::new(key),
        hints: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_client_cert_resolver(recorder.clone());
    let text = raw_get(server.addr, Arc::new(config)).await.unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the certificate is sent either way: {text}"
    );
    recorder.hints.lock().unwrap().expect("resolver asked")
}

#[tokio::test]
async fn ca_hints_follow_a_trust_rotation() {
    // The live config borrows its hint list for a whole handshake; a new trust bundle must
    // still reach the next CertificateRequest.
    use mtls::Rotate;
    let ca = Ca::new("root");
    let next = Ca::new("next root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let handle = server.handle();
    let server = start(server);
    assert_eq!(hints_at(&ca, &server).await, 1);
    handle.set_trust(vec![ca.trust(), next.trust()]).unwrap();
    assert_eq!(hints_at(&ca, &server).await, 2);
    handle.set_trust(vec![ca.trust()]).unwrap();
    assert_eq!(hints_at(&ca, &server).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn ca_hints_are_sent_by_default_and_can_be_turned_off() {
    assert_eq!(hints_seen(true).await, 1);
    assert_eq!(hints_seen(false).await, 0);
}

#[tokio::test]
async fn our_client_sends_its_certificate_whatever_the_hints_say() {
    // The server trusts two CAs and hints only... its own CA, not ours: we still send ours.
    let ours = Ca::new("our root");
    let theirs = Ca::new("their root");
    let server = serve(
        mtls::Server::builder()
            .identity(theirs.server().identity())
            .trust(theirs.trust())
            .trust(ours.trust())
            .authorize(mtls::Authorizer::any_verified()),
    )
    .await;
    let client = Client::builder()
        .identity(ours.client("orders").identity())
        .trust(theirs.trust())
        .build()
        .unwrap();
    assert_eq!(client.get(server.url("/")).await.unwrap().status(), 200);
    server.shutdown().await;
}

/// Opens 200 connections that never complete a handshake: half say nothing, half send half
/// a ClientHello (a record header promising more than is sent).
async fn abusers(addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut abusers = Vec::new();
    for i in 0..200 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            tcp.write_all(&[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ])
            .await
            .unwrap();
        }
        abusers.push(tcp);
    }
    abusers
}

#[tokio::test]
async fn idle_sockets_and_half_sent_hellos_do_not_delay_a_good_client() {
    let ca = Ca::new("root");
    let good = client(&ca, &ca.client("good"));
    // A handshake timeout no abuser reaches in this test: the good client is served while
    // every abuser still holds its handshake open, not once they time out.
    let patient = serve(server_builder(&ca).handshake_timeout(Duration::from_secs(600))).await;
    let _held = abusers(patient.addr).await;
    let stats = patient.stats.clone();
    assert!(eventually(|| stats.active_connections() == 200).await);
    refusal::assert_served(&patient, &good).await;
    assert_eq!(
        stats.handshake_failures_total(),
        0,
        "{:?}",
        stats.failures()
    );
    patient.shutdown().await;
    // Every abuser is cut off at the handshake timeout, and named.
    let strict = serve(server_builder(&ca).handshake_timeout(Duration::from_millis(300))).await;
    for mut tcp in abusers(strict.addr).await {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "abuser closed by the server");
    }
    let stats = strict.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Timeout) == 200).await);
    assert_eq!(
        stats.handshake_failures_total(),
        200,
        "{:?}",
        stats.failures()
    );
    strict.shutdown().await;
}

#[tokio::test]
async fn plaintext_http_is_closed_fast() {
    let ca = Ca::new("root");
    // Closed as soon as it is read, not when the (long) handshake timeout ends.
    let server = serve(server_builder(&ca).handshake_timeout(Duration::from_secs(600))).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut buf))
        .await
        .expect("the server closes a plaintext peer");
    let stats = server.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Malformed) == 1).await);
    good_request(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn flood_of_bad_certificates_leaves_the_server_serving() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&ca)).await;
    let config = raw_config(
        &ca,
        Some(&foreign.client("intruder")),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    let mut attempts = Vec::new();
    for _ in 0..50 {
        let addr = server.addr;
        let config = Arc::clone(&config);
        attempts.push(tokio::spawn(async move { raw_get(addr, config).await }));
    }
    for a in attempts {
        let err = a.await.unwrap().expect_err("an intruder is refused");
        assert_eq!(
            refusal::alert_of(&err),
            Some(rustls::AlertDescription::UnknownCA),
            "{err:?}"
        );
    }
    good_request(&ca, &server).await;
    let stats = server.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::UnknownIssuer) == 50).await);
    assert!(
        server.seen.lock().unwrap().len() == 1,
        "only the good client was served"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn overlong_certificate_chain_is_refused() {
    let root = Ca::new("root");
    let mut issuing = root.intermediate("ca 1");
    for i in 2..=8 {
        issuing = issuing.intermediate(&format!("ca {i}"));
    }
    let capture = Capture::global();
    let server = serve(server_builder(&root)).await;
    refusal::assert_refused(
        &server,
        &client(&root, &issuing.client("deep")),
        "certificate_unknown",
        HandshakeFailure::Other,
        &client(&root, &root.client("shallow")),
    )
    .await;
    // `other` covers more than depth: the event names the cause.
    let events = capture.events();
    assert!(
        events.iter().any(|e| e.contains("reason=other")
            && e.contains("peer.subject=CN=deep")
            && e.contains("MaximumPathDepthExceeded")),
        "{:?}",
        events
            .iter()
            .filter(|e| e.contains("CN=deep"))
            .collect::<Vec<_>>()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stats_count_accepted_resumed_and_active() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    for _ in 0..3 {
        body_string(client.get(server.url("/")).await.unwrap()).await;
    }
    let stats = server.stats.clone();
    assert_eq!(stats.handshakes_accepted(), 3);
    assert_eq!(stats.handshakes_resumed(), 2);
    assert!(eventually(|| stats.active_connections() == 0).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_whose_certificate_expired_does_not_resume() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    // A certificate valid for a moment: long enough for a full handshake and a resumed one
    // (doubled and tried again on a machine too busy for that), then expired.
    let mut validity = 1;
    let (client, not_after) = loop {
        let short = ca.issue(Leaf {
            not_before: time::Duration::hours(-1),
            not_after: time::Duration::seconds(validity),
            ..Leaf::client("short-lived")
        });
        let client = unpooled_client(&ca, &short);
        let full = client
            .get(server.url("/"))
            .await
            .map(|_| server.last_peer());
        let resumed = client
            .get(server.url("/"))
            .await
            .map(|_| server.last_peer());
        if let (Ok(Some(full)), Ok(Some(resumed))) = (full, resumed) {
            assert!(!full.resumed());
            // The session is offered and honoured while the certificate is valid.
            assert!(resumed.resumed(), "the second connection resumes");
            break (client, resumed.not_after());
        }
        validity *= 2;
        assert!(
            validity <= 64,
            "no resumption within a certificate's validity"
        );
    };
    let stats = server.stats.clone();
    let handled = server.seen.lock().unwrap().len();
    assert_eq!(
        stats.handshake_failures_total(),
        0,
        "{:?}",
        stats.failures()
    );
    // Certificate times have whole seconds: a second past `not_after`, it has expired.
    let expired = not_after + Duration::from_secs(1);
    if let Ok(wait) = expired.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
    // The client offers its session; the certificate inside it has expired since.
    // (The server refuses a resumed session after its handshake, so the client hears no alert.)
    let capture = Capture::global();
    assert!(client.get(server.url("/")).await.is_err());
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Expired) == 1).await);
    let events = capture.events();
    assert!(
        events.iter().any(|e| e.contains("reason=expired")
            && e.contains("resumed=true")
            && e.contains("peer.subject=CN=short-lived")),
        "the refused connection was a resumption: {:?}",
        events
            .iter()
            .filter(|e| e.contains("CN=short-lived"))
            .collect::<Vec<_>>()
    );
    assert_eq!(server.seen.lock().unwrap().len(), handled, "no handler ran");
    good_request(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn unlimited_limits_do_not_panic() {
    let ca = Ca::new("root");
    let server = serve(
        server_builder(&ca)
            .max_connections(usize::MAX)
            .max_handshakes(usize::MAX)
            .handshake_timeout(Duration::MAX)
            .header_read_timeout(Duration::MAX)
            .idle_timeout(Duration::MAX)
            .shutdown_timeout(Duration::MAX)
            .max_header_size(usize::MAX)
            .http2_max_concurrent_streams(u32::MAX),
    )
    .await;
    good_request(&ca, &server).await;
    good_request(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    let ca = Ca::new("root");
    // The idle timeout is long: only the head timeout closes the connection in this test.
    let server = head_timeout_server(&ca, Duration::from_secs(600)).await;
    let leaf = ca.client("orders");
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = raw_connect(server.addr, config).await.unwrap();
    // Half a request head, then silence.
    tls.write_all(b"GET / HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut out))
        .await
        .expect("the server closes a connection whose head never completes");
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    server.shutdown().await;
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_wait_for_a_free_one() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).http2_max_concurrent_streams(2)).await;
    let client = client(&ca, &ca.client("orders"));
    // Warm up one HTTP/2 connection so that all requests share it.
    let resp = client.get(server.url("/")).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    body_string(resp).await;
    // Five requests of 500 ms each, at most two at a time: at least three rounds.
    let started = Instant::now();
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/slow");
            tokio::spawn(async move { client.get(url).await.map(|r| r.status()) })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), 200);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "streams were not limited: {elapsed:?}"
    );
    assert_eq!(
        server.stats.handshakes_accepted(),
        1,
        "one connection carried them all"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_waiting_for_its_next_request_lives_until_the_idle_timeout() {
    let ca = Ca::new("root");
    // The head timeout is short, the idle timeout long: waiting between requests is idle time.
    let server = head_timeout_server(&ca, Duration::from_secs(30)).await;
    let mut tls = tls_connect(server.addr, &ca, &ca.client("orders"))
        .await
        .unwrap();
    // Idle for longer than the head timeout, then a second request on the same connection.
    tokio::time::sleep(Duration::from_millis(900)).await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"),
        "the idle keep-alive connection was closed by the header-read timeout: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_request_head_that_trickles_is_cut_off() {
    let ca = Ca::new("root");
    let server = head_timeout_server(&ca, Duration::from_secs(30)).await;
    let mut tls = tls_connect(server.addr, &ca, &ca.client("orders"))
        .await
        .unwrap();
    // A slow second head: a byte every 100 ms keeps bytes moving (no idle timeout), but the
    // head never completes (here, for up to 30 s).
    let mut closed = false;
    for byte in b"GET / HTTP/1.1\r\nhost: localhost\r\nx-slow: "
        .iter()
        .cycle()
        .take(300)
    {
        if tls.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(100), tls.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the trickling head was not cut off");
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "only the first request ran"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_sent_while_a_response_still_streams_is_not_timed_as_a_head() {
    use http_body_util::channel::Channel;
    use hyper::body::{Bytes, Incoming};
    let ca = Ca::new("root");
    let server = server_builder(&ca)
        .header_read_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    // `/stream` answers at once with a body that takes a second to arrive.
    let task = tokio::spawn(server.serve(hyper::service::service_fn(
        |req: http::Request<Incoming>| async move {
            let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
            let chunks = if req.uri().path() == "/stream" { 5 } else { 1 };
            tokio::spawn(async move {
                for _ in 0..chunks {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if tx.send_data(Bytes::from_static(b"chunk;")).await.is_err() {
                        return;
                    }
                }
            });
            Ok::<_, std::convert::Infallible>(http::Response::new(body))
        },
    )));
    let config = raw_config(
        &ca,
        Some(&ca.client("orders")),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    let mut tls = raw_connect(addr, config).await.unwrap();
    tls.write_all(b"GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The next request, pipelined once the first response has begun to stream (its first
    // chunk has arrived; four more follow over the next 800 ms).
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("chunk;") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf))
            .await
            .expect("the response streams")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    tls.write_all(b"GET /after HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut out))
        .await
        .expect("both answers within the deadline")
        .ok();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.matches("chunk;").count(),
        6,
        "both bodies arrive whole: {text}"
    );
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    task.abort();
}

#[tokio::test]
async fn a_peer_that_says_nothing_after_the_handshake_is_cut_after_the_head_timeout() {
    let ca = Ca::new("root");
    let server = head_timeout_server(&ca, Duration::from_secs(600)).await;
    let config = raw_config(
        &ca,
        Some(&ca.client("orders")),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    let mut tls = raw_connect(server.addr, config).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut out))
        .await
        .expect("the server closes a connection that never sends a request");
    assert!(server.seen.lock().unwrap().is_empty());
    server.shutdown().await;
}
