//! What a certificate says, in words: shared by `inspect` and `doctor`.

use std::time::{Duration, SystemTime};

use mtls::{CertificateDer, PeerIdentity};
use serde::Serialize;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// One certificate's facts.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sans: Vec<String>,
    pub spiffe_id: Option<String>,
    pub not_before: String,
    pub not_after: String,
    /// "valid", "expired" or "not yet valid".
    pub validity: &'static str,
    /// "29 days left", "expired 3 h ago", "valid in 2 days".
    pub time_left: String,
    pub key: String,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    pub ca: bool,
    pub self_signed: bool,
    pub sha256: String,
    pub x5t_s256: String,
    #[serde(skip)]
    pub not_before_time: SystemTime,
    #[serde(skip)]
    pub not_after_time: SystemTime,
    #[serde(skip)]
    pub subject_der: Vec<u8>,
    #[serde(skip)]
    pub issuer_der: Vec<u8>,
    /// `None`: no EKU extension (any use).
    #[serde(skip)]
    pub eku: Option<Eku>,
    /// For our own leaf: the subjects and issuers of its whole chain, which CA hints name.
    #[serde(skip)]
    pub chain_names: Vec<String>,
}

/// The extended key usages that matter for TLS.
#[derive(Debug, Clone, Copy)]
pub struct Eku {
    pub client_auth: bool,
    pub any: bool,
}

impl Facts {
    /// Reads a DER certificate.
    pub fn of(der: &CertificateDer<'static>) -> Result<Facts, String> {
        let peer =
            PeerIdentity::from_chain(std::slice::from_ref(der)).map_err(|e| e.to_string())?;
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut sans = Vec::new();
        sans.extend(peer.dns_names().iter().map(|d| format!("DNS:{d}")));
        sans.extend(peer.ip_addresses().iter().map(|i| format!("IP:{i}")));
        sans.extend(peer.uris().iter().map(|u| format!("URI:{u}")));
        sans.extend(peer.emails().iter().map(|e| format!("email:{e}")));
        let now = SystemTime::now();
        let (validity, time_left) = validity_words(peer.not_before(), peer.not_after(), now);
        let key_usage = match cert.key_usage() {
            Ok(Some(ku)) => ku
                .value
                .to_string()
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let (extended_key_usage, eku) = match cert.extended_key_usage() {
            Ok(Some(e)) => {
                let e = e.value;
                let mut names = Vec::new();
                for (on, name) in [
                    (e.server_auth, "serverAuth"),
                    (e.client_auth, "clientAuth"),
                    (e.code_signing, "codeSigning"),
                    (e.email_protection, "emailProtection"),
                    (e.time_stamping, "timeStamping"),
                    (e.ocsp_signing, "OCSPSigning"),
                    (e.any, "anyExtendedKeyUsage"),
                ] {
                    if on {
                        names.push(name.to_owned());
                    }
                }
                names.extend(e.other.iter().map(|o| o.to_id_string()));
                let eku = Eku {
                    client_auth: e.client_auth,
                    any: e.any,
                };
                (names, Some(eku))
            }
            _ => (Vec::new(), None),
        };
        let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        Ok(Facts {
            subject: peer.subject().to_owned(),
            issuer: peer.issuer().to_owned(),
            serial: peer.serial().to_owned(),
            sans,
            spiffe_id: peer.spiffe_id().map(|id| id.to_string()),
            not_before: rfc3339(peer.not_before()),
            not_after: rfc3339(peer.not_after()),
            validity,
            time_left,
            key: key_type(&cert),
            key_usage,
            extended_key_usage,
            ca,
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            sha256: colons(&peer.fingerprint().to_string()),
            x5t_s256: peer.x5t_s256(),
            not_before_time: peer.not_before(),
            not_after_time: peer.not_after(),
            subject_der: cert.subject().as_raw().to_vec(),
            issuer_der: cert.issuer().as_raw().to_vec(),
            eku,
            chain_names: vec![peer.issuer().to_owned()],
        })
    }

    pub fn expired(&self) -> bool {
        self.validity == "expired"
    }

    pub fn not_yet_valid(&self) -> bool {
        self.validity == "not yet valid"
    }

    /// Usable as a TLS client certificate by its EKU (no EKU at all: any use).
    pub fn allows_client_auth(&self) -> bool {
        self.eku.is_none_or(|e| e.client_auth || e.any)
    }

    /// Whether any CA named in `hints` is in our chain (as an issuer or a certificate).
    pub fn hinted(&self, hints: &[String]) -> bool {
        self.chain_names.iter().any(|n| hints.contains(n))
    }

    /// A short name: the SPIFFE ID, else the subject.
    pub fn name(&self) -> String {
        self.spiffe_id
            .clone()
            .unwrap_or_else(|| self.subject.clone())
    }
}

/// ("valid" | "expired" | "not yet valid", words about the time left).
pub fn validity_words(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
) -> (&'static str, String) {
    if now < not_before {
        let wait = not_before.duration_since(now).unwrap_or_default();
        (
            "not yet valid",
            format!("NOT YET VALID: valid in {}", words(wait)),
        )
    } else if now > not_after {
        let ago = now.duration_since(not_after).unwrap_or_default();
        ("expired", format!("EXPIRED {} ago", words(ago)))
    } else {
        let left = not_after.duration_since(now).unwrap_or_default();
        ("valid", format!("{} left", words(left)))
    }
}

/// "29 days", "5 h", "12 min", "40 s".
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} h", s / 3_600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// RFC 3339 in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// A distinguished name in DER (as in CA hints) as text.
pub fn dn_text(der: &[u8]) -> String {
    // CA hints carry the bare Name; wrap it if the parser wants the SEQUENCE header kept.
    match X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => {
            let mut wrapped = vec![0x30];
            push_len(&mut wrapped, der.len());
            wrapped.extend_from_slice(der);
            X509Name::from_der(&wrapped)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|_| "(unreadable name)".to_owned())
        }
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn key_type(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_owned(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
            Some(c) if c == OID_NIST_EC_P521 => "ECDSA P-521".to_owned(),
            Some(c) => format!("EC ({})", c.to_id_string()),
            None => "EC".to_owned(),
        };
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(key) => format!("RSA {} bits", key.key_size()),
            Err(_) => "RSA".to_owned(),
        };
    }
    if *alg == OID_SIG_ED25519 {
        return "Ed25519".to_owned();
    }
    alg.to_id_string()
}

/// "ab12cd" → "AB:12:CD", as openssl prints fingerprints.
fn colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// How a chain (leaf first) is ordered: each certificate issued by the next.
pub struct ChainOrder {
    /// Pairs (i, i+1) where i is not issued by i+1.
    pub breaks: Vec<usize>,
    /// The order that would be right, by index into the input, when one exists.
    pub suggested: Option<Vec<usize>>,
}

pub fn chain_order(chain: &[Facts]) -> ChainOrder {
    let breaks: Vec<usize> = chain
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0].issuer_der != w[1].subject_der)
        .map(|(i, _)| i)
        .collect();
    let suggested = if breaks.is_empty() {
        None
    } else {
        // Start from the certificate that issues no other one (the leaf), follow issuers.
        let leaf = (0..chain.len()).find(|&i| {
            !chain
                .iter()
                .enumerate()
                .any(|(j, c)| j != i && c.issuer_der == chain[i].subject_der && !c.self_signed)
        });
        leaf.and_then(|start| {
            let mut order = vec![start];
            while order.len() < chain.len() {
                let last = &chain[*order.last()?];
                if last.self_signed {
                    break;
                }
                let next = (0..chain.len())
                    .find(|j| !order.contains(j) && chain[*j].subject_der == last.issuer_der)?;
                order.push(next);
            }
            (order.len() == chain.len()).then_some(order)
        })
    };
    ChainOrder { breaks, suggested }
}
