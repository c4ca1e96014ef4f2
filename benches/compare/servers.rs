//! The contenders: our `Server` (serving with the identity in each request's extensions, and,
//! for the keep-alive metrics, with a service made per connection) and the hand-written
//! baseline, each run as a child process of the bench binary, and an nginx started by
//! `compare.sh`.

use std::convert::Infallible;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};

/// The handler every contender runs: a small body naming the caller.
fn hello(name: impl fmt::Display) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(format!("hello {name}"))))
}

/// One tokio worker thread per core, as nginx gets one worker process per core.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::cores())
        .enable_all()
        .build()
        .unwrap()
}

/// Prints the bound address for the parent, and exits once the parent closes our stdin (it
/// stopped us, or it died: no server outlives the bench).
fn announce(addr: SocketAddr) {
    println!("{addr}");
    std::io::stdout().flush().unwrap();
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
}

/// Our `Server` on the bench's certificates, any verified client allowed, its address
/// announced.
async fn bind_mtls(dir: &Path) -> mtls::Server {
    let server = mtls::Server::builder()
        .identity_files(dir.join("server.pem"), dir.join("server.key"))
        .trust_file(dir.join("ca.pem"))
        .authorize(mtls::Authorizer::any_verified())
        .reload_interval(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    announce(server.local_addr());
    server
}

/// Our `Server`: the handler reads the `PeerIdentity` the server put in the request.
pub fn serve_mtls(dir: &Path) {
    server_runtime().block_on(async {
        let server = bind_mtls(dir).await;
        let _ = server
            // The response is made when the request arrives and the request is dropped
            // there, as in the baseline's handler: hyper reads ahead while a handler's future
            // is pending, and a request still held then keeps its read buffer shared, so that
            // read allocates a new buffer.
            .serve(service_fn(|req: Request<Incoming>| {
                let response = match req.extensions().get::<mtls::PeerIdentity>() {
                    Some(peer) => hello(peer),
                    None => hello("anonymous"),
                };
                async move { Ok::<_, Infallible>(response) }
            }))
            .await;
    });
}

/// Our `Server` with a service made per connection (`serve_connections`): the handler names
/// the caller the connection's identity gave, as the baseline's does; requests carry no
/// identity extension.
pub fn serve_mtls_per_connection(dir: &Path) {
    server_runtime().block_on(async {
        let server = bind_mtls(dir).await;
        let _ = server
            .serve_connections(|conn: &mtls::server::ConnectionInfo| {
                let name: Arc<str> = match conn.peer_identity() {
                    Some(peer) => peer.to_string().into(),
                    None => "anonymous".into(),
                };
                service_fn(move |_req: Request<Incoming>| {
                    let response = hello(&*name);
                    async move { Ok::<_, Infallible>(response) }
                })
            })
            .await;
    });
}

/// The baseline: what a careful user writes by hand with tokio-rustls and hyper-util, with the
/// same rustls settings as our server (provider, TLS 1.3 and 1.2, a webpki client verifier
/// over the same CA, ALPN h2 and http/1.1, the server's suite order, no early data, rustls'
/// default session cache) and
/// the same handler, naming the caller (SPIFFE ID, else subject) from the leaf on the
/// connection, parsed once per connection.
pub fn serve_raw(dir: &Path) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
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
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // As our server: the suite by the server's order (the provider's: AES-128-GCM first).
    config.ignore_client_order = true;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    server_runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let builder = Arc::clone(&builder);
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let name: Arc<str> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| caller_name(leaf))
                    .unwrap_or_else(|| "anonymous".to_owned())
                    .into();
                let service = service_fn(move |_req: Request<Incoming>| {
                    let name = Arc::clone(&name);
                    async move { Ok::<_, Infallible>(hello(&*name)) }
                });
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
}

/// The leaf's SPIFFE ID if it has one, else its subject.
fn caller_name(leaf: &[u8]) -> String {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return String::new();
    };
    let spiffe = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                _ => None,
            })
        });
    spiffe.unwrap_or_else(|| cert.subject().to_string())
}

/// A contender while it runs.
pub enum Running {
    /// Our server or the baseline, a child process of this bench.
    Child { child: Child, addr: SocketAddr },
    /// nginx, started and stopped by `compare.sh`: its master process and address.
    Nginx { master: u32, addr: SocketAddr },
}

impl Running {
    /// Starts `--serve-mtls` or `--serve-raw` over the certificates in `dir`.
    pub fn child(mode: &str, dir: &Path) -> Running {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(mode)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().expect("the server prints its address");
        Running::Child { child, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Running::Child { addr, .. } | Running::Nginx { addr, .. } => *addr,
        }
    }

    /// Gives nginx fresh worker processes (a configuration reload: new workers start, the old
    /// ones leave once their connections are closed) and waits, up to 10 s, until only new
    /// ones remain; called at the start of each round. Without it, the workers of the second
    /// round onwards hold the memory of the first round's 1,000 idle connections (freed, but
    /// still resident in their heaps), so new idle connections add next to nothing to their
    /// resident size. The Rust servers are new processes every round already.
    pub fn fresh(&self) {
        let Running::Nginx { master, .. } = self else {
            return;
        };
        let old = children_of(*master);
        let signalled = std::process::Command::new("kill")
            .args(["-HUP", &master.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !signalled {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let now = children_of(*master);
            if !now.is_empty() && now.iter().all(|pid| !old.contains(pid)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The processes whose memory counts: the server process, or nginx's master and workers.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Running::Child { child, .. } => vec![child.id()],
            Running::Nginx { master, .. } => {
                let mut pids = vec![*master];
                pids.extend(children_of(*master));
                pids
            }
        }
    }

    pub fn stop(self) {
        if let Running::Child { mut child, .. } = self {
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Processes whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The parent is the second field after the command name, which may hold spaces.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// The sum of the resident memory of `pids`, in KiB (Linux).
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
