//! [`Fingerprint`]: the SHA-256 of a peer's leaf certificate.

use std::fmt;

/// A SHA-256 certificate fingerprint. Displays as lower-case hex.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
/// let fingerprint: &mtls::peer::Fingerprint = peer.fingerprint();
/// let again = mtls::PeerIdentity::from_chain(peer.chain())?;
/// assert_eq!(fingerprint, again.fingerprint());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub(super) [u8; 32]);

impl Fingerprint {
    /// The raw digest.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let fingerprint = peer.fingerprint();
    /// let hex: String = fingerprint.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    /// assert_eq!(hex, fingerprint.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}
