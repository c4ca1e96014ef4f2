//! Test fixtures: a throwaway CA that issues certificates in memory, a server that records the
//! identity it saw, and raw TLS clients for the cases our own `Client` refuses to produce.
#![allow(dead_code)]

pub mod refusal;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::dev::{DevCa, LeafSpec, Usage};
use mtls::{Client, Identity, PeerIdentity, Server, ServerBuilder, ServerStats, TrustBundle};
use rcgen::ExtendedKeyUsagePurpose;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A CA (root or intermediate) that issues certificates: the crate's own `DevCa`, with the
/// shorthands these tests use.
pub struct Ca {
    inner: DevCa,
    /// This CA's certificate (for a stand-in, the certificate it stands in for).
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let inner = DevCa::new(name).unwrap();
        Ca {
            pem: inner.cert_pem().to_owned(),
            inner,
        }
    }

    pub fn intermediate(&self, name: &str) -> Ca {
        let inner = self.inner.intermediate(name).unwrap();
        Ca {
            pem: inner.cert_pem().to_owned(),
            inner,
        }
    }

    /// A stand-in that only knows the CA's certificate, for building trust in another task.
    pub fn from_pem_for_trust(pem: &str) -> Ca {
        Ca {
            inner: DevCa::new("unused").unwrap(),
            pem: pem.to_owned(),
        }
    }

    pub fn trust(&self) -> TrustBundle {
        TrustBundle::from_pem(self.pem.as_bytes()).unwrap()
    }

    /// Issues a leaf from `spec`.
    pub fn issue(&self, spec: Leaf) -> Issued {
        let usage = match spec.ekus.as_slice() {
            [ExtendedKeyUsagePurpose::ServerAuth] => Usage::Server,
            [ExtendedKeyUsagePurpose::ClientAuth] => Usage::Client,
            _ => Usage::Both,
        };
        let now = std::time::SystemTime::now();
        let at = |d: time::Duration| {
            let secs = d.whole_seconds();
            if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        let mut leaf = LeafSpec::new(spec.cn)
            .organization("Example")
            .usage(usage)
            .validity(at(spec.not_before), at(spec.not_after));
        for dns in &spec.dns {
            leaf = leaf.dns(dns);
        }
        for ip in &spec.ips {
            leaf = leaf.ip(*ip);
        }
        for uri in &spec.uris {
            leaf = leaf.uri(uri);
        }
        for email in &spec.emails {
            leaf = leaf.email(email);
        }
        if let Some(serial) = spec.serial {
            leaf = leaf.serial(serial);
        }
        let cert = self.inner.issue(&leaf).unwrap();
        Issued {
            cert_pem: cert.cert_pem().to_owned(),
            key_pem: cert.key_pem().to_owned(),
            der: cert.der().to_vec(),
        }
    }

    /// A CRL signed by this CA revoking the given serials (PEM).
    pub fn crl(&self, revoked: &[&[u8]]) -> String {
        self.inner.crl_pem(revoked).unwrap()
    }

    /// As [`Ca::crl`], due for republishing at `next_update` (in the past, for a stale CRL).
    pub fn crl_until(&self, revoked: &[&[u8]], next_update: std::time::SystemTime) -> String {
        self.inner.crl_pem_until(revoked, next_update).unwrap()
    }

    /// A client certificate (clientAuth EKU).
    pub fn client(&self, cn: &'static str) -> Issued {
        self.issue(Leaf::client(cn))
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Issued {
        self.issue(Leaf::server())
    }
}

/// What to put in a leaf certificate.
#[derive(Clone)]
pub struct Leaf {
    pub cn: &'static str,
    pub dns: Vec<&'static str>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<&'static str>,
    pub emails: Vec<&'static str>,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    pub serial: Option<&'static [u8]>,
    pub not_before: time::Duration,
    pub not_after: time::Duration,
}

impl Leaf {
    pub fn client(cn: &'static str) -> Leaf {
        Leaf {
            cn,
            dns: vec![],
            ips: vec![],
            uris: vec![],
            emails: vec![],
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            serial: None,
            not_before: time::Duration::hours(-1),
            not_after: time::Duration::hours(24),
        }
    }

    pub fn server() -> Leaf {
        Leaf {
            dns: vec!["localhost"],
            ips: vec!["127.0.0.1".parse().unwrap()],
            ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
            ..Leaf::client("server")
        }
    }
}

/// An issued leaf: PEM chain (leaf first), PEM key, leaf DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Issued {
    pub fn identity(&self) -> Identity {
        Identity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }
}

/// A running test server.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: Arc<ServerStats>,
    /// The identity of the last request's peer, as the handler saw it.
    pub seen: Arc<Mutex<Vec<Option<PeerIdentity>>>>,
    pub handle: mtls::ServerHandle,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), mtls::Error>>,
}

impl Running {
    pub fn url(&self, path: &str) -> hyper::Uri {
        format!("https://localhost:{}{path}", self.addr.port())
            .parse()
            .unwrap()
    }

    pub fn last_peer(&self) -> Option<PeerIdentity> {
        self.seen.lock().unwrap().last().cloned().flatten()
    }

    /// Starts graceful shutdown and waits for the server to stop.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("server stops within the deadline")
            .unwrap()
            .unwrap();
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `builder` on 127.0.0.1:0 and serves a handler that records the peer identity and
/// answers with it. `/slow` sleeps 500 ms first.
pub async fn serve(builder: ServerBuilder) -> Running {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    start(server)
}

pub fn start(server: Server) -> Running {
    let addr = server.local_addr();
    let stats = server.stats();
    let handle = server.handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let service = service_fn(move |req: Request<Incoming>| {
        let record = Arc::clone(&record);
        async move {
            let peer = req.extensions().get::<PeerIdentity>().cloned();
            record.lock().unwrap().push(peer.clone());
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let body = match peer {
                Some(p) => format!("hello {p} over {:?}", req.version()),
                None => "hello anonymous".to_owned(),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    });
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server.serve_with_shutdown(service, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stats,
        seen,
        handle,
        shutdown: Some(tx),
        task,
    }
}

/// A server on `ca` with a localhost certificate, client auth required, any verified client
/// allowed.
pub fn server_builder(ca: &Ca) -> ServerBuilder {
    Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(mtls::Authorizer::any_verified())
}

/// A client that opens a new connection for every request (a resumed one from the second on).
pub fn unpooled_client(trust: &Ca, leaf: &Issued) -> Client {
    Client::builder()
        .identity(leaf.identity())
        .trust(trust.trust())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub fn client(trust: &Ca, leaf: &Issued) -> Client {
    Client::builder()
        .identity(leaf.identity())
        .trust(trust.trust())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub async fn body_string(resp: Response<Incoming>) -> String {
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A plain tokio-rustls client config: trusts `ca`, presents `leaf` if given.
pub fn raw_config(
    ca: &Ca,
    leaf: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in mtls::TrustBundle::from_pem(ca.pem.as_bytes())
        .unwrap()
        .certificates()
    {
        roots.add(cert.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match leaf {
        Some(leaf) => {
            let id = leaf.identity();
            let key = rustls_pki_types_key(&leaf.key_pem);
            builder
                .with_client_auth_cert(id.chain().to_vec(), key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn rustls_pki_types_key(pem: &str) -> mtls::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    mtls::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Connects to `addr` over TCP and completes a handshake with a raw config, naming the
/// server `localhost`.
pub async fn raw_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    raw_handshake(tcp, config).await
}

/// Completes a handshake with a raw config on a TCP connection already made (one that may
/// still wait in the server's accept queue), naming the server `localhost`.
pub async fn raw_handshake(
    tcp: tokio::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Connects with a raw config, sends one HTTP/1.1 GET and returns the response text, or the
/// I/O error of the handshake or of the exchange.
pub async fn raw_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    raw_request(
        addr,
        config,
        b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
}

/// As [`raw_get`], sending `request` (which should ask the server to close when done).
pub async fn raw_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = raw_connect(addr, config).await?;
    tls.write_all(request).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Waits until `check` holds (server-side counters are updated by the connection task, a
/// moment after the client sees the result). Returns as soon as it holds; the 30 s budget is
/// for a busy machine, never a claim about its speed.
pub async fn eventually(check: impl Fn() -> bool) -> bool {
    eventually_for(Duration::from_secs(30), check).await
}

/// Waits until `check` holds, polling every 10 ms, for up to `budget` (a budget for a busy
/// machine: the check's state is what the test waits on, never the clock).
pub async fn eventually_for(budget: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// Records every `tracing` event's fields as `name=value;` strings, for asserting on logs.
///
/// The recorder is installed once as the process-wide subscriber: a per-thread subscriber
/// races with tracing's callsite-interest cache when tests run in parallel. Events from every
/// test of the binary land in one list; [`Capture::scoped`] sees only the calling test's.
#[derive(Clone, Default)]
pub struct Capture {
    events: Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>,
    /// For a scoped view: the thread whose events it sees, and the first index it sees.
    scope: Option<(std::thread::ThreadId, usize)>,
}

static EVENTS: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();

impl Capture {
    /// The process-wide recorder, installed on first use: every test's events.
    pub fn global() -> Capture {
        EVENTS
            .get_or_init(|| {
                use tracing_subscriber::layer::SubscriberExt;
                let capture = Capture::default();
                let subscriber = tracing_subscriber::registry().with(capture.clone());
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber in tests");
                capture
            })
            .clone()
    }

    /// The events the calling test emits from now on: those on its own thread, which under
    /// `#[tokio::test]` (a current-thread runtime per test) runs every task the test spawns,
    /// servers' connection tasks included. Another test's events, even identical ones, never
    /// show. (Work moved to a blocking thread is not seen.)
    pub fn scoped() -> Capture {
        let global = Capture::global();
        let from = global.events.lock().unwrap().len();
        Capture {
            scope: Some((std::thread::current().id(), from)),
            ..global
        }
    }

    pub fn events(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        match self.scope {
            None => events.iter().map(|(_, e)| e.clone()).collect(),
            Some((thread, from)) => events[from..]
                .iter()
                .filter(|(t, _)| *t == thread)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?};", f.name(), v));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.push_str(&format!("{}={};", f.name(), v));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.events
            .lock()
            .unwrap()
            .push((std::thread::current().id(), fields.0));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mtls-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
    /// Writes through a temporary file and a rename, as atomic writers do.
    pub fn put(&self, name: &str, contents: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
