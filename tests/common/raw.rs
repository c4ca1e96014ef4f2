//! Raw TLS clients built by hand with rustls, for the cases our own `Client` refuses to produce.

use std::net::SocketAddr;
use std::sync::Arc;

use mtls::{CertificateDer, PrivateKeyDer};

use super::{Ca, Issued};

/// A root store holding `ca`'s certificates.
pub fn roots(ca: &Ca) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca.trust().certificates() {
        roots.add(cert.clone()).unwrap();
    }
    roots
}

/// A plain tokio-rustls client config: trusts `ca`, presents `leaf` if given.
pub fn raw_config(
    ca: &Ca,
    leaf: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca));
    let mut config = match leaf {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.identity().chain().to_vec(), leaf.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A plain tokio-rustls client config that trusts `ca` and presents `chain` with `key` as
/// given, whatever they are (a forged, oversized or foreign chain), offering HTTP/1.1.
pub fn presenting_config(
    ca: &Ca,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `addr` over TCP and completes a handshake with a raw config, naming the
/// server `localhost`.
pub async fn raw_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    raw_handshake(tcp, config).await
}

/// Completes a handshake with a raw config on a TCP connection already made (one that may
/// still wait in the server's accept queue), naming the server `localhost`.
pub async fn raw_handshake(
    tcp: tokio::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Connects with a raw config, sends one HTTP/1.1 GET and returns the response text, or the
/// I/O error of the handshake or of the exchange.
pub async fn raw_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    raw_request(
        addr,
        config,
        b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
}

/// As [`raw_get`], sending `request` (which should ask the server to close when done).
pub async fn raw_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = raw_connect(addr, config).await?;
    tls.write_all(request).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
