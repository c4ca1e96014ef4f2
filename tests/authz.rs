//! Policy in the handshake: who is allowed in, who is expected on the other end, and how
//! trust domains, resumption and per-route checks keep to it. Real TLS over 127.0.0.1.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::{Authorizer, Client, ClientAuth, ClientError, HandshakeFailure, Server, TrustBundle};
use rcgen::ExtendedKeyUsagePurpose;

fn policy(id: &str) -> Authorizer {
    Authorizer::spiffe_id(id).unwrap()
}

#[tokio::test]
async fn allowed_identity_is_served() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).authorize(policy("spiffe://example.org/orders"))).await;
    let resp = client(&ca, &ca.workload("spiffe://example.org/orders"))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn valid_chain_with_the_wrong_identity_is_denied_in_the_handshake() {
    let capture = Capture::scoped();
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca).authorize(policy("spiffe://example.org/orders"))).await;
    let err = client(&ca, &ca.workload("spiffe://example.org/reporting"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    match &err {
        ClientError::ServerRejectedCertificate { alert } => assert_eq!(alert, "access_denied"),
        other => panic!("expected access_denied, got {other:?}"),
    }
    assert!(err.to_string().contains("policy does not allow"), "{err}");
    refusal::assert_counted(&server, HandshakeFailure::NotAuthorized, 0).await;
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    let events = capture.events();
    let event = events
        .iter()
        .find(|e| {
            e.contains("reason=not_authorized")
                && e.contains("policy=spiffe_id(spiffe://example.org/orders)")
        })
        .unwrap_or_else(|| panic!("no denial event in {events:?}"));
    assert!(
        event.contains("peer.identity=spiffe://example.org/reporting"),
        "{event}"
    );
    assert!(
        event.contains("policy=spiffe_id(spiffe://example.org/orders)"),
        "{event}"
    );
    // The certificate that was presented is described, as for every other failure.
    assert!(event.contains("peer.subject=CN="), "{event}");
    assert!(
        event.contains("peer.sans=spiffe://example.org/reporting"),
        "{event}"
    );
    assert!(event.contains("peer.issuer=CN=root"), "{event}");
    assert!(event.contains("peer.not_after="), "{event}");
    server.shutdown().await;
}

#[tokio::test]
async fn right_identity_from_a_foreign_ca_is_rejected() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&ca).authorize(policy("spiffe://example.org/orders"))).await;
    let err = client(&ca, &foreign.workload("spiffe://example.org/orders"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("unknown_ca"), "{err:?}");
    refusal::assert_counted(&server, HandshakeFailure::UnknownIssuer, 0).await;
    server.shutdown().await;
}

/// A server federating two trust domains, each with its own CA, plus a plain CA for
/// certificates without SPIFFE IDs.
async fn federated() -> (Ca, Ca, Ca, Running) {
    let ours = Ca::new("example.org CA");
    let partner = Ca::new("partner.example CA");
    let plain = Ca::new("legacy CA");
    let server = serve(
        Server::builder()
            .identity(ours.server().identity())
            .trust(ours.trust().for_trust_domain("example.org").unwrap())
            .trust(partner.trust().for_trust_domain("partner.example").unwrap())
            .trust(plain.trust())
            .authorize(Authorizer::any_verified()),
    )
    .await;
    (ours, partner, plain, server)
}

#[tokio::test]
async fn federated_bundles_accept_each_domain_from_its_own_ca() {
    let (ours, partner, plain, server) = federated().await;
    for (ca, leaf) in [
        (&ours, ours.workload("spiffe://example.org/orders")),
        (&ours, partner.workload("spiffe://partner.example/billing")),
        (&ours, plain.client("legacy")),
    ] {
        let resp = client(ca, &leaf).get(server.url("/")).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn one_domains_ca_cannot_mint_identities_for_another() {
    let (ours, partner, plain, server) = federated().await;
    for leaf in [
        ours.workload("spiffe://partner.example/billing"),
        partner.workload("spiffe://example.org/orders"),
        // The plain CA may not mint SPIFFE identities of a federated domain either,
        plain.workload("spiffe://example.org/orders"),
        // nor of a domain nobody federates.
        ours.workload("spiffe://unknown.example/x"),
    ] {
        let err = client(&ours, &leaf).get(server.url("/")).await.unwrap_err();
        assert_eq!(rejected_alert(&err), Some("unknown_ca"), "{err:?}");
    }
    let stats = server.stats.clone();
    assert!(
        eventually_for(refusal::SETTLE, || stats
            .handshake_failures(HandshakeFailure::UnknownIssuer)
            == 4)
        .await
    );
    server.shutdown().await;
}

#[tokio::test]
async fn resumption_after_the_policy_changed_is_rejected() {
    let ca = Ca::new("root");
    let running = serve(
        Server::builder()
            .identity(ca.server().identity())
            .trust(ca.trust())
            .authorize(Authorizer::trust_domain("example.org").unwrap()),
    )
    .await;
    let handle = running.handle.clone();
    let leaf = ca.workload("spiffe://example.org/reporting");
    let client = unpooled_client(&ca, &leaf);
    body_string(client.get(running.url("/")).await.unwrap()).await;
    handle
        .set_authorizer(policy("spiffe://example.org/orders"))
        .unwrap();
    assert_eq!(
        handle.authorizer().to_string(),
        "spiffe_id(spiffe://example.org/orders)"
    );
    let err = client.get(running.url("/")).await.unwrap_err();
    assert_eq!(rejected_alert(&err), Some("access_denied"), "{err:?}");
    assert_eq!(
        running.seen.lock().unwrap().len(),
        1,
        "only the first request was served"
    );
    // The first line of defence: a policy change builds a config with a fresh session cache,
    // so the client's ticket does not resume and the full verifier denies it with an alert.
    // (A policy whose answer changes without a swap is re-checked on resumption; see
    // `resumed_session_is_reauthorized_against_the_current_decision`.)
    assert_eq!(running.stats.handshakes_resumed(), 0, "no session resumed");
    running.shutdown().await;
}

#[tokio::test]
async fn resumed_session_is_reauthorized_against_the_current_decision() {
    let capture = Capture::scoped();
    let ca = Ca::new("root");
    let open = Arc::new(AtomicBool::new(true));
    let gate = Arc::clone(&open);
    let server = serve(
        server_builder(&ca).authorize(Authorizer::from_fn("gate is open", move |_| {
            gate.load(Ordering::SeqCst)
        })),
    )
    .await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    body_string(client.get(server.url("/")).await.unwrap()).await;
    // Same config, so the next connection resumes: the verifier does not run, the re-check must.
    open.store(false, Ordering::SeqCst);
    assert!(client.get(server.url("/")).await.is_err());
    refusal::assert_counted(&server, HandshakeFailure::NotAuthorized, 0).await;
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    let events = capture.events();
    assert!(
        events.iter().any(|e| e.contains("reason=not_authorized")
            && e.contains("resumed=true")
            && e.contains("peer.subject=CN=orders")),
        "{events:?}"
    );
    assert_eq!(
        server.stats.handshakes_resumed(),
        0,
        "the denied resumption is not counted"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn optional_mode_with_an_identity_policy_still_requires_a_certificate() {
    let ca = Ca::new("root");
    let server = serve(
        server_builder(&ca)
            .client_auth(ClientAuth::Optional)
            .authorize(Authorizer::trust_domain("example.org").unwrap()),
    )
    .await;
    let config = raw_config(&ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let err = raw_get(server.addr, config).await.unwrap_err();
    assert_eq!(
        alert_of(&err),
        Some(rustls::AlertDescription::CertificateRequired)
    );
    assert!(server.seen.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn per_route_policy_answers_403_with_the_reason() {
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let admins = policy("spiffe://example.org/admin");
    let service = service_fn(move |req: Request<Incoming>| {
        let admins = admins.clone();
        async move {
            let resp = match (req.uri().path(), admins.check_request(&req)) {
                ("/admin", Err(denied)) => denied.into_response(),
                _ => Response::new(Full::new(Bytes::from_static(b"ok"))),
            };
            Ok::<_, Infallible>(resp)
        }
    });
    tokio::spawn(server.serve(service));
    let url = |path: &str| {
        format!("https://localhost:{}{path}", addr.port())
            .parse()
            .unwrap()
    };
    let user = client(&ca, &ca.workload("spiffe://example.org/orders"));
    let resp = user.get(url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = user.get(url("/admin")).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = body_string(resp).await;
    assert!(body.contains("spiffe://example.org/orders"), "{body}");
    assert!(
        body.contains("spiffe_id(spiffe://example.org/admin)"),
        "{body}"
    );
    let admin = client(&ca, &ca.workload("spiffe://example.org/admin"));
    assert_eq!(admin.get(url("/admin")).await.unwrap().status(), 200);
}

/// A server whose certificate has a SPIFFE ID and no DNS or IP SAN.
async fn spiffe_only_server(ca: &Ca, id: &'static str, eku: ExtendedKeyUsagePurpose) -> Running {
    let identity = ca
        .issue(Leaf {
            uris: vec![id],
            dns: vec![],
            ips: vec![],
            ekus: vec![eku],
            ..Leaf::client("inventory")
        })
        .identity();
    serve(
        Server::builder()
            .identity(identity)
            .trust(ca.trust())
            .authorize(Authorizer::any_verified()),
    )
    .await
}

fn pinned_client(ca: &Ca, trust: TrustBundle, expect: &str) -> Client {
    Client::builder()
        .identity(ca.workload("spiffe://example.org/orders").identity())
        .trust(trust)
        .expect_server(policy(expect))
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_pins_the_server_by_spiffe_id_without_dns_names() {
    let ca = Ca::new("root");
    let server = spiffe_only_server(
        &ca,
        "spiffe://example.org/inventory",
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .await;
    // Without a policy the name check applies, and fails: the certificate has no DNS SAN.
    let err = client(&ca, &ca.client("orders"))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::WrongName),
        "{err:?}"
    );
    let resp = pinned_client(&ca, ca.trust(), "spiffe://example.org/inventory")
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn client_rejects_a_server_with_the_wrong_identity_and_names_both() {
    let ca = Ca::new("root");
    let server = spiffe_only_server(
        &ca,
        "spiffe://example.org/impostor",
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .await;
    let err = pinned_client(&ca, ca.trust(), "spiffe://example.org/inventory")
        .get(server.url("/"))
        .await
        .unwrap_err();
    match &err {
        ClientError::ServerNotAllowed {
            expected,
            presented,
        } => {
            assert_eq!(expected, "spiffe_id(spiffe://example.org/inventory)");
            assert_eq!(presented, "spiffe://example.org/impostor");
        }
        other => panic!("expected ServerNotAllowed, got {other:?}"),
    }
    refusal::assert_counted(&server, HandshakeFailure::RejectedByPeer, 0).await;
    server.shutdown().await;
}

/// What a client of `ca` pinned to inventory's SPIFFE ID says when it refuses a server
/// claiming that ID with a certificate from `issuer` with `eku`.
async fn refused_by_pinned_client(
    ca: &Ca,
    issuer: &Ca,
    eku: ExtendedKeyUsagePurpose,
) -> ClientError {
    let server = spiffe_only_server(issuer, "spiffe://example.org/inventory", eku).await;
    let err = pinned_client(ca, ca.trust(), "spiffe://example.org/inventory")
        .get(server.url("/"))
        .await
        .unwrap_err();
    server.shutdown().await;
    err
}

#[tokio::test]
async fn pinned_client_still_validates_the_chain() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    // The right identity from a CA we do not trust.
    let err = refused_by_pinned_client(&ca, &foreign, ExtendedKeyUsagePurpose::ServerAuth).await;
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::UnknownIssuer),
        "{err:?}"
    );

    // A client-only certificate presented by a server: EKU serverAuth is still required.
    let err = refused_by_pinned_client(&ca, &ca, ExtendedKeyUsagePurpose::ClientAuth).await;
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::WrongKeyUsage),
        "{err:?}"
    );
}

#[tokio::test]
async fn pinned_client_uses_only_the_servers_trust_domain_bundle() {
    let ours = Ca::new("example.org CA");
    let partner = Ca::new("partner CA");
    // The partner CA mints a certificate claiming our inventory's identity.
    let server = spiffe_only_server(
        &partner,
        "spiffe://example.org/inventory",
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .await;
    let client = Client::builder()
        .identity(ours.workload("spiffe://example.org/orders").identity())
        .trust(ours.trust().for_trust_domain("example.org").unwrap())
        .trust(partner.trust().for_trust_domain("partner.example").unwrap())
        .expect_server(policy("spiffe://example.org/inventory"))
        .build()
        .unwrap();
    let err = client.get(server.url("/")).await.unwrap_err();
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::UnknownIssuer),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_without_a_plain_bundle_needs_expect_server() {
    let ca = Ca::new("root");
    let err = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust().for_trust_domain("example.org").unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(err, mtls::Error::NeedsExpectServer), "{err:?}");
}
