//! Live rustls configurations: each server or client has two (its own and the one it hands
//! out), built once, whose certificate resolver, verifier and session cache read the
//! *current* generation of material at each handshake.
//!
//! Rotation swaps a generation; the config objects never change. That is what lets a config
//! be handed to other libraries (a plain `TlsAcceptor`, reqwest, tonic, tokio-postgres) once,
//! with rotation, policy and named failures reaching them as they reach our own accept loop
//! and connector.
//!
//! Each generation has its own session cache, so a swap of trust, CRLs or policy also stops
//! sessions verified under the old material from resuming (rustls does not re-run the
//! verifier on resumption). Only our own accept loop and connector read those caches: the
//! config handed to another library is a second config over the same generations, with no
//! session store of its own, since nothing re-checks a session resumed there.
//!
//! Here: the generations and the rustls adapters over them (`mod.rs`), the bounded CA-hint
//! lists (`hints`), and the two configs each side builds (`tls`). `live` may import `util` up
//! to `verify`; it counts failures through [`FailureCounter`], which the server's statistics
//! implement, so it never imports `server`.

pub(crate) mod hints;
pub(crate) mod tls;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, NamedGroup, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::HandshakeFailure;
use crate::handshake::may_store;
use crate::live::hints::Hints;
use crate::verify::{ClientIdentityVerifier, ServerIdentityVerifier};

/// Sessions each generation's cache holds (rustls' own default).
const SESSIONS: usize = 256;

/// Numbers generations, so a connection can tell whether the material changed under it.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// What a server handshake reads: swapped whole on every change.
pub(crate) struct ServerGeneration {
    pub(crate) id: u64,
    pub(crate) certified: Arc<CertifiedKey>,
    /// Also holds the policy ([`ClientIdentityVerifier::policy`]), so the two never disagree.
    pub(crate) verifier: Arc<ClientIdentityVerifier>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl ServerGeneration {
    pub(crate) fn new(certified: Arc<CertifiedKey>, verifier: ClientIdentityVerifier) -> Self {
        ServerGeneration {
            id: next_generation(),
            certified,
            verifier: Arc::new(verifier),
            sessions: ServerSessionMemoryCache::new(SESSIONS),
        }
    }
}

/// Counts the handshake failures a live server sees outside our own connection tasks (which
/// count their own): the server's statistics.
pub(crate) trait FailureCounter: Send + Sync {
    fn record_failure(&self, reason: HandshakeFailure);
}

/// The server's current generation, read by the resolver, verifier and session cache of
/// its one `ServerConfig`.
pub(crate) struct LiveServer {
    current: ArcSwap<ServerGeneration>,
    hints: Hints,
    stats: Arc<dyn FailureCounter>,
}

impl LiveServer {
    pub(crate) fn new(first: ServerGeneration, stats: Arc<dyn FailureCounter>) -> Arc<Self> {
        let hints = Hints::new(first.verifier.root_hint_subjects().to_vec());
        Arc::new(LiveServer {
            current: ArcSwap::from_pointee(first),
            hints,
            stats,
        })
    }

    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<ServerGeneration>> {
        self.current.load()
    }

    /// Swaps in `next` for new handshakes; sessions of the old generation stop resuming.
    pub(crate) fn install(&self, next: ServerGeneration) {
        self.hints.update(next.verifier.root_hint_subjects());
        self.current.store(Arc::new(next));
    }

    /// How many CA-name lists are held for CertificateRequest.
    #[cfg(test)]
    pub(crate) fn hint_lists(&self) -> usize {
        self.hints.lists()
    }
}

impl fmt::Debug for LiveServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveServer")
            .field("policy", self.current.load().verifier.policy())
            .finish_non_exhaustive()
    }
}

/// Our certificate, for every handshake.
#[derive(Debug)]
pub(crate) struct ServerResolver(pub(crate) Arc<LiveServer>);

impl ResolvesServerCert for ServerResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current.load().certified))
    }
}

/// The current client-certificate verifier. Inside our own connection tasks the connection
/// counts failures; elsewhere (a config handed to another acceptor) this counts them.
#[derive(Debug)]
pub(crate) struct CurrentClientCertVerifier(pub(crate) Arc<LiveServer>);

impl CurrentClientCertVerifier {
    fn count<T>(&self, result: Result<T, rustls::Error>) -> Result<T, rustls::Error> {
        if let Err(e) = &result
            && !crate::handshake::in_connection_task()
        {
            self.0
                .stats
                .record_failure(HandshakeFailure::from_rustls(e));
        }
        result
    }
}

impl ClientCertVerifier for CurrentClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        self.0.current.load().verifier.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.current.load().verifier.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.hints.latest()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        self.count(verifier.verify_client_cert(end_entity, intermediates, now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        self.count(verifier.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        self.count(verifier.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current.load().verifier.supported_verify_schemes()
    }
}

/// The current generation's session cache.
#[derive(Debug)]
pub(crate) struct ServerSessions(pub(crate) Arc<LiveServer>);

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let current = self.0.current.load();
        may_store(current.id) && current.sessions.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.current.load().sessions.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.current.load().sessions.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// What a client handshake reads: swapped whole on every change.
pub(crate) struct ClientGeneration {
    pub(crate) id: u64,
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) verifier: Arc<ServerIdentityVerifier>,
    sessions: Arc<ClientSessionMemoryCache>,
}

impl ClientGeneration {
    pub(crate) fn new(certified: Arc<CertifiedKey>, verifier: ServerIdentityVerifier) -> Self {
        ClientGeneration {
            id: next_generation(),
            certified,
            verifier: Arc::new(verifier),
            sessions: Arc::new(ClientSessionMemoryCache::new(SESSIONS)),
        }
    }
}

/// The client's current generation, read by the resolver, verifier and session store of its
/// one `ClientConfig`.
pub(crate) struct LiveClient {
    current: ArcSwap<ClientGeneration>,
}

impl LiveClient {
    pub(crate) fn new(first: ClientGeneration) -> Arc<Self> {
        Arc::new(LiveClient {
            current: ArcSwap::from_pointee(first),
        })
    }

    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<ClientGeneration>> {
        self.current.load()
    }

    /// Swaps in `next` for new connections; sessions of the old generation are not offered.
    pub(crate) fn install(&self, next: ClientGeneration) {
        self.current.store(Arc::new(next));
    }
}

impl fmt::Debug for LiveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveClient").finish_non_exhaustive()
    }
}

/// Our client certificate. It answers whatever CA names the server hints: a hint mismatch
/// must not silently drop client authentication.
#[derive(Debug)]
pub(crate) struct ClientResolver(pub(crate) Arc<LiveClient>);

impl ResolvesClientCert for ClientResolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current.load().certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The current server-certificate verifier.
#[derive(Debug)]
pub(crate) struct CurrentServerCertVerifier(pub(crate) Arc<LiveClient>);

impl ServerCertVerifier for CurrentServerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = Arc::clone(&self.0.current.load().verifier);
        verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current.load().verifier.supported_verify_schemes()
    }
}

/// The current generation's session store.
#[derive(Debug)]
pub(crate) struct ClientSessions(pub(crate) Arc<LiveClient>);

impl ClientSessionStore for ClientSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.0
            .current
            .load()
            .sessions
            .set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.current.load().sessions.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        let current = self.0.current.load();
        if may_store(current.id) {
            current.sessions.set_tls12_session(server_name, value);
        }
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.current.load().sessions.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.0
            .current
            .load()
            .sessions
            .remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let current = self.0.current.load();
        if may_store(current.id) {
            current.sessions.insert_tls13_ticket(server_name, value);
        }
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0
            .current
            .load()
            .sessions
            .take_tls13_ticket(server_name)
    }
}

/// The session store of a client config handed to another library: it shares the current
/// generation's key-share hints (which only choose the first key share sent) and stores and
/// offers no session, since nothing there checks a resumed server again.
#[derive(Debug)]
pub(crate) struct KeyShareHints(pub(crate) ClientSessions);

impl ClientSessionStore for KeyShareHints {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
    }

    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}
