//! [`Limits`]: the bounds a server puts on every peer, with safe defaults.

use std::time::Duration;

/// Resource limits of a [`Server`](crate::Server). Every field has a safe default; set them
/// with the [`ServerBuilder`](crate::ServerBuilder) methods of the same names.
///
/// ```
/// let limits = mtls::Limits::default();
/// assert_eq!(limits.handshake_timeout.as_secs(), 10);
/// assert_eq!(limits.max_connections, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Time a client has to complete the TLS handshake. Default: 10 s.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once. When reached, the server stops accepting until one
    /// finishes (backpressure in the kernel's accept queue, not unbounded tasks). Default: 1,024.
    pub max_handshakes: usize,
    /// Open connections at once, handshaking or established. When reached, the server stops
    /// accepting until one closes. Default: 10,000.
    pub max_connections: usize,
    /// Time to receive a complete HTTP/1 request head, from its first byte (for a
    /// connection's first request, from the end of the handshake). Default: 30 s.
    /// Waiting for the next request on a keep-alive connection is idle time
    /// ([`Limits::idle_timeout`]), not head time. (Without ALPN, where the protocol is detected
    /// from the first bytes, hyper's own timer applies, which runs from the end of the
    /// previous response.)
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed
    /// (within one more period). Default: 5 minutes.
    pub idle_timeout: Duration,
    /// Largest request head: the HTTP/1 read buffer and the HTTP/2 header list. Default: 64 KiB.
    pub max_header_size: usize,
    /// Concurrent HTTP/2 streams per connection. Default: 256.
    pub http2_max_concurrent_streams: u32,
    /// Time in-flight requests get to finish once shutdown begins. Default: 30 s.
    pub shutdown_timeout: Duration,
}

/// Default time a client has to complete its TLS handshake.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::Limits::default().handshake_timeout, mtls::server::DEFAULT_HANDSHAKE_TIMEOUT);
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time in-flight requests get to finish after shutdown begins.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::Limits::default().shutdown_timeout, mtls::server::DEFAULT_SHUTDOWN_TIMEOUT);
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: 1_024,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_header_size: 64 * 1024,
            http2_max_concurrent_streams: 256,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}
