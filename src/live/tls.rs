//! The rustls configs our [`Server`](crate::Server) and [`Client`](crate::Client) run on.
//!
//! Both are built with the explicit crypto provider and TLS 1.3 + 1.2 only.

use std::sync::Arc;

use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};

use crate::error::Error;
use crate::live::{
    ClientGeneration, ClientResolver, ClientSessions, CurrentClientCertVerifier,
    CurrentServerCertVerifier, KeyShareHints, LiveClient, LiveServer, ServerGeneration,
    ServerResolver, ServerSessions,
};
use crate::material::{Identity, TrustBundle};
use crate::policy::authorizer::Authorizer;
/// Where a server's TLS settings are named, so is whether it demands a client certificate.
use crate::verify::ClientAuth;
use crate::verify::{ClientIdentityVerifier, RevocationPolicy, ServerIdentityVerifier};

/// TLS 1.3 and 1.2; nothing older is ever negotiated.
pub(crate) static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN ids the server offers and the client asks for, most preferred first.
pub(crate) fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// Protocol options shared by server and client configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// TLS 1.3 only instead of 1.3 and 1.2.
    pub(crate) tls13_only: bool,
    /// Name our trusted CAs in the CertificateRequest (server only).
    pub(crate) ca_hints: bool,
    /// How the bundles' CRLs are applied.
    pub(crate) revocation: RevocationPolicy,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            tls13_only: false,
            ca_hints: true,
            revocation: RevocationPolicy::default(),
        }
    }
}

impl TlsOptions {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        if self.tls13_only {
            &PROTOCOL_VERSIONS[..1]
        } else {
            PROTOCOL_VERSIONS
        }
    }
}

/// The server material one handshake reads: our certificate, the verifier over `trust` that
/// applies `policy`, and a fresh session cache.
pub(crate) fn server_generation(
    provider: &Arc<CryptoProvider>,
    identity: &Identity,
    trust: &[TrustBundle],
    client_auth: ClientAuth,
    policy: &Authorizer,
    options: TlsOptions,
) -> Result<ServerGeneration, Error> {
    let verifier = ClientIdentityVerifier::new(
        Arc::clone(provider),
        trust,
        policy.clone(),
        client_auth,
        options.revocation,
    )?;
    let verifier = if options.ca_hints {
        verifier
    } else {
        verifier.without_ca_hints()
    };
    Ok(ServerGeneration::new(identity.certified_key(), verifier))
}

/// Who runs a handshake on a config, which decides where its sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    /// Our own accept loop or connector: sessions are stored per generation, and every
    /// resumed session is checked again against the current material.
    Ours,
    /// Another library, handed the config by `rustls_config()`: nothing re-checks a resumed
    /// peer there, so it neither stores nor takes a session, and issues no ticket. Sharing our
    /// store would let it resume a session our connections stored, unchecked.
    OtherLibrary,
}

/// A `ServerConfig` over `live`: built once, it reads the current material at every
/// handshake. Both runners' configs read the same generations (certificate, verifier,
/// policy) and never share a session store: the ticketer is rustls' default (none) and only
/// [`Runner::Ours`] gets a store.
pub(crate) fn live_server_config(
    provider: &Arc<CryptoProvider>,
    live: &Arc<LiveServer>,
    options: TlsOptions,
    runner: Runner,
) -> Result<ServerConfig, Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(options.versions())?
        .with_client_cert_verifier(Arc::new(CurrentClientCertVerifier(Arc::clone(live))))
        .with_cert_resolver(Arc::new(ServerResolver(Arc::clone(live))));
    config.alpn_protocols = alpn_protocols();
    // Our order (AES-128-GCM first, see `crypto_provider`), not the client's: OpenSSL, Java
    // and rustls clients put AES-256-GCM first, whose SHA-384 costs more than the cipher.
    config.ignore_client_order = true;
    match runner {
        // Each generation has its own cache: sessions from older trust or policy do not resume.
        Runner::Ours => config.session_storage = Arc::new(ServerSessions(Arc::clone(live))),
        Runner::OtherLibrary => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
    }
    // 0-RTT data is replayable and would reach a handler before the client is verified.
    config.max_early_data_size = 0;
    Ok(config)
}

/// The client material one handshake reads: our certificate, the verifier of the server over
/// `trust` (by name, or by `expect_server`), and a fresh session store.
pub(crate) fn client_generation(
    provider: &Arc<CryptoProvider>,
    identity: &Identity,
    trust: &[TrustBundle],
    expect_server: Option<Authorizer>,
    options: TlsOptions,
) -> Result<ClientGeneration, Error> {
    let verifier = ServerIdentityVerifier::new(
        Arc::clone(provider),
        trust,
        expect_server,
        options.revocation,
    )?;
    Ok(ClientGeneration::new(identity.certified_key(), verifier))
}

/// A `ClientConfig` over `live`: built once, it reads the current material at every
/// handshake. Both runners' configs read the same generations (certificate, verifier); only
/// [`Runner::Ours`] stores and offers sessions (another library's keeps key-share hints alone).
pub(crate) fn live_client_config(
    provider: &Arc<CryptoProvider>,
    live: &Arc<LiveClient>,
    options: TlsOptions,
    runner: Runner,
) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(options.versions())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CurrentServerCertVerifier(Arc::clone(live))))
        // The resolver always answers with our certificate, whatever CA names the server
        // hints in its CertificateRequest: a hint mismatch must not silently drop client auth.
        .with_client_cert_resolver(Arc::new(ClientResolver(Arc::clone(live))));
    config.alpn_protocols = alpn_protocols();
    config.resumption = match runner {
        // Each generation has its own store: sessions verified under older trust are not offered.
        Runner::Ours => Resumption::store(Arc::new(ClientSessions(Arc::clone(live)))),
        Runner::OtherLibrary => {
            Resumption::store(Arc::new(KeyShareHints(ClientSessions(Arc::clone(live)))))
                .tls12_resumption(Tls12Resumption::Disabled)
        }
    };
    Ok(config)
}
