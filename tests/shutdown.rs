//! Graceful shutdown: stop accepting, let in-flight requests finish, within a deadline.

mod common;

use std::time::{Duration, Instant};

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
    let started = Instant::now();
    server.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("server stops at the deadline")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "stopped before the handler finished"
    );
    assert!(request.await.unwrap().is_err(), "the cut-off request fails");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_shutdown() {
    let ca = Ca::new("root");
    // The default 10 s handshake timeout: shutdown must not wait for it.
    let mut server = serve(server_builder(&ca)).await;
    let stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let stats = server.stats.clone();
    assert!(eventually(|| stats.active_connections() == 1).await);
    server.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(3), &mut server.task)
        .await
        .expect("shutdown does not wait for a handshake in progress")
        .unwrap()
        .unwrap();
    drop(stalled);
}
