//! [`PeerIdentity`]: what a verified peer's certificate says, shared by the connections that
//! present the same chain, and what each connection negotiated.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::{CommonState, HandshakeKind, ProtocolVersion};
use rustls_pki_types::CertificateDer;

use super::certificate::Certificate;
use super::fingerprint::Fingerprint;
use super::recent;
use super::version::TlsVersion;
use crate::error::LoadError;
use crate::spiffe::SpiffeId;
use crate::util::provider::sha256;

/// The verified identity of the peer on a connection.
///
/// The server puts one into the extensions of every request from an authenticated client; the
/// client puts the server's into the extensions of every response. It is parsed at most once
/// per connection (connections that present the same chain share one parse) and cloning it is
/// cheap (an `Arc`).
///
/// Its [`Display`](fmt::Display) is the SPIFFE ID when there is one, else the subject DN.
///
/// # Examples
///
/// ```
/// use http::Request;
/// use mtls::PeerIdentity;
///
/// fn caller(req: &Request<()>) -> String {
///     match req.extensions().get::<PeerIdentity>() {
///         Some(peer) => format!("hello {peer}"),
///         None => "anonymous".to_owned(),
///     }
/// }
/// # assert_eq!(caller(&Request::new(())), "anonymous");
/// ```
#[derive(Clone)]
pub struct PeerIdentity(Arc<Inner>);

/// One connection's peer: what its certificate says, shared by every connection that
/// presented the same chain, and what this connection negotiated.
///
/// Aligned to 128 bytes: the server clones the identity into every request, so its
/// reference count is written per request by the connection's thread, and must not share a
/// cache line with what another thread writes.
#[repr(align(128))]
struct Inner {
    cert: Arc<Certificate>,
    tls_version: Option<TlsVersion>,
    alpn: Option<Vec<u8>>,
    resumed: bool,
    /// The trust domain of the bundle that vouched for the peer, when that bundle is bound to
    /// one: the peer is then known by its SPIFFE ID alone.
    bound: Option<Box<str>>,
}

/// The alignment of a connection's identity, for a test of its layout.
#[cfg(test)]
pub(crate) const INNER_ALIGN: usize = std::mem::align_of::<Inner>();

impl PeerIdentity {
    /// Parses the identity of a certificate chain (leaf first), with no connection facts.
    ///
    /// This does not verify anything: the crate builds a `PeerIdentity` only from chains rustls
    /// has verified, and this constructor exists for tools and tests that describe a certificate.
    ///
    /// # Errors
    ///
    /// [`LoadError::NoCertificate`] for an empty chain and [`LoadError::InvalidCertificate`] when
    /// the leaf cannot be parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let identity = ca.client("spiffe://example.org/orders")?.identity()?;
    /// let peer = mtls::PeerIdentity::from_chain(identity.chain())?;
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// assert!(mtls::PeerIdentity::from_chain(&[]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_chain(chain: &[CertificateDer<'static>]) -> Result<Self, LoadError> {
        let leaf = chain.first().ok_or(LoadError::NoCertificate {
            origin: Certificate::ORIGIN,
        })?;
        let cert = Certificate::parse(chain.to_vec(), Fingerprint(sha256(leaf)))?;
        Ok(Self::with_facts(Arc::new(cert), None, None, false))
    }

    /// The identity of a chain a certificate verifier is checking (the leaf, then the
    /// intermediates as presented), before it is verified: from memory when the same chain
    /// was seen on an established connection recently, else parsed.
    pub(crate) fn presented(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Self, LoadError> {
        let cert = recent::certificate(end_entity, intermediates)?;
        Ok(Self::with_facts(cert, None, None, false))
    }

    /// Builds the identity of the peer of an established connection, if it presented a chain.
    ///
    /// `verified` is the identity the certificate verifier built from the same chain during
    /// this handshake, if any: it is completed with the connection facts instead of parsing
    /// the certificate a second time. The chain is remembered for the next connection that
    /// presents it (see [`recent`]).
    pub(crate) fn from_connection(conn: &CommonState, verified: Option<Self>) -> Option<Self> {
        let chain = conn.peer_certificates()?;
        let (leaf, intermediates) = chain.split_first()?;
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
            Some(ProtocolVersion::TLSv1_2) => Some(TlsVersion::Tls12),
            _ => None,
        };
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let cert = match verified {
            Some(peer) if peer.0.cert.chain == chain => Arc::clone(&peer.0.cert),
            // rustls has verified this chain, so a parse failure here means x509-parser is
            // stricter than webpki; the connection then carries no identity and fails closed.
            _ => recent::certificate(leaf, intermediates)
                .map_err(
                    |e| tracing::warn!(error = %e, "verified peer certificate could not be parsed"),
                )
                .ok()?,
        };
        recent::remember(&cert);
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        Some(Self::with_facts(cert, version, alpn, resumed))
    }

    fn with_facts(
        cert: Arc<Certificate>,
        tls_version: Option<TlsVersion>,
        alpn: Option<Vec<u8>>,
        resumed: bool,
    ) -> Self {
        PeerIdentity(Arc::new(Inner {
            cert,
            tls_version,
            alpn,
            resumed,
            bound: None,
        }))
    }

    /// The same peer, vouched for by the bundle bound to `trust_domain`: from now on known by
    /// its SPIFFE ID alone ([`PeerIdentity::bound_trust_domain`]).
    pub(crate) fn vouched_by_domain(&self, trust_domain: &str) -> Self {
        PeerIdentity(Arc::new(Inner {
            cert: Arc::clone(&self.0.cert),
            tls_version: self.0.tls_version,
            alpn: self.0.alpn.clone(),
            resumed: self.0.resumed,
            bound: Some(trust_domain.into()),
        }))
    }

    /// The trust domain of the bundle that vouched for this peer, when that bundle is bound to
    /// one ([`TrustBundle::for_trust_domain`](crate::TrustBundle::for_trust_domain)); `None`
    /// when an unbound bundle vouched for it, or for an identity not verified by this crate.
    ///
    /// A bound bundle vouches for its trust domain's SPIFFE IDs and nothing else, so such a
    /// peer is known by its SPIFFE ID alone: its [`dns_names`](Self::dns_names),
    /// [`ip_addresses`](Self::ip_addresses), [`emails`](Self::emails) and
    /// [`common_name`](Self::common_name) read as empty, [`uris`](Self::uris) holds the SPIFFE
    /// ID only, and no DNS, IP, CN or e-mail rule, role or predicate can match it. What the
    /// certificate says is still in [`subject`](Self::subject) and [`leaf`](Self::leaf).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.bound_trust_domain(), None); // parsed, not verified by a bound bundle
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bound_trust_domain(&self) -> Option<&str> {
        self.0.bound.as_deref()
    }

    /// Whether two identities share one parsed certificate (for the tests of [`recent`]).
    #[cfg(test)]
    fn shares_certificate(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0.cert, &other.0.cert)
    }

    /// The subject distinguished name, e.g. `CN=orders, O=Example`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").organization("Example"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.subject(), "CN=orders, O=Example");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subject(&self) -> &str {
        &self.0.cert.subject
    }

    /// The issuer distinguished name.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.issuer(), "CN=test CA");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn issuer(&self) -> &str {
        &self.0.cert.issuer
    }

    /// The first common name (CN) of the subject, if any.
    ///
    /// `None` for a peer vouched for by a bound bundle ([`bound_trust_domain`](Self::bound_trust_domain)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn common_name(&self) -> Option<&str> {
        match self.0.bound {
            Some(_) => None,
            None => self.0.cert.common_name.as_deref(),
        }
    }

    /// DNS names from the subjectAltName extension.
    ///
    /// Empty for a peer vouched for by a bound bundle ([`bound_trust_domain`](Self::bound_trust_domain)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("db").dns("db.internal"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["db.internal"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dns_names(&self) -> &[String] {
        match self.0.bound {
            Some(_) => &[],
            None => &self.0.cert.dns_names,
        }
    }

    /// URIs from the subjectAltName extension (including any SPIFFE ID).
    ///
    /// Only the SPIFFE ID for a peer vouched for by a bound bundle
    /// ([`bound_trust_domain`](Self::bound_trust_domain)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.uris(), ["spiffe://example.org/orders"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uris(&self) -> &[String] {
        let cert = &self.0.cert;
        match (&self.0.bound, cert.spiffe_uri) {
            (None, _) => &cert.uris,
            (Some(_), Some(i)) => std::slice::from_ref(&cert.uris[i]),
            (Some(_), None) => &[],
        }
    }

    /// IP addresses from the subjectAltName extension.
    ///
    /// Empty for a peer vouched for by a bound bundle ([`bound_trust_domain`](Self::bound_trust_domain)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("sensor").ip("10.0.0.7".parse()?))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.ip_addresses(), ["10.0.0.7".parse::<std::net::IpAddr>()?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ip_addresses(&self) -> &[IpAddr] {
        match self.0.bound {
            Some(_) => &[],
            None => &self.0.cert.ip_addresses,
        }
    }

    /// Email addresses (rfc822Name) from the subjectAltName extension.
    ///
    /// Empty for a peer vouched for by a bound bundle ([`bound_trust_domain`](Self::bound_trust_domain)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("ops").email("ops@example.org"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.emails(), ["ops@example.org"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emails(&self) -> &[String] {
        match self.0.bound {
            Some(_) => &[],
            None => &self.0.cert.emails,
        }
    }

    /// The SPIFFE ID: present when the certificate has exactly one URI SAN with the `spiffe`
    /// scheme and that URI is a valid SPIFFE ID with a workload path.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").spiffe_id("spiffe://example.org/ns/prod/sa/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// let id = peer.spiffe_id().expect("one spiffe:// URI SAN");
    /// assert_eq!(id.trust_domain(), "example.org");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.0.cert.spiffe_id.as_ref()
    }

    /// The serial number in upper-case hex, as `openssl x509 -serial` prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").serial(&[0x12, 0x34]))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.serial(), "1234");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serial(&self) -> &str {
        &self.0.cert.serial
    }

    /// Start of the leaf's validity.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let from = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let spec = mtls::dev::LeafSpec::client("orders").validity(from, from + Duration::from_secs(3600));
    /// let peer = mtls::PeerIdentity::from_chain(ca.issue(&spec)?.identity()?.chain())?;
    /// assert_eq!(peer.not_before(), from);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn not_before(&self) -> SystemTime {
        self.0.cert.not_before
    }

    /// End of the leaf's validity.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(peer.not_after() > std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn not_after(&self) -> SystemTime {
        self.0.cert.not_after
    }

    /// SHA-256 fingerprint of the leaf certificate's DER.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// let hex = peer.fingerprint().to_string();
    /// assert_eq!(hex.len(), 64); // SHA-256, lower-case hex
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.0.cert.fingerprint
    }

    /// The certificate thumbprint of RFC 8705 (`x5t#S256`): the SHA-256 of the leaf's DER,
    /// base64url-encoded without padding. Compare it with an access token's `cnf.x5t#S256`
    /// claim to bind the token to this caller's certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// let thumbprint = peer.x5t_s256();
    /// assert_eq!(thumbprint.len(), 43); // 32 bytes, base64url without padding
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn x5t_s256(&self) -> String {
        crate::util::base64::base64(self.fingerprint().as_bytes(), true)
    }

    /// The chain the peer presented, leaf first, as DER.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let issuing = ca.intermediate("issuing")?;
    /// let identity = issuing.client("spiffe://example.org/orders")?.identity()?;
    /// let peer = mtls::PeerIdentity::from_chain(identity.chain())?;
    /// assert_eq!(peer.chain().len(), 2); // leaf first
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0.cert.chain
    }

    /// The leaf certificate as DER.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.leaf().as_ref(), cert.der());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.0.cert.chain[0]
    }

    /// The negotiated TLS version (absent for identities built with [`PeerIdentity::from_chain`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// let server = connection.peer_identity();
    /// assert_eq!(server.tls_version(), Some(mtls::peer::TlsVersion::Tls13));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_version(&self) -> Option<TlsVersion> {
        self.0.tls_version
    }

    /// The negotiated ALPN protocol, e.g. `b"h2"`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// assert_eq!(connection.peer_identity().alpn_protocol(), Some(&b"h2"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.0.alpn.as_deref()
    }

    /// Whether the TLS session was resumed rather than fully negotiated.
    ///
    /// On a resumed session the identity is the one verified in the original handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hello"))))
    /// # })));
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// let connection = client.connector().connect(url).await?;
    /// assert!(!connection.peer_identity().resumed()); // a first, full handshake
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resumed(&self) -> bool {
        self.0.resumed
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.cert.spiffe_id {
            Some(id) => fmt::Display::fmt(id, f),
            None => f.write_str(&self.0.cert.subject),
        }
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("subject", &self.0.cert.subject)
            .field("spiffe_id", &self.0.cert.spiffe_id)
            // Through the accessor: a peer a bound bundle vouched for has no DNS names.
            .field("dns_names", &self.dns_names())
            .field("serial", &self.0.cert.serial)
            .field("fingerprint", self.fingerprint())
            .field("tls_version", &self.0.tls_version)
            .field("resumed", &self.0.resumed)
            .field("bound_trust_domain", &self.0.bound)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::self_signed;

    #[test]
    fn a_presented_chain_is_parsed_whole_and_connections_share_it() {
        let (leaf, issuing) = (self_signed("inventory"), self_signed("issuing"));
        let first = PeerIdentity::presented(&leaf, std::slice::from_ref(&issuing)).unwrap();
        assert_eq!(first.chain(), [leaf.clone(), issuing.clone()]);
        assert_eq!(first.common_name(), Some("inventory"));
        assert_eq!(first.fingerprint().as_bytes(), &sha256(&leaf));
        let second = PeerIdentity::presented(&leaf, std::slice::from_ref(&issuing)).unwrap();
        assert!(
            !first.shares_certificate(&second),
            "not remembered before a connection"
        );
        recent::remember(&first.0.cert);
        let third = PeerIdentity::presented(&leaf, std::slice::from_ref(&issuing)).unwrap();
        assert!(first.shares_certificate(&third));
        assert!(PeerIdentity::presented(&CertificateDer::from(vec![0x30, 0x00]), &[]).is_err());
    }
}
