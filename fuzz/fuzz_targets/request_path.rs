//! Request paths: canonical forms are canonical, and no spelling of a protected path escapes
//! its access rule.
#![no_main]

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use mtls::{Access, policy::AccessRule, policy::Decision, PeerIdentity, Roles, policy::canonical_path};

/// A reader's identity, made once.
fn reader() -> &'static PeerIdentity {
    static PEER: OnceLock<PeerIdentity> = OnceLock::new();
    PEER.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.org/ns/prod/sa/reader".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        PeerIdentity::from_chain(&[cert.der().clone()]).unwrap()
    })
}

/// `/admin` for admins only, everything else for readers.
fn access() -> &'static Access {
    static ACCESS: OnceLock<Access> = OnceLock::new();
    ACCESS.get_or_init(|| {
        let roles = Roles::new()
            .role("admin", ["spiffe://example.org/ns/ops/*"])
            .unwrap()
            .role("reader", ["spiffe://example.org/ns/prod/*"])
            .unwrap();
        Access::new(roles)
            .rule(AccessRule::path("/admin").roles(["admin"]))
            .unwrap()
            .rule(AccessRule::path("/").roles(["reader"]))
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let decision = access().decide(&Method::GET, path, Some(reader()));
    let canonical = match canonical_path(path) {
        Ok(canonical) => canonical,
        Err(e) => {
            assert_eq!(
                decision,
                Decision::BadPath(e),
                "a refused path is refused as such"
            );
            return;
        }
    };
    assert!(canonical.starts_with('/'), "{canonical:?}");
    assert_eq!(
        canonical_path(&canonical).as_deref(),
        Ok(&*canonical),
        "the canonical form is its own canonical form"
    );
    assert!(
        !canonical.contains("//") && !canonical.contains('\\'),
        "{canonical:?}"
    );
    assert!(
        canonical.split('/').all(|s| s != "." && s != ".."),
        "no dot segments: {canonical:?}"
    );
    let bytes = canonical.as_bytes();
    for (i, _) in canonical.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).expect("an escape has two digits");
        let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(
            hex.iter().all(|h| !h.is_ascii_lowercase()),
            "escapes are upper-case: {canonical:?}"
        );
        assert!(
            !(byte.is_ascii_alphanumeric() || b"-._~/\\".contains(&byte)),
            "an unreserved character or a separator stays escaped: {canonical:?}"
        );
    }
    // The rule that applies is the canonical form's, whatever the spelling.
    let protected = canonical == "/admin" || canonical.starts_with("/admin/");
    assert_eq!(
        decision,
        access().decide(&Method::GET, &canonical, Some(reader())),
        "{path:?} is decided as {canonical:?}"
    );
    match decision {
        Decision::Denied(_) => assert!(protected, "{path:?} refused outside /admin"),
        Decision::Allowed(_) => assert!(!protected, "{path:?} reached /admin as a reader"),
        other => panic!("{path:?}: {other:?}"),
    }
});
