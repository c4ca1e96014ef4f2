//! `mtls doctor` against real servers on 127.0.0.1: each broken setup is built for real, and
//! the verdict line and exit code are asserted.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use mtls::dev::LeafSpec;

/// A CA, a server certificate for localhost and a client certificate, on disk.
struct Setup {
    dir: Dir,
    pki: Pki,
    server: mtls::dev::DevCert,
    client_cert: String,
    client_key: String,
}

fn setup(name: &str) -> Setup {
    let dir = Dir::new(name);
    let pki = Pki::new(&dir, "Team CA");
    let (_, _, server) = pki.write(&dir, "server", &LeafSpec::server("localhost"));
    let (client_cert, client_key, _) = pki.write(
        &dir,
        "orders",
        &LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"),
    );
    Setup {
        dir,
        pki,
        server,
        client_cert,
        client_key,
    }
}

impl Setup {
    /// `mtls doctor URL` with our client certificate and CA, then `extra`.
    fn doctor(&self, url: &str, extra: &[&str]) -> Run {
        self.doctor_as(url, &self.client_cert, &self.client_key, extra)
    }

    /// A configuration file with our certificate, key and CA as bundle `orders`, and a
    /// client profile `inventory` on it.
    fn config_file(&self) -> String {
        let config = self.dir.path("mtls.toml");
        std::fs::write(
            &config,
            format!(
                "[bundle.orders]\ncertificate = {:?}\nprivate_key = {:?}\nca = {:?}\n\n[client.inventory]\nbundle = \"orders\"\n",
                self.client_cert, self.client_key, self.pki.ca_file
            ),
        )
        .unwrap();
        config
    }

    /// `mtls doctor` on `https://localhost:PORT/` for the server at `addr`, as [`Setup::doctor`].
    fn doctor_local(&self, addr: std::net::SocketAddr, extra: &[&str]) -> Run {
        self.doctor(&format!("https://localhost:{}/", addr.port()), extra)
    }

    /// A hand-written TLS 1.3 server that requires a client certificate from our CA and
    /// presents a certificate our CA issues from `spec`.
    fn raw_server(&self, rt: &tokio::runtime::Runtime, spec: &LeafSpec) -> std::net::SocketAddr {
        let cert = self.pki.ca.issue(spec).unwrap();
        raw_server(rt, &cert, Some(&self.pki.ca), &[&rustls::version::TLS13])
    }

    /// `mtls doctor URL` presenting `cert` and `key`, trusting our CA, then `extra`.
    fn doctor_as(&self, url: &str, cert: &str, key: &str, extra: &[&str]) -> Run {
        let mut args = vec!["doctor", url];
        args.extend(material(cert, key, &self.pki.ca_file));
        args.extend(extra);
        // A budget for a busy machine: no test here waits for it to run out.
        args.extend(["--timeout", "30"]);
        mtls(&args)
    }
}

#[test]
fn a_working_connection_is_reported_step_by_step_and_exits_0() {
    let s = setup("ok");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.verdict()
            .starts_with("OK: mutual TLS works: we are spiffe://example.org/orders"),
        "{}",
        run.stdout
    );
    for line in [
        "✓ our certificate: spiffe://example.org/orders, key matches (ECDSA P-256)",
        "✓ our certificate may be used by a TLS client (clientAuth)",
        "✓ TCP connect to 127.0.0.1:",
        "✓ TLS handshake: TLS 1.3",
        "✓ server asked for our certificate; its CA hints: CN=Team CA; our issuer CN=Team CA is among them",
        "✓ server accepted our certificate (spiffe://example.org/orders)",
        "✓ HTTP GET /: 200 OK",
        "✓ resumption: a reconnection resumed the TLS session (no full handshake)",
        "session: TLS 1.3, X25519, ",
        "ALPN h2, full handshake",
        "server: CN=localhost, O=mtls development [DNS:localhost, IP:127.0.0.1, IP:::1]",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn json_reports_the_same_steps_for_monitoring() {
    let s = setup("json");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let run = s.doctor(
        &format!("https://localhost:{}/admin", addr.port()),
        &["--json"],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["http_status"], 403);
    assert_eq!(report["session"]["version"], "TLS 1.3");
    assert_eq!(report["server"]["sans"][0], "DNS:localhost");
    let steps = report["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["step"], "http");
    assert_eq!(last["status"], "fail");
    assert!(last["cause"].as_str().unwrap().contains("admins only"));
    assert!(
        steps
            .iter()
            .any(|s| s["step"] == "accepted" && s["status"] == "ok")
    );
}

#[test]
fn a_403_after_a_good_handshake_is_a_route_denial_with_the_body() {
    let s = setup("forbidden");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let run = s.doctor(&format!("https://localhost:{}/admin", addr.port()), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.verdict(),
        "BROKEN: TLS worked, but the service answered 403 Forbidden for /admin to spiffe://example.org/orders: \"forbidden: admins only\". \
         Fix: grant spiffe://example.org/orders access to /admin in the server's roles or route rules, or call a route this identity may use."
    );
}

#[test]
fn nothing_listening_is_named() {
    let s = setup("refused");
    let port = closed_port();
    let run = s.doctor(&format!("https://127.0.0.1:{port}/"), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.verdict(),
        format!(
            "BROKEN: nothing listens on 127.0.0.1:{port} (connection refused). Fix: start the service, or check the port in the URL ({port})."
        )
    );
}

#[test]
fn a_name_that_does_not_resolve_is_named() {
    let s = setup("resolve");
    let run = s.doctor("https://no-such-host.invalid:8443/", &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict()
            .starts_with("BROKEN: the name no-such-host.invalid does not resolve"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_plaintext_port_is_not_a_tls_server() {
    let s = setup("plaintext");
    let rt = runtime();
    let addr = plain_http_server(&rt);
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(&format!(
            "BROKEN: localhost:{} is not a TLS server (it answered in plain HTTP: \"HTTP/1.1 400 Bad Request\")",
            addr.port()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn an_untrusted_server_names_its_issuer_and_our_cas() {
    let s = setup("untrusted");
    let rogue = Pki::new(&s.dir, "Rogue CA");
    let rt = runtime();
    let server = rogue.ca.server("localhost").unwrap();
    let addr = our_server(&rt, builder(&s.pki, &server));
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.verdict(),
        "BROKEN: the server's certificate (CN=localhost, O=mtls development) was issued by CN=Rogue CA, which is not among the CAs we trust (CN=Team CA). \
         Fix: if localhost is the right server, add its CA (CN=Rogue CA) to our trust (--ca); otherwise the address reaches a server with a certificate from another CA."
    );
}

/// A server certificate for localhost with the clientAuth usage only.
fn client_only(ca: &mtls::dev::DevCa) -> mtls::dev::DevCert {
    ca.issue(
        &LeafSpec::new("localhost")
            .dns("localhost")
            .usage(mtls::dev::Usage::Client),
    )
    .unwrap()
}

#[test]
fn a_wrong_usage_certificate_from_an_untrusted_ca_names_both_the_ca_first() {
    let s = setup("untrusted-usage");
    let rogue = Pki::new(&s.dir, "Rogue CA");
    let rt = runtime();
    let addr = raw_server(
        &rt,
        &client_only(&rogue.ca),
        Some(&s.pki.ca),
        &[&rustls::version::TLS13],
    );
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let verdict = run.verdict();
    let untrusted = verdict
        .find("was issued by CN=Rogue CA, which is not among the CAs we trust (CN=Team CA)")
        .unwrap_or_else(|| panic!("the untrusted CA is named: {}", run.stdout));
    let usage = verdict
        .find("is not for TLS servers (extended key usage: clientAuth)")
        .unwrap_or_else(|| panic!("the wrong usage is named: {}", run.stdout));
    assert!(untrusted < usage, "the CA first: {verdict}");
    assert!(
        verdict.contains("add its CA (CN=Rogue CA) to our trust (--ca)")
            && verdict
                .contains("reissue the server's certificate with extendedKeyUsage = serverAuth"),
        "both fixes: {verdict}"
    );
}

#[test]
fn a_wrong_usage_certificate_from_a_trusted_ca_names_the_usage_alone() {
    let s = setup("usage");
    let rt = runtime();
    let addr = raw_server(
        &rt,
        &client_only(&s.pki.ca),
        Some(&s.pki.ca),
        &[&rustls::version::TLS13],
    );
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.verdict(),
        "BROKEN: the server's certificate (CN=localhost, O=mtls development) is not for TLS servers (extended key usage: clientAuth). \
         Fix: reissue the server's certificate with extendedKeyUsage = serverAuth."
    );
}

#[test]
fn a_wrong_name_lists_the_certificates_names_and_ours() {
    let s = setup("wrongname");
    let rt = runtime();
    let server = s
        .pki
        .ca
        .issue(
            &LeafSpec::new("inventory")
                .dns("inventory.internal")
                .usage(mtls::dev::Usage::Server),
        )
        .unwrap();
    let addr = our_server(&rt, builder(&s.pki, &server));
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server's certificate is for DNS:inventory.internal, but we connected to localhost. Fix: connect with one of the certificate's names"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn an_expired_server_certificate_gives_the_dates_and_says_check_clocks_when_close() {
    let s = setup("expired");
    let rt = runtime();
    let now = SystemTime::now();
    // Expired ten minutes ago: a clock problem is plausible.
    let addr = s.raw_server(
        &rt,
        &LeafSpec::server("localhost").validity(
            now - Duration::from_secs(86_400),
            now - Duration::from_secs(600),
        ),
    );
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    let verdict = run.verdict();
    assert!(
        verdict.starts_with(
            "BROKEN: the server's certificate (CN=localhost, O=mtls development) expired at "
        ),
        "{}",
        run.stdout
    );
    assert!(
        verdict.contains(", 10 min ago. Fix: check clocks"),
        "{verdict}"
    );

    // Expired long ago: renew, no talk of clocks.
    let addr = s.raw_server(&rt, &LeafSpec::server("localhost").expired());
    let run = s.doctor_local(addr, &[]);
    assert!(
        run.verdict().ends_with(
            "Fix: renew the server's certificate, and check that the server reloaded it."
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_server_certificate_not_yet_valid_says_check_clocks() {
    let s = setup("notyet");
    let rt = runtime();
    let now = SystemTime::now();
    let addr = s.raw_server(
        &rt,
        &LeafSpec::server("localhost").validity(
            now + Duration::from_secs(300),
            now + Duration::from_secs(86_400),
        ),
    );
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().contains("is valid only from ")
            && run.verdict().contains("Fix: check clocks"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_server_that_is_not_the_expected_identity_is_named_with_both() {
    let s = setup("expect");
    let rt = runtime();
    let server = s
        .pki
        .ca
        .issue(&LeafSpec::server("localhost").spiffe_id("spiffe://example.org/billing"))
        .unwrap();
    let addr = our_server(&rt, builder(&s.pki, &server));
    let run = s.doctor(
        &format!("https://localhost:{}/", addr.port()),
        &["--expect-server", "spiffe://example.org/inventory"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.verdict(),
        "BROKEN: the server is spiffe://example.org/billing, but --expect-server asks for spiffe://example.org/inventory. \
         Fix: connect to the service you meant, or correct --expect-server."
    );
    // And the right expectation passes.
    let run = s.doctor(
        &format!("https://localhost:{}/", addr.port()),
        &["--expect-server", "spiffe://example.org/billing"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("matches --expect-server spiffe://example.org/billing")
    );
}

#[test]
fn a_server_that_never_asks_for_a_certificate_is_not_mutual_tls() {
    let s = setup("oneway");
    let rt = runtime();
    let addr = raw_server(&rt, &s.server, None, &[&rustls::version::TLS13]);
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains(
        "⚠ server did not ask for a client certificate: this is one-way TLS, not mutual TLS"
    ));
    assert!(
        run.verdict().starts_with("NOT MUTUAL: localhost:"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_server_that_does_not_trust_our_ca_is_named_with_its_hints() {
    let s = setup("unknownca");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let rogue = Pki::new(&s.dir, "Rogue CA");
    let (cert, key, _) = rogue.write(&s.dir, "stranger", &LeafSpec::client("stranger"));
    let run = s.doctor_as(
        &format!("https://localhost:{}/", addr.port()),
        &cert,
        &key,
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.verdict(),
        "BROKEN: the server does not trust the CA that issued our certificate (CN=Rogue CA); it trusts CN=Team CA, and our issuer is not among them. \
         Fix: get a certificate issued by CN=Team CA, or add CN=Rogue CA to the server's trust bundle."
    );
    assert!(
        run.stdout
            .contains("our issuer CN=Rogue CA is NOT among them")
    );
}

#[test]
fn a_policy_denial_in_the_handshake_is_named() {
    let s = setup("denied");
    let rt = runtime();
    let addr = our_server(
        &rt,
        builder(&s.pki, &s.server)
            .authorize(mtls::Authorizer::spiffe_id("spiffe://example.org/billing").unwrap()),
    );
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server verified our certificate, but its policy does not allow spiffe://example.org/orders."
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_revoked_certificate_is_named() {
    let s = setup("revoked");
    let rt = runtime();
    let leaf = s
        .pki
        .ca
        .issue(&LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))
        .unwrap();
    let (cert, key) = leaf.write_pem(&s.dir.0, "revoked").unwrap();
    let crl = s.pki.ca.crl(&[&leaf]).unwrap();
    let addr = our_server(&rt, builder(&s.pki, &s.server).crls(crl));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let run = s.doctor_as(
        &format!("https://localhost:{}/", addr.port()),
        &cert,
        &key,
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.verdict()
            .starts_with("BROKEN: the server has our certificate (serial ")
            && run.verdict().contains("on its revocation list"),
        "{}",
        run.stdout
    );
}

#[test]
fn no_common_tls_version_says_which_the_server_speaks() {
    let s = setup("versions");
    let rt = runtime();
    let addr = raw_server(&rt, &s.server, Some(&s.pki.ca), &[&rustls::version::TLS12]);
    let run = s.doctor(
        &format!("https://localhost:{}/", addr.port()),
        &["--tls13-only"],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server speaks only TLS 1.2, and we offer no version it accepts. Fix: enable TLS 1.3 on the server"
        ),
        "{}",
        run.stdout
    );
    // Without --tls13-only the same server works over TLS 1.2.
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("TLS handshake: TLS 1.2"),
        "{}",
        run.stdout
    );
}

#[test]
fn our_own_material_is_checked_before_connecting() {
    let s = setup("own");
    let port = closed_port();
    let url = format!("https://localhost:{port}/");
    // A key from another certificate.
    let (_, other_key, _) = s.pki.write(&s.dir, "other", &LeafSpec::client("other"));
    let run = s.doctor_as(&url, &s.client_cert, &other_key, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict().starts_with("BROKEN: the private key in "),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("TCP connect"),
        "stops before connecting"
    );

    // Expired.
    let (cert, key, _) = s
        .pki
        .write(&s.dir, "old", &LeafSpec::client("old").expired());
    let run = s.doctor_as(&url, &cert, &key, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict()
            .starts_with("BROKEN: our certificate CN=old, O=mtls development expired "),
        "{}",
        run.stdout
    );

    // A server-only certificate presented as a client.
    let (cert, key, _) = s.pki.write(&s.dir, "srv", &LeafSpec::server("localhost"));
    let run = s.doctor_as(&url, &cert, &key, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.verdict()
            .starts_with("BROKEN: our certificate CN=localhost, O=mtls development lacks the clientAuth extended key usage"),
        "{}",
        run.stdout
    );

    // A chain in the wrong order: our certificate first (so the key matches), then the root
    // before the intermediate that issued us.
    let inter = s.pki.ca.intermediate("Issuing CA").unwrap();
    let leaf = inter.issue(&LeafSpec::client("chained")).unwrap();
    let blocks: Vec<&str> = leaf
        .cert_pem()
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert_eq!(blocks.len(), 2, "leaf and intermediate");
    let reversed = s.dir.path("reversed.pem");
    std::fs::write(
        &reversed,
        [blocks[0], s.pki.ca.cert_pem(), blocks[1]].concat(),
    )
    .unwrap();
    let key = s.dir.path("reversed.key");
    std::fs::write(&key, leaf.key_pem()).unwrap();
    let run = s.doctor_as(&url, &reversed, &key, &[]);
    assert_eq!(run.code, 1);
    assert!(run.verdict().starts_with("BROKEN: "), "{}", run.stdout);
    // Named as a chain problem, with the right order, before any connection is tried.
    assert!(
        run.stdout.contains("is not issued by the next one")
            && run
                .stdout
                .contains("put the certificates in the file in this order: CN=chained"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("TCP connect"), "{}", run.stdout);
}

#[test]
fn bad_arguments_exit_2() {
    let s = setup("args");
    // No trust.
    let run = mtls(&[
        "doctor",
        "https://localhost:1/",
        "--cert",
        &s.client_cert,
        "--key",
        &s.client_key,
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--ca FILE or --truststore FILE"),
        "{}",
        run.stderr
    );
    // Not https.
    let run = s.doctor("http://localhost:1/", &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("needs an https:// URL"));
    // A pattern that is not one.
    let run = s.doctor("https://localhost:1/", &["--expect-server", "spiffe://"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // clap's own refusals.
    assert_eq!(mtls(&["doctor"]).code, 2);
    assert_eq!(mtls(&["doctor", "https://x/", "--cert", "a"]).code, 2);
}

#[test]
fn a_configuration_file_profile_works_like_the_flags() {
    let s = setup("config");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let config = s.config_file();
    let run = mtls(&[
        "doctor",
        &format!("https://localhost:{}/", addr.port()),
        "--config",
        &config,
        "--client",
        "inventory",
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = mtls(&[
        "doctor",
        &format!("https://localhost:{}/", addr.port()),
        "--config",
        &config,
        "--client",
        "nobody",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.verdict().contains("nobody"), "{}", run.stdout);
}

#[test]
fn an_environment_override_that_empties_the_crl_is_refused_unless_it_says_none() {
    let s = setup("config-env");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let config = s.config_file();
    let url = format!("https://localhost:{}/", addr.port());
    let args = ["doctor", &url, "--config", &config, "--client", "inventory"];
    let run = mtls_with_env(&args, &[("MTLS_BUNDLE_ORDERS_CRL", "")]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("environment variable `MTLS_BUNDLE_ORDERS_CRL` is empty"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("set it to `none`"), "{}", run.stdout);
    let run = mtls_with_env(&args, &[("MTLS_BUNDLE_ORDERS_CRL", "none")]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn a_chain_through_an_intermediate_matches_the_servers_root_hint() {
    let s = setup("intermediate");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let issuing = s.pki.ca.intermediate("Issuing CA").unwrap();
    let leaf = issuing
        .issue(&LeafSpec::client("chained").spiffe_id("spiffe://example.org/chained"))
        .unwrap();
    let (cert, key) = leaf.write_pem(&s.dir.0, "chained").unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let url = format!("https://localhost:{}/", addr.port());
    let run = s.doctor_as(&url, &cert, &key, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("✓ server asked for our certificate; its CA hints: CN=Team CA; our issuer CN=Issuing CA is among them"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_server_certificate_on_our_revocation_list_is_named() {
    let s = setup("crl");
    let rt = runtime();
    let crl = s.pki.ca.crl_pem(&[&serial_of(&s.server)]).unwrap();
    let crl_file = s.dir.path("team.crl");
    std::fs::write(&crl_file, crl).unwrap();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let url = format!("https://localhost:{}/", addr.port());
    let run = s.doctor(&url, &["--crl", &crl_file]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.verdict().starts_with(
            "BROKEN: the server's certificate (CN=localhost, O=mtls development, serial "
        ) && run
            .verdict()
            .contains("is on our revocation list. Fix: the server needs a new certificate."),
        "{}",
        run.stdout
    );
    // Without the CRL the same server is fine.
    assert_eq!(s.doctor(&url, &[]).code, 0);
}

/// The raw serial number of an issued certificate.
fn serial_of(cert: &mtls::dev::DevCert) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
    parsed.raw_serial().to_vec()
}

#[test]
fn a_certificate_due_for_renewal_is_a_warning_that_still_connects() {
    let s = setup("renew");
    let rt = runtime();
    let addr = our_server(&rt, builder(&s.pki, &s.server));
    let now = SystemTime::now();
    // Nine of its ten days are gone: past two thirds of its life.
    let (cert, key, _) = s.pki.write(
        &s.dir,
        "ageing",
        &LeafSpec::client("ageing").validity(
            now - Duration::from_secs(9 * 86_400),
            now + Duration::from_secs(86_400 + 3600),
        ),
    );
    let run = s.doctor_as(
        &format!("https://localhost:{}/", addr.port()),
        &cert,
        &key,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("⚠ our certificate is valid until")
            && run.stdout.contains("cause: renewal is due: 24 h left"),
        "{}",
        run.stdout
    );
}

/// A client-certificate verifier that admits Ed25519 signatures only, so a client whose key
/// is ECDSA (as the development CA issues) has no certificate it may send.
#[derive(Debug)]
struct Ed25519Only(std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>);

impl rustls::server::danger::ClientCertVerifier for Ed25519Only {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &mtls::CertificateDer<'_>,
        intermediates: &[mtls::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &mtls::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &mtls::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

/// A TLS 1.3 server that requires a client certificate from our CA but accepts no signature
/// our ECDSA key can make: the client sends no certificate, and the server refuses that.
fn server_that_gets_no_certificate(
    rt: &tokio::runtime::Runtime,
    s: &Setup,
) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let provider = mtls::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in s.pki.ca.trust().unwrap().certificates() {
        roots.add(c.clone()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let chain = mtls::CertificateDer::pem_slice_iter(s.server.cert_pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = mtls::PrivateKeyDer::from_pem_slice(s.server.key_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(Ed25519Only(verifier)))
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = vec![0; 4096];
                        if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
                        }
                    }
                });
            }
        });
        addr
    })
}

#[test]
fn a_server_whose_signatures_our_key_cannot_make_receives_no_certificate_and_says_so() {
    let s = setup("nocert");
    let rt = runtime();
    let addr = server_that_gets_no_certificate(&rt, &s);
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("✗ server rejected our certificate (alert certificate_required)"),
        "{}",
        run.stdout
    );
    assert!(
        run.verdict()
            .starts_with("BROKEN: the server requires a client certificate and received none."),
        "{}",
        run.stdout
    );
}

/// A server that answers every hello with a fatal alert `description` (one TLS record).
fn server_answering_with_alert(
    rt: &tokio::runtime::Runtime,
    description: u8,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut hello = vec![0; 4096];
                    if tcp.read(&mut hello).await.unwrap_or(0) > 0 {
                        // Content type alert, TLS 1.2 record, two bytes: fatal, `description`.
                        let _ = tcp
                            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description])
                            .await;
                    }
                });
            }
        });
        addr
    })
}

#[test]
fn an_ssl3_no_certificate_alert_is_named_as_the_server_receiving_none() {
    let s = setup("ssl3nocert");
    let rt = runtime();
    // 41: `no_certificate`, SSL 3's word for a client that sent no certificate.
    let addr = server_answering_with_alert(&rt, 41);
    let run = s.doctor_local(addr, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "✗ TLS handshake: the server rejected our certificate (alert no_certificate)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.verdict()
            .starts_with("BROKEN: the server requires a client certificate and received none."),
        "{}",
        run.stdout
    );
}
