//! [`RevocationPolicy`]: how the CRLs carried by trust bundles are applied, to rustls'
//! verifier builders and to webpki called directly.

/// How the CRLs carried by trust bundles are applied. With no CRLs, nothing is checked.
///
/// # Examples
///
/// ```
/// let mut revocation = mtls::verify::RevocationPolicy::default();
/// assert!(!revocation.leaf_only && !revocation.allow_unknown_status);
/// revocation.leaf_only = true; // as ServerBuilder::revocation_leaf_only does
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationPolicy {
    /// Check only the leaf, not the intermediates. Default: the whole chain.
    pub leaf_only: bool,
    /// Accept a certificate whose status no CRL covers. Default: refuse it.
    pub allow_unknown_status: bool,
    /// Use a CRL past its `nextUpdate` as if it were current. Default: a certificate whose
    /// status only an expired CRL gives is refused (`revocation_unknown`), as OpenSSL's CRL
    /// check does, since a CRL nobody republishes can no longer say what was revoked since.
    pub allow_expired_crls: bool,
}

/// `builder` (rustls' client or server verifier builder: the same options, no shared trait)
/// with `revocation` applied.
macro_rules! with_revocation {
    ($builder:expr, $revocation:expr) => {{
        let (mut builder, revocation) = ($builder, $revocation);
        if revocation.leaf_only {
            builder = builder.only_check_end_entity_revocation();
        }
        if revocation.allow_unknown_status {
            builder = builder.allow_unknown_revocation_status();
        }
        if !revocation.allow_expired_crls {
            builder = builder.enforce_revocation_expiration();
        }
        builder
    }};
}
pub(super) use with_revocation;

impl RevocationPolicy {
    pub(super) fn depth(self) -> webpki::RevocationCheckDepth {
        if self.leaf_only {
            webpki::RevocationCheckDepth::EndEntity
        } else {
            webpki::RevocationCheckDepth::Chain
        }
    }

    pub(super) fn expiration(self) -> webpki::ExpirationPolicy {
        if self.allow_expired_crls {
            webpki::ExpirationPolicy::Ignore
        } else {
            webpki::ExpirationPolicy::Enforce
        }
    }

    pub(super) fn unknown(self) -> webpki::UnknownStatusPolicy {
        if self.allow_unknown_status {
            webpki::UnknownStatusPolicy::Allow
        } else {
            webpki::UnknownStatusPolicy::Deny
        }
    }
}
