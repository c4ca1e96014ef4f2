//! Probes of what the server's port speaks, when our handshake got no TLS answer or no
//! version in common: a plain HTTP request, and handshakes offering one TLS version each.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Context, Diagnosis, capture, diagnosis, truncate, uri_host};

/// A port that does not speak TLS, with its plain HTTP answer (`reply`) when it gave one.
pub(super) fn not_tls(ctx: &Context, reply: &str) -> Diagnosis {
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
pub(super) async fn plaintext_reply(ctx: &Context) -> Option<String> {
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
pub(super) async fn versions(ctx: &Context) -> Option<Diagnosis> {
    let speaks = |version: &'static rustls::SupportedProtocolVersion| async move {
        capture::with_versions(ctx, &[version]).await.is_some()
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
