//! [`TlsVersion`]: the TLS version a connection negotiated.

use std::fmt;

/// A negotiated TLS version. Only TLS 1.2 and 1.3 are ever negotiated.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::peer::TlsVersion::Tls13.to_string(), "TLSv1.3");
/// assert_eq!(mtls::peer::TlsVersion::Tls12.to_string(), "TLSv1.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}
