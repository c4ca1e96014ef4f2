//! Step 2: the server's name resolved, then a TCP connection to one of its addresses.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::{Context, Report, Status, diagnosis};

/// The addresses of the server's name. `None`: it does not resolve (recorded).
pub(super) async fn resolve(ctx: &Context, report: &mut Report) -> Option<Vec<SocketAddr>> {
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
            return None;
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
            return None;
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
        return None;
    };
    report
        .push(
            "resolve",
            Status::Ok,
            format!("resolve {}: {}", ctx.host, first.ip()),
        )
        .took(started);
    Some(addrs)
}

/// A TCP connection to the first of `addrs` that answers. `None`: none did (recorded).
pub(super) async fn connect(
    ctx: &Context,
    addrs: &[SocketAddr],
    report: &mut Report,
) -> Option<TcpStream> {
    let started = Instant::now();
    let tcp = match connect_any(addrs, ctx.timeout).await {
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
            return None;
        }
    };
    let peer_addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    report
        .push("connect", Status::Ok, format!("TCP connect to {peer_addr}"))
        .took(started);
    Some(tcp)
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
