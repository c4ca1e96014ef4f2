//! Why a call through the client failed.

use std::io;
use std::time::Duration;

use crate::error::{HandshakeFailure, rejection_hint};

/// Why a call through [`Client`](crate::Client) failed.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let client = mtls::Client::builder()
/// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .build()?;
/// let err = client.get("http://127.0.0.1:8080/".parse()?).await.unwrap_err();
/// assert!(matches!(err, mtls::ClientError::InvalidUri { .. })); // not https
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be called: not `https`, or no host.
    #[error("cannot call `{uri}`: {reason}")]
    InvalidUri {
        /// The URL as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TCP connection could not be made (refused, unreachable, name does not resolve).
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// `host:port` we tried.
        authority: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The server refused the certificate we presented.
    ///
    /// In TLS 1.3 this arrives after our side of the handshake finished, on the first read.
    #[error(
        "server rejected our client certificate (alert: {alert}); {}",
        rejection_hint(alert)
    )]
    ServerRejectedCertificate {
        /// The TLS alert the server sent, in RFC spelling, e.g. `unknown_ca`.
        alert: String,
    },
    /// We refused the server's certificate.
    #[error("server certificate rejected: {reason} ({detail})")]
    ServerCertificate {
        /// Why we refused it.
        reason: HandshakeFailure,
        /// The verifier's own words.
        detail: String,
    },
    /// The server's certificate is valid but not the identity we expect
    /// ([`ClientBuilder::expect_server`](crate::ClientBuilder::expect_server)).
    #[error("server {presented} is not the expected identity: {expected}")]
    ServerNotAllowed {
        /// The policy the server had to match.
        expected: String,
        /// The identity the server presented.
        presented: String,
    },
    /// The TLS handshake failed for another reason.
    #[error("TLS handshake with the server failed: {reason} ({detail})")]
    Handshake {
        /// The classified reason.
        reason: HandshakeFailure,
        /// The detail from the TLS library.
        detail: String,
    },
    /// The connection or the handshake took too long.
    #[error("connecting to {authority} timed out after {after:?}")]
    Timeout {
        /// `host:port` we tried.
        authority: String,
        /// The configured connect timeout.
        after: Duration,
    },
    /// The HTTP exchange failed after a working TLS connection.
    #[error("HTTP request failed: {0}")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
}
