//! `PemDirectory`: our identity and trust as PEM files that follow rotation, written so that a
//! reader never sees a key that does not match its certificate.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use mtls::{Client, Identity, Rotate, TrustBundle};

#[tokio::test]
async fn the_directory_holds_the_current_identity_and_follows_rotation() {
    let ca = Ca::new("root");
    let first = ca.client("orders");
    let client = Client::builder()
        .identity(first.identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    let tmp = Dir::new("pem-follow");
    let dir = tmp.path("pem");
    let pem = client.pem_directory(&dir).unwrap();
    let loaded = Identity::from_pem_files(pem.cert_path(), pem.key_path()).unwrap();
    assert_eq!(loaded.chain()[0].as_ref(), first.der.as_slice());
    let trust = TrustBundle::from_pem_file(pem.ca_path()).unwrap();
    assert_eq!(trust.certificates().len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [pem.key_path(), pem.combined_path()] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
    }
    let second = ca.client("orders");
    client.set_identity(second.identity()).unwrap();
    let loaded = Identity::from_pem_files(pem.cert_path(), pem.key_path()).unwrap();
    assert_eq!(loaded.chain()[0].as_ref(), second.der.as_slice());
    // A rejected candidate leaves the files alone.
    let expired = ca.issue(Leaf {
        not_before: time::Duration::days(-3),
        not_after: time::Duration::days(-1),
        ..Leaf::client("orders")
    });
    assert!(client.set_identity(expired.identity()).is_err());
    let loaded = Identity::from_pem_files(pem.cert_path(), pem.key_path()).unwrap();
    assert_eq!(loaded.chain()[0].as_ref(), second.der.as_slice());
    drop(pem);
}

#[tokio::test]
async fn a_reader_polling_the_directory_never_sees_a_mismatched_pair() {
    let ca = Ca::new("root");
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    let tmp = Dir::new("pem-atomic");
    let dir = tmp.path("pem");
    let pem = client.pem_directory(&dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, dir) = (stop.clone(), reads.clone(), dir.clone());
        let combined = pem.combined_path();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // The one-file form.
                let both = std::fs::read(&combined).unwrap();
                Identity::from_pem(&both, &both).expect("tls.pem is a matching pair");
                // The two-file form, read through `..data` resolved once.
                let version = dir.join(std::fs::read_link(dir.join("..data")).unwrap());
                if let (Ok(cert), Ok(key)) = (
                    std::fs::read(version.join("tls.crt")),
                    std::fs::read(version.join("tls.key")),
                ) {
                    Identity::from_pem(&cert, &key).expect("one version's pair matches");
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..30 {
        client.set_identity(ca.client("orders").identity()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw only matching pairs");
    assert!(reads.load(Ordering::Relaxed) > 10, "the reader ran");
    // Old versions are cleaned up: the current one and the one before stay.
    let versions = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir() && !e.path().is_symlink())
        .count();
    assert!(versions <= 2, "{versions} versions left");
    drop(pem);
}

#[tokio::test]
async fn trust_domain_bundles_and_crls_get_files_of_their_own() {
    let ca = Ca::new("root");
    let partner = Ca::new("partner root");
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .trust(partner.trust().for_trust_domain("partner.example").unwrap())
        .crls(mtls::Crls::from_bytes(ca.crl(&[&[0x42]]).as_bytes()).unwrap())
        .build()
        .unwrap();
    let tmp = Dir::new("pem-domains");
    let dir = tmp.path("pem");
    let pem = client.pem_directory(&dir).unwrap();
    // ca.crt holds only the unbound bundle: the partner's CA must not vouch for everyone.
    let plain = TrustBundle::from_pem_file(pem.ca_path()).unwrap();
    assert_eq!(plain.certificates().len(), 1);
    assert_eq!(
        plain.certificates()[0].as_ref(),
        ca.trust().certificates()[0].as_ref()
    );
    let bound = TrustBundle::from_pem_file(dir.join("ca-partner.example.crt")).unwrap();
    assert_eq!(
        bound.certificates()[0].as_ref(),
        partner.trust().certificates()[0].as_ref()
    );
    let crls = mtls::Crls::from_file(dir.join("ca.crl")).unwrap();
    assert_eq!(crls.as_slice().len(), 1);
    drop(pem);
}
