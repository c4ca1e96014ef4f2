//! Side-by-side throughput: our `Server` against a hand-written tokio-rustls + hyper-util
//! server with the same rustls configuration and the same handler.
//!
//! `cargo bench --bench compare [-- --quick]`. The bench re-runs itself as each server in a
//! child process (two worker threads), and drives it from this process with plain
//! tokio-rustls clients (none of our client code), alternating mtls, raw, mtls, raw... for
//! several rounds and reporting the median of each. Both share the machine with the load
//! generator, equally. Loopback only; each measurement lasts a fixed time.
//!
//! Metrics: `handshakes` (new TCP connection, full mTLS handshake, one request, close),
//! `requests` (HTTP/1.1 keep-alive requests over a fixed set of connections) and
//! `kib_per_conn` (the server's resident memory per idle mTLS connection, from `VmRSS`
//! before and after opening 1,000 of them; Linux only). Each prints as
//! `RESULT <metric> mtls=<v> raw=<v> ratio_raw=<mtls/raw>`.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONCURRENCY: usize = 32;
const IDLE_CONNECTIONS: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve-mtls") => return serve_mtls(&args[2]),
        Some("--serve-raw") => return serve_raw(&args[2]),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, seconds) = if quick { (1, 2) } else { (5, 5) };
    let dir = std::env::temp_dir().join(format!("mtls-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = make_certs(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("handshakes", vec![], vec![]),
        ("requests", vec![], vec![]),
        ("kib_per_conn", vec![], vec![]),
    ];
    for round in 0..rounds {
        for (index, mode) in ["--serve-mtls", "--serve-raw"].into_iter().enumerate() {
            let mut server = Server::start(mode, &dir);
            let pid = server.child.id();
            let rates = runtime.block_on(async {
                let full = certs.client_config(false);
                let handshakes = handshakes(server.addr, full, seconds).await;
                let keep = certs.client_config(true);
                let requests = keep_alive(server.addr, Arc::clone(&keep), seconds).await;
                let memory = idle_memory(server.addr, pid, keep).await;
                [handshakes, requests, memory]
            });
            for (metric, rate) in results.iter_mut().zip(rates) {
                if index == 0 {
                    metric.1.push(rate)
                } else {
                    metric.2.push(rate)
                }
            }
            eprintln!(
                "round {} {}: {:.0} handshakes/s, {:.0} requests/s, {:.1} KiB per idle connection",
                round + 1,
                &mode[8..],
                rates[0],
                rates[1],
                rates[2]
            );
            server.stop();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    for (metric, mtls, raw) in results {
        let (m, r) = (median(mtls), median(raw));
        println!(
            "RESULT {metric} mtls={m:.1} raw={r:.1} ratio_raw={:.3}",
            m / r
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(mode: &str, dir: &std::path::Path) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(mode)
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().expect("the server prints its address");
        Server { child, addr }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// New connection, full handshake, one request, close; as many as possible for `seconds`.
async fn handshakes(addr: SocketAddr, config: Arc<rustls::ClientConfig>, seconds: u64) -> f64 {
    run(seconds, move |count, stop| {
        let config = Arc::clone(&config);
        async move {
            while !stop.load(Ordering::Relaxed) {
                let mut tls = connect(addr, &config).await;
                tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = Vec::with_capacity(256);
                let _ = tls.read_to_end(&mut out).await;
                assert!(out.starts_with(b"HTTP/1.1 200"));
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await
}

/// Keep-alive HTTP/1.1 requests, one at a time per connection.
async fn keep_alive(addr: SocketAddr, config: Arc<rustls::ClientConfig>, seconds: u64) -> f64 {
    run(seconds, move |count, stop| {
        let config = Arc::clone(&config);
        async move {
            let mut tls = connect(addr, &config).await;
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
                    .await
                    .unwrap();
                read_response(&mut tls, &mut buf).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await
}

/// Resident memory the server adds per idle connection: `IDLE_CONNECTIONS` connections, each
/// with a completed handshake and one request, then left open.
async fn idle_memory(addr: SocketAddr, pid: u32, config: Arc<rustls::ClientConfig>) -> f64 {
    // Settle after the load runs, so their buffers are not counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut open = Vec::with_capacity(IDLE_CONNECTIONS);
    let mut buf = vec![0u8; 4096];
    for _ in 0..IDLE_CONNECTIONS {
        let mut tls = connect(addr, &config).await;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut tls, &mut buf).await;
        open.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    drop(open);
    after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Reads one response with a Content-Length body.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(io: &mut S, buf: &mut [u8]) {
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "server closed a keep-alive connection");
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end])
            .unwrap()
            .to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if filled >= end + 4 + length {
            return;
        }
    }
}

async fn run<F, Fut>(seconds: u64, worker: F) -> f64
where
    F: Fn(Arc<AtomicU64>, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| tokio::spawn(worker(Arc::clone(&count), Arc::clone(&stop))))
        .collect();
    // Warm up for a moment, then measure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = (Instant::now(), count.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = count.load(Ordering::Relaxed) - start.1;
    let elapsed = start.0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    done as f64 / elapsed
}

async fn connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// The handler both servers run: a small body naming the caller.
fn hello(name: &str) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(format!("hello {name}"))))
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn announce(addr: SocketAddr) {
    println!("{addr}");
    std::io::stdout().flush().unwrap();
}

fn serve_mtls(dir: &str) {
    let dir = std::path::Path::new(dir);
    server_runtime().block_on(async {
        let server = mtls::Server::builder()
            .identity_files(dir.join("server.pem"), dir.join("server.key"))
            .trust_file(dir.join("ca.pem"))
            .authorize(mtls::Authorizer::any_verified())
            .reload_interval(None)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        announce(server.local_addr());
        let _ = server
            .serve(service_fn(|req: Request<Incoming>| async move {
                let peer = req.extensions().get::<mtls::PeerIdentity>();
                let name = peer.map(|p| p.to_string()).unwrap_or_default();
                Ok::<_, Infallible>(hello(&name))
            }))
            .await;
    });
}

/// The baseline: what a careful user writes by hand with tokio-rustls and hyper-util, with the
/// same rustls settings (provider, versions, client verifier, ALPN) and handler.
fn serve_raw(dir: &str) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let dir = std::path::Path::new(dir);
    let pem = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let identity = mtls::Identity::from_pem(&pem("server.pem"), &pem("server.key")).unwrap();
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem("server.key")).unwrap()
    };
    let trust = mtls::TrustBundle::from_pem(&pem("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.certificates()[0].clone()).unwrap();
    let provider = mtls::crypto_provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain().to_vec(), key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    server_runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let builder = Arc::clone(&builder);
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                // The caller's name, from the leaf on the connection.
                let name = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| {
                        use x509_parser::prelude::FromDer;
                        x509_parser::certificate::X509Certificate::from_der(leaf)
                            .ok()
                            .map(|(_, c)| c.subject().to_string())
                    })
                    .unwrap_or_default();
                let name: Arc<str> = name.into();
                let service = service_fn(move |_req: Request<Incoming>| {
                    let name = Arc::clone(&name);
                    async move { Ok::<_, Infallible>(hello(&name)) }
                });
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
}

struct Certs {
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

impl Certs {
    fn client_config(&self, resumption: bool) -> Arc<rustls::ClientConfig> {
        let trust = mtls::TrustBundle::from_pem(self.ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trust.certificates()[0].clone()).unwrap();
        let id = mtls::Identity::from_pem(self.client_cert.as_bytes(), self.client_key.as_bytes())
            .unwrap();
        let key = {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::PrivateKeyDer::from_pem_slice(self.client_key.as_bytes()).unwrap()
        };
        let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(id.chain().to_vec(), key)
            .unwrap();
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// ECDSA P-256: a CA, a server and a client; the server's files go to `dir`.
fn make_certs(dir: &std::path::Path) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = |name: &str, eku| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names.push(rcgen::SanType::URI(
            format!("spiffe://example.org/{name}").try_into().unwrap(),
        ));
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
    Certs {
        ca_pem,
        client_cert,
        client_key,
    }
}
