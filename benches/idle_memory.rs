//! Resident memory per idle mTLS connection on our server.
//!
//! `cargo bench --bench idle_memory [-- CONNECTIONS]` (default 1,000). The bench re-runs
//! itself as a child process that serves with `mtls::Server`; the parent opens the connections
//! over 127.0.0.1, completes each mTLS handshake and one request, leaves them idle, and reads the
//! child's resident memory (`VmRSS`) before and after. The figure is (after - before) / count.
//! Linux only (it reads /proc).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve(&args[2]);
        return;
    }
    let count: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000);
    let dir = std::env::temp_dir().join(format!("mtls-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_pem, client_cert, client_key) = make_certs(&dir);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("server prints its address");
    let pid = child.id();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (before, after) = runtime.block_on(async {
        let config = client_config(&ca_pem, &client_cert, &client_key);
        // Warm up: one connection, so lazily built state is not counted per connection.
        let mut warm = connect(addr, &config).await;
        let _ = warm.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(pid);
        let mut open = Vec::with_capacity(count);
        for _ in 0..count {
            open.push(connect(addr, &config).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        drop(open);
        (before, after)
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let per = (after.saturating_sub(before)) as f64 / count as f64;
    println!(
        "idle mTLS connections: {count}; server RSS {before} KiB -> {after} KiB; {per:.1} KiB per connection"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn connect(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tls
}

fn client_config(ca_pem: &str, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let trust = mtls::TrustBundle::from_pem(ca_pem.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.certificates()[0].clone()).unwrap();
    let id = mtls::Identity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(id.chain().to_vec(), key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn serve(dir: &str) {
    let dir = std::path::Path::new(dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = mtls::Server::builder()
            .identity_files(dir.join("server.pem"), dir.join("server.key"))
            .trust_file(dir.join("ca.pem"))
            .authorize(mtls::Authorizer::any_verified())
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        println!("{}", server.local_addr());
        std::io::stdout().flush().unwrap();
        let _ = server
            .serve(service_fn(|req: Request<Incoming>| async move {
                let peer = req.extensions().get::<mtls::PeerIdentity>().cloned();
                let body = peer.map(|p| p.to_string()).unwrap_or_default();
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
            }))
            .await;
    });
}

/// ECDSA P-256: a CA, a server and a client, written to `dir`.
fn make_certs(dir: &std::path::Path) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = |name: &str, eku| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.extended_key_usages = vec![eku];
        (
            p.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("bench-client", ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert).unwrap();
    std::fs::write(dir.join("server.key"), server_key).unwrap();
    (ca_pem, client_cert, client_key)
}
