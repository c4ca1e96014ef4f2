//! [`RequireIdentity`]: a tower layer that applies a narrower [`Authorizer`] to some routes,
//! answering `403 Forbidden` with a short reason, or a gRPC caller with a gRPC status.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Bytes;

use crate::peer::PeerIdentity;
use crate::peer::request::peer_of;
use crate::policy::authorizer::Authorizer;
use crate::policy::refusal::{Refusal, refuse};

/// A tower [`Layer`](tower_layer::Layer) that lets a request through only when the caller's
/// [`PeerIdentity`] is allowed by `policy`. The identity is the one [`Server`](crate::Server)
/// puts into each request, or, under tonic's `serve_with_incoming(server.incoming())`, the one
/// in the request's `VerifiedConnectInfo`. Others get `403 Forbidden` with a one-line reason
/// naming the policy, and a `tracing` warning with the caller, method, path and policy; the
/// inner service never sees them.
///
/// A gRPC caller (`content-type: application/grpc`, `application/grpc+proto`...) cannot read
/// an HTTP error, so it gets the same reason as a gRPC status instead: HTTP 200 with
/// `grpc-status` 7 (`PERMISSION_DENIED`), or 16 (`UNAUTHENTICATED`) when it presented no
/// identity, and the reason in `grpc-message`, with no body (a trailers-only response, which
/// tonic and other gRPC clients report as that status).
///
/// The server's own policy already ran in the handshake; this narrows it for a route (the
/// identity was parsed once per connection, so the check costs a policy match, nothing more).
/// A request without an identity is checked as anonymous, and only
/// [`Authorizer::anonymous`] admits it.
///
/// # Examples
///
/// With axum, on one route:
///
/// ```
/// use axum::{Router, routing::get};
/// use mtls::{Authorizer, RequireIdentity};
/// use tower::ServiceExt;
///
/// # async fn stock() -> &'static str { "stock" }
/// # async fn admin_page() -> &'static str { "admin" }
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let admin = RequireIdentity::new(Authorizer::spiffe_path_prefix("spiffe://example.org/ns/ops")?);
/// let app: Router = Router::new()
///     .route("/stock", get(stock))
///     .route("/admin", get(admin_page).route_layer(admin));
/// let req = http::Request::get("/admin").body(axum::body::Body::empty())?; // no identity
/// assert_eq!(app.oneshot(req).await?.status(), 403);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// For a gRPC caller, a gRPC status:
///
/// ```
/// use tower::{Layer, ServiceExt};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let inner = tower::service_fn(|_req: http::Request<()>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
/// # });
/// let guarded = mtls::RequireIdentity::new(mtls::Authorizer::any_verified()).layer(inner);
/// let req = http::Request::post("/inventory.Inventory/Stock")
///     .header("content-type", "application/grpc")
///     .body(())?; // no identity
/// let resp = guarded.oneshot(req).await?;
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.headers()["grpc-status"], "16"); // UNAUTHENTICATED
/// assert_eq!(
///     resp.headers()["grpc-message"],
///     "peer anonymous is not allowed by policy any_verified"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Around any tower or hyper-util service:
///
/// ```
/// use tower_layer::Layer;
/// use mtls::{Authorizer, RequireIdentity};
///
/// # fn wrap<S>(service: S) -> Result<(), mtls::PolicyError> {
/// let only_orders = RequireIdentity::new(Authorizer::spiffe_id("spiffe://example.org/orders")?);
/// let guarded = only_orders.layer(service);
/// # drop(guarded);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RequireIdentity {
    policy: Authorizer,
}

impl RequireIdentity {
    /// A layer that admits only callers `policy` allows.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let inner = tower::service_fn(|_req: http::Request<()>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
    /// # });
    /// let guarded = mtls::RequireIdentity::new(mtls::Authorizer::any_verified()).layer(inner);
    /// let resp = guarded.oneshot(http::Request::new(())).await?; // no identity: anonymous
    /// assert_eq!(resp.status(), 403);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(policy: Authorizer) -> Self {
        RequireIdentity { policy }
    }
}

impl<S> tower_layer::Layer<S> for RequireIdentity {
    type Service = RequireIdentityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireIdentityService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service [`RequireIdentity`] wraps around an inner service.
///
/// # Examples
///
/// ```
/// use tower::{Layer, ServiceExt};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let peer = mtls::PeerIdentity::from_chain(ca.client("spiffe://example.org/orders")?.identity()?.chain())?;
/// # let inner = tower::service_fn(|_req: http::Request<()>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
/// # });
/// let layer = mtls::RequireIdentity::new(mtls::Authorizer::trust_domain("example.org")?);
/// let service: mtls::policy::RequireIdentityService<_> = layer.layer(inner);
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(peer); // as Server does: spiffe://example.org/orders
/// assert_eq!(service.oneshot(req).await?.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequireIdentityService<S> {
    inner: S,
    policy: Authorizer,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RequireIdentityService<S>
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let peer = peer_of(req.extensions());
        match self.policy.check(peer) {
            Ok(()) => RequireIdentityFuture::allowed(self.inner.call(req)),
            Err(denied) => {
                tracing::warn!(
                    peer.identity = %denied.presented,
                    peer.serial = peer.map(PeerIdentity::serial).unwrap_or_default(),
                    method = %req.method(),
                    path = %req.uri().path(),
                    policy = %denied.policy,
                    "request denied by the route's identity policy"
                );
                let refusal = match peer {
                    Some(_) => Refusal::Denied,
                    None => Refusal::Anonymous,
                };
                RequireIdentityFuture::denied(refuse(req.headers(), refusal, &denied))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequireIdentityService`] and [`AccessService`](crate::policy::AccessService):
    /// the inner service's answer, or the 403.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::{Layer, Service, ServiceExt};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let inner = tower::service_fn(|_req: http::Request<()>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok"))))
    /// # });
    /// let mut service = mtls::RequireIdentity::new(mtls::Authorizer::any_verified()).layer(inner);
    /// let future: mtls::policy::RequireIdentityFuture<_> = service.ready().await?.call(http::Request::new(()));
    /// assert_eq!(future.await?.status(), 403);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct RequireIdentityFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = Projected]
    enum State<F> {
        Allowed { #[pin] inner: F },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> RequireIdentityFuture<F> {
    pub(crate) fn allowed(inner: F) -> Self {
        RequireIdentityFuture {
            state: State::Allowed { inner },
        }
    }

    pub(crate) fn denied(response: Response<Full<Bytes>>) -> Self {
        RequireIdentityFuture {
            state: State::Denied {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for RequireIdentityFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Projected::Allowed { inner } => {
                inner.poll(cx).map(|r| r.map(|resp| resp.map(Either::Left)))
            }
            Projected::Denied { response } => match response.take() {
                Some(resp) => Poll::Ready(Ok(resp.map(Either::Right))),
                // Polled again after completion: a caller bug, answered without panicking.
                None => Poll::Pending,
            },
        }
    }
}
