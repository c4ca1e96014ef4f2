//! reqwest on our rustls config: it presents our certificate and follows its rotation, with
//! no rebuild of the reqwest client.
//!
//! A server names the serial of each caller's certificate. reqwest, built once from
//! `Client::rustls_config()`, calls it; then the client's certificate files are replaced (as
//! cert-manager would) and the next call presents the new certificate. Self-contained:
//! `cargo run --example reqwest_client`.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::dev::DevCa;
use mtls::{Authorizer, Client, PeerIdentity, Server};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let ca = DevCa::new("example.org dev CA")?;
    let server = Server::builder()
        .identity(ca.server("inventory")?.identity()?)
        .trust(ca.trust()?)
        .authorize(Authorizer::trust_domain("example.org")?)
        .bind("127.0.0.1:0")
        .await?;
    let url = format!("https://localhost:{}/", server.local_addr().port());
    tokio::spawn(
        server.serve(service_fn(|req: Request<Incoming>| async move {
            let serial = req
                .extensions()
                .get::<PeerIdentity>()
                .map(|p| p.serial().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(serial))))
        })),
    );

    // Our client reads its certificate from files and reloads them when they change.
    let dir = std::env::temp_dir().join(format!("mtls-reqwest-example-{}", std::process::id()));
    let (cert, key) = ca
        .client("spiffe://example.org/orders")?
        .write_pem(&dir, "orders")?;
    std::fs::write(dir.join("ca.pem"), ca.root_pem())?;
    let ours = Client::builder()
        .identity_files(&cert, &key)
        .trust_file(dir.join("ca.pem"))
        .reload_interval(Some(Duration::from_millis(100)))
        .build()?;

    // reqwest, built once on our live config.
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*ours.rustls_config()).clone())
        .pool_max_idle_per_host(0)
        .build()?;
    let before = http.get(&url).send().await?.text().await?;
    println!("[reqwest] the server saw certificate serial {before}");

    // cert-manager renews the certificate: new files, same paths.
    ca.client("spiffe://example.org/orders")?
        .write_pem(&dir, "orders")?;
    let mut after = before.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = http.get(&url).send().await?.text().await?;
        if after != before {
            break;
        }
    }
    println!("[reqwest] after rotation, the server saw serial {after}");
    let _ = std::fs::remove_dir_all(&dir);
    if after == before {
        return Err("reqwest kept presenting the old certificate".into());
    }
    println!("the same reqwest client presented the renewed certificate, with no rebuild");
    Ok(())
}
