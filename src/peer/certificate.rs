//! [`Certificate`]: the fields of a peer's leaf certificate, extracted once with x509-parser.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::fingerprint::Fingerprint;
use crate::error::{LoadError, Origin};
use crate::spiffe::SpiffeId;

/// What a chain's leaf says, parsed once for all the connections that present the same bytes
/// (see [`recent`](super::recent)).
pub(super) struct Certificate {
    pub(super) subject: String,
    pub(super) issuer: String,
    pub(super) common_name: Option<String>,
    pub(super) dns_names: Vec<String>,
    pub(super) uris: Vec<String>,
    pub(super) ip_addresses: Vec<IpAddr>,
    pub(super) emails: Vec<String>,
    pub(super) spiffe_id: Option<SpiffeId>,
    /// The URI SAN that is the SPIFFE ID, if any.
    pub(super) spiffe_uri: Option<usize>,
    pub(super) serial: String,
    pub(super) not_before: SystemTime,
    pub(super) not_after: SystemTime,
    /// Of the leaf; also the key under which [`recent`](super::recent) keeps the chain.
    pub(super) fingerprint: Fingerprint,
    pub(super) chain: Vec<CertificateDer<'static>>,
}

impl Certificate {
    pub(super) const ORIGIN: Origin = Origin::Memory("peer certificate chain");

    /// Parses the leaf of `chain` (not empty), whose SHA-256 is `fingerprint`.
    pub(super) fn parse(
        chain: Vec<CertificateDer<'static>>,
        fingerprint: Fingerprint,
    ) -> Result<Self, LoadError> {
        let invalid = |detail: String| LoadError::InvalidCertificate {
            origin: Self::ORIGIN,
            index: 1,
            detail,
        };
        let leaf = chain.first().ok_or(LoadError::NoCertificate {
            origin: Self::ORIGIN,
        })?;
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| invalid(e.to_string()))?;

        let mut dns_names = Vec::new();
        let mut uris = Vec::new();
        let mut ip_addresses = Vec::new();
        let mut emails = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| invalid(format!("subjectAltName: {e}")))?;
        if let Some(san) = san {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::RFC822Name(e) => emails.push((*e).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let (spiffe_id, spiffe_uri) = spiffe_id_of(&uris).unzip();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let validity = cert.validity();
        let (subject, issuer) = (cert.subject().to_string(), cert.issuer().to_string());
        let serial = serial_hex(cert.raw_serial());
        let (not_before, not_after) = (
            system_time(validity.not_before.timestamp()),
            system_time(validity.not_after.timestamp()),
        );
        drop(cert);
        Ok(Certificate {
            subject,
            issuer,
            common_name,
            dns_names,
            uris,
            ip_addresses,
            emails,
            spiffe_id,
            spiffe_uri,
            serial,
            not_before,
            not_after,
            fingerprint,
            chain,
        })
    }
}

/// The SPIFFE ID of an X.509-SVID: exactly one URI SAN with the spiffe scheme, and valid.
/// The SPIFFE ID among `uris`, and its index.
fn spiffe_id_of(uris: &[String]) -> Option<(SpiffeId, usize)> {
    let mut spiffe = uris.iter().enumerate().filter(|(_, u)| {
        u.get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
    });
    let (index, first) = spiffe.next()?;
    if spiffe.next().is_some() {
        return None;
    }
    // A leaf SVID names a workload; the bare trust domain ID is not one.
    SpiffeId::parse(first)
        .ok()
        .filter(|id| !id.path().is_empty())
        .map(|id| (id, index))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02X}")).collect()
}

/// A certificate time as `SystemTime`, clamped to what the platform can represent (dates
/// before 1601 do not fit on some systems, and must not panic while parsing a peer's leaf).
fn system_time(unix: i64) -> SystemTime {
    let offset = Duration::from_secs(unix.unsigned_abs());
    let time = if unix >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_id_needs_exactly_one_spiffe_uri() {
        let one = vec!["spiffe://a.org/x".to_owned(), "https://a.org".to_owned()];
        assert!(spiffe_id_of(&one).is_some());
        let two = vec!["spiffe://a.org/x".to_owned(), "spiffe://a.org/y".to_owned()];
        assert!(spiffe_id_of(&two).is_none());
        let bad = vec!["spiffe://A.org/x".to_owned()];
        assert!(spiffe_id_of(&bad).is_none());
        let bare = vec!["spiffe://a.org".to_owned()];
        assert!(
            spiffe_id_of(&bare).is_none(),
            "a trust domain ID is not a workload"
        );
    }

    #[test]
    fn serial_is_upper_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x8a, 0x01]), "8A01");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}
