//! A fleet from one configuration file: `examples/fleet/fleet.toml` names every service's
//! bundle, the server's policy, the client profiles, the roles and the access rules.
//!
//! The example issues the certificates the file names (with a throwaway CA) into a temporary
//! copy of `examples/fleet/`, starts `inventory` from `[server]` with the `[[access]]` rules as
//! a tower layer, and calls it as `orders` (a reader: 200) and as `reporting` (not a reader:
//! 403, with the rule named). Run it with `cargo run --example fleet`.

use std::path::Path;

use axum::Router;
use axum::routing::get;
use mtls::dev::{DevCa, LeafSpec};
use mtls::{Client, Config, PeerIdentity, Server};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("mtls-fleet-{}", std::process::id()));
    let result = run(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &Path) -> Result<(), Failure> {
    // The files fleet.toml names: a CA and one certificate per service.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet/fleet.toml");
    std::fs::create_dir_all(dir.join("certs"))?;
    std::fs::copy(&source, dir.join("fleet.toml"))?;
    let ca = DevCa::new("fleet dev CA")?;
    std::fs::write(dir.join("certs/ca.pem"), ca.root_pem())?;
    ca.issue(
        &LeafSpec::server("inventory").spiffe_id("spiffe://example.org/ns/prod/sa/inventory"),
    )?
    .write_pem(&dir.join("certs"), "inventory")?;
    for name in ["orders", "reporting"] {
        let id = format!("spiffe://example.org/ns/prod/sa/{name}");
        ca.issue(&LeafSpec::client(name).spiffe_id(&id))?
            .write_pem(&dir.join("certs"), name)?;
    }

    // One file for the whole fleet.
    let cfg = Config::from_file(dir.join("fleet.toml"))?;
    let access = cfg.access()?.ok_or("fleet.toml has [[access]] rules")?;
    let router = Router::new()
        .route(
            "/stock",
            get(|peer: PeerIdentity| async move { format!("42 widgets for {peer}") }),
        )
        .route("/audit", get(|| async { "audit log" }));
    // Outside the router, so the router sees the canonical path the rules were decided on.
    let app = tower::Layer::layer(&access, router);
    let server = Server::from_config(&cfg).await?;
    let port = server.local_addr().port();
    println!(
        "[inventory] serving on 127.0.0.1:{port}, policy {}",
        server.handle().authorizer()
    );
    let serving = tokio::spawn(server.serve(app));

    let mut wrong = Vec::new();
    for (profile, path, expected) in [
        ("orders", "/stock", 200),
        ("reporting", "/stock", 403),
        ("reporting", "/audit", 200),
        ("orders", "/audit", 403),
    ] {
        let client = Client::from_config(&cfg, profile)?;
        let resp = client
            .get(format!("https://localhost:{port}{path}").parse()?)
            .await?;
        let status = resp.status().as_u16();
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await?.to_bytes();
        println!(
            "[{profile}] GET {path} -> {status} {}",
            String::from_utf8_lossy(&body).trim()
        );
        if status != expected {
            wrong.push(format!("{profile} {path}: {status}, expected {expected}"));
        }
    }
    serving.abort();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; ").into())
    }
}
