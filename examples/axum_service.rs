//! An axum service behind mutual TLS: the handler reads the caller's identity in one line.
//!
//! `inventory` serves an axum `Router` with `mtls::Server`. `/stock` takes the verified
//! caller as an extractor; `/admin` is only for the ops namespace (a `RequireIdentity` layer
//! on that route). `orders` calls both: 200 for stock, 403 for admin. An ops caller gets in.
//!
//! Run it with `cargo run --example axum_service`.

use axum::Router;
use axum::routing::get;
use mtls::dev::DevCa;
use mtls::{Authorizer, Client, PeerIdentity, RequireIdentity, Server};

type Failure = Box<dyn std::error::Error>;

/// The caller's verified identity, in one line: it is an extractor.
async fn stock(peer: PeerIdentity) -> String {
    format!("42 widgets, for {peer}\n")
}

async fn admin(peer: PeerIdentity) -> String {
    format!("admin console, for {peer}\n")
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let ca = DevCa::new("example.org dev CA")?;

    let app = Router::new().route("/stock", get(stock)).route(
        "/admin",
        get(admin).route_layer(RequireIdentity::new(Authorizer::spiffe_path_prefix(
            "spiffe://example.org/ns/ops",
        )?)),
    );
    let server = Server::builder()
        .identity(ca.server("inventory")?.identity()?)
        .trust(ca.trust()?)
        .authorize(Authorizer::trust_domain("example.org")?)
        .bind("127.0.0.1:0")
        .await?;
    let port = server.local_addr().port();
    let handle = server.handle();
    let serving = tokio::spawn(server.serve(app));

    let call = |who: &str, path: &str| {
        let client = Client::builder()
            .identity(ca.client(who)?.identity()?)
            .trust(ca.trust()?)
            .build()?;
        let url: hyper::Uri = format!("https://localhost:{port}{path}").parse()?;
        Ok::<_, Failure>(async move {
            use http_body_util::BodyExt;
            let resp = client.get(url).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Failure>((status, String::from_utf8_lossy(&body).trim().to_owned()))
        })
    };

    let orders = "spiffe://example.org/ns/shop/sa/orders";
    let ops = "spiffe://example.org/ns/ops/sa/oncall";
    let mut wrong = 0;
    for (who, path, expected) in [
        (orders, "/stock", 200),
        (orders, "/admin", 403),
        (ops, "/admin", 200),
    ] {
        let (status, body) = call(who, path)?.await?;
        println!("{who} GET {path} -> {status}: {body}");
        if status.as_u16() != expected {
            eprintln!("  expected {expected}");
            wrong += 1;
        }
    }
    println!(
        "server stats: {} handshakes accepted",
        handle.stats().handshakes_accepted()
    );
    serving.abort();
    if wrong > 0 {
        return Err(format!("{wrong} answer(s) differed from what the policy says").into());
    }
    Ok(())
}
