//! `mtls doctor` against peers we did not write: `openssl s_server` in each misconfiguration,
//! `openssl pkcs12` keystores for `inspect`, and `curl` with files from `mtls ca`. These need
//! the openssl and curl commands, so they are ignored by default; CI runs them with
//! `--include-ignored`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use mtls::HandshakeFailure;
use mtls::dev::LeafSpec;

/// An `openssl s_server` child, killed when dropped.
struct SServer {
    child: Child,
    port: u16,
}

impl SServer {
    fn start(args: &[&str]) -> SServer {
        let port = closed_port();
        let child = Command::new("openssl")
            .arg("s_server")
            // -verify_return_error: refuse a client certificate that does not verify (without it,
            // s_server logs the error and carries on).
            .args([
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-www",
                "-quiet",
                "-verify_return_error",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SServer { child, port }
    }

    /// Presents `cert` and `key`, requires a client certificate from the team CA, and takes
    /// the `extra` arguments.
    fn verifying(f: &Files, cert: &str, key: &str, extra: &[&str]) -> SServer {
        let mut args = vec!["-cert", cert, "-key", key, "-CAfile", &f.team.ca_file];
        args.extend(["-Verify", "1"]);
        args.extend(extra);
        SServer::start(&args)
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Files {
    dir: Dir,
    team: Pki,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn files(name: &str) -> Files {
    let dir = Dir::new(name);
    let team = Pki::new(&dir, "Team CA");
    let (server_cert, server_key, _) = team.write(&dir, "server", &LeafSpec::server("localhost"));
    let (client_cert, client_key, _) = team.write(
        &dir,
        "orders",
        &LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"),
    );
    Files {
        dir,
        team,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

impl Files {
    fn doctor(&self, url: &str, extra: &[&str]) -> Run {
        let mut args = vec!["doctor", url];
        args.extend(material(
            &self.client_cert,
            &self.client_key,
            &self.team.ca_file,
        ));
        args.extend(extra);
        mtls(&args)
    }
}

#[test]
#[ignore = "needs openssl"]
fn s_server_with_client_auth_works() {
    let f = files("ossl-ok");
    let s = SServer::verifying(&f, &f.server_cert, &f.server_key, &[]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.verdict().starts_with("OK: mutual TLS works"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("its CA hints: CN=Team CA; our issuer CN=Team CA is among them"),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_with_a_rogue_ca_certificate_is_untrusted() {
    let f = files("ossl-rogue");
    let rogue = Pki::new(&f.dir, "Rogue CA");
    let (cert, key, _) = rogue.write(&f.dir, "rogue-server", &LeafSpec::server("localhost"));
    let s = SServer::verifying(&f, &cert, &key, &[]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server's certificate (CN=localhost, O=mtls development) was issued by CN=Rogue CA, which is not among the CAs we trust (CN=Team CA)."
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_with_a_wrong_san_is_named() {
    let f = files("ossl-san");
    let (cert, key, _) = f.team.write(
        &f.dir,
        "elsewhere",
        &LeafSpec::new("elsewhere")
            .dns("elsewhere.internal")
            .usage(mtls::dev::Usage::Server),
    );
    let s = SServer::verifying(&f, &cert, &key, &[]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server's certificate is for DNS:elsewhere.internal, but we connected to localhost."
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_verifying_with_another_cas_list_names_its_hints() {
    let f = files("ossl-hints");
    let other = Pki::new(&f.dir, "Other CA");
    let s = SServer::start(&[
        "-cert",
        &f.server_cert,
        "-key",
        &f.server_key,
        "-CAfile",
        &other.ca_file,
        "-Verify",
        "1",
        // The server's own chain still verifies against the Team CA for the client.
        "-chainCAfile",
        &f.team.ca_file,
    ]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server does not trust the CA that issued our certificate (CN=Team CA); it trusts CN=Other CA, and our issuer is not among them."
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_without_client_auth_is_not_mutual() {
    let f = files("ossl-oneway");
    let s = SServer::start(&["-cert", &f.server_cert, "-key", &f.server_key]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 1);
    assert!(run.verdict().starts_with("NOT MUTUAL: "), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("⚠ server did not ask for a client certificate")
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_tls12_only_against_a_tls13_only_client() {
    let f = files("ossl-tls12");
    let s = SServer::verifying(&f, &f.server_cert, &f.server_key, &["-tls1_2"]);
    let run = f.doctor(&s.url(), &["--tls13-only"]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server speaks only TLS 1.2, and we offer no version it accepts."
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn s_server_with_an_expired_certificate() {
    let f = files("ossl-expired");
    let (cert, key, _) = f
        .team
        .write(&f.dir, "expired", &LeafSpec::server("localhost").expired());
    let s = SServer::verifying(&f, &cert, &key, &[]);
    let run = f.doctor(&s.url(), &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server's certificate (CN=localhost, O=mtls development) expired at "
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs openssl"]
fn inspect_reads_an_openssl_pkcs12_keystore() {
    let f = files("ossl-p12");
    let p12 = f.dir.path("orders.p12");
    let pass = f.dir.path("pass.txt");
    std::fs::write(&pass, "changeit\n").unwrap();
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-export",
                "-in",
                &f.client_cert,
                "-inkey",
                &f.client_key,
                "-out",
                &p12,
            ])
            .args(["-passout", "pass:changeit", "-name", "orders"]),
    );
    let run = mtls(&["inspect", &p12, "--password-file", &pass]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("orders.p12 (PKCS#12)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("SPIFFE ID:   spiffe://example.org/orders")
    );
    // A wrong password is named.
    std::fs::write(&pass, "wrong\n").unwrap();
    let run = mtls(&["inspect", &p12, "--password-file", &pass]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.to_lowercase().contains("password"),
        "{}",
        run.stdout
    );
    // And the doctor takes it as a keystore.
    std::fs::write(&pass, "changeit\n").unwrap();
    let rt = runtime();
    let server = f.team.ca.server("localhost").unwrap();
    let addr = our_server(&rt, builder(&f.team, &server));
    let run = mtls(&[
        "doctor",
        &format!("https://localhost:{}/", addr.port()),
        "--keystore",
        &p12,
        "--keystore-password-file",
        &pass,
        "--ca",
        &f.team.ca_file,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
#[ignore = "needs curl"]
fn curl_accepts_files_from_mtls_ca() {
    let dir = Dir::new("ca-curl");
    let ca_dir = dir.path("pki");
    assert_eq!(mtls(&["ca", "init", &ca_dir]).code, 0);
    assert_eq!(
        mtls(&["ca", "issue", &ca_dir, "--name", "server", "--server"]).code,
        0
    );
    assert_eq!(
        mtls(&[
            "ca",
            "issue",
            &ca_dir,
            "--name",
            "cli",
            "--client",
            "--spiffe-id",
            "spiffe://example.org/cli"
        ])
        .code,
        0
    );
    let rt = runtime();
    let server = our_server_counted(
        &rt,
        mtls::Server::builder()
            .identity_files(
                format!("{ca_dir}/server.pem"),
                format!("{ca_dir}/server.key"),
            )
            .trust_file(format!("{ca_dir}/ca.pem"))
            .authorize(mtls::Authorizer::any_verified()),
    );
    let curl = |with_certificate: bool| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &format!("{ca_dir}/ca.pem"),
        ]);
        if with_certificate {
            cmd.args([
                "--cert",
                &format!("{ca_dir}/cli.pem"),
                "--key",
                &format!("{ca_dir}/cli.key"),
            ]);
        }
        cmd.arg(format!("https://localhost:{}/", server.addr.port()))
            .output()
            .expect("curl is installed")
    };
    let served = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains("spiffe://example.org/cli"), "{body}");
    };
    served(&curl(true));
    assert_eq!(server.handled.load(Ordering::SeqCst), 1);

    // Without our certificate, curl is refused in the handshake: it sees the TLS 1.3
    // `certificate_required` alert, the server counts a missing certificate, and no handler runs.
    let out = curl(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("alert certificate required"),
        "curl names the server's alert: {stderr}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .stats
        .handshake_failures(HandshakeFailure::NoCertificate)
        == 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let counted: Vec<_> = (server.stats.failures().into_iter())
        .filter(|(_, count)| *count > 0)
        .collect();
    assert_eq!(
        counted,
        [(HandshakeFailure::NoCertificate, 1)],
        "the server refused for a missing certificate, and for nothing else"
    );
    assert_eq!(server.handled.load(Ordering::SeqCst), 1, "no handler ran");
    // And a client with its certificate is still served.
    served(&curl(true));
    assert_eq!(server.handled.load(Ordering::SeqCst), 2);
}
