//! Certificates and a CA rotated under a live server while a client keeps calling it.
//!
//! Server and client read their certificates from files in a temporary directory and reload
//! them when they change. While a client sends requests without pause, the example:
//! 1. renews the server's certificate;
//! 2. starts a CA rotation: both sides trust the old and the new CA;
//! 3. re-issues both certificates from the new CA;
//! 4. removes the old CA;
//! 5. pushes a certificate through code ([`mtls::Rotate`]), as a control plane would, and has
//!    an expired one refused.
//!
//! It prints how many requests succeeded and exits non-zero if any failed or a rotation did
//! not happen.
//! Run it with `cargo run --example rotation`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use mtls::dev::{DevCa, LeafSpec};
use mtls::{Authorizer, Client, PeerIdentity, Rotate, Server};

type Failure = Box<dyn std::error::Error + Send + Sync>;
const RELOAD: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let dir = TempDir::new()?;
    let old_ca = DevCa::new("old CA")?;
    dir.write(
        "server.crt",
        "server.key",
        &issue(&old_ca, "localhost", true)?,
    )?;
    dir.write(
        "client.crt",
        "client.key",
        &issue(&old_ca, "orders", false)?,
    )?;
    dir.put("ca.crt", old_ca.root_pem())?;

    let server = Server::builder()
        .identity_files(dir.path("server.crt"), dir.path("server.key"))
        .trust_file(dir.path("ca.crt"))
        .authorize(Authorizer::any_verified())
        .reload_interval(Some(RELOAD))
        .bind("127.0.0.1:0")
        .await?;
    let url: hyper::Uri = format!("https://localhost:{}/", server.local_addr().port()).parse()?;
    let server_handle = server.handle();
    tokio::spawn(
        server.serve(service_fn(|req: Request<Incoming>| async move {
            let caller = req
                .extensions()
                .get::<PeerIdentity>()
                .map(|p| p.to_string());
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                caller.unwrap_or_default(),
            ))))
        })),
    );
    let client = Client::builder()
        .identity_files(dir.path("client.crt"), dir.path("client.key"))
        .trust_file(dir.path("ca.crt"))
        .reload_interval(Some(RELOAD))
        // A new connection per request, so every request does a handshake with current files.
        .pool_max_idle_per_host(0)
        .build()?;

    // A client calling without pause, counting outcomes.
    let (ok, failed, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let caller = {
        let (client, url, ok, failed, stop) = (
            client.clone(),
            url.clone(),
            ok.clone(),
            failed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(url.clone()).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.into_body().collect().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        eprintln!("unexpected status {}", resp.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let wait_reload = |before: (u64, u64)| {
        let (server_handle, client) = (server_handle.clone(), client.clone());
        async move {
            for _ in 0..50 {
                tokio::time::sleep(RELOAD).await;
                if server_handle.certificate_status().reloads > before.0
                    && client.certificate_status().reloads >= before.1
                {
                    return Ok(());
                }
            }
            let (server, client) = (
                server_handle.certificate_status(),
                client.certificate_status(),
            );
            Err(format!(
                "no reload within 10 s (server: {:?}, client: {:?})",
                server.last_reload_error, client.last_reload_error
            ))
        }
    };
    let reloads = || {
        (
            server_handle.certificate_status().reloads,
            client.certificate_status().reloads,
        )
    };

    println!("1. renewing the server certificate");
    let before = reloads();
    dir.write(
        "server.crt",
        "server.key",
        &issue(&old_ca, "localhost", true)?,
    )?;
    wait_reload(before).await?;

    println!("2. CA rotation begins: both sides trust the old and the new CA");
    let new_ca = DevCa::new("new CA")?;
    let before = reloads();
    dir.put(
        "ca.crt",
        &format!("{}{}", old_ca.root_pem(), new_ca.root_pem()),
    )?;
    wait_reload((before.0, before.1 + 1)).await?;

    println!("3. both certificates re-issued by the new CA");
    let before = reloads();
    dir.write(
        "server.crt",
        "server.key",
        &issue(&new_ca, "localhost", true)?,
    )?;
    dir.write(
        "client.crt",
        "client.key",
        &issue(&new_ca, "orders", false)?,
    )?;
    wait_reload((before.0, before.1 + 1)).await?;

    println!("4. the old CA is removed");
    let before = reloads();
    dir.put("ca.crt", new_ca.root_pem())?;
    wait_reload((before.0, before.1 + 1)).await?;
    tokio::time::sleep(RELOAD * 3).await;

    // A control plane (Vault, SPIRE, your own) pushes material through code instead of files,
    // with the same validation: an expired certificate is refused and the last good one stays.
    println!("5. a control plane pushes a new server certificate through code");
    let (cert, key) = issue(&new_ca, "localhost", true)?;
    server_handle.set_identity(mtls::Identity::from_pem(cert.as_bytes(), key.as_bytes())?)?;
    let (cert, key) = pem_pair(&new_ca, &LeafSpec::server("localhost").expired())?;
    match server_handle.set_identity(mtls::Identity::from_pem(cert.as_bytes(), key.as_bytes())?) {
        Err(e) => println!("   an expired push is refused, the last good certificate stays: {e}"),
        Ok(()) => return Err("an expired certificate was swapped in".into()),
    }
    tokio::time::sleep(RELOAD * 2).await;

    stop.store(true, Ordering::Relaxed);
    caller.await?;
    let status = server_handle.certificate_status();
    println!(
        "server now serves `{}` and trusts {:?}; {} reloads, {} rejected",
        status.identity.subject,
        status
            .trust_anchors
            .iter()
            .map(|a| a.subject.as_str())
            .collect::<Vec<_>>(),
        status.reloads,
        status.reload_failures
    );
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{ok} requests succeeded, {failed} failed");
    if failed > 0 || ok == 0 {
        return Err("requests failed during rotation".into());
    }
    // The rotations really happened: a new connection meets a server certificate from the
    // new CA, and the old CA is gone from the trust bundle.
    let resp = client.get(url).await?;
    let issuer = resp
        .extensions()
        .get::<PeerIdentity>()
        .map(|p| p.issuer().to_owned())
        .unwrap_or_default();
    println!("the server's certificate is now issued by `{issuer}`");
    let anchors: Vec<_> = status.trust_anchors.iter().map(|a| &a.subject).collect();
    if !issuer.contains("new CA") || anchors.len() != 1 || !anchors[0].contains("new CA") {
        return Err("the server did not end up on the new CA".into());
    }
    Ok(())
}

/// A directory whose files are replaced atomically (write, then rename), as cert-manager does.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let dir =
            std::env::temp_dir().join(format!("mtls-rotation-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn put(&self, name: &str, contents: &str) -> std::io::Result<()> {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, self.path(name))
    }
    /// Key first, then certificate: the watcher may see the pair half-written in between
    /// and keeps the last good pair until both agree.
    fn write(
        &self,
        cert: &str,
        key: &str,
        (cert_pem, key_pem): &(String, String),
    ) -> std::io::Result<()> {
        self.put(key, key_pem)?;
        self.put(cert, cert_pem)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}

/// A leaf from `ca` as (certificate PEM, key PEM): a server for `localhost`, or a client.
fn issue(ca: &DevCa, name: &str, server: bool) -> Result<(String, String), Failure> {
    let spec = if server {
        LeafSpec::server(name)
    } else {
        LeafSpec::client(name)
    };
    pem_pair(ca, &spec)
}

fn pem_pair(ca: &DevCa, spec: &LeafSpec) -> Result<(String, String), Failure> {
    let cert = ca.issue(spec)?;
    Ok((cert.cert_pem().to_owned(), cert.key_pem().to_owned()))
}
