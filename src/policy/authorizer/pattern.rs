//! [`Authorizer::pattern`]: the one-string identity patterns of configuration files and
//! command lines.

use super::{Authorizer, Rule};
use crate::error::PolicyError;
use crate::spiffe::SpiffeId;

impl Authorizer {
    /// One identity pattern, in the syntax shared by configuration files and command lines:
    ///
    /// | pattern | policy |
    /// |---|---|
    /// | `spiffe://example.org/ns/prod/sa/orders` | [`Authorizer::spiffe_id`] |
    /// | `spiffe://example.org/ns/prod/*` | [`Authorizer::spiffe_path_prefix`] of `/ns/prod` |
    /// | `spiffe://example.org`, `spiffe://example.org/*` | [`Authorizer::trust_domain`] |
    /// | `dns:db.internal`, `dns:*.internal` | [`Authorizer::dns_name`] |
    /// | `cn:legacy-client` | [`Authorizer::common_name`] |
    ///
    /// # Errors
    ///
    /// [`PolicyError::Pattern`] for a pattern in none of these forms, and the errors of the
    /// constructor it maps to.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Authorizer;
    ///
    /// let ops = Authorizer::pattern("spiffe://example.org/ns/ops/*")?;
    /// assert_eq!(ops.to_string(), "spiffe_path_prefix(spiffe://example.org/ns/ops)");
    /// let domain = Authorizer::pattern("spiffe://example.org/*")?;
    /// assert_eq!(domain.to_string(), Authorizer::trust_domain("example.org")?.to_string());
    /// assert!(Authorizer::pattern("example.org/orders").is_err());
    /// # Ok::<(), mtls::PolicyError>(())
    /// ```
    pub fn pattern(pattern: &str) -> Result<Self, PolicyError> {
        if let Some(name) = pattern.strip_prefix("dns:") {
            return Self::dns_name(name);
        }
        if let Some(name) = pattern.strip_prefix("cn:") {
            return Self::common_name(name);
        }
        if !pattern.starts_with("spiffe://") {
            return Err(PolicyError::Pattern(pattern.to_owned()));
        }
        if let Some(prefix) = pattern.strip_suffix("/*") {
            // `spiffe://example.org/*` is how people write "any workload of the domain".
            return match SpiffeId::parse(prefix)? {
                id if id.path().is_empty() => Self::trust_domain(id.trust_domain()),
                _ => Self::spiffe_path_prefix(prefix),
            };
        }
        let id = SpiffeId::parse(pattern)?;
        if id.path().is_empty() {
            Self::trust_domain(id.trust_domain())
        } else {
            Ok(Self::new(Rule::SpiffeId(id)))
        }
    }
}
