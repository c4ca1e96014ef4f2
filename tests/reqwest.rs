//! reqwest on our client's rustls config: it presents our certificate, verifies the server as
//! our client does, and follows rotation of our files without being rebuilt.

mod common;

use std::time::Duration;

use common::*;
use mtls::Client;

#[tokio::test]
async fn reqwest_follows_the_rotation_of_our_certificate_files() {
    let ca = Ca::new("root");
    let server = serve(server_builder(&ca)).await;
    let dir = Dir::new("reqwest");
    let put = |name: &str, contents: &str| dir.put(name, contents);
    let first = ca.client("orders");
    put("tls.crt", &first.cert_pem);
    put("tls.key", &first.key_pem);
    put("ca.crt", &ca.pem);
    let ours = Client::builder()
        .identity_files(dir.path("tls.crt"), dir.path("tls.key"))
        .trust_file(dir.path("ca.crt"))
        .reload_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*ours.rustls_config()).clone())
        // A new connection per request, so each one shows the certificate presented now.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = server.url("/").to_string();
    let body = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(body.starts_with("hello CN=orders"), "{body}");
    assert_eq!(
        server.last_peer().unwrap().leaf().as_ref(),
        first.der.as_slice()
    );

    let second = ca.client("orders");
    put("tls.key", &second.key_pem);
    put("tls.crt", &second.cert_pem);
    // Polled, each request a new connection, until the reload shows (30 s on a busy machine).
    let seen = eventually_async(|| async {
        http.get(&url).send().await.unwrap();
        server.last_peer().unwrap().leaf().as_ref() == second.der.as_slice()
    })
    .await;
    assert!(
        seen,
        "reqwest presents the rotated certificate without a rebuild"
    );

    // And it checks the server like our client: a server from another CA is refused.
    let foreign = Ca::new("foreign");
    let rogue = serve(server_builder(&foreign).trust(ca.trust())).await;
    let err = http
        .get(rogue.url("/").to_string())
        .send()
        .await
        .expect_err("a server from another CA is refused");
    assert_eq!(
        rustls_error_in(&err),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{err:?}"
    );
    let stats = rogue.stats.clone();
    assert!(
        eventually(|| stats.handshake_failures(mtls::HandshakeFailure::RejectedByPeer) == 1).await,
        "{:?}",
        stats.failures()
    );
    assert!(rogue.seen.lock().unwrap().is_empty(), "no handler ran");
    // The good server is still served.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    server.shutdown().await;
    rogue.shutdown().await;
}
