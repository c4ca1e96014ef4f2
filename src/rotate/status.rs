//! What is in use and how it is doing: our leaf's and the trust anchors' expiry, each CRL's
//! `nextUpdate`, and how reloads went ([`CertificateStatus`]).

use std::time::{Duration, SystemTime};

use crate::material::{Crls, TrustBundle};
use crate::peer::PeerIdentity;
use crate::rotate::Target;
use crate::util::time::{ExpiryLevel, expiry_level};

/// One certificate's expiry facts.
///
/// # Examples
///
/// ```
/// use mtls::Rotate;
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// let info: mtls::rotate::CertificateInfo = handle.certificate_status().identity;
/// assert!(!info.expired && !info.renewal_due);
/// assert!(info.remaining > std::time::Duration::from_secs(24 * 3600));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// SPIFFE ID, if the certificate carries one.
    pub spiffe_id: Option<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Time left until `not_after` (zero once expired).
    pub remaining: Duration,
    /// Past 2/3 of its lifetime, or under 24 h left (for a certificate that lives longer than a
    /// day): renewal is due.
    pub renewal_due: bool,
    /// Expired.
    pub expired: bool,
}

impl CertificateInfo {
    fn of(peer: &PeerIdentity, now: SystemTime) -> Self {
        let level = expiry_level(peer.not_before(), peer.not_after(), now);
        CertificateInfo {
            subject: peer.subject().to_owned(),
            spiffe_id: peer.spiffe_id().map(|id| id.to_string()),
            not_before: peer.not_before(),
            not_after: peer.not_after(),
            remaining: peer.not_after().duration_since(now).unwrap_or_default(),
            renewal_due: level != ExpiryLevel::Fresh,
            expired: level == ExpiryLevel::Expired,
        }
    }
}

/// Our own leaf and trust anchors with their expiry, and the state of reloading.
///
/// # Examples
///
/// ```
/// use mtls::Rotate;
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// let status: mtls::CertificateStatus = handle.certificate_status();
/// assert_eq!(status.trust_anchors.len(), 1);
/// assert_eq!((status.reloads, status.reload_failures), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertificateStatus {
    /// Our leaf certificate.
    pub identity: CertificateInfo,
    /// Each trust anchor, in bundle order.
    pub trust_anchors: Vec<CertificateInfo>,
    /// When material was last swapped in successfully (`None`: never since start).
    pub last_reload: Option<SystemTime>,
    /// Why the last reload attempt failed, if it did (cleared by a success).
    pub last_reload_error: Option<String>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Rejected reload candidates since start.
    pub reload_failures: u64,
    /// Each CRL in use (the bundles' and those given apart), with its `nextUpdate`.
    pub crls: Vec<crate::material::CrlInfo>,
}

impl CertificateStatus {
    /// Whether the service can keep serving: our certificate is not expired, not due for
    /// renewal, no CRL in use is past its `nextUpdate` (unless `allow_expired_crls` tolerates it), and the last reload did not fail. A `/healthz` route can answer from this.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Rotate;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// assert!(handle.certificate_status().healthy());
    /// let expired = ca.issue(&mtls::dev::LeafSpec::server("localhost").expired())?.identity()?;
    /// assert!(handle.set_identity(expired).is_err()); // refused, and reported:
    /// assert!(!handle.certificate_status().healthy());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn healthy(&self) -> bool {
        !self.identity.renewal_due
            && self.last_reload_error.is_none()
            && self.crls.iter().all(|crl| !(crl.expired && crl.enforced))
    }
}

pub(crate) fn status(target: &dyn Target) -> CertificateStatus {
    let now = SystemTime::now();
    let material = target.current();
    let (identity, trust) = (&material.identity, material.trust());
    let info = |chain: &[rustls_pki_types::CertificateDer<'static>]| {
        PeerIdentity::from_chain(chain)
            .ok()
            .map(|p| CertificateInfo::of(&p, now))
    };
    let status = target.reload_state().snapshot();
    CertificateStatus {
        identity: info(identity.chain()).unwrap_or(CertificateInfo {
            subject: String::new(),
            spiffe_id: None,
            not_before: now,
            not_after: now,
            remaining: Duration::ZERO,
            renewal_due: true,
            expired: true,
        }),
        trust_anchors: trust
            .iter()
            .flat_map(|b| b.certificates().iter())
            .filter_map(|c| info(std::slice::from_ref(c)))
            .collect(),
        last_reload: status.last_reload,
        last_reload_error: status.last_error,
        reloads: status.succeeded,
        reload_failures: status.failed,
        crls: crate::material::crl_info::crl_infos(
            trust
                .iter()
                .flat_map(TrustBundle::crls)
                .chain(material.crls.iter().flat_map(Crls::as_slice)),
            now,
            !target.tolerates_expired_crls(),
        ),
    }
}
