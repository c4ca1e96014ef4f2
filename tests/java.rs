//! Java both ways, with the same kind of files: a Java `HttpsServer` that needs client
//! certificates (PKCS#12 keystore and truststore, made by `keytool`) is called by our `Client`
//! loaded from `.p12` files; a Java `HttpClient` calls our `Server` loaded the same way.
//! Passwords come from files. Needs a JDK: ignored by default, run by `.ci/run`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use mtls::{Authorizer, Client, Password, Server};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `NAME.p12` (key and chain, re-written by keytool) and `trust.p12` (the CA, by keytool).
fn stores(dir: &Path, ca: &Ca, name: &str, leaf: &Issued) {
    std::fs::write(dir.join(format!("{name}.pem")), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &leaf.key_pem).unwrap();
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            &format!("{name}.key"),
            "-in",
            &format!("{name}.pem"),
            "-name",
            name,
            "-passout",
            "pass:tmp",
            "-out",
            &format!("{name}-tmp.p12"),
        ],
        dir,
    );
    run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            &format!("{name}-tmp.p12"),
            "-srcstoretype",
            "pkcs12",
            "-srcstorepass",
            "tmp",
            "-destkeystore",
            &format!("{name}.p12"),
            "-deststoretype",
            "pkcs12",
            "-deststorepass",
            "changeit",
        ],
        dir,
    );
    if !dir.join("trust.p12").exists() {
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
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
            dir,
        );
    }
}

#[tokio::test]
#[ignore = "needs a JDK (java, keytool) and openssl; .ci/run runs it"]
async fn java_and_rust_call_each_other_with_pkcs12_files() {
    let dir = Dir::new("java");
    let ca = Ca::new("fleet root");
    let java_leaf = ca.issue(Leaf {
        dns: vec!["localhost"],
        ips: vec!["127.0.0.1".parse().unwrap()],
        ekus: vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ],
        ..Leaf::client("java-service")
    });
    let rust_leaf = ca.issue(Leaf {
        dns: vec!["localhost"],
        ips: vec!["127.0.0.1".parse().unwrap()],
        uris: vec!["spiffe://example.org/rust-service"],
        ekus: vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ],
        ..Leaf::client("rust-service")
    });
    stores(&dir.0, &ca, "java", &java_leaf);
    stores(&dir.0, &ca, "rust", &rust_leaf);
    std::fs::write(dir.0.join("store.pass"), "changeit\n").unwrap();
    let password = || Password::from_file(dir.0.join("store.pass")).unwrap();

    // Rust calls Java.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/MtlsServer.java");
    let mut java = Killed(
        Command::new("java")
            .arg(&source)
            .args([
                &port.to_string(),
                "java.p12",
                "changeit",
                "trust.p12",
                "changeit",
            ])
            .current_dir(&dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("FAIL: java is required"),
    );
    let stdout = java.0.stdout.take().unwrap();
    let ready = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l == "listening")
    });
    eventually(|| ready.is_finished()).await;
    assert!(
        ready.is_finished() && ready.join().unwrap(),
        "the Java server started"
    );
    let client = Client::builder()
        .identity_pkcs12_file(dir.0.join("rust.p12"), password(), None)
        .trust_pkcs12_file(dir.0.join("trust.p12"), password())
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{port}/").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let server_identity = resp
        .extensions()
        .get::<mtls::PeerIdentity>()
        .unwrap()
        .clone();
    assert_eq!(server_identity.common_name(), Some("java-service"));
    let body = body_string(resp).await;
    assert!(
        body.contains("java saw") && body.contains("CN=rust-service"),
        "{body}"
    );
    drop(java);

    // Java calls Rust.
    let running = serve(
        Server::builder()
            .identity_pkcs12_file(dir.0.join("rust.p12"), password(), None)
            .trust_pkcs12_file(dir.0.join("trust.p12"), password())
            .authorize(Authorizer::common_name("java-service").unwrap()),
    )
    .await;
    let client_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/Client.java");
    let url = format!("https://localhost:{}/", running.addr.port());
    let dir_path = dir.0.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_ok(
            Command::new("java")
                .arg(&client_source)
                .args([url.as_str(), "java.p12", "trust.p12", "changeit"])
                .current_dir(&dir_path),
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status 200"), "{text}");
    assert_eq!(
        running.last_peer().unwrap().common_name(),
        Some("java-service")
    );
    running.shutdown().await;
}
