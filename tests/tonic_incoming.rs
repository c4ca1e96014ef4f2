//! tonic's own server on `Server::incoming()`: our handshake, policy and limits, tonic's HTTP/2,
//! and the caller's identity in each gRPC request (feature `tonic`).

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::*;
use mtls::{Authorizer, Client, Rotate, Server, VerifiedConnectInfo};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
struct WhoAmI {
    #[prost(string, tag = "1")]
    caller: String,
}

const PATH: &str = "/test.Identity/WhoAmI";

/// A one-method gRPC service, written out as `tonic-build` would generate it.
#[derive(Clone)]
struct IdentityService;

impl NamedService for IdentityService {
    const NAME: &'static str = "test.Identity";
}

async fn who_am_i(request: Request<Empty>) -> Result<Response<WhoAmI>, Status> {
    let caller = request
        .extensions()
        .get::<VerifiedConnectInfo>()
        .and_then(|info| info.peer_identity())
        .map(|peer| format!("{peer} {}", peer.serial()))
        .ok_or_else(|| Status::unauthenticated("no verified identity"))?;
    Ok(Response::new(WhoAmI { caller }))
}

impl<B> tower_service::Service<http::Request<B>> for IdentityService
where
    B: http_body::Body<Data = hyper::body::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(Status::unimplemented("").into_http());
            }
            let codec = tonic_prost::ProstCodec::<WhoAmI, Empty>::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(tower::service_fn(who_am_i), req)
                .await)
        })
    }
}

async fn ask(client: &Client, port: u16) -> Result<String, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))?
        .connect_with_connector(client.connector())
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let reply = grpc
        .unary(
            Request::new(Empty {}),
            http::uri::PathAndQuery::from_static(PATH),
            tonic_prost::ProstCodec::<Empty, WhoAmI>::default(),
        )
        .await?;
    Ok(reply.into_inner().caller)
}

#[tokio::test]
async fn tonic_serves_verified_streams_and_sees_the_caller() {
    let ca = Ca::new("root");
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::spiffe_id("spiffe://example.org/orders").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port();
    let stats = server.stats();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityService)
            .serve_with_incoming(server.incoming()),
    );
    let orders = client(
        &ca,
        &ca.issue(Leaf {
            uris: vec!["spiffe://example.org/orders"],
            ..Leaf::client("orders")
        }),
    );
    let first = ask(&orders, port).await.unwrap();
    assert!(first.starts_with("spiffe://example.org/orders "), "{first}");
    // Rotation reaches a new tonic channel through the same connector, with nothing rebuilt.
    orders
        .set_identity(
            ca.issue(Leaf {
                uris: vec!["spiffe://example.org/orders"],
                ..Leaf::client("orders")
            })
            .identity(),
        )
        .unwrap();
    let second = ask(&orders, port).await.unwrap();
    assert!(
        second.starts_with("spiffe://example.org/orders "),
        "{second}"
    );
    assert_ne!(
        first, second,
        "the new channel presents the new certificate"
    );

    // The policy still runs in our handshake: tonic never sees this caller.
    let reporting = client(
        &ca,
        &ca.issue(Leaf {
            uris: vec!["spiffe://example.org/reporting"],
            ..Leaf::client("reporting")
        }),
    );
    assert!(ask(&reporting, port).await.is_err());
    let counted = stats.clone();
    assert!(
        eventually(|| counted.handshake_failures(mtls::HandshakeFailure::NotAuthorized) >= 1).await
    );
    serving.abort();
}
