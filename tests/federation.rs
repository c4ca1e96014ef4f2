//! A bundle bound to a trust domain vouches for that domain's SPIFFE IDs and nothing else: a
//! federated partner's CA cannot mint DNS, IP, CN or e-mail identities, on either side.

mod common;

use std::net::IpAddr;

use common::*;
use mtls::{Authorizer, Client, ClientError, HandshakeFailure, Server};
use rcgen::ExtendedKeyUsagePurpose;

const PARTNER: &str = "spiffe://partner.example/x";

/// A partner leaf that claims, besides its SPIFFE ID, every name an internal service has.
fn partner_claiming_internal_names(partner: &Ca, eku: ExtendedKeyUsagePurpose) -> Issued {
    partner.issue(Leaf {
        uris: vec![PARTNER],
        dns: vec!["billing.internal", "localhost"],
        ips: vec!["10.0.0.7".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        emails: vec!["billing@internal"],
        ekus: vec![eku],
        ..Leaf::client("billing")
    })
}

/// A server on our CA that federates `partner` and also trusts a plain (unbound) CA.
async fn federating_server(ours: &Ca, partner: &Ca, plain: &Ca, policy: Authorizer) -> Running {
    serve(
        Server::builder()
            .identity(ours.server().identity())
            .trust(ours.trust().for_trust_domain("example.org").unwrap())
            .trust(partner.trust().for_trust_domain("partner.example").unwrap())
            .trust(plain.trust())
            .authorize(policy),
    )
    .await
}

#[tokio::test]
async fn a_partner_ca_cannot_mint_dns_ip_cn_or_email_identities() {
    let (ours, partner, plain) = (Ca::new("ours"), Ca::new("partner"), Ca::new("plain"));
    let internal: IpAddr = "10.0.0.7".parse().unwrap();
    let rules = [
        Authorizer::dns_name("billing.internal").unwrap(),
        Authorizer::ip_address(internal),
        Authorizer::common_name("billing").unwrap(),
        Authorizer::from_fn("reads the e-mail SAN", |p| {
            p.emails().iter().any(|e| e == "billing@internal")
        }),
    ];
    for rule in rules {
        let name = rule.to_string();
        let policy =
            Authorizer::any_of([Authorizer::trust_domain("example.org").unwrap(), rule]).unwrap();
        let server = federating_server(&ours, &partner, &plain, policy).await;
        let minted = partner_claiming_internal_names(&partner, ExtendedKeyUsagePurpose::ClientAuth);
        let err = unpooled_client(&ours, &minted)
            .get(server.url("/"))
            .await
            .unwrap_err();
        assert!(
            rejected_alert(&err) == Some("access_denied"),
            "{name}: {err:?}"
        );
        let stats = server.stats.clone();
        assert!(
            eventually(|| stats.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await,
            "{name}: refused by the policy, not by the chain"
        );
        assert!(
            server.seen.lock().unwrap().is_empty(),
            "{name}: no handler ran"
        );
        // The same names from the plain CA, which does vouch for names, are served.
        let legit = plain.issue(Leaf {
            dns: vec!["billing.internal"],
            ips: vec![internal],
            emails: vec!["billing@internal"],
            ..Leaf::client("billing")
        });
        let resp = unpooled_client(&ours, &legit)
            .get(server.url("/"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_bound_peer_is_known_by_its_spiffe_id_alone_also_when_resumed() {
    let (ours, partner, plain) = (Ca::new("ours"), Ca::new("partner"), Ca::new("plain"));
    let policy = Authorizer::trust_domain("partner.example").unwrap();
    let server = federating_server(&ours, &partner, &plain, policy).await;
    let client = unpooled_client(
        &ours,
        &partner_claiming_internal_names(&partner, ExtendedKeyUsagePurpose::ClientAuth),
    );
    for round in ["full handshake", "resumed"] {
        let resp = client.get(server.url("/")).await.unwrap();
        assert_eq!(resp.status(), 200, "{round}");
        let peer = server.last_peer().expect("the handler saw a peer");
        assert_eq!(peer.resumed(), round == "resumed", "{round}");
        assert_eq!(
            peer.bound_trust_domain(),
            Some("partner.example"),
            "{round}"
        );
        assert_eq!(peer.spiffe_id().unwrap().as_str(), PARTNER, "{round}");
        assert_eq!(peer.uris(), [PARTNER], "{round}");
        assert!(peer.dns_names().is_empty(), "{round}");
        assert!(peer.ip_addresses().is_empty(), "{round}");
        assert!(peer.emails().is_empty(), "{round}");
        assert_eq!(peer.common_name(), None, "{round}");
    }
    // A peer of the plain CA keeps every name it has, and says no bundle bound it.
    let legit = plain.issue(Leaf {
        dns: vec!["billing.internal"],
        ..Leaf::client("billing")
    });
    let server2 = federating_server(&ours, &partner, &plain, Authorizer::any_verified()).await;
    unpooled_client(&ours, &legit)
        .get(server2.url("/"))
        .await
        .unwrap();
    let peer = server2.last_peer().unwrap();
    assert_eq!(peer.bound_trust_domain(), None);
    assert_eq!(peer.dns_names(), ["billing.internal"]);
    assert_eq!(peer.common_name(), Some("billing"));
    server.shutdown().await;
    server2.shutdown().await;
}

/// A server whose certificate `ca` issued with `leaf`'s names, for clients of `clients`.
async fn server_with(ca: &Ca, leaf: Leaf, clients: &Ca) -> Running {
    serve(server_presenting(clients, &ca.issue(leaf))).await
}

fn federating_client(ours: &Ca, partner: &Ca, expect: Option<Authorizer>) -> Client {
    let mut builder = unpooled_builder(ours, &ours.client("orders"))
        .trust(partner.trust().for_trust_domain("partner.example").unwrap());
    if let Some(expect) = expect {
        builder = builder.expect_server(expect);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn a_partner_server_cannot_pass_for_an_internal_server_by_name() {
    let (ours, partner) = (Ca::new("ours"), Ca::new("partner"));
    // The partner CA's server certificate carries our server's DNS name and IP.
    let impostor = server_with(
        &partner,
        Leaf {
            uris: vec![PARTNER],
            ..Leaf::server()
        },
        &ours,
    )
    .await;
    let expect = Authorizer::dns_name("localhost").unwrap();
    let client = federating_client(&ours, &partner, Some(expect));
    let err = client.get(impostor.url("/")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::ServerNotAllowed { .. }),
        "the partner is not a DNS name: {err:?}"
    );
    assert!(impostor.seen.lock().unwrap().is_empty());
    // Our own CA's server with that name is accepted under the same expectation.
    let genuine = server_with(&ours, Leaf::server(), &ours).await;
    let resp = client.get(genuine.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    // And the partner server is accepted for what it is: its SPIFFE ID, bound.
    let by_id = federating_client(
        &ours,
        &partner,
        Some(Authorizer::spiffe_id(PARTNER).unwrap()),
    );
    let resp = by_id.get(impostor.url("/")).await.unwrap();
    let peer = resp.extensions().get::<mtls::PeerIdentity>().unwrap();
    assert_eq!(peer.bound_trust_domain(), Some("partner.example"));
    assert!(peer.dns_names().is_empty());
    impostor.shutdown().await;
    genuine.shutdown().await;
}

#[tokio::test]
async fn by_name_a_plain_ca_cannot_vouch_for_a_bound_domains_spiffe_id() {
    let (ours, partner) = (Ca::new("ours"), Ca::new("partner"));
    // Our plain CA (trusted by name) issues a server certificate that claims the partner's ID.
    let claiming = server_with(
        &ours,
        Leaf {
            uris: vec![PARTNER],
            ..Leaf::server()
        },
        &ours,
    )
    .await;
    let client = federating_client(&ours, &partner, None);
    let err = client.get(claiming.url("/")).await.unwrap_err();
    assert_eq!(
        server_refusal(&err),
        Some(HandshakeFailure::UnknownIssuer),
        "{err:?}"
    );
    assert!(claiming.seen.lock().unwrap().is_empty());
    // A plain server of the same CA, with no SPIFFE ID, is verified by name as before.
    let plain = server_with(&ours, Leaf::server(), &ours).await;
    let resp = client.get(plain.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let peer = resp.extensions().get::<mtls::PeerIdentity>().unwrap();
    assert_eq!(peer.bound_trust_domain(), None);
    assert_eq!(peer.dns_names(), ["localhost"]);
    claiming.shutdown().await;
    plain.shutdown().await;
}
