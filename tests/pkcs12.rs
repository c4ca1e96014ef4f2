//! PKCS#12 keystores and truststores as Java services hold them, written by `openssl pkcs12`
//! and by `keytool`, loaded with named errors for every way they go wrong. The stores are made
//! in the test run; tests that need `openssl` or `keytool` are ignored by default and run by
//! `.ci/run`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mtls::{Identity, LoadError, Password, TrustBundle};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("mtls-p12-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn put(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(tool: &str, args: &[&str], dir: &Path) {
    output(tool, args, dir);
}

/// An intermediate-issued client, its chain and the root, as PEM files in `dir`.
fn pem_files(dir: &Dir) -> (Ca, Issued) {
    let root = Ca::new("p12 root");
    let issuing = root.intermediate("p12 issuing");
    let leaf = issuing.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    dir.put("leaf.pem", &leaf.cert_pem); // leaf, then the intermediate
    dir.put("leaf.key", &leaf.key_pem);
    dir.put("ca.pem", &root.pem);
    (root, leaf)
}

#[test]
fn a_jks_store_is_named_with_the_conversion_command() {
    let mut jks = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2];
    jks.extend_from_slice(&[0; 64]);
    let err = Identity::from_pkcs12(&jks, &Password::new("x"), None).unwrap_err();
    assert!(matches!(err, LoadError::JksKeystore { .. }), "{err}");
    assert!(err.to_string().contains("keytool -importkeystore"), "{err}");
    let err = TrustBundle::from_pkcs12(&jks, &Password::new("x")).unwrap_err();
    assert!(matches!(err, LoadError::JksKeystore { .. }), "{err}");
}

#[test]
fn bytes_that_are_not_a_store_are_a_named_error() {
    for junk in [&b""[..], b"not a keystore", &[0x30, 0x82, 0xff, 0xff, 0x02]] {
        let err = Identity::from_pkcs12(junk, &Password::new("x"), None).unwrap_err();
        assert!(matches!(err, LoadError::Pkcs12 { .. }), "{err}");
    }
}

#[test]
fn passwords_never_show_and_come_from_files_or_variables() {
    let password = Password::new("hunter2");
    assert!(!format!("{password:?}").contains("hunter2"));
    let dir = Dir::new("password");
    let file = dir.put("pass.txt", "s3cret\n");
    let from_file = Password::from_file(&file).unwrap();
    assert!(!format!("{from_file:?}").contains("s3cret"));
    let err = Password::from_env("MTLS_TEST_PASSWORD_THAT_IS_NOT_SET").unwrap_err();
    assert!(matches!(err, LoadError::PasswordVariable { .. }), "{err}");
    let err = Password::from_file(dir.path("missing.txt")).unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");
}

#[tokio::test]
#[ignore = "needs the openssl command; .ci/run runs it"]
async fn an_openssl_keystore_loads_and_authenticates_for_real() {
    let dir = Dir::new("openssl");
    let (root, leaf) = pem_files(&dir);
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-name",
            "orders",
            "-passout",
            "pass:secret",
            "-out",
            "orders.p12",
        ],
        &dir.0,
    );
    let password = Password::new("secret");
    let identity = Identity::from_pkcs12_file(dir.path("orders.p12"), &password, None).unwrap();
    assert_eq!(identity.chain().len(), 2, "leaf and intermediate");
    assert_eq!(identity.chain()[0].as_ref(), leaf.der.as_slice());
    let by_alias =
        Identity::from_pkcs12_file(dir.path("orders.p12"), &password, Some("orders")).unwrap();
    assert_eq!(by_alias.chain()[0].as_ref(), leaf.der.as_slice());
    let err =
        Identity::from_pkcs12_file(dir.path("orders.p12"), &password, Some("billing")).unwrap_err();
    assert!(
        matches!(&err, LoadError::AliasNotFound { aliases, .. } if aliases == "orders"),
        "{err}"
    );

    // A real handshake with the loaded identity.
    let server = serve(server_builder(&root)).await;
    let client = mtls::Client::builder()
        .identity(identity)
        .trust(root.trust())
        .build()
        .unwrap();
    let resp = client.get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.last_peer().unwrap().spiffe_id().unwrap().as_str(),
        "spiffe://example.org/orders"
    );
    server.shutdown().await;

    // The wrong password is said as such.
    let err = Identity::from_pkcs12_file(dir.path("orders.p12"), &Password::new("guess"), None)
        .unwrap_err();
    assert!(matches!(err, LoadError::WrongPassword { .. }), "{err}");
    assert!(
        err.to_string().contains("wrong password") && err.to_string().contains("orders.p12"),
        "{err}"
    );

    // A truststore made by openssl (no Java trusted-entry attribute) loads too.
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "ca.pem",
            "-passout",
            "pass:trust",
            "-out",
            "trust.p12",
        ],
        &dir.0,
    );
    let trust =
        TrustBundle::from_pkcs12_file(dir.path("trust.p12"), &Password::new("trust")).unwrap();
    assert_eq!(
        trust.certificates()[0].as_ref(),
        root.trust().certificates()[0].as_ref()
    );
    // A truststore is not a keystore.
    let err = Identity::from_pkcs12_file(dir.path("trust.p12"), &Password::new("trust"), None)
        .unwrap_err();
    assert!(matches!(err, LoadError::EmptyKeystore { .. }), "{err}");
}

#[test]
#[ignore = "needs the openssl command with its legacy provider; .ci/run runs it"]
fn a_legacy_rc2_store_is_named_with_the_re_export_command() {
    let dir = Dir::new("legacy");
    pem_files(&dir);
    run(
        "openssl",
        &[
            "pkcs12", "-export", "-legacy", "-inkey", "leaf.key", "-in", "leaf.pem", "-passout",
            "pass:old", "-out", "old.p12",
        ],
        &dir.0,
    );
    let err =
        Identity::from_pkcs12_file(dir.path("old.p12"), &Password::new("old"), None).unwrap_err();
    assert!(matches!(err, LoadError::Pkcs12Legacy { .. }), "{err}");
    assert!(err.to_string().contains("openssl pkcs12 -legacy"), "{err}");
}

#[test]
#[ignore = "needs keytool (a JDK); .ci/run runs it"]
fn keytool_stores_load_and_their_mistakes_are_named() {
    let dir = Dir::new("keytool");
    let (root, leaf) = pem_files(&dir);
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-name",
            "orders",
            "-passout",
            "pass:secret",
            "-out",
            "orders.p12",
        ],
        &dir.0,
    );
    // keytool re-writes it with the JDK's own defaults (PBES2/AES-256, HMAC-SHA-256).
    run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "orders.p12",
            "-srcstoretype",
            "pkcs12",
            "-srcstorepass",
            "secret",
            "-destkeystore",
            "java.p12",
            "-deststoretype",
            "pkcs12",
            "-deststorepass",
            "changeit",
        ],
        &dir.0,
    );
    let password = Password::new("changeit");
    let identity = Identity::from_pkcs12_file(dir.path("java.p12"), &password, None).unwrap();
    assert_eq!(identity.chain()[0].as_ref(), leaf.der.as_slice());
    // A second key entry: without an alias the choice is refused, with the aliases listed.
    run(
        "keytool",
        &[
            "-genkeypair",
            "-noprompt",
            "-alias",
            "billing",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-dname",
            "CN=billing",
            "-keystore",
            "java.p12",
            "-storetype",
            "pkcs12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    let err = Identity::from_pkcs12_file(dir.path("java.p12"), &password, None).unwrap_err();
    assert!(
        matches!(&err, LoadError::AmbiguousAlias { aliases, .. } if aliases.contains("orders") && aliases.contains("billing")),
        "{err}"
    );
    let chosen =
        Identity::from_pkcs12_file(dir.path("java.p12"), &password, Some("orders")).unwrap();
    assert_eq!(chosen.chain()[0].as_ref(), leaf.der.as_slice());
    // A truststore as keytool writes it.
    run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "root",
            "-file",
            "ca.pem",
            "-keystore",
            "trust.p12",
            "-storetype",
            "pkcs12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    let trust = TrustBundle::from_pkcs12_file(dir.path("trust.p12"), &password).unwrap();
    assert_eq!(
        trust.certificates()[0].as_ref(),
        root.trust().certificates()[0].as_ref()
    );
    // A leaf slipped into the truststore is named by its alias.
    dir.put(
        "leaf-only.pem",
        leaf.cert_pem
            .split_inclusive(
                "-----END CERTIFICATE-----
",
            )
            .next()
            .unwrap(),
    );
    run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "not-a-ca",
            "-file",
            "leaf-only.pem",
            "-keystore",
            "trust.p12",
            "-storetype",
            "pkcs12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    let err = TrustBundle::from_pkcs12_file(dir.path("trust.p12"), &password).unwrap_err();
    assert!(
        matches!(&err, LoadError::NotCaEntry { alias, .. } if alias == "not-a-ca"),
        "{err}"
    );
    // A JKS store, recognized by its magic.
    run(
        "keytool",
        &[
            "-genkeypair",
            "-noprompt",
            "-alias",
            "old",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-dname",
            "CN=old",
            "-keystore",
            "old.jks",
            "-storetype",
            "jks",
            "-storepass",
            "changeit",
            "-keypass",
            "changeit",
        ],
        &dir.0,
    );
    let err = Identity::from_pkcs12_file(dir.path("old.jks"), &password, None).unwrap_err();
    assert!(matches!(err, LoadError::JksKeystore { .. }), "{err}");
}

#[tokio::test]
#[ignore = "needs the openssl command; .ci/run runs it"]
async fn a_keystore_reloads_like_pem_files() {
    let dir = Dir::new("reload");
    let root = Ca::new("reload root");
    let export = |leaf: &Issued, out: &str| {
        dir.put("leaf.pem", &leaf.cert_pem);
        dir.put("leaf.key", &leaf.key_pem);
        run(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-inkey",
                "leaf.key",
                "-in",
                "leaf.pem",
                "-passout",
                "pass:secret",
                "-out",
                out,
            ],
            &dir.0,
        );
    };
    let first = root.server();
    export(&first, "server.p12");
    dir.put("ca.pem", &root.pem);
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "ca.pem",
            "-passout",
            "pass:trust",
            "-out",
            "trust.p12",
        ],
        &dir.0,
    );
    let server = mtls::Server::builder()
        .identity_pkcs12_file(dir.path("server.p12"), Password::new("secret"), None)
        .trust_pkcs12_file(dir.path("trust.p12"), Password::new("trust"))
        .authorize(mtls::Authorizer::any_verified())
        .reload_interval(Some(std::time::Duration::from_millis(50)))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let server = start(server);
    let client = mtls::Client::builder()
        .identity(root.client("orders").identity())
        .trust(root.trust())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let served = |client: mtls::Client, url: hyper::Uri| async move {
        let resp = client.get(url).await.unwrap();
        resp.extensions()
            .get::<mtls::PeerIdentity>()
            .unwrap()
            .leaf()
            .to_vec()
    };
    assert_eq!(served(client.clone(), server.url("/")).await, first.der);
    // A renewed keystore, written atomically.
    let second = root.server();
    export(&second, "server.p12.tmp");
    std::fs::rename(dir.path("server.p12.tmp"), dir.path("server.p12")).unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if served(client.clone(), server.url("/")).await == second.der {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the renewed keystore is served without a restart");
    server.shutdown().await;
}

/// The output of a tool that must succeed.
fn output(tool: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("FAIL: {tool} is required ({e})"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn stores_written_for_development_load_back_and_refuse_a_wrong_password() {
    let ca = mtls::dev::DevCa::new("dev root").unwrap();
    let issuing = ca.intermediate("dev issuing").unwrap();
    let leaf = issuing.client("spiffe://example.org/orders").unwrap();
    let password = Password::new("s3cret");
    let p12 = leaf.to_pkcs12("orders", &password).unwrap();
    let identity = Identity::from_pkcs12(&p12, &password, Some("orders")).unwrap();
    assert_eq!(identity.chain().len(), 2, "leaf and intermediate");
    assert_eq!(identity.chain()[0].as_ref(), leaf.der());
    assert!(matches!(
        Identity::from_pkcs12(&p12, &Password::new("wrong"), None),
        Err(LoadError::WrongPassword { .. })
    ));
    let trust = ca.truststore_pkcs12("dev-root", &password).unwrap();
    let bundle = TrustBundle::from_pkcs12(&trust, &password).unwrap();
    assert_eq!(bundle.certificates(), ca.trust().unwrap().certificates());
}

#[test]
#[ignore = "needs the openssl command and keytool (a JDK); .ci/run runs it"]
fn stores_written_for_development_read_in_openssl_and_keytool() {
    let dir = Dir::new("dev-written");
    let ca = mtls::dev::DevCa::new("dev root").unwrap();
    let leaf = ca.client("spiffe://example.org/orders").unwrap();
    let password = Password::new("changeit");
    std::fs::write(
        dir.path("orders.p12"),
        leaf.to_pkcs12("orders", &password).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path("trust.p12"),
        ca.truststore_pkcs12("dev-root", &password).unwrap(),
    )
    .unwrap();
    let pem = output(
        "openssl",
        &[
            "pkcs12",
            "-in",
            "orders.p12",
            "-passin",
            "pass:changeit",
            "-nodes",
        ],
        &dir.0,
    );
    assert!(
        pem.contains("BEGIN PRIVATE KEY") && pem.contains("BEGIN CERTIFICATE"),
        "{pem}"
    );
    assert!(pem.contains("friendlyName: orders"), "{pem}");
    let listed = output(
        "keytool",
        &[
            "-list",
            "-keystore",
            "orders.p12",
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    assert!(
        listed.contains("orders, ") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );
    let listed = output(
        "keytool",
        &[
            "-list",
            "-keystore",
            "trust.p12",
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    assert!(
        listed.contains("dev-root, ") && listed.contains("trustedCertEntry"),
        "{listed}"
    );
}
