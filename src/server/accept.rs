//! The accept loop: connection and handshake slots first, then one task per connection that
//! runs the handshake in its [`Handshake`] scope and serves the verified connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
        // Within what a semaphore can hold, and never zero (which would never accept).
        let permits = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
        let connections = Arc::new(Semaphore::new(permits(shared.limits.max_connections)));
        let handshakes = Arc::new(Semaphore::new(permits(shared.limits.max_handshakes)));
        // Every connection task checks its order at each wake without a lock; the order to
        // drain reaches handshakes in progress too, which are dropped at once: graceful
        // shutdown drains requests, and a peer still handshaking has none (nor may a
        // stalled one hold shutdown up until its handshake timeout). Dropping the serve
        // future drops `drain`, which closes every connection.
        let drain = Drain::watched(Timeouts {
            idle: shared.limits.idle_timeout,
            head: shared.limits.header_read_timeout,
        });
        tokio::pin!(signal);

        loop {
            tokio::select! {
                () = &mut signal => break,
                // Permits first: at a limit we stop accepting and the kernel queues (and in
                // the end refuses) new connections, rather than piling up tasks.
                accepted = accept(&listener, &connections, &handshakes) => match accepted {
                    Ok((tcp, addr, connection_permit, handshake_permit)) => {
                        let member = drain.join();
                        let connection = Connection {
                            shared: Arc::clone(&shared),
                            addr,
                        };
                        let make = Arc::clone(&make);
                        let http = Arc::clone(&http);
                        // The peer's identity is recorded on the span once the handshake
                        // has verified it, so every event of the connection carries it.
                        let span = tracing::info_span!(
                            "mtls.connection",
                            peer.addr = %addr,
                            peer.identity = tracing::field::Empty,
                            peer.serial = tracing::field::Empty,
                            tls.version = tracing::field::Empty,
                            tls.resumed = tracing::field::Empty,
                        );
                        let stats = Arc::clone(&shared.stats);
                        tokio::spawn(async move {
                            let _active = stats.connection_opened();
                            let _connection_permit = connection_permit;
                            // The verifier reads the connection's context: only the handshake
                            // runs in its scope, so requests do not pay for entering it. Boxed,
                            // so that its state (over a kilobyte) is freed when it ends rather
                            // than kept in the task for the connection's life.
                            let handshake = Box::pin(Handshake::scope(addr, connection.handshake(tcp, &member)))
                                .await;
                            drop(handshake_permit);
                            if let Some((tls, peer)) = handshake {
                                let info = ConnectionInfo { peer, remote_addr: addr };
                                let service = make(&info);
                                let peer = if extensions { info.peer } else { None };
                                connection.serve((tls, peer), service, &member, &http).await;
                            }
                        }.instrument(span));
                    }
                    Err(e) => accept_error(e).await,
                },
            }
        }

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

pub(crate) type Accepted = (
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// Waits for a connection slot and a handshake slot, then accepts. Cancel-safe: dropping it
/// returns the permits and leaves the connection in the kernel's queue.
pub(crate) async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
    handshakes: &Arc<Semaphore>,
) -> std::io::Result<Accepted> {
    let closed = |_| std::io::Error::other("limit semaphore closed");
    let connection = Arc::clone(connections)
        .acquire_owned()
        .await
        .map_err(closed)?;
    let handshake = Arc::clone(handshakes)
        .acquire_owned()
        .await
        .map_err(closed)?;
    let (tcp, addr) = listener.accept().await?;
    Ok((tcp, addr, connection, handshake))
}

/// Accept errors are per connection (the peer reset before we accepted it) or per process
/// (out of file descriptors); neither should stop the server.
pub(crate) async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => {}
        _ => {
            tracing::error!(%error, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
