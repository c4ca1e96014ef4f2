//! [`Config`]: one TOML file with named bundles, a server, client profiles, roles and access
//! rules (feature `config`), the way Spring Boot's SSL bundles name key material once for a
//! whole service. See `docs/CONFIG.md` for every key.
//!
//! Everything is validated when the file loads: unknown keys, a bundle or role that is used
//! but not defined, malformed identity patterns and durations. Files named in bundles are read
//! when a server or client is built from the configuration.

pub(crate) mod env;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::{Client, ClientBuilder};
use crate::error::Error;
use crate::error::PolicyError;
use crate::policy::authorizer::Authorizer;
use crate::policy::roles::{Access, AccessError, AccessRule, Roles};
use crate::rotate::builder::{Builder, Side};
use crate::server::{Server, ServerBuilder};

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
/// use mtls::OneOrMany;
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
    /// use mtls::OneOrMany;
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
    /// Identity patterns allowed to connect (see [`Authorizer::pattern`]).
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

/// Why a configuration could not be loaded or used. Each names the file (when there is
/// one), the key, and the fix.
///
/// # Examples
///
/// ```
/// use mtls::{Config, ConfigError};
///
/// let err = Config::from_toml_str("[server]\nlisten = \"0.0.0.0:8443\"\nbundel = \"x\"\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Syntax { line: Some(_), .. }), "{err}"); // unknown key
/// let err = Config::from_toml_str("[client.stock]\nbundle = \"missing\"\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "client.stock.bundle"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("{}{}: {message}", origin, line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax {
        /// The file, or `configuration` for a string.
        origin: String,
        /// The line, when the parser knows it.
        line: Option<usize>,
        /// What the parser said (it names the key).
        message: String,
    },
    /// A key's value is invalid.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        /// The file, or `configuration` for a string.
        origin: String,
        /// The key, as a dotted path (`server.allow`, `bundle.inventory.ca`).
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An environment override was refused: it would empty a security setting without saying
    /// so, or its value is not of its setting's type (see `docs/CONFIG.md`).
    #[error("environment variable `{variable}` {message}")]
    Override {
        /// The variable.
        variable: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Building a server or client from the configuration failed.
    #[error(transparent)]
    Build(#[from] Error),
}

impl Config {
    /// Reads and validates a TOML file, then applies environment overrides (see
    /// `docs/CONFIG.md`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`], [`ConfigError::Syntax`] (with the line),
    /// [`ConfigError::Invalid`] (bundles whose names share their environment variables, too)
    /// and [`ConfigError::Override`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-from-file-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("mtls.toml"), r#"
    ///     [bundle.inventory]
    ///     certificate = "inventory.pem"
    ///     private_key = "inventory.key"
    ///     ca = "ca.pem"
    /// "#)?;
    /// let cfg = mtls::Config::from_file(dir.join("mtls.toml"))?;
    /// // Relative paths are relative to the file; the PEM files are read only when building.
    /// assert_eq!(cfg.bundle["inventory"].certificate, Some(dir.join("inventory.pem")));
    /// assert!(matches!(mtls::Config::from_file(dir.join("none.toml")), Err(mtls::ConfigError::Read { .. })));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = parse(&text, &path.display().to_string())?;
        // Relative paths in the file are relative to the file.
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        let origin = path.display().to_string();
        cfg.apply_env(&origin, &|k| std::env::var(k).ok())?;
        cfg.validate_as(&origin)?;
        Ok(cfg)
    }

    /// Parses and validates TOML text (no environment overrides).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Syntax`] and [`ConfigError::Invalid`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Config, ConfigError};
    ///
    /// let cfg = Config::from_toml_str(r#"
    ///     [roles]
    ///     admin = ["spiffe://example.org/ns/ops/*"]
    /// "#)?;
    /// assert_eq!(cfg.roles["admin"], ["spiffe://example.org/ns/ops/*"]);
    /// let err = Config::from_toml_str("[roles]\nadmin = [\"example.org/ops\"]\n").unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "roles.admin"), "{err}");
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let cfg = parse(text, "configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A configuration from the environment alone, for a container without a file: a bundle
    /// named `default` from `MTLS_CERT` and `MTLS_KEY` (PEM) or `MTLS_KEYSTORE` (PKCS#12, with
    /// `MTLS_KEYSTORE_PASSWORD_FILE` or `MTLS_KEYSTORE_PASSWORD`, and `MTLS_KEY_ALIAS`), and
    /// `MTLS_CA` or `MTLS_TRUSTSTORE` (with `MTLS_TRUSTSTORE_PASSWORD_FILE` or
    /// `MTLS_TRUSTSTORE_PASSWORD`); used by a server (when `MTLS_SERVER_LISTEN` and
    /// `MTLS_SERVER_ALLOW` are set) and by a client profile named `default`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the missing or invalid variable.
    ///
    /// # Examples
    ///
    /// Not run: it reads the process environment (to apply overrides from another source,
    /// see [`Config::with_overrides`]).
    ///
    /// ```no_run
    /// // MTLS_CERT=/run/certs/tls.crt MTLS_KEY=/run/certs/tls.key MTLS_CA=/run/certs/ca.crt
    /// let cfg = mtls::Config::from_env()?;
    /// assert_eq!(cfg.bundle["default"].ca.paths().len(), 1);
    /// let client = mtls::Client::from_config(&cfg, "default")?;
    /// # drop(client);
    /// # Ok::<(), mtls::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_env_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], with the variables looked up by `env` (a test, or another
    /// source of settings).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the missing or invalid variable.
    ///
    /// # Examples
    ///
    /// ```
    /// let cfg = mtls::Config::from_env_lookup(|name| match name {
    ///     "MTLS_CERT" => Some("/etc/tls/tls.crt".to_owned()),
    ///     "MTLS_KEY" => Some("/etc/tls/tls.key".to_owned()),
    ///     "MTLS_CA" => Some("/etc/tls/ca.crt".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert!(cfg.client.contains_key("default"));
    /// let err = mtls::Config::from_env_lookup(|_| None).unwrap_err();
    /// assert!(err.to_string().contains("MTLS_CERT"));
    /// # Ok::<(), mtls::ConfigError>(())
    /// ```
    pub fn from_env_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = &env;
        let missing = |name: &str| ConfigError::Invalid {
            origin: "environment".to_owned(),
            key: name.to_owned(),
            message: "is not set; set MTLS_CERT and MTLS_KEY (PEM files) or MTLS_KEYSTORE \
                      (PKCS#12, with MTLS_KEYSTORE_PASSWORD_FILE or MTLS_KEYSTORE_PASSWORD), \
                      and MTLS_CA or MTLS_TRUSTSTORE"
                .to_owned(),
        };
        let mut bundle = Bundle::default();
        // A password given in a variable is read from that variable by name, never copied.
        let password_env = |name: &str| env(name).map(|_| name.to_owned());
        match env("MTLS_KEYSTORE") {
            Some(keystore) => {
                bundle.keystore = Some(keystore.into());
                bundle.keystore_password_file = env("MTLS_KEYSTORE_PASSWORD_FILE").map(Into::into);
                bundle.keystore_password_env = password_env("MTLS_KEYSTORE_PASSWORD");
                bundle.key_alias = env("MTLS_KEY_ALIAS");
            }
            None => {
                bundle.certificate =
                    Some(env("MTLS_CERT").ok_or_else(|| missing("MTLS_CERT"))?.into());
                bundle.private_key =
                    Some(env("MTLS_KEY").ok_or_else(|| missing("MTLS_KEY"))?.into());
            }
        }
        match env("MTLS_TRUSTSTORE") {
            Some(truststore) => {
                bundle.truststore = Some(truststore.into());
                bundle.truststore_password_file =
                    env("MTLS_TRUSTSTORE_PASSWORD_FILE").map(Into::into);
                bundle.truststore_password_env = password_env("MTLS_TRUSTSTORE_PASSWORD");
            }
            None => {
                bundle.ca =
                    OneOrMany::One(env("MTLS_CA").ok_or_else(|| missing("MTLS_CA"))?.into());
            }
        }
        let mut cfg = Config::default();
        cfg.bundle.insert("default".to_owned(), bundle);
        cfg.client.insert(
            "default".to_owned(),
            ClientSection {
                bundle: "default".to_owned(),
                ..ClientSection::default()
            },
        );
        if let Some(listen) = env("MTLS_SERVER_LISTEN") {
            cfg.server = Some(ServerSection {
                listen,
                bundle: "default".to_owned(),
                ..ServerSection::default()
            });
        }
        cfg.apply_env("environment", &env)?;
        cfg.validate_as("environment")?;
        Ok(cfg)
    }

    /// Checks every cross-reference and value: bundles used by the server and clients exist
    /// and are complete, roles used by access rules exist, patterns and durations parse.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the key and the fix.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut cfg = mtls::Config::from_toml_str(r#"
    /// #     [bundle.b]
    /// #     certificate = "c.pem"
    /// #     private_key = "k.pem"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "0.0.0.0:8443"
    /// #     bundle = "b"
    /// #     allow = ["spiffe://example.org"]
    /// # "#)?;
    /// cfg.validate()?; // loaded and validated already
    /// cfg.server.as_mut().unwrap().handshake_timeout = Some("ten seconds".into());
    /// let err = cfg.validate().unwrap_err();
    /// assert!(matches!(err, mtls::ConfigError::Invalid { ref key, .. } if key == "server.handshake_timeout"));
    /// # Ok::<(), mtls::ConfigError>(())
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("configuration")
    }

    fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        for (name, bundle) in &self.bundle {
            let key = |k: &str| format!("bundle.{name}.{k}");
            for (store, file, env, name) in [
                (
                    &bundle.keystore,
                    &bundle.keystore_password_file,
                    &bundle.keystore_password_env,
                    "keystore",
                ),
                (
                    &bundle.truststore,
                    &bundle.truststore_password_file,
                    &bundle.truststore_password_env,
                    "truststore",
                ),
            ] {
                if store.is_none() {
                    if file.is_some() || env.is_some() {
                        return Err(invalid(
                            key(&format!("{name}_password")),
                            format!(
                                "is given without `{name}`; name the store or drop the password"
                            ),
                        ));
                    }
                    continue;
                }
                match (file, env) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            key(&format!("{name}_password_env")),
                            format!(
                                "give `{name}_password_file` or `{name}_password_env`, not both"
                            ),
                        ));
                    }
                    (None, None) => {
                        return Err(invalid(
                            key(&format!("{name}_password_file")),
                            format!(
                                "is missing: the {name} needs its password, from \
                                 `{name}_password_file` or `{name}_password_env` (never in this file)"
                            ),
                        ));
                    }
                    (None, Some(var)) if std::env::var_os(var).is_none() => {
                        return Err(invalid(
                            key(&format!("{name}_password_env")),
                            format!("the environment variable `{var}` is not set"),
                        ));
                    }
                    _ => {}
                }
            }
            if bundle.keystore.is_some()
                && (bundle.certificate.is_some() || bundle.private_key.is_some())
            {
                return Err(invalid(
                    key("keystore"),
                    "give either `keystore` or `certificate` and `private_key`, not both"
                        .to_owned(),
                ));
            }
            if bundle.keystore.is_none() {
                match (&bundle.certificate, &bundle.private_key) {
                    (Some(_), Some(_)) => {}
                    (Some(_), None) => {
                        return Err(invalid(
                            key("private_key"),
                            "is missing: a bundle with `certificate` needs its `private_key`"
                                .to_owned(),
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(invalid(
                            key("certificate"),
                            "is missing: a bundle with `private_key` needs its `certificate`"
                                .to_owned(),
                        ));
                    }
                    // A bundle of trust alone; a profile that serves or calls with it is
                    // refused below.
                    (None, None) => {}
                }
            }
            if let Some(td) = &bundle.trust_domain {
                Authorizer::trust_domain(td)
                    .map_err(|e| invalid(key("trust_domain"), e.to_string()))?;
            }
            if bundle.ca.paths().is_empty() && bundle.truststore.is_none() {
                return Err(invalid(
                    key("ca"),
                    "is missing: give the CA bundle peers must chain to (`ca`, a path or a list, \
                     or `truststore`)"
                        .to_owned(),
                ));
            }
        }
        let known = || self.bundle.keys().cloned().collect::<Vec<_>>().join(", ");
        // A profile's own bundle must hold an identity; its `trust` bundles must exist.
        let uses = |profile: &str, bundle: &str, trust: &[String]| {
            let undefined = |key: String, name: &str| {
                invalid(
                    key,
                    format!(
                        "names bundle `{name}`, which is not defined; define [bundle.{name}] (defined: {})",
                        known()
                    ),
                )
            };
            match self.bundle.get(bundle) {
                None => return Err(undefined(format!("{profile}.bundle"), bundle)),
                Some(b)
                    if b.keystore.is_none()
                        && b.certificate.is_none()
                        && b.private_key.is_none() =>
                {
                    return Err(invalid(
                        format!("bundle.{bundle}.certificate"),
                        format!(
                            "is missing: `{profile}` serves or calls with this bundle, so give \
                             `certificate` and `private_key` (PEM files), or `keystore` (PKCS#12)"
                        ),
                    ));
                }
                Some(_) => {}
            }
            let watched = |b: &Bundle| b.reload != Some(false);
            for t in trust {
                let Some(extra) = self.bundle.get(t) else {
                    return Err(undefined(format!("{profile}.trust"), t));
                };
                // One profile's files are watched together.
                if watched(extra) != watched(&self.bundle[bundle]) {
                    return Err(invalid(
                        format!("bundle.{t}.reload"),
                        format!(
                            "differs from bundle `{bundle}`'s, which `{profile}` serves or calls \
                             with; the files of one profile are watched together, so give both \
                             the same `reload`"
                        ),
                    ));
                }
            }
            Ok(())
        };
        if let Some(server) = &self.server {
            uses("server", &server.bundle, &server.trust)?;
            if server.allow.is_empty() {
                return Err(invalid(
                    "server.allow".to_owned(),
                    "is empty: list the identity patterns allowed to connect \
                     (`spiffe://example.org` allows a whole trust domain)"
                        .to_owned(),
                ));
            }
            patterns(&server.allow)
                .map_err(|e| invalid("server.allow".to_owned(), e.to_string()))?;
            if let Some(t) = &server.handshake_timeout {
                duration(t).map_err(|m| invalid("server.handshake_timeout".to_owned(), m))?;
            }
            if server.max_connections == Some(0) {
                return Err(invalid(
                    "server.max_connections".to_owned(),
                    "must be at least 1".to_owned(),
                ));
            }
        }
        for (name, client) in &self.client {
            uses(&format!("client.{name}"), &client.bundle, &client.trust)?;
            if !client.expect_server.is_empty() {
                patterns(&client.expect_server)
                    .map_err(|e| invalid(format!("client.{name}.expect_server"), e.to_string()))?;
            }
        }
        self.access().map_err(|e| match &e {
            AccessError::Pattern { role, .. } => invalid(format!("roles.{role}"), e.to_string()),
            _ => invalid("access".to_owned(), e.to_string()),
        })?;
        Ok(())
    }

    /// The roles and access rules as a tower layer; `None` when the file has no `[[access]]`.
    ///
    /// # Errors
    ///
    /// [`AccessError`] for an invalid pattern or an undefined role (caught by validation
    /// when the file loaded).
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Decision;
    ///
    /// let cfg = mtls::Config::from_toml_str(r#"
    ///     [roles]
    ///     reader = ["spiffe://example.org/ns/prod/*"]
    ///     [[access]]
    ///     path = "/stock"
    ///     roles = ["reader"]
    /// "#)?;
    /// let access = cfg.access()?.expect("has [[access]]"); // a tower Layer
    /// assert_eq!(access.decide(&http::Method::GET, "/metrics", None), Decision::NoRule);
    /// assert!(mtls::Config::default().access()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn access(&self) -> Result<Option<Access>, AccessError> {
        let roles = self.roles()?;
        if self.access.is_empty() {
            return Ok(None);
        }
        let mut access = Access::new(roles);
        for rule in &self.access {
            access = access.rule(
                AccessRule::path(&rule.path)
                    .methods(&rule.methods)
                    .roles(&rule.roles),
            )?;
        }
        Ok(Some(access))
    }

    /// The `[roles]`, each pattern parsed.
    ///
    /// # Errors
    ///
    /// [`AccessError::Pattern`] for an invalid pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// let cfg = mtls::Config::from_toml_str(r#"
    ///     [roles]
    ///     reader = ["spiffe://example.org/ns/prod/*"]
    ///     admin = ["spiffe://example.org/ns/ops/*"]
    /// "#)?;
    /// let roles = cfg.roles()?;
    /// assert_eq!(roles.names().collect::<Vec<_>>(), ["admin", "reader"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn roles(&self) -> Result<Roles, AccessError> {
        let mut roles = Roles::new();
        for (name, patterns) in &self.roles {
            roles = roles.role(name, patterns)?;
        }
        Ok(roles)
    }

    /// A server builder from `[server]` and its bundle; bind it to
    /// [`ServerSection::listen`] (or use [`Server::from_config`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when there is no `[server]`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-server-builder-{}", std::process::id()));
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # ca.write_pem(&dir, "ca")?;
    /// # ca.server("localhost")?.write_pem(&dir, "inventory")?;
    /// # ca.client("spiffe://example.org/orders")?.write_pem(&dir, "orders")?;
    /// # std::fs::write(dir.join("mtls.toml"), r#"
    /// #     [bundle.inventory]
    /// #     certificate = "inventory.pem"
    /// #     private_key = "inventory.key"
    /// #     ca = "ca.pem"
    /// #     [bundle.orders]
    /// #     certificate = "orders.pem"
    /// #     private_key = "orders.key"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "127.0.0.1:0"
    /// #     bundle = "inventory"
    /// #     allow = ["spiffe://example.org"]
    /// #     [client.inventory]
    /// #     bundle = "orders"
    /// # "#)?;
    /// // mtls.toml: [bundle.inventory], [bundle.orders], [server] on 127.0.0.1:0, [client.inventory]
    /// let cfg = mtls::Config::from_file(dir.join("mtls.toml"))?;
    /// let builder = cfg.server_builder()?.idle_timeout(std::time::Duration::from_secs(30));
    /// let handle = builder.build_rustls_config()?; // or .bind(listen).await?
    /// assert_eq!(handle.authorizer().to_string(), "trust_domain(example.org)"); // from `allow`
    /// assert!(mtls::Config::default().server_builder().is_err()); // no [server]
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server_builder(&self) -> Result<ServerBuilder, ConfigError> {
        let server = self.server.as_ref().ok_or_else(|| ConfigError::Invalid {
            origin: "configuration".to_owned(),
            key: "server".to_owned(),
            message: "is missing: add a [server] section with listen, bundle and allow".to_owned(),
        })?;
        let mut builder = Server::builder();
        apply_profile(self, &server.bundle, &server.trust, &mut builder)?;
        let policy = patterns(&server.allow).map_err(|e| ConfigError::Invalid {
            origin: "configuration".to_owned(),
            key: "server.allow".to_owned(),
            message: e.to_string(),
        })?;
        builder = builder.authorize(policy);
        if let Some(t) = &server.handshake_timeout {
            builder =
                builder.handshake_timeout(duration(t).map_err(|message| ConfigError::Invalid {
                    origin: "configuration".to_owned(),
                    key: "server.handshake_timeout".to_owned(),
                    message,
                })?);
        }
        if let Some(max) = server.max_connections {
            builder = builder.max_connections(max);
        }
        Ok(builder)
    }

    /// A client builder from `[client.NAME]` and its bundle.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when there is no such profile.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-client-builder-{}", std::process::id()));
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # ca.write_pem(&dir, "ca")?;
    /// # ca.server("localhost")?.write_pem(&dir, "inventory")?;
    /// # ca.client("spiffe://example.org/orders")?.write_pem(&dir, "orders")?;
    /// # std::fs::write(dir.join("mtls.toml"), r#"
    /// #     [bundle.inventory]
    /// #     certificate = "inventory.pem"
    /// #     private_key = "inventory.key"
    /// #     ca = "ca.pem"
    /// #     [bundle.orders]
    /// #     certificate = "orders.pem"
    /// #     private_key = "orders.key"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "127.0.0.1:0"
    /// #     bundle = "inventory"
    /// #     allow = ["spiffe://example.org"]
    /// #     [client.inventory]
    /// #     bundle = "orders"
    /// # "#)?;
    /// // mtls.toml: [bundle.inventory], [bundle.orders], [server] on 127.0.0.1:0, [client.inventory]
    /// let cfg = mtls::Config::from_file(dir.join("mtls.toml"))?;
    /// let builder = cfg.client_builder("inventory")?;
    /// let client = builder.connect_timeout(std::time::Duration::from_secs(2)).build()?;
    /// # drop(client);
    /// let err = cfg.client_builder("billing").unwrap_err();
    /// assert!(matches!(err, mtls::ConfigError::Invalid { ref key, .. } if key == "client.billing"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_builder(&self, name: &str) -> Result<ClientBuilder, ConfigError> {
        let profile = self.client.get(name).ok_or_else(|| ConfigError::Invalid {
            origin: "configuration".to_owned(),
            key: format!("client.{name}"),
            message: format!(
                "is not defined (defined: {})",
                self.client.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        let mut builder = Client::builder();
        apply_profile(self, &profile.bundle, &profile.trust, &mut builder)?;
        if !profile.expect_server.is_empty() {
            let policy = patterns(&profile.expect_server).map_err(|e| ConfigError::Invalid {
                origin: "configuration".to_owned(),
                key: format!("client.{name}.expect_server"),
                message: e.to_string(),
            })?;
            builder = builder.expect_server(policy);
        }
        Ok(builder)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for bundle in self.bundle.values_mut() {
            for p in [
                &mut bundle.certificate,
                &mut bundle.private_key,
                &mut bundle.keystore,
                &mut bundle.truststore,
                &mut bundle.keystore_password_file,
                &mut bundle.truststore_password_file,
            ]
            .into_iter()
            .flatten()
            {
                fix(p);
            }
            match &mut bundle.ca {
                OneOrMany::None => {}
                OneOrMany::One(p) => fix(p),
                OneOrMany::Many(list) => list.iter_mut().for_each(fix),
            }
            bundle.crl.iter_mut().for_each(fix);
        }
    }

    /// Applies overrides looked up by `lookup` (the environment variables of
    /// [`Config::from_file`], from any source), then validates again.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when an override makes the configuration invalid or two
    /// bundles share their variables, [`ConfigError::Override`] for an empty security setting
    /// or a value of the wrong type.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cfg = mtls::Config::from_toml_str(r#"
    /// #     [bundle.b]
    /// #     certificate = "c.pem"
    /// #     private_key = "k.pem"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "0.0.0.0:8443"
    /// #     bundle = "b"
    /// #     allow = ["spiffe://example.org"]
    /// # "#)?;
    /// let cfg = cfg.with_overrides(|key| (key == "MTLS_SERVER_LISTEN").then(|| "127.0.0.1:9443".to_owned()))?;
    /// assert_eq!(cfg.server.unwrap().listen, "127.0.0.1:9443");
    /// # Ok::<(), mtls::ConfigError>(())
    /// ```
    pub fn with_overrides(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        self.apply_env("configuration", &lookup)?;
        self.validate_as("environment")?;
        Ok(self)
    }
}

impl Server {
    /// Builds and binds the server `[server]` describes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when there is no `[server]`, [`ConfigError::Build`] for
    /// material that does not load or an address that cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-server-from-config-{}", std::process::id()));
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # ca.write_pem(&dir, "ca")?;
    /// # ca.server("localhost")?.write_pem(&dir, "inventory")?;
    /// # ca.client("spiffe://example.org/orders")?.write_pem(&dir, "orders")?;
    /// # std::fs::write(dir.join("mtls.toml"), r#"
    /// #     [bundle.inventory]
    /// #     certificate = "inventory.pem"
    /// #     private_key = "inventory.key"
    /// #     ca = "ca.pem"
    /// #     [bundle.orders]
    /// #     certificate = "orders.pem"
    /// #     private_key = "orders.key"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "127.0.0.1:0"
    /// #     bundle = "inventory"
    /// #     allow = ["spiffe://example.org"]
    /// #     [client.inventory]
    /// #     bundle = "orders"
    /// # "#)?;
    /// // mtls.toml: [bundle.inventory], [bundle.orders], [server] on 127.0.0.1:0, [client.inventory]
    /// let cfg = mtls::Config::from_file(dir.join("mtls.toml"))?;
    /// let server = mtls::Server::from_config(&cfg).await?; // bound to `listen`
    /// assert!(server.local_addr().ip().is_loopback());
    /// assert_ne!(server.local_addr().port(), 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn from_config(cfg: &Config) -> Result<Server, ConfigError> {
        let listen = cfg
            .server
            .as_ref()
            .map(|s| s.listen.clone())
            .unwrap_or_default();
        Ok(cfg.server_builder()?.bind(listen).await?)
    }
}

impl Client {
    /// Builds the client `[client.NAME]` describes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when there is no such profile, [`ConfigError::Build`] for
    /// material that does not load.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-client-from-config-{}", std::process::id()));
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # ca.write_pem(&dir, "ca")?;
    /// # ca.server("localhost")?.write_pem(&dir, "inventory")?;
    /// # ca.client("spiffe://example.org/orders")?.write_pem(&dir, "orders")?;
    /// # std::fs::write(dir.join("mtls.toml"), r#"
    /// #     [bundle.inventory]
    /// #     certificate = "inventory.pem"
    /// #     private_key = "inventory.key"
    /// #     ca = "ca.pem"
    /// #     [bundle.orders]
    /// #     certificate = "orders.pem"
    /// #     private_key = "orders.key"
    /// #     ca = "ca.pem"
    /// #     [server]
    /// #     listen = "127.0.0.1:0"
    /// #     bundle = "inventory"
    /// #     allow = ["spiffe://example.org"]
    /// #     [client.inventory]
    /// #     bundle = "orders"
    /// # "#)?;
    /// // mtls.toml: [bundle.inventory], [bundle.orders], [server] on 127.0.0.1:0, [client.inventory]
    /// let cfg = mtls::Config::from_file(dir.join("mtls.toml"))?;
    /// let server = mtls::Server::from_config(&cfg).await?;
    /// let url: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// tokio::spawn(server.serve(hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
    /// })));
    /// let client = mtls::Client::from_config(&cfg, "inventory")?;
    /// assert_eq!(client.get(url).await?.status(), http::StatusCode::OK);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_config(cfg: &Config, name: &str) -> Result<Client, ConfigError> {
        Ok(cfg.client_builder(name)?.build()?)
    }
}

/// Puts a profile's material into a server's or client's builder: its bundle's identity and
/// trust, then the trust of each bundle in `trust`.
fn apply_profile<S: Side>(
    cfg: &Config,
    bundle: &str,
    trust: &[String],
    builder: &mut Builder<S>,
) -> Result<(), ConfigError> {
    for (name, with_identity) in
        std::iter::once((bundle, true)).chain(trust.iter().map(|t| (t.as_str(), false)))
    {
        let found = cfg.bundle.get(name).ok_or_else(|| ConfigError::Invalid {
            origin: "configuration".to_owned(),
            key: format!("bundle.{name}"),
            message: format!("is not defined; define [bundle.{name}]"),
        })?;
        apply_bundle(found, name, with_identity, &mut builder.material)?;
    }
    Ok(())
}

/// Puts a bundle's material into a server's or client's builder: PEM files or keystores
/// (when `with_identity`), CA files or a truststore bound to its trust domain, CRLs, and
/// whether to watch them.
fn apply_bundle(
    bundle: &Bundle,
    name: &str,
    with_identity: bool,
    material: &mut crate::rotate::MaterialSpec,
) -> Result<(), ConfigError> {
    if let (true, Some(cert), Some(key)) = (with_identity, &bundle.certificate, &bundle.private_key)
    {
        material.identity_files(cert, key);
    }
    let bound = bundle.trust_domain.as_deref();
    // The bundle's CRLs are read with its CA files and speak for those CAs alone.
    for ca in bundle.ca.paths() {
        material.trust_file(ca, bound, &bundle.crl);
    }
    #[cfg(feature = "pkcs12")]
    {
        let (keystore, truststore) = stores(bundle, name)?;
        if let Some((path, password, alias)) = keystore.filter(|_| with_identity) {
            material.identity_pkcs12(&path, password, alias.as_deref());
        }
        if let Some((path, password)) = truststore {
            material.trust_pkcs12(&path, password, bound, &bundle.crl);
        }
    }
    #[cfg(not(feature = "pkcs12"))]
    let _ = name;
    if with_identity && bundle.reload == Some(false) {
        material.reload_interval = None;
    }
    Ok(())
}

/// A keystore (path, password, alias) and a truststore (path, password), passwords read.
#[cfg(feature = "pkcs12")]
#[allow(clippy::type_complexity)]
fn stores(
    bundle: &Bundle,
    name: &str,
) -> Result<
    (
        Option<(PathBuf, crate::Password, Option<String>)>,
        Option<(PathBuf, crate::Password)>,
    ),
    ConfigError,
> {
    let password = |file: &Option<PathBuf>, env: &Option<String>, which: &str| {
        let result = match (file, env) {
            (Some(file), _) => crate::Password::from_file(file),
            (None, Some(var)) => crate::Password::from_env(var),
            (None, None) => crate::Password::from_env(""),
        };
        result.map_err(|e| ConfigError::Invalid {
            origin: "configuration".to_owned(),
            key: format!("bundle.{name}.{which}_password"),
            message: e.to_string(),
        })
    };
    let keystore = match &bundle.keystore {
        Some(path) => Some((
            path.clone(),
            password(
                &bundle.keystore_password_file,
                &bundle.keystore_password_env,
                "keystore",
            )?,
            bundle.key_alias.clone(),
        )),
        None => None,
    };
    let truststore = match &bundle.truststore {
        Some(path) => Some((
            path.clone(),
            password(
                &bundle.truststore_password_file,
                &bundle.truststore_password_env,
                "truststore",
            )?,
        )),
        None => None,
    };
    Ok((keystore, truststore))
}

fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: e.message().trim().to_owned(),
    })
}

/// The policy admitting any of `list`'s patterns.
fn patterns(list: &[String]) -> Result<Authorizer, PolicyError> {
    let parsed = list
        .iter()
        .map(|p| Authorizer::pattern(p))
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.len() == 1 {
        Ok(parsed
            .into_iter()
            .next()
            .unwrap_or_else(Authorizer::any_verified))
    } else {
        Authorizer::any_of(parsed)
    }
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1h"`.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration; write it like \"10s\", \"500ms\", \"2m\" or \"1h\"")
    })?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}` has no known unit; write it like \"10s\", \"500ms\", \"2m\" or \"1h\""
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` must be a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "10", "ten s", "0s", "-1s", "1e400s", "5d"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
