//! Certificate-bound access tokens (RFC 8705): a token carries the `x5t#S256` thumbprint of
//! the client certificate it was issued to, and the service accepts it only from that
//! certificate. A token copied to another service is useless there.
//!
//! The token here is the JSON claims alone, to keep the example about binding; a real service
//! verifies the token's signature first (with any JWT library) and then checks `cnf.x5t#S256`
//! against `PeerIdentity::x5t_s256()` exactly as below. Run it with
//! `cargo run --example token_binding`.

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use mtls::dev::DevCa;
use mtls::{Authorizer, Client, PeerIdentity, Server};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Accepts the request only if its token is bound to the caller's certificate.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let caller = req.extensions().get::<PeerIdentity>();
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|claims| serde_json::from_str::<serde_json::Value>(claims).ok());
    let bound_to = token
        .as_ref()
        .and_then(|t| t["cnf"]["x5t#S256"].as_str())
        .map(str::to_owned);
    let (status, body) = match (caller, bound_to) {
        (Some(peer), Some(thumbprint)) if peer.x5t_s256() == thumbprint => {
            (StatusCode::OK, format!("token accepted from {peer}\n"))
        }
        (Some(peer), Some(_)) => (
            StatusCode::UNAUTHORIZED,
            format!("token is bound to another certificate than {peer}'s\n"),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "no certificate-bound token\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let ca = DevCa::new("example.org dev CA")?;
    let server = Server::builder()
        .identity(ca.server("api")?.identity()?)
        .trust(ca.trust()?)
        .authorize(Authorizer::trust_domain("example.org")?)
        .bind("127.0.0.1:0")
        .await?;
    let url = format!("https://localhost:{}/orders", server.local_addr().port());
    tokio::spawn(server.serve(service_fn(handle)));

    // orders gets a token bound to its certificate (the authorization server would compute
    // the thumbprint from the certificate it saw, as we do here).
    let orders_cert = ca.client("spiffe://example.org/orders")?.identity()?;
    let thumbprint = PeerIdentity::from_chain(orders_cert.chain())?.x5t_s256();
    let token = format!(r#"{{"sub":"orders","cnf":{{"x5t#S256":"{thumbprint}"}}}}"#);
    println!("token bound to x5t#S256 {thumbprint}");

    let call = |identity: mtls::Identity, token: String| {
        let client = Client::builder()
            .identity(identity)
            .trust(ca.trust()?)
            .build()?;
        let url = url.clone();
        Ok::<_, Failure>(async move {
            let req = Request::get(url)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))?;
            let resp = client.request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Failure>((status, String::from_utf8_lossy(&body).trim().to_owned()))
        })
    };
    let (status, body) = call(orders_cert, token.clone())?.await?;
    println!("[orders] {status}: {body}");
    // The same token, stolen by reporting (valid certificate, same CA): refused.
    let reporting_cert = ca.client("spiffe://example.org/reporting")?.identity()?;
    let (stolen, body_stolen) = call(reporting_cert, token)?.await?;
    println!("[reporting with orders' token] {stolen}: {body_stolen}");
    if status != StatusCode::OK || stolen != StatusCode::UNAUTHORIZED {
        return Err("the token was not bound to the certificate".into());
    }
    Ok(())
}
