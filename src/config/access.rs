//! `[roles]` and `[[access]]` as [`Roles`] and an [`Access`] layer.

use super::Config;
use crate::policy::roles::{Access, AccessError, AccessRule, Roles};

impl Config {
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
    /// use mtls::policy::Decision;
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
}
