//! Revocation: CRLs on both sides, whole chain by default, unknown status denied, reloaded
//! like certificates.

mod common;

use std::time::Duration;

use common::*;
use mtls::{
    Authorizer, Client, ClientBuilder, ClientError, Crls, HandshakeFailure, Rotate, Server,
};

const REVOKED: &[u8] = &[0x0d, 0xea, 0xd1];
const GOOD: &[u8] = &[0x60, 0x0d];
const OTHER: &[u8] = &[0x07, 0x7e];

fn leaf(ca: &Ca, serial: &'static [u8]) -> Issued {
    ca.issue(Leaf {
        serial: Some(serial),
        ..Leaf::client("workload")
    })
}

async fn server_with_crl(
    ca: &Ca,
    crl: &str,
    configure: impl FnOnce(mtls::ServerBuilder) -> mtls::ServerBuilder,
) -> Running {
    serve(configure(
        Server::builder()
            .identity(ca.server().identity())
            .trust(ca.trust())
            .crls(Crls::from_bytes(crl.as_bytes()).unwrap())
            .authorize(Authorizer::any_verified()),
    ))
    .await
}

#[tokio::test]
async fn server_rejects_a_revoked_client_and_serves_a_good_one() {
    let ca = Ca::new("root");
    let server = server_with_crl(&ca, &ca.crl(&[REVOKED]), |b| b).await;
    let revoked = client(&ca, &leaf(&ca, REVOKED));
    refusal::assert_refused(
        &server,
        &revoked,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &client(&ca, &leaf(&ca, GOOD)),
    )
    .await;
    let err = revoked.get(server.url("/")).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn whole_chain_is_checked_and_unknown_status_is_denied_by_default() {
    let root = Ca::new("root");
    let issuing = root.intermediate("issuing");
    // The root's CRL revokes nothing; no CRL covers the intermediate's leaves.
    let server = server_with_crl(&root, &root.crl(&[]), |b| b).await;
    let err = client(&root, &leaf(&issuing, GOOD))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("unknown_ca"), "{err:?}");
    refusal::assert_counted(&server, HandshakeFailure::RevocationUnknown, 0).await;
    server.shutdown().await;

    // Allowing unknown status admits it.
    let server = server_with_crl(&root, &root.crl(&[]), |b| {
        b.allow_unknown_revocation_status()
    })
    .await;
    let resp = client(&root, &leaf(&issuing, GOOD))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn revoked_intermediate_is_caught_unless_leaf_only() {
    let root = Ca::new("root");
    let issuing = root.intermediate("issuing");
    let intermediate_serial = {
        // The intermediate's serial, from its certificate.
        let der = mtls::TrustBundle::from_pem(issuing.pem.as_bytes())
            .unwrap()
            .certificates()[0]
            .clone();
        let p = mtls::PeerIdentity::from_chain(&[der]).unwrap();
        hex(p.serial())
    };
    let serial: &'static [u8] = Box::leak(intermediate_serial.into_boxed_slice());
    let crls = format!("{}{}", root.crl(&[serial]), issuing.crl(&[]));
    let server = server_with_crl(&root, &crls, |b| b).await;
    let err = client(&root, &leaf(&issuing, GOOD))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("certificate_revoked"), "{err:?}");
    server.shutdown().await;
    let server = server_with_crl(&root, &crls, |b| b.revocation_leaf_only()).await;
    let resp = client(&root, &leaf(&issuing, GOOD))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn client_rejects_a_revoked_server_by_name_and_by_identity() {
    let ca = Ca::new("root");
    let server_leaf = ca.issue(Leaf {
        serial: Some(REVOKED),
        uris: vec!["spiffe://example.org/inventory"],
        ..Leaf::server()
    });
    let server = serve(server_presenting(&ca, &server_leaf)).await;
    let crl = Crls::from_bytes(ca.crl(&[REVOKED]).as_bytes()).unwrap();
    for expect in [None, Some("spiffe://example.org/inventory")] {
        let mut builder = Client::builder()
            .identity(ca.client("orders").identity())
            .trust(ca.trust())
            .crls(crl.clone());
        if let Some(id) = expect {
            builder = builder.expect_server(Authorizer::spiffe_id(id).unwrap());
        }
        let err = builder
            .build()
            .unwrap()
            .get(server.url("/"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ClientError::ServerCertificate {
                    reason: HandshakeFailure::Revoked,
                    ..
                }
            ),
            "{expect:?}: {err:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn crl_files_reload_and_revoke_without_a_restart() {
    let ca = Ca::new("root");
    let dir = Dir::new("crl-reload");
    dir.put("ca.crl", &ca.crl(&[]));
    let server = serve(
        Server::builder()
            .identity(ca.server().identity())
            .trust(ca.trust())
            .crl_file(dir.path("ca.crl"))
            .authorize(Authorizer::any_verified())
            .reload_interval(Some(Duration::from_millis(50))),
    )
    .await;
    let handle = server.handle.clone();
    let victim = unpooled_client(&ca, &leaf(&ca, REVOKED));
    let good = unpooled_client(&ca, &leaf(&ca, GOOD));
    // The victim holds a session it resumes while the CRL is unchanged...
    for _ in 0..2 {
        body_string(victim.get(server.url("/")).await.unwrap()).await;
    }
    assert!(server.last_peer().unwrap().resumed(), "a ticket is in play");
    // ...then the CRL file is rewritten to revoke it: its next attempt, ticket offered, is
    // refused.
    dir.put("ca.crl", &ca.crl(&[REVOKED]));
    assert!(
        eventually_for(refusal::SETTLE, || handle.certificate_status().reloads >= 1).await,
        "the new CRL was loaded: {:?}",
        handle.certificate_status()
    );
    refusal::assert_refused(
        &server,
        &victim,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &good,
    )
    .await;
    // A broken CRL keeps the last good one.
    dir.put(
        "ca.crl",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    assert!(
        eventually_for(refusal::SETTLE, || handle
            .certificate_status()
            .last_reload_error
            .is_some())
        .await
    );
    refusal::assert_refused(
        &server,
        &victim,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &good,
    )
    .await;
    server.shutdown().await;
}

#[test]
fn crl_loading_errors_are_named() {
    let err = Crls::from_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(matches!(err, mtls::LoadError::NoCrl { .. }), "{err:?}");
    let err = Crls::from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x00]).unwrap_err();
    assert!(
        matches!(err, mtls::LoadError::InvalidCrl { index: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("CRL number"), "{err}");
    let err = Crls::from_file("/nonexistent/ca.crl").unwrap_err();
    assert!(matches!(err, mtls::LoadError::Read { .. }));
    // DER works as well as PEM.
    let ca = Ca::new("root");
    let pem = ca.crl(&[REVOKED]);
    let der = Crls::from_bytes(pem.as_bytes()).unwrap().as_slice()[0].to_vec();
    assert_eq!(Crls::from_bytes(&der).unwrap().as_slice().len(), 1);
}

#[tokio::test]
async fn rotate_set_trust_carries_crls_and_a_resumed_session_is_checked_against_them() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let handle = server.handle.clone();
    let victim = unpooled_client(&ca, &leaf(&ca, REVOKED));
    for _ in 0..2 {
        body_string(victim.get(server.url("/")).await.unwrap()).await;
    }
    assert!(server.last_peer().unwrap().resumed(), "a ticket is in play");
    handle
        .set_trust(vec![ca.trust().with_crls(
            Crls::from_bytes(ca.crl(&[REVOKED]).as_bytes()).unwrap(),
        )])
        .unwrap();
    let resumed = server.stats.handshakes_resumed();
    // The client offers its ticket; the CRL still decides.
    refusal::assert_refused(
        &server,
        &victim,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &unpooled_client(&ca, &leaf(&ca, GOOD)),
    )
    .await;
    assert_eq!(
        server.stats.handshakes_resumed(),
        resumed,
        "nothing resumed"
    );
    // A client that never connected before is refused the same way.
    refusal::assert_refused(
        &server,
        &client(&ca, &leaf(&ca, REVOKED)),
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &client(&ca, &leaf(&ca, GOOD)),
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_crl_revoking_our_own_certificate_is_still_installed() {
    let ca = Ca::new("root");
    let ours = ca.issue(Leaf {
        serial: Some(REVOKED),
        ..Leaf::server()
    });
    let server = server_presenting(&ca, &ours)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let handle = server.handle();
    let crl = Crls::from_bytes(ca.crl(&[REVOKED, GOOD]).as_bytes()).unwrap();
    // Refusing it would leave every other revoked peer admitted.
    handle.set_trust(vec![ca.trust().with_crls(crl)]).unwrap();
    let server = start(server);
    refusal::assert_refused(
        &server,
        &client(&ca, &leaf(&ca, GOOD)),
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &client(&ca, &leaf(&ca, OTHER)),
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn replacing_the_bundles_keeps_the_builders_crls() {
    let ca = Ca::new("root");
    let server = serve(
        Server::builder()
            .identity(ca.server().identity())
            .trust(ca.trust())
            .crls(Crls::from_bytes(ca.crl(&[REVOKED]).as_bytes()).unwrap())
            .authorize(Authorizer::any_verified()),
    )
    .await;
    let handle = server.handle.clone();
    handle.set_trust(vec![ca.trust()]).unwrap();
    refusal::assert_refused(
        &server,
        &client(&ca, &leaf(&ca, REVOKED)),
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &client(&ca, &leaf(&ca, GOOD)),
    )
    .await;
    server.shutdown().await;
}

fn stale_crl(ca: &Ca, revoked: &[&[u8]]) -> String {
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    ca.crl_until(revoked, an_hour_ago)
}

#[tokio::test]
async fn a_crl_past_its_next_update_refuses_by_default_and_is_shown_before_it_passes() {
    let ca = Ca::new("root");
    // A current CRL: the good client is served and the CRL's nextUpdate is shown.
    let server = server_with_crl(&ca, &ca.crl(&[]), |b| b).await;
    let crl = &server.handle.certificate_status().crls[0];
    assert!(!crl.expired && crl.next_update.is_some(), "{crl:?}");
    assert!(crl.remaining > Duration::from_secs(6 * 86_400), "{crl:?}");
    assert_eq!(crl.issuer, "CN=root");
    // (The test leaf lives a day, so health reports its renewal; nothing about the CRL.)
    let problems = server.handle.health().problems();
    assert!(!problems.iter().any(|p| p.contains("CRL")), "{problems:?}");
    let resp = client(&ca, &leaf(&ca, GOOD)).get(server.url("/")).await;
    assert_eq!(resp.unwrap().status(), 200);
    server.shutdown().await;

    // The same CRL, stale: the good client is refused for unknown revocation status.
    let server = server_with_crl(&ca, &stale_crl(&ca, &[]), |b| b).await;
    let status = server.handle.certificate_status();
    assert!(status.crls[0].expired, "{:?}", status.crls);
    let health = server.handle.health();
    assert!(!status.healthy());
    assert!(
        health
            .problems()
            .iter()
            .any(|p| p.contains("past its nextUpdate")),
        "{:?}",
        health.problems()
    );
    assert!(health.to_json().contains("\"expired\":true}]"));
    let err = client(&ca, &leaf(&ca, GOOD))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("unknown_ca"), "{err:?}");
    refusal::assert_counted(&server, HandshakeFailure::RevocationUnknown, 0).await;
    assert!(server.last_peer().is_none(), "no handler ran");
    server.shutdown().await;
}

#[tokio::test]
async fn allow_expired_crls_tolerates_a_stale_crl_and_still_applies_it() {
    let ca = Ca::new("root");
    let server =
        server_with_crl(&ca, &stale_crl(&ca, &[REVOKED]), |b| b.allow_expired_crls()).await;
    // Shown, but not a reason to take the service out of rotation: it was tolerated on purpose.
    let status = server.handle.certificate_status();
    assert!(status.crls[0].expired && !status.crls[0].enforced);
    let problems = server.handle.health().problems();
    assert!(
        problems.iter().any(|p| p.contains("used anyway")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("refused until")),
        "{problems:?}"
    );
    let resp = client(&ca, &leaf(&ca, GOOD)).get(server.url("/")).await;
    assert_eq!(resp.unwrap().status(), 200);
    let err = client(&ca, &leaf(&ca, REVOKED))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("certificate_revoked"), "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_refuses_a_server_whose_only_crl_is_stale_unless_allowed() {
    let ca = Ca::new("root");
    let server_leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/inventory"],
        ..Leaf::server()
    });
    let server = serve(server_presenting(&ca, &server_leaf)).await;
    let stale = Crls::from_bytes(stale_crl(&ca, &[]).as_bytes()).unwrap();
    for expect in [None, Some("spiffe://example.org/inventory")] {
        let builder = |allow: bool| {
            let mut builder = unpooled_builder(&ca, &ca.client("orders")).crls(stale.clone());
            if let Some(id) = expect {
                builder = builder.expect_server(Authorizer::spiffe_id(id).unwrap());
            }
            if allow {
                builder = builder.allow_expired_crls();
            }
            builder.build().unwrap()
        };
        let err = builder(false).get(server.url("/")).await.unwrap_err();
        assert!(
            matches!(
                &err,
                ClientError::ServerCertificate {
                    reason: HandshakeFailure::RevocationUnknown,
                    ..
                }
            ),
            "{expect:?}: {err:?}"
        );
        let resp = builder(true).get(server.url("/")).await.unwrap();
        assert_eq!(resp.status(), 200, "{expect:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_bundles_crl_decides_for_that_bundle_alone_even_when_issuer_names_collide() {
    // Two CAs with the same name and different keys, in two bundles; only the first has a CRL.
    let first = Ca::new("shared root");
    let second = Ca::new("shared root");
    let crl = Crls::from_bytes(first.crl(&[REVOKED]).as_bytes()).unwrap();
    let server = serve(
        Server::builder()
            .identity(first.server().identity())
            .trust(first.trust().with_crls(crl))
            .trust(second.trust())
            .authorize(Authorizer::any_verified()),
    )
    .await;
    // The first bundle's CRL applies to its own clients...
    let err = client(&first, &leaf(&first, REVOKED))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert_eq!(rejected_alert(&err), Some("certificate_revoked"), "{err:?}");
    let resp = client(&first, &leaf(&first, GOOD))
        .get(server.url("/"))
        .await;
    assert_eq!(resp.unwrap().status(), 200);
    // ...and never to the second bundle's, whose CA has the same name (same serial, too).
    for serial in [REVOKED, GOOD] {
        let resp = client(&first, &leaf(&second, serial))
            .get(server.url("/"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    refusal::assert_counted(&server, HandshakeFailure::Revoked, 0).await;
    assert_eq!(
        server
            .stats
            .handshake_failures(HandshakeFailure::RevocationUnknown),
        0
    );
    server.shutdown().await;
}

/// A server whose certificate is issued by `issuing`, an intermediate of `root`.
async fn server_under(root: &Ca, issuing: &Ca, serial: &'static [u8]) -> Running {
    let leaf = issuing.issue(Leaf {
        serial: Some(serial),
        ..Leaf::server()
    });
    serve(server_presenting(root, &leaf)).await
}

#[tokio::test]
async fn the_clients_crl_file_reloads_and_revokes_the_server_without_a_rebuild() {
    let ca = Ca::new("root");
    let server = serve(server_presenting(
        &ca,
        &ca.issue(Leaf {
            serial: Some(REVOKED),
            ..Leaf::server()
        }),
    ))
    .await;
    let dir = Dir::new("client-crl");
    dir.put("ca.crl", &ca.crl(&[]));
    let client = unpooled_builder(&ca, &ca.client("orders"))
        .crl_file(dir.path("ca.crl"))
        .reload_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    assert_eq!(client.get(server.url("/")).await.unwrap().status(), 200);
    dir.put("ca.crl", &ca.crl(&[REVOKED]));
    assert!(
        eventually_for(refusal::SETTLE, || client.certificate_status().reloads >= 1).await,
        "{:?}",
        client.certificate_status()
    );
    let err = client.get(server.url("/")).await.unwrap_err();
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::Revoked),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_checks_the_whole_chain_unless_leaf_only() {
    let root = Ca::new("root");
    let issuing = root.intermediate("issuing");
    let server = server_under(&root, &issuing, GOOD).await;
    let intermediate = mtls::TrustBundle::from_pem(issuing.pem.as_bytes())
        .unwrap()
        .certificates()[0]
        .clone();
    let serial = hex(mtls::PeerIdentity::from_chain(&[intermediate])
        .unwrap()
        .serial());
    let serial: &'static [u8] = Box::leak(serial.into_boxed_slice());
    let crls = Crls::from_bytes(format!("{}{}", root.crl(&[serial]), issuing.crl(&[])).as_bytes())
        .unwrap();
    let build =
        |leaf_only| crl_client(&root, &crls, leaf_only, ClientBuilder::revocation_leaf_only);
    assert_refused_unless_option(&server, build, HandshakeFailure::Revoked).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_denies_unknown_revocation_status_unless_allowed() {
    let root = Ca::new("root");
    let issuing = root.intermediate("issuing");
    let server = server_under(&root, &issuing, GOOD).await;
    // The root's CRL revokes nothing; no CRL covers the intermediate's leaves.
    let crls = Crls::from_bytes(root.crl(&[]).as_bytes()).unwrap();
    let build = |allow| {
        crl_client(
            &root,
            &crls,
            allow,
            ClientBuilder::allow_unknown_revocation_status,
        )
    };
    assert_refused_unless_option(&server, build, HandshakeFailure::RevocationUnknown).await;
    server.shutdown().await;
}

/// A client of `root` that checks `crls`, with `option` applied when `on`.
fn crl_client(
    root: &Ca,
    crls: &Crls,
    on: bool,
    option: fn(ClientBuilder) -> ClientBuilder,
) -> Client {
    let builder = Client::builder()
        .identity(root.client("orders").identity())
        .trust(root.trust())
        .crls(crls.clone());
    let builder = if on { option(builder) } else { builder };
    builder.build().unwrap()
}

/// Asserts that the client `build(false)` makes is refused for `reason`, and the one
/// `build(true)` makes is served.
async fn assert_refused_unless_option(
    server: &Running,
    build: impl Fn(bool) -> Client,
    reason: HandshakeFailure,
) {
    let err = build(false).get(server.url("/")).await.unwrap_err();
    assert_eq!(server_refusal(&err), Some(reason), "{err:?}");
    assert_eq!(
        build(true).get(server.url("/")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_stale_crl_on_one_copy_of_a_ca_is_not_overruled_by_another_copy() {
    let ca = Ca::new("root");
    let stale = Crls::from_bytes(
        ca.crl_until(
            &[REVOKED],
            std::time::SystemTime::now() - Duration::from_secs(3600),
        )
        .as_bytes(),
    )
    .unwrap();
    // The same CA twice: once without CRLs, once with a CRL that listed REVOKED and has gone
    // stale. The CRL's verdict (status unknown) stands.
    let server = serve(
        Server::builder()
            .identity(ca.server().identity())
            .trust(ca.trust())
            .trust(ca.trust().with_crls(stale))
            .authorize(Authorizer::any_verified()),
    )
    .await;
    let err = client(&ca, &leaf(&ca, REVOKED))
        .get(server.url("/"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::ServerRejectedCertificate { alert } if alert == "unknown_ca"),
        "{err:?}"
    );
    refusal::assert_counted(&server, HandshakeFailure::RevocationUnknown, 0).await;
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    server.shutdown().await;
}
