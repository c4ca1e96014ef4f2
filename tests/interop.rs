//! Real clients and servers nobody here wrote, against our server and client: curl,
//! `openssl s_client` / `s_server -Verify`, Python `ssl` and Java `HttpClient` with PKCS#12
//! stores, each in good and bad variants (no certificate, foreign CA, expired, wrong EKU,
//! TLS 1.1), plus a Kubernetes-style certificate swap under load. The checks live in
//! `tests/interop/run.sh`; this test runs it.

use std::process::Command;

#[test]
#[ignore = "needs curl, openssl, python3, java and keytool (.ci/run installs them)"]
fn real_clients_and_servers_interoperate() {
    let output = Command::new("bash")
        .arg("tests/interop/run.sh")
        .env("MTLS_INTEROP_NO_BUILD", "1")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "interop failed");
    assert!(stdout.contains("interop: all passed"));
}
