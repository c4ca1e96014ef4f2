//! `Server::incoming()`: verified, authorized TLS streams for protocols other than HTTP, with
//! the same timeouts, policy and counters, and our client's connector on the other end.

mod common;

use std::time::Duration;

use common::*;
use mtls::{Authorizer, Client, HandshakeFailure, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn workload(ca: &Ca, id: &'static str) -> Issued {
    ca.issue(Leaf {
        uris: vec![id],
        ..Leaf::client("workload")
    })
}

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
    let client = client(&ca, &workload(&ca, "spiffe://example.org/orders"));
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
    let reporting = client(&ca, &workload(&ca, "spiffe://example.org/reporting"));
    assert!(say(&reporting, port, "let me in").await.is_err());
    let counted = stats.clone();
    assert!(eventually(|| counted.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await);
    let orders = client(&ca, &workload(&ca, "spiffe://example.org/orders"));
    assert!(say(&orders, port, "hi").await.is_ok());
    assert_eq!(stats.handshakes_accepted(), 1, "only orders got a stream");
    task.abort();
}

#[tokio::test]
async fn a_stalled_handshake_on_incoming_times_out() {
    let ca = Ca::new("root");
    let server = server_builder(&ca)
        .handshake_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let task = echo(server);
    let stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let good = client(&ca, &workload(&ca, "spiffe://example.org/orders"));
    assert!(say(&good, port, "not blocked").await.is_ok());
    let counted = stats.clone();
    assert!(eventually(|| counted.handshake_failures(HandshakeFailure::Timeout) == 1).await);
    drop(stalled);
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
    let orders = client(&ca, &workload(&ca, "spiffe://example.org/orders"));
    let url: hyper::Uri = format!("https://localhost:{port}").parse().unwrap();
    let _first = orders.connector().connect(url.clone()).await.unwrap();
    let held = incoming.next().await.unwrap();
    assert_eq!(stats.active_connections(), 1);
    // The second connection waits in the kernel's backlog: no handshake happens.
    let second = tokio::spawn({
        let orders = orders.clone();
        let url = url.clone();
        async move { orders.connector().connect(url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second handshake waits for a free slot"
    );
    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(5), incoming.next())
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
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
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
    let good = client(&ca, &workload(&ca, "spiffe://example.org/orders"));
    let answer = tokio::time::timeout(Duration::from_secs(3), say(&good, port, "still here"))
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
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the socket closes once TlsIncoming is dropped");
}
