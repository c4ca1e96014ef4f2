//! The server's certificate chain, captured by a second handshake that records it and stops:
//! used to describe a certificate our verifier rejected, and to ask which versions the server
//! speaks.

use std::sync::{Arc, Mutex};

use mtls::CertificateDer;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Context;

/// The server's certificate chain, from a second handshake that records it and stops.
pub(super) async fn chain(ctx: &Context) -> Option<Vec<CertificateDer<'static>>> {
    with_versions(ctx, rustls::DEFAULT_VERSIONS).await
}

/// The server's chain from a handshake that offers only `versions`. `None`: the server
/// showed no certificate to such a handshake.
pub(super) async fn with_versions(
    ctx: &Context,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Option<Vec<CertificateDer<'static>>> {
    let provider = mtls::crypto_provider();
    let capture = Arc::new(Capture {
        chain: Mutex::new(None),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(ctx.host.clone()).ok()?;
    let attempt = async {
        let tcp = TcpStream::connect((ctx.host.as_str(), ctx.port))
            .await
            .ok()?;
        let _ = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        Some(())
    };
    let _ = tokio::time::timeout(ctx.timeout, attempt).await;
    capture.chain.lock().ok()?.take()
}

/// Records the server's chain, then stops the handshake: it verifies nothing, and is used
/// only to describe a certificate the real verifier rejected.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut slot) = self.chain.lock() {
            *slot = Some(chain);
        }
        Err(rustls::Error::General(
            "certificate recorded for diagnosis".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
