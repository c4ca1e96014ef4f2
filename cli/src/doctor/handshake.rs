//! Step 3: the TLS handshake, on the library client's own rustls configuration, with the
//! server's request for our certificate (and the CAs it hints) recorded.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::own_material::Ours;
use super::{Context, Report, Session, Status, Step, diagnosis, refused};
use crate::cert::{Facts, dn_text};

/// A connection whose handshake succeeded, and what the server asked of us in it.
pub(super) struct Established {
    pub tls: TlsStream<TcpStream>,
    /// Whether the server chose HTTP/2.
    pub h2: bool,
    /// The CA names the server hinted when it asked for our certificate; `None`: it never
    /// asked.
    pub asked: Option<Vec<Vec<u8>>>,
}

/// The handshake over `tcp`, its session and the server's certificate recorded. `None`: it
/// failed (recorded, with the cause).
pub(super) async fn handshake(
    ctx: &Context,
    ours: &Ours,
    tcp: TcpStream,
    report: &mut Report,
) -> Option<Established> {
    let peer_addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let asked = Arc::new(Asked::default());
    let mut config = (*ours.client.rustls_config()).clone();
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
        return None;
    };
    let started = Instant::now();
    let connect = TlsConnector::from(Arc::clone(&config)).connect(server_name.clone(), tcp);
    let tls = match tokio::time::timeout(ctx.timeout, connect).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            refused::handshake_failed(ctx, ours, asked.asked().as_deref(), &e, report).await;
            return None;
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
            return None;
        }
    };
    let handshake_ms = started.elapsed().as_millis() as u64;
    let (_, conn) = tls.get_ref();
    let session = session(conn);
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
    let asked = asked.asked();
    client_auth(asked.as_deref(), &ours.leaf, report);
    Some(Established { tls, h2, asked })
}

/// The negotiated session, in words.
fn session(conn: &rustls::ClientConnection) -> Session {
    Session {
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
    }
}

/// Whether the server asked for our certificate, and whether its CA hints name our issuer.
fn client_auth(asked: Option<&[Vec<u8>]>, ours: &Facts, report: &mut Report) {
    if let Some(hints) = asked {
        let detail = hint_words(hints, ours);
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
