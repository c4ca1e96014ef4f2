//! Graceful shutdown: stop accepting, let in-flight requests finish, within a deadline.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn shutdown_drains_an_in_flight_request() {
    let ca = Ca::new("root");
    let mut server = serve(server_builder(&ca)).await;
    let client = client(&ca, &ca.client("orders"));
    let url = server.url("/slow");
    let request = tokio::spawn(async move { client.get(url).await });
    // Let the request reach the handler, then begin shutdown while it sleeps.
    let seen = server.seen.clone();
    assert!(eventually(|| !seen.lock().unwrap().is_empty()).await);
    server.begin_shutdown();
    let resp = request.await.unwrap().expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert!(body_string(resp).await.starts_with("hello"));
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("server stops once drained")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let addr = server.addr;
    server.shutdown().await;
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn shutdown_deadline_cuts_off_slow_requests() {
    let ca = Ca::new("root");
    let mut server = serve(server_builder(&ca).shutdown_timeout(Duration::from_millis(100))).await;
    let client = client(&ca, &ca.client("orders"));
    let url = server.url("/slow");
    let request = tokio::spawn(async move { client.get(url).await });
    let seen = server.seen.clone();
    assert!(eventually(|| !seen.lock().unwrap().is_empty()).await);
    server.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(30), &mut server.task)
        .await
        .expect("server stops at the deadline")
        .unwrap()
        .unwrap();
    // A server that waited for the handler would have answered it: the request fails only
    // if the deadline cut it off.
    let result = request.await.unwrap();
    assert!(result.is_err(), "the cut-off request fails: {result:?}");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_shutdown() {
    let ca = Ca::new("root");
    // A handshake timeout longer than the wait below: shutdown must not wait for it.
    let mut server = serve(server_builder(&ca).handshake_timeout(Duration::from_secs(600))).await;
    let stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let stats = server.stats.clone();
    assert!(eventually(|| stats.active_connections() == 1).await);
    server.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(30), &mut server.task)
        .await
        .expect("shutdown does not wait for a handshake in progress")
        .unwrap()
        .unwrap();
    drop(stalled);
}

#[tokio::test]
async fn dropping_the_serve_future_closes_its_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let config = raw_config(
        &ca,
        Some(&ca.client("orders")),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    // One keep-alive connection that answered a request and now idles (the idle timeout
    // is minutes), and one peer that never starts its handshake.
    let mut tls = raw_connect(server.addr, config).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let stats = server.stats.clone();
    assert!(eventually(|| stats.active_connections() == 2).await);

    server.task.abort();

    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("the idle connection is closed, not left open");
    assert!(matches!(read, Ok(0) | Err(_)), "no more data: {read:?}");
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("the handshake in progress is dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "no more data: {read:?}");
    assert!(eventually(|| stats.active_connections() == 0).await);
}
