//! Environment overrides of a [`Config`], twelve-factor style: `MTLS_SERVER_<KEY>` and
//! `MTLS_BUNDLE_<NAME>_<KEY>`.
//!
//! Invariants:
//! - every override applied is logged by its variable and the setting it replaces, never with
//!   its value (a variable may name or hold a secret);
//! - a security setting (`server.allow`, a bundle's `ca` or `crl`) is emptied only by the
//!   literal value [`CLEAR`]; an empty value (or a list of blanks) is refused, naming the
//!   variable;
//! - no two bundles share a variable: names that map to the same `<NAME>` are refused before
//!   any variable is read;
//! - a value that does not parse as its setting's type is refused, naming the variable; it
//!   never stands in for another value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{Config, ConfigError, OneOrMany};

/// The value that empties a security setting on purpose: `MTLS_BUNDLE_<NAME>_CRL=none`
/// turns revocation checking off, `MTLS_BUNDLE_<NAME>_CA=none` leaves the truststore alone.
pub(crate) const CLEAR: &str = "none";

/// The `<NAME>` of a bundle's variables: upper-cased, `-` as `_`.
fn env_name(bundle: &str) -> String {
    bundle.to_ascii_uppercase().replace('-', "_")
}

/// A security setting given as a comma-separated list.
enum Secured {
    Allow,
    Ca,
    Crl,
}

impl Secured {
    /// What emptying it would do, for the refusal.
    fn consequence(&self) -> &'static str {
        match self {
            Secured::Allow => "admit no one",
            Secured::Ca => "drop every CA this bundle trusts",
            Secured::Crl => "turn revocation checking off for this bundle",
        }
    }
}

/// Looks variables up and logs each override applied.
struct Overrides<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Overrides<'_> {
    /// The value of `variable`, logged as overriding `setting` when set.
    fn get(&self, variable: &str, setting: &str) -> Option<String> {
        let value = (self.env)(variable)?;
        tracing::info!(
            variable,
            setting,
            "configuration setting overridden by the environment"
        );
        Some(value)
    }

    /// The list `variable` gives for the security setting `setting`: `Some(empty)` only for
    /// [`CLEAR`], an error for a value that lists nothing.
    fn list(
        &self,
        variable: &str,
        setting: &str,
        kind: Secured,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(value) = (self.env)(variable) else {
            return Ok(None);
        };
        if value.trim() == CLEAR {
            tracing::warn!(
                variable,
                setting,
                "configuration setting cleared by the environment"
            );
            return Ok(Some(Vec::new()));
        }
        let list: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(ConfigError::Override {
                variable: variable.to_owned(),
                message: format!(
                    "is empty, which would clear `{setting}` and {}; unset it to keep the \
                     file's value, give a comma-separated list, or set it to `{CLEAR}` to \
                     clear it on purpose",
                    kind.consequence()
                ),
            });
        }
        tracing::info!(
            variable,
            setting,
            "configuration setting overridden by the environment"
        );
        Ok(Some(list))
    }
}

impl Config {
    /// Applies the overrides `env` gives (see `docs/CONFIG.md` for the variables). `origin`
    /// names where the bundles came from, for a collision.
    ///
    /// Variables: `MTLS_SERVER_LISTEN`, `_BUNDLE`, `_ALLOW` (comma-separated),
    /// `_HANDSHAKE_TIMEOUT`, `_MAX_CONNECTIONS`, and for each bundle
    /// `MTLS_BUNDLE_<NAME>_CERTIFICATE`, `_PRIVATE_KEY`, `_CA` (comma-separated), `_CRL`
    /// (comma-separated), `_KEYSTORE`, `_KEYSTORE_PASSWORD_FILE`, `_KEYSTORE_PASSWORD_ENV`,
    /// `_KEY_ALIAS`, `_TRUSTSTORE`, `_TRUSTSTORE_PASSWORD_FILE`, `_TRUSTSTORE_PASSWORD_ENV` and
    /// `_RELOAD` (`true`/`false`).
    pub(crate) fn apply_env(
        &mut self,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        distinct_env_names(self.bundle.keys(), origin)?;
        let env = Overrides { env };
        if let Some(server) = &mut self.server {
            if let Some(v) = env.get("MTLS_SERVER_LISTEN", "server.listen") {
                server.listen = v;
            }
            if let Some(v) = env.get("MTLS_SERVER_BUNDLE", "server.bundle") {
                server.bundle = v;
            }
            if let Some(v) = env.list("MTLS_SERVER_ALLOW", "server.allow", Secured::Allow)? {
                server.allow = v;
            }
            if let Some(v) = env.get("MTLS_SERVER_HANDSHAKE_TIMEOUT", "server.handshake_timeout") {
                server.handshake_timeout = Some(v);
            }
            if let Some(v) = env.get("MTLS_SERVER_MAX_CONNECTIONS", "server.max_connections") {
                let max = v.parse().map_err(|_| ConfigError::Override {
                    variable: "MTLS_SERVER_MAX_CONNECTIONS".to_owned(),
                    message: "is not a whole number: give the most connections served at once \
                              (at least 1), or unset it to keep the file's value"
                        .to_owned(),
                })?;
                server.max_connections = Some(max);
            }
        }
        for (name, bundle) in &mut self.bundle {
            let prefix = format!("MTLS_BUNDLE_{}_", env_name(name));
            let variable = |k: &str| format!("{prefix}{k}");
            let setting = |k: &str| format!("bundle.{name}.{k}");
            let get = |k: &str| env.get(&variable(k), &setting(&k.to_ascii_lowercase()));
            let paths = |k: &str, kind| -> Result<Option<Vec<PathBuf>>, ConfigError> {
                let list = env.list(&variable(k), &setting(&k.to_ascii_lowercase()), kind)?;
                Ok(list.map(|l| l.into_iter().map(PathBuf::from).collect()))
            };
            if let Some(v) = get("CERTIFICATE") {
                bundle.certificate = Some(v.into());
            }
            if let Some(v) = get("PRIVATE_KEY") {
                bundle.private_key = Some(v.into());
            }
            if let Some(v) = paths("CA", Secured::Ca)? {
                bundle.ca = OneOrMany::Many(v);
            }
            if let Some(v) = paths("CRL", Secured::Crl)? {
                bundle.crl = v;
            }
            if let Some(v) = get("KEYSTORE") {
                bundle.keystore = Some(v.into());
            }
            if let Some(v) = get("KEYSTORE_PASSWORD_FILE") {
                bundle.keystore_password_file = Some(v.into());
            }
            if let Some(v) = get("KEYSTORE_PASSWORD_ENV") {
                bundle.keystore_password_env = Some(v);
            }
            if let Some(v) = get("KEY_ALIAS") {
                bundle.key_alias = Some(v);
            }
            if let Some(v) = get("TRUSTSTORE") {
                bundle.truststore = Some(v.into());
            }
            if let Some(v) = get("TRUSTSTORE_PASSWORD_FILE") {
                bundle.truststore_password_file = Some(v.into());
            }
            if let Some(v) = get("TRUSTSTORE_PASSWORD_ENV") {
                bundle.truststore_password_env = Some(v);
            }
            if let Some(v) = get("RELOAD") {
                bundle.reload = Some(v != "false");
            }
        }
        Ok(())
    }
}

/// Refuses bundle names that share their variables (`a-b` and `a_b`, `Orders` and `orders`).
fn distinct_env_names<'a>(
    names: impl Iterator<Item = &'a String>,
    origin: &str,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in names {
        let mapped = env_name(name);
        if let Some(other) = seen.insert(mapped.clone(), name) {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                key: format!("bundle.{name}"),
                message: format!(
                    "bundles `{other}` and `{name}` are both overridden by the environment \
                     variables MTLS_BUNDLE_{mapped}_*; rename one of them"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_map_to_one_variable_collide() {
        let names = ["a-b", "a_b"].map(str::to_owned);
        let err = distinct_env_names(names.iter(), "mtls.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mtls.toml: `bundle.a_b`: bundles `a-b` and `a_b` are both overridden by the \
             environment variables MTLS_BUNDLE_A_B_*; rename one of them"
        );
        let names = ["Orders", "orders"].map(str::to_owned);
        assert!(distinct_env_names(names.iter(), "mtls.toml").is_err());
        let names = ["a-b", "ab", "a-b-c"].map(str::to_owned);
        assert!(distinct_env_names(names.iter(), "mtls.toml").is_ok());
    }
}
