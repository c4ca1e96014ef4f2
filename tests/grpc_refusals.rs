//! gRPC callers turned away by the route layers (`Access`, `RequireIdentity`) get a gRPC status
//! with the reason, which their client reports as such, on our server and on tonic's
//! `serve_with_incoming`, where the layers and the axum extractor find the caller in tonic's
//! connect info. HTTP callers keep the plain-text answers.

mod common;

#[path = "common/grpc.rs"]
mod grpc;

use std::error::Error;

use axum::routing::get;
use common::*;
use grpc::{IdentityService, PATH, ask, ask_on};
use hyper::body::Bytes;
use mtls::{
    Access, Authorizer, Client, ClientAuth, PeerIdentity, RequireIdentity, Roles, Server,
    policy::AccessRule,
};
use tonic::Code;
use tonic::service::Routes;
use tower_layer::Layer;

const ORDERS: &str = "spiffe://example.org/ns/prod/sa/orders";
const REPORTING: &str = "spiffe://example.org/ns/prod/sa/reporting";

/// Only orders may call the service.
fn access() -> Access {
    let roles = Roles::new().role("caller", [ORDERS]).unwrap();
    Access::new(roles)
        .rule(AccessRule::path("/test.Identity").roles(["caller"]))
        .unwrap()
}

/// The access rule's refusal of reporting, as the gRPC message and the 403 body word it.
const ACCESS_REASON: &str = "spiffe://example.org/ns/prod/sa/reporting: \
     rule `/test.Identity any method for caller` does not admit this caller";

/// Only orders may call the service.
fn require() -> RequireIdentity {
    RequireIdentity::new(Authorizer::spiffe_id(ORDERS).unwrap())
}

const REQUIRE_REASON: &str = "peer spiffe://example.org/ns/prod/sa/reporting is not allowed \
     by policy spiffe_id(spiffe://example.org/ns/prod/sa/orders)";

/// A server that lets any workload of example.org complete the handshake, so that the route
/// layers decide.
async fn bind(ca: &Ca) -> Server {
    Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .authorize(Authorizer::trust_domain("example.org").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn caller(ca: &Ca, id: &'static str) -> Client {
    client(
        ca,
        &ca.issue(Leaf {
            uris: vec![id],
            ..Leaf::client("caller")
        }),
    )
}

/// The gRPC status a call ended with; a transport error fails the test.
fn status(result: Result<String, Box<dyn Error>>) -> tonic::Status {
    match result {
        Ok(answer) => panic!("served: {answer}"),
        Err(e) => match e.downcast::<tonic::Status>() {
            Ok(status) => *status,
            Err(e) => panic!("not a gRPC status: {e}"),
        },
    }
}

/// Orders is served and reporting refused with `PERMISSION_DENIED` and `reason`, on a
/// server at `port`.
async fn orders_served_reporting_denied(ca: &Ca, port: u16, reason: &str) {
    let answer = ask(&caller(ca, ORDERS), port).await.unwrap();
    assert!(answer.starts_with(&format!("{ORDERS} ")), "{answer}");
    let refused = status(ask(&caller(ca, REPORTING), port).await);
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(refused.message(), reason);
}

#[tokio::test]
async fn our_server_refuses_grpc_callers_with_permission_denied() {
    let ca = Ca::new("root");
    let by_access = bind(&ca).await;
    let by_policy = bind(&ca).await;
    let (access_port, policy_port) = (by_access.local_addr().port(), by_policy.local_addr().port());
    let serving = [
        tokio::spawn(by_access.serve(access().layer(Routes::new(IdentityService)))),
        tokio::spawn(by_policy.serve(require().layer(Routes::new(IdentityService)))),
    ];
    orders_served_reporting_denied(&ca, access_port, ACCESS_REASON).await;
    orders_served_reporting_denied(&ca, policy_port, REQUIRE_REASON).await;
    serving.iter().for_each(|task| task.abort());
}

#[tokio::test]
async fn tonic_incoming_layers_see_the_caller() {
    let ca = Ca::new("root");
    let by_access = bind(&ca).await;
    let by_policy = bind(&ca).await;
    let (access_port, policy_port) = (by_access.local_addr().port(), by_policy.local_addr().port());
    let serving = [
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(access())
                .add_service(IdentityService)
                .serve_with_incoming(by_access.incoming()),
        ),
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(require())
                .add_service(IdentityService)
                .serve_with_incoming(by_policy.incoming()),
        ),
    ];
    orders_served_reporting_denied(&ca, access_port, ACCESS_REASON).await;
    orders_served_reporting_denied(&ca, policy_port, REQUIRE_REASON).await;
    serving.iter().for_each(|task| task.abort());
}

#[tokio::test]
async fn tonic_incoming_axum_routes_extract_the_caller() {
    let ca = Ca::new("root");
    let server = bind(&ca).await;
    let port = server.local_addr().port();
    let app = axum::Router::new().route(
        "/whoami",
        get(|peer: PeerIdentity| async move { peer.to_string() }),
    );
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(app))
            .serve_with_incoming(server.incoming()),
    );
    let url = format!("https://localhost:{port}/whoami").parse().unwrap();
    let resp = caller(&ca, ORDERS).get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body_string(resp).await, ORDERS);
    serving.abort();
}

#[tokio::test]
async fn an_anonymous_grpc_caller_is_unauthenticated() {
    let ca = Ca::new("root");
    let server = Server::builder()
        .identity(ca.server().identity())
        .trust(ca.trust())
        .client_auth(ClientAuth::Optional)
        .authorize(
            Authorizer::any_of([Authorizer::any_verified(), Authorizer::anonymous()]).unwrap(),
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.serve(access().layer(Routes::new(IdentityService))));
    // No certificate: a plain rustls client, as our Client always presents one.
    let config = raw_config(&ca, None, &[&rustls::version::TLS13], &[b"h2"]);
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let config = config.clone();
        async move {
            raw_connect(addr, config)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    });
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .unwrap()
            .connect_with_connector(connector)
            .await
            .unwrap();
    let refused = status(ask_on(channel).await);
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(
        refused.message(),
        "anonymous: rule `/test.Identity any method for caller` does not admit this caller"
    );
    serving.abort();
}

/// One POST to `path` as reporting with `content_type`: status, the headers asked for, body.
async fn post(
    client: &Client,
    port: u16,
    path: &str,
    content_type: &str,
    headers: [&str; 3],
) -> (u16, [String; 3], String) {
    let req = hyper::Request::post(format!("https://localhost:{port}{path}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let values = headers.map(|name| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    });
    (status, values, body_string(resp).await)
}

#[tokio::test]
async fn grpc_refusals_are_trailers_only_and_http_ones_stay_text() {
    let ca = Ca::new("root");
    let server = bind(&ca).await;
    let port = server.local_addr().port();
    let serving = tokio::spawn(server.serve(access().layer(Routes::new(IdentityService))));
    let reporting = caller(&ca, REPORTING);
    let asked = ["content-type", "grpc-status", "grpc-message"];

    // An HTTP caller: 403 with the reason as text, as before.
    let (status, headers, body) = post(&reporting, port, PATH, "application/json", asked).await;
    assert_eq!(status, 403);
    assert_eq!(headers[0], "text/plain; charset=utf-8");
    assert_eq!(headers[1], "");
    assert_eq!(body, format!("forbidden: {ACCESS_REASON}\n"));

    // A gRPC caller: 200, the status in the headers, the message percent-encoded (`` ` `` is
    // visible ASCII and stays), no body.
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let (status, headers, body) = post(&reporting, port, PATH, content_type, asked).await;
        assert_eq!(status, 200, "{content_type}");
        assert_eq!(
            headers,
            ["application/grpc", "7", ACCESS_REASON],
            "{content_type}"
        );
        assert_eq!(body, "");
    }

    // A path with no canonical form: 400 for HTTP, INVALID_ARGUMENT for gRPC.
    let bad = "/test.Identity%2FWhoAmI";
    let (status, _, body) = post(&reporting, port, bad, "application/json", asked).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("bad request: "), "{body}");
    let (status, headers, body) = post(&reporting, port, bad, "application/grpc", asked).await;
    assert_eq!(status, 200);
    assert_eq!(headers[..2], ["application/grpc", "3"]);
    assert_eq!(
        headers[2],
        "the request path holds an escaped `/` or `\\`, or a `\\`"
    );
    assert_eq!(body, "");
    serving.abort();
}
