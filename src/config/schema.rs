//! The TOML schema: [`Config`] and its sections, as serde types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A whole configuration file. The types derive `Deserialize`, so figment or config-rs users
/// can load them their own way and call [`Config::validate`].
///
/// # Examples
///
/// ```
/// let cfg = mtls::Config::from_toml_str(r#"
///     [bundle.inventory]
///     certificate = "certs/inventory.pem"
///     private_key = "certs/inventory.key"
///     ca = "certs/ca.pem"
///
///     [server]
///     listen = "127.0.0.1:8443"
///     bundle = "inventory"
///     allow = ["spiffe://example.org/ns/prod/*"]
///
///     [client.stock]
///     bundle = "inventory"
///     expect_server = ["spiffe://example.org/ns/prod/sa/stock"]
/// "#)?;
/// assert_eq!(cfg.server.as_ref().unwrap().listen, "127.0.0.1:8443");
/// # Ok::<(), mtls::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Named bundles: who we are and whom we trust.
    #[serde(default)]
    pub bundle: BTreeMap<String, Bundle>,
    /// The server, if this service serves.
    pub server: Option<ServerSection>,
    /// Named client profiles.
    #[serde(default)]
    pub client: BTreeMap<String, ClientSection>,
    /// Roles: each a list of identity patterns.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Access rules, first match wins; a path not listed is denied.
    #[serde(default)]
    pub access: Vec<AccessSection>,
}

/// `[bundle.NAME]`: our identity and our trust.
///
/// # Examples
///
/// ```
/// let cfg = mtls::Config::from_toml_str(r#"
///     [bundle.inventory]
///     certificate = "certs/inventory.pem"
///     private_key = "certs/inventory.key"
///     ca = ["certs/ca.pem", "certs/next-ca.pem"]
///     reload = false
/// "#)?;
/// let bundle = &cfg.bundle["inventory"];
/// assert_eq!(bundle.ca.paths().len(), 2);
/// assert_eq!(bundle.reload, Some(false));
/// # Ok::<(), mtls::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Bundle {
    /// PEM certificate chain, leaf first.
    pub certificate: Option<PathBuf>,
    /// PEM private key.
    pub private_key: Option<PathBuf>,
    /// PKCS#12 keystore (instead of `certificate` and `private_key`).
    pub keystore: Option<PathBuf>,
    /// File holding the keystore password.
    pub keystore_password_file: Option<PathBuf>,
    /// Environment variable holding the keystore password.
    pub keystore_password_env: Option<String>,
    /// Alias of the key entry in the keystore.
    pub key_alias: Option<String>,
    /// PKCS#12 truststore (beside or instead of `ca`).
    pub truststore: Option<PathBuf>,
    /// File holding the truststore password.
    pub truststore_password_file: Option<PathBuf>,
    /// Environment variable holding the truststore password.
    pub truststore_password_env: Option<String>,
    /// PEM CA bundle(s): one path or a list.
    #[serde(default)]
    pub ca: OneOrMany,
    /// CRL files (PEM or DER), read with `ca` and `truststore` and speaking for their CAs
    /// alone.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// The SPIFFE trust domain that `ca` and `truststore` are bound to (federation): their
    /// CAs then vouch for that domain's SPIFFE IDs and nothing else, on every reload. A bundle
    /// with no identity (no `certificate`, `private_key` or `keystore`) serves as trust only,
    /// named in a profile's `trust` list.
    pub trust_domain: Option<String>,
    /// Watch the files and reload them on change (default true).
    pub reload: Option<bool>,
}

/// One path or a list of paths.
///
/// # Examples
///
/// ```
/// use mtls::config::OneOrMany;
/// use std::path::Path;
///
/// let one = OneOrMany::One("ca.pem".into()); // `ca = "ca.pem"`
/// let many = OneOrMany::Many(vec!["ca.pem".into(), "next-ca.pem".into()]); // `ca = [..]`
/// assert_eq!(one.paths(), [Path::new("ca.pem")]);
/// assert_eq!(many.paths(), [Path::new("ca.pem"), Path::new("next-ca.pem")]);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// No path.
    #[default]
    None,
    /// One path.
    One(PathBuf),
    /// Several paths.
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    /// The paths.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::config::OneOrMany;
    /// use std::path::Path;
    ///
    /// assert!(OneOrMany::None.paths().is_empty());
    /// assert_eq!(OneOrMany::One("ca.pem".into()).paths(), [Path::new("ca.pem")]);
    /// ```
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(p) => vec![p.as_path()],
            OneOrMany::Many(list) => list.iter().map(PathBuf::as_path).collect(),
        }
    }
}

/// `[server]`.
///
/// # Examples
///
/// ```
/// let cfg = mtls::Config::from_toml_str(r#"
///     [bundle.inventory]
///     certificate = "inventory.pem"
///     private_key = "inventory.key"
///     ca = "ca.pem"
///
///     [server]
///     listen = "0.0.0.0:8443"
///     bundle = "inventory"
///     allow = ["spiffe://example.org/ns/prod/*"]
///     handshake_timeout = "5s"
///     max_connections = 1000
/// "#)?;
/// let server = cfg.server.as_ref().unwrap();
/// assert_eq!((server.handshake_timeout.as_deref(), server.max_connections), (Some("5s"), Some(1000)));
/// # Ok::<(), mtls::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    pub listen: String,
    /// The bundle to serve with.
    pub bundle: String,
    /// Identity patterns allowed to connect (see
    /// [`Authorizer::pattern`](crate::Authorizer::pattern)).
    pub allow: Vec<String>,
    /// Handshake timeout, e.g. `"10s"`, `"500ms"`.
    pub handshake_timeout: Option<String>,
    /// Maximum open connections.
    pub max_connections: Option<usize>,
    /// Further bundles whose CAs (`ca`, `truststore`, with their `crl` and `trust_domain`)
    /// are trusted beside `bundle`'s, e.g. a federated partner's.
    #[serde(default)]
    pub trust: Vec<String>,
}

/// `[client.NAME]`.
///
/// # Examples
///
/// ```
/// let cfg = mtls::Config::from_toml_str(r#"
///     [bundle.orders]
///     certificate = "orders.pem"
///     private_key = "orders.key"
///     ca = "ca.pem"
///
///     [client.stock]
///     bundle = "orders"
///     expect_server = ["spiffe://example.org/ns/prod/sa/stock"]
/// "#)?;
/// assert_eq!(cfg.client["stock"].bundle, "orders");
/// assert_eq!(cfg.client["stock"].expect_server, ["spiffe://example.org/ns/prod/sa/stock"]);
/// # Ok::<(), mtls::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientSection {
    /// The bundle to call with.
    pub bundle: String,
    /// Identity patterns the server must match, instead of its host name.
    #[serde(default)]
    pub expect_server: Vec<String>,
    /// Further bundles whose CAs are trusted beside `bundle`'s, as for the server.
    #[serde(default)]
    pub trust: Vec<String>,
}

/// `[[access]]`: a rule.
///
/// # Examples
///
/// ```
/// let cfg = mtls::Config::from_toml_str(r#"
///     [roles]
///     reader = ["spiffe://example.org/ns/prod/*"]
///
///     [[access]]
///     path = "/stock"
///     methods = ["GET"]
///     roles = ["reader"]
/// "#)?;
/// assert_eq!((cfg.access[0].path.as_str(), cfg.access[0].methods.as_slice()), ("/stock", &["GET".to_owned()][..]));
/// # Ok::<(), mtls::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessSection {
    /// Path prefix, on segment boundaries.
    pub path: String,
    /// Methods covered; all when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Roles allowed.
    pub roles: Vec<String>,
}
