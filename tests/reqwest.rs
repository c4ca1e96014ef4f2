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
    let dir = std::env::temp_dir().join(format!("mtls-reqwest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let put = |name: &str, contents: &str| {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    };
    let first = ca.client("orders");
    put("tls.crt", &first.cert_pem);
    put("tls.key", &first.key_pem);
    put("ca.crt", &ca.pem);
    let ours = Client::builder()
        .identity_files(dir.join("tls.crt"), dir.join("tls.key"))
        .trust_file(dir.join("ca.crt"))
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
    let mut seen = false;
    for _ in 0..100 {
        http.get(&url).send().await.unwrap();
        if server.last_peer().unwrap().leaf().as_ref() == second.der.as_slice() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "reqwest presents the rotated certificate without a rebuild"
    );

    // And it checks the server like our client: a server from another CA is refused.
    let foreign = Ca::new("foreign");
    let rogue = serve(server_builder(&foreign).trust(ca.trust())).await;
    assert!(http.get(rogue.url("/").to_string()).send().await.is_err());
    server.shutdown().await;
    rogue.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
