use std::time::SystemTime;

use super::*;

#[test]
fn leaves_carry_what_the_spec_says() {
    let ca = DevCa::new("root").unwrap();
    let inter = ca.intermediate("issuing").unwrap();
    let cert = inter
        .issue(
            &LeafSpec::client("orders")
                .spiffe_id("spiffe://example.org/orders")
                .dns("orders.local")
                .serial(&[0x12, 0x34]),
        )
        .unwrap();
    let identity = cert.identity().unwrap();
    assert_eq!(identity.chain().len(), 2, "leaf and intermediate");
    let peer = crate::PeerIdentity::from_chain(identity.chain()).unwrap();
    assert_eq!(
        peer.spiffe_id().unwrap().as_str(),
        "spiffe://example.org/orders"
    );
    assert_eq!(peer.dns_names(), ["orders.local"]);
    assert_eq!(peer.serial(), "1234");
    assert!(peer.issuer().contains("issuing"));
}

#[test]
fn lifetimes_are_exact() {
    let ca = DevCa::new("root").unwrap();
    let expired = ca.issue(&LeafSpec::client("old").expired()).unwrap();
    let peer = crate::PeerIdentity::from_chain(expired.identity().unwrap().chain()).unwrap();
    assert!(peer.not_after() < SystemTime::now());
    let early = ca.issue(&LeafSpec::client("new").not_yet_valid()).unwrap();
    let peer = crate::PeerIdentity::from_chain(early.identity().unwrap().chain()).unwrap();
    assert!(peer.not_before() > SystemTime::now());
}

#[test]
fn a_ca_written_and_loaded_back_issues_leaves_that_chain_to_it() {
    let dir = std::env::temp_dir().join(format!("mtls-devca-{}", std::process::id()));
    let ca = DevCa::new("persisted").unwrap();
    let (cert, key) = ca.write_pem(&dir, "ca").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = DevCa::from_pem(
        &std::fs::read_to_string(&cert).unwrap(),
        &std::fs::read_to_string(&key).unwrap(),
    )
    .unwrap();
    let leaf = again.issue(&LeafSpec::server("svc")).unwrap();
    let peer = crate::PeerIdentity::from_chain(leaf.identity().unwrap().chain()).unwrap();
    assert_eq!(peer.issuer(), "CN=persisted");
    // A key that is not the certificate's is refused.
    let other = DevCa::new("other").unwrap();
    assert!(matches!(
        DevCa::from_pem(ca.cert_pem(), &other.key_pem()),
        Err(DevCaError::LoadCa { .. })
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_dns_name_is_an_error_not_a_panic() {
    let ca = DevCa::new("root").unwrap();
    let err = ca
        .issue(&LeafSpec::server("na\u{ef}ve.example"))
        .unwrap_err();
    assert!(matches!(err, DevCaError::Issue { .. }), "{err:?}");
}
