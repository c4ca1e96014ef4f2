//! [`ServerIdentityVerifier`], which verifies server certificates and runs on a client.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::anchors::{Anchors, first_issuer, pick, presented_identity, vouched};
use super::handshake_signatures_from_provider;
use super::revocation::{RevocationPolicy, with_revocation};
use crate::error::{Error, ServerNotAllowed};
use crate::material::TrustBundle;
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;

/// Verifies server certificates on a client: by DNS name / IP, or by identity policy.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// let verifier = mtls::verify::ServerIdentityVerifier::new(
///     mtls::crypto_provider(), &[ca.trust()?], None, Default::default(),
/// )?;
/// let config = rustls::ClientConfig::builder_with_provider(mtls::crypto_provider())
///     .with_safe_default_protocol_versions()?
///     .dangerous()
///     .with_custom_certificate_verifier(Arc::new(verifier))
///     .with_no_client_auth();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ServerIdentityVerifier {
    provider: Arc<CryptoProvider>,
    /// `provider` with chain signatures remembered, for the chain checks.
    chains: Arc<CryptoProvider>,
    /// The anchors for the identity-policy path, which calls webpki directly.
    plain: Vec<ChainCheck>,
    domains: HashMap<String, Vec<ChainCheck>>,
    revocation: RevocationPolicy,
    /// Name checking over the plain stores, used when no policy is set.
    by_name: Vec<Arc<WebPkiServerVerifier>>,
    policy: Option<Authorizer>,
}

impl ServerIdentityVerifier {
    /// Builds a verifier over `trust`.
    ///
    /// With `policy` `None`, it is rustls' `WebPkiServerVerifier` over the plain bundles: the
    /// chain and the DNS name or IP we connect to. With a policy, the chain is validated alone
    /// (trust anchors of the server's trust domain, validity, EKU serverAuth), then the leaf is
    /// matched against the policy; the name we connect to is not checked, which suits SPIFFE
    /// workloads whose certificates carry no DNS names.
    ///
    /// # Errors
    ///
    /// [`Error::MissingTrust`] for no bundles (or, without a policy, no plain bundle), and
    /// [`Error::Verifier`] when rustls refuses them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::client::danger::ServerCertVerifier;
    /// use rustls::pki_types::{ServerName, UnixTime};
    /// use mtls::{Authorizer, CertificateDer, dev::LeafSpec, verify::ServerIdentityVerifier};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let expected = Authorizer::spiffe_id("spiffe://example.org/inventory")?;
    /// let verifier = ServerIdentityVerifier::new(
    ///     mtls::crypto_provider(), &[ca.trust()?], Some(expected), Default::default(),
    /// )?;
    /// let cert = ca.issue(&LeafSpec::server("inventory").spiffe_id("spiffe://example.org/inventory"))?;
    /// let leaf = CertificateDer::from(cert.der().to_vec());
    /// let any_name = ServerName::try_from("10.1.2.3")?; // not checked: the identity is
    /// assert!(verifier.verify_server_cert(&leaf, &[], &any_name, &[], UnixTime::now()).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        provider: Arc<CryptoProvider>,
        trust: &[TrustBundle],
        policy: Option<Authorizer>,
        revocation: RevocationPolicy,
    ) -> Result<Self, Error> {
        let anchors = Anchors::new(trust)?;
        // Chain signatures that verified are remembered (see `signatures`); the handshake's own
        // signatures are checked with the plain provider.
        let chains = crate::verify::signatures::chain_provider(&provider);
        let by_name = match (&policy, anchors.plain.is_empty()) {
            (Some(_), _) => Vec::new(),
            (None, false) => anchors
                .plain
                .iter()
                .map(|store| {
                    let builder = WebPkiServerVerifier::builder_with_provider(
                        Arc::clone(&store.roots),
                        Arc::clone(&chains),
                    )
                    .with_crls(store.crls.iter().cloned());
                    with_revocation!(builder, revocation).build()
                })
                .collect::<Result<_, _>>()?,
            (None, true) => return Err(Error::NeedsExpectServer),
        };
        let (plain, domains) = anchors.map(|store| {
            let crls = store
                .crls
                .iter()
                .map(|der| webpki::OwnedCertRevocationList::from_der(der).map(Into::into))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(rustls::Error::General(format!("invalid CRL: {e:?}"))))?;
            Ok(ChainCheck {
                roots: Arc::clone(&store.roots),
                crls,
            })
        })?;
        Ok(ServerIdentityVerifier {
            provider,
            chains,
            plain,
            domains,
            revocation,
            by_name,
            policy,
        })
    }
}

/// One store's anchors and its parsed CRLs, for webpki called directly.
struct ChainCheck {
    roots: Arc<RootCertStore>,
    crls: Vec<webpki::CertRevocationList<'static>>,
}

impl fmt::Debug for ServerIdentityVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentityVerifier")
            .field("policy", &self.policy)
            .field("trust_domains", &self.domains.keys().collect::<Vec<_>>())
            .field("plain_bundle", &!self.plain.is_empty())
            .finish()
    }
}

impl ServerIdentityVerifier {
    /// Validates the chain (anchors, validity, EKU serverAuth, revocation) without any name.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        check: &ChainCheck,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let roots = &check.roots;
        let algorithms = self.chains.signature_verification_algorithms.all;
        if check.crls.is_empty() {
            let cert = ParsedCertificate::try_from(end_entity)?;
            return verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                algorithms,
            );
        }
        // rustls has no public chain-only check with CRLs, so webpki is called directly.
        let crls: Vec<&webpki::CertRevocationList<'_>> = check.crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crls)
            .map_err(|_| rustls::Error::General("no CRLs".to_owned()))?
            .with_depth(self.revocation.depth())
            .with_status_policy(self.revocation.unknown())
            .with_expiration_policy(self.revocation.expiration())
            .build();
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(webpki_error)?;
        cert.verify_for_usage(
            algorithms,
            &roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
        .map_err(webpki_error)
    }
}

/// The rustls error for a webpki error, as rustls' own verifiers report it.
fn webpki_error(error: webpki::Error) -> rustls::Error {
    use webpki::Error as W;
    #[allow(deprecated)]
    let cert = match error {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::BadEncoding,
        W::CertNotValidYet { .. } => CertificateError::NotValidYet,
        W::CertExpired { .. } | W::InvalidCertValidity => CertificateError::Expired,
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::CertRevoked => CertificateError::Revoked,
        W::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        W::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        W::InvalidSignatureForPublicKey
        | W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertificateError::BadSignature,
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(cert)
}

impl ServerCertVerifier for ServerIdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(policy) = &self.policy else {
            // The unbound bundles vouch for names, never for a SPIFFE ID once bundles are
            // bound to trust domains: such a certificate must come from its domain's bundle,
            // which vouches for the SPIFFE ID alone, so no host name can match it.
            if !self.domains.is_empty()
                && presented_identity(end_entity, intermediates)?
                    .spiffe_id()
                    .is_some()
            {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ));
            }
            return first_issuer(&self.by_name, |by_name| {
                by_name.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )
            });
        };
        let peer = presented_identity(end_entity, intermediates)?;
        let group = pick(&peer, &self.plain, &self.domains)?;
        // Chain only: the name check is replaced by the policy below, never skipped after
        // the fact, so a real chain failure can't hide behind an ignored name mismatch.
        first_issuer(group, |check| {
            self.verify_chain(end_entity, intermediates, check, now)
        })?;
        let peer = vouched(peer, &self.domains);
        policy.check(Some(&peer)).map_err(|denied| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                ServerNotAllowed(denied),
            ))))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_from_provider!();
}

impl ServerIdentityVerifier {
    /// `peer`, a server this verifier accepted, as its bundle knows it (see
    /// [`PeerIdentity::bound_trust_domain`]).
    pub(crate) fn vouch(&self, peer: PeerIdentity) -> PeerIdentity {
        vouched(peer, &self.domains)
    }
}
