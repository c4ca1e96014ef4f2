//! [`LeafSpec`]: what to put in a leaf certificate, and [`Usage`], which extended key usages
//! it carries.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::ExtendedKeyUsagePurpose;

/// Which extended key usages a leaf carries.
///
/// # Examples
///
/// ```
/// use rustls::server::danger::ClientCertVerifier;
/// use mtls::dev::{LeafSpec, Usage};
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let verifier = mtls::verify::ClientIdentityVerifier::new(
/// #     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(), mtls::ClientAuth::Required, Default::default())?;
/// let mesh = ca.issue(&LeafSpec::new("orders").usage(Usage::Both))?;
/// let leaf = mtls::CertificateDer::from(mesh.der().to_vec());
/// let now = rustls::pki_types::UnixTime::now();
/// assert!(verifier.verify_client_cert(&leaf, &[], now).is_ok()); // usable as a client
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Usage {
    /// TLS server only (`serverAuth`): refused when presented as a client.
    Server,
    /// TLS client only (`clientAuth`): refused when presented as a server.
    Client,
    /// Both, as service meshes issue them.
    Both,
}

impl Usage {
    pub(super) fn ekus(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// What to put in a leaf certificate: a builder for [`DevCa::issue`](super::DevCa::issue).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mtls::dev::{DevCa, LeafSpec, Usage};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = DevCa::new("test CA")?;
/// let expired = ca.issue(&LeafSpec::client("old").expired())?;
/// let workload = ca.issue(
///     &LeafSpec::new("billing")
///         .spiffe_id("spiffe://example.org/ns/prod/sa/billing")
///         .dns("billing.prod.svc")
///         .ip("10.0.0.7".parse()?)
///         .usage(Usage::Both)
///         .valid_for(Duration::from_secs(3600)),
/// )?;
/// let peer = mtls::PeerIdentity::from_chain(workload.identity()?.chain())?;
/// assert_eq!(peer.spiffe_id().unwrap().path(), "/ns/prod/sa/billing");
/// # drop(expired);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub(super) common_name: String,
    pub(super) uris: Vec<String>,
    pub(super) dns: Vec<String>,
    pub(super) ips: Vec<IpAddr>,
    pub(super) emails: Vec<String>,
    pub(super) organization: String,
    pub(super) usage: Usage,
    pub(super) serial: Option<Vec<u8>>,
    pub(super) not_before: SystemTime,
    pub(super) not_after: SystemTime,
}

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

impl LeafSpec {
    /// A leaf with common name `common_name`, both usages, no SANs, valid from an hour ago for
    /// a week (long enough that the 24-hour renewal warning stays quiet).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::new("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.subject(), "CN=orders, O=mtls development");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(common_name: &str) -> LeafSpec {
        let now = SystemTime::now();
        LeafSpec {
            common_name: common_name.to_owned(),
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            emails: Vec::new(),
            organization: "mtls development".to_owned(),
            usage: Usage::Both,
            serial: None,
            not_before: now - HOUR,
            not_after: now + 7 * DAY,
        }
    }

    /// A server leaf: `serverAuth` only, with DNS names `name` and `localhost` and the IP
    /// addresses `127.0.0.1` and `::1`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::server("inventory"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["inventory", "localhost"]);
    /// assert_eq!(peer.ip_addresses().len(), 2); // 127.0.0.1 and ::1
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server(name: &str) -> LeafSpec {
        let mut spec = LeafSpec::new(name).usage(Usage::Server).dns(name);
        if name != "localhost" {
            spec = spec.dns("localhost");
        }
        spec.ip(IpAddr::from([127, 0, 0, 1]))
            .ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]))
    }

    /// A client leaf: `clientAuth` only, no SANs until you add them.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// assert!(peer.dns_names().is_empty() && peer.uris().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(name: &str) -> LeafSpec {
        LeafSpec::new(name).usage(Usage::Client)
    }

    /// Adds a `spiffe://` URI SAN (added as given, so tests can issue malformed IDs too).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.spiffe_id().map(|id| id.as_str()), Some("spiffe://example.org/orders"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spiffe_id(self, id: &str) -> LeafSpec {
        self.uri(id)
    }

    /// Adds a URI SAN.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").uri("https://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.uris(), ["https://example.org/orders"]);
    /// assert!(peer.spiffe_id().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uri(mut self, uri: &str) -> LeafSpec {
        self.uris.push(uri.to_owned());
        self
    }

    /// Adds a DNS SAN.
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
    pub fn dns(mut self, name: &str) -> LeafSpec {
        self.dns.push(name.to_owned());
        self
    }

    /// Adds an IP address SAN.
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
    pub fn ip(mut self, ip: IpAddr) -> LeafSpec {
        self.ips.push(ip);
        self
    }

    /// Adds an email (rfc822Name) SAN.
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
    pub fn email(mut self, email: &str) -> LeafSpec {
        self.emails.push(email.to_owned());
        self
    }

    /// Sets the subject's organization (O); `mtls development` by default.
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
    pub fn organization(mut self, organization: &str) -> LeafSpec {
        self.organization = organization.to_owned();
        self
    }

    /// Sets the extended key usages.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustls::server::danger::ClientCertVerifier;
    /// use mtls::dev::{LeafSpec, Usage};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let verifier = mtls::verify::ClientIdentityVerifier::new(
    /// #     mtls::crypto_provider(), &[ca.trust()?], mtls::Authorizer::any_verified(), mtls::ClientAuth::Required, Default::default())?;
    /// let web = ca.issue(&LeafSpec::new("web").usage(Usage::Server))?;
    /// let leaf = mtls::CertificateDer::from(web.der().to_vec());
    /// let now = rustls::pki_types::UnixTime::now();
    /// assert!(verifier.verify_client_cert(&leaf, &[], now).is_err()); // serverAuth only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usage(mut self, usage: Usage) -> LeafSpec {
        self.usage = usage;
        self
    }

    /// Sets the serial number (big-endian bytes); random otherwise.
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
    pub fn serial(mut self, serial: &[u8]) -> LeafSpec {
        self.serial = Some(serial.to_vec());
        self
    }

    /// Valid from now for `lifetime`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("orders").valid_for(Duration::from_secs(3600)))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.not_after().duration_since(peer.not_before())?, Duration::from_secs(3600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn valid_for(mut self, lifetime: Duration) -> LeafSpec {
        self.not_before = SystemTime::now();
        self.not_after = self.not_before + lifetime;
        self
    }

    /// Valid from `not_before` to `not_after`, exactly.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let from = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let spec = mtls::dev::LeafSpec::client("orders").validity(from, from + Duration::from_secs(86_400));
    /// let peer = mtls::PeerIdentity::from_chain(ca.issue(&spec)?.identity()?.chain())?;
    /// assert_eq!(peer.not_before(), from);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> LeafSpec {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Expired yesterday (valid from three days ago to one day ago).
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("old").expired())?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(peer.not_after() < std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expired(self) -> LeafSpec {
        let now = SystemTime::now();
        self.validity(now - 3 * DAY, now - DAY)
    }

    /// Valid from tomorrow for two days.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.issue(&mtls::dev::LeafSpec::client("early").not_yet_valid())?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert!(peer.not_before() > std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn not_yet_valid(self) -> LeafSpec {
        let now = SystemTime::now();
        self.validity(now + DAY, now + 3 * DAY)
    }
}
