//! Who may connect and what they may do: [`Authorizer`] decides inside the
//! handshake (`authorizer`, with its pattern syntax and DNS name matching beneath it);
//! [`Roles`] and [`Access`] map identities to roles and requests to
//! rules (`roles`, with the rules and their tower service beneath it);
//! [`RequireIdentity`] narrows one route; request paths are made
//! canonical in `path`; the refusal responses (403, gRPC status) live beside them, apart from
//! the rule types.
//!
//! It may import the modules below it: `util`, `spiffe`, `error`, `material` and `peer`.

pub(crate) mod authorizer;
#[cfg(feature = "axum")]
pub(crate) mod axum;
pub(crate) mod path;
pub(crate) mod refusal;
pub(crate) mod require;
pub(crate) mod roles;

pub use authorizer::Authorizer;
#[cfg(feature = "axum")]
pub use axum::MissingIdentity;
pub use path::{PathError, canonical_path};
pub use require::{RequireIdentity, RequireIdentityFuture, RequireIdentityService};
pub use roles::{Access, AccessError, AccessRule, AccessService, Decision, Roles};
