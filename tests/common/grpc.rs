//! A one-method gRPC service (`test.Identity/WhoAmI`, answering with the caller's identity),
//! written out as `tonic-build` would generate it, and a tonic client call to it. Included with
//! `#[path]` by the tests that speak gRPC, so the others build without it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mtls::{Client, PeerIdentity, peer::VerifiedConnectInfo};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoAmI {
    #[prost(string, tag = "1")]
    pub caller: String,
}

pub const PATH: &str = "/test.Identity/WhoAmI";

#[derive(Clone)]
pub struct IdentityService;

impl NamedService for IdentityService {
    const NAME: &'static str = "test.Identity";
}

/// The caller's identity and serial: from `mtls::Server` as a `PeerIdentity`, from tonic's
/// `serve_with_incoming` in the `VerifiedConnectInfo`.
async fn who_am_i(request: Request<Empty>) -> Result<Response<WhoAmI>, Status> {
    let extensions = request.extensions();
    let caller = extensions
        .get::<PeerIdentity>()
        .or_else(|| {
            extensions
                .get::<VerifiedConnectInfo>()
                .and_then(|info| info.peer_identity())
        })
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

/// Calls `WhoAmI` on `127.0.0.1:port` through `client`'s connector; the answer, or the
/// connection's error, or the `tonic::Status` (boxed: downcast it).
pub async fn ask(client: &Client, port: u16) -> Result<String, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))?
        .connect_with_connector(client.connector())
        .await?;
    ask_on(channel).await
}

/// Calls `WhoAmI` on a channel.
pub async fn ask_on(
    channel: tonic::transport::Channel,
) -> Result<String, Box<dyn std::error::Error>> {
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
