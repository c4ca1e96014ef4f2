//! What our client verifies about the server, and what it says when a call fails.

mod common;

use std::time::Duration;

use common::*;
use mtls::{Client, ClientError, HandshakeFailure, PeerIdentity};

#[tokio::test]
async fn client_rejects_a_server_from_another_ca() {
    let ca = Ca::new("root");
    let other = Ca::new("other root");
    // The server trusts our CA but presents a certificate from another one.
    let server = serve(server_presenting(&ca, &other.server())).await;
    let err = client(&ca, &ca.client("orders"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    match err {
        ClientError::ServerCertificate { reason, .. } => {
            assert_eq!(reason, HandshakeFailure::UnknownIssuer)
        }
        other => panic!("expected ServerCertificate, got {other:?}"),
    }
    let stats = server.stats.clone();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::RejectedByPeer) == 1).await);
    server.shutdown().await;
}

#[tokio::test]
async fn client_rejects_a_wrong_hostname() {
    let ca = Ca::new("root");
    let server = serve(server_presenting(
        &ca,
        &ca.issue(Leaf {
            dns: vec!["inventory.internal"],
            ips: vec![],
            ..Leaf::server()
        }),
    ))
    .await;
    let err = client(&ca, &ca.client("orders"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    match &err {
        ClientError::ServerCertificate { reason, detail } => {
            assert_eq!(*reason, HandshakeFailure::WrongName);
            assert!(detail.contains("inventory.internal"), "{detail}");
        }
        other => panic!("expected ServerCertificate, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn client_verifies_a_server_by_ip_address() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let resp = client(&ca, &ca.client("orders"))
        .get(url.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn response_carries_the_servers_identity() {
    let ca = Ca::new("root");
    let server = serve(server_presenting(
        &ca,
        &ca.issue(Leaf {
            uris: vec!["spiffe://example.org/inventory"],
            ..Leaf::server()
        }),
    ))
    .await;
    let resp = client(&ca, &ca.client("orders"))
        .get(server.url("/"))
        .await
        .unwrap();
    let peer = resp
        .extensions()
        .get::<PeerIdentity>()
        .expect("server identity in response extensions");
    assert_eq!(
        peer.spiffe_id().map(|id| id.as_str()),
        Some("spiffe://example.org/inventory")
    );
    assert_eq!(peer.dns_names(), ["localhost"]);
    server.shutdown().await;
}

#[tokio::test]
async fn resumed_session_still_carries_identity() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    // No pooling: each request opens a new connection, which resumes the TLS session.
    let client = unpooled_client(&ca, &leaf);
    let first = client.get(server.url("/")).await.unwrap();
    assert!(!first.extensions().get::<PeerIdentity>().unwrap().resumed());
    body_string(first).await;
    let second = client.get(server.url("/")).await.unwrap();
    assert!(
        second.extensions().get::<PeerIdentity>().unwrap().resumed(),
        "the second connection resumes"
    );
    body_string(second).await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let resumed = seen[1].as_ref().expect("resumed request carries identity");
    assert!(resumed.resumed());
    assert_eq!(
        resumed.spiffe_id().map(|id| id.as_str()),
        Some("spiffe://example.org/orders")
    );
    assert_eq!(
        resumed.fingerprint(),
        seen[0].as_ref().unwrap().fingerprint()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn pooled_connection_is_reused() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let client = client(&ca, &ca.client("orders"));
    for _ in 0..3 {
        let resp = client.get(server.url("/")).await.unwrap();
        body_string(resp).await;
    }
    assert_eq!(
        server.stats.handshakes_accepted(),
        1,
        "one connection, three requests"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_reports_connection_refused() {
    let ca = Ca::new("root");
    // Bind and drop to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(&ca, &ca.client("orders"))
        .get(format!("https://127.0.0.1:{port}/").parse().unwrap())
        .await
        .unwrap_err();
    match &err {
        ClientError::Connect { authority, source } => {
            assert_eq!(authority, &format!("127.0.0.1:{port}"));
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn client_refuses_plain_http_urls() {
    let ca = Ca::new("root");
    let err = client(&ca, &ca.client("orders"))
        .get("http://127.0.0.1:1/".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidUri { .. }), "{err:?}");
    assert!(err.to_string().contains("https://"));
}

#[tokio::test]
async fn client_times_out_on_a_silent_server() {
    let ca = Ca::new("root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(
            format!("https://127.0.0.1:{}/", addr.port())
                .parse()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn builders_require_identity_and_trust() {
    let ca = Ca::new("root");
    let err = Client::builder().trust(ca.trust()).build().unwrap_err();
    assert!(matches!(err, mtls::Error::MissingIdentity), "{err:?}");
    let err = Client::builder()
        .identity(ca.client("x").identity())
        .build()
        .unwrap_err();
    assert!(matches!(err, mtls::Error::MissingTrust), "{err:?}");
    let err = mtls::Server::builder()
        .identity(ca.server().identity())
        .authorize(mtls::Authorizer::any_verified())
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(matches!(err, mtls::Error::MissingTrust), "{err:?}");
    let err = mtls::Server::builder()
        .trust(ca.trust())
        .authorize(mtls::Authorizer::any_verified())
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(matches!(err, mtls::Error::MissingIdentity), "{err:?}");
    let err = mtls::Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(matches!(err, mtls::Error::MissingPolicy), "{err:?}");
    assert!(
        err.to_string().contains("Authorizer::any_verified()"),
        "{err}"
    );
}

#[tokio::test]
async fn binding_a_busy_port_is_a_named_error() {
    let ca = Ca::new("root");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = server_builder(&ca).bind(addr).await.unwrap_err();
    match &err {
        mtls::Error::Bind { addr: shown, .. } => assert_eq!(shown, &addr.to_string()),
        other => panic!("expected Bind, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_reports_the_identity_and_trust_it_uses_now() {
    use mtls::Rotate;
    let ca = Ca::new("root");
    let first = ca.client("orders");
    let client = Client::builder()
        .identity(first.identity())
        .trust(ca.trust())
        .crls(mtls::Crls::from_bytes(ca.crl(&[&[0x42]]).as_bytes()).unwrap())
        .build()
        .unwrap();
    assert_eq!(client.identity().chain()[0].as_ref(), &first.der[..]);
    // CRLs given apart ride on the first bundle.
    let trust = client.trust();
    assert_eq!(trust.len(), 1);
    assert_eq!(trust[0].crls().len(), 1);
    assert_eq!(trust[0].certificates(), ca.trust().certificates());

    // After a rotation, the new identity.
    let second = ca.client("orders-renewed");
    client.set_identity(second.identity()).unwrap();
    assert_eq!(client.identity().chain()[0].as_ref(), &second.der[..]);
}
