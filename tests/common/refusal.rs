//! The one way a test asserts a refusal: what the refused client heard, the server's named
//! reason and counter, that no handler ran, and that a good client is still served.

use std::time::Duration;

use mtls::{Client, ClientError, HandshakeFailure};

use super::{Running, eventually_for};

/// How long server-side state may take to show what the client already saw, on a busy
/// machine. The tests wait on that state, never on the clock.
pub const SETTLE: Duration = Duration::from_secs(30);

/// The alert a raw rustls client received, from the I/O error tokio-rustls returned.
pub fn alert_of(err: &std::io::Error) -> Option<rustls::AlertDescription> {
    match rustls_error_in(err)? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// The rustls error somewhere in `err`'s chain (an `io::Error` hides the error it wraps
/// from `source()`, so those are opened too).
pub fn rustls_error_in<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    wrapped
        .and_then(rustls_error_in)
        .or_else(|| err.source().and_then(rustls_error_in))
}

/// The alert our client heard from a server that refused our certificate.
pub fn rejected_alert(err: &ClientError) -> Option<&str> {
    match err {
        ClientError::ServerRejectedCertificate { alert } => Some(&**alert),
        _ => None,
    }
}

/// The reason our client named for refusing the server's certificate.
pub fn server_refusal(err: &ClientError) -> Option<HandshakeFailure> {
    match err {
        ClientError::ServerCertificate { reason, .. } => Some(*reason),
        _ => None,
    }
}

/// Asserts that `bad` is refused in the handshake with `alert`, that the server names it
/// `reason` and counts it once more, that no handler ran, and that `good` is then served on
/// the same server.
pub async fn assert_refused(
    server: &Running,
    bad: &Client,
    alert: &str,
    reason: HandshakeFailure,
    good: &Client,
) {
    let before = server.stats.handshake_failures(reason);
    let handled = server.seen.lock().unwrap().len();
    let err = bad.get(server.url("/")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::ServerRejectedCertificate { alert: a } if a == alert),
        "expected the {alert} alert, got {err:?}"
    );
    assert_counted(server, reason, before).await;
    assert_eq!(
        server.seen.lock().unwrap().len(),
        handled,
        "a refused client reached no handler"
    );
    assert_served(server, good).await;
}

/// As [`assert_refused`], for a hand-built rustls client: `bad` is refused in the handshake
/// with `alert`, the server names it `reason` and counts it once more, no handler ran, and
/// `good` is then served.
pub async fn assert_refused_raw(
    server: &Running,
    bad: std::sync::Arc<rustls::ClientConfig>,
    alert: rustls::AlertDescription,
    reason: HandshakeFailure,
    good: &Client,
) {
    let before = server.stats.handshake_failures(reason);
    let handled = server.seen.lock().unwrap().len();
    let err = super::raw_get(server.addr, bad)
        .await
        .expect_err("the server must refuse this client");
    assert_eq!(
        alert_of(&err),
        Some(alert),
        "expected the {alert:?} alert, got {err:?}"
    );
    assert_counted(server, reason, before).await;
    assert_eq!(
        server.seen.lock().unwrap().len(),
        handled,
        "a refused client reached no handler"
    );
    assert_served(server, good).await;
}

/// Asserts that the server counts one more `reason` than `before` (the connection task
/// records it a moment after the client hears the alert).
pub async fn assert_counted(server: &Running, reason: HandshakeFailure, before: u64) {
    let stats = server.stats.clone();
    assert!(
        eventually_for(SETTLE, || stats.handshake_failures(reason) == before + 1).await,
        "the server named the refusal {} (counted {} of them, {} before); all: {:?}",
        reason.as_str(),
        stats.handshake_failures(reason),
        before,
        stats.failures()
    );
}

/// Asserts that `client` gets a 200 from `server`.
pub async fn assert_served(server: &Running, client: &Client) {
    let resp = client
        .get(server.url("/"))
        .await
        .expect("a good client is served");
    assert_eq!(resp.status(), 200);
}
