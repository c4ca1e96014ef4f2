//! [`Config::validate`]: every cross-reference and value checked when a configuration loads.

use super::build::patterns;
use super::duration::duration;
use super::{Bundle, Config, ConfigError};
use crate::policy::authorizer::Authorizer;
use crate::policy::roles::AccessError;

impl Config {
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

    pub(super) fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
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
}
