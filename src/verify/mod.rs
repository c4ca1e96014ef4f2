//! rustls certificate verifiers that add identity policy and per-trust-domain bundles to
//! rustls' own chain validation, and never replace it with anything weaker.
//!
//! - [`ClientIdentityVerifier`] runs on a server: it validates a client's chain with rustls'
//!   `WebPkiClientVerifier` against the bundle of the client's trust domain, then applies the
//!   server's [`Authorizer`](crate::Authorizer).
//! - [`ServerIdentityVerifier`] runs on a client: without a policy it is rustls'
//!   `WebPkiServerVerifier` (chain plus DNS name or IP); with one it validates the chain only
//!   (anchors, validity, EKU serverAuth) and then matches the leaf against the policy.
//!
//! Our [`Server`](crate::Server) and [`Client`](crate::Client) use them; they are public so that
//! any rustls-based library can run the same checks.
//!
//! Here: the two verifiers (`client`, `server`), the trust bundles grouped into stores with
//! their CRLs (`anchors`), how CRLs are applied (`revocation`), the events of a refused peer
//! (`log`) and the memory of verified chain signatures (`signatures`). `verify` may import
//! `util`, `spiffe`, `error`, `material`, `peer`, `policy` and `handshake`, nothing above them.

mod anchors;
mod client;
mod log;
mod revocation;
mod server;
mod signatures;

/// Re-exported where the client's verifier produces it.
pub use crate::error::ServerNotAllowed;
pub use client::{ClientAuth, ClientIdentityVerifier};
pub(crate) use log::log_not_authorized;
pub use revocation::RevocationPolicy;
pub use server::ServerIdentityVerifier;

/// The handshake-signature checks both verifiers share: the provider's algorithms, as rustls'
/// own verifiers use them. Expands inside an impl whose `self.provider` is the crypto provider.
macro_rules! handshake_signatures_from_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
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
            verify_tls13_signature(
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
    };
}
use handshake_signatures_from_provider;
