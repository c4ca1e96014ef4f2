//! The verified peer: [`PeerIdentity`], parsed once per connection from its leaf certificate, and
//! [`SpiffeId`](crate::SpiffeId).

pub(crate) mod request;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{CommonState, HandshakeKind, ProtocolVersion};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{LoadError, Origin};
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

/// What a chain's leaf says, parsed once for all the connections that present the same bytes
/// (see [`recent`]).
struct Certificate {
    subject: String,
    issuer: String,
    common_name: Option<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    emails: Vec<String>,
    spiffe_id: Option<SpiffeId>,
    /// The URI SAN that is the SPIFFE ID, if any.
    spiffe_uri: Option<usize>,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
    /// Of the leaf; also the key under which [`recent`] keeps the chain.
    fingerprint: Fingerprint,
    chain: Vec<CertificateDer<'static>>,
}

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
    /// assert_eq!(server.tls_version(), Some(mtls::TlsVersion::Tls13));
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

impl Certificate {
    const ORIGIN: Origin = Origin::Memory("peer certificate chain");

    /// Parses the leaf of `chain` (not empty), whose SHA-256 is `fingerprint`.
    fn parse(
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

/// Chains parsed recently, so that a peer that comes back (a new connection from the same
/// workload, a resumed session, a pool's next connection) is not parsed again, and its
/// connections share one copy of what its certificate says.
///
/// Parsing is a function of the bytes alone, so a remembered parse never stands in for a
/// verification: every handshake still verifies its chain. Entries are keyed by the SHA-256
/// of the leaf and a hit is taken only when the whole chain is byte for byte the one
/// remembered. Only chains of established connections are remembered (after rustls verified
/// them), so a peer cannot fill the memory with certificates that never verify. It is bounded
/// by two generations of [`recent::GENERATION`] chains, like the signature memory.
mod recent {
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};

    use rustls_pki_types::CertificateDer;

    use super::{Certificate, Fingerprint};
    use crate::error::LoadError;
    use crate::util::cache::Generations;
    use crate::util::provider::sha256;

    /// Chains per generation: when the current one is full it becomes the previous one, and
    /// the previous one is forgotten. A chain used from the previous generation moves back.
    pub(super) const GENERATION: usize = 512;

    /// The parsed chains, by their leaf's SHA-256.
    pub(super) struct Memory(Generations<Arc<Certificate>>);

    impl Default for Memory {
        fn default() -> Self {
            Memory(Generations::new(GENERATION))
        }
    }

    impl Memory {
        /// The remembered parse of exactly this chain (whose leaf's SHA-256 is `fingerprint`).
        pub(super) fn get(
            &mut self,
            fingerprint: &[u8; 32],
            leaf: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
        ) -> Option<Arc<Certificate>> {
            self.0.get(fingerprint, |cert| {
                cert.chain.len() == intermediates.len() + 1
                    && cert.chain[0] == *leaf
                    && cert.chain[1..] == *intermediates
            })
        }

        /// Remembers `cert`, unless it already is.
        pub(super) fn remember(&mut self, cert: &Arc<Certificate>) {
            match self.0.current(&cert.fingerprint.0) {
                Some(known) if Arc::ptr_eq(known, cert) => {}
                _ => self.0.insert(cert.fingerprint.0, Arc::clone(cert)),
            }
        }
    }

    static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();

    fn memory() -> std::sync::MutexGuard<'static, Memory> {
        MEMORY
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Parses `leaf` (followed by `intermediates`) without remembering it.
    pub(super) fn parse(
        fingerprint: [u8; 32],
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<Certificate>, LoadError> {
        let chain = std::iter::once(leaf)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(Arc::new(Certificate::parse(
            chain,
            Fingerprint(fingerprint),
        )?))
    }

    /// The remembered parse of exactly this chain, else a fresh one (not remembered).
    pub(super) fn certificate(
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<Certificate>, LoadError> {
        let fingerprint = sha256(leaf);
        if let Some(cert) = memory().get(&fingerprint, leaf, intermediates) {
            return Ok(cert);
        }
        parse(fingerprint, leaf, intermediates)
    }

    /// Remembers the chain of an established connection, unless it already is.
    pub(super) fn remember(cert: &Arc<Certificate>) {
        memory().remember(cert);
    }
}

/// A negotiated TLS version. Only TLS 1.2 and 1.3 are ever negotiated.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::TlsVersion::Tls13.to_string(), "TLSv1.3");
/// assert_eq!(mtls::TlsVersion::Tls12.to_string(), "TLSv1.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// A SHA-256 certificate fingerprint. Displays as lower-case hex.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
/// let fingerprint: &mtls::Fingerprint = peer.fingerprint();
/// let again = mtls::PeerIdentity::from_chain(peer.chain())?;
/// assert_eq!(fingerprint, again.fingerprint());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The raw digest.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
    /// let fingerprint = peer.fingerprint();
    /// let hex: String = fingerprint.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    /// assert_eq!(hex, fingerprint.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
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

    fn self_signed(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_remembered_chain_is_shared_only_for_the_same_bytes() {
        let (leaf, other, issuing) = (
            self_signed("orders"),
            self_signed("billing"),
            self_signed("issuing"),
        );
        let key = sha256(&leaf);
        let mut memory = recent::Memory::default();
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "nothing remembered yet"
        );
        let parsed = recent::parse(key, &leaf, &[]).unwrap();
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "parsing alone remembers nothing"
        );
        memory.remember(&parsed);
        let again = memory.get(&key, &leaf, &[]).unwrap();
        assert!(Arc::ptr_eq(&parsed, &again));
        assert_eq!(again.common_name.as_deref(), Some("orders"));
        // The same leaf with an intermediate is another chain.
        assert!(
            memory
                .get(&key, &leaf, std::slice::from_ref(&issuing))
                .is_none()
        );
        // Other bytes under the same key (a forged or colliding key) are never a hit.
        assert!(memory.get(&key, &other, &[]).is_none());
        // Remembering the same parse twice keeps one entry.
        memory.remember(&parsed);
        assert!(Arc::ptr_eq(&memory.get(&key, &leaf, &[]).unwrap(), &parsed));
    }

    #[test]
    fn the_memory_is_bounded_and_a_returning_chain_moves_back() {
        let leaf = self_signed("orders");
        let key = sha256(&leaf);
        let mut memory = recent::Memory::default();
        let kept = recent::parse(key, &leaf, &[]).unwrap();
        memory.remember(&kept);
        // Fill the rest of the first generation and all of a second one (same bytes under
        // other keys: the memory only counts entries).
        let fill = |memory: &mut recent::Memory, from: usize| {
            for i in from..from + recent::GENERATION {
                let mut other = [0u8; 32];
                other[..8].copy_from_slice(&(i as u64).to_be_bytes());
                other[31] = 1;
                memory.remember(&recent::parse(other, &leaf, &[]).unwrap());
            }
        };
        fill(&mut memory, 0);
        // Now in the previous generation: still found, and moved back to the current one.
        assert!(Arc::ptr_eq(&memory.get(&key, &leaf, &[]).unwrap(), &kept));
        fill(&mut memory, recent::GENERATION);
        assert!(
            memory.get(&key, &leaf, &[]).is_some(),
            "moved back, so it survived"
        );
        fill(&mut memory, 2 * recent::GENERATION);
        fill(&mut memory, 3 * recent::GENERATION);
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "forgotten after two generations"
        );
    }

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
