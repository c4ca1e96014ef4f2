//! PKCS#12 keystores and truststores as Java services hold them, written by `openssl pkcs12`
//! and by `keytool`, loaded with named errors for every way they go wrong. The stores are made
//! in the test run; tests that need `openssl` or `keytool` are ignored by default and run by
//! `.ci/run`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mtls::{Identity, LoadError, Password, TrustBundle};

/// `openssl pkcs12 -export` of `leaf.key` and `leaf.pem` in `dir` into `out`, with the
/// password `secret` and the `extra` arguments.
fn export_leaf(dir: &Dir, out: &str, extra: &[&str]) {
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    run("openssl", &args, &dir.0);
}

/// `openssl pkcs12 -export -nokeys` of the certificates in `pem` into `out`, with the
/// password `password`: a truststore as openssl writes it.
fn export_certs(dir: &Dir, pem: &str, password: &str, out: &str) {
    let passout = format!("pass:{password}");
    run(
        "openssl",
        &[
            "pkcs12", "-export", "-nokeys", "-in", pem, "-passout", &passout, "-out", out,
        ],
        &dir.0,
    );
}

/// An intermediate-issued client, its chain and the root, as PEM files in `dir`.
fn pem_files(dir: &Dir) -> (Ca, Issued) {
    let root = Ca::new("p12 root");
    let issuing = root.intermediate("p12 issuing");
    let leaf = issuing.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    dir.write("leaf.pem", &leaf.cert_pem); // leaf, then the intermediate
    dir.write("leaf.key", &leaf.key_pem);
    dir.write("ca.pem", &root.pem);
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
    let file = dir.write("pass.txt", "s3cret\n");
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
    export_leaf(&dir, "orders.p12", &["-name", "orders"]);
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
    export_certs(&dir, "ca.pem", "trust", "trust.p12");
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
    export_leaf(&dir, "orders.p12", &["-name", "orders"]);
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
    dir.write(
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
        dir.write("leaf.pem", &leaf.cert_pem);
        dir.write("leaf.key", &leaf.key_pem);
        export_leaf(&dir, out, &[]);
    };
    let first = root.server();
    export(&first, "server.p12");
    dir.write("ca.pem", &root.pem);
    export_certs(&dir, "ca.pem", "trust", "trust.p12");
    let server = serve(
        mtls::Server::builder()
            .identity_pkcs12_file(dir.path("server.p12"), Password::new("secret"), None)
            .trust_pkcs12_file(dir.path("trust.p12"), Password::new("trust"))
            .authorize(mtls::Authorizer::any_verified())
            .reload_interval(Some(std::time::Duration::from_millis(50))),
    )
    .await;
    let client = unpooled_client(&root, &root.client("orders"));
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
    assert!(
        eventually_async(|| async { served(client.clone(), server.url("/")).await == second.der })
            .await,
        "the renewed keystore is served without a restart"
    );
    server.shutdown().await;
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
    let pem = run(
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
    let listed = run(
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
    let listed = run(
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

// A truststore trusts what it marks as trusted, never a key entry's own chain.

#[tokio::test]
#[ignore = "needs the openssl command and keytool (a JDK); .ci/run runs it"]
async fn a_keystore_chain_is_never_trusted_as_a_truststore() {
    let dir = Dir::new("not-trust");
    // The public CA issued our server certificate, and issues certificates to anyone; the
    // private CA issues our clients.
    let public = Ca::new("public ca");
    let private = Ca::new("private ca");
    let server = public.server();
    dir.write("server.pem", &server.cert_pem);
    dir.write("server.key", &server.key_pem);
    dir.write("public.pem", &public.pem);
    dir.write("private.pem", &private.pem);
    // The key entry and its chain up to the public CA, as `-chain` writes it.
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-chain",
            "-CAfile",
            "public.pem",
            "-inkey",
            "server.key",
            "-in",
            "server.pem",
            "-name",
            "server",
            "-passout",
            "pass:secret",
            "-out",
            "server.p12",
        ],
        &dir.0,
    );
    let listed = run(
        "openssl",
        &[
            "pkcs12",
            "-in",
            "server.p12",
            "-passin",
            "pass:secret",
            "-nokeys",
        ],
        &dir.0,
    );
    assert!(
        listed.contains("public ca"),
        "the chain is in the store: {listed}"
    );
    let secret = || Password::new("secret");
    let err = TrustBundle::from_pkcs12_file(dir.path("server.p12"), &secret()).unwrap_err();
    assert!(
        matches!(err, LoadError::KeystoreAsTruststore { .. }),
        "{err}"
    );
    let text = err.to_string();
    for needed in [
        "server.p12",
        "keytool -importcert",
        "openssl pkcs12 -export -nokeys",
        "PEM",
    ] {
        assert!(text.contains(needed), "{needed} in: {text}");
    }
    // A server pointed at it does not start.
    let refused = mtls::Server::builder()
        .identity_pkcs12_file(dir.path("server.p12"), secret(), None)
        .trust_pkcs12_file(dir.path("server.p12"), secret())
        .authorize(mtls::Authorizer::any_verified())
        .bind("127.0.0.1:0")
        .await;
    assert!(
        matches!(
            refused,
            Err(mtls::Error::Load(LoadError::KeystoreAsTruststore { .. }))
        ),
        "{:?}",
        refused.err()
    );

    // keytool: the same key entry, and the private CA imported as a trusted entry. The store
    // trusts that entry alone, not the chain of its key entry.
    run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "server.p12",
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
    run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "private",
            "-file",
            "private.pem",
            "-keystore",
            "java.p12",
            "-storetype",
            "pkcs12",
            "-storepass",
            "changeit",
        ],
        &dir.0,
    );
    let changeit = || Password::new("changeit");
    let trust = TrustBundle::from_pkcs12_file(dir.path("java.p12"), &changeit()).unwrap();
    assert_eq!(trust.certificates(), private.trust().certificates());
    only_private_clients_admitted(
        mtls::Server::builder()
            .identity_pkcs12_file(dir.path("java.p12"), changeit(), Some("server"))
            .trust_pkcs12_file(dir.path("java.p12"), changeit()),
        &public,
        &private,
    )
    .await;

    // A truststore as openssl writes it (certificates only, no Java attribute) still works.
    export_certs(&dir, "private.pem", "trust", "trust.p12");
    only_private_clients_admitted(
        mtls::Server::builder()
            .identity_pkcs12_file(dir.path("server.p12"), secret(), None)
            .trust_pkcs12_file(dir.path("trust.p12"), Password::new("trust")),
        &public,
        &private,
    )
    .await;
}

/// Serves `builder` (a server certificate from `public`) over real TLS: a client certificate
/// issued by `private` is let in, one issued by `public` is refused by the server.
async fn only_private_clients_admitted(builder: mtls::ServerBuilder, public: &Ca, private: &Ca) {
    let running = serve(builder.authorize(mtls::Authorizer::any_verified())).await;
    let insider = client(public, &private.client("insider"));
    assert_eq!(insider.get(running.url("/")).await.unwrap().status(), 200);
    let err = client(public, &public.client("outsider"))
        .get(running.url("/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, mtls::ClientError::ServerRejectedCertificate { .. }),
        "{err:?}"
    );
    running.shutdown().await;
}

// Hostile cost parameters are refused before any work, with the parameter named.

/// The most rounds the crate runs for one key derivation (documented in docs/SECURITY.md).
const MAX_ROUNDS: u64 = 10_000_000;

/// Runs `load` on a thread of its own and returns its result, failing the test when it is
/// still running after `limit`: a store that asks for unbounded work must be refused, not run.
fn within<T: Send + 'static>(limit: Duration, load: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still deriving keys after {limit:?}: the cost is unbounded"))
}

#[test]
#[ignore = "needs the openssl command and keytool (a JDK); .ci/run runs it"]
fn hostile_cost_parameters_are_refused_before_the_work() {
    let dir = Dir::new("cost");
    pem_files(&dir);
    export_leaf(&dir, "openssl.p12", &[]);
    run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "openssl.p12",
            "-srcstoretype",
            "pkcs12",
            "-srcstorepass",
            "secret",
            "-destkeystore",
            "keytool.p12",
            "-deststoretype",
            "pkcs12",
            "-deststorepass",
            "changeit",
        ],
        &dir.0,
    );
    for (store, password) in [("openssl.p12", "secret"), ("keytool.p12", "changeit")] {
        let bytes = std::fs::read(dir.path(store)).unwrap();
        let load = |name: &str, pfx: Vec<u8>| {
            let path = dir.path(&format!("{name}-{store}"));
            std::fs::write(&path, pfx).unwrap();
            let password = Password::new(password);
            within(Duration::from_secs(20), move || {
                Identity::from_pkcs12_file(&path, &password, None)
            })
        };
        // The store as written, and re-sealed under a MAC this test computes, loads.
        load("as-written", bytes.clone()).unwrap();
        load("resealed", Pfx::open(&bytes).seal(password)).unwrap();

        let refused = |name: &str, pfx: Vec<u8>, parameter: &str, value: u64, cap: u64| {
            let err = load(name, pfx).unwrap_err();
            assert!(
                matches!(&err, LoadError::Pkcs12TooCostly { parameter: p, value: v, limit, .. }
                    if p.contains(parameter) && *v == value && *limit == cap),
                "{store}: {err}"
            );
            let text = err.to_string();
            for needed in [name, &value.to_string(), &cap.to_string(), "-export"] {
                assert!(text.contains(needed), "{needed} in: {text}");
            }
        };
        // The MAC's iteration count is an i32; 2^31-1 rounds would run before the MAC check.
        let mut pfx = Pfx::open(&bytes);
        *pfx.outer.at(&[2, 2]) = integer(i32::MAX as u64);
        refused(
            "mac",
            pfx.outer.encode(),
            "MAC iterations",
            i32::MAX as u64,
            MAX_ROUNDS,
        );
        // Over the cap by one is refused too.
        let mut pfx = Pfx::open(&bytes);
        *pfx.outer.at(&[2, 2]) = integer(MAX_ROUNDS + 1);
        refused(
            "mac-cap",
            pfx.outer.encode(),
            "MAC iterations",
            MAX_ROUNDS + 1,
            MAX_ROUNDS,
        );
        // PBKDF2 iterations of the encrypted certificates, under a MAC that checks out.
        let mut pfx = Pfx::open(&bytes);
        let kdf = pfx.encrypted_kdf();
        *kdf.at(&[1, 1]) = integer(u32::MAX.into());
        let sealed = pfx.seal(password);
        refused(
            "pbkdf2",
            sealed,
            "PBKDF2 iterations",
            u32::MAX.into(),
            MAX_ROUNDS,
        );
        // scrypt asking for 2^50 bytes (N = 2^40, r = 8), which would abort the process.
        let mut pfx = Pfx::open(&bytes);
        *pfx.encrypted_kdf() = scrypt(1 << 40, 8, 1);
        let sealed = pfx.seal(password);
        refused(
            "scrypt",
            sealed,
            "scrypt memory",
            128 * 8 * ((1 << 40) + 1),
            256 << 20,
        );
        // scrypt within memory but with p = 65535 passes over it.
        let mut pfx = Pfx::open(&bytes);
        *pfx.encrypted_kdf() = scrypt(1 << 10, 8, 65535);
        let sealed = pfx.seal(password);
        refused(
            "scrypt-p",
            sealed,
            "scrypt work",
            (1 << 10) * 8 * 65535,
            MAX_ROUNDS,
        );
    }
    // A truststore refuses the same way.
    let mut pfx = Pfx::open(&std::fs::read(dir.path("keytool.p12")).unwrap());
    *pfx.outer.at(&[2, 2]) = integer(i32::MAX as u64);
    let err = within(Duration::from_secs(20), move || {
        TrustBundle::from_pkcs12(&pfx.outer.encode(), &Password::new("changeit"))
    })
    .unwrap_err();
    assert!(matches!(err, LoadError::Pkcs12TooCostly { .. }), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_costly_reload_runs_off_the_async_workers() {
    let dir = Dir::new("slow-reload");
    let ca = mtls::dev::DevCa::new("reload root").unwrap();
    let password = Password::new("secret");
    let keystore = ca.server("localhost").unwrap();
    let keystore = keystore.to_pkcs12("server", &password).unwrap();
    std::fs::write(dir.path("server.p12"), &keystore).unwrap();
    // A store whose MAC asks for many rounds (under the cap) and then fails to check.
    let slow = |rounds: u64| {
        let mut pfx = Pfx::open(&keystore);
        *pfx.outer.at(&Pfx::ITERATIONS) = integer(rounds);
        pfx.outer.encode()
    };
    let timed = |rounds: u64| {
        let started = Instant::now();
        let err = Identity::from_pkcs12(&slow(rounds), &password, None).unwrap_err();
        assert!(matches!(err, LoadError::WrongPassword { .. }), "{err}");
        started.elapsed()
    };
    // Enough rounds for about a second of work in this build.
    let probe = 100_000;
    let per_round = timed(probe).as_nanos() / u128::from(probe);
    let rounds = (1_000_000_000 / per_round.max(1)) as u64;
    let rounds = rounds.clamp(probe, MAX_ROUNDS);
    let work = Duration::from_nanos((per_round * u128::from(rounds)) as u64);

    let running = serve(
        mtls::Server::builder()
            .identity_pkcs12_file(dir.path("server.p12"), password.clone(), None)
            .trust(ca.trust().unwrap())
            .authorize(mtls::Authorizer::any_verified())
            .reload_interval(Some(Duration::from_millis(10))),
    )
    .await;
    let client = mtls::Client::builder()
        .identity(
            ca.client("spiffe://example.org/orders")
                .unwrap()
                .identity()
                .unwrap(),
        )
        .trust(ca.trust().unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_eq!(client.get(running.url("/")).await.unwrap().status(), 200);
    // The watcher now loads the slow store on every tick, each time for `work`; on this
    // single-threaded runtime, requests are answered meanwhile only if that runs elsewhere.
    dir.put("server.p12", &slow(rounds));
    let until = Instant::now() + (work * 3).max(Duration::from_secs(1));
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        assert_eq!(client.get(running.url("/")).await.unwrap().status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < work / 2,
        "a request waited {slowest:?} while the watcher derived keys for {work:?} a time"
    );
    running.shutdown().await;
}

/// A DER element: primitive (tag, contents) or constructed (tag, elements).
#[derive(Clone, Debug)]
enum Der {
    Prim(u8, Vec<u8>),
    Cons(u8, Vec<Der>),
}

impl Der {
    /// The elements of `bytes`, one after the other (definite lengths, one-byte tags).
    fn parse(mut bytes: &[u8]) -> Vec<Der> {
        let mut out = Vec::new();
        while let [tag, first, rest @ ..] = bytes {
            let (len, rest) = match *first {
                n if n < 0x80 => (usize::from(n), rest),
                n => {
                    let (len, rest) = rest.split_at(usize::from(n & 0x7f));
                    let len = len.iter().fold(0, |a, b| a << 8 | usize::from(*b));
                    (len, rest)
                }
            };
            let (body, rest) = rest.split_at(len);
            out.push(if tag & 0x20 != 0 {
                Der::Cons(*tag, Der::parse(body))
            } else {
                Der::Prim(*tag, body.to_vec())
            });
            bytes = rest;
        }
        out
    }

    fn one(bytes: &[u8]) -> Der {
        Der::parse(bytes).remove(0)
    }

    fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Der::Prim(tag, body) => (*tag, body.clone()),
            Der::Cons(tag, elements) => (*tag, elements.iter().flat_map(Der::encode).collect()),
        };
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            let len = body.len().to_be_bytes();
            let len = &len[len.iter().take_while(|b| **b == 0).count()..];
            out.push(0x80 | len.len() as u8);
            out.extend_from_slice(len);
        }
        out.extend(body);
        out
    }

    /// The element reached by indexing into constructed elements along `path`.
    fn at(&mut self, path: &[usize]) -> &mut Der {
        path.iter().fold(self, |der, i| match der {
            Der::Cons(_, elements) => &mut elements[*i],
            Der::Prim(..) => panic!("not a constructed element"),
        })
    }

    fn contents(&self) -> &[u8] {
        match self {
            Der::Prim(_, body) => body,
            Der::Cons(..) => panic!("not a primitive element"),
        }
    }
}

/// A DER INTEGER.
fn integer(value: u64) -> Der {
    let bytes = value.to_be_bytes();
    let mut body = bytes[bytes.iter().take_while(|b| **b == 0).count()..].to_vec();
    if body.first().is_none_or(|b| b & 0x80 != 0) {
        body.insert(0, 0);
    }
    Der::Prim(0x02, body)
}

/// An scrypt key-derivation AlgorithmIdentifier (RFC 7914) with cost `n`, block size `r` and
/// parallelization `p`.
fn scrypt(n: u64, r: u64, p: u64) -> Der {
    const SCRYPT: [u8; 9] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b];
    let salt = Der::Prim(0x04, vec![7; 16]);
    let params = Der::Cons(0x30, vec![salt, integer(n), integer(r), integer(p)]);
    Der::Cons(0x30, vec![Der::Prim(0x06, SCRYPT.to_vec()), params])
}

/// A PKCS#12 store opened for patching: the PFX, and its authenticated safe (the contents
/// the MAC covers).
struct Pfx {
    outer: Der,
    safes: Der,
}

impl Pfx {
    /// Where the PFX holds the authenticated safe, the MAC digest, salt and iteration count.
    const SAFES: [usize; 3] = [1, 1, 0];
    const DIGEST: [usize; 3] = [2, 0, 1];
    const SALT: [usize; 2] = [2, 1];
    const ITERATIONS: [usize; 2] = [2, 2];

    fn open(bytes: &[u8]) -> Pfx {
        let mut outer = Der::one(bytes);
        let safes = Der::one(outer.at(&Self::SAFES).contents());
        Pfx { outer, safes }
    }

    /// The key-derivation AlgorithmIdentifier of the first encrypted safe (the certificates,
    /// as openssl and keytool write them): ContentInfo → [0] → EncryptedData →
    /// EncryptedContentInfo → PBES2 AlgorithmIdentifier → its parameters → keyDerivationFunc.
    fn encrypted_kdf(&mut self) -> &mut Der {
        const ENCRYPTED_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
        let Der::Cons(_, safes) = &mut self.safes else {
            panic!("the authenticated safe is a sequence")
        };
        let safe = safes
            .iter_mut()
            .find(|s| matches!(s, Der::Cons(_, e) if e[0].contents() == ENCRYPTED_DATA))
            .expect("an encrypted safe");
        safe.at(&[1, 0, 1, 1, 1, 0])
    }

    /// The store with its MAC computed again over the (patched) safes: HMAC-SHA-256 under the
    /// PKCS#12 key derivation (RFC 7292, appendix B) run for one round.
    fn seal(mut self, password: &str) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let safes = self.safes.encode();
        let salt = self.outer.at(&Self::SALT).contents().to_vec();
        let mut bmp: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
        bmp.extend([0, 0]);
        let fill = |s: &[u8]| -> Vec<u8> {
            (0..s.len().div_ceil(64) * 64)
                .map(|i| s[i % s.len()])
                .collect()
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update([3u8; 64])
            .chain_update(fill(&salt))
            .chain_update(fill(&bmp))
            .finalize()
            .into();
        let pad = |byte: u8| {
            let mut block = [byte; 64];
            block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            block
        };
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(&safes)
            .finalize();
        let mac = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        *self.outer.at(&Self::SAFES) = Der::Prim(0x04, safes);
        *self.outer.at(&Self::DIGEST) = Der::Prim(0x04, mac.to_vec());
        *self.outer.at(&Self::ITERATIONS) = integer(1);
        self.outer.encode()
    }
}
