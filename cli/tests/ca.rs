//! `mtls ca init` and `mtls ca issue`: files our server accepts, keys kept private.

mod common;

use common::*;

#[test]
fn init_then_issue_makes_files_our_server_accepts_and_inspect_reads_back() {
    let dir = Dir::new("ca");
    let ca_dir = dir.path("pki");
    let run = mtls(&["ca", "init", &ca_dir]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("not for production"));
    // A second init does not silently replace the CA.
    let again = mtls(&["ca", "init", &ca_dir]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    let run = mtls(&["ca", "issue", &ca_dir, "--name", "server", "--server"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("names:       DNS:localhost, IP:127.0.0.1"),
        "{}",
        run.stdout
    );
    let run = mtls(&[
        "ca",
        "issue",
        &ca_dir,
        "--name",
        "orders",
        "--client",
        "--spiffe-id",
        "spiffe://example.org/orders",
        "--ttl",
        "2h",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    #[cfg(unix)]
    for key in ["ca.key", "server.key", "orders.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{ca_dir}/{key}"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    let run = mtls(&["inspect", &format!("{ca_dir}/orders.pem")]);
    assert!(
        run.stdout
            .contains("SPIFFE ID:   spiffe://example.org/orders"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("(1 h left)"), "{}", run.stdout);

    // Our server takes the files, and the doctor connects with them.
    let rt = runtime();
    let addr = our_server(
        &rt,
        mtls::Server::builder()
            .identity_files(
                format!("{ca_dir}/server.pem"),
                format!("{ca_dir}/server.key"),
            )
            .trust_file(format!("{ca_dir}/ca.pem"))
            .authorize(mtls::Authorizer::spiffe_id("spiffe://example.org/orders").unwrap()),
    );
    let run = mtls(&[
        "doctor",
        &format!("https://localhost:{}/", addr.port()),
        "--cert",
        &format!("{ca_dir}/orders.pem"),
        "--key",
        &format!("{ca_dir}/orders.key"),
        "--ca",
        &format!("{ca_dir}/ca.pem"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn issue_refuses_bad_input_with_exit_2() {
    let dir = Dir::new("ca-bad");
    let ca_dir = dir.path("pki");
    // No CA yet.
    let run = mtls(&["ca", "issue", &ca_dir, "--name", "x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("mtls ca init"), "{}", run.stderr);
    assert_eq!(mtls(&["ca", "init", &ca_dir]).code, 0);
    let run = mtls(&[
        "ca",
        "issue",
        &ca_dir,
        "--name",
        "x",
        "--spiffe-id",
        "http://nope",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--spiffe-id"), "{}", run.stderr);
    let run = mtls(&["ca", "issue", &ca_dir, "--name", "../escape"]);
    assert_eq!(run.code, 2);
    let run = mtls(&["ca", "issue", &ca_dir, "--name", "x", "--ttl", "1y"]);
    assert_eq!(run.code, 2);
    let run = mtls(&[
        "ca", "issue", &ca_dir, "--name", "x", "--client", "--server",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        mtls(&["ca", "--help"])
            .stdout
            .contains("NOT a production CA")
    );

    // The CA's own file names are refused, and the CA's key is left as it was.
    let ca_key = std::fs::read(format!("{ca_dir}/ca.key")).unwrap();
    for name in ["ca", "truststore"] {
        let run = mtls(&["ca", "issue", &ca_dir, "--name", name, "--force"]);
        assert_eq!(run.code, 2, "{name}: {}", run.stdout);
        assert!(run.stderr.contains("overwrite the CA"), "{}", run.stderr);
    }
    assert_eq!(std::fs::read(format!("{ca_dir}/ca.key")).unwrap(), ca_key);

    // An existing leaf is replaced only with --force.
    assert_eq!(mtls(&["ca", "issue", &ca_dir, "--name", "twice"]).code, 0);
    let first = std::fs::read(format!("{ca_dir}/twice.pem")).unwrap();
    let run = mtls(&["ca", "issue", &ca_dir, "--name", "twice"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(std::fs::read(format!("{ca_dir}/twice.pem")).unwrap(), first);
    assert_eq!(
        mtls(&["ca", "issue", &ca_dir, "--name", "twice", "--force"]).code,
        0
    );
    assert_ne!(std::fs::read(format!("{ca_dir}/twice.pem")).unwrap(), first);
}

#[cfg(unix)]
#[test]
fn a_reissued_keystore_is_a_new_private_file_not_a_write_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("ca-p12-link");
    let ca_dir = dir.path("pki");
    assert_eq!(mtls(&["ca", "init", &ca_dir]).code, 0);
    let pass = dir.path("pass.txt");
    std::fs::write(&pass, "changeit\n").unwrap();
    let issue = |force: bool| {
        let mut args = vec![
            "ca",
            "issue",
            &ca_dir,
            "--name",
            "billing",
            "--p12",
            "--password-file",
            &pass,
        ];
        if force {
            args.push("--force");
        }
        mtls(&args)
    };
    assert_eq!(issue(false).code, 0);
    // Someone replaced the keystore with a world-readable link to another file.
    let keystore = format!("{ca_dir}/billing.p12");
    let elsewhere = dir.path("elsewhere.txt");
    std::fs::write(&elsewhere, "not a keystore").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&keystore).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &keystore).unwrap();

    let run = issue(true);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let meta = std::fs::symlink_metadata(&keystore).unwrap();
    assert!(meta.file_type().is_file(), "a regular file, not the link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "not a keystore",
        "the link's target is untouched"
    );
}

#[test]
fn issue_writes_pkcs12_stores_that_the_doctor_and_our_server_take() {
    let dir = Dir::new("ca-p12");
    let ca_dir = dir.path("pki");
    assert_eq!(mtls(&["ca", "init", &ca_dir]).code, 0);
    let pass = dir.path("pass.txt");
    std::fs::write(&pass, "changeit\n").unwrap();
    let run = mtls(&[
        "ca",
        "issue",
        &ca_dir,
        "--name",
        "billing",
        "--client",
        "--spiffe-id",
        "spiffe://example.org/billing",
        "--p12",
        "--password-file",
        &pass,
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("billing.p12 (alias billing, mode 0600)"),
        "{}",
        run.stdout
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{ca_dir}/billing.p12"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        mtls(&["ca", "issue", &ca_dir, "--name", "server", "--server"]).code,
        0
    );
    let rt = runtime();
    let addr = our_server(
        &rt,
        mtls::Server::builder()
            .identity_files(
                format!("{ca_dir}/server.pem"),
                format!("{ca_dir}/server.key"),
            )
            .trust_pkcs12_file(
                format!("{ca_dir}/truststore.p12"),
                mtls::Password::new("changeit"),
            )
            .authorize(mtls::Authorizer::any_verified()),
    );
    let run = mtls(&[
        "doctor",
        &format!("https://localhost:{}/", addr.port()),
        "--keystore",
        &format!("{ca_dir}/billing.p12"),
        "--keystore-password-file",
        &pass,
        "--truststore",
        &format!("{ca_dir}/truststore.p12"),
        "--truststore-password-file",
        &pass,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.verdict()
            .contains("we are spiffe://example.org/billing"),
        "{}",
        run.stdout
    );
    // --p12 needs its password file.
    assert_eq!(
        mtls(&["ca", "issue", &ca_dir, "--name", "x", "--p12"]).code,
        2
    );
    // inspect reads the keystore back.
    let run = mtls(&[
        "inspect",
        &format!("{ca_dir}/billing.p12"),
        "--password-file",
        &pass,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("(PKCS#12)") && run.stdout.contains("spiffe://example.org/billing")
    );
}
