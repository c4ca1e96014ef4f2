//! A federated partner's bundle read from a watched file or the configuration file: bound to
//! its trust domain on every read, so it rotates under traffic and never vouches for more
//! than its domain's SPIFFE IDs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use mtls::{Authorizer, ClientError, Config, PeerIdentity, Rotate, Server};

const PARTNER: &str = "spiffe://partner.example/x";

fn partner_leaf(ca: &Ca, uri: &'static str, dns: Vec<&'static str>) -> Issued {
    ca.issue(Leaf {
        uris: vec![uri],
        dns,
        ..Leaf::client("partner")
    })
}

/// Our own workload, bound to our domain.
fn our_leaf(ca: &Ca) -> Issued {
    ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    })
}

fn policy() -> Authorizer {
    Authorizer::any_of([
        Authorizer::trust_domain("example.org").unwrap(),
        Authorizer::spiffe_id(PARTNER).unwrap(),
        Authorizer::dns_name("billing.internal").unwrap(),
    ])
    .unwrap()
}

async fn assert_refused(client: &mtls::Client, server: &Running, alert: &str, what: &str) {
    let err = client.get(server.url("/")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::ServerRejectedCertificate { alert: a } if a == alert),
        "{what}: expected {alert}, got {err:?}"
    );
}

/// The partner's client is served and known by its SPIFFE ID, bound to the partner's domain;
/// a leaf of the same CA claiming an internal DNS name, or our own domain, is refused.
async fn assert_partner_bound(ours: &Ca, partner: &Ca, server: &Running) {
    let resp = unpooled_client(ours, &partner_leaf(partner, PARTNER, vec![]))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The last request from the partner (our own traffic may run beside it).
    let peer: PeerIdentity = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .rev()
        .flatten()
        .find(|p| p.spiffe_id().is_some_and(|id| id.to_string() == PARTNER))
        .cloned()
        .unwrap();
    assert_eq!(peer.bound_trust_domain(), Some("partner.example"));
    assert!(peer.dns_names().is_empty());
    let minted = partner_leaf(
        partner,
        "spiffe://partner.example/y",
        vec!["billing.internal"],
    );
    assert_refused(
        &unpooled_client(ours, &minted),
        server,
        "access_denied",
        "a partner leaf claiming an internal DNS name",
    )
    .await;
    let ours_claimed = partner_leaf(partner, "spiffe://example.org/orders", vec![]);
    assert_refused(
        &unpooled_client(ours, &ours_claimed),
        server,
        "unknown_ca",
        "a partner leaf claiming our domain",
    )
    .await;
}

#[tokio::test]
async fn a_federated_trust_file_rotates_under_traffic_and_stays_bound() {
    let ours = Ca::new("ours");
    let partner = Ca::new("partner");
    let next = Ca::new("partner next");
    let dir = Dir::new("federated-file");
    dir.put("partner.pem", &partner.pem);
    let server = serve(
        Server::builder()
            .identity(ours.server().identity())
            .trust(ours.trust().for_trust_domain("example.org").unwrap())
            .trust_file_for_domain(dir.path("partner.pem"), "partner.example")
            .authorize(policy())
            .reload_interval(Some(Duration::from_millis(50))),
    )
    .await;
    let handle = server.handle.clone();
    assert_partner_bound(&ours, &partner, &server).await;

    // Our own workload calls throughout the partner's rotation; none of its calls may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let client = unpooled_client(&ours, &our_leaf(&ours));
        let url = server.url("/");
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(url.clone()).await {
                    Ok(resp) if resp.status() == 200 => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // Overlap: both partner CAs, both bound.
    dir.put("partner.pem", &format!("{}{}", partner.pem, next.pem));
    let handle = &handle;
    let anchors = |n: usize| move || handle.certificate_status().trust_anchors.len() == n;
    assert!(eventually_for(Duration::from_secs(20), anchors(3)).await);
    assert_partner_bound(&ours, &partner, &server).await;
    assert_partner_bound(&ours, &next, &server).await;

    // The old partner CA leaves: its clients are refused, the new one's stay bound.
    dir.put("partner.pem", &next.pem);
    assert!(eventually_for(Duration::from_secs(20), anchors(2)).await);
    assert_refused(
        &unpooled_client(&ours, &partner_leaf(&partner, PARTNER, vec![])),
        &server,
        "unknown_ca",
        "the retired partner CA",
    )
    .await;
    assert_partner_bound(&ours, &next, &server).await;

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "our own calls all served"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_invalid_trust_domain_for_a_trust_file_is_a_named_load_error() {
    let ours = Ca::new("ours");
    let dir = Dir::new("federated-invalid");
    dir.put("partner.pem", &ours.pem);
    let err = Server::builder()
        .identity(ours.server().identity())
        .trust_file_for_domain(dir.path("partner.pem"), "spiffe://partner.example")
        .authorize(Authorizer::any_verified())
        .build_rustls_config()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("partner.pem") && text.contains("trust domain"),
        "{text}"
    );
}

#[tokio::test]
async fn a_config_bundle_with_a_trust_domain_federates_a_partner() {
    let ours = Ca::new("ours");
    let partner = Ca::new("partner");
    let dir = Dir::new("federated-config");
    let server_leaf = ours.issue(Leaf {
        uris: vec!["spiffe://example.org/inventory"],
        ..Leaf::server()
    });
    const REVOKED: &[u8] = &[0x0b, 0xad];
    dir.put("ours.pem", &ours.pem);
    dir.put("partner.pem", &partner.pem);
    // Each bundle's CRL speaks for its own CAs: ours revokes nothing, the partner's one leaf.
    dir.put("ours.crl", &ours.crl(&[]));
    dir.put("partner.crl", &partner.crl(&[REVOKED]));
    dir.put("inventory.pem", &server_leaf.cert_pem);
    dir.put("inventory.key", &server_leaf.key_pem);
    let text = format!(
        r#"
[bundle.inventory]
certificate = "{dir}/inventory.pem"
private_key = "{dir}/inventory.key"
ca = "{dir}/ours.pem"
crl = ["{dir}/ours.crl"]
trust_domain = "example.org"

[bundle.partner]
ca = "{dir}/partner.pem"
crl = ["{dir}/partner.crl"]
trust_domain = "partner.example"

[server]
listen = "127.0.0.1:0"
bundle = "inventory"
trust = ["partner"]
allow = ["spiffe://example.org/*", "{PARTNER}", "dns:billing.internal"]
"#,
        dir = dir.0.display()
    );
    dir.put("mtls.toml", &text);
    let cfg = Config::from_file(dir.path("mtls.toml")).unwrap();
    let server = start(Server::from_config(&cfg).await.unwrap());
    assert_partner_bound(&ours, &partner, &server).await;
    let resp = unpooled_client(&ours, &our_leaf(&ours))
        .get(server.url("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revoked = partner.issue(Leaf {
        uris: vec![PARTNER],
        serial: Some(REVOKED),
        ..Leaf::client("partner")
    });
    assert_refused(
        &unpooled_client(&ours, &revoked),
        &server,
        "certificate_revoked",
        "a partner leaf its own CRL revokes",
    )
    .await;
    server.shutdown().await;

    // A partner without CRLs is not refused for want of one: our CRL speaks for our CA alone.
    let uncovered = text.replace(
        &format!("crl = [\"{}/partner.crl\"]\n", dir.0.display()),
        "",
    );
    assert_ne!(uncovered, text);
    dir.put("mtls.toml", &uncovered);
    let cfg = Config::from_file(dir.path("mtls.toml")).unwrap();
    let server = start(Server::from_config(&cfg).await.unwrap());
    assert_partner_bound(&ours, &partner, &server).await;
    server.shutdown().await;

    // The files of one profile are watched together.
    let frozen = text.replace(
        "trust_domain = \"partner.example\"\n",
        "trust_domain = \"partner.example\"\nreload = false\n",
    );
    let err = Config::from_toml_str(&frozen).unwrap_err();
    assert!(err.to_string().contains("bundle.partner.reload"), "{err}");

    // A trust-only bundle cannot serve, and an undefined `trust` name is named.
    let serving_partner = text.replace(r#"bundle = "inventory""#, r#"bundle = "partner""#);
    let err = Config::from_toml_str(&serving_partner).unwrap_err();
    assert!(
        err.to_string().contains("bundle.partner.certificate"),
        "{err}"
    );
    let undefined = text.replace(r#"trust = ["partner"]"#, r#"trust = ["nobody"]"#);
    let err = Config::from_toml_str(&undefined).unwrap_err();
    assert!(err.to_string().contains("server.trust"), "{err}");
}
