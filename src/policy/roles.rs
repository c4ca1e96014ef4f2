//! Roles by identity: which callers may use which routes ([`Roles`], [`Access`]), as a tower
//! layer that denies by default.
//!
//! A role is a set of identity patterns ([`Authorizer::pattern`]); a rule gives a path prefix
//! (on segment boundaries) and methods to some roles. The first rule that covers a request
//! decides; a request no rule covers is denied. The check reads the [`PeerIdentity`] parsed
//! once per connection (from the request, or from tonic's `VerifiedConnectInfo` under
//! `serve_with_incoming(server.incoming())`): no certificate is parsed per request.
//!
//! A refused gRPC caller (`content-type: application/grpc...`) gets a gRPC status rather than
//! an HTTP error it cannot read: `PERMISSION_DENIED` (7), `UNAUTHENTICATED` (16) when it
//! presented no identity, and `INVALID_ARGUMENT` (3) for a path with no canonical form, with
//! the reason in `grpc-message` (see [`RequireIdentity`](crate::RequireIdentity)).
//!
//! Rules match the request's canonical path ([`canonical_path`](crate::policy::canonical_path)), never
//! a spelling of it: `/stock//reserved`, `/stock/./reserved` and `/stock/%72eserved` are
//! `/stock/reserved`, and a path with no safe canonical form (an escaped `/`, a `..` above the
//! root) is answered 400. [`AccessService`] hands the inner service the canonical path, so the
//! service serves what the rule allowed. A rule that covers `GET` also covers `HEAD`, which
//! servers answer with the GET handler.
//!
//! [`Roles`] and [`AccessError`] live here; the rules and what they decide in `access`, the
//! tower service that enforces them in `service`.

mod access;
mod service;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::PolicyError;
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;

pub use access::{Access, AccessRule, Decision};
pub use service::AccessService;

/// Why roles or access rules could not be built.
///
/// # Examples
///
/// ```
/// use mtls::{Access, policy::AccessError, policy::AccessRule, Roles};
///
/// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
/// let err = Access::new(roles).rule(AccessRule::path("/stock").roles(["writer"])).unwrap_err();
/// assert!(matches!(err, AccessError::UnknownRole { ref role, ref defined, .. }
///     if role == "writer" && defined == "reader"));
/// # Ok::<(), AccessError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// A pattern of a role is invalid.
    #[error("role `{role}`: {source}")]
    Pattern {
        /// The role.
        role: String,
        /// What is wrong with the pattern.
        source: PolicyError,
    },
    /// A role was defined twice.
    #[error("role `{0}` is defined twice; give each role one list of patterns")]
    DuplicateRole(String),
    /// A rule names a role that is not defined.
    #[error(
        "access rule for `{path}` names role `{role}`, which is not defined; define it with \
         Roles::role (or under [roles] in the configuration file), or fix the name \
         (defined: {defined})"
    )]
    UnknownRole {
        /// The rule's path.
        path: String,
        /// The missing role.
        role: String,
        /// The roles that are defined, comma-separated.
        defined: String,
    },
    /// A rule's path does not start with `/`, or has no canonical form
    /// ([`canonical_path`](crate::policy::canonical_path)).
    #[error(
        "access rule path `{0}` must start with `/` and have a canonical form \
         (no escaped `/` or `\\`, no `..` above the root)"
    )]
    Path(String),
    /// A rule names an invalid HTTP method.
    #[error("access rule for `{path}`: `{method}` is not an HTTP method")]
    Method {
        /// The rule's path.
        path: String,
        /// The method as given.
        method: String,
    },
    /// A rule grants no role: it could only ever deny, which is what no rule does already.
    #[error("access rule for `{0}` names no role; list the roles that may use it")]
    NoRoles(String),
}

/// Named roles, each a set of identity patterns.
///
/// # Examples
///
/// ```
/// let roles = mtls::Roles::new()
///     .role("reader", ["spiffe://example.org/ns/prod/sa/orders", "spiffe://example.org/ns/prod/sa/billing"])?
///     .role("admin", ["spiffe://example.org/ns/ops/*"])?;
/// assert_eq!(roles.names().collect::<Vec<_>>(), ["admin", "reader"]);
/// # Ok::<(), mtls::policy::AccessError>(())
/// ```
#[derive(Clone, Default)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
}

#[derive(Clone)]
struct Role {
    /// `None` for a role with no members: it admits nobody.
    members: Option<Authorizer>,
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.roles.iter().map(|(name, role)| {
                (
                    name,
                    role.members
                        .as_ref()
                        .map_or_else(|| "nobody".to_owned(), |m| m.to_string()),
                )
            }))
            .finish()
    }
}

impl Roles {
    /// No roles yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let roles = mtls::Roles::new();
    /// assert_eq!(roles.names().count(), 0);
    /// ```
    pub fn new() -> Self {
        Roles::default()
    }

    /// Defines `name` as the identities matching any of `patterns` (a role with no patterns
    /// admits nobody).
    ///
    /// # Errors
    ///
    /// [`AccessError::Pattern`] for an invalid pattern, [`AccessError::DuplicateRole`] when
    /// `name` is already defined.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{policy::AccessError, Roles};
    ///
    /// let roles = Roles::new()
    ///     .role("admin", ["spiffe://example.org/ns/ops/*"])?
    ///     .role("auditor", Vec::<&str>::new())?; // admits nobody, for now
    /// let again = roles.clone().role("admin", ["spiffe://example.org"]);
    /// assert_eq!(again.unwrap_err(), AccessError::DuplicateRole("admin".into()));
    /// assert!(roles.role("broken", ["example.org/orders"]).is_err()); // not a pattern
    /// # Ok::<(), AccessError>(())
    /// ```
    pub fn role<I, S>(mut self, name: &str, patterns: I) -> Result<Self, AccessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if self.roles.contains_key(name) {
            return Err(AccessError::DuplicateRole(name.to_owned()));
        }
        let pattern_error = |source| AccessError::Pattern {
            role: name.to_owned(),
            source,
        };
        let members = patterns
            .into_iter()
            .map(|p| Authorizer::pattern(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(pattern_error)?;
        let members = if members.is_empty() {
            None
        } else {
            Some(Authorizer::any_of(members).map_err(pattern_error)?)
        };
        self.roles.insert(name.to_owned(), Role { members });
        Ok(self)
    }

    /// The role names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// let roles = mtls::Roles::new()
    ///     .role("writer", ["spiffe://example.org/ns/prod/sa/orders"])?
    ///     .role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// assert_eq!(roles.names().collect::<Vec<_>>(), ["admin", "writer"]);
    /// # Ok::<(), mtls::policy::AccessError>(())
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The roles `peer` holds, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let identity = ca.client("spiffe://example.org/ns/ops/sa/oncall")?.identity()?;
    /// let peer = mtls::PeerIdentity::from_chain(identity.chain())?;
    /// let roles = mtls::Roles::new()
    ///     .role("reader", ["spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/ops/*"])?
    ///     .role("admin", ["spiffe://example.org/ns/ops/*"])?
    ///     .role("billing", ["spiffe://example.org/ns/prod/sa/billing"])?;
    /// assert_eq!(roles.of(&peer), ["admin", "reader"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn of(&self, peer: &PeerIdentity) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|(_, role)| role.members.as_ref().is_some_and(|m| m.allows(Some(peer))))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}
