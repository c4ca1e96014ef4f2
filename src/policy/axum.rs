//! axum integration (feature `axum`): [`PeerIdentity`] is an extractor, and [`Denied`] a
//! response.
//!
//! ```
//! async fn stock(peer: mtls::PeerIdentity) -> String {
//!     format!("hello {peer}")
//! }
//! # let app: axum::Router = axum::Router::new().route("/stock", axum::routing::get(stock));
//! ```
//!
//! The extractor finds the identity [`Server`](crate::Server) puts into each request, or, for a
//! router served by tonic's `serve_with_incoming(server.incoming())` (feature `tonic`), the one
//! in the request's `VerifiedConnectInfo`. A handler that takes `PeerIdentity` answers
//! `401 Unauthorized` ([`MissingIdentity`]) when the request carries none (a server in
//! optional client-auth mode, or a router served by something else). `Option<PeerIdentity>`
//! never rejects.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::error::Denied;
use crate::peer::PeerIdentity;
use crate::peer::request::peer_of;
use crate::policy::refusal::{self, Refusal};

/// The rejection of the [`PeerIdentity`] extractor: the request carries no verified client
/// identity. It answers `401 Unauthorized` with a one-line reason.
///
/// # Examples
///
/// ```
/// use axum::response::IntoResponse;
///
/// let resp = mtls::policy::MissingIdentity.into_response();
/// assert_eq!(resp.status(), 401);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no verified client certificate on this request: serve the router with mtls::Server, \
     whose default requires one"
)]
pub struct MissingIdentity;

impl IntoResponse for MissingIdentity {
    fn into_response(self) -> Response {
        refusal::text(Refusal::MissingIdentity, &self).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerIdentity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, MissingIdentity> {
        peer_of(&parts.extensions).cloned().ok_or(MissingIdentity)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for PeerIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(peer_of(&parts.extensions).cloned())
    }
}

/// `403 Forbidden` with the short reason, so a handler can `return Err(denied)` or use `?`
/// on [`Authorizer::check`](crate::Authorizer::check).
impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        Denied::into_response(self).into_response()
    }
}
