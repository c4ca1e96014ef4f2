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
//! Rules match the request's canonical path ([`canonical_path`]), never a spelling of it:
//! `/stock//reserved`, `/stock/./reserved` and `/stock/%72eserved` are `/stock/reserved`, and
//! a path with no safe canonical form (an escaped `/`, a `..` above the root) is answered 400.
//! [`AccessService`] hands the inner service the canonical path, so the service serves what
//! the rule allowed. A rule that covers `GET` also covers `HEAD`, which servers answer with
//! the GET handler.

use std::collections::BTreeMap;
use std::fmt;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Bytes;

use crate::error::PolicyError;
use crate::peer::PeerIdentity;
use crate::peer::request::peer_of;
use crate::policy::authorizer::Authorizer;
use crate::policy::path::{PathError, canonical_path};
use crate::policy::refusal::{Refusal, refuse};
use crate::policy::require::RequireIdentityFuture;

/// Why roles or access rules could not be built.
///
/// # Examples
///
/// ```
/// use mtls::{Access, AccessError, AccessRule, Roles};
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
    /// A rule's path does not start with `/`, or has no canonical form ([`canonical_path`]).
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
/// # Ok::<(), mtls::AccessError>(())
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
    /// use mtls::{AccessError, Roles};
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
    /// # Ok::<(), mtls::AccessError>(())
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

/// One access rule: a path prefix, the methods it covers, and the roles allowed.
///
/// # Examples
///
/// ```
/// use mtls::{Access, AccessRule, Decision, Roles};
///
/// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
/// let rule = AccessRule::path("/stock").methods(["GET", "HEAD"]).roles(["reader"]);
/// let access = Access::new(roles).rule(rule)?;
/// assert_eq!(access.decide(&http::Method::POST, "/stock", None), Decision::NoRule);
/// # Ok::<(), mtls::AccessError>(())
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
    /// use mtls::{Access, AccessRule, Decision, Roles};
    /// use http::Method;
    ///
    /// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
    /// let access = Access::new(roles).rule(AccessRule::path("/stock").roles(["reader"]))?;
    /// assert!(matches!(access.decide(&Method::GET, "/stock/42", None), Decision::Denied(_)));
    /// assert_eq!(access.decide(&Method::GET, "/stockpile", None), Decision::NoRule);
    /// # Ok::<(), mtls::AccessError>(())
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
    /// use mtls::{Access, AccessRule, Decision, Roles};
    /// use http::Method;
    ///
    /// let roles = Roles::new().role("reader", ["spiffe://example.org/ns/prod/*"])?;
    /// let rule = AccessRule::path("/stock").methods(["get"]).roles(["reader"]); // any case
    /// let access = Access::new(roles).rule(rule)?;
    /// assert!(matches!(access.decide(&Method::GET, "/stock", None), Decision::Denied(_)));
    /// assert_eq!(access.decide(&Method::DELETE, "/stock", None), Decision::NoRule);
    /// # Ok::<(), mtls::AccessError>(())
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
    /// use mtls::{Access, AccessRule, Decision, PeerIdentity, Roles};
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
/// use mtls::{Access, AccessRule, Roles};
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
/// # Ok::<(), mtls::AccessError>(())
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
/// use mtls::{Access, AccessRule, Decision, PeerIdentity, Roles};
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
    /// use mtls::Decision;
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
    /// use mtls::{Access, Decision, Roles};
    ///
    /// let roles = Roles::new().role("admin", ["spiffe://example.org/ns/ops/*"])?;
    /// let access = Access::new(roles);
    /// assert_eq!(access.decide(&http::Method::GET, "/", None), Decision::NoRule);
    /// # Ok::<(), mtls::AccessError>(())
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
    /// use mtls::{Access, AccessError, AccessRule, Decision, Roles};
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
    /// use mtls::{Access, AccessRule, Decision, PeerIdentity, Roles};
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

    fn decide_canonical(
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

impl<S> tower_layer::Layer<S> for Access {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            access: self.clone(),
        }
    }
}

/// The service [`Access`] wraps around an inner service.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mtls::{Access, AccessRule, AccessService, Roles};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let roles = Roles::new().role("admin", ["spiffe://example.org/ns/ops/*"])?;
/// let access = Access::new(roles).rule(AccessRule::path("/admin").roles(["admin"]))?;
/// let inner = service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
/// });
/// let service: AccessService<_> = access.layer(inner);
/// // No PeerIdentity in the request's extensions (the server puts it there): denied.
/// let resp = service.clone().oneshot(http::Request::get("/admin").body(())?).await?;
/// assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let oncall = ca.client("spiffe://example.org/ns/ops/sa/oncall")?.identity()?;
/// let mut req = http::Request::get("/admin").body(())?;
/// req.extensions_mut().insert(mtls::PeerIdentity::from_chain(oncall.chain())?);
/// assert_eq!(service.oneshot(req).await?.status(), http::StatusCode::OK);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    access: Access,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for AccessService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    /// The inner response, or the 403.
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = RequireIdentityFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let decision = match canonical(&mut req) {
            Ok(()) => {
                let peer = peer_of(req.extensions());
                self.access
                    .decide_canonical(req.method(), req.uri().path(), peer)
            }
            Err(e) => Decision::BadPath(e),
        };
        let (method, path) = (req.method(), req.uri().path());
        let Some(reason) = decision.refusal(method, path) else {
            return RequireIdentityFuture::allowed(self.inner.call(req));
        };
        let peer = peer_of(req.extensions());
        let identity = peer.map_or_else(|| "anonymous".to_owned(), ToString::to_string);
        tracing::warn!(
            peer.identity = %identity,
            method = %method,
            path = %path,
            reason = %reason,
            "request denied by access rules"
        );
        let refusal = match (&decision, peer) {
            (Decision::BadPath(_), _) => Refusal::BadPath,
            (_, Some(_)) => Refusal::Denied,
            (_, None) => Refusal::Anonymous,
        };
        let response = match refusal {
            Refusal::BadPath => refuse(req.headers(), refusal, &reason),
            _ => refuse(
                req.headers(),
                refusal,
                &format_args!("{identity}: {reason}"),
            ),
        };
        RequireIdentityFuture::denied(response)
    }
}

/// Replaces the request's path with its canonical form (the query is kept).
fn canonical<B>(req: &mut Request<B>) -> Result<(), PathError> {
    let canonical = match canonical_path(req.uri().path())? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(path) => path,
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| PathError::BadEscape)?);
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| PathError::BadEscape)?;
    Ok(())
}
