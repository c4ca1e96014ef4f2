//! Access rules match the canonical request path, never a spelling of it, and the inner service
//! receives that canonical path; a rule narrowed to GET also governs HEAD.

mod common;

use axum::Router;
use axum::http::Uri;
use common::*;
use mtls::{Access, Authorizer, Roles, Server, policy::AccessRule};
use tower_layer::Layer;

const READER: &str = "spiffe://example.org/reader";
const ADMIN: &str = "spiffe://example.org/admin";

/// A narrow rule for an admin's resource before a broad one for every reader, as people write
/// them; the inner service answers with the path it received.
async fn serve_rules(ca: &Ca) -> (u16, tokio::task::JoinHandle<()>) {
    let roles = Roles::new()
        .role("reader", [READER, ADMIN])
        .unwrap()
        .role("admin", [ADMIN])
        .unwrap();
    let access = Access::new(roles)
        .rule(AccessRule::path("/stock/reserved").roles(["admin"]))
        .unwrap()
        .rule(
            AccessRule::path("/reports")
                .methods(["GET"])
                .roles(["admin"]),
        )
        .unwrap()
        .rule(AccessRule::path("/").roles(["reader"]))
        .unwrap();
    let app = Router::new().fallback(|uri: Uri| async move {
        uri.path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default()
    });
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::trust_domain("example.org").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    // Outside the router, so that routing too sees the canonical path.
    let service = access.layer(app);
    let task = tokio::spawn(async move {
        let _ = server.serve(service).await;
    });
    (port, task)
}

async fn call(client: &mtls::Client, method: &str, port: u16, path: &str) -> (u16, String) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{port}{path}"))
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

fn caller(ca: &Ca, id: &'static str) -> mtls::Client {
    client(
        ca,
        &ca.issue(Leaf {
            uris: vec![id],
            ..Leaf::client("caller")
        }),
    )
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_reaches_the_broad_rule() {
    let ca = Ca::new("root");
    let (port, task) = serve_rules(&ca).await;
    let (reader, admin) = (caller(&ca, READER), caller(&ca, ADMIN));
    let spellings = [
        "/stock/reserved",
        "/stock//reserved",
        "/stock/./reserved",
        "/stock/x/../reserved",
        "/stock/%72eserved",
        "/%73tock/reserved",
        "/stock/reserved/",
        "//stock/reserved?q=1",
    ];
    for path in spellings {
        let (status, body) = call(&reader, "GET", port, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("/stock/reserved any method for admin"),
            "{path}: {body}"
        );
        // The admin is let in, and the service receives the canonical path.
        let (status, body) = call(&admin, "GET", port, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.starts_with("/stock/reserved"), "{path}: served {body}");
        assert!(
            !body.contains("//") && !body.contains("/.") && !body.contains('%'),
            "{body}"
        );
    }
    // The query is kept as it was sent.
    assert_eq!(
        call(&admin, "GET", port, "//stock/reserved?q=%2F").await.1,
        "/stock/reserved?q=%2F"
    );
    // The broad rule still serves readers everything else.
    let (status, body) = call(&reader, "GET", port, "/stock/other").await;
    assert_eq!((status, body.as_str()), (200, "/stock/other"));
    task.abort();
}

#[tokio::test]
async fn paths_without_a_safe_canonical_form_are_refused_with_400() {
    let ca = Ca::new("root");
    let (port, task) = serve_rules(&ca).await;
    let admin = caller(&ca, ADMIN);
    for path in [
        "/stock%2Freserved",
        "/stock%2freserved",
        "/stock%5Creserved",
        "/../stock",
        "/a/%2e%2e/%2e%2e/x",
        "/a%zz",
    ] {
        let (status, body) = call(&admin, "GET", port, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.starts_with("bad request: the request path"),
            "{path}: {body}"
        );
    }
    // The same caller on a plain path is served.
    assert_eq!(call(&admin, "GET", port, "/stock/reserved").await.0, 200);
    task.abort();
}

#[tokio::test]
async fn a_rule_narrowed_to_get_governs_head() {
    let ca = Ca::new("root");
    let (port, task) = serve_rules(&ca).await;
    let (reader, admin) = (caller(&ca, READER), caller(&ca, ADMIN));
    // HEAD is answered by the GET handler: the GET rule decides it, not the broad one.
    let (status, _) = call(&reader, "HEAD", port, "/reports").await;
    assert_eq!(status, 403);
    assert_eq!(call(&reader, "GET", port, "/reports").await.0, 403);
    assert_eq!(call(&admin, "HEAD", port, "/reports").await.0, 200);
    // A method the GET rule does not cover falls through to the broad rule, as before.
    assert_eq!(call(&reader, "POST", port, "/reports").await.0, 200);
    task.abort();
}
