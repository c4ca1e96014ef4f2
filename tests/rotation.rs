//! Rotation without restarts: file swaps as Kubernetes and cert-manager make them, validated
//! before use, with client auth kept on every path and no failed request.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use mtls::{
    Authorizer, Client, ClientError, HandshakeFailure, PeerIdentity, Rotate, Server, ServerBuilder,
};

const TICK: Duration = Duration::from_millis(50);

/// The server certificate a new connection sees.
async fn served_leaf(client: &Client, server: &Running) -> Vec<u8> {
    let resp = client.get(server.url("/")).await.unwrap();
    let leaf = resp
        .extensions()
        .get::<PeerIdentity>()
        .unwrap()
        .leaf()
        .to_vec();
    body_string(resp).await;
    leaf
}

/// Whether new connections are served `der` within the settling budget.
async fn wait_for_leaf(client: &Client, server: &Running, der: &[u8]) -> bool {
    eventually_async(|| async { served_leaf(client, server).await == der }).await
}

/// An anonymous client must still be refused with certificate_required.
async fn assert_client_auth_kept(ca: &Ca, server: &Running) {
    let config = raw_config(ca, None, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let err = raw_get(server.addr, config)
        .await
        .expect_err("client auth must survive every reload");
    assert_eq!(
        alert_of(&err),
        Some(rustls::AlertDescription::CertificateRequired)
    );
}

/// Writes `leaf`'s key and then its certificate into `dir`, each atomically.
fn put_pair(dir: &Dir, leaf: &Issued) {
    dir.put("tls.key", &leaf.key_pem);
    dir.put("tls.crt", &leaf.cert_pem);
}

/// A server on `dir`'s tls.crt, tls.key and ca.crt, reloading them every tick.
fn files_builder(dir: &Dir) -> ServerBuilder {
    Server::builder()
        .identity_files(dir.path("tls.crt"), dir.path("tls.key"))
        .trust_file(dir.path("ca.crt"))
        .authorize(Authorizer::any_verified())
        .reload_interval(Some(TICK))
}

async fn file_server(dir: &Dir, ca: &Ca, leaf: &Issued) -> (Running, mtls::ServerHandle) {
    dir.put("tls.crt", &leaf.cert_pem);
    dir.put("tls.key", &leaf.key_pem);
    dir.put("ca.crt", &ca.pem);
    let server = serve(files_builder(dir)).await;
    let handle = server.handle.clone();
    (server, handle)
}

#[tokio::test]
async fn rename_swap_is_picked_up() {
    let ca = Ca::new("root");
    let dir = Dir::new("rename");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let next = ca.server();
    put_pair(&dir, &next);
    assert!(
        wait_for_leaf(&client, &server, &next.der).await,
        "new certificate served"
    );
    let status = handle.certificate_status();
    assert!(status.last_reload.is_some());
    assert_client_auth_kept(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn kubernetes_data_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let ca = Ca::new("root");
    let dir = Dir::new("symlink");
    let write_version = |name: &str, leaf: &Issued| {
        let version = dir.path(name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(version.join("tls.key"), &leaf.key_pem).unwrap();
        std::fs::write(version.join("ca.crt"), &ca.pem).unwrap();
    };
    let first = ca.server();
    write_version("..2026_01", &first);
    symlink("..2026_01", dir.path("..data")).unwrap();
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        symlink(Path::new("..data").join(f), dir.path(f)).unwrap();
    }
    let server = serve(files_builder(&dir)).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    assert_eq!(served_leaf(&client, &server).await, first.der);

    // The kubelet's swap: a new version directory, then `..data` renamed over atomically.
    for (i, leaf) in [ca.server(), ca.server()].iter().enumerate() {
        let version = format!("..2026_0{}", i + 2);
        write_version(&version, leaf);
        symlink(&version, dir.path("..data_tmp")).unwrap();
        std::fs::rename(dir.path("..data_tmp"), dir.path("..data")).unwrap();
        assert!(
            wait_for_leaf(&client, &server, &leaf.der).await,
            "swap {} picked up",
            i + 1
        );
    }
    assert_client_auth_kept(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn half_written_pair_is_rejected_then_accepted() {
    let ca = Ca::new("root");
    let dir = Dir::new("half");
    let first = ca.server();
    let (server, handle) = file_server(&dir, &ca, &first).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let next = ca.server();
    // cert-manager wrote the certificate; the key is not there yet.
    dir.put("tls.crt", &next.cert_pem);
    assert!(
        eventually(|| handle.certificate_status().last_reload_error.is_some()).await,
        "the mismatched pair is refused"
    );
    let status = handle.certificate_status();
    assert!(
        status
            .last_reload_error
            .as_deref()
            .is_some_and(|e| e.contains("does not match")),
        "{status:?}"
    );
    assert!(status.reload_failures >= 1);
    assert_eq!(
        served_leaf(&client, &server).await,
        first.der,
        "last good kept"
    );
    assert_client_auth_kept(&ca, &server).await;
    // The key arrives.
    dir.put("tls.key", &next.key_pem);
    assert!(wait_for_leaf(&client, &server, &next.der).await);
    assert_eq!(handle.certificate_status().last_reload_error, None);
    server.shutdown().await;
}

#[tokio::test]
async fn broken_replacement_leaves_the_last_good_certificate() {
    let ca = Ca::new("root");
    let dir = Dir::new("broken");
    let first = ca.server();
    let (server, handle) = file_server(&dir, &ca, &first).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    dir.put("tls.crt", "not a certificate\n");
    dir.put("ca.crt", "");
    assert!(eventually(|| handle.certificate_status().reload_failures > 0).await);
    // The refusal is final: a file that does not load is read again only when it changes.
    assert_eq!(served_leaf(&client, &server).await, first.der);
    assert_client_auth_kept(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_programmatic_reload_path_keeps_client_auth() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let handle = server.handle.clone();
    let client = unpooled_client(&ca, &ca.client("orders"));
    handle.set_identity(ca.server().identity()).unwrap();
    assert_client_auth_kept(&ca, &server).await;
    handle.set_trust(vec![ca.trust()]).unwrap();
    assert_client_auth_kept(&ca, &server).await;
    let next = ca.server();
    handle
        .set_material(next.identity(), vec![ca.trust()])
        .unwrap();
    assert_client_auth_kept(&ca, &server).await;
    assert_eq!(served_leaf(&client, &server).await, next.der);
    assert_eq!(handle.certificate_status().reloads, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_candidates_are_refused_and_the_current_material_stays() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let first = ca.server();
    let server = serve_with(&ca, &first).await;
    let (server, handle) = server;
    let client = unpooled_client(&ca, &ca.client("orders"));

    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    let err = handle.set_identity(expired.identity()).unwrap_err();
    assert!(matches!(err, mtls::Error::NotValidNow { .. }), "{err:?}");
    let early = ca.issue(Leaf {
        not_before: time::Duration::days(1),
        not_after: time::Duration::days(3),
        ..Leaf::server()
    });
    assert!(matches!(
        handle.set_identity(early.identity()).unwrap_err(),
        mtls::Error::NotValidNow { .. }
    ));
    // Our certificate chained to our trust; one from a CA outside it does not.
    let err = handle
        .set_identity(foreign.server().identity())
        .unwrap_err();
    assert!(matches!(err, mtls::Error::DoesNotChain { .. }), "{err:?}");
    // Nor may the trust change so that our own certificate no longer chains.
    let err = handle.set_trust(vec![foreign.trust()]).unwrap_err();
    assert!(matches!(err, mtls::Error::DoesNotChain { .. }), "{err:?}");
    assert!(matches!(
        handle.set_trust(vec![]).unwrap_err(),
        mtls::Error::MissingTrust
    ));
    let status = handle.certificate_status();
    assert_eq!(status.reload_failures, 5);
    assert!(status.last_reload_error.is_some());
    assert_eq!(served_leaf(&client, &server).await, first.der);
    server.shutdown().await;
}

async fn serve_with(ca: &Ca, leaf: &Issued) -> (Running, mtls::ServerHandle) {
    let server = serve(server_presenting(ca, leaf)).await;
    let handle = server.handle.clone();
    (server, handle)
}

#[tokio::test]
async fn ca_rotation_overlap_accepts_both_then_drops_the_old() {
    let old = Ca::new("old root");
    let new = Ca::new("new root");
    let (server, handle) = serve_with(&new, &new.server()).await;
    let both = vec![old.trust(), new.trust()];
    handle.set_trust(both).unwrap();
    let old_client = unpooled_client(&new, &old.client("still-old"));
    let new_client = unpooled_client(&new, &new.client("already-new"));
    assert_eq!(old_client.get(server.url("/")).await.unwrap().status(), 200);
    assert_eq!(new_client.get(server.url("/")).await.unwrap().status(), 200);
    // The old client holds a session it can resume while the old CA is trusted...
    body_string(old_client.get(server.url("/")).await.unwrap()).await;
    assert!(
        server.last_peer().unwrap().resumed(),
        "resumption is in play"
    );
    // ...then the old CA leaves the bundle: its clients are refused, even when resuming.
    handle.set_trust(vec![new.trust()]).unwrap();
    let resumed = server.stats.handshakes_resumed();
    refusal::assert_refused(
        &server,
        &old_client,
        "unknown_ca",
        HandshakeFailure::UnknownIssuer,
        &new_client,
    )
    .await;
    assert_eq!(
        server.stats.handshakes_resumed(),
        resumed,
        "nothing resumed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_rotates_its_own_certificate() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let dir = Dir::new("client");
    let first = ca.client("orders");
    dir.put("client.crt", &first.cert_pem);
    dir.put("client.key", &first.key_pem);
    dir.put("ca.crt", &ca.pem);
    let client = Client::builder()
        .identity_files(dir.path("client.crt"), dir.path("client.key"))
        .trust_file(dir.path("ca.crt"))
        .pool_max_idle_per_host(0)
        .reload_interval(Some(TICK))
        .build()
        .unwrap();
    body_string(client.get(server.url("/")).await.unwrap()).await;
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        first.der.as_slice()
    );
    // Through the files.
    let second = ca.client("orders");
    dir.put("client.key", &second.key_pem);
    dir.put("client.crt", &second.cert_pem);
    let seen = eventually_async(|| async {
        body_string(client.get(server.url("/")).await.unwrap()).await;
        server.last_peer().unwrap().leaf().as_ref() == second.der.as_slice()
    })
    .await;
    assert!(
        seen,
        "the server sees the new certificate on new connections"
    );
    // Through code.
    let third = ca.client("orders");
    client.set_identity(third.identity()).unwrap();
    body_string(client.get(server.url("/")).await.unwrap()).await;
    let peer = server.last_peer().unwrap();
    assert_eq!(peer.leaf().as_ref(), third.der.as_slice());
    assert!(!peer.resumed(), "a new identity means a full handshake");
    assert!(client.certificate_status().reloads >= 2);
    server.shutdown().await;
}

/// Four clients sending requests to `/` until stopped (or `cap` requests each), half on
/// pooled connections and half on a new connection per request, counting the requests
/// answered 200 and the others.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(ca: &Ca, server: &Running, cap: Option<u64>) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..4 {
            let client = if i % 2 == 0 {
                client(ca, &ca.client("worker"))
            } else {
                unpooled_client(ca, &ca.client("worker"))
            };
            let url = server.url("/");
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && cap.is_none_or(|cap| n < cap) {
                    n += 1;
                    match client.get(url.clone()).await {
                        Ok(resp) if resp.status() == 200 => {
                            body_string(resp).await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        Load {
            ok,
            failed,
            stop,
            workers,
        }
    }

    /// Stops the clients and waits for them: (requests answered 200, the others).
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test]
async fn zero_failed_requests_across_rotations() {
    let ca = Ca::new("root");
    let dir = Dir::new("load");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    let load = Load::start(&ca, &server, Some(2_000));
    let rotations = 5;
    let observer = unpooled_client(&ca, &ca.client("observer"));
    for i in 0..rotations {
        let next = ca.server();
        put_pair(&dir, &next);
        assert!(
            wait_for_leaf(&observer, &server, &next.der).await,
            "rotation {} is served",
            i + 1
        );
    }
    let (ok, failed) = load.finish().await;
    println!(
        "{ok} requests succeeded, {failed} failed, across {} reloads",
        handle.certificate_status().reloads
    );
    assert!(ok > 0);
    assert_eq!(failed, 0);
    assert_eq!(handle.certificate_status().reloads, rotations);
    server.shutdown().await;
}

#[tokio::test]
async fn status_reports_exact_times_and_anchors() {
    let ca = Ca::new("root");
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/inventory"],
        not_before: time::Duration::hours(-1),
        not_after: time::Duration::hours(72),
        ..Leaf::server()
    });
    let (server, handle) = serve_with(&ca, &leaf).await;
    let expected = PeerIdentity::from_chain(leaf.identity().chain()).unwrap();
    let status = handle.certificate_status();
    assert_eq!(status.identity.not_after, expected.not_after());
    assert_eq!(status.identity.not_before, expected.not_before());
    assert_eq!(
        status.identity.spiffe_id.as_deref(),
        Some("spiffe://example.org/inventory")
    );
    let remaining = status.identity.remaining.as_secs();
    assert!((71 * 3600..=72 * 3600).contains(&remaining), "{remaining}");
    assert!(!status.identity.renewal_due);
    assert!(status.healthy());
    assert_eq!(status.trust_anchors.len(), 1);
    assert_eq!(status.trust_anchors[0].subject, "CN=root");
    assert_eq!(status.last_reload, None);
    assert_eq!(status.reloads, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn expiry_warnings_fire_at_the_thresholds() {
    let capture = Capture::global();
    let ca = Ca::new("root");
    // Past 2/3 of a 30 s lifetime, and ending in 3 s.
    let leaf = ca.issue(Leaf {
        cn: "expiring-server",
        not_before: time::Duration::seconds(-27),
        not_after: time::Duration::seconds(3),
        ..Leaf::server()
    });
    let server = serve(server_presenting(&ca, &leaf).reload_interval(Some(TICK))).await;
    let handle = server.handle.clone();
    let ours = |e: &String| e.contains("expiring-server");
    let renew = |events: &[String]| {
        events
            .iter()
            .filter(|e| ours(e) && e.contains("due for renewal"))
            .count()
    };
    assert!(
        eventually_for(refusal::SETTLE, || renew(&capture.events()) == 1).await,
        "{:?}",
        capture.events()
    );
    let status = handle.certificate_status();
    assert!(status.identity.renewal_due);
    assert!(!status.healthy());
    // Then it expires.
    assert!(
        eventually_for(refusal::SETTLE, || capture
            .events()
            .iter()
            .any(|e| ours(e) && e.contains("has expired")))
        .await,
        "{:?}",
        capture.events()
    );
    assert!(handle.certificate_status().identity.expired);
    // The renewal warning fired once, not on each of the ticks until the expiry.
    assert_eq!(renew(&capture.events()), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn client_trust_change_stops_resumption() {
    let ca = Ca::new("root");
    let other = Ca::new("other root");
    let server = serve(server_builder(&ca)).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let resumed = |resp: &hyper::Response<hyper::body::Incoming>| {
        resp.extensions().get::<PeerIdentity>().unwrap().resumed()
    };
    let first = client.get(server.url("/")).await.unwrap();
    assert!(!resumed(&first));
    body_string(first).await;
    let second = client.get(server.url("/")).await.unwrap();
    assert!(resumed(&second), "the client resumes under unchanged trust");
    body_string(second).await;
    // Any change of trust: sessions verified under the old bundle are not offered again.
    client.set_trust(vec![ca.trust(), other.trust()]).unwrap();
    let third = client.get(server.url("/")).await.unwrap();
    assert!(!resumed(&third), "a trust change means a full handshake");
    body_string(third).await;
    server.shutdown().await;
}

#[tokio::test]
async fn trust_file_change_is_taken_while_our_certificate_is_expired() {
    let ca = Ca::new("root");
    let next_ca = Ca::new("next root");
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    let dir = Dir::new("expired-own");
    let (server, handle) = file_server(&dir, &ca, &expired).await;
    // Our own dates never block a trust change: peers' trust must stay current.
    dir.put("ca.crt", &format!("{}{}", ca.pem, next_ca.pem));
    assert!(
        eventually_for(refusal::SETTLE, || handle
            .certificate_status()
            .trust_anchors
            .len()
            == 2)
        .await,
        "{:?}",
        handle.certificate_status().last_reload_error
    );
    assert_eq!(handle.certificate_status().reload_failures, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_current_certificate_does_not_switch_the_chain_check_off() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    let (server, handle) = serve_with(&ca, &expired).await;
    let err = handle
        .set_identity(foreign.server().identity())
        .unwrap_err();
    assert!(matches!(err, mtls::Error::DoesNotChain { .. }), "{err:?}");
    // A renewal from our own CA is taken.
    handle.set_identity(ca.server().identity()).unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_rejected_file_candidate_is_reported_once_while_it_is_retried() {
    let capture = Capture::scoped();
    let ca = Ca::new("root");
    let dir = Dir::new("retry");
    let first = ca.server();
    let (server, handle) = file_server(&dir, &ca, &first).await;
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    put_pair(&dir, &expired);
    assert!(
        eventually_for(refusal::SETTLE, || handle
            .certificate_status()
            .reload_failures
            == 1)
        .await
    );
    let reads = || {
        capture
            .events()
            .iter()
            .filter(|e| e.contains("reading the watched certificate files"))
            .count()
    };
    let rejections = || {
        capture
            .events()
            .iter()
            .filter(|e| e.contains("certificate reload rejected") && e.contains("valid"))
            .count()
    };
    // Ten more reads of the candidate (it is retried on every tick): not counted or logged
    // again.
    let read = reads();
    assert!(eventually_for(refusal::SETTLE, || reads() >= read + 10).await);
    let status = handle.certificate_status();
    assert_eq!(status.reload_failures, 1);
    assert!(status.last_reload_error.unwrap().contains("valid"));
    assert_eq!(rejections(), 1, "{:?}", capture.events());
    let client = unpooled_client(&ca, &ca.client("orders"));
    assert_eq!(served_leaf(&client, &server).await, first.der);
    server.shutdown().await;
}

#[tokio::test]
async fn a_zero_reload_interval_still_reloads() {
    let ca = Ca::new("root");
    let dir = Dir::new("zero");
    let first = ca.server();
    dir.put("tls.crt", &first.cert_pem);
    dir.put("tls.key", &first.key_pem);
    dir.put("ca.crt", &ca.pem);
    let server = serve(
        Server::builder()
            .identity_files(dir.path("tls.crt"), dir.path("tls.key"))
            .trust_file(dir.path("ca.crt"))
            .authorize(Authorizer::any_verified())
            .reload_interval(Some(Duration::ZERO)),
    )
    .await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let next = ca.server();
    put_pair(&dir, &next);
    assert!(wait_for_leaf(&client, &server, &next.der).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_file_change_keeps_trust_pushed_from_code() {
    let ca = Ca::new("root");
    let partner = Ca::new("partner root");
    let dir = Dir::new("keep-pushed");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    handle.set_trust(vec![ca.trust(), partner.trust()]).unwrap();
    assert_eq!(handle.certificate_status().trust_anchors.len(), 2);
    let client = unpooled_client(&ca, &ca.client("orders"));
    let next = ca.server();
    put_pair(&dir, &next);
    assert!(wait_for_leaf(&client, &server, &next.der).await);
    assert_eq!(
        handle.certificate_status().trust_anchors.len(),
        2,
        "reloading the certificate files did not revert the trust pushed from code"
    );
    server.shutdown().await;
}

/// The client's request is refused in the handshake with `alert`.
async fn assert_refused(client: &Client, server: &Running, alert: &str) {
    let err = client.get(server.url("/")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::ServerRejectedCertificate { alert: a } if a == alert),
        "expected {alert}, got {err:?}"
    );
}

/// Rewrites the watched CA file with one more CA, and waits until the server trusts it.
async fn rotate_ca_file(dir: &Dir, handle: &mtls::ServerHandle, pem: String, anchors: usize) {
    dir.put("ca.crt", &pem);
    assert!(
        eventually_for(Duration::from_secs(20), || handle
            .certificate_status()
            .trust_anchors
            .len()
            == anchors)
        .await,
        "the CA file's rewrite was taken: {:?}",
        handle.certificate_status()
    );
}

#[tokio::test]
async fn trust_removed_from_code_stays_removed_when_a_trust_file_rotates() {
    let ca = Ca::new("root");
    let partner = Ca::new("partner root");
    let next = Ca::new("next root");
    let dir = Dir::new("removed-stays");
    let leaf = ca.server();
    dir.put("tls.crt", &leaf.cert_pem);
    dir.put("tls.key", &leaf.key_pem);
    dir.put("ca.crt", &ca.pem);
    let server = serve(
        Server::builder()
            .identity_files(dir.path("tls.crt"), dir.path("tls.key"))
            .trust_file(dir.path("ca.crt"))
            .trust(partner.trust())
            .authorize(Authorizer::any_verified())
            .reload_interval(Some(TICK)),
    )
    .await;
    let handle = server.handle.clone();
    let partner_client = unpooled_client(&ca, &partner.client("partner"));
    assert_eq!(
        partner_client.get(server.url("/")).await.unwrap().status(),
        200
    );

    // Code removes the partner, keeping the file's CA.
    let file_bundle = mtls::TrustBundle::from_pem_file(dir.path("ca.crt")).unwrap();
    handle.set_trust(vec![file_bundle]).unwrap();
    assert_refused(&partner_client, &server, "unknown_ca").await;

    // The file rotates (a new CA beside the old): the file's part follows it, the partner
    // stays out.
    rotate_ca_file(&dir, &handle, format!("{}{}", ca.pem, next.pem), 2).await;
    assert_refused(&partner_client, &server, "unknown_ca").await;
    let next_client = unpooled_client(&ca, &next.client("next"));
    assert_eq!(
        next_client.get(server.url("/")).await.unwrap().status(),
        200
    );
    let ca_client = unpooled_client(&ca, &ca.client("orders"));
    assert_eq!(ca_client.get(server.url("/")).await.unwrap().status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn crls_pushed_with_bundles_survive_a_trust_file_rotation() {
    let ca = Ca::new("root");
    let partner = Ca::new("partner root");
    let next = Ca::new("next root");
    let dir = Dir::new("crl-stays");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    const REVOKED: &[u8] = &[0x51, 0x02];
    let revoked = partner.issue(Leaf {
        serial: Some(REVOKED),
        ..Leaf::client("revoked partner")
    });
    let good = partner.client("good partner");
    let file_bundle = mtls::TrustBundle::from_pem_file(dir.path("ca.crt")).unwrap();
    let crl = mtls::Crls::from_bytes(partner.crl(&[REVOKED]).as_bytes()).unwrap();
    handle
        .set_trust(vec![file_bundle, partner.trust().with_crls(crl)])
        .unwrap();
    let revoked_client = unpooled_client(&ca, &revoked);
    let good_client = unpooled_client(&ca, &good);
    assert_refused(&revoked_client, &server, "certificate_revoked").await;
    assert_eq!(
        good_client.get(server.url("/")).await.unwrap().status(),
        200
    );

    rotate_ca_file(&dir, &handle, format!("{}{}", ca.pem, next.pem), 3).await;
    assert_refused(&revoked_client, &server, "certificate_revoked").await;
    assert_eq!(
        good_client.get(server.url("/")).await.unwrap().status(),
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_trust_file_left_out_of_a_push_is_no_longer_followed() {
    let ca = Ca::new("root");
    let other = Ca::new("other root");
    let dir = Dir::new("detached");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    // Code replaces the file's CA with its own bundle (our certificate chains to both).
    handle
        .set_trust(vec![ca.trust().with_crls(
            mtls::Crls::from_bytes(ca.crl(&[]).as_bytes()).unwrap(),
        )])
        .unwrap();
    // The watcher reads the rewrite (a reload is counted) and leaves the file's CA out.
    let reloads = handle.certificate_status().reloads;
    dir.put("ca.crt", &format!("{}{}", ca.pem, other.pem));
    let other_client = unpooled_client(&ca, &other.client("other"));
    assert!(
        eventually_for(Duration::from_secs(20), || handle
            .certificate_status()
            .reloads
            > reloads)
        .await
    );
    assert_eq!(handle.certificate_status().trust_anchors.len(), 1);
    assert_refused(&other_client, &server, "unknown_ca").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_file_that_does_not_load_is_read_again_only_when_it_changes() {
    let capture = Capture::global();
    let ca = Ca::new("root");
    let dir = Dir::new("unreadable-once");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    let marker = dir.path("ca.crt").display().to_string();
    let reads = || {
        capture
            .events()
            .iter()
            .filter(|e| e.contains("reading the watched") && e.contains(&marker))
            .count()
    };
    dir.put("ca.crt", "not a certificate\n");
    assert!(
        eventually_for(Duration::from_secs(20), || handle
            .certificate_status()
            .last_reload_error
            .is_some())
        .await
    );
    let after_failure = reads();
    // A witness on the same tick whose candidate is refused, and so read again on every
    // tick: forty of its reads later, the broken file has not been read again...
    let witness_dir = Dir::new("unreadable-once-witness");
    let (witness, _witness_handle) = file_server(&witness_dir, &ca, &ca.server()).await;
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::server()
    });
    put_pair(&witness_dir, &expired);
    let witness_marker = witness_dir.path("ca.crt").display().to_string();
    let witness_reads = || {
        capture
            .events()
            .iter()
            .filter(|e| e.contains("reading the watched") && e.contains(&witness_marker))
            .count()
    };
    assert!(eventually_for(refusal::SETTLE, || witness_reads() >= 40).await);
    assert_eq!(reads(), after_failure, "{:?}", handle.certificate_status());
    witness.shutdown().await;
    // ...and its repair is read at once.
    dir.put("ca.crt", &ca.pem);
    assert!(
        eventually_for(Duration::from_secs(20), || handle
            .certificate_status()
            .last_reload_error
            .is_none())
        .await
    );
    assert_eq!(reads(), after_failure + 1);
    assert_client_auth_kept(&ca, &server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_ticket_issued_before_a_swap_is_not_honoured_after_it() {
    let ca = Ca::new("root");
    let (server, handle) = serve_with(&ca, &ca.server()).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let swaps: [&dyn Fn(); 2] = [
        &|| handle.set_identity(ca.server().identity()).unwrap(),
        &|| handle.set_trust(vec![ca.trust()]).unwrap(),
    ];
    for swap in swaps {
        for _ in 0..2 {
            body_string(client.get(server.url("/")).await.unwrap()).await;
        }
        assert!(server.last_peer().unwrap().resumed(), "a ticket is in play");
        let resumed = server.stats.handshakes_resumed();
        swap();
        body_string(client.get(server.url("/")).await.unwrap()).await;
        assert!(
            !server.last_peer().unwrap().resumed(),
            "the ticket from before the swap is not honoured"
        );
        assert_eq!(server.stats.handshakes_resumed(), resumed);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn established_and_pooled_connections_keep_their_material_across_a_swap() {
    let ca = Ca::new("root");
    let first = ca.server();
    let (server, handle) = serve_with(&ca, &first).await;
    let orders = ca.client("orders");
    let pooled = client(&ca, &orders);
    assert_eq!(served_leaf(&pooled, &server).await, first.der);
    let accepted = server.stats.handshakes_accepted();
    // The server swaps its certificate: the pooled connection keeps the one it was made with,
    // a new connection gets the new one.
    let next = ca.server();
    handle.set_identity(next.identity()).unwrap();
    assert_eq!(served_leaf(&pooled, &server).await, first.der);
    assert_eq!(
        server.stats.handshakes_accepted(),
        accepted,
        "the same connection"
    );
    assert_eq!(
        served_leaf(&unpooled_client(&ca, &ca.client("fresh")), &server).await,
        next.der
    );
    // The client swaps its certificate: its pooled connection still presents the old one.
    pooled.set_identity(ca.client("orders").identity()).unwrap();
    body_string(pooled.get(server.url("/")).await.unwrap()).await;
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        orders.der.as_slice()
    );
    server.shutdown().await;
}

/// Completes a TLS 1.3 handshake by hand, holding back the client's last record until
/// `between` has run, then sends a request: the response text, or the error that ended it.
async fn handshake_held_at_the_last_record(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    between: impl std::future::Future<Output = ()>,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    tcp.write_all(&out).await?;
    let mut buf = vec![0u8; 32 * 1024];
    while tls.is_handshaking() {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        tls.read_tls(&mut &buf[..n])?;
        tls.process_new_packets().map_err(std::io::Error::other)?;
    }
    // The client's flight (certificate, its proof, finished) in small records: all but the
    // last go now, so the server reads and verifies the certificate but cannot finish.
    let mut flight = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut flight)?;
    }
    let mut last = 0;
    let mut at = 0;
    while at + 5 <= flight.len() {
        last = at;
        at += 5 + u16::from_be_bytes([flight[at + 3], flight[at + 4]]) as usize;
    }
    assert_eq!(at, flight.len(), "whole records");
    tcp.write_all(&flight[..last]).await?;
    between.await;
    tcp.write_all(&flight[last..]).await?;
    tls.writer()
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    tcp.write_all(&out).await?;
    let mut answer = Vec::new();
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        tls.read_tls(&mut &buf[..n])?;
        tls.process_new_packets().map_err(std::io::Error::other)?;
        match tls.reader().read_to_end(&mut answer) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_handshake_that_straddles_a_swap_is_verified_again_under_the_new_trust() {
    let old = Ca::new("old root");
    let new = Ca::new("new root");
    // The policy records each verification, so the test knows when the certificate was read.
    let verified = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&verified);
    let server = serve(
        Server::builder()
            .identity(new.server().identity())
            .trust(old.trust())
            .trust(new.trust())
            .authorize(Authorizer::from_fn("counted", move |_| {
                count.fetch_add(1, Ordering::SeqCst);
                true
            })),
    )
    .await;
    let handle = server.handle.clone();
    let leaving = old.client("leaving");
    let mut config = (*raw_config(
        &new,
        Some(&leaving),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    ))
    .clone();
    config.max_fragment_size = Some(64);
    let before = server
        .stats
        .handshake_failures(HandshakeFailure::UnknownIssuer);
    // The certificate is verified under trust that includes the old CA; then the old CA is
    // removed before the handshake ends.
    let answer = handshake_held_at_the_last_record(server.addr, Arc::new(config), async {
        assert!(
            eventually_for(refusal::SETTLE, || verified.load(Ordering::SeqCst) == 1).await,
            "the server verified the certificate"
        );
        handle.set_trust(vec![new.trust()]).unwrap();
    })
    .await;
    assert!(
        !answer.as_deref().unwrap_or("").contains("200 OK"),
        "{answer:?}"
    );
    refusal::assert_counted(&server, HandshakeFailure::UnknownIssuer, before).await;
    assert!(server.seen.lock().unwrap().is_empty(), "no handler ran");
    refusal::assert_served(&server, &unpooled_client(&new, &new.client("staying"))).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_rotation_to_a_certificate_with_the_wrong_key_usage_is_refused() {
    let ca = Ca::new("root");
    let dir = Dir::new("wrong-usage");
    let first = ca.server();
    let (server, handle) = file_server(&dir, &ca, &first).await;
    let observer = unpooled_client(&ca, &ca.client("orders"));
    // From code: a client-only certificate is no server certificate.
    let client_only = ca.client("not a server");
    let err = handle.set_identity(client_only.identity()).unwrap_err();
    assert!(matches!(err, mtls::Error::DoesNotChain { .. }), "{err:?}");
    assert_eq!(handle.certificate_status().reload_failures, 1);
    assert_eq!(served_leaf(&observer, &server).await, first.der);
    // Through the files.
    let other = ca.client("not a server either");
    put_pair(&dir, &other);
    assert!(
        eventually_for(refusal::SETTLE, || handle
            .certificate_status()
            .last_reload_error
            .as_deref()
            .is_some_and(|e| e.contains("not a server either")))
        .await,
        "{:?}",
        handle.certificate_status()
    );
    assert_eq!(
        served_leaf(&observer, &server).await,
        first.der,
        "last good kept"
    );
    assert_eq!(handle.certificate_status().reloads, 0);
    assert_client_auth_kept(&ca, &server).await;

    // A client refuses a server-only certificate for itself, and keeps presenting its own.
    let orders = ca.client("orders");
    let client = unpooled_client(&ca, &orders);
    let err = client.set_identity(ca.server().identity()).unwrap_err();
    assert!(matches!(err, mtls::Error::DoesNotChain { .. }), "{err:?}");
    body_string(client.get(server.url("/")).await.unwrap()).await;
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        orders.der.as_slice()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_rotations_from_code_and_files_are_each_applied_once_under_load() {
    let ca = Ca::new("root");
    let dir = Dir::new("concurrent");
    let (server, handle) = file_server(&dir, &ca, &ca.server()).await;
    let load = Load::start(&ca, &server, None);
    let observer = unpooled_client(&ca, &ca.client("observer"));
    let rounds = 4;
    for round in 1..=rounds {
        // Both at once: the files are swapped and a certificate is pushed from code.
        let from_file = ca.server();
        let from_code = ca.server();
        put_pair(&dir, &from_file);
        handle.set_identity(from_code.identity()).unwrap();
        assert!(
            eventually_for(refusal::SETTLE, || handle.certificate_status().reloads
                >= 2 * round)
            .await,
            "round {round}: {:?}",
            handle.certificate_status()
        );
        let served = served_leaf(&observer, &server).await;
        assert!(
            served == from_file.der || served == from_code.der,
            "round {round}: one of the two is served"
        );
    }
    // A last swap through the files: once it is served, every earlier change has been seen,
    // and none was applied twice.
    let last = ca.server();
    put_pair(&dir, &last);
    assert!(wait_for_leaf(&observer, &server, &last.der).await);
    let (ok, failed) = load.finish().await;
    assert_eq!(handle.certificate_status().reloads, 2 * rounds + 1);
    assert!(ok > 0);
    assert_eq!(failed, 0, "{ok} requests succeeded");
    server.shutdown().await;
}
