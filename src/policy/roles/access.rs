//! Access rules ([`AccessRule`]) over [`Roles`], checked in order ([`Access`]), and what they
//! decide for one request ([`Decision`]).

use std::fmt;

use http::Method;

use super::{AccessError, Roles};
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::policy::path::{PathError, canonical_path};

/// One access rule: a path prefix, the methods it covers, and the roles allowed.
///
/// # Examples
///
/// ```
/// use mtls::{Access, policy::AccessRule, policy::Decision, Roles};
///
/// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
/// let rule = AccessRule::path("/stock").methods(["GET", "HEAD"]).roles(["reader"]);
/// let access = Access::new(roles).rule(rule)?;
/// assert_eq!(access.decide(&http::Method::POST, "/stock", None), Decision::NoRule);
/// # Ok::<(), mtls::policy::AccessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AccessRule {
    path: String,
    methods: Vec<String>,
    roles: Vec<String>,
}

impl AccessRule {
    /// A rule for `path` and everything under it on segment boundaries (`/stock` covers
    /// `/stock` and `/stock/42`, never `/stockpile`), for every method until
    /// [`AccessRule::methods`] narrows it.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::AccessRule, policy::Decision, Roles};
    /// use http::Method;
    ///
    /// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
    /// let access = Access::new(roles).rule(AccessRule::path("/stock").roles(["reader"]))?;
    /// assert!(matches!(access.decide(&Method::GET, "/stock/42", None), Decision::Denied(_)));
    /// assert_eq!(access.decide(&Method::GET, "/stockpile", None), Decision::NoRule);
    /// # Ok::<(), mtls::policy::AccessError>(())
    /// ```
    pub fn path(path: &str) -> Self {
        AccessRule {
            path: path.to_owned(),
            methods: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// The methods the rule covers (`GET`, `POST`...); all methods when none are given.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::AccessRule, policy::Decision, Roles};
    /// use http::Method;
    ///
    /// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
    /// let rule = AccessRule::path("/stock").methods(["get"]).roles(["reader"]); // any case
    /// let access = Access::new(roles).rule(rule)?;
    /// assert!(matches!(access.decide(&Method::GET, "/stock", None), Decision::Denied(_)));
    /// assert_eq!(access.decide(&Method::DELETE, "/stock", None), Decision::NoRule);
    /// # Ok::<(), mtls::policy::AccessError>(())
    /// ```
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = methods.into_iter().map(|m| m.as_ref().to_owned()).collect();
        self
    }

    /// The roles allowed to use the rule's routes.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::AccessRule, policy::Decision, PeerIdentity, Roles};
    ///
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let orders = ca.client("spiffe://example.org/ns/prod/sa/orders")?.identity()?;
    /// let peer = PeerIdentity::from_chain(orders.chain())?;
    /// let roles = Roles::new()
    ///     .role("reader", ["spiffe://example.org/ns/prod/*"])?
    ///     .role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// let access = Access::new(roles).rule(AccessRule::path("/admin").roles(["admin"]))?;
    /// let decision = access.decide(&http::Method::GET, "/admin", Some(&peer));
    /// assert_eq!(decision, Decision::Denied("/admin any method for admin".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.roles = roles.into_iter().map(|r| r.as_ref().to_owned()).collect();
        self
    }
}

/// Checked rule: methods parsed, roles resolved.
#[derive(Clone)]
struct Compiled {
    path: String,
    methods: Vec<Method>,
    roles: Vec<String>,
    /// Any of the roles' members; `None` when every role is empty.
    allowed: Option<Authorizer>,
}

impl Compiled {
    /// Whether the rule covers `method` on `path` (canonical).
    fn covers(&self, method: &Method, path: &str) -> bool {
        let path_matches = self.path == "/"
            || path
                .strip_prefix(self.path.trim_end_matches('/'))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let method_matches = self.methods.is_empty()
            || self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET));
        path_matches && method_matches
    }

    fn describe(&self) -> String {
        let methods = if self.methods.is_empty() {
            "any method".to_owned()
        } else {
            self.methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("{} {methods} for {}", self.path, self.roles.join(","))
    }
}

/// Role-based access to routes, as a tower [`Layer`](tower_layer::Layer): the first rule
/// covering a request decides, and a request no rule covers is denied (`403`). A denied
/// request gets a short body naming the rule (a gRPC caller gets `PERMISSION_DENIED` or
/// `UNAUTHENTICATED` with it), and a `tracing` warning carries the caller's identity, the
/// method, the path and the rule.
///
/// # Examples
///
/// ```
/// use mtls::{Access, policy::AccessRule, Roles};
///
/// let roles = Roles::new()
///     .role("reader", ["spiffe://example.org/ns/prod/sa/orders"])?
///     .role("admin", ["spiffe://example.org/ns/ops/*"])?;
/// let access = Access::new(roles)
///     .rule(AccessRule::path("/stock").methods(["GET"]).roles(["reader", "admin"]))?
///     .rule(AccessRule::path("/admin").roles(["admin"]))?;
/// // `access` is a tower Layer: `Router::new()...layer(access)` with axum, or before gRPC
/// // services: `tonic::transport::Server::builder().layer(access)`.
/// # drop(access);
/// # Ok::<(), mtls::policy::AccessError>(())
/// ```
#[derive(Clone)]
pub struct Access {
    roles: Roles,
    rules: Vec<Compiled>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("roles", &self.roles)
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(Compiled::describe)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What [`Access::decide`] concluded.
///
/// # Examples
///
/// ```
/// use mtls::{Access, policy::AccessRule, policy::Decision, PeerIdentity, Roles};
/// use http::Method;
///
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// let orders = ca.client("spiffe://example.org/ns/prod/sa/orders")?.identity()?;
/// let peer = PeerIdentity::from_chain(orders.chain())?;
/// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
/// let access = Access::new(roles)
///     .rule(AccessRule::path("/stock").methods(["GET"]).roles(["reader"]))?;
/// let allowed = Decision::Allowed("/stock GET for reader".into());
/// assert_eq!(access.decide(&Method::GET, "/stock", Some(&peer)), allowed);
/// assert_eq!(access.decide(&Method::GET, "/metrics", Some(&peer)), Decision::NoRule);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Allowed by the rule (described as `path methods for roles`).
    Allowed(String),
    /// Denied by the rule: the caller holds none of its roles.
    Denied(String),
    /// No rule covers the request: denied by default.
    NoRule,
    /// The path has no safe canonical form: refused (400, or gRPC `INVALID_ARGUMENT`: the
    /// request is malformed, whoever sends it) before any rule is read.
    BadPath(PathError),
}

impl Decision {
    /// Why the request is refused, in the words of the 403 body and the `tracing` event;
    /// `None` when it is allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::Method;
    /// use mtls::policy::Decision;
    ///
    /// assert_eq!(
    ///     Decision::NoRule.refusal(&Method::GET, "/metrics").as_deref(),
    ///     Some("no access rule covers GET /metrics")
    /// );
    /// assert_eq!(Decision::Allowed("/ any method for admin".into()).refusal(&Method::GET, "/"), None);
    /// ```
    pub fn refusal(&self, method: &Method, path: &str) -> Option<String> {
        match self {
            Decision::Allowed(_) => None,
            Decision::Denied(rule) => Some(format!("rule `{rule}` does not admit this caller")),
            Decision::NoRule => Some(format!("no access rule covers {method} {path}")),
            Decision::BadPath(e) => Some(e.to_string()),
        }
    }
}

impl Access {
    /// Access over `roles`, with no rules yet (so everything is denied).
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::Decision, Roles};
    ///
    /// let roles = Roles::new().role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// let access = Access::new(roles);
    /// assert_eq!(access.decide(&http::Method::GET, "/", None), Decision::NoRule);
    /// # Ok::<(), mtls::policy::AccessError>(())
    /// ```
    pub fn new(roles: Roles) -> Self {
        Access {
            roles,
            rules: Vec::new(),
        }
    }

    /// Adds a rule after the existing ones (the first covering rule decides).
    ///
    /// # Errors
    ///
    /// [`AccessError::UnknownRole`], [`AccessError::Path`], [`AccessError::Method`] and
    /// [`AccessError::NoRoles`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::AccessError, policy::AccessRule, policy::Decision, Roles};
    ///
    /// let roles = Roles::new()
    ///     .role("reader", ["spiffe://example.org/ns/prod/*"])?
    ///     .role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// let access = Access::new(roles)
    ///     .rule(AccessRule::path("/stock/reserved").roles(["admin"]))? // first: the narrower rule
    ///     .rule(AccessRule::path("/stock").roles(["reader", "admin"]))?;
    /// let decision = access.decide(&http::Method::GET, "/stock/reserved/7", None);
    /// assert_eq!(decision, Decision::Denied("/stock/reserved any method for admin".into()));
    /// let err = access.rule(AccessRule::path("stock").roles(["reader"])).unwrap_err();
    /// assert_eq!(err, AccessError::Path("stock".into()));
    /// # Ok::<(), AccessError>(())
    /// ```
    pub fn rule(mut self, rule: AccessRule) -> Result<Self, AccessError> {
        // Matched against canonical request paths, so kept in canonical form itself.
        let path = match canonical_path(&rule.path) {
            Ok(path) => path.into_owned(),
            Err(_) => return Err(AccessError::Path(rule.path)),
        };
        if rule.roles.is_empty() {
            return Err(AccessError::NoRoles(rule.path));
        }
        let methods = rule
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    AccessError::Method {
                        path: rule.path.clone(),
                        method: m.clone(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut members = Vec::new();
        for name in &rule.roles {
            let role = self
                .roles
                .roles
                .get(name)
                .ok_or_else(|| AccessError::UnknownRole {
                    path: rule.path.clone(),
                    role: name.clone(),
                    defined: self.roles.names().collect::<Vec<_>>().join(", "),
                })?;
            members.extend(role.members.clone());
        }
        let allowed = if members.is_empty() {
            None
        } else {
            Authorizer::any_of(members).ok()
        };
        self.rules.push(Compiled {
            path,
            methods,
            roles: rule.roles,
            allowed,
        });
        Ok(self)
    }

    /// Decides a request from its method, path and caller.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::{Access, policy::AccessRule, policy::Decision, PeerIdentity, Roles};
    /// use http::Method;
    ///
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// let oncall = ca.client("spiffe://example.org/ns/ops/sa/oncall")?.identity()?;
    /// let peer = PeerIdentity::from_chain(oncall.chain())?;
    /// let roles = Roles::new().role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// let access = Access::new(roles).rule(AccessRule::path("/admin").roles(["admin"]))?;
    /// assert!(matches!(access.decide(&Method::POST, "/admin/reload", Some(&peer)), Decision::Allowed(_)));
    /// assert!(matches!(access.decide(&Method::POST, "/admin/reload", None), Decision::Denied(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decide(&self, method: &Method, path: &str, peer: Option<&PeerIdentity>) -> Decision {
        match canonical_path(path) {
            Ok(path) => self.decide_canonical(method, &path, peer),
            Err(e) => Decision::BadPath(e),
        }
    }

    pub(super) fn decide_canonical(
        &self,
        method: &Method,
        path: &str,
        peer: Option<&PeerIdentity>,
    ) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| r.covers(method, path)) else {
            return Decision::NoRule;
        };
        let allowed = match (&rule.allowed, peer) {
            (Some(members), Some(peer)) => members.allows(Some(peer)),
            _ => false,
        };
        if allowed {
            Decision::Allowed(rule.describe())
        } else {
            Decision::Denied(rule.describe())
        }
    }
}
