//! Naming a failed request: the TLS error a connection records when it ends on one (a TLS
//! 1.3 server's rejection of our certificate arrives after the handshake), and the
//! connector's most recent such record, for a request whose error lost it.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use crate::client::connector::Connector;
use crate::client::error::ClientError;
use crate::client::error::from_tls;

/// Where a connection records the alert that ended it, for a request whose error lost it: an
/// HTTP/2 connection that reads the server's alert before the request is dispatched ends, and
/// the request fails as "channel closed" with no trace of the alert.
///
/// A heuristic with two limits: it is one slot for the whole connector (a failure on another
/// host replaces it, so the request then reports its own, less precise error), and within its
/// five seconds any request to the same authority (as its URL writes it, ignoring case: see
/// [`authority_key`](super::authority::authority_key)) that fails as closed or canceled
/// before dispatch, with no connection named, is reported as that alert. It is consulted only
/// then (`Client::request`); errors that name their connection carry their own record.
pub(crate) type RecentFailure = Arc<Mutex<Option<(u64, std::time::Instant, rustls::Error)>>>;

impl Connector {
    /// The TLS failure a connection to the authority (see
    /// [`authority_key`](super::authority::authority_key)) recorded in the last few seconds.
    pub(crate) fn recent_failure(&self, authority: u64) -> Option<rustls::Error> {
        let slot = self.0.recent.lock().ok()?;
        let (seen, at, error) = slot.as_ref()?;
        (*seen == authority && at.elapsed() < Duration::from_secs(5)).then(|| error.clone())
    }
}

/// The fatal TLS error a connection hit after its handshake, such as the alert a TLS 1.3
/// server sends when it rejects our certificate.
///
/// It is in every response's extensions (as the identity is), so a clone is one reference
/// count.
#[derive(Clone)]
pub(crate) struct TlsFailure(pub(crate) Arc<FailureRecord>);

pub(crate) struct FailureRecord {
    pub(crate) error: Mutex<Option<rustls::Error>>,
    /// `host:port` ([`authority_key`](super::authority::authority_key)), for the connector's
    /// record.
    pub(crate) authority: u64,
    pub(crate) recent: RecentFailure,
}

impl TlsFailure {
    pub(crate) fn get(&self) -> Option<rustls::Error> {
        self.0.error.lock().ok().and_then(|slot| slot.clone())
    }

    pub(crate) fn record<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &result
            && let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            if let Ok(mut slot) = self.0.error.lock() {
                slot.get_or_insert_with(|| tls.clone());
            }
            if let Ok(mut recent) = self.0.recent.lock() {
                *recent = Some((self.0.authority, std::time::Instant::now(), tls.clone()));
            }
        }
        result
    }
}

/// Whether a request failed because its connection was gone before it was sent.
pub(crate) fn closed_early(error: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error as _;
    error
        .source()
        .and_then(|e| e.downcast_ref::<hyper::Error>())
        .is_some_and(|e| e.is_closed() || e.is_canceled())
}

/// Names the failure inside a hyper-util client error.
pub(crate) fn classify(error: hyper_util::client::legacy::Error) -> ClientError {
    // HTTP/2 turns I/O errors into strings, so a TLS alert read after the handshake is found
    // through the connection's own record of it, not through the error chain.
    if let Some(connected) = error.connect_info() {
        let mut extras = http::Extensions::new();
        connected.get_extras(&mut extras);
        if let Some(tls) = extras.get::<TlsFailure>().and_then(TlsFailure::get) {
            return from_tls(&tls);
        }
    }
    if let Some(named) = ClientError::find_in(&error) {
        return named;
    }
    ClientError::Http(Box::new(error))
}
