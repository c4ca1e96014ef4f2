//! Environment overrides through the real process environment (docs/CONFIG.md, "Environment
//! variables"): `Config::from_file` and `Config::from_env` read `std::env`, not a lookup a
//! test hands them.
//!
//! A binary of its own with a single test, run as sequential phases: the variables are
//! process-wide, so no other test may read or write them meanwhile.

use std::path::{Path, PathBuf};

use mtls::{Config, ConfigError};

/// Sets `vars` in the process environment, runs `f`, and removes them again.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    for (name, value) in vars {
        // SAFETY: this binary has one test and starts no runtime or thread of its own, so
        // while it runs no other thread reads or writes the environment.
        unsafe { std::env::set_var(name, value) };
    }
    let out = f();
    for (name, _) in vars {
        // SAFETY: as above.
        unsafe { std::env::remove_var(name) };
    }
    out
}

/// A file with a server, a PEM bundle and two PKCS#12 bundles (passwords from files and from
/// variables), each name holding a `-`.
const FILE: &str = r#"
[server]
listen = "127.0.0.1:8443"
bundle = "orders-api"
allow = ["spiffe://example.org/ns/prod"]
handshake_timeout = "5s"
max_connections = 100

[bundle.orders-api]
certificate = "file.pem"
private_key = "file.key"
ca = "file-ca.pem"
crl = ["file.crl"]

[bundle.key-store]
keystore = "file.p12"
keystore_password_file = "file-ks-pass"
truststore = "file-trust.p12"
truststore_password_file = "file-ts-pass"
reload = false

[bundle.env-pass]
keystore = "file.p12"
keystore_password_env = "FILE_KS_PASSWORD"
truststore = "file-trust.p12"
truststore_password_env = "FILE_TS_PASSWORD"
"#;

fn paths(list: &[PathBuf]) -> Vec<&Path> {
    list.iter().map(PathBuf::as_path).collect()
}

#[test]
fn every_override_is_read_from_the_process_environment() {
    let stale: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("MTLS_"))
        .collect();
    for name in stale {
        // SAFETY: as in `with_env`.
        unsafe { std::env::remove_var(name) };
    }
    // SAFETY: as in `with_env`. The file's password variables, which validation requires.
    unsafe {
        std::env::set_var("FILE_KS_PASSWORD", "changeit");
        std::env::set_var("FILE_TS_PASSWORD", "changeit");
    }
    let dir = std::env::temp_dir().join(format!("mtls-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mtls.toml");
    std::fs::write(&file, FILE).unwrap();

    // Without variables, the file's values (relative to the file).
    let cfg = Config::from_file(&file).unwrap();
    assert_eq!(cfg.server.as_ref().unwrap().max_connections, Some(100));
    assert_eq!(
        cfg.bundle["orders-api"].crl,
        [dir.join("file.crl")],
        "the file's CRL"
    );

    // The server's five, and the PEM bundle's, through `MTLS_BUNDLE_ORDERS_API_*`.
    let cfg = with_env(
        &[
            ("MTLS_SERVER_LISTEN", "127.0.0.1:9443"),
            ("MTLS_SERVER_BUNDLE", "key-store"),
            (
                "MTLS_SERVER_ALLOW",
                "spiffe://example.org/ns/a, spiffe://example.org/ns/b",
            ),
            ("MTLS_SERVER_HANDSHAKE_TIMEOUT", "7s"),
            ("MTLS_SERVER_MAX_CONNECTIONS", "42"),
            ("MTLS_BUNDLE_ORDERS_API_CERTIFICATE", "/run/env.pem"),
            ("MTLS_BUNDLE_ORDERS_API_PRIVATE_KEY", "/run/env.key"),
            ("MTLS_BUNDLE_ORDERS_API_CA", "/run/ca-1.pem,/run/ca-2.pem"),
            ("MTLS_BUNDLE_ORDERS_API_CRL", "/run/a.crl, /run/b.crl"),
            ("MTLS_BUNDLE_ORDERS_API_RELOAD", "false"),
            // `-` is read as `_` only: a variable spelt with the `-` is not the bundle's.
            ("MTLS_BUNDLE_ORDERS-API_KEY_ALIAS", "ignored"),
        ],
        || Config::from_file(&file),
    )
    .unwrap();
    let server = cfg.server.as_ref().unwrap();
    assert_eq!(server.listen, "127.0.0.1:9443");
    assert_eq!(server.bundle, "key-store");
    assert_eq!(
        server.allow,
        ["spiffe://example.org/ns/a", "spiffe://example.org/ns/b"]
    );
    assert_eq!(server.handshake_timeout.as_deref(), Some("7s"));
    assert_eq!(server.max_connections, Some(42));
    let orders = &cfg.bundle["orders-api"];
    assert_eq!(
        orders.certificate.as_deref(),
        Some(Path::new("/run/env.pem"))
    );
    assert_eq!(
        orders.private_key.as_deref(),
        Some(Path::new("/run/env.key"))
    );
    assert_eq!(
        orders.ca.paths(),
        [Path::new("/run/ca-1.pem"), Path::new("/run/ca-2.pem")]
    );
    assert_eq!(
        paths(&orders.crl),
        [Path::new("/run/a.crl"), Path::new("/run/b.crl")]
    );
    assert_eq!(orders.reload, Some(false));
    assert_eq!(orders.key_alias, None, "a `-` in the variable's name");

    // The PKCS#12 bundle's, through `MTLS_BUNDLE_KEY_STORE_*`: passwords from files.
    let cfg = with_env(
        &[
            ("MTLS_BUNDLE_KEY_STORE_KEYSTORE", "/run/env.p12"),
            (
                "MTLS_BUNDLE_KEY_STORE_KEYSTORE_PASSWORD_FILE",
                "/run/ks-pass",
            ),
            ("MTLS_BUNDLE_KEY_STORE_KEY_ALIAS", "orders"),
            ("MTLS_BUNDLE_KEY_STORE_TRUSTSTORE", "/run/env-trust.p12"),
            (
                "MTLS_BUNDLE_KEY_STORE_TRUSTSTORE_PASSWORD_FILE",
                "/run/ts-pass",
            ),
            ("MTLS_BUNDLE_KEY_STORE_RELOAD", "true"),
            // `none` clears the CRLs on purpose.
            ("MTLS_BUNDLE_ORDERS_API_CRL", "none"),
        ],
        || Config::from_file(&file),
    )
    .unwrap();
    let store = &cfg.bundle["key-store"];
    assert_eq!(store.keystore.as_deref(), Some(Path::new("/run/env.p12")));
    assert_eq!(
        store.keystore_password_file.as_deref(),
        Some(Path::new("/run/ks-pass"))
    );
    assert_eq!(store.key_alias.as_deref(), Some("orders"));
    assert_eq!(
        store.truststore.as_deref(),
        Some(Path::new("/run/env-trust.p12"))
    );
    assert_eq!(
        store.truststore_password_file.as_deref(),
        Some(Path::new("/run/ts-pass"))
    );
    assert_eq!(store.reload, Some(true), "the file said false");
    assert!(
        cfg.bundle["orders-api"].crl.is_empty(),
        "CRL=none clears it"
    );

    // Passwords from other variables, named by the overrides.
    let cfg = with_env(
        &[
            ("MTLS_BUNDLE_ENV_PASS_KEYSTORE_PASSWORD_ENV", "KS_PASSWORD"),
            (
                "MTLS_BUNDLE_ENV_PASS_TRUSTSTORE_PASSWORD_ENV",
                "TS_PASSWORD",
            ),
            ("KS_PASSWORD", "changeit"),
            ("TS_PASSWORD", "changeit"),
        ],
        || Config::from_file(&file),
    )
    .unwrap();
    let store = &cfg.bundle["env-pass"];
    assert_eq!(store.keystore_password_env.as_deref(), Some("KS_PASSWORD"));
    assert_eq!(
        store.truststore_password_env.as_deref(),
        Some("TS_PASSWORD")
    );

    // An empty CRL would turn revocation checking off by accident: refused, naming it.
    let err = with_env(&[("MTLS_BUNDLE_ORDERS_API_CRL", " , ")], || {
        Config::from_file(&file)
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Override { variable, .. } if variable == "MTLS_BUNDLE_ORDERS_API_CRL"),
        "{err}"
    );
    assert!(err.to_string().contains("set it to `none`"), "{err}");

    // A count that is not a number is refused, naming the variable and the fix; it never
    // becomes some other count.
    for value in ["lots", "-1", "1e3", ""] {
        let err = with_env(&[("MTLS_SERVER_MAX_CONNECTIONS", value)], || {
            Config::from_file(&file)
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `MTLS_SERVER_MAX_CONNECTIONS` is not a whole number: give \
             the most connections served at once (at least 1), or unset it to keep the \
             file's value",
            "for {value:?}"
        );
    }
    let err = with_env(&[("MTLS_SERVER_MAX_CONNECTIONS", "0")], || {
        Config::from_file(&file)
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "server.max_connections"),
        "{err}"
    );

    // Without a file: `Config::from_env` reads the variables too, overrides included.
    let cfg = with_env(
        &[
            ("MTLS_CERT", "/run/tls.crt"),
            ("MTLS_KEY", "/run/tls.key"),
            ("MTLS_CA", "/run/ca.crt"),
            ("MTLS_SERVER_LISTEN", "127.0.0.1:9443"),
            ("MTLS_SERVER_ALLOW", "spiffe://example.org"),
            ("MTLS_SERVER_MAX_CONNECTIONS", "8"),
            ("MTLS_BUNDLE_DEFAULT_RELOAD", "false"),
        ],
        Config::from_env,
    )
    .unwrap();
    let default = &cfg.bundle["default"];
    assert_eq!(
        default.certificate.as_deref(),
        Some(Path::new("/run/tls.crt"))
    );
    assert_eq!(default.reload, Some(false));
    assert_eq!(cfg.server.as_ref().unwrap().max_connections, Some(8));
    let err = with_env(
        &[
            ("MTLS_CERT", "/run/tls.crt"),
            ("MTLS_KEY", "/run/tls.key"),
            ("MTLS_CA", "/run/ca.crt"),
            ("MTLS_SERVER_LISTEN", "127.0.0.1:9443"),
            ("MTLS_SERVER_ALLOW", "spiffe://example.org"),
            ("MTLS_SERVER_MAX_CONNECTIONS", "many"),
        ],
        Config::from_env,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Override { variable, .. } if variable == "MTLS_SERVER_MAX_CONNECTIONS"),
        "{err}"
    );
    assert!(Config::from_env().is_err(), "every variable was removed");

    let _ = std::fs::remove_dir_all(&dir);
}
