//! The accept loop: connection and handshake slots first, then one task per connection that
//! runs the handshake in its [`Handshake`] scope and serves the verified connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::Error;
use crate::handshake::Handshake;
use crate::server::connection::{Connection, HttpBuilders};
use crate::server::drain::{Drain, Order, Timeouts};

use crate::server::{ConnectionInfo, Server};

impl Server {
    /// The accept loop: `make` gives each verified connection its service; with
    /// `extensions`, each request also carries the peer's identity in its extensions.
    pub(crate) async fn run<F, H, B, G>(
        self,
        make: F,
        extensions: bool,
        signal: G,
    ) -> Result<(), Error>
    where
        F: Fn(&ConnectionInfo) -> H + Send + Sync + 'static,
        H: hyper::service::Service<Request<Incoming>, Response = http::Response<B>>
            + Send
            + 'static,
        H::Future: Send + 'static,
        H::Error: Into<crate::server::connection::BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<crate::server::connection::BoxError>,
        G: Future<Output = ()> + Send,
    {
        let make = Arc::new(make);
        let Server {
            listener, shared, ..
        } = self;
        let shutdown_timeout = shared.limits.shutdown_timeout;
        let http = Arc::new(HttpBuilders::new(&shared.limits));
        let gate = Gate::new(shared.limits.max_connections, shared.limits.max_handshakes);
        // Every connection task checks its order at each wake without a lock; the order to
        // drain reaches handshakes in progress too, which are dropped at once: graceful
        // shutdown drains requests, and a peer still handshaking has none (nor may a
        // stalled one hold shutdown up until its handshake timeout). Dropping the serve
        // future drops `drain`, which closes every connection.
        let drain = Drain::watched(Timeouts {
            idle: shared.limits.idle_timeout,
            head: shared.limits.header_read_timeout,
        });

        accept_loop(
            &listener,
            &gate,
            signal,
            |(tcp, addr, connection_permit, handshake_permit)| {
                let member = drain.join();
                let connection = Connection {
                    shared: Arc::clone(&shared),
                    addr,
                };
                let make = Arc::clone(&make);
                let http = Arc::clone(&http);
                let stats = Arc::clone(&shared.stats);
                tokio::spawn(
                    async move {
                        let _active = stats.connection_opened();
                        let _connection_permit = connection_permit;
                        // The verifier reads the connection's context: only the handshake runs in
                        // its scope, so requests do not pay for entering it. Boxed, so that its
                        // state is freed when it ends rather than kept in the task for the
                        // connection's life.
                        let handshake =
                            Box::pin(Handshake::scope(addr, connection.handshake(tcp, &member)))
                                .await;
                        drop(handshake_permit);
                        if let Some((tls, peer)) = handshake {
                            let info = ConnectionInfo {
                                peer,
                                remote_addr: addr,
                            };
                            let service = make(&info);
                            let peer = if extensions { info.peer } else { None };
                            connection.serve((tls, peer), service, &member, &http).await;
                        }
                    }
                    .instrument(connection_span(addr)),
                );
            },
        )
        .await;

        drop(listener);
        tracing::info!(
            in_flight = drain.count(),
            "shutting down: stopped accepting, draining connections"
        );
        drain.order(Order::Drain);
        if tokio::time::timeout(shutdown_timeout, drain.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?shutdown_timeout,
                "shutdown timeout reached; closing the remaining connections"
            );
            drain.order(Order::Close);
            // A closed connection ends at its next poll; the slowest path left is a failed
            // handshake's one-second linger.
            let _ = tokio::time::timeout(Duration::from_secs(5), drain.closed()).await;
        }
        Ok(())
    }
}

/// A connection just accepted, with the connection and handshake slots it holds.
pub(crate) type Accepted = (
    tokio::net::TcpStream,
    SocketAddr,
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
);

/// The slots a connection takes before it is accepted: one for its life, one for its
/// handshake. At a limit the loop stops accepting and the kernel queues (and in the end
/// refuses) new connections, rather than piling up tasks.
pub(crate) struct Gate {
    connections: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
}

impl Gate {
    /// Limits of at least one (zero would never accept) and at most what a semaphore holds.
    pub(crate) fn new(max_connections: usize, max_handshakes: usize) -> Self {
        let permits = |n: usize| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)));
        Gate {
            connections: permits(max_connections),
            handshakes: permits(max_handshakes),
        }
    }

    /// Waits for a connection slot and a handshake slot, then accepts. Cancel-safe: dropping
    /// it returns the permits and leaves the connection in the kernel's queue.
    async fn accept(&self, listener: &TcpListener) -> std::io::Result<Accepted> {
        let closed = |_| std::io::Error::other("limit semaphore closed");
        let connection = Arc::clone(&self.connections)
            .acquire_owned()
            .await
            .map_err(closed)?;
        let handshake = Arc::clone(&self.handshakes)
            .acquire_owned()
            .await
            .map_err(closed)?;
        let (tcp, addr) = listener.accept().await?;
        Ok((tcp, addr, connection, handshake))
    }
}

/// The one accept loop of every listener (a server's, [`TlsIncoming`](crate::server::TlsIncoming)'s,
/// the health listener's): slots first, then accept, then `admit` (which spawns the
/// connection's task), until `stop` completes. Errors accepting never stop it.
pub(crate) async fn accept_loop(
    listener: &TcpListener,
    gate: &Gate,
    stop: impl Future<Output = ()>,
    mut admit: impl FnMut(Accepted),
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = gate.accept(listener) => match accepted {
                Ok(accepted) => admit(accepted),
                Err(error) => accept_error(error).await,
            },
        }
    }
}

/// Accept errors are per connection (the peer reset before we accepted it) or per process
/// (out of file descriptors); neither should stop the listener.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => {}
        _ => {
            tracing::error!(%error, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A TLS connection's span. The peer's identity is recorded on it once the handshake has
/// verified it, so every event of the connection carries it.
pub(crate) fn connection_span(addr: SocketAddr) -> tracing::Span {
    tracing::info_span!(
        "mtls.connection",
        peer.addr = %addr,
        peer.identity = tracing::field::Empty,
        peer.serial = tracing::field::Empty,
        tls.version = tracing::field::Empty,
        tls.resumed = tracing::field::Empty,
    )
}
