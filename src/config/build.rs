//! Servers and clients built from the profiles of a [`Config`]: each profile's bundle and
//! `trust` bundles put into a builder, keystore passwords read, patterns parsed.

#[cfg(feature = "pkcs12")]
use std::path::PathBuf;

use super::duration::duration;
use super::{Bundle, Config, ConfigError};
use crate::client::{Client, ClientBuilder};
use crate::error::PolicyError;
use crate::policy::authorizer::Authorizer;
use crate::rotate::builder::{Builder, Side};
use crate::server::{Server, ServerBuilder};

impl Config {
    /// A server builder from `[server]` and its bundle; bind it to
    /// [`ServerSection::listen`](super::ServerSection::listen) (or use [`Server::from_config`]).
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
        apply_bundle(found, name, with_identity, &mut builder.sources)?;
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
    material: &mut crate::rotate::Sources,
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

/// The policy admitting any of `list`'s patterns.
pub(super) fn patterns(list: &[String]) -> Result<Authorizer, PolicyError> {
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
