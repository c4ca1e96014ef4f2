//! rust-lang/rust#155241 with hyper-util's builders, configured as `mtls` once did: a closure
//! taking each `auto::Builder` by value sets hyper's timer (an `Arc`). Built in release by an
//! affected rustc (before 1.97), the second and third builders start from the first one's
//! storage and drop its timer, and every connection served then reads and writes freed memory:
//! `valgrind target/release/hyper_builders` reports the invalid reads; debug builds and fixed
//! compilers report none. It serves twenty plain HTTP/1.1 connections on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Builders {
    h1: auto::Builder<TokioExecutor>,
    _h2: auto::Builder<TokioExecutor>,
    _detect: auto::Builder<TokioExecutor>,
}

fn builders() -> Builders {
    let configure = |mut b: auto::Builder<TokioExecutor>| {
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_buf_size(16 * 1024);
        b.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(100)
            .max_header_list_size(16 * 1024)
            .max_pending_accept_reset_streams(Some(64));
        b
    };
    let mut h1 = configure(auto::Builder::new(TokioExecutor::new()));
    h1.http1().header_read_timeout(None);
    Builders {
        h1: h1.http1_only(),
        _h2: configure(auto::Builder::new(TokioExecutor::new())).http2_only(),
        _detect: configure(auto::Builder::new(TokioExecutor::new())),
    }
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let builders = Arc::new(builders());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let builders = Arc::clone(&builders);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(hello);
                let _ = builders
                    .h1
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    server.abort();
    println!("20 connections served");
}
