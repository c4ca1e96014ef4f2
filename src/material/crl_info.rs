//! The freshness of the CRLs in use, for [`CertificateStatus`](crate::CertificateStatus) and
//! [`Health`](crate::Health): each CRL's issuer and `nextUpdate`, seen before it passes.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateRevocationListDer;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// One CRL in use: who issued it and until when it may be relied on.
///
/// # Examples
///
/// ```
/// use mtls::Rotate;
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?.with_crls(ca.crl(&[])?))
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// let crl: &mtls::material::CrlInfo = &handle.certificate_status().crls[0];
/// assert_eq!(crl.issuer, "CN=test CA");
/// assert!(!crl.expired && crl.next_update.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrlInfo {
    /// The issuer's distinguished name.
    pub issuer: String,
    /// When the CRL was issued (`thisUpdate`).
    pub this_update: SystemTime,
    /// When the next CRL is due (`nextUpdate`); `None` when the CRL names no date.
    pub next_update: Option<SystemTime>,
    /// Time left until `nextUpdate` (zero once it passed, or without a date).
    pub remaining: Duration,
    /// Past `nextUpdate`.
    pub expired: bool,
    /// Whether, once expired, peers whose status only this CRL gives are refused: true unless
    /// the builder said `allow_expired_crls`.
    pub enforced: bool,
}

impl CrlInfo {
    /// The facts of one CRL, or `None` if it does not parse (it was parsed when loaded).
    fn of(
        der: &CertificateRevocationListDer<'_>,
        now: SystemTime,
        enforced: bool,
    ) -> Option<CrlInfo> {
        let (_, crl) = CertificateRevocationList::from_der(der.as_ref()).ok()?;
        let time = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0).unsigned_abs())
        };
        let next_update = crl.next_update().map(time);
        Some(CrlInfo {
            issuer: crl.issuer().to_string(),
            this_update: time(crl.last_update()),
            next_update,
            remaining: next_update
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or_default(),
            expired: next_update.is_some_and(|t| t < now),
            enforced,
        })
    }
}

/// Each distinct CRL among `crls`, in order.
pub(crate) fn crl_infos<'a>(
    crls: impl IntoIterator<Item = &'a CertificateRevocationListDer<'static>>,
    now: SystemTime,
    enforced: bool,
) -> Vec<CrlInfo> {
    let mut seen: Vec<&CertificateRevocationListDer<'static>> = Vec::new();
    let mut out = Vec::new();
    for crl in crls {
        if seen.contains(&crl) {
            continue;
        }
        seen.push(crl);
        out.extend(CrlInfo::of(crl, now, enforced));
    }
    out
}
