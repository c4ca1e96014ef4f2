//! An mTLS server for your own PEM files.
//!
//! ```text
//! cargo run --example server -- --listen 127.0.0.1:8443 \
//!     --cert server.pem --key server.key --ca ca.pem
//! ```
//!
//! `GET /` answers 200 with the caller's SPIFFE ID (or subject) and SANs. Ctrl-C shuts down
//! gracefully.

use std::convert::Infallible;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use mtls::{PeerIdentity, Server};

const USAGE: &str = "usage: server --listen ADDR --cert FILE --key FILE --ca FILE";

#[tokio::main]
async fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::builder()
        .identity_files(&args.cert, &args.key)
        .trust_file(&args.ca)
        .bind(args.listen.as_str())
        .await
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on https://{} (client certificates required)",
        server.local_addr()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        println!("shutting down");
    };
    match server
        .serve_with_shutdown(service_fn(handle), shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(peer) = req.extensions().get::<PeerIdentity>() else {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"no client identity\n")));
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    };
    if req.uri().path() != "/" {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    let mut sans: Vec<String> = peer.uris().to_vec();
    sans.extend(peer.dns_names().iter().map(|d| format!("DNS:{d}")));
    sans.extend(peer.ip_addresses().iter().map(|ip| format!("IP:{ip}")));
    sans.extend(peer.emails().iter().map(|e| format!("email:{e}")));
    let body = format!("hello {peer}\nsans: {}\n", sans.join(", "));
    Ok(Response::new(Full::new(Bytes::from(body))))
}

struct Args {
    listen: String,
    cert: String,
    key: String,
    ca: String,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut listen, mut cert, mut key, mut ca) = (None, None, None, None);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--listen" => &mut listen,
                "--cert" => &mut cert,
                "--key" => &mut key,
                "--ca" => &mut ca,
                "-h" | "--help" => return Err("mTLS example server".to_owned()),
                other => return Err(format!("unknown argument `{other}`")),
            };
            *slot = Some(args.next().ok_or(format!("`{flag}` needs a value"))?);
        }
        let need = |v: Option<String>, name: &str| v.ok_or(format!("missing `--{name}`"));
        Ok(Args {
            listen: listen.unwrap_or_else(|| "127.0.0.1:8443".to_owned()),
            cert: need(cert, "cert")?,
            key: need(key, "key")?,
            ca: need(ca, "ca")?,
        })
    }
}
