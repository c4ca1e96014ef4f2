//! Our own identity ([`Identity`]: certificate chain and private key) and the CAs we trust
//! ([`TrustBundle`], with their [`Crls`]), loaded from PEM files, PEM bytes or DER, and checked
//! as they load.
//!
//! One file per type (`identity`, `trust`, `crls`); `pem` holds what their loading shares
//! (file reads, PEM blocks, the parse check of each certificate); `pkcs12` reads keystores and
//! truststores (feature `pkcs12`); `crl_info` describes the CRLs in use.
//!
//! It may import the modules below it: `util`, `spiffe` and `error`.

pub(crate) mod crl_info;
mod crls;
mod identity;
mod pem;
#[cfg(feature = "pkcs12")]
pub(crate) mod pkcs12;
mod trust;

pub use crl_info::CrlInfo;
pub use crls::Crls;
pub use identity::Identity;
#[cfg(feature = "pkcs12")]
pub use pkcs12::Password;
pub use trust::TrustBundle;
