//! gRPC over mutual TLS with tonic: the service reads the caller's identity in one line, and
//! the tonic client connects through our client's connector and identity.
//!
//! `inventory` serves a small gRPC service (hand-written here in place of `tonic-build`
//! output, so nothing needs `protoc`) with `mtls::Server`. `orders` calls it through a tonic
//! `Channel` built on `Client::connector()`. A caller the policy does not allow is refused in
//! the handshake. Self-contained: run it with `cargo run --example grpc`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mtls::dev::DevCa;
use mtls::{Authorizer, Client, PeerIdentity, Server};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// `message StockRequest { string item = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
struct StockRequest {
    #[prost(string, tag = "1")]
    item: String,
}

/// `message StockReply { uint32 count = 1; string served_to = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
struct StockReply {
    #[prost(uint32, tag = "1")]
    count: u32,
    #[prost(string, tag = "2")]
    served_to: String,
}

/// The service's logic: what `tonic-build` would have you implement.
async fn stock(request: Request<StockRequest>) -> Result<Response<StockReply>, Status> {
    // The caller's verified identity, in one line.
    let caller = request.extensions().get::<PeerIdentity>().cloned();
    let caller = caller.ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    Ok(Response::new(StockReply {
        count: 42,
        served_to: format!("{} asked for {}", caller, request.get_ref().item),
    }))
}

/// The routing glue `tonic-build` would generate for `service Inventory { rpc Stock(...) }`.
#[derive(Clone)]
struct InventoryServer;

const STOCK_PATH: &str = "/inventory.Inventory/Stock";

impl NamedService for InventoryServer {
    const NAME: &'static str = "inventory.Inventory";
}

impl<B> tower_service::Service<http::Request<B>> for InventoryServer
where
    B: http_body::Body<Data = hyper::body::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != STOCK_PATH {
                return Ok(Status::unimplemented("").into_http());
            }
            let unary = tower::service_fn(stock);
            let codec = tonic_prost::ProstCodec::<StockReply, StockRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(unary, req).await)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let ca = DevCa::new("example.org dev CA")?;

    // inventory: tonic routes served by mtls::Server (HTTP/2 by ALPN), orders only.
    let server = Server::builder()
        .identity(ca.server("inventory")?.identity()?)
        .trust(ca.trust()?)
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders")?)
        .bind("127.0.0.1:0")
        .await?;
    let url = format!("https://localhost:{}", server.local_addr().port());
    let serving = tokio::spawn(server.serve(tonic::service::Routes::new(InventoryServer)));

    // orders: a tonic channel over our client's connector (our certificate, our trust).
    let orders = Client::builder()
        .identity(ca.client("spiffe://example.org/orders")?.identity()?)
        .trust(ca.trust()?)
        .build()?;
    let reply = call_stock(&orders, &url).await?;
    println!(
        "[orders] gRPC reply: {} in stock; {}",
        reply.count, reply.served_to
    );
    if reply.served_to != "spiffe://example.org/orders asked for widgets" {
        return Err("the service did not see orders' identity".into());
    }

    // reporting: same CA, valid certificate, not allowed: refused in the handshake.
    let reporting = Client::builder()
        .identity(ca.client("spiffe://example.org/reporting")?.identity()?)
        .trust(ca.trust()?)
        .build()?;
    match call_stock(&reporting, &url).await {
        Ok(_) => return Err("reporting was served despite the policy".into()),
        Err(e) => println!("[reporting] refused: {e}"),
    }
    serving.abort();
    Ok(())
}

async fn call_stock(client: &Client, url: &str) -> Result<StockReply, Failure> {
    let connector = client.connector();
    // Wrap the connector to show what each new connection verified about the server.
    let connector = tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        async move {
            let connection = connector.connect(uri).await?;
            println!(
                "[orders] channel connected to {}",
                connection.peer_identity()
            );
            Ok::<_, mtls::ClientError>(connection)
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_with_connector(connector)
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let codec = tonic_prost::ProstCodec::<StockRequest, StockReply>::default();
    let request = Request::new(StockRequest {
        item: "widgets".to_owned(),
    });
    let path = http::uri::PathAndQuery::from_static(STOCK_PATH);
    let response = grpc.unary(request, path, codec).await?;
    Ok(response.into_inner())
}
