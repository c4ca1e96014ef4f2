//! Helpers for the `mtls` command's tests: certificates on disk, servers on 127.0.0.1, and
//! the command itself run as a child process.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::dev::{DevCa, DevCert, LeafSpec};
use mtls::{Authorizer, CertificateDer, PrivateKeyDer, Server, ServerBuilder};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A directory removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "mtls-cli-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the command printed, and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn verdict(&self) -> &str {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("verdict: "))
            .unwrap_or("")
    }
}

/// How long one run of the command may take before the test kills it and fails.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `mtls ARGS...`, bounded in time: a run that outlives [`RUN_LIMIT`] is killed and
/// fails the test.
pub fn mtls(args: &[&str]) -> Run {
    mtls_with_env(args, &[])
}

/// As [`mtls`], with the variables `env` set in the child's environment.
pub fn mtls_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtls"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the mtls binary runs");
    // Read both pipes beside the wait, so that a full pipe cannot stall the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mtls") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mtls {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// Runs `command` (an external tool: openssl, curl), which must start and succeed; a failure
/// names the command and shows what it printed.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("FAIL: {command:?} could not start ({e})"));
    assert!(
        out.status.success(),
        "{command:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CA with its certificate written to DIR/NAME-ca.pem.
pub struct Pki {
    pub ca: DevCa,
    pub ca_file: String,
}

impl Pki {
    pub fn new(dir: &Dir, name: &str) -> Pki {
        let ca = DevCa::new(name).unwrap();
        let ca_file = dir.path(&format!("{}-ca.pem", name.replace(' ', "-")));
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        Pki { ca, ca_file }
    }

    /// Issues `spec` and writes DIR/FILE.pem and DIR/FILE.key: returns (cert, key, the cert).
    pub fn write(&self, dir: &Dir, file: &str, spec: &LeafSpec) -> (String, String, DevCert) {
        let cert = self.ca.issue(spec).unwrap();
        let (c, k) = cert.write_pem(&dir.0, file).unwrap();
        (c.display().to_string(), k.display().to_string(), cert)
    }
}

/// A runtime that lives as long as the test, serving in the background.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Our server on 127.0.0.1: `/` answers 200 naming the peer, `/admin` answers 403.
pub fn our_server(rt: &tokio::runtime::Runtime, builder: ServerBuilder) -> SocketAddr {
    rt.block_on(async {
        let server = builder.bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr();
        tokio::spawn(
            server.serve(service_fn(|req: Request<Incoming>| async move {
                let peer = req.extensions().get::<mtls::PeerIdentity>().cloned();
                let mut resp = Response::new(Full::new(Bytes::from(format!(
                    "hello {}",
                    peer.map(|p| p.to_string()).unwrap_or_default()
                ))));
                if req.uri().path() == "/admin" {
                    *resp.status_mut() = hyper::StatusCode::FORBIDDEN;
                    *resp.body_mut() = Full::new(Bytes::from("forbidden: admins only"));
                }
                Ok::<_, Infallible>(resp)
            })),
        );
        addr
    })
}

/// A server builder on `pki` with `cert` as its identity, any verified client allowed.
pub fn builder(pki: &Pki, cert: &DevCert) -> ServerBuilder {
    Server::builder()
        .identity(cert.identity().unwrap())
        .trust(pki.ca.trust().unwrap())
        .authorize(Authorizer::any_verified())
}

/// A hand-written rustls server (not ours), for setups our server refuses to make: an expired
/// certificate, no client authentication, TLS 1.2 only. Answers HTTP/1.1 200 to anything.
pub fn raw_server(
    rt: &tokio::runtime::Runtime,
    cert: &DevCert,
    client_ca: Option<&DevCa>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> SocketAddr {
    let provider = mtls::crypto_provider();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in ca.trust().unwrap().certificates() {
                roots.add(c.clone()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0; 4096];
                    if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    })
}

/// A plain-HTTP server (no TLS) on 127.0.0.1.
pub fn plain_http_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
                    let _ = tcp
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        addr
    })
}

/// A port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The arguments for our identity and trust.
pub fn material<'a>(cert: &'a str, key: &'a str, ca: &'a str) -> Vec<&'a str> {
    vec!["--cert", cert, "--key", key, "--ca", ca]
}

pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// Our server as [`our_server`] serves it, with its counters and the number of requests its
/// handler answered, so that a refusal can be shown to be the server's, for its reason, before
/// any handler ran.
pub struct Counted {
    pub addr: SocketAddr,
    pub stats: Arc<mtls::server::ServerStats>,
    pub handled: Arc<std::sync::atomic::AtomicUsize>,
}

pub fn our_server_counted(rt: &tokio::runtime::Runtime, builder: ServerBuilder) -> Counted {
    use std::sync::atomic::{AtomicUsize, Ordering};
    rt.block_on(async {
        let server = builder.bind("127.0.0.1:0").await.unwrap();
        let (addr, stats) = (server.local_addr(), server.stats());
        let handled = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&handled);
        tokio::spawn(server.serve(service_fn(move |req: Request<Incoming>| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let peer = req.extensions().get::<mtls::PeerIdentity>().cloned();
                let body = format!("hello {}", peer.map(|p| p.to_string()).unwrap_or_default());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        })));
        Counted {
            addr,
            stats,
            handled,
        }
    })
}
