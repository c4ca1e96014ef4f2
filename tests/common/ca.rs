//! A throwaway CA that issues certificates in memory.

use std::net::IpAddr;
use std::time::Duration;

use mtls::dev::{DevCa, LeafSpec, Usage};
use mtls::{Identity, TrustBundle};
use rcgen::ExtendedKeyUsagePurpose;

/// A CA (root or intermediate) that issues certificates: the crate's own `DevCa`, with the
/// shorthands these tests use.
pub struct Ca {
    inner: DevCa,
    /// This CA's certificate (for a stand-in, the certificate it stands in for).
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let inner = DevCa::new(name).unwrap();
        Ca {
            pem: inner.cert_pem().to_owned(),
            inner,
        }
    }

    pub fn intermediate(&self, name: &str) -> Ca {
        let inner = self.inner.intermediate(name).unwrap();
        Ca {
            pem: inner.cert_pem().to_owned(),
            inner,
        }
    }

    /// A stand-in that only knows the CA's certificate, for building trust in another task.
    pub fn from_pem_for_trust(pem: &str) -> Ca {
        Ca {
            inner: DevCa::new("unused").unwrap(),
            pem: pem.to_owned(),
        }
    }

    pub fn trust(&self) -> TrustBundle {
        TrustBundle::from_pem(self.pem.as_bytes()).unwrap()
    }

    /// Issues a leaf from `spec`.
    pub fn issue(&self, spec: Leaf) -> Issued {
        let usage = match spec.ekus.as_slice() {
            [ExtendedKeyUsagePurpose::ServerAuth] => Usage::Server,
            [ExtendedKeyUsagePurpose::ClientAuth] => Usage::Client,
            _ => Usage::Both,
        };
        let now = std::time::SystemTime::now();
        let at = |d: time::Duration| {
            let secs = d.whole_seconds();
            if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        let mut leaf = LeafSpec::new(spec.cn)
            .organization("Example")
            .usage(usage)
            .validity(at(spec.not_before), at(spec.not_after));
        for dns in &spec.dns {
            leaf = leaf.dns(dns);
        }
        for ip in &spec.ips {
            leaf = leaf.ip(*ip);
        }
        for uri in &spec.uris {
            leaf = leaf.uri(uri);
        }
        for email in &spec.emails {
            leaf = leaf.email(email);
        }
        if let Some(serial) = spec.serial {
            leaf = leaf.serial(serial);
        }
        let cert = self.inner.issue(&leaf).unwrap();
        Issued {
            cert_pem: cert.cert_pem().to_owned(),
            key_pem: cert.key_pem().to_owned(),
            der: cert.der().to_vec(),
        }
    }

    /// A CRL signed by this CA revoking the given serials (PEM).
    pub fn crl(&self, revoked: &[&[u8]]) -> String {
        self.inner.crl_pem(revoked).unwrap()
    }

    /// As [`Ca::crl`], due for republishing at `next_update` (in the past, for a stale CRL).
    pub fn crl_until(&self, revoked: &[&[u8]], next_update: std::time::SystemTime) -> String {
        self.inner.crl_pem_until(revoked, next_update).unwrap()
    }

    /// A client certificate (clientAuth EKU).
    pub fn client(&self, cn: &'static str) -> Issued {
        self.issue(Leaf::client(cn))
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Issued {
        self.issue(Leaf::server())
    }

    /// A client certificate naming the workload `id` (a SPIFFE ID) in its URI SAN.
    pub fn workload(&self, id: &'static str) -> Issued {
        self.issue(Leaf {
            uris: vec![id],
            ..Leaf::client("workload")
        })
    }
}

/// What to put in a leaf certificate.
#[derive(Clone)]
pub struct Leaf {
    pub cn: &'static str,
    pub dns: Vec<&'static str>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<&'static str>,
    pub emails: Vec<&'static str>,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    pub serial: Option<&'static [u8]>,
    pub not_before: time::Duration,
    pub not_after: time::Duration,
}

impl Leaf {
    pub fn client(cn: &'static str) -> Leaf {
        Leaf {
            cn,
            dns: vec![],
            ips: vec![],
            uris: vec![],
            emails: vec![],
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            serial: None,
            not_before: time::Duration::hours(-1),
            not_after: time::Duration::hours(24),
        }
    }

    pub fn server() -> Leaf {
        Leaf {
            dns: vec!["localhost"],
            ips: vec!["127.0.0.1".parse().unwrap()],
            ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
            ..Leaf::client("server")
        }
    }
}

/// An issued leaf: PEM chain (leaf first), PEM key, leaf DER.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Issued {
    pub fn identity(&self) -> Identity {
        Identity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    /// The private key, for hand-built rustls configs.
    pub fn key(&self) -> mtls::PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        mtls::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}
