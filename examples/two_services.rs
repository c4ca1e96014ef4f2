//! Two services talking over mutual TLS, with nothing to set up.
//!
//! A throwaway CA is made in memory. `inventory` serves HTTPS and demands client certificates;
//! `orders` calls it with its own certificate. Each side prints what it verified about the
//! other. Then three callers that must fail try their luck: one without a certificate, one with
//! a certificate from a CA inventory does not trust, and `reporting`, whose certificate is
//! perfectly valid but whose SPIFFE ID inventory's policy does not allow. The example checks
//! every outcome and exits non-zero if any is wrong.
//!
//! Run it with `cargo run --example two_services`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::dev::{DevCa, LeafSpec};
use mtls::{Authorizer, Client, HandshakeFailure, Identity, PeerIdentity, Server};

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    // 1. A CA for the example.org trust domain, and one certificate per service.
    let ca = DevCa::new("example.org dev CA")?;
    let inventory_cert = issue(&ca, "inventory", "spiffe://example.org/inventory", true)?;
    let orders_cert = issue(&ca, "orders", "spiffe://example.org/orders", false)?;

    // 2. inventory: an mTLS server that lets only orders in, and whose handler reads the
    //    caller's verified identity.
    let policy = Authorizer::spiffe_id("spiffe://example.org/orders")?;
    println!("[inventory] policy: {policy}");
    let server = Server::builder()
        .identity(inventory_cert)
        .trust(ca.trust()?)
        .authorize(policy)
        .bind("127.0.0.1:0")
        .await?;
    let addr = server.local_addr();
    let stats = server.stats();
    let handle = server.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let inventory = tokio::spawn(server.serve_with_shutdown(
        service_fn(|req: Request<Incoming>| async move {
            let caller = req.extensions().get::<PeerIdentity>().cloned();
            let body = match caller {
                Some(peer) => {
                    println!(
                        "[inventory] verified caller: {peer} (serial {})",
                        peer.serial()
                    );
                    format!("42 widgets in stock, {peer}")
                }
                None => "no identity".to_owned(),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }),
        async move {
            let _ = stopped.await;
        },
    ));
    println!("[inventory] listening on https://{addr}, client certificates required");

    // 3. orders: an mTLS client that verifies inventory and presents its own certificate.
    let orders = Client::builder()
        .identity(orders_cert)
        .trust(ca.trust()?)
        .build()?;
    let url = format!("https://localhost:{}/stock", addr.port());
    let resp = orders.get(url.parse()?).await?;
    let server_id = resp
        .extensions()
        .get::<PeerIdentity>()
        .cloned()
        .ok_or("response without the server's identity")?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "[orders] verified server: {server_id} (DNS {:?}, {}), answered {status}: {}",
        server_id.dns_names(),
        server_id
            .tls_version()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        String::from_utf8_lossy(&body)
    );
    check(status == 200, "orders gets 200")?;
    check(
        server_id.spiffe_id().map(|id| id.as_str()) == Some("spiffe://example.org/inventory"),
        "orders sees inventory's SPIFFE ID",
    )?;

    // 4. A caller with no certificate at all: rejected in the handshake.
    let anonymous = anonymous_get(addr, &ca).await;
    println!(
        "[anonymous] rejected: {}",
        anonymous.err().ok_or("anonymous caller was served")?
    );
    wait_for(|| stats.handshake_failures(HandshakeFailure::NoCertificate) == 1).await?;
    println!("[inventory] counted: {}", HandshakeFailure::NoCertificate);

    // 5. A caller whose certificate comes from another CA: rejected, with the reason named.
    let foreign_ca = DevCa::new("someone else's CA")?;
    let intruder = Client::builder()
        .identity(issue(
            &foreign_ca,
            "intruder",
            "spiffe://evil.example/intruder",
            false,
        )?)
        .trust(ca.trust()?)
        .build()?;
    let err = intruder
        .get(url.parse()?)
        .await
        .err()
        .ok_or("foreign caller was served")?;
    println!("[intruder] rejected: {err}");
    check(
        matches!(err, mtls::ClientError::ServerRejectedCertificate { .. }),
        "the intruder hears why",
    )?;
    wait_for(|| stats.handshake_failures(HandshakeFailure::UnknownIssuer) == 1).await?;
    println!("[inventory] counted: {}", HandshakeFailure::UnknownIssuer);

    // 6. reporting: same CA, valid certificate, but not allowed by inventory's policy.
    let reporting_cert = issue(&ca, "reporting", "spiffe://example.org/reporting", false)?;
    let reporting_id = PeerIdentity::from_chain(reporting_cert.chain())?;
    let reporting = Client::builder()
        .identity(reporting_cert)
        .trust(ca.trust()?)
        .build()?;
    let err = reporting
        .get(url.parse()?)
        .await
        .err()
        .ok_or("reporting was served despite the policy")?;
    println!("[reporting] rejected: {err}");
    check(
        matches!(&err, mtls::ClientError::ServerRejectedCertificate { alert } if alert == "access_denied"),
        "reporting is denied by policy",
    )?;
    wait_for(|| stats.handshake_failures(HandshakeFailure::NotAuthorized) == 1).await?;
    println!("[inventory] counted: {}", HandshakeFailure::NotAuthorized);
    // The server's log (stderr) carries the same facts; here they are asked of its policy.
    let denied = handle
        .authorizer()
        .check(Some(&reporting_id))
        .err()
        .ok_or("the policy allows reporting")?;
    println!(
        "[inventory] denied {}: not allowed by policy {}",
        denied.presented, denied.policy
    );

    // 7. Graceful shutdown.
    let _ = stop.send(());
    inventory.await??;
    println!(
        "done: {} mTLS handshake(s) accepted, {} rejected",
        stats.handshakes_accepted(),
        stats.handshake_failures_total()
    );
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

/// Waits up to two seconds for a server-side counter (updated just after the client hears).
async fn wait_for(condition: impl Fn() -> bool) -> Result<(), Failure> {
    for _ in 0..200 {
        if condition() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err("the server did not count the rejection".into())
}

/// A plain tokio-rustls client that trusts the server but has no certificate to show.
async fn anonymous_get(addr: std::net::SocketAddr, ca: &DevCa) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca.trust().map_err(std::io::Error::other)?.certificates() {
        roots.add(cert.clone()).map_err(std::io::Error::other)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /stock HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

/// Issues `name`'s certificate with its SPIFFE ID from the example's throwaway CA; servers
/// also get `localhost`, `127.0.0.1` and `::1`.
fn issue(ca: &DevCa, name: &str, spiffe_id: &str, server: bool) -> Result<Identity, Failure> {
    let spec = if server {
        LeafSpec::server(name)
    } else {
        LeafSpec::client(name)
    };
    Ok(ca.issue(&spec.spiffe_id(spiffe_id))?.identity()?)
}
