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
/// It is built once per call site that needs it; callers keep the `Arc`.
///
/// # Examples
///
/// ```
/// let config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
///     .with_safe_default_protocol_versions()?;
/// # drop(config);
/// # Ok::<(), rustls::Error>(())
/// ```
pub fn crypto_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        Arc::new(rustls::crypto::ring::default_provider())
    }
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
