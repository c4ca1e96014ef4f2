//! A server that records the identity each request's peer presented, and clients for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::{Client, ClientBuilder, PeerIdentity, Server, ServerBuilder, server::ServerStats};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Ca, Issued};

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
    server_presenting(ca, &ca.server())
}

/// A server on `ca` presenting `leaf`, client auth required, any verified client allowed.
pub fn server_presenting(ca: &Ca, leaf: &Issued) -> ServerBuilder {
    Server::builder()
        .identity(leaf.identity())
        .trust(ca.trust())
        .authorize(mtls::Authorizer::any_verified())
}

/// A client that opens a new connection for every request (a resumed one from the second on).
pub fn unpooled_client(trust: &Ca, leaf: &Issued) -> Client {
    unpooled_builder(trust, leaf).build().unwrap()
}

/// The builder of [`unpooled_client`], for tests that add to it.
pub fn unpooled_builder(trust: &Ca, leaf: &Issued) -> ClientBuilder {
    Client::builder()
        .identity(leaf.identity())
        .trust(trust.trust())
        .pool_max_idle_per_host(0)
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
