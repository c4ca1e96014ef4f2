//! [`Authorizer`]: who may connect, as a small value checked inside the handshake.
//!
//! Being authenticated by a CA we trust is not the same as being allowed: in a mesh every
//! workload holds a valid certificate from the same CA. An `Authorizer` says which of them may
//! call us (on a [`Server`](crate::Server)) or which one we expect to reach (on a
//! [`Client`](crate::Client)).
//!
//! The policy value, its constructors and its checks live here; the identity-pattern syntax
//! in `pattern`, DNS name matching in `dns`.

mod dns;
mod pattern;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::Request;

use crate::error::{Denied, PolicyError};
use crate::peer::PeerIdentity;
use crate::peer::request::peer_of;
use crate::spiffe::{SpiffeId, is_trust_domain};
use dns::DnsPattern;

/// A policy over a peer's verified identity.
///
/// Policies are built from named constructors and combined with [`Authorizer::any_of`],
/// [`Authorizer::all_of`] and [`Authorizer::not`]. Every constructor that takes a name parses
/// and validates it, so a typo fails at start-up instead of silently denying everyone.
/// `Display` prints the policy readably for logs. Cloning is cheap.
///
/// Policies fail closed: a peer without a certificate matches no rule except
/// [`Authorizer::anonymous`], and `not(...)` of anything never admits it.
///
/// # Examples
///
/// ```
/// use mtls::Authorizer;
///
/// let policy = Authorizer::any_of([
///     Authorizer::spiffe_id("spiffe://example.org/orders")?,
///     Authorizer::spiffe_path_prefix("spiffe://example.org/ns/billing")?,
/// ])?;
/// assert_eq!(
///     policy.to_string(),
///     "any_of(spiffe_id(spiffe://example.org/orders), spiffe_path_prefix(spiffe://example.org/ns/billing))"
/// );
/// assert!(Authorizer::spiffe_id("spiffe://Example.org/orders").is_err());
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct Authorizer(Arc<Rule>);

type Predicate = dyn Fn(&PeerIdentity) -> bool + Send + Sync;

enum Rule {
    AnyVerified,
    Anonymous,
    SpiffeId(SpiffeId),
    SpiffeIds(BTreeSet<SpiffeId>),
    TrustDomain(String),
    PathPrefix(SpiffeId),
    DnsName(DnsPattern),
    IpAddress(IpAddr),
    CommonName(String),
    Predicate(String, Box<Predicate>),
    AnyOf(Vec<Authorizer>),
    AllOf(Vec<Authorizer>),
    Not(Authorizer),
}

impl Authorizer {
    fn new(rule: Rule) -> Self {
        Authorizer(Arc::new(rule))
    }

    /// Any peer whose certificate chains to a trusted CA. Anonymous peers are not matched.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = mtls::Authorizer::any_verified();
    /// assert!(policy.allows(Some(&peer)));
    /// assert!(!policy.allows(None)); // a peer without a certificate
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn any_verified() -> Self {
        Self::new(Rule::AnyVerified)
    }

    /// A peer that presented no certificate (only reachable with
    /// [`ClientAuth::Optional`](crate::ClientAuth::Optional)). Combine it with `any_of` to let
    /// anonymous clients in beside identified ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Authorizer;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let open = Authorizer::any_of([Authorizer::anonymous(), Authorizer::any_verified()])?;
    /// assert!(open.allows(None) && open.allows(Some(&peer)));
    /// assert!(!Authorizer::anonymous().allows(Some(&peer)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous() -> Self {
        Self::new(Rule::Anonymous)
    }

    /// Exactly this SPIFFE ID.
    ///
    /// # Errors
    ///
    /// [`PolicyError::SpiffeId`] when the ID is invalid, [`PolicyError::MissingPath`] when it is a
    /// bare trust domain.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = mtls::Authorizer::spiffe_id("spiffe://example.org/orders")?;
    /// assert!(policy.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// assert!(mtls::Authorizer::spiffe_id("spiffe://example.org").is_err()); // no workload path
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_id(id: &str) -> Result<Self, PolicyError> {
        Ok(Self::new(Rule::SpiffeId(workload_id(id)?)))
    }

    /// Any one of these SPIFFE IDs.
    ///
    /// # Errors
    ///
    /// As [`Authorizer::spiffe_id`] for each ID, and [`PolicyError::Empty`] for no IDs.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = mtls::Authorizer::spiffe_ids([
    ///     "spiffe://example.org/orders",
    ///     "spiffe://example.org/billing",
    /// ])?;
    /// assert!(policy.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_ids<I, S>(ids: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = ids
            .into_iter()
            .map(|id| workload_id(id.as_ref()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.is_empty() {
            return Err(PolicyError::Empty("Authorizer::spiffe_ids"));
        }
        Ok(Self::new(Rule::SpiffeIds(set)))
    }

    /// Any workload of a SPIFFE trust domain, e.g. `example.org`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::TrustDomain`] when the name is not a valid trust domain.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let ours = mtls::Authorizer::trust_domain("example.org")?;
    /// assert!(ours.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// assert!(!mtls::Authorizer::trust_domain("partner.example")?.allows(Some(&peer)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_domain(trust_domain: &str) -> Result<Self, PolicyError> {
        if !is_trust_domain(trust_domain) {
            return Err(PolicyError::TrustDomain(trust_domain.to_owned()));
        }
        Ok(Self::new(Rule::TrustDomain(trust_domain.to_owned())))
    }

    /// SPIFFE IDs in the same trust domain whose path is `prefix`'s path or lies under it, on
    /// segment boundaries: `spiffe://example.org/ns/prod` matches `.../ns/prod` and
    /// `.../ns/prod/sa/x`, never `.../ns/production`.
    ///
    /// # Errors
    ///
    /// As [`Authorizer::spiffe_id`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/ns/prod/sa/orders")?.identity()?.chain())?;
    /// let prod = mtls::Authorizer::spiffe_path_prefix("spiffe://example.org/ns/prod")?;
    /// assert!(prod.allows(Some(&peer))); // peer: spiffe://example.org/ns/prod/sa/orders
    /// let pro = mtls::Authorizer::spiffe_path_prefix("spiffe://example.org/ns/pro")?;
    /// assert!(!pro.allows(Some(&peer))); // whole segments only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_path_prefix(prefix: &str) -> Result<Self, PolicyError> {
        Ok(Self::new(Rule::PathPrefix(workload_id(prefix)?)))
    }

    /// An IP address SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("sensor").ip("10.0.0.7".parse()?))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// let policy = mtls::Authorizer::ip_address("10.0.0.7".parse()?);
    /// assert!(policy.allows(Some(&peer)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ip_address(ip: IpAddr) -> Self {
        Self::new(Rule::IpAddress(ip))
    }

    /// The subject common name (CN), for legacy PKIs without SANs. Prefer SPIFFE IDs or DNS
    /// SANs: a CN is free text that any CA you trust can put in any certificate.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Empty`] for an empty name.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("legacy-client"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(mtls::Authorizer::common_name("legacy-client")?.allows(Some(&peer)));
    /// assert!(mtls::Authorizer::common_name("").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn common_name(cn: &str) -> Result<Self, PolicyError> {
        if cn.is_empty() {
            return Err(PolicyError::Empty("Authorizer::common_name"));
        }
        Ok(Self::new(Rule::CommonName(cn.to_owned())))
    }

    /// A closure over the verified identity; `description` is what `Display` shows.
    ///
    /// The closure runs inside the TLS handshake, so it must be quick and must not block.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = mtls::Authorizer::from_fn("issued by the test CA", |peer| peer.issuer() == "CN=test CA");
    /// assert_eq!(policy.to_string(), "fn(issued by the test CA)");
    /// assert!(policy.allows(Some(&peer)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fn(
        description: impl Into<String>,
        predicate: impl Fn(&PeerIdentity) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::new(Rule::Predicate(description.into(), Box::new(predicate)))
    }

    /// Matches when any of `policies` matches.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Empty`] for no policies.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Authorizer;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = Authorizer::any_of([
    ///     Authorizer::spiffe_id("spiffe://example.org/orders")?,
    ///     Authorizer::spiffe_id("spiffe://example.org/billing")?,
    /// ])?;
    /// assert!(policy.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn any_of(policies: impl IntoIterator<Item = Authorizer>) -> Result<Self, PolicyError> {
        let list: Vec<_> = policies.into_iter().collect();
        if list.is_empty() {
            return Err(PolicyError::Empty("Authorizer::any_of"));
        }
        Ok(Self::new(Rule::AnyOf(list)))
    }

    /// Matches when all of `policies` match.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Empty`] for no policies.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Authorizer;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = Authorizer::all_of([
    ///     Authorizer::trust_domain("example.org")?,
    ///     Authorizer::common_name("orders")?,
    /// ])?;
    /// assert!(policy.allows(Some(&peer))); // peer: spiffe://example.org/orders, CN=orders
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn all_of(policies: impl IntoIterator<Item = Authorizer>) -> Result<Self, PolicyError> {
        let list: Vec<_> = policies.into_iter().collect();
        if list.is_empty() {
            return Err(PolicyError::Empty("Authorizer::all_of"));
        }
        Ok(Self::new(Rule::AllOf(list)))
    }

    /// Matches a verified peer that `policy` does not match. Never matches an anonymous peer.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Authorizer;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let not_billing = Authorizer::not(Authorizer::spiffe_id("spiffe://example.org/billing")?);
    /// assert!(not_billing.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// assert!(!not_billing.allows(None)); // never an anonymous peer
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn not(policy: Authorizer) -> Self {
        Self::new(Rule::Not(policy))
    }

    /// Whether `peer` (`None` for a peer without a certificate) is allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let policy = mtls::Authorizer::trust_domain("example.org")?;
    /// assert!(policy.allows(Some(&peer))); // peer: spiffe://example.org/orders
    /// assert!(!policy.allows(None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allows(&self, peer: Option<&PeerIdentity>) -> bool {
        match peer {
            Some(peer) => self.matches(peer),
            None => self.admits_anonymous(),
        }
    }

    /// Checks `peer`, saying why on denial.
    ///
    /// # Errors
    ///
    /// [`Denied`], naming the policy and the identity presented.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let billing = mtls::Authorizer::spiffe_id("spiffe://example.org/billing")?;
    /// let denied = billing.check(Some(&peer)).unwrap_err();
    /// assert_eq!(denied.presented, "spiffe://example.org/orders");
    /// assert!(mtls::Authorizer::any_verified().check(Some(&peer)).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, peer: Option<&PeerIdentity>) -> Result<(), Denied> {
        if self.allows(peer) {
            Ok(())
        } else {
            Err(Denied {
                policy: self.to_string(),
                presented: peer.map_or_else(|| "anonymous".to_owned(), |p| p.to_string()),
            })
        }
    }

    /// Checks the identity a [`Server`](crate::Server) put into a request (or, for tonic's
    /// `serve_with_incoming(server.incoming())`, the one in its
    /// `VerifiedConnectInfo`), for a per-route policy narrower than the server's. A request
    /// without an identity is checked as anonymous.
    ///
    /// # Errors
    ///
    /// [`Denied`]; turn it into a `403` with [`Denied::into_response`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http::Request;
    /// use mtls::Authorizer;
    ///
    /// let admins = Authorizer::spiffe_id("spiffe://example.org/admin")?;
    /// let req = Request::new(()); // no identity: an anonymous caller
    /// let resp = admins.check_request(&req).unwrap_err().into_response();
    /// assert_eq!(resp.status(), 403);
    /// # Ok::<(), mtls::PolicyError>(())
    /// ```
    pub fn check_request<B>(&self, req: &Request<B>) -> Result<(), Denied> {
        self.check(peer_of(req.extensions()))
    }

    /// Whether a peer without a certificate is allowed. It does not depend on any peer, so the
    /// server uses it to decide whether a certificate is mandatory in the handshake.
    pub(crate) fn admits_anonymous(&self) -> bool {
        match &*self.0 {
            Rule::Anonymous => true,
            Rule::AnyOf(list) => list.iter().any(Authorizer::admits_anonymous),
            Rule::AllOf(list) => list.iter().all(Authorizer::admits_anonymous),
            _ => false,
        }
    }

    fn matches(&self, peer: &PeerIdentity) -> bool {
        match &*self.0 {
            Rule::AnyVerified => true,
            Rule::Anonymous => false,
            Rule::SpiffeId(id) => peer.spiffe_id() == Some(id),
            Rule::SpiffeIds(ids) => peer.spiffe_id().is_some_and(|id| ids.contains(id)),
            Rule::TrustDomain(td) => peer.spiffe_id().is_some_and(|id| id.trust_domain() == td),
            Rule::PathPrefix(prefix) => peer.spiffe_id().is_some_and(|id| {
                id.trust_domain() == prefix.trust_domain()
                    && id
                        .path()
                        .strip_prefix(prefix.path())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }),
            Rule::DnsName(pattern) => pattern.matches(peer),
            Rule::IpAddress(ip) => peer.ip_addresses().contains(ip),
            Rule::CommonName(cn) => peer.common_name() == Some(cn.as_str()),
            Rule::Predicate(_, f) => f(peer),
            Rule::AnyOf(list) => list.iter().any(|a| a.matches(peer)),
            Rule::AllOf(list) => list.iter().all(|a| a.matches(peer)),
            Rule::Not(inner) => !inner.matches(peer),
        }
    }
}

/// A SPIFFE ID naming a workload: valid and with a path.
fn workload_id(id: &str) -> Result<SpiffeId, PolicyError> {
    let parsed = SpiffeId::parse(id)?;
    if parsed.path().is_empty() {
        return Err(PolicyError::MissingPath(id.to_owned()));
    }
    Ok(parsed)
}

impl fmt::Display for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, items: &[Authorizer]| {
            write!(f, "{name}(")?;
            for (i, a) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(")")
        };
        match &*self.0 {
            Rule::AnyVerified => f.write_str("any_verified"),
            Rule::Anonymous => f.write_str("anonymous"),
            Rule::SpiffeId(id) => write!(f, "spiffe_id({id})"),
            Rule::SpiffeIds(ids) => {
                f.write_str("spiffe_ids(")?;
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                f.write_str(")")
            }
            Rule::TrustDomain(td) => write!(f, "trust_domain({td})"),
            Rule::PathPrefix(p) => write!(f, "spiffe_path_prefix({p})"),
            Rule::DnsName(DnsPattern::Exact(n)) => write!(f, "dns_name({n})"),
            Rule::DnsName(DnsPattern::Wildcard(n)) => write!(f, "dns_name(*.{n})"),
            Rule::IpAddress(ip) => write!(f, "ip_address({ip})"),
            Rule::CommonName(cn) => write!(f, "common_name({cn})"),
            Rule::Predicate(d, _) => write!(f, "fn({d})"),
            Rule::AnyOf(l) => list(f, "any_of", l),
            Rule::AllOf(l) => list(f, "all_of", l),
            Rule::Not(a) => write!(f, "not({a})"),
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authorizer({self})")
    }
}
