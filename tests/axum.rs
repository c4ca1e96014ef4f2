//! axum: `PeerIdentity` as an extractor (401 without one), `Option<PeerIdentity>`,
//! `RequireIdentity` per route (403 with the reason), and `Denied` as a response.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use mtls::{Authorizer, ClientAuth, Denied, PeerIdentity, RequireIdentity, Server};

async fn whoami(peer: PeerIdentity) -> String {
    format!("you are {peer}")
}

async fn maybe(peer: Option<PeerIdentity>) -> String {
    peer.map_or_else(|| "anonymous".to_owned(), |p| p.to_string())
}

async fn checked(peer: PeerIdentity) -> Result<String, Denied> {
    Authorizer::spiffe_id("spiffe://example.org/billing")
        .unwrap()
        .check(Some(&peer))?;
    Ok("billing only".to_owned())
}

fn app() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/maybe", get(maybe))
        .route("/checked", get(checked))
        .route(
            "/ops",
            get(whoami).route_layer(RequireIdentity::new(
                Authorizer::spiffe_path_prefix("spiffe://example.org/ns/ops").unwrap(),
            )),
        )
}

/// An axum app on our server; optional client auth with anonymous callers admitted, so the
/// missing-identity paths can be reached too.
async fn serve_app(ca: &Ca) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .client_auth(ClientAuth::Optional)
        .authorize(
            Authorizer::any_of([Authorizer::any_verified(), Authorizer::anonymous()]).unwrap(),
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        let _ = server.serve(app()).await;
    });
    (addr, task)
}

async fn get_as(ca: &Ca, leaf: &Issued, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client = mtls::Client::builder()
        .identity(leaf.identity())
        .trust(ca.trust())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}{path}", addr.port());
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

/// An anonymous HTTP/1.1 GET over TLS (no client certificate).
async fn get_anonymous(ca: &Ca, addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = raw_config(ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = raw_connect(addr, config).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_extractor_hands_the_handler_the_verified_identity() {
    let ca = Ca::new("root");
    let (addr, task) = serve_app(&ca).await;
    let leaf = ca.workload("spiffe://example.org/orders");
    let (status, body) = get_as(&ca, &leaf, addr, "/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(body, "you are spiffe://example.org/orders");
    let (_, body) = get_as(&ca, &leaf, addr, "/maybe").await;
    assert_eq!(body, "spiffe://example.org/orders");
    task.abort();
}

#[tokio::test]
async fn a_request_without_identity_is_rejected_with_401() {
    let ca = Ca::new("root");
    let (addr, task) = serve_app(&ca).await;
    let answer = get_anonymous(&ca, addr, "/whoami").await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("no verified client certificate"),
        "{answer}"
    );
    // The optional extractor does not reject.
    let answer = get_anonymous(&ca, addr, "/maybe").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("anonymous"), "{answer}");
    task.abort();
}

#[tokio::test]
async fn require_identity_answers_403_with_the_policy() {
    let ca = Ca::new("root");
    let (addr, task) = serve_app(&ca).await;
    let shop = ca.workload("spiffe://example.org/ns/shop/sa/orders");
    let (status, body) = get_as(&ca, &shop, addr, "/ops").await;
    assert_eq!(status, 403);
    assert!(
        body.contains("spiffe_path_prefix(spiffe://example.org/ns/ops)"),
        "{body}"
    );
    assert!(
        body.contains("spiffe://example.org/ns/shop/sa/orders"),
        "{body}"
    );
    // Segment boundaries hold here too.
    let lookalike = ca.workload("spiffe://example.org/ns/opsx/sa/x");
    assert_eq!(get_as(&ca, &lookalike, addr, "/ops").await.0, 403);
    let ops = ca.workload("spiffe://example.org/ns/ops/sa/oncall");
    let (status, body) = get_as(&ca, &ops, addr, "/ops").await;
    assert_eq!(status, 200);
    assert_eq!(body, "you are spiffe://example.org/ns/ops/sa/oncall");
    // An anonymous caller is denied by the layer before the extractor runs.
    let answer = get_anonymous(&ca, addr, "/ops").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    task.abort();
}

#[tokio::test]
async fn a_handler_can_return_denied() {
    let ca = Ca::new("root");
    let (addr, task) = serve_app(&ca).await;
    let orders = ca.workload("spiffe://example.org/orders");
    let (status, body) = get_as(&ca, &orders, addr, "/checked").await;
    assert_eq!(status, 403);
    assert!(
        body.starts_with("forbidden: peer spiffe://example.org/orders"),
        "{body}"
    );
    let billing = ca.workload("spiffe://example.org/billing");
    assert_eq!(
        get_as(&ca, &billing, addr, "/checked").await,
        (200, "billing only".to_owned())
    );
    task.abort();
}
