//! [`DevCa`]: a root or intermediate CA in memory that issues leaves and CRLs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use time::OffsetDateTime;

use super::cert::DevCert;
use super::error::{DevCaError, issue_error};
use super::files::write_pair;
use super::leaf::LeafSpec;
use crate::material::{Crls, Identity, TrustBundle};

/// A certificate authority that lives in memory, for tests and development.
///
/// # Examples
///
/// ```
/// use mtls::dev::{DevCa, LeafSpec};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = DevCa::new("test CA")?;
/// let server = ca.issue(&LeafSpec::server("inventory"))?;
/// let client = ca.issue(&LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
/// let identity = client.identity()?;
/// assert_eq!(identity.chain().len(), 1);
/// assert!(server.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let trust = ca.trust()?;
/// assert_eq!(trust.certificates().len(), 1);
/// # Ok(()) }
/// ```
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// The intermediates from this CA up to (not including) the root, this CA first.
    chain_pem: String,
    /// The root's certificate (this CA's own for a root).
    root_pem: String,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("issuer", &self.issuer)
            .field("intermediate", &!self.chain_pem.is_empty())
            .finish_non_exhaustive()
    }
}

fn ca_params(name: &str) -> Result<CertificateParams, DevCaError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| issue_error(name, e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

impl DevCa {
    /// A new root CA named `name` (its common name), valid for ten years from an hour ago.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if key generation or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn new(name: &str) -> Result<DevCa, DevCaError> {
        let key = KeyPair::generate().map_err(|e| issue_error(name, e))?;
        let params = ca_params(name)?;
        let cert_pem = params
            .self_signed(&key)
            .map_err(|e| issue_error(name, e))?
            .pem();
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            root_pem: cert_pem.clone(),
            cert_pem,
            chain_pem: String::new(),
        })
    }

    /// An intermediate CA named `name`, signed by this CA. Leaves it issues carry the
    /// intermediates in their chain; [`DevCa::trust`] stays the root.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if key generation or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let root = mtls::dev::DevCa::new("root")?;
    /// let issuing = root.intermediate("issuing")?;
    /// let identity = issuing.client("spiffe://example.org/orders")?.identity()?;
    /// assert_eq!(identity.chain().len(), 2); // the leaf, then the intermediate
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn intermediate(&self, name: &str) -> Result<DevCa, DevCaError> {
        let key = KeyPair::generate().map_err(|e| issue_error(name, e))?;
        let params = ca_params(name)?;
        let cert_pem = params
            .signed_by(&key, self.issuer())
            .map_err(|e| issue_error(name, e))?
            .pem();
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            chain_pem: format!("{cert_pem}{}", self.chain_pem),
            cert_pem,
            root_pem: self.root_pem.clone(),
        })
    }

    /// Loads a root CA back from the certificate and key that [`DevCa::write_pem`] wrote, to
    /// go on issuing from it.
    ///
    /// # Errors
    ///
    /// [`DevCaError::LoadCa`] if the PEM is not a certificate and matching key.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::dev::DevCa;
    ///
    /// let ca = DevCa::new("test CA")?;
    /// let (cert_pem, key_pem) = (ca.cert_pem().to_owned(), ca.key_pem()); // e.g. read back from disk
    /// let again = DevCa::from_pem(&cert_pem, &key_pem)?;
    /// let peer = mtls::PeerIdentity::from_chain(again.server("localhost")?.identity()?.chain())?;
    /// assert_eq!(peer.issuer(), "CN=test CA");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevCa, DevCaError> {
        let load = |e: rcgen::Error| DevCaError::LoadCa {
            detail: e.to_string(),
        };
        // The key must be the certificate's: rustls compares it with the certificate's key.
        Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| {
            DevCaError::LoadCa {
                detail: e.to_string(),
            }
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(load)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(load)?;
        Ok(DevCa {
            issuer,
            cert_pem: cert_pem.to_owned(),
            chain_pem: String::new(),
            root_pem: cert_pem.to_owned(),
        })
    }

    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// This CA's own certificate, PEM.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root CA's certificate, PEM: what peers put in their trust bundle.
    ///
    /// # Examples
    ///
    /// ```
    /// let root = mtls::dev::DevCa::new("root")?;
    /// let issuing = root.intermediate("issuing")?;
    /// assert_eq!(issuing.root_pem(), root.cert_pem());
    /// assert_ne!(issuing.cert_pem(), root.cert_pem());
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// This CA's private key, PEM (unencrypted: development only).
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A trust bundle holding the root CA.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Load`] never in practice (the root is a CA certificate).
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let trust = ca.trust()?;
    /// assert_eq!(trust.certificates().len(), 1);
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn trust(&self) -> Result<TrustBundle, DevCaError> {
        Ok(TrustBundle::from_pem(self.root_pem.as_bytes())?)
    }

    /// Issues a leaf certificate as `spec` describes, with a fresh ECDSA P-256 key.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if a name is not valid for its SAN type (for example a DNS name
    /// with spaces) or signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::dev::{DevCa, LeafSpec};
    ///
    /// let ca = DevCa::new("test CA")?;
    /// let cert = ca.issue(&LeafSpec::client("orders").spiffe_id("spiffe://example.org/orders"))?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn issue(&self, spec: &LeafSpec) -> Result<DevCert, DevCaError> {
        let subject = spec.common_name.as_str();
        let err = |e: rcgen::Error| issue_error(subject, e);
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, subject);
        for id in &spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI(id.as_str().try_into().map_err(err)?));
        }
        for dns in &spec.dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into().map_err(err)?));
        }
        for ip in &spec.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for email in &spec.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(email.as_str().try_into().map_err(err)?));
        }
        params
            .distinguished_name
            .push(DnType::OrganizationName, spec.organization.as_str());
        params.extended_key_usages = spec.usage.ekus();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Some(serial) = &spec.serial {
            params.serial_number = Some(SerialNumber::from_slice(serial));
        }
        params.not_before = to_offset(spec.not_before, subject)?;
        params.not_after = to_offset(spec.not_after, subject)?;
        let cert = params.signed_by(&key, self.issuer()).map_err(err)?;
        Ok(DevCert {
            cert_pem: format!("{}{}", cert.pem(), self.chain_pem),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
            der: cert.der().to_vec(),
        })
    }

    /// A server certificate for `name` (also `localhost`, `127.0.0.1` and `::1`), valid for
    /// a week. Shorthand for `issue(&LeafSpec::server(name))`.
    ///
    /// # Errors
    ///
    /// As [`DevCa::issue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.server("inventory")?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.dns_names(), ["inventory", "localhost"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server(&self, name: &str) -> Result<DevCert, DevCaError> {
        self.issue(&LeafSpec::server(name))
    }

    /// A client certificate with the SPIFFE ID `spiffe_id` (its path is the common name),
    /// valid for a week. Shorthand for `issue(&LeafSpec::client(..).spiffe_id(spiffe_id))`.
    ///
    /// # Errors
    ///
    /// As [`DevCa::issue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let cert = ca.client("spiffe://example.org/orders")?;
    /// let peer = mtls::PeerIdentity::from_chain(cert.identity()?.chain())?;
    /// assert_eq!(peer.common_name(), Some("orders"));
    /// assert_eq!(peer.to_string(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(&self, spiffe_id: &str) -> Result<DevCert, DevCaError> {
        let name = spiffe_id.rsplit('/').next().unwrap_or(spiffe_id);
        self.issue(&LeafSpec::client(name).spiffe_id(spiffe_id))
    }

    /// A CRL signed by this CA that revokes `revoked`, valid from an hour ago for a week.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let stolen = ca.client("spiffe://example.org/stolen")?;
    /// let crls = ca.crl(&[&stolen])?;
    /// let trust = ca.trust()?.with_crls(crls);
    /// assert_eq!(trust.crls().len(), 1);
    /// # Ok::<(), mtls::dev::DevCaError>(())
    /// ```
    pub fn crl(&self, revoked: &[&DevCert]) -> Result<Crls, DevCaError> {
        let mut serials = Vec::new();
        for cert in revoked {
            serials.push(cert.serial().map_err(|e| issue_error("CRL", e))?);
        }
        let serials: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
        Ok(Crls::from_bytes(self.crl_pem(&serials)?.as_bytes())?)
    }

    /// A PEM CRL signed by this CA that revokes the given serial numbers (big-endian bytes),
    /// valid from an hour ago for a week.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let serial: &[u8] = &[0x12, 0x34];
    /// let pem = ca.crl_pem(&[serial])?;
    /// assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crl_pem(&self, revoked_serials: &[&[u8]]) -> Result<String, DevCaError> {
        let next_update = std::time::SystemTime::now() + std::time::Duration::from_secs(7 * 86_400);
        self.crl_pem_until(revoked_serials, next_update)
    }

    /// As [`DevCa::crl_pem`], with the given `nextUpdate` (in the past, for a stale CRL). Its
    /// `thisUpdate` is an hour before the earlier of now and `next_update`.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Issue`] if signing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// let stale = ca.crl_pem_until(&[], SystemTime::now() - Duration::from_secs(3600))?;
    /// let crls = mtls::Crls::from_bytes(stale.as_bytes())?; // loads; refused in use by default
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crl_pem_until(
        &self,
        revoked_serials: &[&[u8]],
        next_update: std::time::SystemTime,
    ) -> Result<String, DevCaError> {
        let err = |e: rcgen::Error| issue_error("CRL", e);
        let now = OffsetDateTime::now_utc();
        let next_update = OffsetDateTime::from(next_update);
        let params = CertificateRevocationListParams {
            this_update: now.min(next_update) - time::Duration::hours(1),
            next_update,
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(self.issuer())
            .map_err(err)?
            .pem()
            .map_err(err)
    }

    /// Writes this CA's certificate and key as `<name>.pem` and `<name>.key` in `dir` (which
    /// is created if missing); the key file is readable by its owner only (mode 0600 on
    /// Unix). Returns both paths.
    ///
    /// # Errors
    ///
    /// [`DevCaError::Write`] naming the file that could not be written.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-devca-write-pem-{}", std::process::id()));
    /// let (cert, key) = ca.write_pem(&dir, "ca")?; // dir/ca.pem and dir/ca.key
    /// let trust = mtls::TrustBundle::from_pem_file(&cert)?;
    /// assert_eq!(key, dir.join("ca.key"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_pem(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), DevCaError> {
        write_pair(
            dir,
            name,
            &format!("{}{}", self.cert_pem, self.chain_pem_after_self()),
            &zeroize::Zeroizing::new(self.key_pem()),
        )
    }

    fn chain_pem_after_self(&self) -> &str {
        self.chain_pem
            .strip_prefix(self.cert_pem.as_str())
            .unwrap_or("")
    }
}

fn to_offset(t: SystemTime, subject: &str) -> Result<OffsetDateTime, DevCaError> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| issue_error(subject, format!("date out of range: {e}")))
}
