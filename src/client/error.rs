//! [`ClientError`]: why a call through the client failed, named from the rustls error or
//! alert behind it.

use std::io;
use std::time::Duration;

use crate::error::{HandshakeFailure, alert_name, is_certificate_alert, rejection_hint};
use crate::verify::ServerNotAllowed;

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

/// A rustls error seen by the client, during or right after the handshake.
pub(crate) fn from_tls(error: &rustls::Error) -> ClientError {
    match error {
        rustls::Error::AlertReceived(alert) if is_certificate_alert(*alert) => {
            ClientError::ServerRejectedCertificate {
                alert: alert_name(*alert),
            }
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if other.0.downcast_ref::<ServerNotAllowed>().is_some() =>
        {
            let denied = other.0.downcast_ref::<ServerNotAllowed>().map(|n| &n.0);
            ClientError::ServerNotAllowed {
                expected: denied.map(|d| d.policy.clone()).unwrap_or_default(),
                presented: denied.map(|d| d.presented.clone()).unwrap_or_default(),
            }
        }
        rustls::Error::InvalidCertificate(_) => ClientError::ServerCertificate {
            reason: HandshakeFailure::from_rustls(error),
            detail: error.to_string(),
        },
        _ => ClientError::Handshake {
            reason: HandshakeFailure::from_rustls(error),
            detail: error.to_string(),
        },
    }
}

impl ClientError {
    /// Names a rustls error seen by a client: the server rejected our certificate (an alert),
    /// we rejected the server's (and why), or another handshake failure.
    ///
    /// ```
    /// let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
    /// let named = mtls::ClientError::from_rustls(&alert);
    /// assert!(named.to_string().starts_with("server rejected our client certificate (alert: unknown_ca)"));
    /// ```
    pub fn from_rustls(error: &rustls::Error) -> ClientError {
        from_tls(error)
    }

    /// Finds the TLS failure in any error's chain of sources, for errors from libraries that
    /// run on [`Client::rustls_config`] (reqwest, tonic, tokio-postgres) and so report our
    /// verifier's and the server's verdicts wrapped in their own types. A `ClientError` in the
    /// chain (our [`Connector`]'s, wrapped by hyper-util or tonic) is taken as it is; otherwise
    /// the rustls error is the one [`HandshakeFailure::tls_error_in`] finds, including an alert
    /// known only by its text. `None` when the chain holds neither.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::{CertificateError, Error as TlsError};
    ///
    /// // As another library (reqwest, tonic) would wrap it:
    /// let wrapped = std::io::Error::new(
    ///     std::io::ErrorKind::InvalidData,
    ///     TlsError::InvalidCertificate(CertificateError::Expired),
    /// );
    /// let found = mtls::ClientError::find_in(&wrapped).expect("a TLS failure");
    /// assert_eq!(found.reason(), Some(mtls::HandshakeFailure::Expired));
    /// ```
    ///
    /// [`Client::rustls_config`]: crate::Client::rustls_config
    /// [`Connector`]: crate::client::Connector
    pub fn find_in(error: &(dyn std::error::Error + 'static)) -> Option<ClientError> {
        let ours = std::iter::successors(Some(error), |e| e.source())
            .find_map(|e| e.downcast_ref::<ClientError>());
        if let Some(ours) = ours {
            return Some(ours.duplicate());
        }
        HandshakeFailure::tls_error_in(error).map(|tls| from_tls(&tls))
    }

    /// The named reason of a TLS failure (for a rejection by the server,
    /// [`HandshakeFailure::RejectedByPeer`]); `None` for errors that are not about TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
    /// let err = mtls::ClientError::from_rustls(&alert);
    /// assert_eq!(err.reason(), Some(mtls::HandshakeFailure::RejectedByPeer));
    /// ```
    pub fn reason(&self) -> Option<HandshakeFailure> {
        match self {
            ClientError::ServerRejectedCertificate { .. } => Some(HandshakeFailure::RejectedByPeer),
            ClientError::ServerNotAllowed { .. } => Some(HandshakeFailure::NotAuthorized),
            ClientError::ServerCertificate { reason, .. }
            | ClientError::Handshake { reason, .. } => Some(*reason),
            ClientError::Timeout { .. } => Some(HandshakeFailure::Timeout),
            _ => None,
        }
    }

    /// A copy of a connector error found by reference in an error chain.
    fn duplicate(&self) -> ClientError {
        match self {
            ClientError::InvalidUri { uri, reason } => ClientError::InvalidUri {
                uri: uri.clone(),
                reason,
            },
            ClientError::Connect { authority, source } => ClientError::Connect {
                authority: authority.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            ClientError::ServerRejectedCertificate { alert } => {
                ClientError::ServerRejectedCertificate {
                    alert: alert.clone(),
                }
            }
            ClientError::ServerNotAllowed {
                expected,
                presented,
            } => ClientError::ServerNotAllowed {
                expected: expected.clone(),
                presented: presented.clone(),
            },
            ClientError::ServerCertificate { reason, detail } => ClientError::ServerCertificate {
                reason: *reason,
                detail: detail.clone(),
            },
            ClientError::Handshake { reason, detail } => ClientError::Handshake {
                reason: *reason,
                detail: detail.clone(),
            },
            ClientError::Timeout { authority, after } => ClientError::Timeout {
                authority: authority.clone(),
                after: *after,
            },
            ClientError::Http(e) => ClientError::Handshake {
                reason: HandshakeFailure::Other,
                detail: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reported_as_text_is_found_and_named() {
        // As tokio-rustls reports a late alert through HTTP/2: text only.
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            "received fatal alert: AccessDenied",
        );
        let found = ClientError::find_in(&wrapped).expect("a TLS failure");
        assert!(
            matches!(&found, ClientError::ServerRejectedCertificate { alert } if alert == "access_denied"),
            "{found}"
        );
    }
}
