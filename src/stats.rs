//! Counters of handshake outcomes, by reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HandshakeFailure;

/// Live counters of a [`Server`](crate::Server)'s handshakes.
///
/// Read them with [`Server::stats`](crate::Server::stats); every read is a relaxed atomic load,
/// cheap enough for a metrics scrape.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let server = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .bind("127.0.0.1:0")
/// #     .await?;
/// let stats: std::sync::Arc<mtls::ServerStats> = server.stats();
/// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
/// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
/// # })));
/// # let client = mtls::Client::builder()
/// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .build()?;
/// client.get(url).await?;
/// assert_eq!(stats.handshakes_accepted(), 1);
/// assert_eq!(stats.handshake_failures_total(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    resumed: AtomicU64,
    active: AtomicU64,
    failures: [AtomicU64; HandshakeFailure::ALL.len()],
}

impl ServerStats {
    /// Handshakes that completed with a verified (or, in optional mode, absent) client certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// assert_eq!(stats.handshakes_accepted(), 0);
    /// ```
    pub fn handshakes_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Accepted handshakes that resumed an earlier session.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// assert_eq!(stats.handshakes_resumed(), 0);
    /// ```
    pub fn handshakes_resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    /// Connections open now, handshaking or established.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// assert_eq!(stats.active_connections(), 0);
    /// ```
    pub fn active_connections(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Handshakes that failed for `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// assert_eq!(stats.handshake_failures(mtls::HandshakeFailure::UnknownIssuer), 0);
    /// ```
    pub fn handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        self.failures[reason.index()].load(Ordering::Relaxed)
    }

    /// Every failure reason with its count, in [`HandshakeFailure::ALL`] order.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// for (reason, count) in stats.failures() {
    ///     println!("{}: {count}", reason.as_str());
    /// }
    /// assert_eq!(stats.failures().len(), mtls::HandshakeFailure::ALL.len());
    /// ```
    pub fn failures(&self) -> Vec<(HandshakeFailure, u64)> {
        HandshakeFailure::ALL
            .iter()
            .map(|r| (*r, self.handshake_failures(*r)))
            .collect()
    }

    /// All failed handshakes, whatever the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default(); // or server.stats()
    /// assert_eq!(stats.handshake_failures_total(), 0);
    /// ```
    pub fn handshake_failures_total(&self) -> u64 {
        self.failures
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The counters in the Prometheus text exposition format (version 0.0.4), every metric
    /// named `mtls_*`, failures labelled by `reason` (the [`HandshakeFailure::as_str`] names,
    /// every reason present, zeros included, so rates never start from a missing series).
    ///
    /// Serve it from a `/metrics` route as `text/plain; version=0.0.4`, or read the
    /// accessors above into the `metrics` crate or an OpenTelemetry meter: the counters are
    /// plain atomics, so any exporter can scrape them without this crate choosing one.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::ServerStats::default();
    /// let text = stats.prometheus_text();
    /// assert!(text.contains("mtls_handshakes_accepted_total 0"));
    /// assert!(text.contains("mtls_handshake_failures_total{reason=\"unknown_issuer\"} 0"));
    /// ```
    pub fn prometheus_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "mtls_handshakes_accepted_total",
            "counter",
            "TLS handshakes completed and authorized.",
            self.handshakes_accepted(),
        );
        metric(
            "mtls_handshakes_resumed_total",
            "counter",
            "Accepted handshakes that resumed an earlier session.",
            self.handshakes_resumed(),
        );
        metric(
            "mtls_connections_active",
            "gauge",
            "Connections open now, handshaking or established.",
            self.active_connections(),
        );
        let name = "mtls_handshake_failures_total";
        let _ = writeln!(out, "# HELP {name} Failed TLS handshakes, by reason.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, count) in self.failures() {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {count}", reason.as_str());
        }
        out
    }

    pub(crate) fn record_accepted(&self, resumed: bool) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection as active until the returned guard is dropped (by the connection
    /// task, or with a stream handed out by `Server::incoming`).
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(self))
    }

    pub(crate) fn record_failure(&self, reason: HandshakeFailure) {
        self.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Decrements the active-connection gauge when the connection ends.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<ServerStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
