//! The rustls configs handed to other libraries are the ones our server and client run on:
//! a plain `TlsAcceptor` enforces the policy, a plain `TlsConnector` follows rotation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mtls::{Authorizer, Client, HandshakeFailure, Rotate, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn workload(ca: &Ca, id: &'static str) -> Issued {
    ca.issue(Leaf {
        uris: vec![id],
        ..Leaf::client("workload")
    })
}

/// A plain tokio-rustls echo server on the handed-out config: each accepted stream gets its
/// peer's subject written back.
async fn plain_acceptor(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let peer = tls.get_ref().1.peer_certificates().map(|c| c.len());
                    let _ = tls
                        .write_all(format!("chain of {peer:?}\n").as_bytes())
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

async fn read_line_from(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    let mut tls = raw_connect(addr, config).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    Ok(out)
}

#[tokio::test]
async fn a_plain_acceptor_on_the_handed_out_config_enforces_the_policy() {
    let ca = Ca::new("root");
    let handle = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders").unwrap())
        .build_rustls_config()
        .unwrap();
    let addr = plain_acceptor(handle.rustls_config()).await;

    let allowed = workload(&ca, "spiffe://example.org/orders");
    let config = raw_config(&ca, Some(&allowed), &[&rustls::version::TLS13], &[]);
    assert_eq!(
        read_line_from(addr, config).await.unwrap(),
        "chain of Some(1)\n"
    );

    let denied = workload(&ca, "spiffe://example.org/reporting");
    let config = raw_config(&ca, Some(&denied), &[&rustls::version::TLS13], &[]);
    let err = read_line_from(addr, config).await.unwrap_err();
    let alert = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        alert,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::AccessDenied
        )),
        "{err:?}"
    );
    // Counted under its name, even though our accept loop never saw it.
    let stats = handle.stats();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await);

    // A policy change reaches the same config object.
    handle
        .set_authorizer(Authorizer::spiffe_id("spiffe://example.org/reporting").unwrap())
        .unwrap();
    let config = raw_config(&ca, Some(&denied), &[&rustls::version::TLS13], &[]);
    assert_eq!(
        read_line_from(addr, config).await.unwrap(),
        "chain of Some(1)\n"
    );
}

#[tokio::test]
async fn the_handed_out_client_config_follows_rotation() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let first = ca.client("orders");
    let client = Client::builder()
        .identity(first.identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    // A plain connector built once from the client's config (as HTTP/1.1 for `raw_get`; a
    // clone shares the live resolver and verifier).
    let mut config = (*client.rustls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let get = |config: Arc<rustls::ClientConfig>| async move {
        raw_get(server.addr, config).await.unwrap();
    };
    get(Arc::clone(&config)).await;
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        first.der.as_slice()
    );

    let second = ca.client("orders");
    client.set_identity(second.identity()).unwrap();
    get(Arc::clone(&config)).await;
    let peer = server.last_peer().unwrap();
    assert_eq!(
        peer.leaf().as_ref(),
        second.der.as_slice(),
        "the new certificate is presented"
    );
    assert!(!peer.resumed(), "a new identity starts a new session store");
    server.shutdown().await;
}

#[tokio::test]
async fn the_handed_out_client_config_checks_the_server_as_the_client_does() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&foreign).trust(ca.trust())).await;
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    let err = raw_get(server.addr, client.rustls_config())
        .await
        .unwrap_err();
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_handed_out_client_config_does_not_resume_sessions() {
    // Only our own connections can tie a session to the material that verified it; another
    // library's session could be stored across a swap, so none is stored.
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut config = (*client.rustls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    for _ in 0..2 {
        raw_get(server.addr, Arc::clone(&config)).await.unwrap();
        assert!(!server.last_peer().unwrap().resumed());
    }
    // Our own client does resume.
    for expected in [false, true] {
        let resp = client.get(server.url("/")).await.unwrap();
        body_string(resp).await;
        assert_eq!(server.last_peer().unwrap().resumed(), expected);
    }
    server.shutdown().await;
}
