//! HEAD is answered with GET's headers and no body over HTTP/2 (as hyper does over HTTP/1.1),
//! even from a service that returns a body for it, as most hand-written hyper services do.
//! curl checks both protocols against the `server` example in `.ci/memcheck`.

mod common;

use common::*;

#[tokio::test]
async fn head_over_http2_has_gets_headers_and_no_body() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    {
        let client = client(&ca, &ca.client("orders"));
        let get = client.get(server.url("/")).await.unwrap();
        let length = get.headers()["content-length"].clone();
        let version = get.version();
        assert_eq!(version, hyper::Version::HTTP_2);
        let req = hyper::Request::head(server.url("/"))
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap();
        let head = client.request(req).await.unwrap();
        assert_eq!(head.status(), 200, "{version:?}");
        assert_eq!(head.version(), version);
        assert_eq!(head.headers()["content-length"], length, "{version:?}");
        assert_eq!(body_string(head).await, "", "{version:?}");
        // The connection is still good for the next request.
        assert_eq!(client.get(server.url("/")).await.unwrap().status(), 200);
    }
    server.shutdown().await;
}
