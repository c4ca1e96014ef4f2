//! Who may connect and what they may do: [`Authorizer`](crate::Authorizer) decides inside the
//! handshake; [`Roles`](crate::Roles) and [`Access`](crate::Access) map identities to roles and
//! requests to rules; [`RequireIdentity`](crate::RequireIdentity) narrows one route; the refusal
//! responses (403, gRPC status) live beside them, apart from the rule types.

pub(crate) mod authorizer;
#[cfg(feature = "axum")]
pub(crate) mod axum;
pub(crate) mod path;
pub(crate) mod refusal;
pub(crate) mod require;
pub(crate) mod roles;
