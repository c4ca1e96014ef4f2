//! Watched files reload by group: a certificate that is refused or half-written never holds
//! back a new CRL or trust file changed with it, so a revocation always lands.

mod common;

use std::time::Duration;

use common::refusal::{assert_refused, assert_served};
use common::*;
use mtls::{Authorizer, HandshakeFailure, Rotate, Server};

const REVOKED: &[u8] = &[0x7e, 0x01];
const TICK: Duration = Duration::from_millis(50);

/// A server on files (certificate, key, CA, CRL) that revokes nothing yet.
async fn file_server(dir: &Dir, ca: &Ca) -> (Running, mtls::ServerHandle) {
    let leaf = ca.server();
    dir.put("tls.crt", &leaf.cert_pem);
    dir.put("tls.key", &leaf.key_pem);
    dir.put("ca.crt", &ca.pem);
    dir.put("ca.crl", &ca.crl(&[]));
    let server = Server::builder()
        .identity_files(dir.path("tls.crt"), dir.path("tls.key"))
        .trust_file(dir.path("ca.crt"))
        .crl_file(dir.path("ca.crl"))
        .authorize(Authorizer::any_verified())
        .reload_interval(Some(TICK))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let handle = server.handle();
    (start(server), handle)
}

fn revoked_and_good(ca: &Ca) -> (mtls::Client, mtls::Client) {
    let revoked = ca.issue(Leaf {
        serial: Some(REVOKED),
        ..Leaf::client("revoked")
    });
    (
        unpooled_client(ca, &revoked),
        unpooled_client(ca, &ca.client("good")),
    )
}

/// Waits until the revoked client is refused (the CRL landed).
async fn wait_revoked(server: &Running, revoked: &mtls::Client) -> bool {
    eventually_async(|| async { revoked.get(server.url("/")).await.is_err() }).await
}

#[tokio::test]
async fn a_refused_certificate_does_not_hold_back_a_crl_changed_with_it() {
    let ca = Ca::new("root");
    let dir = Dir::new("group-refused");
    let (server, handle) = file_server(&dir, &ca).await;
    let (revoked, good) = revoked_and_good(&ca);
    assert_served(&server, &revoked).await;
    let served = good
        .get(server.url("/"))
        .await
        .unwrap()
        .extensions()
        .get::<mtls::PeerIdentity>()
        .unwrap()
        .leaf()
        .to_vec();

    // A certificate valid only tomorrow (refused now) and a CRL, written in one go.
    let tomorrow = ca.issue(Leaf {
        not_before: time::Duration::hours(24),
        not_after: time::Duration::hours(48),
        ..Leaf::server()
    });
    dir.put("tls.key", &tomorrow.key_pem);
    dir.put("tls.crt", &tomorrow.cert_pem);
    dir.put("ca.crl", &ca.crl(&[REVOKED]));

    assert!(wait_revoked(&server, &revoked).await, "the CRL landed");
    assert_refused(
        &server,
        &revoked,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &good,
    )
    .await;
    let status = handle.certificate_status();
    assert!(
        status
            .last_reload_error
            .as_deref()
            .is_some_and(|e| e.contains("not valid now")),
        "the certificate is still refused: {status:?}"
    );
    // The last good certificate is still the one served.
    let resp = good.get(server.url("/")).await.unwrap();
    let seen = resp.extensions().get::<mtls::PeerIdentity>().unwrap();
    assert_eq!(seen.leaf().as_ref(), &served[..]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_written_certificate_does_not_swallow_a_crl_changed_with_it() {
    let ca = Ca::new("root");
    let dir = Dir::new("group-half-written");
    let (server, _handle) = file_server(&dir, &ca).await;
    let (revoked, good) = revoked_and_good(&ca);
    assert_served(&server, &revoked).await;

    // The certificate is cut short mid-write; the CRL is complete.
    let next = ca.server();
    dir.put("tls.crt", &next.cert_pem[..next.cert_pem.len() / 2]);
    dir.put("ca.crl", &ca.crl(&[REVOKED]));
    assert!(wait_revoked(&server, &revoked).await, "the CRL landed");
    assert_refused(
        &server,
        &revoked,
        "certificate_revoked",
        HandshakeFailure::Revoked,
        &good,
    )
    .await;

    // The certificate completes: it is taken too.
    dir.put("tls.key", &next.key_pem);
    dir.put("tls.crt", &next.cert_pem);
    let taken = eventually_async(|| async {
        let resp = good.get(server.url("/")).await.unwrap();
        resp.extensions()
            .get::<mtls::PeerIdentity>()
            .unwrap()
            .leaf()
            .as_ref()
            == &next.der[..]
    })
    .await;
    assert!(taken, "the completed certificate is served");
    server.shutdown().await;
}

#[tokio::test]
async fn a_push_that_drops_a_watched_trust_file_says_so() {
    let capture = Capture::scoped();
    let ca = Ca::new("root");
    let other = Ca::new("other root");
    let dir = Dir::new("group-detached");
    let (server, handle) = file_server(&dir, &ca).await;
    let said = || {
        capture
            .events()
            .iter()
            .any(|e| e.contains("no longer followed") && e.contains("detached=1"))
    };
    // Keeping the file's own bundle keeps following it: nothing to say.
    let file_bundle = mtls::TrustBundle::from_pem_file(dir.path("ca.crt")).unwrap();
    handle
        .set_trust(vec![file_bundle.clone(), other.trust()])
        .unwrap();
    assert!(!said());
    // Replacing it with the same CA under CRLs of its own detaches the file, and says so.
    let crl = mtls::Crls::from_bytes(ca.crl(&[]).as_bytes()).unwrap();
    handle.set_trust(vec![file_bundle.with_crls(crl)]).unwrap();
    assert!(said(), "{:?}", capture.events());
    server.shutdown().await;
}
