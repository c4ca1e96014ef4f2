//! One value with the facts a `/healthz` or readiness route reports: our certificate's expiry,
//! how reloading went, and who was rejected lately, as JSON or as sentences.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::error::HandshakeFailure;
use crate::rotate::status::{CertificateInfo, CertificateStatus};
use crate::server::stats::ServerStats;
use crate::util::time::humantime;

/// A server's health: [`CertificateStatus`] (our certificate, trust anchors, reloads) with the
/// handshake counters of [`ServerStats`], taken at one moment by [`Server::health`] or
/// [`ServerHandle::health`].
///
/// [`Health::healthy`] is about *us*: our certificate is fresh and the last reload worked.
/// Peers being rejected is reported ([`Health::problems`], `failures_last_minute` in the
/// JSON) but does not make us unhealthy, since a misconfigured caller must not take a
/// healthy service out of rotation.
///
/// [`Server::health`]: crate::Server::health
/// [`ServerHandle::health`]: crate::ServerHandle::health
///
/// # Examples
///
/// A `/healthz` route:
///
/// ```
/// use http_body_util::Full;
/// use hyper::body::Bytes;
///
/// fn healthz(health: mtls::Health) -> http::Response<Full<Bytes>> {
///     let status = if health.healthy() { 200 } else { 503 };
///     http::Response::builder()
///         .status(status)
///         .header("content-type", "application/json")
///         .body(Full::new(Bytes::from(health.to_json())))
///         .expect("a valid response")
/// }
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// assert_eq!(healthz(handle.health()).status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Health {
    /// Our certificate, trust anchors and reloads.
    pub certificate: CertificateStatus,
    /// Handshakes accepted since start.
    pub handshakes_accepted: u64,
    /// Connections open now.
    pub active_connections: u64,
    /// Failed handshakes since start, by reason (only reasons that occurred).
    pub failures: Vec<(HandshakeFailure, u64)>,
    /// Failed handshakes in the last minute, by reason, most frequent first
    /// ([`ServerStats::recent_failures`]).
    pub recent_failures: Vec<(HandshakeFailure, u64)>,
}

impl Health {
    pub(crate) fn new(certificate: CertificateStatus, stats: &ServerStats) -> Health {
        Health {
            certificate,
            handshakes_accepted: stats.handshakes_accepted(),
            active_connections: stats.active_connections(),
            failures: stats
                .failures()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            recent_failures: stats.recent_failures(),
        }
    }

    /// Whether this service can keep serving: our certificate is neither expired nor due for
    /// renewal, and the last reload did not fail ([`CertificateStatus::healthy`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// assert!(handle.health().healthy());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn healthy(&self) -> bool {
        self.certificate.healthy()
    }

    /// Each thing worth a person's attention, as a sentence: "our certificate CN=orders expires
    /// in 3 h", "the last reload failed: …", "43 handshakes failed as unknown_issuer in the
    /// last minute". Empty when all is well.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use mtls::dev::{DevCa, LeafSpec};
    ///
    /// # let ca = DevCa::new("test CA")?;
    /// let now = SystemTime::now();
    /// let month = Duration::from_secs(30 * 86_400);
    /// let short = ca.issue(&LeafSpec::server("localhost").validity(now - month, now + Duration::from_secs(3 * 3600 - 60)))?;
    /// let handle = mtls::Server::builder()
    ///     .identity(short.identity()?)
    ///     .trust(ca.trust()?)
    ///     .authorize(mtls::Authorizer::any_verified())
    ///     .build_rustls_config()?;
    /// let health = handle.health();
    /// assert!(!health.healthy());
    /// assert!(health.problems()[0].contains("expires in 2 h"), "{:?}", health.problems());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let ours = &self.certificate.identity;
        if ours.expired {
            problems.push(format!(
                "our certificate {} expired {} ago",
                ours.subject,
                words(
                    SystemTime::now()
                        .duration_since(ours.not_after)
                        .unwrap_or_default()
                )
            ));
        } else if ours.renewal_due {
            problems.push(format!(
                "our certificate {} expires in {} and is due for renewal",
                ours.subject,
                words(ours.remaining)
            ));
        }
        if let Some(error) = &self.certificate.last_reload_error {
            problems.push(format!(
                "the last reload failed, so the previous material is still in use: {error}"
            ));
        }
        for anchor in &self.certificate.trust_anchors {
            if anchor.expired {
                problems.push(format!("trusted CA {} has expired", anchor.subject));
            } else if anchor.remaining < Duration::from_secs(30 * 24 * 3600) {
                problems.push(format!(
                    "trusted CA {} expires in {}",
                    anchor.subject,
                    words(anchor.remaining)
                ));
            }
        }
        for crl in &self.certificate.crls {
            let Some(next) = crl.next_update else {
                continue;
            };
            let period = next.duration_since(crl.this_update).unwrap_or_default();
            if crl.expired && crl.enforced {
                problems.push(format!(
                    "the CRL of {} is past its nextUpdate ({}): peers it covers are refused until it is republished",
                    crl.issuer,
                    humantime(next)
                ));
            } else if crl.expired {
                problems.push(format!(
                    "the CRL of {} is past its nextUpdate ({}) and used anyway (allow_expired_crls): revocations since then are unknown",
                    crl.issuer,
                    humantime(next)
                ));
            } else if crl.remaining < period / 3 {
                problems.push(format!(
                    "the CRL of {} reaches its nextUpdate in {}",
                    crl.issuer,
                    words(crl.remaining)
                ));
            }
        }
        for (reason, count) in &self.recent_failures {
            let what = if *count == 1 {
                "handshake"
            } else {
                "handshakes"
            };
            problems.push(format!(
                "{count} {what} failed as {} ({reason}) in the last minute",
                reason.as_str()
            ));
        }
        problems
    }

    /// The report as one JSON object, for a `/healthz` body or a monitoring probe:
    ///
    /// ```json
    /// {"healthy":true,"problems":[],
    ///  "certificate":{"subject":"CN=orders","spiffe_id":null,"not_before":"…","not_after":"…",
    ///                 "remaining_seconds":2591999,"renewal_due":false,"expired":false},
    ///  "trust_anchors":[{…}],
    ///  "crls":[{"issuer":"CN=ca","this_update":"…","next_update":"…","remaining_seconds":600000,"enforced":true,"expired":false}],
    ///  "reload":{"last_reload":null,"last_error":null,"reloads":0,"failures":0},
    ///  "handshakes":{"accepted":12,"active_connections":1,
    ///                "failures":{"unknown_issuer":43},"failures_last_minute":{"unknown_issuer":43}}}
    /// ```
    ///
    /// Times are RFC 3339 in UTC; failure reasons are the [`HandshakeFailure::as_str`] names.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let json = handle.health().to_json();
    /// assert!(json.starts_with("{\"healthy\":true,\"problems\":[]"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        let status = &self.certificate;
        let _ = write!(out, "{{\"healthy\":{},\"problems\":[", self.healthy());
        for (i, problem) in self.problems().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, problem);
        }
        out.push_str("],\"certificate\":");
        certificate(&mut out, &status.identity);
        out.push_str(",\"trust_anchors\":[");
        for (i, anchor) in status.trust_anchors.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            certificate(&mut out, anchor);
        }
        out.push_str("],\"crls\":[");
        for (i, crl) in status.crls.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"issuer\":");
            string(&mut out, &crl.issuer);
            out.push_str(",\"this_update\":");
            string(&mut out, &humantime(crl.this_update));
            out.push_str(",\"next_update\":");
            match crl.next_update {
                Some(t) => string(&mut out, &humantime(t)),
                None => out.push_str("null"),
            }
            let _ = write!(
                out,
                ",\"remaining_seconds\":{},\"enforced\":{},\"expired\":{}}}",
                crl.remaining.as_secs(),
                crl.enforced,
                crl.expired
            );
        }
        out.push_str("],\"reload\":{\"last_reload\":");
        match status.last_reload {
            Some(t) => string(&mut out, &humantime(t)),
            None => out.push_str("null"),
        }
        out.push_str(",\"last_error\":");
        match &status.last_reload_error {
            Some(e) => string(&mut out, e),
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"reloads\":{},\"failures\":{}}},\"handshakes\":{{\"accepted\":{},\"active_connections\":{},\"failures\":",
            status.reloads,
            status.reload_failures,
            self.handshakes_accepted,
            self.active_connections
        );
        counts(&mut out, &self.failures);
        out.push_str(",\"failures_last_minute\":");
        counts(&mut out, &self.recent_failures);
        out.push_str("}}");
        out
    }
}

fn certificate(out: &mut String, info: &CertificateInfo) {
    out.push_str("{\"subject\":");
    string(out, &info.subject);
    out.push_str(",\"spiffe_id\":");
    match &info.spiffe_id {
        Some(id) => string(out, id),
        None => out.push_str("null"),
    }
    out.push_str(",\"not_before\":");
    string(out, &humantime(info.not_before));
    out.push_str(",\"not_after\":");
    string(out, &humantime(info.not_after));
    let _ = write!(
        out,
        ",\"remaining_seconds\":{},\"renewal_due\":{},\"expired\":{}}}",
        info.remaining.as_secs(),
        info.renewal_due,
        info.expired
    );
}

fn counts(out: &mut String, counts: &[(HandshakeFailure, u64)]) {
    out.push('{');
    for (i, (reason, count)) in counts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\":{count}", reason.as_str());
    }
    out.push('}');
}

/// A JSON string literal.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// "3 days", "5 h", "12 min", "40 s": the largest unit, rounded down.
pub(crate) fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} h", s / 3_600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotate::status::{CertificateInfo, CertificateStatus};

    fn info(subject: &str, left: i64, renewal_due: bool) -> CertificateInfo {
        let now = SystemTime::now();
        let at = |secs: i64| {
            if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        CertificateInfo {
            subject: subject.to_owned(),
            spiffe_id: None,
            not_before: at(-100 * 86_400),
            not_after: at(left),
            remaining: Duration::from_secs(left.max(0) as u64),
            renewal_due: renewal_due || left < 0,
            expired: left < 0,
        }
    }

    #[test]
    fn each_problem_is_named_in_a_sentence_and_healthy_follows_them() {
        let stats = ServerStats::default();
        stats.record_failure(HandshakeFailure::Expired);
        let status = CertificateStatus {
            identity: info("CN=orders", -2 * 3600, true),
            trust_anchors: vec![
                info("CN=Old Root", -86_400, true),
                info("CN=Ending Root", 10 * 86_400, true),
                info("CN=Fine Root", 400 * 86_400, false),
            ],
            last_reload: None,
            last_reload_error: Some("key \"x\" does not match".to_owned()),
            reloads: 1,
            reload_failures: 1,
            crls: Vec::new(),
        };
        let health = Health::new(status, &stats);
        assert!(!health.healthy());
        let problems = health.problems();
        assert!(
            problems[0].starts_with("our certificate CN=orders expired 2 h ago"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("the last reload failed"))
        );
        assert!(problems.contains(&"trusted CA CN=Old Root has expired".to_owned()));
        assert!(problems.contains(&"trusted CA CN=Ending Root expires in 10 days".to_owned()));
        assert!(!problems.iter().any(|p| p.contains("Fine Root")));
        assert!(
            problems.contains(
                &"1 handshake failed as expired (certificate expired) in the last minute"
                    .to_owned()
            ),
            "{problems:?}"
        );
        // The reload error's quotes stay valid JSON.
        let json = health.to_json();
        assert!(json.contains(r#"key \"x\" does not match"#), "{json}");

        let fine = CertificateStatus {
            identity: info("CN=orders", 50 * 86_400, false),
            trust_anchors: vec![info("CN=Fine Root", 400 * 86_400, false)],
            last_reload: None,
            last_reload_error: None,
            reloads: 0,
            reload_failures: 0,
            crls: Vec::new(),
        };
        let health = Health::new(fine, &ServerStats::default());
        assert!(health.healthy() && health.problems().is_empty());
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn durations_in_words_take_the_largest_unit() {
        assert_eq!(words(Duration::from_secs(40)), "40 s");
        assert_eq!(words(Duration::from_secs(12 * 60 + 5)), "12 min");
        assert_eq!(words(Duration::from_secs(3 * 3600 + 1)), "3 h");
        assert_eq!(words(Duration::from_secs(30 * 3600)), "30 h");
        assert_eq!(words(Duration::from_secs(29 * 86_400)), "29 days");
    }
}
