//! What operators see: a span per connection that carries the verified peer, and counters in
//! the Prometheus text format.

mod common;

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::HandshakeFailure;

/// Log output, written by a `fmt` subscriber (which prints each event's spans and fields).
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn events_inside_a_connection_carry_the_peer_and_counters_scrape_as_prometheus() {
    let output = Output::default();
    let writer = output.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let task = tokio::spawn(server.serve(service_fn(|_req: Request<Incoming>| async {
        tracing::info!("handler ran");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
    })));
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    // HTTP/1.1, whose requests run inside the connection's task and span.
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"]);
    let answer = raw_get(([127, 0, 0, 1], port).into(), config)
        .await
        .unwrap();
    assert!(answer.contains("200 OK"), "{answer}");

    let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("handler ran"))
        .unwrap_or_else(|| panic!("no handler event in {text}"));
    assert!(line.contains("mtls.connection{"), "{line}");
    assert!(
        line.contains("peer.identity=spiffe://example.org/orders"),
        "{line}"
    );
    assert!(
        line.contains("tls.version=\"TLSv1.3\"") || line.contains("tls.version=TLSv1.3"),
        "{line}"
    );
    assert!(line.contains("tls.resumed=false"), "{line}");

    // A rejected peer, then a scrape.
    let foreign = Ca::new("foreign");
    let _ = client(&ca, &foreign.client("intruder"))
        .get(format!("https://localhost:{port}/").parse().unwrap())
        .await
        .unwrap_err();
    let counted = Arc::clone(&stats);
    assert!(
        eventually_for(refusal::SETTLE, || counted
            .handshake_failures(HandshakeFailure::UnknownIssuer)
            == 1)
        .await
    );
    let scrape = stats.prometheus_text();
    assert!(
        scrape.contains("# TYPE mtls_handshake_failures_total counter"),
        "{scrape}"
    );
    assert!(
        scrape.contains("mtls_handshake_failures_total{reason=\"unknown_issuer\"} 1"),
        "{scrape}"
    );
    assert!(
        scrape.contains("mtls_handshakes_accepted_total 1"),
        "{scrape}"
    );
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("mtls_handshake_failures_total{"))
            .count(),
        HandshakeFailure::ALL.len(),
        "every reason is exported, zeros included"
    );
    task.abort();
}

#[tokio::test]
async fn health_reports_rejected_peers_of_the_last_minute_as_json_and_sentences() {
    let ca = Ca::new("root");
    // A month to live: fresh (the default test leaf, a day, would be due for renewal).
    let leaf = ca.issue(Leaf {
        not_after: time::Duration::days(30),
        ..Leaf::server()
    });
    let server = server_builder(&ca)
        .identity(leaf.identity())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let handle = server.handle();
    let running = start(server);
    let healthy = handle.health();
    assert!(healthy.healthy());
    assert!(healthy.problems().is_empty(), "{:?}", healthy.problems());

    // Two callers from a CA the server does not trust, one good one.
    let rogue = Ca::new("rogue");
    for _ in 0..2 {
        let stranger = client(&ca, &rogue.client("stranger"));
        assert!(stranger.get(running.url("/")).await.is_err());
    }
    let friend = client(&ca, &ca.client("friend"));
    friend.get(running.url("/")).await.unwrap();

    assert!(
        eventually_for(refusal::SETTLE, || handle.health().recent_failures.len()
            == 1)
        .await
    );
    let health = handle.health();
    assert!(
        health.healthy(),
        "peers being rejected is not our ill health"
    );
    assert_eq!(
        health.recent_failures,
        [(HandshakeFailure::UnknownIssuer, 2)]
    );
    assert_eq!(health.failures, [(HandshakeFailure::UnknownIssuer, 2)]);
    assert_eq!(
        health.problems(),
        [
            "2 handshakes failed as unknown_issuer (certificate issued by an unknown CA) in the last minute"
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["handshakes"]["accepted"], 1);
    assert_eq!(
        json["handshakes"]["failures_last_minute"]["unknown_issuer"],
        2
    );
    assert_eq!(json["certificate"]["subject"], "CN=server, O=Example");
    assert_eq!(json["certificate"]["expired"], false);
    assert!(json["certificate"]["remaining_seconds"].as_u64().unwrap() > 3600);
    assert_eq!(json["trust_anchors"].as_array().unwrap().len(), 1);
    assert!(json["reload"]["last_error"].is_null());
    running.shutdown().await;
}

#[tokio::test]
async fn health_names_a_certificate_about_to_expire_and_a_failed_reload() {
    let ca = mtls::dev::DevCa::new("root").unwrap();
    // Issued a month ago, with 2 h 10 min left: due for renewal.
    let now = std::time::SystemTime::now();
    let soon = ca
        .issue(&mtls::dev::LeafSpec::server("localhost").validity(
            now - std::time::Duration::from_secs(30 * 86_400),
            now + std::time::Duration::from_secs(2 * 3600 + 600),
        ))
        .unwrap();
    let handle = mtls::Server::builder()
        .identity(soon.identity().unwrap())
        .trust(ca.trust().unwrap())
        .authorize(mtls::Authorizer::any_verified())
        .build_rustls_config()
        .unwrap();
    // A rotation to an expired certificate is refused, and the refusal is reported.
    let expired = ca
        .issue(&mtls::dev::LeafSpec::server("localhost").expired())
        .unwrap();
    use mtls::Rotate;
    assert!(handle.set_identity(expired.identity().unwrap()).is_err());

    let health = handle.health();
    assert!(!health.healthy());
    let problems = health.problems();
    assert!(
        problems[0].starts_with("our certificate CN=localhost, O=mtls development expires in 2 h"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("the last reload failed"),
        "{problems:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["certificate"]["renewal_due"], true);
    assert!(
        json["reload"]["last_error"]
            .as_str()
            .unwrap()
            .contains("CN=localhost")
    );
    assert_eq!(json["reload"]["failures"], 1);
}

/// One plain HTTP/1.1 exchange: the whole answer.
async fn plain_get(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tcp.read_to_string(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    answer
}

#[tokio::test]
async fn the_plain_health_listener_answers_probes_and_scrapes_and_stops_when_dropped() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        not_after: time::Duration::days(30),
        ..Leaf::server()
    });
    let server = server_builder(&ca)
        .identity(leaf.identity())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let handle = server.handle();
    let running = start(server);
    let probes = handle.serve_health("127.0.0.1:0").await.unwrap();
    let addr = probes.local_addr();
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n");

    // A caller from another CA, refused: counted, and visible to the probe.
    let rogue = Ca::new("rogue");
    assert!(
        client(&ca, &rogue.client("stranger"))
            .get(running.url("/"))
            .await
            .is_err()
    );
    assert!(
        eventually_for(refusal::SETTLE, || handle
            .stats()
            .handshake_failures_total()
            == 1)
        .await
    );

    let healthz = plain_get(addr, &get("/healthz")).await;
    assert!(healthz.starts_with("HTTP/1.1 200 OK"), "{healthz}");
    assert!(
        healthz.contains("content-type: application/json"),
        "{healthz}"
    );
    let body = healthz.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        json["handshakes"]["failures_last_minute"]["unknown_issuer"],
        1
    );
    assert!(
        plain_get(addr, &get("/readyz"))
            .await
            .starts_with("HTTP/1.1 200 OK")
    );
    assert!(plain_get(addr, &get("/livez")).await.ends_with("ok\n"));
    let metrics = plain_get(addr, &get("/metrics")).await;
    assert!(
        metrics.contains("mtls_handshake_failures_total{reason=\"unknown_issuer\"} 1"),
        "{metrics}"
    );
    assert!(plain_get(addr, &get("/")).await.starts_with("HTTP/1.1 404"));
    let post = plain_get(
        addr,
        "POST /healthz HTTP/1.1\r\nhost: probe\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");

    // Not healthy: 503 with the reason. (A refused rotation is a failed reload.)
    use mtls::Rotate;
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    assert!(handle.set_identity(expired.identity()).is_err());
    let unhealthy = plain_get(addr, &get("/healthz")).await;
    assert!(unhealthy.starts_with("HTTP/1.1 503"), "{unhealthy}");
    assert!(unhealthy.contains("the last reload failed"), "{unhealthy}");
    let unready = plain_get(addr, &get("/readyz")).await;
    assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
    // Liveness does not follow health: restarting would not mend a bad certificate. Nor does
    // it say more than that the process answers: no subject, no reload error.
    let livez = plain_get(addr, &get("/livez")).await;
    assert!(livez.starts_with("HTTP/1.1 200"), "{livez}");
    assert_eq!(livez.split("\r\n\r\n").nth(1), Some("ok\n"), "{livez}");
    assert!(
        !livez.contains("CN=") && !livez.contains("reload"),
        "{livez}"
    );
    // HEAD, as allowed: the status without the body.
    let head = plain_get(
        addr,
        "HEAD /healthz HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");

    // Dropped: the port closes.
    drop(probes);
    assert!(
        eventually_for(refusal::SETTLE, || std::net::TcpStream::connect(addr)
            .is_err())
        .await,
        "the health listener stops when dropped"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_health_listener_names_an_address_it_cannot_bind() {
    let ca = Ca::new("root");
    let handle = server_builder(&ca).build_rustls_config().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = handle
        .serve_health(taken.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, mtls::Error::Bind { .. }), "{err}");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}

const LIVEZ: &str = "GET /livez HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n";

/// Waits for the server to close `tcp` (end of stream or reset), reading and discarding what
/// it sends first.
async fn closed_by_server(tcp: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    let until_closed = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    // Generous: the listener's deadline is far shorter, but the machine may be busy.
    tokio::time::timeout(std::time::Duration::from_secs(60), until_closed)
        .await
        .is_ok()
}

#[tokio::test]
async fn idle_connections_beyond_the_slots_do_not_keep_livez_from_answering() {
    use tokio::io::AsyncWriteExt;
    let ca = Ca::new("root");
    let handle = server_builder(&ca).build_rustls_config().unwrap();
    let probes = handle.serve_health("127.0.0.1:0").await.unwrap();
    // More idle connections than the listener's 64 slots, all accepted before the probe's:
    // half send nothing, half send half a request line.
    let mut idle = Vec::new();
    for i in 0..100 {
        let mut tcp = tokio::net::TcpStream::connect(probes.local_addr())
            .await
            .unwrap();
        if i % 2 == 1 {
            tcp.write_all(b"GET /liv").await.unwrap();
        }
        idle.push(tcp);
    }
    let livez = plain_get(probes.local_addr(), LIVEZ).await;
    assert!(livez.starts_with("HTTP/1.1 200"), "{livez:?}");
    assert!(livez.ends_with("\r\n\r\nok\n"), "{livez:?}");
    // The oldest idle connections made room: each is closed by the server.
    for tcp in &mut idle[..2] {
        assert!(closed_by_server(tcp).await, "an idle connection is closed");
    }
}

#[tokio::test]
async fn the_health_listener_closes_a_slow_request_head_and_answers_one_request_per_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("root");
    let handle = server_builder(&ca).build_rustls_config().unwrap();
    let probes = handle.serve_health("127.0.0.1:0").await.unwrap();

    // Half a request line, then nothing: the server closes the connection.
    let mut slow = tokio::net::TcpStream::connect(probes.local_addr())
        .await
        .unwrap();
    slow.write_all(b"GET /livez HTT").await.unwrap();
    assert!(
        closed_by_server(&mut slow).await,
        "a request head that never completes is cut off"
    );

    // Two requests on one connection (no `connection: close`): one answer, then the close.
    let mut tcp = tokio::net::TcpStream::connect(probes.local_addr())
        .await
        .unwrap();
    let request = "GET /livez HTTP/1.1\r\nhost: probe\r\n\r\n";
    tcp.write_all(format!("{request}{request}").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tcp.read_to_string(&mut answer),
    )
    .await
    .expect("the server closes after one answer")
    .unwrap();
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 1, "{answer:?}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer:?}");
}

/// Sends `head` a byte at a time, a tenth of a second apart, and then nothing, until the
/// server closes the connection: whether it did within the budget.
async fn trickled_until_closed(addr: std::net::SocketAddr, head: &[u8]) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 256];
    let mut bytes = head.iter();
    let until_closed = async {
        loop {
            tokio::select! {
                read = tcp.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                    if let Some(byte) = bytes.next()
                        && tcp.write_all(&[*byte]).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(refusal::SETTLE, until_closed)
        .await
        .is_ok()
}

#[tokio::test]
async fn the_health_listener_times_out_a_silent_connection_and_a_trickled_head() {
    let ca = Ca::new("root");
    let handle = server_builder(&ca).build_rustls_config().unwrap();
    let probes = handle.serve_health("127.0.0.1:0").await.unwrap();
    let addr = probes.local_addr();
    // Nothing at all; and a head that keeps arriving, a byte at a time, for longer than any
    // deadline the listener has: its deadline runs from the accept, not from the last byte.
    let endless = format!("GET /livez HTTP/1.1\r\nx-pad: {}", "a".repeat(1_000));
    let (silent, trickled) = tokio::join!(
        trickled_until_closed(addr, b""),
        trickled_until_closed(addr, endless.as_bytes())
    );
    assert!(silent, "a connection that sends nothing is closed");
    assert!(
        trickled,
        "a head that never completes is cut off however slowly it comes"
    );
    // The listener still answers.
    let livez = plain_get(addr, LIVEZ).await;
    assert!(livez.starts_with("HTTP/1.1 200"), "{livez:?}");
}
