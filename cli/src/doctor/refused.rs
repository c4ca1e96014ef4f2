//! A handshake that failed, explained: which side refused, which certificate, why.

use std::io;

use mtls::{ClientError, HandshakeFailure, error::alert_name};
use rustls::AlertDescription;

use super::own_material::Ours;
use super::server_certificate;
use super::{Context, Report, Status, alert, capture, diagnosis, every_diagnosis, probe};
use crate::cert::Facts;
use crate::problems;

/// Records the failed handshake with its cause: our verdict on the server's certificate, the
/// server's alert about ours, an answer that is not TLS, or nothing in common.
pub(super) async fn handshake_failed(
    ctx: &Context,
    ours: &Ours,
    asked: Option<&[Vec<u8>]>,
    error: &io::Error,
    report: &mut Report,
) {
    let Some(tls) = HandshakeFailure::tls_error_in(error) else {
        let d = if HandshakeFailure::from_io(error) == HandshakeFailure::PeerClosed {
            if let Some(reply) = probe::plaintext_reply(ctx).await {
                probe::not_tls(ctx, &reply)
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
            let chain = capture::chain(ctx).await;
            let server = chain
                .as_ref()
                .and_then(|c| c.first())
                .and_then(|c| Facts::of(c).ok());
            let found = match (&chain, &server) {
                (Some(chain), Some(leaf)) => {
                    let provider = mtls::crypto_provider();
                    problems::every_problem(
                        cert_error,
                        chain,
                        leaf,
                        &ours.anchors,
                        &ctx.host,
                        &provider,
                    )
                }
                _ => vec![cert_error.clone()],
            };
            let d = every_diagnosis(found.iter().map(|problem| {
                server_certificate::explain(
                    problem,
                    server.as_ref(),
                    chain.as_deref(),
                    &ours.trusted,
                    ctx,
                )
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
            let reply = probe::plaintext_reply(ctx).await.unwrap_or_default();
            report.fail(
                "handshake",
                "TLS handshake: the answer is not TLS",
                probe::not_tls(ctx, &reply),
            );
        }
        rustls::Error::AlertReceived(received) => {
            let mut d = alert::explain(*received, &ours.leaf, asked, ctx);
            if *received == AlertDescription::ProtocolVersion {
                d = probe::versions(ctx).await.unwrap_or(d);
            }
            let rejected_us = alert::rejects_us(*received);
            let detail = if rejected_us {
                format!(
                    "TLS handshake: the server rejected our certificate (alert {})",
                    alert_name(*received)
                )
            } else {
                format!(
                    "TLS handshake: the server refused (alert {})",
                    alert_name(*received)
                )
            };
            report.fail(
                if rejected_us { "accepted" } else { "handshake" },
                detail,
                d,
            );
        }
        rustls::Error::PeerIncompatible(why) => {
            let d = match probe::versions(ctx).await {
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
