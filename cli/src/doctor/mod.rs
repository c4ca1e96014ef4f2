//! `mtls doctor URL`: a mutual-TLS connection walked step by step, each failure named with
//! its cause and its fix.
//!
//! The steps, in the order they run, each in its own module: our own material
//! ([`own_material`]), the name and the TCP connection ([`connect`]), the TLS handshake
//! ([`handshake`]), and one HTTP request ([`request`]). A refused handshake is explained by
//! [`refused`], with the server's alerts in [`alert`], our verdict on its certificate in
//! [`server_certificate`], its chain from [`capture`] and what its port speaks from [`probe`].

mod alert;
mod capture;
mod connect;
mod handshake;
mod own_material;
mod probe;
mod refused;
mod request;
mod server_certificate;

use std::time::{Duration, Instant, SystemTime};

use mtls::Authorizer;
use serde::Serialize;

use crate::cert::{Facts, rfc3339};
use crate::load::{self, LoadFailure, Loaded};
use crate::{DoctorArgs, Outcome};

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Serialize)]
struct Step {
    /// A stable name for monitoring: `identity`, `trust`, `config`, `validity`, `usage`,
    /// `chain`, `resolve`, `connect`, `handshake`, `server_certificate`, `client_auth`,
    /// `accepted`, `http`, `resumption` (docs/TROUBLESHOOTING.md lists them).
    step: &'static str,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
}

/// The negotiated session.
#[derive(Debug, Serialize)]
struct Session {
    version: String,
    cipher_suite: String,
    key_exchange_group: String,
    alpn: String,
    handshake: String,
    /// Whether a reconnection resumed the session (checked after a successful request).
    resumption: String,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    ok: bool,
    exit_code: u8,
    verdict: String,
    steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Session>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<Facts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
}

impl Report {
    fn push(&mut self, step: &'static str, status: Status, detail: impl Into<String>) -> &mut Step {
        self.steps.push(Step {
            step,
            status,
            detail: detail.into(),
            cause: None,
            fix: None,
            ms: None,
        });
        self.steps.last_mut().expect("just pushed")
    }

    /// Records a failed step and the verdict it leads to.
    fn fail(&mut self, step: &'static str, detail: impl Into<String>, diagnosis: Diagnosis) {
        let s = self.push(step, Status::Fail, detail);
        s.cause = Some(diagnosis.cause.clone());
        s.fix = Some(diagnosis.fix.clone());
        self.verdict = format!("BROKEN: {}. Fix: {}.", diagnosis.cause, diagnosis.fix);
    }
}

/// Why, and what to do.
struct Diagnosis {
    cause: String,
    fix: String,
}

fn diagnosis(cause: impl Into<String>, fix: impl Into<String>) -> Diagnosis {
    Diagnosis {
        cause: cause.into(),
        fix: fix.into(),
    }
}

/// One diagnosis, or several numbered in one.
fn every_diagnosis(all: impl Iterator<Item = Diagnosis>) -> Diagnosis {
    let mut all: Vec<Diagnosis> = all.collect();
    if all.len() == 1 {
        return all.remove(0);
    }
    let numbered = |part: fn(&Diagnosis) -> &String| {
        all.iter()
            .enumerate()
            .map(|(i, d)| format!("({}) {}", i + 1, part(d)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    diagnosis(
        format!("{} problems: {}", all.len(), numbered(|d| &d.cause)),
        numbered(|d| &d.fix),
    )
}

impl Step {
    fn took(&mut self, since: Instant) -> &mut Self {
        self.ms = Some(since.elapsed().as_millis() as u64);
        self
    }
}

pub fn run(args: DoctorArgs) -> Outcome {
    let uri: http::Uri = match args.url.parse() {
        Ok(u) => u,
        Err(e) => return Outcome::Usage(format!("`{}` is not a URL: {e}", args.url)),
    };
    if uri.scheme_str() != Some("https") {
        return Outcome::Usage(format!("`{}`: mutual TLS needs an https:// URL", args.url));
    }
    let Some(host) = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
    else {
        return Outcome::Usage(format!("`{}` has no host", args.url));
    };
    let source = match load::source(&args.material) {
        Ok(s) => s,
        Err(e) => return Outcome::Usage(e),
    };
    let expect = match args.expect_server.as_deref().map(Authorizer::pattern) {
        None => None,
        Some(Ok(policy)) => Some(policy),
        Some(Err(e)) => return Outcome::Usage(format!("--expect-server: {e}")),
    };
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Outcome::Usage("--timeout must be between 0 and 3600 seconds".to_owned());
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::Usage(format!("cannot start the runtime: {e}")),
    };
    let mut report = Report {
        url: args.url.clone(),
        ok: false,
        exit_code: 1,
        verdict: String::new(),
        steps: Vec::new(),
        session: None,
        server: None,
        http_status: None,
    };
    let port = uri.port_u16().unwrap_or(443);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let ctx = Context {
        host,
        port,
        path,
        timeout,
        expect: args.expect_server.clone(),
    };
    let loaded = load::load(&args.material, &source, expect, args.tls13_only, timeout);
    runtime.block_on(diagnose(&ctx, loaded, &mut report));
    report.exit_code = if report.ok { 0 } else { 1 };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => return Outcome::Usage(format!("cannot encode the report: {e}")),
        }
    } else {
        print_text(&report);
    }
    if report.ok {
        Outcome::Ok
    } else {
        Outcome::Broken
    }
}

struct Context {
    host: String,
    port: u16,
    path: String,
    timeout: Duration,
    expect: Option<String>,
}

fn print_text(report: &Report) {
    println!("mtls doctor {}", report.url);
    for step in &report.steps {
        let ms = step.ms.map(|ms| format!(" ({ms} ms)")).unwrap_or_default();
        println!("  {} {}{ms}", step.status.mark(), step.detail);
        if let Some(cause) = &step.cause {
            println!("      cause: {cause}");
        }
        if let Some(fix) = &step.fix {
            println!("      fix:   {fix}");
        }
    }
    if let Some(s) = &report.session {
        println!(
            "  session: {}, {}, {}, ALPN {}, {}",
            s.version, s.key_exchange_group, s.cipher_suite, s.alpn, s.handshake
        );
    }
    if let Some(server) = &report.server {
        println!(
            "  server: {}{} (expires {}, {})",
            server.name(),
            if server.sans.is_empty() {
                String::new()
            } else {
                format!(" [{}]", server.sans.join(", "))
            },
            server.not_after,
            server.time_left
        );
    }
    println!("verdict: {}", report.verdict);
}

/// The steps in order; each records its outcome, and the first that fails ends the walk.
async fn diagnose(ctx: &Context, loaded: Result<Loaded, LoadFailure>, report: &mut Report) {
    // 1. Our own material.
    let Some(ours) = own_material::check(loaded, report) else {
        return;
    };
    // 2. The name, then TCP.
    let Some(addrs) = connect::resolve(ctx, report).await else {
        return;
    };
    let Some(tcp) = connect::connect(ctx, &addrs, report).await else {
        return;
    };
    // 3. The handshake, on the client's own rustls config, with the server's request for a
    // certificate recorded.
    let Some(established) = handshake::handshake(ctx, &ours, tcp, report).await else {
        return;
    };
    let asked = established.asked.is_some();
    // 4. One request. Under TLS 1.3 the server's verdict on our certificate arrives here.
    let Some(status) = request::get(ctx, &ours.leaf, established, report).await else {
        return;
    };
    if !asked {
        report.verdict = format!(
            "NOT MUTUAL: {}:{} answered {status} over one-way TLS; it never asked for our certificate. Fix: turn on client-certificate verification on the server.",
            ctx.host, ctx.port
        );
        return;
    }
    report.ok = true;
    // 5. Resumption: two more connections through the library's own connector, whose second
    // may resume the first's TLS 1.3 session.
    let resumption = request::resumption(&ours.client, ctx).await;
    if let Some(session) = &mut report.session {
        session.resumption = resumption.clone();
    }
    report.push(
        "resumption",
        Status::Ok,
        format!("resumption: {resumption}"),
    );
    let server_name = report
        .server
        .as_ref()
        .map(Facts::name)
        .unwrap_or_else(|| ctx.host.clone());
    report.verdict = format!(
        "OK: mutual TLS works: we are {}, the server is {server_name}, GET {} answered {status}.",
        ours.leaf.name(),
        ctx.path
    );
}

/// `fix`, preceded by a word on clocks when `gap` (to a certificate's start or end of
/// validity) is under a day: a clock that is off explains that much.
fn clocks_or(gap: Duration, fix: &str) -> String {
    if gap < Duration::from_secs(86_400) {
        format!(
            "check clocks (this machine says {}); otherwise {fix}",
            rfc3339(SystemTime::now())
        )
    } else {
        fix.to_owned()
    }
}

/// The host as a URI writes it: an IPv6 address in brackets.
fn uri_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
