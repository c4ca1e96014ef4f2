//! Roles by identity over real TLS: a matrix of callers × routes × methods, deny by default,
//! prefixes on segment boundaries, an empty role, the denial event, and RFC 8705 thumbprints.

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use mtls::{
    Access, Authorizer, PeerIdentity, Roles, Server, policy::AccessError, policy::AccessRule,
    policy::Decision,
};

const ORDERS: &str = "spiffe://example.org/ns/prod/sa/orders";
const BILLING: &str = "spiffe://example.org/ns/prod/sa/billing";
const ONCALL: &str = "spiffe://example.org/ns/ops/sa/oncall";
const STRANGER: &str = "spiffe://example.org/ns/prod/sa/stranger";

fn access() -> Access {
    let roles = Roles::new()
        .role("reader", [ORDERS, BILLING])
        .unwrap()
        .role("admin", ["spiffe://example.org/ns/ops/*"])
        .unwrap()
        .role("auditor", Vec::<&str>::new())
        .unwrap();
    Access::new(roles)
        .rule(
            AccessRule::path("/stock")
                .methods(["GET"])
                .roles(["reader", "admin"]),
        )
        .unwrap()
        .rule(
            AccessRule::path("/stock")
                .methods(["POST", "DELETE"])
                .roles(["admin"]),
        )
        .unwrap()
        .rule(AccessRule::path("/audit").roles(["auditor"]))
        .unwrap()
}

async fn serve_app(ca: &Ca) -> (u16, tokio::task::JoinHandle<()>) {
    let ok = || async { "ok" };
    let app = Router::new()
        .route("/stock", get(ok).post(ok).delete(ok))
        .route("/stock/{item}", get(ok))
        .route("/stockpile", get(ok))
        .route("/audit", get(ok))
        .route("/metrics", get(ok))
        .layer(access());
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::trust_domain("example.org").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let task = tokio::spawn(async move {
        let _ = server.serve(app).await;
    });
    (port, task)
}

async fn call(ca: &Ca, who: &'static str, method: &str, path: &str, port: u16) -> (u16, String) {
    let leaf = ca.issue(Leaf {
        uris: vec![who],
        ..Leaf::client("caller")
    });
    let client = client(ca, &leaf);
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{port}{path}"))
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

#[tokio::test]
async fn callers_routes_and_methods_follow_the_rules() {
    let capture = Capture::global();
    let ca = Ca::new("root");
    let (port, task) = serve_app(&ca).await;
    let matrix = [
        // who, method, path, status
        (ORDERS, "GET", "/stock", 200),
        (BILLING, "GET", "/stock/42", 200),
        (ONCALL, "GET", "/stock", 200),
        (ORDERS, "POST", "/stock", 403),
        (ONCALL, "POST", "/stock", 200),
        (ONCALL, "DELETE", "/stock", 200),
        (STRANGER, "GET", "/stock", 403),
        // `/stock` does not cover `/stockpile`, which no rule lists: denied by default.
        (ORDERS, "GET", "/stockpile", 403),
        (ONCALL, "GET", "/stockpile", 403),
        // A path that is not listed at all.
        (ONCALL, "GET", "/metrics", 403),
        // A role with no members admits nobody.
        (ONCALL, "GET", "/audit", 403),
    ];
    for (who, method, path, expected) in matrix {
        let (status, body) = call(&ca, who, method, path, port).await;
        assert_eq!(status, expected, "{who} {method} {path}: {body}");
        if expected == 403 {
            assert!(body.starts_with(&format!("forbidden: {who}: ")), "{body}");
        }
    }
    let (_, body) = call(&ca, ORDERS, "POST", "/stock", port).await;
    assert!(
        body.contains("rule `/stock POST,DELETE for admin`"),
        "{body}"
    );
    let (_, body) = call(&ca, ONCALL, "GET", "/metrics", port).await;
    assert!(
        body.contains("no access rule covers GET /metrics"),
        "{body}"
    );
    let events = capture.events();
    assert!(
        events
            .iter()
            .any(|e| e.contains(&format!("peer.identity={STRANGER}"))
                && e.contains("method=GET")
                && e.contains("path=/stock")
                && e.contains("reason=rule `/stock GET for reader,admin`")),
        "{events:?}"
    );
    task.abort();
}

#[test]
fn rules_are_checked_when_they_are_built() {
    let roles = Roles::new().role("reader", [ORDERS]).unwrap();
    let err = Access::new(roles.clone())
        .rule(AccessRule::path("/stock").roles(["readers"]))
        .unwrap_err();
    assert!(
        matches!(&err, AccessError::UnknownRole { role, .. } if role == "readers"),
        "{err}"
    );
    assert!(err.to_string().contains("defined: reader"), "{err}");
    assert!(matches!(
        Access::new(roles.clone()).rule(AccessRule::path("stock").roles(["reader"])),
        Err(AccessError::Path(_))
    ));
    assert!(matches!(
        Access::new(roles.clone()).rule(AccessRule::path("/stock")),
        Err(AccessError::NoRoles(_))
    ));
    assert!(matches!(
        Access::new(roles.clone()).rule(AccessRule::path("/s").methods(["G ET"]).roles(["reader"])),
        Err(AccessError::Method { .. })
    ));
    assert!(matches!(
        roles.clone().role("reader", [BILLING]),
        Err(AccessError::DuplicateRole(_))
    ));
    assert!(matches!(
        Roles::new().role("typo", ["example.org/orders"]),
        Err(AccessError::Pattern { .. })
    ));
    // Anonymous callers hold no role.
    let access = Access::new(roles)
        .rule(AccessRule::path("/").roles(["reader"]))
        .unwrap();
    assert!(matches!(
        access.decide(&http::Method::GET, "/anything", None),
        Decision::Denied(_)
    ));
}

#[test]
fn identity_patterns_share_one_syntax() {
    for (pattern, display) in [
        (
            "spiffe://example.org/ns/prod/sa/orders",
            "spiffe_id(spiffe://example.org/ns/prod/sa/orders)",
        ),
        (
            "spiffe://example.org/ns/prod/*",
            "spiffe_path_prefix(spiffe://example.org/ns/prod)",
        ),
        ("spiffe://example.org", "trust_domain(example.org)"),
        ("spiffe://example.org/*", "trust_domain(example.org)"),
        ("dns:*.internal.example", "dns_name(*.internal.example)"),
        ("cn:legacy", "common_name(legacy)"),
    ] {
        assert_eq!(Authorizer::pattern(pattern).unwrap().to_string(), display);
    }
    for bad in [
        "example.org/orders",
        "SPIFFE://example.org/x",
        "dns:*.*.example",
        "spiffe://example.org/a/../b",
        "",
    ] {
        assert!(Authorizer::pattern(bad).is_err(), "{bad}");
    }
}

#[test]
#[ignore = "needs the openssl command; .ci/run runs it"]
fn x5t_s256_equals_the_openssl_fingerprint_base64url_encoded() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    let dir = Dir::new("x5t");
    dir.write("leaf.pem", &leaf.cert_pem);
    let text = run(
        "openssl",
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "leaf.pem",
        ],
        &dir.0,
    );
    // "sha256 Fingerprint=AB:CD:..."
    let bytes = hex(text.trim().rsplit('=').next().unwrap());
    assert_eq!(bytes.len(), 32);
    let peer = PeerIdentity::from_chain(leaf.identity().chain()).unwrap();
    assert_eq!(peer.x5t_s256(), base64url(&bytes));
    assert_eq!(peer.x5t_s256().len(), 43, "32 bytes, no padding");
}

/// An independent base64url (no padding) for the comparison.
fn base64url(bytes: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = String::new();
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(alphabet[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        out.push(alphabet[((bits << (6 - count)) & 63) as usize] as char);
    }
    out
}
