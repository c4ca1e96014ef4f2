//! `mtls inspect` on certificates, keys and chains made in the test.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use mtls::dev::LeafSpec;

#[test]
fn a_leaf_prints_names_validity_key_usages_and_fingerprints() {
    let dir = Dir::new("inspect-leaf");
    let pki = Pki::new(&dir, "Team CA");
    let (cert, key, issued) = pki.write(
        &dir,
        "orders",
        &LeafSpec::client("orders")
            .spiffe_id("spiffe://example.org/orders")
            .valid_for(Duration::from_secs(30 * 86_400)),
    );
    let run = mtls(&["inspect", &cert, &key]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let peer = mtls::PeerIdentity::from_chain(issued.identity().unwrap().chain()).unwrap();
    for line in [
        "certificate 1 — leaf".to_owned(),
        "subject:     CN=orders, O=mtls development".to_owned(),
        "issuer:      CN=Team CA".to_owned(),
        format!("serial:      {}", peer.serial()),
        "names:       URI:spiffe://example.org/orders".to_owned(),
        "SPIFFE ID:   spiffe://example.org/orders".to_owned(),
        "(29 days left)".to_owned(),
        "key:         ECDSA P-256".to_owned(),
        "ext. usage:  clientAuth".to_owned(),
        format!("x5t#S256:    {}", peer.x5t_s256()),
        "private key: matches certificate 1 of".to_owned(),
    ] {
        assert!(
            run.stdout.contains(&line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
    let sha = peer.fingerprint().to_string().to_uppercase();
    assert!(run.stdout.replace(':', "").contains(&sha), "{}", run.stdout);

    let json = mtls(&["inspect", "--json", &cert]);
    let files: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(files[0]["format"], "PEM");
    assert_eq!(
        files[0]["certificates"][0]["spiffe_id"],
        "spiffe://example.org/orders"
    );
    assert_eq!(files[0]["certificates"][0]["validity"], "valid");
    assert_eq!(files[0]["certificates"][0]["ca"], false);
}

#[test]
fn expired_and_not_yet_valid_are_said_in_plain_words_and_exit_1() {
    let dir = Dir::new("inspect-validity");
    let pki = Pki::new(&dir, "Team CA");
    let (expired, _, _) = pki.write(&dir, "old", &LeafSpec::client("old").expired());
    let run = mtls(&["inspect", &expired]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("(EXPIRED "), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("✗ certificate 1 (CN=old, O=mtls development) has EXPIRED")
    );

    let now = SystemTime::now();
    let (early, _, _) = pki.write(
        &dir,
        "early",
        &LeafSpec::client("early").validity(
            now + Duration::from_secs(3 * 86_400),
            now + Duration::from_secs(9 * 86_400),
        ),
    );
    let run = mtls(&["inspect", &early]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("(NOT YET VALID: valid in 2 days)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_key_that_matches_no_certificate_is_named() {
    let dir = Dir::new("inspect-key");
    let pki = Pki::new(&dir, "Team CA");
    let (cert, _, _) = pki.write(&dir, "a", &LeafSpec::client("a"));
    let (_, other_key, _) = pki.write(&dir, "b", &LeafSpec::client("b"));
    let run = mtls(&["inspect", &cert, &other_key]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("private key: matches NO certificate given"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("✗ the private key matches none of the certificates given")
    );
}

#[test]
fn a_chain_out_of_order_is_named_with_the_right_order() {
    let dir = Dir::new("inspect-chain");
    let pki = Pki::new(&dir, "Root CA");
    let inter = pki.ca.intermediate("Issuing CA").unwrap();
    let leaf = inter.issue(&LeafSpec::client("chained")).unwrap();
    let pem = leaf.cert_pem();
    // In order: leaf, intermediate; the root is not included.
    let good = dir.path("good.pem");
    std::fs::write(&good, pem).unwrap();
    let run = mtls(&["inspect", &good]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("chain: in order; ends at CN=Issuing CA, issued by CN=Root CA (not included: peers must trust it)"),
        "{}",
        run.stdout
    );
    // With the root, reversed.
    let mut blocks: Vec<String> = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .map(str::to_owned)
        .collect();
    blocks.push(pki.ca.cert_pem().to_owned());
    blocks.reverse();
    let bad = dir.path("bad.pem");
    std::fs::write(&bad, blocks.concat()).unwrap();
    let run = mtls(&["inspect", &bad]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "✗ the chain is out of order: certificate 1 (CN=Root CA) is not issued by certificate 2 (CN=Issuing CA); the right order is 3 (CN=chained, O=mtls development), 2 (CN=Issuing CA), 1 (CN=Root CA)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn der_files_and_unreadable_files() {
    let dir = Dir::new("inspect-der");
    let pki = Pki::new(&dir, "Team CA");
    let leaf = pki.ca.client("spiffe://example.org/der").unwrap();
    let der = dir.path("leaf.der");
    std::fs::write(&der, leaf.der()).unwrap();
    let run = mtls(&["inspect", &der]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("leaf.der (DER)"));
    assert!(run.stdout.contains("SPIFFE ID:   spiffe://example.org/der"));

    let junk = dir.path("junk.bin");
    std::fs::write(&junk, b"not a certificate").unwrap();
    let run = mtls(&["inspect", &junk]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("not a PEM or DER certificate, and as PKCS#12"),
        "{}",
        run.stdout
    );

    let run = mtls(&["inspect", &dir.path("missing.pem")]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("cannot read"), "{}", run.stdout);
    assert_eq!(mtls(&["inspect"]).code, 2);
}
