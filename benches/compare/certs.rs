//! The certificates every contender uses, and the load generator's TLS settings.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ECDSA P-256 (rcgen's default key type): a CA, a server (`localhost` and 127.0.0.1) and a
/// client, written to `dir` as `ca.pem`, `server.pem`/`server.key` and
/// `client.pem`/`client.key`.
pub fn make(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = |name: &str, eku, extra: Vec<SanType>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names.push(SanType::URI(
            format!("spiffe://example.org/{name}").try_into().unwrap(),
        ));
        p.subject_alt_names.extend(extra);
        p.extended_key_usages = vec![eku];
        (
            p.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let loopback = SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let (server_cert, server_key) = leaf(
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![loopback],
    );
    let (client_cert, client_key) =
        leaf("bench-client", ExtendedKeyUsagePurpose::ClientAuth, vec![]);
    let write = |name: &str, pem: &str| std::fs::write(dir.join(name), pem).unwrap();
    write("ca.pem", &ca_pem);
    write("server.pem", &server_cert);
    write("server.key", &server_key);
    write("client.pem", &client_cert);
    write("client.key", &client_key);
}

/// The PEM files of one certificate directory, read once.
pub struct Certs {
    pub ca: CertificateDer<'static>,
    pub client_chain: Vec<CertificateDer<'static>>,
    client_key: Vec<u8>,
}

impl Certs {
    pub fn load(dir: &Path) -> Certs {
        let read = |name: &str| std::fs::read(dir.join(name)).expect("certificate files");
        let certs = |name: &str| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(&read(name))
                .collect::<Result<_, _>>()
                .unwrap()
        };
        Certs {
            ca: certs("ca.pem").remove(0),
            client_chain: certs("client.pem"),
            client_key: read("client.key"),
        }
    }

    pub fn client_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(&self.client_key).unwrap()
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }

    /// The load generator's config: plain rustls (none of our client code), TLS 1.3 only,
    /// X25519 only (what every contender picks anyway; pinned so that the crypto bound's
    /// arithmetic holds), the given ALPN ids, and TLS 1.3 tickets kept or not.
    pub fn generator(&self, alpn: &[&[u8]], resumption: bool) -> Arc<rustls::ClientConfig> {
        let mut provider = (*mtls::crypto_provider()).clone();
        provider
            .kx_groups
            .retain(|g| g.name() == rustls::NamedGroup::X25519);
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(self.roots())
            .with_client_auth_cert(self.client_chain.clone(), self.client_key())
            .unwrap();
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
