//! rustls certificate verifiers that add identity policy and per-trust-domain bundles to
//! rustls' own chain validation, and never replace it with anything weaker.
//!
//! - [`ClientIdentityVerifier`] runs on a server: it validates a client's chain with rustls'
//!   `WebPkiClientVerifier` against the bundle of the client's trust domain, then applies the
//!   server's [`Authorizer`].
//! - [`ServerIdentityVerifier`] runs on a client: without a policy it is rustls'
//!   `WebPkiServerVerifier` (chain plus DNS name or IP); with one it validates the chain only
//!   (anchors, validity, EKU serverAuth) and then matches the leaf against the policy.
//!
//! Our [`Server`](crate::Server) and [`Client`](crate::Client) use them; they are public so that
//! any rustls-based library can run the same checks.

mod signatures;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

/// Re-exported where the client's verifier produces it.
pub use crate::error::ServerNotAllowed;
use crate::error::{Denied, Error, HandshakeFailure};
use crate::handshake::{mark_logged, peer_addr, quiet, resuming, stash_verified};
use crate::material::TrustBundle;
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::util::text::{Escaped, Names};

/// The handshake-signature checks both verifiers share: the provider's algorithms, as rustls'
/// own verifiers use them. Expands inside an impl whose `self.provider` is the crypto provider.
macro_rules! handshake_signatures_from_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

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

impl RevocationPolicy {
    fn depth(self) -> webpki::RevocationCheckDepth {
        if self.leaf_only {
            webpki::RevocationCheckDepth::EndEntity
        } else {
            webpki::RevocationCheckDepth::Chain
        }
    }

    fn expiration(self) -> webpki::ExpirationPolicy {
        if self.allow_expired_crls {
            webpki::ExpirationPolicy::Ignore
        } else {
            webpki::ExpirationPolicy::Enforce
        }
    }

    fn unknown(self) -> webpki::UnknownStatusPolicy {
        if self.allow_unknown_status {
            webpki::UnknownStatusPolicy::Allow
        } else {
            webpki::UnknownStatusPolicy::Deny
        }
    }
}

/// Anchors that share their CRLs: bundles with the same CRLs (none, or the builder's) are
/// merged into one store; a bundle with CRLs of its own gets a store of its own, so its CRLs
/// never decide the status of another bundle's certificates (webpki takes the first CRL
/// whose issuer name matches, and two bundles' CAs may share a name).
struct Store {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

/// One `T` per store of [`Anchors`]: the plain ones, and each trust domain's.
type Grouped<T> = (Vec<T>, HashMap<String, Vec<T>>);

/// Trust bundles sorted by use: the plain stores, and the stores of each SPIFFE trust domain.
struct Anchors {
    plain: Vec<Store>,
    domains: HashMap<String, Vec<Store>>,
}

impl Anchors {
    fn new(bundles: &[TrustBundle]) -> Result<Self, Error> {
        let mut plain: Vec<(RootCertStore, &[CertificateRevocationListDer<'static>])> = Vec::new();
        let mut domains: HashMap<&str, Vec<(RootCertStore, &[_])>> = HashMap::new();
        for bundle in bundles {
            let group = match bundle.trust_domain() {
                Some(td) => domains.entry(td).or_default(),
                None => &mut plain,
            };
            let index = match group.iter().position(|(_, crls)| *crls == bundle.crls()) {
                Some(i) => i,
                None => {
                    group.push((RootCertStore::empty(), bundle.crls()));
                    group.len() - 1
                }
            };
            group[index]
                .0
                .roots
                .extend(bundle.root_store().roots.iter().cloned());
        }
        if plain.is_empty() && domains.is_empty() {
            return Err(Error::MissingTrust);
        }
        let stores = |group: Vec<(RootCertStore, &[CertificateRevocationListDer<'static>])>| {
            group
                .into_iter()
                .map(|(roots, crls)| Store {
                    roots: Arc::new(roots),
                    crls: crls.to_vec(),
                })
                .collect::<Vec<_>>()
        };
        Ok(Anchors {
            plain: stores(plain),
            domains: domains
                .into_iter()
                .map(|(td, group)| (td.to_owned(), stores(group)))
                .collect(),
        })
    }

    fn all(&self) -> impl Iterator<Item = &Store> {
        self.plain.iter().chain(self.domains.values().flatten())
    }

    /// One `T` per store, grouped as the stores are.
    fn map<T>(&self, f: impl Fn(&Store) -> Result<T, Error>) -> Result<Grouped<T>, Error> {
        let plain = self.plain.iter().map(&f).collect::<Result<_, _>>()?;
        let mut domains = HashMap::new();
        for (td, group) in &self.domains {
            domains.insert(td.clone(), group.iter().map(&f).collect::<Result<_, _>>()?);
        }
        Ok((plain, domains))
    }
}

/// The only anchors (or verifiers) `peer` may be checked against. A SPIFFE identity is checked
/// against its own trust domain's bundles alone when bundles are bound to domains, so one
/// domain's CA cannot mint identities for another; anything else uses the plain bundles.
fn pick<'a, T>(
    peer: &PeerIdentity,
    plain: &'a [T],
    domains: &'a HashMap<String, Vec<T>>,
) -> Result<&'a [T], rustls::Error> {
    let chosen = match peer.spiffe_id() {
        Some(id) if !domains.is_empty() => domains.get(id.trust_domain()).map_or(&[][..], |g| g),
        _ => plain,
    };
    if chosen.is_empty() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
    }
    Ok(chosen)
}

/// The chain checked against each store, each with its own CRLs: verified if one store
/// verifies it, and refused if any store's CRLs revoke it or cannot vouch for it (stale, or
/// none covering the chain): CRLs are consulted only once the chain built to that store's CA,
/// and a CRL speaks only for the CA that signed it, so that verdict is never another CA's. Otherwise the most telling refusal:
/// one from a store the chain built to, before "unknown issuer" or a bad signature from a
/// store whose CA merely shares a name. One store is the common case.
fn first_issuer<T, R>(
    stores: &[T],
    check: impl Fn(&T) -> Result<R, rustls::Error>,
) -> Result<R, rustls::Error> {
    let not_ours = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        )
    };
    if let [only] = stores {
        return check(only);
    }
    let mut verified = None;
    let mut refusal: Option<rustls::Error> = None;
    for store in stores {
        match check(store) {
            Ok(answer) => verified = verified.or(Some(answer)),
            // Only a store the chain built to gets to consult its CRLs: their verdict stands.
            Err(
                e @ rustls::Error::InvalidCertificate(
                    CertificateError::Revoked
                    | CertificateError::UnknownRevocationStatus
                    | CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. },
                ),
            ) => return Err(e),
            Err(e) => {
                if refusal.as_ref().is_none_or(not_ours) && !not_ours(&e) || refusal.is_none() {
                    refusal = Some(e);
                }
            }
        }
    }
    verified.ok_or_else(|| {
        refusal.unwrap_or(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    })
}

/// `peer` as the bundle that vouched for it knows it: a bound bundle vouches for its trust
/// domain's SPIFFE ID and nothing else ([`PeerIdentity::bound_trust_domain`]).
fn vouched<T>(peer: PeerIdentity, domains: &HashMap<String, T>) -> PeerIdentity {
    match peer.spiffe_id() {
        Some(id) if domains.contains_key(id.trust_domain()) => {
            peer.vouched_by_domain(id.trust_domain())
        }
        _ => peer,
    }
}

/// The presented chain's identity, for policy and bundle selection (parsed, or remembered from
/// an earlier connection). rustls has not validated it yet, so a parse failure is a bad
/// certificate.
fn presented_identity(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<PeerIdentity, rustls::Error> {
    PeerIdentity::presented(end_entity, intermediates)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// Logs a rejected client certificate with what it claimed. Runs inside the connection's
/// span, which carries the peer address.
///
/// The chain did not verify, so every name in it is the peer's own unchecked text: the event
/// says so (`unverified = true`) and shows the names escaped and bounded ([`crate::util::text`]).
fn log_rejected(peer: &PeerIdentity, error: &rustls::Error) {
    if quiet() {
        return;
    }
    mark_logged();
    let reason = HandshakeFailure::from_rustls(error);
    tracing::warn!(
        peer.addr = %peer_addr(),
        reason = %reason.as_str(),
        unverified = true,
        peer.subject = %Escaped(peer.subject()),
        peer.sans = %sans_of(peer),
        peer.issuer = %Escaped(peer.issuer()),
        peer.not_before = %crate::util::time::humantime(peer.not_before()),
        peer.not_after = %crate::util::time::humantime(peer.not_after()),
        detail = %Escaped(error),
        resumed = resuming(),
        "TLS handshake failed: {reason}"
    );
}

/// One SAN as the failure events show it: a URI as it is, a `DNS:` name or an `IP:` address.
#[derive(Clone, Copy)]
enum San<'a> {
    Uri(&'a str),
    Dns(&'a str),
    Ip(&'a std::net::IpAddr),
}

impl fmt::Display for San<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Uri(uri) => f.write_str(uri),
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// The SANs of `peer` in one field, escaped and bounded: URIs, then DNS names, then IPs.
fn sans_of(peer: &PeerIdentity) -> Names<impl Iterator<Item = San<'_>> + Clone> {
    Names(
        peer.uris()
            .iter()
            .map(|u| San::Uri(u))
            .chain(peer.dns_names().iter().map(|d| San::Dns(d)))
            .chain(peer.ip_addresses().iter().map(San::Ip)),
    )
}

/// Logs a peer the policy denied, with the certificate it presented (if any) and the policy.
/// Its chain verified, so a CA we trust vouched for the names; they are escaped and bounded
/// all the same, since a CA's names are still not ours to print raw.
pub(crate) fn log_not_authorized(
    addr: &dyn fmt::Display,
    peer: Option<&PeerIdentity>,
    denied: &Denied,
    resumed: bool,
) {
    if quiet() {
        return;
    }
    let reason = HandshakeFailure::NotAuthorized;
    match peer {
        Some(peer) => tracing::warn!(
            peer.addr = %addr,
            reason = %reason.as_str(),
            peer.identity = %Escaped(&denied.presented),
            peer.subject = %Escaped(peer.subject()),
            peer.sans = %sans_of(peer),
            peer.issuer = %Escaped(peer.issuer()),
            peer.not_before = %crate::util::time::humantime(peer.not_before()),
            peer.not_after = %crate::util::time::humantime(peer.not_after()),
            policy = %denied.policy,
            resumed,
            "TLS handshake failed: peer not authorized by policy"
        ),
        None => tracing::warn!(
            peer.addr = %addr,
            reason = %reason.as_str(),
            peer.identity = %denied.presented,
            policy = %denied.policy,
            resumed,
            "TLS handshake failed: peer not authorized by policy"
        ),
    }
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
///     false, RevocationPolicy::default(),
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
    /// A certificate is mandatory unless `optional` is set *and* the policy admits anonymous
    /// peers ([`Authorizer::anonymous`]); a policy that can never admit an anonymous peer turns
    /// the missing certificate into a handshake failure.
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
    ///     false, Default::default(),
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
        optional: bool,
        revocation: RevocationPolicy,
    ) -> Result<Self, Error> {
        let anchors = Anchors::new(trust)?;
        // The chain's signatures (the CA's on the client's certificate, and on CRLs) are
        // checked through algorithms that remember the ones that verified (see `sigcache`):
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
        let mandatory = !(optional && policy.admits_anonymous());
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
    ///     false, Default::default(),
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
    ///     false, Default::default(),
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
        // Chain signatures that verified are remembered (see `sigcache`); the handshake's own
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
