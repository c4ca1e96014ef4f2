//! `Server::incoming()`: verified, authorized TLS streams for protocols other than HTTP, with
//! the same timeouts, policy and counters, and our client's connector on the other end.

mod common;

use std::time::Duration;

use common::*;
use mtls::{Authorizer, Client, HandshakeFailure, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Serves a line protocol on `server.incoming()`: each line comes back prefixed with the
/// caller's identity as the server saw it.
fn echo(server: Server) -> tokio::task::JoinHandle<()> {
    let mut incoming = server.incoming();
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
            let who = stream
                .peer_identity()
                .map(|p| p.to_string())
                .unwrap_or_default();
            tokio::spawn(async move {
                let (read, mut write) = tokio::io::split(stream);
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = write.write_all(format!("{who}: {line}\n").as_bytes()).await;
                }
            });
        }
    })
}

async fn say(client: &Client, port: u16, line: &str) -> Result<String, mtls::ClientError> {
    let url = format!("https://localhost:{port}").parse().unwrap();
    let connection = client.connector().connect(url).await?;
    assert!(
        connection
            .peer_identity()
            .dns_names()
            .contains(&"localhost".to_owned())
    );
    let stream = connection.into_inner();
    let (read, mut write) = tokio::io::split(stream);
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(read).read_line(&mut answer),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 => Ok(answer),
        _ => Err(mtls::ClientError::Handshake {
            reason: HandshakeFailure::PeerClosed,
            detail: "no answer".to_owned(),
        }),
    }
}

#[tokio::test]
async fn incoming_streams_carry_the_verified_identity() {
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let task = echo(server);
    let client = client(&ca, &ca.workload("spiffe://example.org/orders"));
    assert_eq!(
        say(&client, port, "ping").await.unwrap(),
        "spiffe://example.org/orders: ping\n"
    );
    assert_eq!(stats.handshakes_accepted(), 1);
    task.abort();
}

#[tokio::test]
async fn an_unauthorized_peer_never_becomes_a_stream() {
    let ca = Ca::new("root");
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let task = echo(server);
    let reporting = ca.workload("spiffe://example.org/reporting");
    let config = raw_config(&ca, Some(&reporting), &[&rustls::version::TLS13], &[]);
    let err = raw_get(([127, 0, 0, 1], port).into(), config)
        .await
        .expect_err("an unauthorized peer gets no stream");
    assert_eq!(
        refusal::alert_of(&err),
        Some(rustls::AlertDescription::AccessDenied),
        "{err:?}"
    );
    let counted = stats.clone();
    assert!(eventually(|| counted.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await);
    let orders = client(&ca, &ca.workload("spiffe://example.org/orders"));
    assert!(say(&orders, port, "hi").await.is_ok());
    assert_eq!(stats.handshakes_accepted(), 1, "only orders got a stream");
    task.abort();
}

#[tokio::test]
async fn a_stalled_handshake_on_incoming_times_out() {
    let ca = Ca::new("root");
    // A handshake timeout no stall reaches in this test: the good client gets its stream
    // while the stalled peer still holds its handshake open.
    let patient = server_builder(&ca)
        .handshake_timeout(Duration::from_secs(600))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = patient.local_addr().port();
    let stats = patient.stats();
    let task = echo(patient);
    let _stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let counted = stats.clone();
    assert!(eventually(|| counted.active_connections() == 1).await);
    let good = client(&ca, &ca.workload("spiffe://example.org/orders"));
    assert!(say(&good, port, "not blocked").await.is_ok());
    assert_eq!(
        stats.handshake_failures_total(),
        0,
        "{:?}",
        stats.failures()
    );
    task.abort();
    // A short timeout, and no good client whose own handshake it could cut: the stall is
    // timed out and named.
    let strict = server_builder(&ca)
        .handshake_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = strict.local_addr().port();
    let stats = strict.stats();
    let task = echo(strict);
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the stalled handshake is closed");
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::Timeout) == 1).await);
    task.abort();
}

#[tokio::test]
async fn a_stream_counts_against_max_connections_until_dropped() {
    let ca = Ca::new("root");
    let server = server_builder(&ca)
        .max_connections(1)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let mut incoming = server.incoming();
    let leaf = ca.workload("spiffe://example.org/orders");
    let orders = client(&ca, &leaf);
    let url: hyper::Uri = format!("https://localhost:{port}").parse().unwrap();
    let mut first = orders.connector().connect(url).await.unwrap().into_inner();
    let mut held = incoming.next().await.unwrap();
    assert_eq!(stats.active_connections(), 1);
    // The second connection reaches the listener's queue; its handshake waits for a slot.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let config = raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[]);
    let second = tokio::spawn(raw_handshake(tcp, config));
    // A round trip through the held stream after that: an accept loop free to take the
    // second connection has had its turn by now.
    first.write_all(b"ping\n").await.unwrap();
    let mut line = String::new();
    BufReader::new(&mut held)
        .read_line(&mut line)
        .await
        .unwrap();
    held.write_all(b"pong\n").await.unwrap();
    line.clear();
    BufReader::new(&mut first)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line, "pong\n");
    assert_eq!(
        stats.active_connections(),
        1,
        "the second connection waits for a free slot"
    );
    assert!(!second.is_finished());
    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(30), incoming.next())
        .await
        .expect("a slot frees up")
        .unwrap();
    assert_eq!(
        next.peer_identity().unwrap().to_string(),
        "spiffe://example.org/orders"
    );
    assert!(second.await.unwrap().is_ok());
}

#[tokio::test]
async fn silent_connections_cannot_fill_the_queue() {
    let ca = Ca::new("root");
    // A handshake timeout no silent peer reaches in this test.
    let server = server_builder(&ca)
        .handshake_timeout(Duration::from_secs(600))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let task = echo(server);
    // More silent peers than the queue holds: they never finish a handshake.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let good = client(&ca, &ca.workload("spiffe://example.org/orders"));
    let answer = tokio::time::timeout(Duration::from_secs(30), say(&good, port, "still here"))
        .await
        .expect("a good client is served while silent peers wait");
    assert!(answer.is_ok());
    drop(silent);
    task.abort();
}

#[tokio::test]
async fn dropping_incoming_stops_the_listener() {
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let incoming = server.incoming();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(incoming);
    assert!(
        eventually(|| std::net::TcpStream::connect(addr).is_err()).await,
        "the socket closes once TlsIncoming is dropped"
    );
}
