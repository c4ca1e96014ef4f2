//! The process-wide default crypto provider is never read (README, "Features"): this
//! binary installs a default that cannot make a connection (no cipher suites, no key exchange
//! groups, a random source and a key loader that fail and count their calls) and runs the core
//! flows. Each one works only if our code passes its own provider to every rustls config.
//!
//! A binary of its own: the default is process-wide and cannot be uninstalled.

mod common;

#[path = "common/grpc.rs"]
mod grpc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use grpc::{IdentityService, ask};
use mtls::{Client, Crls};
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Calls into the installed default's random source or key loader.
static DEFAULT_USED: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct FailingRandom;

impl SecureRandom for FailingRandom {
    fn fill(&self, _: &mut [u8]) -> Result<(), GetRandomFailed> {
        DEFAULT_USED.fetch_add(1, Ordering::SeqCst);
        Err(GetRandomFailed)
    }
}

#[derive(Debug)]
struct FailingKeys;

impl KeyProvider for FailingKeys {
    fn load_private_key(
        &self,
        _: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        DEFAULT_USED.fetch_add(1, Ordering::SeqCst);
        Err(rustls::Error::General(
            "the process-wide default provider was read".into(),
        ))
    }
}

/// Installs the unusable default once for the process, and checks it is the one installed.
fn install_unusable_default() {
    let mut unusable = (*mtls::crypto_provider()).clone();
    unusable.cipher_suites.clear();
    unusable.kx_groups.clear();
    unusable.secure_random = &FailingRandom;
    unusable.key_provider = &FailingKeys;
    // Err only when a test in this binary installed it first.
    let _ = unusable.install_default();
    let installed = CryptoProvider::get_default().expect("a default is installed");
    assert!(
        installed.cipher_suites.is_empty() && installed.kx_groups.is_empty(),
        "the unusable default is the process's default"
    );
}

fn assert_default_unused() {
    assert_eq!(
        DEFAULT_USED.load(Ordering::SeqCst),
        0,
        "the process-wide default provider's random source or key loader was called"
    );
}

#[tokio::test]
async fn server_and_client_with_crls_and_resumption_never_read_the_default() {
    install_unusable_default();
    let ca = Ca::new("root");
    let crls = Crls::from_bytes(ca.crl(&[]).as_bytes()).unwrap();
    let server = serve(server_builder(&ca).crls(crls)).await;
    let leaf = ca.client("orders");
    // Pooled: one full handshake over HTTP/2.
    let resp = client(&ca, &leaf).get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(body_string(resp).await.starts_with("hello CN=orders"));
    // Unpooled: the second connection resumes with a ticket our provider encrypted.
    let unpooled = unpooled_client(&ca, &leaf);
    for _ in 0..2 {
        let resp = unpooled.get(server.url("/")).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert!(
        server.last_peer().unwrap().resumed(),
        "the second unpooled connection resumed"
    );
    assert_default_unused();
    server.shutdown().await;
}

#[tokio::test]
async fn build_rustls_config_and_reqwest_never_read_the_default() {
    install_unusable_default();
    let ca = Ca::new("root");
    let handle = server_builder(&ca).build_rustls_config().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(handle.rustls_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        tls.write_all(b"ok").await.unwrap();
        tls.shutdown().await.unwrap();
        peer
    });
    let leaf = ca.client("orders");
    let ours = Client::builder()
        .identity(leaf.identity())
        .trust(ca.trust())
        .build()
        .unwrap();
    let mut tls = raw_connect(addr, ours.rustls_config()).await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"ok");
    assert_eq!(accepted.await.unwrap().as_ref(), leaf.der.as_slice());

    // reqwest on our client's rustls config, against our server.
    let server = serve(server_builder(&ca)).await;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*ours.rustls_config()).clone())
        .build()
        .unwrap();
    let body = http
        .get(server.url("/").to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("hello CN=orders"), "{body}");
    assert_default_unused();
    server.shutdown().await;
}

#[tokio::test]
async fn tonic_on_incoming_and_our_connector_never_read_the_default() {
    install_unusable_default();
    let ca = Ca::new("root");
    let server = server_builder(&ca).bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().port();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityService)
            .serve_with_incoming(server.incoming()),
    );
    let caller = ask(&client(&ca, &ca.client("orders")), port).await.unwrap();
    assert!(caller.starts_with("CN=orders"), "{caller}");
    assert_default_unused();
    serving.abort();
}

/// The provider the features select: `ring` alone is a build that runs on `ring`.
#[test]
fn our_provider_is_the_one_the_features_select() {
    let random = format!("{:?}", mtls::crypto_provider().secure_random);
    let keys = format!("{:?}", mtls::crypto_provider().key_provider);
    #[cfg(feature = "aws-lc-rs")]
    let expected = "AwsLcRs";
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let expected = "Ring";
    assert_eq!((random.as_str(), keys.as_str()), (expected, expected));
}
