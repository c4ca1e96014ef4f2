//! `Server::serve` takes tower services as well as hyper ones, with no wrapper: the identity
//! reaches a tower service exactly as it reaches a hyper one.

mod common;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use common::*;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use mtls::PeerIdentity;

/// A hand-written tower service that names the caller and counts `poll_ready` calls.
#[derive(Clone)]
struct NameTheCaller {
    ready_calls: Arc<AtomicUsize>,
}

impl tower_service::Service<Request<Incoming>> for NameTheCaller {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.ready_calls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let caller = req
            .extensions()
            .get::<PeerIdentity>()
            .map_or("nobody".to_owned(), |p| p.to_string());
        ready(Ok(Response::new(Full::new(Bytes::from(format!(
            "tower sees {caller}"
        ))))))
    }
}

#[tokio::test]
async fn a_tower_service_is_served_with_the_peer_identity() {
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().port();
    let ready_calls = Arc::new(AtomicUsize::new(0));
    let service = NameTheCaller {
        ready_calls: Arc::clone(&ready_calls),
    };
    let task = tokio::spawn(server.serve(service));
    let leaf = ca.issue(Leaf {
        uris: vec!["spiffe://example.org/orders"],
        ..Leaf::client("orders")
    });
    let client = client(&ca, &leaf);
    let url: hyper::Uri = format!("https://localhost:{port}/").parse().unwrap();
    for _ in 0..2 {
        let resp = client.get(url.clone()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            body_string(resp).await,
            "tower sees spiffe://example.org/orders"
        );
    }
    assert!(
        ready_calls.load(Ordering::SeqCst) >= 2,
        "tower's poll_ready is driven before each call"
    );
    task.abort();
}
