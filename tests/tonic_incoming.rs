//! tonic's own server on `Server::incoming()`: our handshake, policy and limits, tonic's HTTP/2,
//! and the caller's identity in each gRPC request (feature `tonic`).

mod common;

#[path = "common/grpc.rs"]
mod grpc;

use common::*;
use grpc::{IdentityService, ask};
use mtls::{Authorizer, Rotate, Server};

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
