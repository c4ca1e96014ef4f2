//! The ambient state of one handshake, in one place. rustls calls our certificate verifiers,
//! resolvers and session stores with no per-connection context, so what they need to know about
//! the connection they run for is set here around the code that drives rustls, and read here:
//!
//! - [`Handshake`]: a task-local scoped around a server connection's handshake (or its whole
//!   task, for [`TlsIncoming`](crate::server::TlsIncoming)): the peer's address for events, the identity
//!   the verifier accepted (so it is parsed once), and whether a failure was already logged or
//!   a resumed session is being re-checked.
//! - [`within_generation`]: a thread-local set around each poll of one of our own connections,
//!   naming the generation of material it started under, so that session stores keep a session
//!   only in that generation's cache.
//! - [`quietly`]: a thread-local set while our own code runs a verifier (a rotation's check of
//!   new material), whose refusals are answers rather than failed handshakes and are not logged.
//!
//! Outside these scopes every reader answers the neutral value (no address, not ours, not
//! quiet), so the verifiers behave as plain rustls verifiers inside other libraries.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;

use tokio::task::futures::TaskLocalFuture;

use crate::peer::PeerIdentity;

tokio::task_local! {
    /// The connection whose task is running, for the certificate verifier (shared by all
    /// connections), which runs inside that task's handshake.
    static CONNECTION: Handshake;
}

/// What the verifier and the connection task share during one handshake.
pub(crate) struct Handshake {
    addr: SocketAddr,
    /// The client identity the verifier parsed and accepted, reused after the handshake.
    verified: RefCell<Option<PeerIdentity>>,
    /// Whether the verifier already logged this handshake's failure.
    logged: Cell<bool>,
    /// Whether the verifier is re-checking a resumed session.
    resuming: Cell<bool>,
}

impl Handshake {
    /// Runs `f` (a connection's handshake, or its whole task) as the connection from `addr`.
    pub(crate) fn scope<F: Future>(addr: SocketAddr, f: F) -> TaskLocalFuture<Handshake, F> {
        let context = Handshake {
            addr,
            verified: RefCell::new(None),
            logged: Cell::new(false),
            resuming: Cell::new(false),
        };
        CONNECTION.scope(context, f)
    }
}

/// The current connection's peer address, for events; empty outside a connection task.
pub(crate) fn peer_addr() -> String {
    CONNECTION
        .try_with(|c| c.addr.to_string())
        .unwrap_or_default()
}

/// Keeps the identity the verifier accepted, so the connection need not parse it again.
pub(crate) fn stash_verified(peer: PeerIdentity) {
    let _ = CONNECTION.try_with(|c| *c.verified.borrow_mut() = Some(peer));
}

/// Whether the code runs inside one of our connection tasks (which counts its own failures).
pub(crate) fn in_connection_task() -> bool {
    CONNECTION.try_with(|_| ()).is_ok()
}

/// Notes that the verifier is about to re-check a resumed session (or one verified under
/// material swapped out since), for the failure event.
pub(crate) fn set_resuming() {
    let _ = CONNECTION.try_with(|c| c.resuming.set(true));
}

/// Whether the verifier is re-checking a resumed session, for the failure event.
pub(crate) fn resuming() -> bool {
    CONNECTION.try_with(|c| c.resuming.get()).unwrap_or(false)
}

/// Notes that the verifier logged this handshake's failure, so it is not logged twice.
pub(crate) fn mark_logged() {
    let _ = CONNECTION.try_with(|c| c.logged.set(true));
}

/// Whether the verifier already logged this handshake's failure.
pub(crate) fn already_logged() -> bool {
    CONNECTION.try_with(|c| c.logged.get()).unwrap_or(false)
}

/// The identity the verifier accepted in this handshake, taken once.
pub(crate) fn take_verified() -> Option<PeerIdentity> {
    CONNECTION
        .try_with(|c| c.verified.borrow_mut().take())
        .ok()
        .flatten()
}

thread_local! {
    /// The generation the connection being polled on this thread started under, while our
    /// own connections poll rustls (which stores sessions from inside those polls).
    static CONNECTION_GENERATION: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` (a poll of a connection that started under generation `id`) so that a session
/// it stores goes to that generation's cache only: a session verified under material that
/// has since been swapped out is dropped rather than stored beside the new material.
pub(crate) fn within_generation<R>(id: u64, f: impl FnOnce() -> R) -> R {
    /// Restores the outer marker even if `f` panics.
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONNECTION_GENERATION.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(CONNECTION_GENERATION.with(|g| g.replace(Some(id))));
    f()
}

/// Whether a session may be stored in generation `current` from the running poll: only from
/// one of our own connections that started under that generation, since its peer can time
/// when the session is stored (hold back its Finished, or its ticket, across a swap). Configs
/// handed to other libraries do not reach these stores at all (`live::tls::Runner`).
pub(crate) fn may_store(current: u64) -> bool {
    CONNECTION_GENERATION.with(|g| g.get().is_some_and(|started| started == current))
}

pin_project_lite::pin_project! {
    /// A future polled within its connection's generation (see [`within_generation`]).
    pub(crate) struct InGeneration<F> {
        id: u64,
        #[pin]
        inner: F,
    }
}

impl<F> InGeneration<F> {
    pub(crate) fn new(id: u64, inner: F) -> Self {
        InGeneration { id, inner }
    }
}

impl<F: std::future::Future> std::future::Future for InGeneration<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let id = *this.id;
        within_generation(id, || this.inner.poll(cx))
    }
}

thread_local! {
    /// Set while our own code (a rotation's chain check) runs a verifier: its rejections are
    /// answers to a question, not failed handshakes, and are not logged.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the verifiers' failure events silenced.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    f()
}

/// Whether verifier failure events are silenced on this thread ([`quietly`]).
pub(crate) fn quiet() -> bool {
    QUIET.with(Cell::get)
}
