//! Reading a [`Config`] from a file, a string or the environment alone, and applying
//! environment overrides.

use std::path::{Path, PathBuf};

use super::{Bundle, ClientSection, Config, ConfigError, OneOrMany, ServerSection};

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

fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: e.message().trim().to_owned(),
    })
}
