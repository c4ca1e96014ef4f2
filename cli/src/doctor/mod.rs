//! `mtls doctor URL`: a mutual-TLS connection walked step by step, each failure named with
//! its cause and its fix.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mtls::{Authorizer, CertificateDer, ClientError, alert_name};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cert::{Facts, chain_order, dn_text, rfc3339, words};
use crate::load::{self, LoadFailure, Loaded};
use crate::problems;
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
    /// A stable name for monitoring: `identity`, `validity`, `usage`, `chain`, `resolve`,
    /// `connect`, `handshake`, `server_certificate`, `client_auth`, `accepted`, `http`.
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

async fn diagnose(ctx: &Context, loaded: Result<Loaded, LoadFailure>, report: &mut Report) {
    // 1. Our own material.
    let loaded = match loaded {
        Ok(l) => l,
        Err(failure) => {
            let (step, what, fix) = match &failure {
                LoadFailure::Identity(_) => (
                    "identity",
                    "our certificate and key",
                    "point --cert/--key (or --keystore) at a certificate and the key it was issued for",
                ),
                LoadFailure::Trust(_) => (
                    "trust",
                    "the CAs we trust",
                    "point --ca (or --truststore) at the PEM or PKCS#12 file of the CA that issues the server's certificate",
                ),
                LoadFailure::Config(_) => (
                    "config",
                    "the configuration file",
                    "correct the file as the message says (docs/CONFIG.md)",
                ),
                LoadFailure::Client(_) => (
                    "identity",
                    "our TLS client",
                    "correct the material or options named in the message",
                ),
            };
            let message = match failure {
                LoadFailure::Identity(m)
                | LoadFailure::Trust(m)
                | LoadFailure::Config(m)
                | LoadFailure::Client(m) => m,
            };
            report.fail(
                step,
                format!("{what}: cannot be used"),
                diagnosis(message, fix),
            );
            return;
        }
    };
    let anchors: Vec<CertificateDer<'static>> = loaded
        .trust
        .iter()
        .flat_map(|b| b.certificates().iter().cloned())
        .collect();
    let trusted: Vec<Facts> = anchors.iter().filter_map(|c| Facts::of(c).ok()).collect();
    let ours = match check_own_material(&loaded, &trusted, report) {
        Some(ours) => ours,
        None => return,
    };

    // 2. The name, then TCP.
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        ctx.timeout,
        tokio::net::lookup_host((ctx.host.as_str(), ctx.port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            report.fail(
                "resolve",
                format!("resolve {}: failed", ctx.host),
                diagnosis(
                    format!("the name {} does not resolve ({e})", ctx.host),
                    "check the host name in the URL for typos, and that this machine's DNS (or /etc/hosts) knows it",
                ),
            );
            return;
        }
        Err(_) => {
            report.fail(
                "resolve",
                format!("resolve {}: no answer", ctx.host),
                diagnosis(
                    format!(
                        "resolving {} took longer than {} s",
                        ctx.host,
                        ctx.timeout.as_secs_f64()
                    ),
                    "check this machine's DNS servers",
                ),
            );
            return;
        }
    };
    let Some(first) = addrs.first() else {
        report.fail(
            "resolve",
            format!("resolve {}: no addresses", ctx.host),
            diagnosis(
                format!("{} resolves to no address", ctx.host),
                "check the DNS records of the name",
            ),
        );
        return;
    };
    report
        .push(
            "resolve",
            Status::Ok,
            format!("resolve {}: {}", ctx.host, first.ip()),
        )
        .took(started);

    let started = Instant::now();
    let tcp = match connect_any(&addrs, ctx.timeout).await {
        Ok(tcp) => tcp,
        Err((addr, e)) => {
            let d = if e.kind() == io::ErrorKind::ConnectionRefused {
                diagnosis(
                    format!("nothing listens on {addr} (connection refused)"),
                    format!(
                        "start the service, or check the port in the URL ({})",
                        ctx.port
                    ),
                )
            } else if e.kind() == io::ErrorKind::TimedOut {
                diagnosis(
                    format!(
                        "{addr} did not answer within {} s",
                        ctx.timeout.as_secs_f64()
                    ),
                    "check that the host is up and that no firewall drops the traffic",
                )
            } else {
                diagnosis(
                    format!("cannot connect to {addr}: {e}"),
                    "check the address, the port and the network path",
                )
            };
            report.fail("connect", format!("TCP connect to {addr}: failed"), d);
            return;
        }
    };
    let peer_addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    report
        .push("connect", Status::Ok, format!("TCP connect to {peer_addr}"))
        .took(started);

    // 3. The handshake, on the client's own rustls config, with the server's request for a
    // certificate recorded.
    let asked = Arc::new(Asked::default());
    let mut config = (*loaded.client.rustls_config()).clone();
    config.client_auth_cert_resolver = Arc::new(Recording {
        inner: Arc::clone(&config.client_auth_cert_resolver),
        asked: Arc::clone(&asked),
    });
    let config = Arc::new(config);
    let Ok(server_name) = ServerName::try_from(ctx.host.clone()) else {
        report.fail(
            "handshake",
            "TLS handshake: not attempted",
            diagnosis(
                format!("`{}` is neither a DNS name nor an IP address", ctx.host),
                "use a valid host name in the URL",
            ),
        );
        return;
    };
    let started = Instant::now();
    let connect = TlsConnector::from(Arc::clone(&config)).connect(server_name.clone(), tcp);
    let tls = match tokio::time::timeout(ctx.timeout, connect).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            handshake_failed(ctx, &ours, &trusted, &anchors, &asked, &e, report).await;
            return;
        }
        Err(_) => {
            report.fail(
                "handshake",
                "TLS handshake: no answer",
                diagnosis(
                    format!(
                        "{peer_addr} accepted the connection but did not answer our TLS hello within {} s",
                        ctx.timeout.as_secs_f64()
                    ),
                    "check that this port serves TLS (a plaintext service waits for its own protocol), or that the server is not overloaded",
                ),
            );
            return;
        }
    };
    let handshake_ms = started.elapsed().as_millis() as u64;
    let (_, conn) = tls.get_ref();
    let session = Session {
        version: conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .replace('_', ".")
            .replacen("TLSv1.", "TLS 1.", 1),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("?")
            .to_owned(),
        key_exchange_group: conn
            .negotiated_key_exchange_group()
            .and_then(|g| g.name().as_str())
            .unwrap_or("?")
            .to_owned(),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "none".to_owned()),
        handshake: match conn.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => "resumed".to_owned(),
            Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => {
                "full handshake (after a HelloRetryRequest)".to_owned()
            }
            _ => "full handshake".to_owned(),
        },
        resumption: "not checked".to_owned(),
    };
    let server = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Facts::of(c).ok());
    let h2 = conn.alpn_protocol() == Some(b"h2");
    report.steps.push(Step {
        step: "handshake",
        status: Status::Ok,
        detail: format!(
            "TLS handshake: {} {} {}",
            session.version, session.key_exchange_group, session.cipher_suite
        ),
        cause: None,
        fix: None,
        ms: Some(handshake_ms),
    });
    if let Some(server) = &server {
        let expect = ctx
            .expect
            .as_ref()
            .map(|p| format!(", matches --expect-server {p}"))
            .unwrap_or_default();
        report.push(
            "server_certificate",
            Status::Ok,
            format!(
                "server certificate: {} valid for {}{expect}, {}",
                server.name(),
                ctx.host,
                server.time_left
            ),
        );
    }
    report.session = Some(session);
    report.server = server;

    let asked_now = asked.asked();
    if let Some(hints) = &asked_now {
        let detail = hint_words(hints, &ours);
        let names: Vec<String> = hints.iter().map(|h| dn_text(h)).collect();
        let among = hints.is_empty() || ours.hinted(&names);
        let s = report.push(
            "client_auth",
            if among { Status::Ok } else { Status::Warn },
            format!("server asked for our certificate{detail}"),
        );
        if !among {
            s.cause = Some(format!(
                "the server names the CAs it trusts, and {} is not one of them",
                ours.issuer
            ));
            s.fix = Some(
                "expect an unknown-CA rejection unless the server trusts our CA under another name"
                    .to_owned(),
            );
        }
    } else {
        let s = report.push(
            "client_auth",
            Status::Warn,
            "server did not ask for a client certificate: this is one-way TLS, not mutual TLS",
        );
        s.cause = Some("the server does not request client certificates on this port".to_owned());
        s.fix = Some(
            "turn on client-certificate verification on the server (nginx: ssl_verify_client on; mtls: ClientAuth::Required, the default)"
                .to_owned(),
        );
    }

    // 4. One request. Under TLS 1.3 the server's verdict on our certificate arrives here.
    let started = Instant::now();
    let result = tokio::time::timeout(ctx.timeout, request(tls, ctx, h2)).await;
    let (status, body) = match result {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            let stage = if asked_now.is_some() {
                "accepted"
            } else {
                "http"
            };
            match find_tls(&*e) {
                Some(rustls::Error::AlertReceived(alert)) => {
                    let d = explain_alert(alert, &ours, asked_now.as_deref(), ctx);
                    let detail = if rejects_us(alert) {
                        format!(
                            "server rejected our certificate (alert {})",
                            alert_name(alert)
                        )
                    } else {
                        format!("server ended the connection (alert {})", alert_name(alert))
                    };
                    report.fail(if rejects_us(alert) { stage } else { "http" }, detail, d);
                }
                _ => {
                    report.fail(
                        stage,
                        "server closed the connection without answering",
                        diagnosis(
                            format!("the server ended the connection after the handshake without an HTTP answer ({e})"),
                            "read the server's log for the rejection: some servers reject a client certificate by closing the connection",
                        ),
                    );
                }
            }
            return;
        }
        Err(_) => {
            report.fail(
                "http",
                "HTTP request: no answer",
                diagnosis(
                    format!(
                        "the server did not answer GET {} within {} s",
                        ctx.path,
                        ctx.timeout.as_secs_f64()
                    ),
                    "check the server's handler and load, or raise --timeout",
                ),
            );
            return;
        }
    };
    if asked_now.is_some() {
        report.push(
            "accepted",
            Status::Ok,
            format!("server accepted our certificate ({})", ours.name()),
        );
    }
    report.http_status = Some(status.as_u16());
    let took = started.elapsed().as_millis() as u64;
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        let body = body.trim();
        let shown = if body.is_empty() {
            String::new()
        } else {
            format!(": \"{}\"", truncate(body, 300))
        };
        report.fail(
            "http",
            format!("HTTP GET {}: {status}", ctx.path),
            diagnosis(
                format!(
                    "TLS worked, but the service answered {status} for {} to {}{shown}",
                    ctx.path,
                    ours.name()
                ),
                format!(
                    "grant {} access to {} in the server's roles or route rules, or call a route this identity may use",
                    ours.name(),
                    ctx.path
                ),
            ),
        );
        return;
    }
    report
        .push(
            "http",
            Status::Ok,
            format!("HTTP GET {}: {status}", ctx.path),
        )
        .ms = Some(took);
    if asked_now.is_none() {
        report.verdict = format!(
            "NOT MUTUAL: {}:{} answered {status} over one-way TLS; it never asked for our certificate. Fix: turn on client-certificate verification on the server.",
            ctx.host, ctx.port
        );
        return;
    }
    report.ok = true;
    // Resumption: two more connections through the library's own connector, whose second
    // may resume the first's TLS 1.3 session.
    let resumption = resumption(&loaded.client, ctx).await;
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
        ours.name(),
        ctx.path
    );
}

/// Two more requests through the library's own client, each on a new connection (the doctor's
/// client keeps no idle connections): does the second resume the first's TLS session?
async fn resumption(client: &mtls::Client, ctx: &Context) -> String {
    let Ok(uri) =
        format!("https://{}:{}{}", uri_host(&ctx.host), ctx.port, ctx.path).parse::<http::Uri>()
    else {
        return "not checked".to_owned();
    };
    let attempt = async {
        let first = client.get(uri.clone()).await.ok()?;
        let _ = first.into_body().collect().await;
        let second = client.get(uri).await.ok()?;
        let resumed = second
            .extensions()
            .get::<mtls::PeerIdentity>()
            .map(mtls::PeerIdentity::resumed);
        let _ = second.into_body().collect().await;
        resumed
    };
    match tokio::time::timeout(ctx.timeout, attempt).await {
        Ok(Some(true)) => "a reconnection resumed the TLS session (no full handshake)".to_owned(),
        Ok(Some(false)) => {
            "a reconnection made a full handshake (the server did not resume our session)"
                .to_owned()
        }
        _ => "not checked (the reconnections failed)".to_owned(),
    }
}

fn uri_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Our leaf and chain, checked before connecting. `None`: a fatal problem (recorded).
fn check_own_material(loaded: &Loaded, trusted: &[Facts], report: &mut Report) -> Option<Facts> {
    let chain: Vec<Facts> = loaded
        .identity
        .chain()
        .iter()
        .filter_map(|c| Facts::of(c).ok())
        .collect();
    let Some(mut leaf) = chain.first().cloned() else {
        report.fail(
            "identity",
            "our certificate: unreadable",
            diagnosis(
                "our certificate could not be parsed",
                "check the certificate file with `mtls inspect`",
            ),
        );
        return None;
    };
    leaf.chain_names = chain
        .iter()
        .flat_map(|c| [c.subject.clone(), c.issuer.clone()])
        .collect();
    report.push(
        "identity",
        Status::Ok,
        format!(
            "our certificate: {}, key matches ({})",
            leaf.name(),
            leaf.key
        ),
    );
    let now = SystemTime::now();
    if leaf.expired() {
        let ago = now.duration_since(leaf.not_after_time).unwrap_or_default();
        report.fail(
            "validity",
            format!("our certificate expired at {}", leaf.not_after),
            diagnosis(
                format!("our certificate {} expired {} ago", leaf.name(), words(ago)),
                clocks_or(
                    ago,
                    "renew our certificate (with `mtls ca issue` for a development CA)",
                ),
            ),
        );
        return None;
    }
    if leaf.not_yet_valid() {
        let wait = leaf.not_before_time.duration_since(now).unwrap_or_default();
        report.fail(
            "validity",
            format!("our certificate is valid only from {}", leaf.not_before),
            diagnosis(
                format!(
                    "our certificate {} becomes valid in {}",
                    leaf.name(),
                    words(wait)
                ),
                clocks_or(wait, "use a certificate that is valid now"),
            ),
        );
        return None;
    }
    // The library's renewal rule (two thirds of the lifetime, or a day left), as our
    // server's and client's health reports apply it.
    let status = mtls::Rotate::certificate_status(&loaded.client).identity;
    let due = status.renewal_due;
    let s = report.push(
        "validity",
        if due { Status::Warn } else { Status::Ok },
        format!(
            "our certificate is valid until {} ({})",
            leaf.not_after, leaf.time_left
        ),
    );
    if due {
        s.cause = Some(format!(
            "renewal is due: {} left, under a third of its lifetime or under a day",
            words(status.remaining)
        ));
        s.fix = Some("renew it soon".to_owned());
    }
    if leaf.allows_client_auth() {
        report.push(
            "usage",
            Status::Ok,
            "our certificate may be used by a TLS client (clientAuth)",
        );
    } else {
        report.fail(
            "usage",
            format!(
                "our certificate is not for TLS clients (extended key usage: {})",
                leaf.extended_key_usage.join(", ")
            ),
            diagnosis(
                format!(
                    "our certificate {} lacks the clientAuth extended key usage, so servers refuse it",
                    leaf.name()
                ),
                "reissue it with extendedKeyUsage = clientAuth (`mtls ca issue --client` or --both)",
            ),
        );
        return None;
    }
    // The chain: in order, and up to a CA (ours or the server's, we cannot know which).
    let order = chain_order(&chain);
    if !order.breaks.is_empty() {
        let fix = match &order.suggested {
            Some(o) => format!(
                "put the certificates in the file in this order: {}",
                o.iter()
                    .map(|i| chain[*i].subject.clone())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            None => "put our certificate first, then each issuer after the certificate it signed"
                .to_owned(),
        };
        report.fail(
            "chain",
            "our chain is out of order",
            diagnosis(
                format!(
                    "certificate {} ({}) is not issued by the next one ({})",
                    order.breaks[0] + 1,
                    chain[order.breaks[0]].subject,
                    chain[order.breaks[0] + 1].subject
                ),
                fix,
            ),
        );
        return None;
    }
    let top = chain.last().expect("non-empty");
    let links = chain.iter().map(|c| c.subject.clone()).collect::<Vec<_>>();
    if top.self_signed || trusted.iter().any(|t| t.subject == top.issuer) {
        report.push(
            "chain",
            Status::Ok,
            format!("our chain: {} → {}", links.join(" → "), top.issuer),
        );
    } else {
        let s = report.push(
            "chain",
            Status::Warn,
            format!(
                "our chain ends at {}, issued by {}, which is not among the CAs we trust",
                top.subject, top.issuer
            ),
        );
        s.cause = Some(format!(
            "the server must trust {} itself (we cannot check that from here)",
            top.issuer
        ));
        s.fix = Some(
            "if the server says unknown CA, add the missing intermediate to our certificate file or the CA to the server's trust"
                .to_owned(),
        );
    }
    Some(leaf)
}

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

/// ", CA hints: …, our issuer … is (not) among them", or nothing without hints.
fn hint_words(hints: &[Vec<u8>], ours: &Facts) -> String {
    if hints.is_empty() {
        return " (it sent no CA hints)".to_owned();
    }
    let names: Vec<String> = hints.iter().map(|h| dn_text(h)).collect();
    let among = ours.hinted(&names);
    format!(
        "; its CA hints: {}; our issuer {} is {}among them",
        names.join("; "),
        ours.issuer,
        if among { "" } else { "NOT " }
    )
}

async fn connect_any(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, (SocketAddr, io::Error)> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = Some((*addr, e)),
            Err(_) => last = Some((*addr, io::Error::from(io::ErrorKind::TimedOut))),
        }
    }
    Err(last.unwrap_or_else(|| {
        (
            SocketAddr::from(([0, 0, 0, 0], 0)),
            io::Error::other("no address"),
        )
    }))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// GET the path over the established connection: (status, body text). A failure carries the
/// connection's own error when it has one: that is where a TLS alert from the server lands.
async fn request(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    ctx: &Context,
    h2: bool,
) -> Result<(http::StatusCode, String), BoxError> {
    let authority = if ctx.port == 443 {
        uri_host(&ctx.host)
    } else {
        format!("{}:{}", uri_host(&ctx.host), ctx.port)
    };
    let io = TokioIo::new(tls);
    let (sent, conn): (
        Result<_, BoxError>,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    ) = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
        let conn = tokio::spawn(conn);
        let req = http::Request::get(format!("https://{authority}{}", ctx.path))
            .body(Empty::<Bytes>::new())?;
        (respond(sender.send_request(req).await).await, conn)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        let conn = tokio::spawn(conn);
        let req = http::Request::get(ctx.path.as_str())
            .header(http::header::HOST, authority)
            .body(Empty::<Bytes>::new())?;
        (respond(sender.send_request(req).await).await, conn)
    };
    match sent {
        Ok(answer) => Ok(answer),
        Err(e) => {
            // The connection task ends with the underlying error (an alert, a reset).
            let own = tokio::time::timeout(Duration::from_secs(1), conn).await;
            match own {
                Ok(Ok(Err(conn_error))) if find_tls(&conn_error).is_some() => {
                    Err(conn_error.into())
                }
                _ => Err(e),
            }
        }
    }
}

async fn respond(
    response: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<(http::StatusCode, String), BoxError> {
    let response = response?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The rustls error inside an error chain. rustls reports an alert that arrives after the
/// handshake as text ("received fatal alert: AccessDenied"), so that is read back too.
fn find_tls(error: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(tls) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        if let Some(alert) = alert_in_text(&e.to_string()) {
            return Some(rustls::Error::AlertReceived(alert));
        }
        cause = e.source();
    }
    None
}

/// "received fatal alert: UnknownCA" → `AlertDescription::UnknownCA`.
fn alert_in_text(text: &str) -> Option<AlertDescription> {
    let name = text.split("received fatal alert: ").nth(1)?;
    // The name ends where rustls' `Debug` name would: "AccessDenied, then ..." still counts.
    let name = name.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (0..=u8::MAX)
        .map(AlertDescription::from)
        .find(|a| format!("{a:?}") == name)
}

/// Whether an alert is the server's verdict on our certificate.
fn rejects_us(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateRequired
            | AlertDescription::DecryptError
    )
}

/// The server's alert about our certificate (or the handshake), in words.
fn explain_alert(
    alert: AlertDescription,
    ours: &Facts,
    hints: Option<&[Vec<u8>]>,
    ctx: &Context,
) -> Diagnosis {
    let hint_list = hints
        .filter(|h| !h.is_empty())
        .map(|h| h.iter().map(|n| dn_text(n)).collect::<Vec<_>>());
    match alert {
        AlertDescription::UnknownCA => {
            let (cause_tail, fix) = match &hint_list {
                Some(names) if !ours.hinted(names) => (
                    format!("; it trusts {}, and our issuer is not among them", names.join("; ")),
                    format!(
                        "get a certificate issued by {}, or add {} to the server's trust bundle",
                        names.join(" or "),
                        ours.issuer
                    ),
                ),
                Some(_) => (
                    "; its CA hints do list our issuer, so an intermediate is missing or the CA certificate differs (same name, another key)".to_owned(),
                    "send the full chain (our certificate, then its intermediates) and compare the server's CA file with ours by fingerprint (`mtls inspect`)".to_owned(),
                ),
                None => (
                    String::new(),
                    format!("add {} (our issuer) to the server's trust bundle, or get a certificate from the CA the server trusts", ours.issuer),
                ),
            };
            diagnosis(
                format!(
                    "the server does not trust the CA that issued our certificate ({}){cause_tail}",
                    ours.issuer
                ),
                fix,
            )
        }
        AlertDescription::CertificateExpired => diagnosis(
            format!(
                "the server says our certificate is expired, but by our clock it is valid until {}",
                ours.not_after
            ),
            "check the server's clock, and whether it checks an older certificate of ours (a stale file or cache)",
        ),
        AlertDescription::CertificateRevoked => diagnosis(
            format!(
                "the server has our certificate (serial {}) on its revocation list",
                ours.serial
            ),
            "get a new certificate; a revoked one cannot be used again",
        ),
        AlertDescription::AccessDenied => diagnosis(
            format!(
                "the server verified our certificate, but its policy does not allow {}",
                ours.name()
            ),
            format!(
                "ask the owner of {}:{} to allow {} (its authorization policy or allow list), or present the identity it expects",
                ctx.host,
                ctx.port,
                ours.name()
            ),
        ),
        AlertDescription::CertificateRequired => diagnosis(
            "the server requires a client certificate and received none",
            "check that our certificate file holds a certificate, and that it matches the CAs the server hints",
        ),
        AlertDescription::ProtocolVersion => diagnosis(
            "the server and we share no TLS version",
            "enable TLS 1.3 on the server, or allow TLS 1.2 on our side (drop --tls13-only / tls13_only)",
        ),
        AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => diagnosis(
            "the server and we share no cipher suite, key-exchange group or signature algorithm",
            "compare the server's TLS settings with ours: TLS 1.3 AES-GCM or ChaCha20-Poly1305 suites, groups X25519, P-256 or P-384, ECDSA, Ed25519 or RSA-PSS signatures",
        ),
        AlertDescription::DecryptError => diagnosis(
            "the server could not verify the signature made with our key",
            "check that our key belongs to our certificate (`mtls inspect CERT KEY`)",
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown => diagnosis(
            format!(
                "the server refused our certificate as {} ({})",
                alert_name(alert).replace('_', " "),
                if ours.allows_client_auth() {
                    "its usage allows TLS clients, so the server's log has the reason: often a chain it cannot build, or a policy"
                } else {
                    "it lacks the clientAuth extended key usage"
                }
            ),
            "read the server's log for the reason, and compare our certificate with what the server requires (`mtls inspect`)",
        ),
        other => diagnosis(
            format!(
                "the server ended the connection with TLS alert {}",
                alert_name(other)
            ),
            "read the server's log for the reason",
        ),
    }
}

/// A handshake that failed: which side, which certificate, why.
async fn handshake_failed(
    ctx: &Context,
    ours: &Facts,
    trusted: &[Facts],
    anchors: &[CertificateDer<'static>],
    asked: &Asked,
    error: &io::Error,
    report: &mut Report,
) {
    let Some(tls) = find_tls(error) else {
        let d = if error.kind() == io::ErrorKind::UnexpectedEof
            || error.kind() == io::ErrorKind::ConnectionReset
        {
            if let Some(reply) = plaintext_reply(ctx).await {
                not_tls(ctx, &reply)
            } else {
                diagnosis(
                    format!(
                        "{}:{} closed the connection during the TLS handshake without saying why",
                        ctx.host, ctx.port
                    ),
                    "check that this port serves TLS, and read the server's log",
                )
            }
        } else {
            diagnosis(
                format!("the connection failed during the TLS handshake: {error}"),
                "check the network path and the server's log",
            )
        };
        report.fail("handshake", "TLS handshake: failed", d);
        return;
    };
    match &tls {
        rustls::Error::InvalidCertificate(cert_error) => {
            let chain = capture_chain(ctx).await;
            let server = chain
                .as_ref()
                .and_then(|c| c.first())
                .and_then(|c| Facts::of(c).ok());
            let found = match (&chain, &server) {
                (Some(chain), Some(leaf)) => {
                    let provider = mtls::crypto_provider();
                    problems::every_problem(cert_error, chain, leaf, anchors, &ctx.host, &provider)
                }
                _ => vec![cert_error.clone()],
            };
            let d = every_diagnosis(found.iter().map(|problem| {
                explain_server_certificate(problem, server.as_ref(), chain.as_deref(), trusted, ctx)
            }));
            report.server = server;
            report.push(
                "handshake",
                Status::Fail,
                "TLS handshake: we rejected the server's certificate",
            );
            report.fail("server_certificate", "server certificate: rejected", d);
        }
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            let reply = plaintext_reply(ctx).await.unwrap_or_default();
            report.fail(
                "handshake",
                "TLS handshake: the answer is not TLS",
                not_tls(ctx, &reply),
            );
        }
        rustls::Error::AlertReceived(alert) => {
            let mut d = explain_alert(*alert, ours, asked.asked().as_deref(), ctx);
            if *alert == AlertDescription::ProtocolVersion {
                d = versions_diagnosis(ctx).await.unwrap_or(d);
            }
            let rejected_us = rejects_us(*alert);
            let detail = if rejected_us {
                format!(
                    "TLS handshake: the server rejected our certificate (alert {})",
                    alert_name(*alert)
                )
            } else {
                format!(
                    "TLS handshake: the server refused (alert {})",
                    alert_name(*alert)
                )
            };
            report.fail(
                if rejected_us { "accepted" } else { "handshake" },
                detail,
                d,
            );
        }
        rustls::Error::PeerIncompatible(why) => {
            let d = match versions_diagnosis(ctx).await {
                Some(d) => d,
                None => diagnosis(
                    format!("the server's TLS settings and ours have nothing in common ({why:?})"),
                    "compare the server's TLS versions, cipher suites and groups with ours",
                ),
            };
            report.fail("handshake", "TLS handshake: nothing in common", d);
        }
        other => {
            let named = ClientError::from_rustls(other);
            report.fail(
                "handshake",
                "TLS handshake: failed",
                diagnosis(
                    named.to_string(),
                    "read the server's log for its side of the story",
                ),
            );
        }
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

/// The server's certificate, explained against what we trust and asked for.
fn explain_server_certificate(
    error: &CertificateError,
    server: Option<&Facts>,
    chain: Option<&[CertificateDer<'static>]>,
    trusted: &[Facts],
    ctx: &Context,
) -> Diagnosis {
    let who = server
        .map(Facts::name)
        .unwrap_or_else(|| "the server".to_owned());
    let trusted_names = if trusted.is_empty() {
        "none".to_owned()
    } else {
        trusted
            .iter()
            .map(|t| t.subject.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    #[allow(deprecated)]
    match error {
        CertificateError::UnknownIssuer => {
            let top = chain.and_then(|c| c.last()).and_then(|c| Facts::of(c).ok());
            let issuer = top
                .as_ref()
                .map(|t| t.issuer.clone())
                .unwrap_or_else(|| "an unknown CA".to_owned());
            let same_name = trusted.iter().any(|t| t.subject == issuer);
            let cause = if same_name {
                format!(
                    "the server's certificate ({who}) was issued by {issuer}; we trust a CA with that name, but not the one that signed it (another key: was the CA re-created, or is an intermediate missing?)"
                )
            } else {
                format!(
                    "the server's certificate ({who}) was issued by {issuer}, which is not among the CAs we trust ({trusted_names})"
                )
            };
            diagnosis(
                cause,
                format!(
                    "if {} is the right server, add its CA ({issuer}) to our trust (--ca); otherwise the address reaches a server with a certificate from another CA",
                    ctx.host
                ),
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let sans = server
                .map(|s| {
                    if s.sans.is_empty() {
                        "no names".to_owned()
                    } else {
                        s.sans.join(", ")
                    }
                })
                .unwrap_or_else(|| "other names".to_owned());
            diagnosis(
                format!(
                    "the server's certificate is for {sans}, but we connected to {}",
                    ctx.host
                ),
                format!(
                    "connect with one of the certificate's names, or reissue the server's certificate with {} among its names",
                    ctx.host
                ),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let (when, ago) = server
                .map(|s| {
                    (
                        s.not_after.clone(),
                        SystemTime::now()
                            .duration_since(s.not_after_time)
                            .unwrap_or_default(),
                    )
                })
                .unwrap_or_else(|| ("?".to_owned(), Duration::MAX));
            diagnosis(
                format!(
                    "the server's certificate ({who}) expired at {when}, {} ago",
                    words(ago)
                ),
                clocks_or(
                    ago,
                    "renew the server's certificate, and check that the server reloaded it",
                ),
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let (when, wait) = server
                .map(|s| {
                    (
                        s.not_before.clone(),
                        s.not_before_time
                            .duration_since(SystemTime::now())
                            .unwrap_or_default(),
                    )
                })
                .unwrap_or_else(|| ("?".to_owned(), Duration::MAX));
            diagnosis(
                format!(
                    "the server's certificate ({who}) is valid only from {when}, {} from now",
                    words(wait)
                ),
                clocks_or(wait, "give the server a certificate that is valid now"),
            )
        }
        CertificateError::Revoked => diagnosis(
            format!(
                "the server's certificate ({who}, serial {}) is on our revocation list",
                server.map(|s| s.serial.as_str()).unwrap_or("?")
            ),
            "the server needs a new certificate",
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            diagnosis(
                format!(
                    "the server's certificate ({who}) is not for TLS servers (extended key usage: {})",
                    server
                        .map(|s| s.extended_key_usage.join(", "))
                        .unwrap_or_default()
                ),
                "reissue the server's certificate with extendedKeyUsage = serverAuth",
            )
        }
        CertificateError::Other(other)
            if other
                .0
                .downcast_ref::<mtls::verify::ServerNotAllowed>()
                .is_none() =>
        {
            diagnosis(
                format!("we rejected the server's certificate ({who}): {}", other.0),
                "inspect the server's certificate with `mtls inspect` and compare it with our trust",
            )
        }
        CertificateError::ApplicationVerificationFailure | CertificateError::Other(_) => diagnosis(
            format!(
                "the server is {who}, but --expect-server asks for {}",
                ctx.expect.as_deref().unwrap_or("another identity")
            ),
            "connect to the service you meant, or correct --expect-server",
        ),
        other => diagnosis(
            format!("we rejected the server's certificate ({who}): {other:?}"),
            "inspect the server's certificate with `mtls inspect` and compare it with our trust",
        ),
    }
}

fn not_tls(ctx: &Context, reply: &str) -> Diagnosis {
    let speaks = if reply.starts_with("HTTP/") {
        format!(
            " (it answered in plain HTTP: \"{}\")",
            truncate(reply.lines().next().unwrap_or(""), 60)
        )
    } else {
        String::new()
    };
    diagnosis(
        format!("{}:{} is not a TLS server{speaks}", ctx.host, ctx.port),
        format!(
            "use the port where the service listens with TLS, or turn TLS on for port {}",
            ctx.port
        ),
    )
}

/// What the port says to a plain HTTP request, if anything.
async fn plaintext_reply(ctx: &Context) -> Option<String> {
    let probe = async {
        let mut tcp = TcpStream::connect((ctx.host.as_str(), ctx.port))
            .await
            .ok()?;
        tcp.write_all(
            format!("HEAD / HTTP/1.0\r\nHost: {}\r\n\r\n", uri_host(&ctx.host)).as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = vec![0; 256];
        let n = tcp.read(&mut buf).await.ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(ctx.timeout, probe)
        .await
        .ok()
        .flatten()
}

/// Which TLS versions the server speaks, when none is in common with ours.
async fn versions_diagnosis(ctx: &Context) -> Option<Diagnosis> {
    let speaks = |version: &'static rustls::SupportedProtocolVersion| async move {
        capture_with(ctx, &[version]).await.is_some()
    };
    let v13 = speaks(&rustls::version::TLS13).await;
    let v12 = speaks(&rustls::version::TLS12).await;
    let server = match (v12, v13) {
        (true, false) => "only TLS 1.2",
        (false, true) => "only TLS 1.3",
        (true, true) => return None,
        (false, false) => {
            "neither TLS 1.2 nor TLS 1.3 (an older protocol, or it refuses our hello)"
        }
    };
    Some(diagnosis(
        format!("the server speaks {server}, and we offer no version it accepts"),
        if v12 && !v13 {
            "enable TLS 1.3 on the server (nginx: ssl_protocols TLSv1.2 TLSv1.3), or allow TLS 1.2 on our side (drop --tls13-only / tls13_only)"
        } else {
            "configure both sides for TLS 1.2 or 1.3"
        },
    ))
}

/// The server's certificate chain, from a second handshake that records it and stops.
async fn capture_chain(ctx: &Context) -> Option<Vec<CertificateDer<'static>>> {
    capture_with(ctx, rustls::DEFAULT_VERSIONS).await
}

async fn capture_with(
    ctx: &Context,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Option<Vec<CertificateDer<'static>>> {
    let provider = mtls::crypto_provider();
    let capture = Arc::new(Capture {
        chain: Mutex::new(None),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(ctx.host.clone()).ok()?;
    let attempt = async {
        let tcp = TcpStream::connect((ctx.host.as_str(), ctx.port))
            .await
            .ok()?;
        let _ = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        Some(())
    };
    let _ = tokio::time::timeout(ctx.timeout, attempt).await;
    capture.chain.lock().ok()?.take()
}

/// Records the server's chain, then stops the handshake: it verifies nothing, and is used
/// only to describe a certificate the real verifier rejected.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut slot) = self.chain.lock() {
            *slot = Some(chain);
        }
        Err(rustls::Error::General(
            "certificate recorded for diagnosis".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether the server asked for our certificate, and the CA names it hinted.
#[derive(Debug, Default)]
struct Asked(Mutex<Option<Vec<Vec<u8>>>>);

impl Asked {
    fn asked(&self) -> Option<Vec<Vec<u8>>> {
        self.0.lock().ok().and_then(|a| a.clone())
    }
}

/// The client's own certificate resolver, observed.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ResolvesClientCert>,
    asked: Arc<Asked>,
}

impl ResolvesClientCert for Recording {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if let Ok(mut asked) = self.asked.0.lock() {
            *asked = Some(root_hint_subjects.iter().map(|h| h.to_vec()).collect());
        }
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
