//! Every way loading certificates, keys and CAs can fail has a typed error naming the file,
//! the problem and the fix.

mod common;

use std::path::PathBuf;

use common::*;
use mtls::{Identity, LoadError, TrustBundle, error::Origin};

#[test]
fn identity_loads_from_files() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    let dir = Dir::new("ok");
    let cert = dir.write("tls.crt", &leaf.cert_pem);
    let key = dir.write("tls.key", &leaf.key_pem);
    let id = Identity::from_pem_files(&cert, &key).unwrap();
    assert_eq!(id.chain().len(), 1);
    assert!(
        !format!("{id:?}").contains("PRIVATE"),
        "Debug never shows the key"
    );
    let trust = TrustBundle::from_pem_file(dir.write("ca.crt", &ca.pem)).unwrap();
    assert_eq!(trust.certificates().len(), 1);
}

#[test]
fn missing_file_is_named() {
    let err = Identity::from_pem_files("/nonexistent/tls.crt", "/nonexistent/tls.key").unwrap_err();
    match &err {
        LoadError::Read { path, source } => {
            assert_eq!(path, &PathBuf::from("/nonexistent/tls.crt"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/tls.crt") && text.contains("check that the path exists"),
        "{text}"
    );
    let err = TrustBundle::from_pem_file("/nonexistent/ca.crt").unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
}

#[test]
fn file_without_certificate_is_named() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    let dir = Dir::new("nocert");
    let cert = dir.write("tls.crt", "just some text\n");
    let key = dir.write("tls.key", &leaf.key_pem);
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    match &err {
        LoadError::NoCertificate { origin } => assert_eq!(origin, &Origin::File(cert.clone())),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    // A key file passed as the certificate is the common mistake.
    let err = Identity::from_pem_files(&key, &key).unwrap_err();
    assert!(matches!(err, LoadError::NoCertificate { .. }), "{err:?}");
}

#[test]
fn file_without_private_key_is_named() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    let dir = Dir::new("nokey");
    let cert = dir.write("tls.crt", &leaf.cert_pem);
    let err = Identity::from_pem_files(&cert, &cert).unwrap_err();
    match &err {
        LoadError::NoPrivateKey { origin } => assert_eq!(origin, &Origin::File(cert.clone())),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("BEGIN PRIVATE KEY"), "{err}");
}

#[test]
fn unsupported_private_key_is_named() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    // A well-formed PEM block that holds no usable key.
    let garbage = "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n";
    let err = Identity::from_pem(leaf.cert_pem.as_bytes(), garbage.as_bytes()).unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedKey { .. }), "{err:?}");
    assert!(err.to_string().contains("not supported"), "{err}");
    // An encrypted key says how to decrypt it.
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = Identity::from_pem(leaf.cert_pem.as_bytes(), encrypted.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn key_that_does_not_match_the_certificate_is_named() {
    let ca = Ca::new("root");
    let a = ca.client("a");
    let b = ca.client("b");
    let dir = Dir::new("mismatch");
    let cert = dir.write("tls.crt", &a.cert_pem);
    let key = dir.write("tls.key", &b.key_pem);
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    match &err {
        LoadError::KeyMismatch { cert: c, key: k } => {
            assert_eq!(c, &Origin::File(cert.clone()));
            assert_eq!(k, &Origin::File(key.clone()));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn empty_ca_bundle_is_named() {
    let dir = Dir::new("emptyca");
    let path = dir.write("ca.crt", "");
    let err = TrustBundle::from_pem_file(&path).unwrap_err();
    match &err {
        LoadError::EmptyTrustBundle { origin } => assert_eq!(origin, &Origin::File(path.clone())),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("needs at least one"), "{err}");
    assert!(matches!(
        TrustBundle::from_der(vec![]).unwrap_err(),
        LoadError::EmptyTrustBundle { .. }
    ));
}

#[test]
fn ca_file_holding_a_leaf_is_named() {
    let ca = Ca::new("root");
    let leaf = ca.client("orders");
    let dir = Dir::new("leafca");
    let path = dir.write("ca.crt", &format!("{}{}", ca.pem, leaf.cert_pem));
    let err = TrustBundle::from_pem_file(&path).unwrap_err();
    match &err {
        LoadError::NotCa { index, subject, .. } => {
            assert_eq!(*index, 2);
            assert!(subject.contains("orders"), "{subject}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
}

#[test]
fn broken_pem_is_named() {
    let err = TrustBundle::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err();
    assert!(matches!(err, LoadError::Pem { .. }), "{err:?}");
    let err = TrustBundle::from_pem(
        b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(
        matches!(err, LoadError::InvalidCertificate { index: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn builder_surfaces_file_errors_at_bind() {
    let err = mtls::Server::builder()
        .identity_files("/nonexistent/tls.crt", "/nonexistent/tls.key")
        .trust_file("/nonexistent/ca.crt")
        .authorize(mtls::Authorizer::any_verified())
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(
        matches!(err, mtls::Error::Load(LoadError::Read { .. })),
        "{err:?}"
    );
}
