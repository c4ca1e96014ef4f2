//! The rustls configs handed to other libraries read the material our server and client run
//! on: a plain `TlsAcceptor` enforces the policy, a plain `TlsConnector` follows rotation, and
//! neither resumes a session, theirs or ours.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use mtls::{Authorizer, Client, HandshakeFailure, Rotate, Server};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A plain tokio-rustls echo server on the handed-out config: each accepted stream gets its
/// peer's subject written back.
async fn plain_acceptor(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let peer = tls.get_ref().1.peer_certificates().map(|c| c.len());
                    let _ = tls
                        .write_all(format!("chain of {peer:?}\n").as_bytes())
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

async fn read_line_from(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    let mut tls = raw_connect(addr, config).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    Ok(out)
}

#[tokio::test]
async fn a_plain_acceptor_on_the_handed_out_config_enforces_the_policy() {
    let ca = Ca::new("root");
    let handle = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders").unwrap())
        .build_rustls_config()
        .unwrap();
    let addr = plain_acceptor(handle.rustls_config()).await;

    let allowed = ca.workload("spiffe://example.org/orders");
    let config = raw_config(&ca, Some(&allowed), &[&rustls::version::TLS13], &[]);
    assert_eq!(
        read_line_from(addr, config).await.unwrap(),
        "chain of Some(1)\n"
    );

    let denied = ca.workload("spiffe://example.org/reporting");
    let config = raw_config(&ca, Some(&denied), &[&rustls::version::TLS13], &[]);
    let err = read_line_from(addr, config).await.unwrap_err();
    assert_eq!(
        alert_of(&err),
        Some(rustls::AlertDescription::AccessDenied),
        "{err:?}"
    );
    // Counted under its name, even though our accept loop never saw it.
    let stats = handle.stats();
    assert!(eventually(|| stats.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await);

    // A policy change reaches the same config object.
    handle
        .set_authorizer(Authorizer::spiffe_id("spiffe://example.org/reporting").unwrap())
        .unwrap();
    let config = raw_config(&ca, Some(&denied), &[&rustls::version::TLS13], &[]);
    assert_eq!(
        read_line_from(addr, config).await.unwrap(),
        "chain of Some(1)\n"
    );
}

#[tokio::test]
async fn the_handed_out_client_config_follows_rotation() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let first = ca.client("orders");
    let client = Client::builder()
        .identity(first.identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    // A plain connector built once from the client's config (as HTTP/1.1 for `raw_get`; a
    // clone shares the live resolver and verifier).
    let mut config = (*client.rustls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let get = |config: Arc<rustls::ClientConfig>| async move {
        raw_get(server.addr, config).await.unwrap();
    };
    get(Arc::clone(&config)).await;
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        first.der.as_slice()
    );

    let second = ca.client("orders");
    client.set_identity(second.identity()).unwrap();
    get(Arc::clone(&config)).await;
    let peer = server.last_peer().unwrap();
    assert_eq!(
        peer.leaf().as_ref(),
        second.der.as_slice(),
        "the new certificate is presented"
    );
    assert!(!peer.resumed(), "a new identity starts a new session store");
    server.shutdown().await;
}

#[tokio::test]
async fn the_handed_out_client_config_checks_the_server_as_the_client_does() {
    let ca = Ca::new("root");
    let foreign = Ca::new("foreign");
    let server = serve(server_builder(&foreign).trust(ca.trust())).await;
    let client = Client::builder()
        .identity(ca.client("orders").identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    let err = raw_get(server.addr, client.rustls_config())
        .await
        .unwrap_err();
    assert!(
        matches!(
            rustls_error_in(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_handed_out_client_config_does_not_resume_sessions() {
    // Only our own connections can tie a session to the material that verified it; another
    // library's session could be stored across a swap, so none is stored.
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let client = unpooled_client(&ca, &ca.client("orders"));
    let mut config = (*client.rustls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    for _ in 0..2 {
        raw_get(server.addr, Arc::clone(&config)).await.unwrap();
        assert!(!server.last_peer().unwrap().resumed());
    }
    // Our own client does resume.
    for expected in [false, true] {
        let resp = client.get(server.url("/")).await.unwrap();
        body_string(resp).await;
        assert_eq!(server.last_peer().unwrap().resumed(), expected);
    }
    // Nor does the handed-out config take the tickets our client holds: rustls would not
    // verify the resumed server again, and our client's re-check does not run there.
    let mut tls = raw_connect(server.addr, Arc::clone(&config)).await.unwrap();
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(!server.last_peer().unwrap().resumed());
    // Our client still had a ticket to offer: it resumes again.
    body_string(client.get(server.url("/")).await.unwrap()).await;
    assert!(server.last_peer().unwrap().resumed());
    server.shutdown().await;
}

/// A client session store that counts the TLS 1.3 tickets it hands to handshakes, so a test
/// can tell that a ticket was offered.
#[derive(Debug)]
struct CountedTickets {
    inner: rustls::client::ClientSessionMemoryCache,
    taken: AtomicUsize,
}

impl CountedTickets {
    fn new() -> Arc<Self> {
        Arc::new(CountedTickets {
            inner: rustls::client::ClientSessionMemoryCache::new(32),
            taken: AtomicUsize::new(0),
        })
    }

    fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }
}

impl rustls::client::ClientSessionStore for CountedTickets {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }

    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value);
    }

    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }

    fn insert_tls13_ticket(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(name, value);
    }

    fn take_tls13_ticket(
        &self,
        name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(name);
        if ticket.is_some() {
            self.taken.fetch_add(1, Ordering::SeqCst);
        }
        ticket
    }
}

#[tokio::test]
async fn a_plain_acceptor_on_the_handed_out_config_does_not_resume_our_servers_sessions() {
    // Our accept loop re-checks a resumed peer against the current trust, CRLs and policy; a
    // plain acceptor cannot, so it must never resume a session our loop issued.
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let handle = server.handle();
    let ours = start(server);
    let plain = plain_acceptor(handle.rustls_config()).await;
    let tickets = CountedTickets::new();
    let leaf = ca.client("orders");
    let mut config =
        (*raw_config(&ca, Some(&leaf), &[&rustls::version::TLS13], &[b"http/1.1"])).clone();
    config.resumption = rustls::client::Resumption::store(Arc::clone(&tickets) as _);
    let config = Arc::new(config);

    // Against our own server the client gets tickets, and its next connection resumes.
    raw_get(ours.addr, Arc::clone(&config)).await.unwrap();
    assert!(!ours.last_peer().unwrap().resumed());
    raw_get(ours.addr, Arc::clone(&config)).await.unwrap();
    assert!(ours.last_peer().unwrap().resumed(), "our server resumes");
    assert_eq!(tickets.taken(), 1);

    // The plain acceptor is offered one of those tickets and makes a full handshake.
    let mut tls = raw_connect(plain, Arc::clone(&config)).await.unwrap();
    assert_eq!(tickets.taken(), 2, "a ticket from our server was offered");
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full),
        "a session issued by our accept loop does not resume on a plain acceptor"
    );
    let mut line = String::new();
    tls.read_to_string(&mut line).await.unwrap();
    assert_eq!(line, "chain of Some(1)\n", "the full handshake is accepted");
    // It keeps no session and issues no ticket of its own either.
    let handed_out = handle.rustls_config();
    assert!(!handed_out.session_storage.can_cache() && !handed_out.ticketer.enabled());
    assert_eq!(handed_out.send_tls13_tickets, 0);
    ours.shutdown().await;
}
