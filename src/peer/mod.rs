//! The verified peer: [`PeerIdentity`], parsed at most once per chain from its leaf certificate
//! and completed with what each connection negotiated, and where a request's peer is found.
//!
//! `peer` may import `util`, `spiffe`, `error` and `material`, nothing above them.

mod certificate;
mod fingerprint;
mod identity;
mod recent;
pub(crate) mod request;
mod version;

pub use fingerprint::Fingerprint;
#[cfg(test)]
pub(crate) use identity::INNER_ALIGN;
pub use identity::PeerIdentity;
#[cfg(feature = "tonic")]
pub use request::VerifiedConnectInfo;
pub use version::TlsVersion;

/// A self-signed certificate for `name.example` with the common name `name`, for the tests of
/// this folder.
#[cfg(test)]
fn self_signed(name: &str) -> rustls_pki_types::CertificateDer<'static> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.self_signed(&key).unwrap().der().clone()
}
