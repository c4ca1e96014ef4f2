//! [`DevCa`]: a throwaway certificate authority for tests, examples and local development
//! (feature `dev`).
//!
//! It issues root and intermediate CAs and leaf certificates with SPIFFE IDs, DNS and IP SANs,
//! chosen lifetimes (expired and not yet valid included), and chosen key usages, entirely in
//! memory. Hand the results straight to the builders, or write them as PEM files.
//!
//! **Not for production.** Keys are generated in process memory and written without
//! encryption; there is no revocation service, audit or key protection.
//!
//! Here: the CA ([`DevCa`], `ca`), what a leaf should carry ([`LeafSpec`], [`Usage`], `leaf`),
//! an issued leaf ([`DevCert`], `cert`), the PEM files written to disk (`files`), PKCS#12
//! keystores and truststores (`keystore`, feature `pkcs12`) and [`DevCaError`] (`error`). `dev`
//! may import every other module; only tests import it.

mod ca;
mod cert;
mod error;
mod files;
#[cfg(feature = "pkcs12")]
mod keystore;
mod leaf;

pub use ca::DevCa;
pub use cert::DevCert;
pub use error::DevCaError;
pub use leaf::{LeafSpec, Usage};

#[cfg(test)]
mod tests;
