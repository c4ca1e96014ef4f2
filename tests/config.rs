//! One configuration file: a full file loads and builds a server and a client that talk
//! (roles included), every validation error names the file, line or key and the fix, and
//! environment overrides win over the file.

mod common;

use std::path::PathBuf;

use common::*;
use mtls::{Client, Config, ConfigError, Rotate, Server};

/// CA, server and two clients as PEM files, in a directory for the configuration beside them.
fn config_files(name: &str, ca: &Ca) -> Dir {
    let files = Dir::new(&format!("config-{name}"));
    std::fs::create_dir_all(files.path("certs")).unwrap();
    files.write("certs/ca.pem", &ca.pem);
    let server = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/ns/prod/sa/inventory"],
        ..Leaf::server()
    });
    files.write("certs/inventory.pem", &server.cert_pem);
    files.write("certs/inventory.key", &server.key_pem);
    for (who, id) in [
        ("orders", "spiffe://example.org/ns/prod/sa/orders"),
        ("reporting", "spiffe://example.org/ns/prod/sa/reporting"),
    ] {
        let leaf = ca.issue(Leaf {
            uris: vec![id],
            ..Leaf::client("client")
        });
        files.write(&format!("certs/{who}.pem"), &leaf.cert_pem);
        files.write(&format!("certs/{who}.key"), &leaf.key_pem);
    }
    files
}

const FULL: &str = r#"
[bundle.inventory]
certificate = "certs/inventory.pem"
private_key = "certs/inventory.key"
ca = "certs/ca.pem"

[bundle.orders]
certificate = "certs/orders.pem"
private_key = "certs/orders.key"
ca = ["certs/ca.pem"]
reload = false

[bundle.reporting]
certificate = "certs/reporting.pem"
private_key = "certs/reporting.key"
ca = "certs/ca.pem"

[server]
listen = "127.0.0.1:0"
bundle = "inventory"
allow = ["spiffe://example.org/ns/prod/*"]
handshake_timeout = "5s"
max_connections = 100

[client.stock]
bundle = "orders"
expect_server = ["spiffe://example.org/ns/prod/sa/inventory"]

[client.report]
bundle = "reporting"
expect_server = ["spiffe://example.org/ns/prod/sa/inventory"]

[roles]
reader = ["spiffe://example.org/ns/prod/sa/orders"]
admin = ["spiffe://example.org/ns/ops/*"]

[[access]]
path = "/stock"
methods = ["GET"]
roles = ["reader", "admin"]
"#;

#[tokio::test]
async fn a_full_file_builds_a_server_and_clients_that_talk_under_its_roles() {
    let ca = Ca::new("root");
    let files = config_files("full", &ca);
    let path = files.write("mtls.toml", FULL);
    let cfg = Config::from_file(&path).unwrap();
    let server = Server::from_config(&cfg).await.unwrap();
    let port = server.local_addr().port();
    let access = cfg.access().unwrap().expect("access rules");
    let app = axum::Router::new()
        .route("/stock", axum::routing::get(|| async { "42 widgets" }))
        .layer(access);
    let task = tokio::spawn(async move {
        let _ = server.serve(app).await;
    });
    let url: hyper::Uri = format!("https://localhost:{port}/stock").parse().unwrap();
    let stock = Client::from_config(&cfg, "stock").unwrap();
    let resp = stock.get(url.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body_string(resp).await, "42 widgets");
    // reporting is allowed in by the server (same namespace) but holds no role for /stock.
    let report = Client::from_config(&cfg, "report").unwrap();
    let resp = report.get(url).await.unwrap();
    assert_eq!(resp.status(), 403);
    task.abort();
}

fn invalid(text: &str) -> ConfigError {
    Config::from_toml_str(text).unwrap_err()
}

const BUNDLE: &str =
    "[bundle.b]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nca = \"ca.pem\"\n";

#[test]
fn an_unknown_key_names_the_line_and_the_key() {
    let err = invalid(&format!(
        "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"b\"\nallow = [\"spiffe://example.org\"]\nlisen = \"typo\"\n"
    ));
    let text = err.to_string();
    assert!(
        matches!(err, ConfigError::Syntax { line: Some(10), .. }),
        "{text}"
    );
    assert!(text.contains("lisen"), "{text}");
}

#[test]
fn a_missing_bundle_is_named_with_the_ones_defined() {
    let err = invalid(&format!(
        "{BUNDLE}\n[client.stock]\nbundle = \"inventroy\"\n"
    ));
    let text = err.to_string();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "client.stock.bundle"),
        "{text}"
    );
    assert!(
        text.contains("`inventroy`") && text.contains("defined: b"),
        "{text}"
    );
    let err = invalid(&format!(
        "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"nope\"\nallow = [\"spiffe://example.org\"]\n"
    ));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.bundle"),
        "{err}"
    );
}

#[test]
fn a_role_used_but_not_defined_is_named() {
    let err = invalid(
        "[roles]\nreader = [\"spiffe://example.org/a\"]\n[[access]]\npath = \"/x\"\nroles = [\"readers\"]\n",
    );
    let text = err.to_string();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "access"),
        "{text}"
    );
    assert!(
        text.contains("`readers`") && text.contains("defined: reader"),
        "{text}"
    );
}

#[test]
fn a_malformed_pattern_is_named_with_its_key() {
    let err = invalid("[roles]\nreader = [\"example.org/orders\"]\n");
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "roles.reader"),
        "{err}"
    );
    let err = invalid(&format!(
        "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"b\"\nallow = [\"SPIFFE://example.org/x\"]\n"
    ));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.allow"),
        "{err}"
    );
    let err = invalid(&format!(
        "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"b\"\nallow = [\"spiffe://example.org\"]\nhandshake_timeout = \"10 seconds\"\n"
    ));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.handshake_timeout"),
        "{err}"
    );
}

#[test]
fn an_incomplete_bundle_and_a_keystore_are_named_with_the_fix() {
    let err = invalid("[bundle.b]\ncertificate = \"c.pem\"\nca = \"ca.pem\"\n");
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.private_key"),
        "{err}"
    );
    let err = invalid("[bundle.b]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n");
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.ca"),
        "{err}"
    );
    // A keystore needs its password, from a file or a variable, never from the file itself.
    let err = invalid("[bundle.b]\nkeystore = \"b.p12\"\nca = \"ca.pem\"\n");
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.keystore_password_file"),
        "{err}"
    );
    let err = invalid(
        "[bundle.b]\nkeystore = \"b.p12\"\nkeystore_password_env = \"MTLS_TEST_UNSET_PASSWORD_VAR\"\nca = \"ca.pem\"\n",
    );
    assert!(
        err.to_string().contains("MTLS_TEST_UNSET_PASSWORD_VAR"),
        "{err}"
    );
    let err = invalid(
        "[bundle.b]\nkeystore = \"b.p12\"\nkeystore_password_file = \"p\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nca = \"ca.pem\"\n",
    );
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.keystore"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_file_is_named_when_the_server_is_built() {
    let ca = Ca::new("root");
    let files = config_files("unreadable", &ca);
    let path = files.write(
        "mtls.toml",
        &FULL.replace("certs/inventory.key", "certs/missing.key"),
    );
    let cfg = Config::from_file(&path).unwrap();
    let err = Server::from_config(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");
    let err = Config::from_file(files.path("nope.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn environment_overrides_win_over_the_file() {
    let cfg = Config::from_toml_str(&format!(
        "{BUNDLE}\n[server]\nlisten = \"0.0.0.0:8443\"\nbundle = \"b\"\nallow = [\"spiffe://example.org\"]\n"
    ))
    .unwrap();
    let env = |key: &str| match key {
        "MTLS_SERVER_LISTEN" => Some("127.0.0.1:9443".to_owned()),
        "MTLS_SERVER_ALLOW" => Some("spiffe://example.org/a, dns:db.internal".to_owned()),
        "MTLS_BUNDLE_B_CA" => Some("one.pem,two.pem".to_owned()),
        _ => None,
    };
    let cfg = cfg.with_overrides(env).unwrap();
    let server = cfg.server.as_ref().unwrap();
    assert_eq!(server.listen, "127.0.0.1:9443");
    assert_eq!(server.allow, ["spiffe://example.org/a", "dns:db.internal"]);
    assert_eq!(cfg.bundle["b"].ca.paths().len(), 2);
    // An override is validated like the file.
    let cfg = Config::from_toml_str(&format!(
        "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"b\"\nallow = [\"spiffe://example.org\"]\n"
    ))
    .unwrap();
    let err = cfg
        .with_overrides(|k| (k == "MTLS_SERVER_ALLOW").then(|| "not-a-pattern".to_owned()))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.allow"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs the openssl command; .ci/run runs it"]
async fn keystores_named_in_the_file_load_with_passwords_from_files() {
    let ca = Ca::new("root");
    let files = config_files("keystores", &ca);
    let openssl = |args: &[&str]| run("openssl", args, &files.0);
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "certs/inventory.key",
        "-in",
        "certs/inventory.pem",
        "-passout",
        "pass:ks",
        "-out",
        "certs/inventory.p12",
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        "certs/ca.pem",
        "-passout",
        "pass:ts",
        "-out",
        "certs/trust.p12",
    ]);
    files.write("ks.pass", "ks\n");
    files.write("ts.pass", "ts\n");
    let text = FULL.replace(
        "[bundle.inventory]\ncertificate = \"certs/inventory.pem\"\nprivate_key = \"certs/inventory.key\"\nca = \"certs/ca.pem\"",
        "[bundle.inventory]\nkeystore = \"certs/inventory.p12\"\nkeystore_password_file = \"ks.pass\"\ntruststore = \"certs/trust.p12\"\ntruststore_password_file = \"ts.pass\"",
    );
    assert_ne!(text, FULL);
    let path = files.write("mtls.toml", &text);
    let cfg = Config::from_file(&path).unwrap();
    let server = Server::from_config(&cfg).await.unwrap();
    let port = server.local_addr().port();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(axum::Router::new().route("/stock", axum::routing::get(|| async { "ok" })))
            .await;
    });
    let stock = Client::from_config(&cfg, "stock").unwrap();
    let url: hyper::Uri = format!("https://localhost:{port}/stock").parse().unwrap();
    assert_eq!(stock.get(url).await.unwrap().status(), 200);
    task.abort();
}

#[test]
fn a_container_configures_itself_from_the_environment_alone() {
    let cfg = Config::from_env_lookup(|name| match name {
        "MTLS_KEYSTORE" => Some("/run/secrets/service.p12".to_owned()),
        "MTLS_KEYSTORE_PASSWORD_FILE" => Some("/run/secrets/ks.pass".to_owned()),
        "MTLS_KEY_ALIAS" => Some("service".to_owned()),
        "MTLS_TRUSTSTORE" => Some("/run/secrets/trust.p12".to_owned()),
        "MTLS_TRUSTSTORE_PASSWORD_FILE" => Some("/run/secrets/ts.pass".to_owned()),
        "MTLS_SERVER_LISTEN" => Some("0.0.0.0:8443".to_owned()),
        "MTLS_SERVER_ALLOW" => Some("spiffe://example.org".to_owned()),
        _ => None,
    })
    .unwrap();
    let bundle = &cfg.bundle["default"];
    assert_eq!(
        bundle.keystore.as_deref(),
        Some(std::path::Path::new("/run/secrets/service.p12"))
    );
    assert_eq!(bundle.key_alias.as_deref(), Some("service"));
    assert!(bundle.truststore.is_some() && bundle.ca.paths().is_empty());
    assert_eq!(cfg.server.as_ref().unwrap().allow, ["spiffe://example.org"]);
    // PEM files instead, and what is missing is named.
    let cfg = Config::from_env_lookup(|name| match name {
        "MTLS_CERT" => Some("tls.crt".to_owned()),
        "MTLS_KEY" => Some("tls.key".to_owned()),
        "MTLS_CA" => Some("ca.crt".to_owned()),
        _ => None,
    })
    .unwrap();
    assert!(cfg.server.is_none() && cfg.client.contains_key("default"));
    let err = Config::from_env_lookup(|name| (name == "MTLS_CERT").then(|| "tls.crt".to_owned()))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "MTLS_KEY"),
        "{err}"
    );
    // A keystore without a password source is refused.
    let err = Config::from_env_lookup(|name| match name {
        "MTLS_KEYSTORE" => Some("service.p12".to_owned()),
        "MTLS_CA" => Some("ca.crt".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("keystore_password"), "{err}");
}

#[test]
fn limits_and_password_sources_are_checked() {
    let server = |extra: &str| {
        format!(
            "{BUNDLE}\n[server]\nlisten = \"x\"\nbundle = \"b\"\nallow = [\"spiffe://example.org\"]\n{extra}"
        )
    };
    let err = invalid(&server("max_connections = 0\n"));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.max_connections"),
        "{err}"
    );
    let err = invalid(&server("allow = []\n").replace("allow = [\"spiffe://example.org\"]\n", ""));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.allow"),
        "{err}"
    );
    let err = invalid(
        "[bundle.b]\nkeystore = \"b.p12\"\nkeystore_password_file = \"p\"\nkeystore_password_env = \"P\"\nca = \"ca.pem\"\n",
    );
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.keystore_password_env"),
        "{err}"
    );
    let err = invalid(&format!("{BUNDLE}truststore_password_file = \"p\"\n"));
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.b.truststore_password"),
        "{err}"
    );
}

#[tokio::test]
async fn reload_false_turns_watching_off() {
    let ca = Ca::new("root");
    let files = config_files("noreload", &ca);
    let text = FULL.replace(
        "[bundle.inventory]\n",
        "[bundle.inventory]\nreload = false\n",
    );
    let cfg = Config::from_file(files.write("mtls.toml", &text)).unwrap();
    let server = Server::from_config(&cfg).await.unwrap();
    let handle = server.handle();
    let running = start(server);
    // The same bundle watched, as the witness that the files' change was there to be seen.
    let watched = Config::from_file(files.write("watched.toml", FULL)).unwrap();
    let witness = Server::from_config(&watched).await.unwrap();
    let witness_handle = witness.handle();
    let witness = start(witness);
    let before = handle.certificate_status().identity.not_after;
    let next = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/ns/prod/sa/inventory"],
        not_after: time::Duration::hours(48),
        ..Leaf::server()
    });
    files.write("certs/inventory.pem", &next.cert_pem);
    files.write("certs/inventory.key", &next.key_pem);
    // A watcher on the default tick takes the new files; the unwatched bundle never does.
    assert!(
        eventually_for(mtls::rotate::DEFAULT_RELOAD_INTERVAL * 6, || witness_handle
            .certificate_status()
            .reloads
            == 1)
        .await,
        "{:?}",
        witness_handle.certificate_status()
    );
    let status = handle.certificate_status();
    assert_eq!(status.identity.not_after, before);
    assert_eq!(status.reloads, 0);
    witness.shutdown().await;
    running.shutdown().await;
}

#[tokio::test]
async fn the_files_handshake_timeout_and_max_connections_take_effect() {
    use tokio::io::AsyncReadExt;
    let ca = Ca::new("root");
    let files = config_files("limits", &ca);
    let text = FULL
        .replace("handshake_timeout = \"5s\"", "handshake_timeout = \"2s\"")
        .replace("max_connections = 100", "max_connections = 1");
    let cfg = Config::from_file(files.write("mtls.toml", &text)).unwrap();
    let server = start(Server::from_config(&cfg).await.unwrap());
    // A connection that never starts its handshake takes the one connection slot.
    let opened = std::time::Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let stats = server.stats.clone();
    assert!(eventually_for(refusal::SETTLE, || stats.active_connections() == 1).await);
    // A good client waits for the slot: it is accepted only once the stalled connection has
    // timed out, so when it is served the timeout has already been counted.
    let good = Client::from_config(&cfg, "stock").unwrap();
    let resp = good.get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        stats.handshake_failures(mtls::HandshakeFailure::Timeout),
        1,
        "the good client was served only after the stalled connection's slot was freed"
    );
    // The stalled connection was closed by the file's timeout, well before the default one.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(refusal::SETTLE, stalled.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(
        opened.elapsed() < mtls::server::DEFAULT_HANDSHAKE_TIMEOUT,
        "closed after {:?}",
        opened.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_domain_wildcard_pattern_is_the_trust_domain_rule() {
    let ca = Ca::new("root");
    let files = config_files("domain-wildcard", &ca);
    for (allow, admitted) in [
        ("spiffe://example.org/*", true),
        ("spiffe://partner.example/*", false),
    ] {
        let text = FULL
            .replace(
                r#"allow = ["spiffe://example.org/ns/prod/*"]"#,
                &format!("allow = [\"{allow}\"]"),
            )
            .replace(
                r#"expect_server = ["spiffe://example.org/ns/prod/sa/inventory"]"#,
                r#"expect_server = ["spiffe://example.org/*"]"#,
            );
        let path = files.write("mtls.toml", &text);
        let cfg = Config::from_file(&path).unwrap();
        let server = start(Server::from_config(&cfg).await.unwrap());
        let result = Client::from_config(&cfg, "stock")
            .unwrap()
            .get(server.url("/"))
            .await;
        match (admitted, result) {
            (true, Ok(resp)) => assert_eq!(resp.status(), 200),
            (false, Err(mtls::ClientError::ServerRejectedCertificate { alert })) => {
                assert_eq!(alert, "access_denied", "{allow}");
                let stats = server.stats.clone();
                assert!(
                    eventually(
                        || stats.handshake_failures(mtls::HandshakeFailure::NotAuthorized) == 1
                    )
                    .await
                );
                assert!(server.seen.lock().unwrap().is_empty());
            }
            (_, other) => panic!("{allow}: {other:?}"),
        }
        server.shutdown().await;
    }
}

/// `FULL` with the server's bundle checking `certs/crl.pem`, a CRL revoking the leaf of
/// `certs/revoked.pem`, and a client bundle `revoked` holding it.
fn with_crl(files: &Dir, ca: &Ca) -> PathBuf {
    const SERIAL: &[u8] = &[0x5e, 0x41, 0x0c];
    let revoked = ca.issue(Leaf {
        serial: Some(SERIAL),
        uris: vec!["spiffe://example.org/ns/prod/sa/revoked"],
        ..Leaf::client("revoked")
    });
    files.write("certs/revoked.pem", &revoked.cert_pem);
    files.write("certs/revoked.key", &revoked.key_pem);
    files.write("certs/crl.pem", &ca.crl(&[SERIAL]));
    let text = FULL.replace(
        "[bundle.inventory]\n",
        "[bundle.inventory]\ncrl = [\"certs/crl.pem\"]\n",
    );
    files.write("mtls.toml", &text)
}

/// The environment `vars` describe, as `with_overrides` looks it up.
fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        vars.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn an_override_that_empties_a_security_setting_is_refused_unless_it_says_none() {
    let ca = Ca::new("root");
    let files = config_files("empty-overrides", &ca);
    let path = with_crl(&files, &ca);
    let cfg = Config::from_file(&path).unwrap();
    for (variable, value, clears) in [
        ("MTLS_BUNDLE_INVENTORY_CRL", "", "bundle.inventory.crl"),
        ("MTLS_BUNDLE_INVENTORY_CA", " , ", "bundle.inventory.ca"),
        ("MTLS_SERVER_ALLOW", "", "server.allow"),
    ] {
        let err = cfg
            .clone()
            .with_overrides(env(&[(variable, value)]))
            .unwrap_err();
        match &err {
            ConfigError::Override { variable: v, .. } => assert_eq!(v, variable),
            other => panic!("{variable}: {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("environment variable `{variable}` is empty")),
            "{message}"
        );
        assert!(message.contains(&format!("clear `{clears}`")), "{message}");
        assert!(message.contains("set it to `none`"), "{message}");
    }
    let err = cfg
        .clone()
        .with_overrides(env(&[("MTLS_BUNDLE_INVENTORY_CRL", "")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("turn revocation checking off"),
        "{err}"
    );

    // Said explicitly, the CRL is cleared; a CA or allow list cleared that way must still
    // validate, and an empty allow list never does.
    let cleared = cfg
        .clone()
        .with_overrides(env(&[("MTLS_BUNDLE_INVENTORY_CRL", "none")]))
        .unwrap();
    assert!(cleared.bundle["inventory"].crl.is_empty());
    let err = cfg
        .clone()
        .with_overrides(env(&[("MTLS_SERVER_ALLOW", "none")]))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.allow"),
        "{err}"
    );
    let err = cfg
        .clone()
        .with_overrides(env(&[("MTLS_BUNDLE_INVENTORY_CA", "none")]))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "bundle.inventory.ca"),
        "{err}"
    );
    // A list still applies.
    let cfg = cfg
        .with_overrides(env(&[(
            "MTLS_BUNDLE_INVENTORY_CRL",
            "certs/a.pem, certs/b.pem",
        )]))
        .unwrap();
    assert_eq!(
        cfg.bundle["inventory"].crl,
        [PathBuf::from("certs/a.pem"), PathBuf::from("certs/b.pem")]
    );
}

#[test]
fn each_override_applied_is_logged_by_variable_without_its_value() {
    let capture = Capture::global();
    let ca = Ca::new("root");
    let files = config_files("logged-overrides", &ca);
    // A bundle name no other test uses, so these events are this test's alone.
    let text = FULL
        .replace("[bundle.reporting]", "[bundle.env-logged]")
        .replace("bundle = \"reporting\"", "bundle = \"env-logged\"");
    let path = files.write("mtls.toml", &text);
    let cfg = Config::from_file(&path).unwrap();
    let cfg = cfg
        .with_overrides(env(&[
            ("MTLS_BUNDLE_ENV_LOGGED_CA", "certs/secret-looking-ca.pem"),
            ("MTLS_BUNDLE_ENV_LOGGED_CRL", "none"),
            ("MTLS_BUNDLE_ENV_LOGGED_KEY_ALIAS", "hunter2"),
        ]))
        .unwrap();
    assert_eq!(
        cfg.bundle["env-logged"].ca.paths(),
        [PathBuf::from("certs/secret-looking-ca.pem")]
    );
    assert_eq!(
        cfg.bundle["env-logged"].key_alias.as_deref(),
        Some("hunter2")
    );
    let events: Vec<String> = capture
        .events()
        .into_iter()
        .filter(|e| e.contains("MTLS_BUNDLE_ENV_LOGGED_"))
        .collect();
    let event = |variable: &str| {
        events
            .iter()
            .find(|e| e.contains(&format!("variable={variable};")))
            .unwrap_or_else(|| panic!("{variable} not logged: {events:?}"))
    };
    let ca_event = event("MTLS_BUNDLE_ENV_LOGGED_CA");
    assert!(
        ca_event.contains("setting=bundle.env-logged.ca;"),
        "{ca_event}"
    );
    assert!(
        ca_event.contains("overridden by the environment"),
        "{ca_event}"
    );
    let crl_event = event("MTLS_BUNDLE_ENV_LOGGED_CRL");
    assert!(
        crl_event.contains("cleared by the environment"),
        "{crl_event}"
    );
    event("MTLS_BUNDLE_ENV_LOGGED_KEY_ALIAS");
    assert_eq!(events.len(), 3, "{events:?}");
    for e in &events {
        assert!(
            !e.contains("secret-looking") && !e.contains("hunter2"),
            "{e}"
        );
    }
}

#[test]
fn bundle_names_that_share_environment_variables_are_refused_naming_both() {
    let ca = Ca::new("root");
    let files = config_files("colliding-names", &ca);
    let bundle = |name: &str| {
        format!(
            "[bundle.{name}]\ncertificate = \"certs/orders.pem\"\nprivate_key = \"certs/orders.key\"\nca = \"certs/ca.pem\"\n"
        )
    };
    for (one, two) in [("a-b", "a_b"), ("Orders", "orders")] {
        let path = files.write("mtls.toml", &format!("{}\n{}", bundle(one), bundle(two)));
        let err = Config::from_file(&path).unwrap_err();
        let ConfigError::Invalid {
            origin,
            key,
            message,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(origin, &path.display().to_string());
        assert!(
            key == &format!("bundle.{one}") || key == &format!("bundle.{two}"),
            "{err}"
        );
        assert!(
            message.contains(&format!("`{one}`")) && message.contains(&format!("`{two}`")),
            "{err}"
        );
        assert!(message.contains("rename one"), "{err}");
    }
    // Names that differ once mapped load.
    let path = files.write("mtls.toml", &format!("{}\n{}", bundle("a-b"), bundle("ab")));
    let cfg = Config::from_file(&path).unwrap();
    assert_eq!(cfg.bundle.len(), 2);
}

#[tokio::test]
async fn an_emptied_crl_is_refused_so_a_revoked_client_stays_refused() {
    let ca = Ca::new("root");
    let files = config_files("emptied-crl", &ca);
    let path = with_crl(&files, &ca);
    let revoked = Issued {
        cert_pem: std::fs::read_to_string(files.path("certs/revoked.pem")).unwrap(),
        key_pem: std::fs::read_to_string(files.path("certs/revoked.key")).unwrap(),
        der: Vec::new(),
    };
    let cfg = Config::from_file(&path).unwrap();
    let err = cfg
        .clone()
        .with_overrides(env(&[("MTLS_BUNDLE_INVENTORY_CRL", "")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Override { .. }), "{err}");

    // The file's CRL stays in force: the revoked client is refused, a good one served.
    let running = start(Server::from_config(&cfg).await.unwrap());
    let refused = client(&ca, &revoked).get(running.url("/")).await;
    assert!(refused.is_err(), "{refused:?}");
    let stats = running.stats.clone();
    assert!(eventually(|| stats.handshake_failures(mtls::HandshakeFailure::Revoked) == 1).await);
    let good = Client::from_config(&cfg, "stock").unwrap();
    assert_eq!(good.get(running.url("/")).await.unwrap().status(), 200);
    running.shutdown().await;

    // `none` says it: revocation is off, and the revoked client gets in.
    let cfg = cfg
        .with_overrides(env(&[("MTLS_BUNDLE_INVENTORY_CRL", "none")]))
        .unwrap();
    let running = start(Server::from_config(&cfg).await.unwrap());
    let resp = client(&ca, &revoked).get(running.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    running.shutdown().await;
}
