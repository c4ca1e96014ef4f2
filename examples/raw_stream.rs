//! A line-based echo protocol over mutual TLS, with no HTTP: the server takes verified streams
//! from `Server::incoming()`, the client opens one with `Client::connector()`, and each side
//! prints the other's SPIFFE ID. Self-contained: `cargo run --example raw_stream`.

use mtls::dev::{DevCa, LeafSpec};
use mtls::{Authorizer, Client, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let ca = DevCa::new("example.org dev CA")?;
    let server_cert = ca.issue(&LeafSpec::server("echo").spiffe_id("spiffe://example.org/echo"))?;

    // The echo server: only example.org workloads, streams already verified and authorized.
    let server = Server::builder()
        .identity(server_cert.identity()?)
        .trust(ca.trust()?)
        .authorize(Authorizer::trust_domain("example.org")?)
        .bind("127.0.0.1:0")
        .await?;
    let port = server.local_addr().port();
    let mut incoming = server.incoming();
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
            let caller = stream
                .peer_identity()
                .map(|p| p.to_string())
                .unwrap_or_default();
            println!("[echo] accepted {caller} from {}", stream.remote_addr());
            tokio::spawn(async move {
                let (read, mut write) = tokio::io::split(stream);
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = format!("{caller} said: {line}\n");
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    // The client: our identity and trust, then plain bytes over the verified stream.
    let client = Client::builder()
        .identity(ca.client("spiffe://example.org/orders")?.identity()?)
        .trust(ca.trust()?)
        .build()?;
    let connection = client
        .connector()
        .connect(format!("https://localhost:{port}").parse()?)
        .await?;
    let server_id = connection.peer_identity().to_string();
    println!("[orders] connected to {server_id}");
    if server_id != "spiffe://example.org/echo" {
        return Err(format!("unexpected server identity {server_id}").into());
    }
    let (read, mut write) = tokio::io::split(connection.into_inner());
    let mut lines = BufReader::new(read).lines();
    for word in ["hello", "goodbye"] {
        write.write_all(format!("{word}\n").as_bytes()).await?;
        let reply = lines
            .next_line()
            .await?
            .ok_or("the server closed the stream")?;
        println!("[orders] {server_id} echoed: {reply}");
        if reply != format!("spiffe://example.org/orders said: {word}") {
            return Err("the echo did not name us".into());
        }
    }
    Ok(())
}
