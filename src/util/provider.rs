//! The rustls crypto provider, chosen by Cargo feature and passed explicitly to every config.
//!
//! The process-level default provider is never consulted: it panics when both or neither provider
//! features are enabled, and it lets an unrelated dependency change our cryptography.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "mtls needs a crypto provider: enable the `aws-lc-rs` feature (the default) or the `ring` feature"
);

/// The name of the crypto provider this build uses: `"aws-lc-rs"` or `"ring"`.
///
/// When both features are enabled (as with `--all-features`), aws-lc-rs is used.
///
/// ```
/// assert!(["aws-lc-rs", "ring"].contains(&mtls::CRYPTO_PROVIDER));
/// ```
#[cfg(feature = "aws-lc-rs")]
pub const CRYPTO_PROVIDER: &str = "aws-lc-rs";

/// The name of the crypto provider this build uses: `"aws-lc-rs"` or `"ring"`.
///
/// When both features are enabled (as with `--all-features`), aws-lc-rs is used.
///
/// ```
/// assert!(["aws-lc-rs", "ring"].contains(&mtls::CRYPTO_PROVIDER));
/// ```
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub const CRYPTO_PROVIDER: &str = "ring";

/// The crypto provider every rustls config of this crate is built with.
///
/// It is the provider's own defaults with one change of order: the AES-128-GCM suites come
/// first (`TLS13_AES_128_GCM_SHA256`, then the TLS 1.2 ECDHE AES-128-GCM suites), ahead of
/// AES-256-GCM and ChaCha20-Poly1305, as Go and BoringSSL rank them. Every suite of the
/// provider stays available. The keys are exchanged with X25519 or P-256 and the
/// certificates are usually P-256: a connection has 128-bit security whichever AES it uses,
/// and the SHA-256 suites hash with the CPU's SHA instructions on most x86 and ARM servers,
/// where SHA-384 runs in software (about a tenth of a full handshake's CPU). Our server
/// picks by this order, whatever the client prefers (see `docs/SECURITY.md`).
///
/// It is built once per call site that needs it; callers keep the `Arc`.
///
/// # Examples
///
/// ```
/// let provider = mtls::crypto_provider();
/// assert_eq!(
///     provider.cipher_suites[0].suite(),
///     rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
/// );
/// let config = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?;
/// # drop(config);
/// # Ok::<(), rustls::Error>(())
/// ```
pub fn crypto_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the provider's order holds within each rank.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite_rank(suite.suite()));
    Arc::new(provider)
}

/// Where a suite goes in our order: AES-128-GCM first, TLS 1.3 before TLS 1.2.
fn suite_rank(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite::*;
    match suite {
        TLS13_AES_128_GCM_SHA256 => 0,
        TLS13_AES_256_GCM_SHA384 | TLS13_CHACHA20_POLY1305_SHA256 => 1,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 2,
        _ => 3,
    }
}

/// SHA-256 of `parts`, each preceded by its length (so that no two lists of parts hash alike),
/// from the same crypto library as the TLS provider.
pub(crate) fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    #[cfg(feature = "aws-lc-rs")]
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// SHA-256 of `data`, from the same crypto library as the TLS provider.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    #[cfg(feature = "aws-lc-rs")]
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use rustls::CipherSuite::*;

    #[test]
    fn aes_128_gcm_comes_first_and_no_suite_is_dropped() {
        let ours = super::crypto_provider();
        let names: Vec<_> = ours.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(names[0], TLS13_AES_128_GCM_SHA256);
        let first_tls12 = names
            .iter()
            .position(|s| format!("{s:?}").starts_with("TLS_ECDHE"))
            .unwrap();
        assert!(
            names[first_tls12..first_tls12 + 2].iter().all(|s| matches!(
                s,
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            )),
            "{names:?}"
        );
        #[cfg(feature = "aws-lc-rs")]
        let default = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let default = rustls::crypto::ring::default_provider();
        let mut theirs: Vec<_> = default.cipher_suites.iter().map(|s| s.suite()).collect();
        let mut sorted = names.clone();
        theirs.sort_by_key(|s| u16::from(*s));
        sorted.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, theirs, "the same suites, reordered");
    }
}
