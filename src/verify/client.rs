//! [`ClientIdentityVerifier`], which verifies client certificates and runs on a server, and
//! [`ClientAuth`], whether it demands one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::anchors::{Anchors, Store, first_issuer, pick, presented_identity, vouched};
use super::handshake_signatures_from_provider;
use super::log::{log_not_authorized, log_rejected};
use super::revocation::{RevocationPolicy, with_revocation};
use crate::error::{Error, HandshakeFailure};
use crate::handshake::{mark_logged, peer_addr, resuming, stash_verified};
use crate::material::TrustBundle;
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;

/// Whether the server demands a client certificate.
///
/// # Examples
///
/// ```
/// use mtls::{Authorizer, ClientAuth};
///
/// assert_eq!(ClientAuth::default(), ClientAuth::Required);
/// let builder = mtls::Server::builder()
///     .client_auth(ClientAuth::Optional)
///     .authorize(Authorizer::any_of([Authorizer::anonymous(), Authorizer::any_verified()])?);
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Every client must present a certificate that chains to the trust bundle (the default).
    #[default]
    Required,
    /// A client may connect without a certificate; its requests then carry no
    /// [`PeerIdentity`](crate::PeerIdentity). A certificate that *is* presented must still verify.
    ///
    /// The server's policy still decides: an anonymous client is only let in when the policy
    /// admits [`Authorizer::anonymous`](crate::Authorizer::anonymous).
    Optional,
}

/// Verifies client certificates on a server: chain per trust domain, then policy.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
/// use mtls::verify::{ClientIdentityVerifier, RevocationPolicy};
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let server = ca.server("localhost")?;
/// # let (chain, key) = (server.identity()?.chain().to_vec(), PrivateKeyDer::from_pem_slice(server.key_pem().as_bytes())?);
/// let verifier = ClientIdentityVerifier::new(
///     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::trust_domain("example.org")?,
///     mtls::ClientAuth::Required, RevocationPolicy::default(),
/// )?;
/// let config = rustls::ServerConfig::builder_with_provider(mtls::crypto_provider())
///     .with_safe_default_protocol_versions()?
///     .with_client_cert_verifier(Arc::new(verifier))
///     .with_single_cert(chain, key)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientIdentityVerifier {
    provider: Arc<CryptoProvider>,
    plain: Vec<Arc<dyn ClientCertVerifier>>,
    domains: HashMap<String, Vec<Arc<dyn ClientCertVerifier>>>,
    policy: Authorizer,
    mandatory: bool,
    hints: Vec<DistinguishedName>,
}

impl ClientIdentityVerifier {
    /// Builds a verifier over `trust` that admits peers allowed by `policy`, checking the
    /// bundles' CRLs (if any) as `revocation` says.
    ///
    /// A certificate is mandatory unless `client_auth` is [`ClientAuth::Optional`] *and* the
    /// policy admits anonymous peers ([`Authorizer::anonymous`]); a policy that can never admit
    /// an anonymous peer turns the missing certificate into a handshake failure.
    ///
    /// # Errors
    ///
    /// [`Error::MissingTrust`] for no bundles, [`Error::Verifier`] when rustls refuses them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::server::danger::ClientCertVerifier;
    /// use mtls::{Authorizer, CertificateDer, verify::ClientIdentityVerifier};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let verifier = ClientIdentityVerifier::new(
    ///     mtls::crypto_provider(), &[ca.trust()?], Authorizer::trust_domain("example.org")?,
    ///     mtls::ClientAuth::Required, Default::default(),
    /// )?;
    /// let orders = CertificateDer::from(ca.client("spiffe://example.org/orders")?.der().to_vec());
    /// let partner = CertificateDer::from(ca.client("spiffe://partner.example/x")?.der().to_vec());
    /// let now = rustls::pki_types::UnixTime::now();
    /// assert!(verifier.verify_client_cert(&orders, &[], now).is_ok());
    /// assert!(verifier.verify_client_cert(&partner, &[], now).is_err()); // denied by the policy
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        provider: Arc<CryptoProvider>,
        trust: &[TrustBundle],
        policy: Authorizer,
        client_auth: ClientAuth,
        revocation: RevocationPolicy,
    ) -> Result<Self, Error> {
        let anchors = Anchors::new(trust)?;
        // The chain's signatures (the CA's on the client's certificate, and on CRLs) are
        // checked through algorithms that remember the ones that verified (see `signatures`):
        // a client that comes back with the same certificate costs one ECDSA verification
        // less. The handshake's own signatures are checked with the plain provider
        // (`handshake_signatures_from_provider!` below).
        let chains = crate::verify::signatures::chain_provider(&provider);
        let build = |store: &Store| -> Result<Arc<dyn ClientCertVerifier>, Error> {
            let builder = WebPkiClientVerifier::builder_with_provider(
                Arc::clone(&store.roots),
                Arc::clone(&chains),
            )
            // Whether a certificate is required is decided by `client_auth_mandatory` below.
            .allow_unauthenticated()
            .with_crls(store.crls.iter().cloned());
            Ok(with_revocation!(builder, revocation).build()?)
        };
        let (plain, domains) = anchors.map(build)?;
        let hints = anchors
            .all()
            .flat_map(|store| store.roots.subjects())
            .collect();
        let mandatory = !(client_auth == ClientAuth::Optional && policy.admits_anonymous());
        Ok(ClientIdentityVerifier {
            provider,
            plain,
            domains,
            policy,
            mandatory,
            hints,
        })
    }

    /// Sends an empty CA list in the CertificateRequest instead of naming our trusted CAs
    /// (named by default). Clients send their certificate anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::server::danger::ClientCertVerifier;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let verifier = mtls::verify::ClientIdentityVerifier::new(
    ///     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(),
    ///     mtls::ClientAuth::Required, Default::default(),
    /// )?;
    /// assert_eq!(verifier.root_hint_subjects().len(), 1); // names the test CA
    /// assert!(verifier.without_ca_hints().root_hint_subjects().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn without_ca_hints(mut self) -> Self {
        self.hints.clear();
        self
    }

    /// The policy this verifier applies.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let verifier = mtls::verify::ClientIdentityVerifier::new(
    ///     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(),
    ///     mtls::ClientAuth::Required, Default::default(),
    /// )?;
    /// assert_eq!(verifier.policy().to_string(), "any_verified");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&self) -> &Authorizer {
        &self.policy
    }

    /// `peer`, a client this verifier accepted, as its bundle knows it (see
    /// [`PeerIdentity::bound_trust_domain`]).
    pub(crate) fn vouch(&self, peer: PeerIdentity) -> PeerIdentity {
        vouched(peer, &self.domains)
    }
}

impl fmt::Debug for ClientIdentityVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentityVerifier")
            .field("policy", &self.policy)
            .field("trust_domains", &self.domains.keys().collect::<Vec<_>>())
            .field("plain_bundle", &!self.plain.is_empty())
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl ClientCertVerifier for ClientIdentityVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let peer = match presented_identity(end_entity, intermediates) {
            Ok(peer) => peer,
            Err(e) => {
                mark_logged();
                tracing::warn!(
                    peer.addr = %peer_addr(),
                    reason = %HandshakeFailure::from_rustls(&e).as_str(),
                    "TLS handshake failed: the client certificate cannot be parsed"
                );
                return Err(e);
            }
        };
        if let Err(e) = pick(&peer, &self.plain, &self.domains).and_then(|group| {
            first_issuer(group, |v| {
                v.verify_client_cert(end_entity, intermediates, now)
            })
        }) {
            log_rejected(&peer, &e);
            return Err(e);
        }
        let peer = vouched(peer, &self.domains);
        if let Err(denied) = self.policy.check(Some(&peer)) {
            mark_logged();
            log_not_authorized(&peer_addr(), Some(&peer), &denied, resuming());
            // rustls answers this error with the access_denied alert.
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        stash_verified(peer);
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures_from_provider!();
}
