//! [`Access`] as a tower layer: [`AccessService`] decides each request on its canonical path
//! and the caller's identity, and answers a refusal itself.

use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Bytes;

use super::{Access, Decision};
use crate::peer::request::peer_of;
use crate::policy::path::{PathError, canonical_path};
use crate::policy::refusal::{Refusal, refuse};
use crate::policy::require::RequireIdentityFuture;

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
/// use mtls::{Access, policy::AccessRule, policy::AccessService, Roles};
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
