//! Counters of handshake outcomes, by reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
/// let stats: std::sync::Arc<mtls::server::ServerStats> = server.stats();
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
#[derive(Debug)]
pub struct ServerStats {
    accepted: AtomicU64,
    resumed: AtomicU64,
    active: AtomicU64,
    failures: [AtomicU64; HandshakeFailure::ALL.len()],
    /// Failures per second over the last [`RECENT_WINDOW`], for health reports.
    recent: Recent,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            accepted: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            active: AtomicU64::new(0),
            failures: Default::default(),
            recent: Recent::new(),
        }
    }
}

/// How far back [`ServerStats::recent_failures`] looks: one minute.
pub const RECENT_WINDOW: Duration = Duration::from_secs(60);

const SLOTS: usize = RECENT_WINDOW.as_secs() as usize;

/// A ring of one-second buckets of failure counts. Lock-free: a bucket is claimed for its
/// second by a compare-exchange and then cleared, so a failure counted in the instant of a
/// claim may be lost; the window is a health signal, the totals stay exact.
#[derive(Debug)]
struct Recent {
    started: Instant,
    buckets: Box<[Bucket]>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// The second (since `started`, plus one; zero: never used) the counts belong to.
    second: AtomicU64,
    counts: [AtomicU64; HandshakeFailure::ALL.len()],
}

impl Recent {
    fn new() -> Self {
        Recent {
            started: Instant::now(),
            buckets: (0..SLOTS).map(|_| Bucket::default()).collect(),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs() + 1
    }

    fn record(&self, index: usize) {
        self.record_at(index, self.now());
    }

    fn record_at(&self, index: usize, now: u64) {
        let bucket = &self.buckets[(now % SLOTS as u64) as usize];
        let seen = bucket.second.load(Ordering::Acquire);
        if seen != now
            && bucket
                .second
                .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for count in &bucket.counts {
                count.store(0, Ordering::Relaxed);
            }
        }
        bucket.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    fn count_at(&self, index: usize, now: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|b| {
                let second = b.second.load(Ordering::Acquire);
                second != 0 && second + SLOTS as u64 > now
            })
            .map(|b| b.counts[index].load(Ordering::Relaxed))
            .sum()
    }
}

impl ServerStats {
    /// Handshakes that completed with a verified (or, in optional mode, absent) client certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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

    /// Every failure reason with its count over the last minute ([`RECENT_WINDOW`]), only
    /// the reasons that occurred, most frequent first: "43 peers rejected as unknown CA in the
    /// last minute" for a readiness check or an alert. Counted in one-second buckets, so the
    /// window is 59 to 60 seconds long.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
    /// assert!(stats.recent_failures().is_empty());
    /// ```
    pub fn recent_failures(&self) -> Vec<(HandshakeFailure, u64)> {
        // One clock reading for all reasons: the counts are of the same window.
        let now = self.recent.now();
        let mut recent: Vec<(HandshakeFailure, u64)> = HandshakeFailure::ALL
            .iter()
            .map(|r| (*r, self.recent.count_at(r.index(), now)))
            .filter(|(_, n)| *n > 0)
            .collect();
        recent.sort_by_key(|r| std::cmp::Reverse(r.1));
        recent
    }

    /// All failed handshakes, whatever the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = mtls::server::ServerStats::default(); // or server.stats()
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
    /// let stats = mtls::server::ServerStats::default();
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
        self.recent.record(reason.index());
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

impl crate::live::FailureCounter for ServerStats {
    fn record_failure(&self, reason: HandshakeFailure) {
        ServerStats::record_failure(self, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_failures_count_within_the_window_and_sort_by_count() {
        let stats = ServerStats::default();
        stats.record_failure(HandshakeFailure::Expired);
        for _ in 0..3 {
            stats.record_failure(HandshakeFailure::UnknownIssuer);
        }
        assert_eq!(
            stats.recent_failures(),
            [
                (HandshakeFailure::UnknownIssuer, 3),
                (HandshakeFailure::Expired, 1)
            ]
        );
        assert_eq!(stats.handshake_failures_total(), 4);
    }

    #[test]
    fn old_seconds_leave_the_window_and_a_reused_bucket_forgets_them() {
        let recent = Recent::new();
        let index = HandshakeFailure::Revoked.index();
        recent.record_at(index, 5);
        recent.record_at(index, 5);
        recent.record_at(index, 30);
        assert_eq!(recent.count_at(index, 30), 3);
        assert_eq!(recent.count_at(index, 64), 3);
        // Second 5 is a full window old at 65; second 30 is not.
        assert_eq!(recent.count_at(index, 65), 1);
        // Second 65 reuses second 5's bucket, which starts from zero.
        recent.record_at(index, 65);
        assert_eq!(recent.count_at(index, 65), 2);
        assert_eq!(recent.count_at(index, 200), 0);
    }
}
