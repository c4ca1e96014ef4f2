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
    assert!(eventually(|| counted.handshake_failures(HandshakeFailure::UnknownIssuer) == 1).await);
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
