//! Every built-in policy and combinator, matching and not matching, and the spoofing attempts a
//! policy must refuse. Identities come from real certificates made in each test.

mod common;

use common::*;
use mtls::{Authorizer, PeerIdentity, PolicyError};

fn peer(spec: Leaf) -> PeerIdentity {
    let ca = Ca::new("root");
    PeerIdentity::from_chain(ca.issue(spec).identity().chain()).unwrap()
}

fn spiffe(uri: &'static str) -> PeerIdentity {
    peer(Leaf {
        uris: vec![uri],
        ..Leaf::client("workload")
    })
}

fn dns(names: Vec<&'static str>) -> PeerIdentity {
    peer(Leaf {
        dns: names,
        ..Leaf::client("host")
    })
}

fn allows(policy: &Authorizer, p: &PeerIdentity) -> bool {
    policy.allows(Some(p))
}

#[test]
fn any_verified_matches_every_certificate_but_no_anonymous_peer() {
    let policy = Authorizer::any_verified();
    assert!(allows(&policy, &dns(vec![])));
    assert!(!policy.allows(None));
}

#[test]
fn anonymous_matches_only_a_peer_without_certificate() {
    let policy = Authorizer::anonymous();
    assert!(policy.allows(None));
    assert!(!allows(&policy, &dns(vec![])));
}

#[test]
fn exact_spiffe_id() {
    let policy = Authorizer::spiffe_id("spiffe://example.org/orders").unwrap();
    assert!(allows(&policy, &spiffe("spiffe://example.org/orders")));
    assert!(!allows(&policy, &spiffe("spiffe://example.org/orders/x")));
    assert!(!allows(&policy, &spiffe("spiffe://example.org/order")));
    assert!(!allows(&policy, &spiffe("spiffe://other.org/orders")));
    assert!(!allows(&policy, &dns(vec!["orders"])));
}

#[test]
fn one_of_a_set_of_spiffe_ids() {
    let policy =
        Authorizer::spiffe_ids(["spiffe://example.org/a", "spiffe://example.org/b"]).unwrap();
    assert!(allows(&policy, &spiffe("spiffe://example.org/a")));
    assert!(allows(&policy, &spiffe("spiffe://example.org/b")));
    assert!(!allows(&policy, &spiffe("spiffe://example.org/c")));
}

#[test]
fn member_of_a_trust_domain() {
    let policy = Authorizer::trust_domain("example.org").unwrap();
    assert!(allows(&policy, &spiffe("spiffe://example.org/any/thing")));
    assert!(!allows(&policy, &spiffe("spiffe://example.org.evil/x")));
    assert!(!allows(&policy, &spiffe("spiffe://evil.example.org/x")));
    assert!(!allows(&policy, &dns(vec!["example.org"])));
}

#[test]
fn path_prefix_on_segment_boundaries() {
    let policy = Authorizer::spiffe_path_prefix("spiffe://example.org/ns/prod").unwrap();
    assert!(allows(&policy, &spiffe("spiffe://example.org/ns/prod")));
    assert!(allows(
        &policy,
        &spiffe("spiffe://example.org/ns/prod/sa/x")
    ));
    // Spoofing: a prefix matching mid-segment.
    assert!(!allows(
        &policy,
        &spiffe("spiffe://example.org/ns/production")
    ));
    assert!(!allows(
        &policy,
        &spiffe("spiffe://example.org/ns/prod-x/sa")
    ));
    assert!(!allows(&policy, &spiffe("spiffe://example.org/ns")));
    assert!(!allows(&policy, &spiffe("spiffe://other.org/ns/prod/sa/x")));
}

#[test]
fn dns_name_exact_and_case_insensitive() {
    let policy = Authorizer::dns_name("Orders.Internal").unwrap();
    assert!(allows(&policy, &dns(vec!["orders.internal"])));
    assert!(!allows(&policy, &dns(vec!["orders.internal.evil"])));
    assert!(!allows(&policy, &dns(vec!["x.orders.internal"])));
}

#[test]
fn dns_wildcard_matches_exactly_one_label() {
    let policy = Authorizer::dns_name("*.example.org").unwrap();
    assert!(allows(&policy, &dns(vec!["a.example.org"])));
    // Spoofing: a wildcard deeper than one label, and the apex.
    assert!(!allows(&policy, &dns(vec!["a.b.example.org"])));
    assert!(!allows(&policy, &dns(vec!["example.org"])));
    assert!(!allows(&policy, &dns(vec!["aexample.org"])));
    // A wildcard certificate is not a concrete name under a wildcard policy.
    assert!(!allows(&policy, &dns(vec!["*.example.org"])));
}

#[test]
fn ip_address_san() {
    let policy = Authorizer::ip_address("10.1.2.3".parse().unwrap());
    let p = peer(Leaf {
        ips: vec!["10.1.2.3".parse().unwrap()],
        ..Leaf::client("ip")
    });
    assert!(allows(&policy, &p));
    let q = peer(Leaf {
        ips: vec!["10.1.2.4".parse().unwrap()],
        ..Leaf::client("ip")
    });
    assert!(!allows(&policy, &q));
}

#[test]
fn subject_common_name() {
    let policy = Authorizer::common_name("legacy-client").unwrap();
    assert!(allows(&policy, &peer(Leaf::client("legacy-client"))));
    assert!(!allows(&policy, &peer(Leaf::client("legacy-client2"))));
    assert_eq!(
        Authorizer::common_name("").unwrap_err(),
        PolicyError::Empty("Authorizer::common_name")
    );
}

#[test]
fn closure_over_the_identity() {
    let policy = Authorizer::from_fn("serial is 0A", |p| p.serial() == "0A");
    let yes = peer(Leaf {
        serial: Some(&[0x0a]),
        ..Leaf::client("x")
    });
    let no = peer(Leaf {
        serial: Some(&[0x0b]),
        ..Leaf::client("x")
    });
    assert!(allows(&policy, &yes));
    assert!(!allows(&policy, &no));
    assert!(
        !policy.allows(None),
        "a closure never sees an anonymous peer"
    );
    assert_eq!(policy.to_string(), "fn(serial is 0A)");
}

#[test]
fn combinators() {
    let a = Authorizer::spiffe_id("spiffe://example.org/a").unwrap();
    let td = Authorizer::trust_domain("example.org").unwrap();
    let any =
        Authorizer::any_of([a.clone(), Authorizer::dns_name("db.internal").unwrap()]).unwrap();
    assert!(allows(&any, &spiffe("spiffe://example.org/a")));
    assert!(allows(&any, &dns(vec!["db.internal"])));
    assert!(!allows(&any, &spiffe("spiffe://example.org/b")));

    let all = Authorizer::all_of([td.clone(), Authorizer::not(a.clone())]).unwrap();
    assert!(allows(&all, &spiffe("spiffe://example.org/b")));
    assert!(!allows(&all, &spiffe("spiffe://example.org/a")));
    assert!(!allows(&all, &spiffe("spiffe://other.org/b")));

    let not = Authorizer::not(a);
    assert!(allows(&not, &spiffe("spiffe://example.org/b")));
    assert!(!not.allows(None), "not(...) never admits an anonymous peer");
    assert!(!Authorizer::not(Authorizer::anonymous()).allows(None));

    let both = Authorizer::any_of([Authorizer::anonymous(), td]).unwrap();
    assert!(both.allows(None));
    assert!(allows(&both, &spiffe("spiffe://example.org/x")));
    assert!(!allows(&both, &spiffe("spiffe://other.org/x")));
}

#[test]
fn empty_combinators_and_sets_are_errors() {
    assert!(matches!(Authorizer::any_of([]), Err(PolicyError::Empty(_))));
    assert!(matches!(Authorizer::all_of([]), Err(PolicyError::Empty(_))));
    assert!(matches!(
        Authorizer::spiffe_ids(Vec::<String>::new()),
        Err(PolicyError::Empty(_))
    ));
}

#[test]
fn typos_are_errors_at_build_time() {
    for bad in [
        "spiffe://Example.org/a",
        "SPIFFE://example.org/a",
        "spiffe://example.org/a/",
        "spiffe://example.org/a/../b",
        "spiffe://example.org/%2e%2e/b",
        "spiffe://example.org:8443/a",
        "example.org/a",
    ] {
        let err = Authorizer::spiffe_id(bad).unwrap_err();
        assert!(matches!(err, PolicyError::SpiffeId(_)), "{bad}: {err:?}");
    }
    assert!(matches!(
        Authorizer::spiffe_id("spiffe://example.org"),
        Err(PolicyError::MissingPath(_))
    ));
    for bad in ["spiffe://example.org", "Example.org", "example.org/x", ""] {
        assert!(
            matches!(
                Authorizer::trust_domain(bad),
                Err(PolicyError::TrustDomain(_))
            ),
            "{bad}"
        );
    }
    for bad in [
        "*.org",
        "a.*.example.org",
        "*x.example.org",
        "*.*.example.org",
        "",
        "a..b",
        "10.0.0.1",
    ] {
        assert!(
            matches!(Authorizer::dns_name(bad), Err(PolicyError::DnsName(_))),
            "{bad}"
        );
    }
    let err = Authorizer::spiffe_id("spiffe://example.org/a b").unwrap_err();
    assert!(err.to_string().contains("' '"), "{err}");
}

#[test]
fn display_is_readable() {
    let policy = Authorizer::any_of([
        Authorizer::spiffe_ids(["spiffe://example.org/b", "spiffe://example.org/a"]).unwrap(),
        Authorizer::all_of([
            Authorizer::trust_domain("example.org").unwrap(),
            Authorizer::not(Authorizer::dns_name("*.evil.org").unwrap()),
        ])
        .unwrap(),
        Authorizer::common_name("legacy").unwrap(),
    ])
    .unwrap();
    assert_eq!(
        policy.to_string(),
        "any_of(spiffe_ids(spiffe://example.org/a, spiffe://example.org/b), \
         all_of(trust_domain(example.org), not(dns_name(*.evil.org))), common_name(legacy))"
    );
}

// Spoofing attempts: certificates that try to look like an allowed workload.

#[test]
fn spoof_two_uri_sans_carry_no_spiffe_id() {
    let p = peer(Leaf {
        uris: vec!["spiffe://example.org/orders", "spiffe://example.org/admin"],
        ..Leaf::client("two")
    });
    assert!(p.spiffe_id().is_none());
    for policy in [
        Authorizer::spiffe_id("spiffe://example.org/orders").unwrap(),
        Authorizer::spiffe_id("spiffe://example.org/admin").unwrap(),
        Authorizer::trust_domain("example.org").unwrap(),
    ] {
        assert!(!allows(&policy, &p), "{policy}");
    }
}

#[test]
fn spoof_upper_case_scheme() {
    let p = spiffe("SPIFFE://example.org/orders");
    assert!(p.spiffe_id().is_none());
    assert!(!allows(
        &Authorizer::trust_domain("example.org").unwrap(),
        &p
    ));
}

#[test]
fn spoof_percent_encoded_and_dot_segments() {
    let policy = Authorizer::spiffe_path_prefix("spiffe://example.org/ns/prod").unwrap();
    for uri in [
        "spiffe://example.org/ns/prod/%2e%2e/admin",
        "spiffe://example.org/ns/prod/../admin",
        "spiffe://example.org/ns/prod/./x",
        "spiffe://example.org/ns%2fprod/x",
    ] {
        let p = spiffe(uri);
        assert!(p.spiffe_id().is_none(), "{uri}");
        assert!(!allows(&policy, &p), "{uri}");
    }
}

#[test]
fn spoof_trailing_slash() {
    let p = spiffe("spiffe://example.org/orders/");
    assert!(p.spiffe_id().is_none());
    assert!(!allows(
        &Authorizer::spiffe_id("spiffe://example.org/orders").unwrap(),
        &p
    ));
}

#[test]
fn spoof_empty_path_where_a_path_is_required() {
    let p = spiffe("spiffe://example.org");
    assert!(
        p.spiffe_id().is_none(),
        "a bare trust domain is not a workload"
    );
    assert!(!allows(
        &Authorizer::trust_domain("example.org").unwrap(),
        &p
    ));
    assert!(!allows(
        &Authorizer::spiffe_path_prefix("spiffe://example.org/ns").unwrap(),
        &p
    ));
}

#[test]
fn spoof_common_name_that_reads_like_a_spiffe_id() {
    let p = peer(Leaf::client("spiffe://example.org/orders"));
    assert!(p.spiffe_id().is_none());
    assert!(!allows(
        &Authorizer::spiffe_id("spiffe://example.org/orders").unwrap(),
        &p
    ));
    assert!(!allows(
        &Authorizer::trust_domain("example.org").unwrap(),
        &p
    ));
}

#[test]
fn denial_names_policy_and_identity() {
    let policy = Authorizer::spiffe_id("spiffe://example.org/orders").unwrap();
    let denied = policy
        .check(Some(&spiffe("spiffe://example.org/reporting")))
        .unwrap_err();
    assert_eq!(denied.presented, "spiffe://example.org/reporting");
    assert_eq!(denied.policy, "spiffe_id(spiffe://example.org/orders)");
    let resp = denied.into_response();
    assert_eq!(resp.status(), 403);
    let anonymous = policy.check(None).unwrap_err();
    assert_eq!(anonymous.presented, "anonymous");
}
