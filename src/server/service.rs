//! What [`Server::serve`](crate::Server::serve) accepts: a hyper [`Service`] (such as
//! [`hyper::service::service_fn`]) or a tower [`Service`](tower_service::Service) (such as an
//! axum `Router` or tonic's `Routes`), with no wrapper to write.
//!
//! [`Service`]: hyper::service::Service

use std::marker::PhantomData;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::service::TowerToHyperService;

use crate::server::connection::BoxError;

/// A service [`Server::serve`](crate::Server::serve) can run: implemented for every hyper
/// service and every tower service of `Request<Incoming>` that is `Clone + Send + Sync`.
///
/// You never implement or name this trait; `Marker` only tells the two kinds apart (a type that
/// is both a hyper and a tower service would need it spelled out, and none in the ecosystem
/// is).
///
/// # Examples
///
/// ```no_run
/// # async fn run(hyper_server: mtls::Server, tower_server: mtls::Server) -> Result<(), mtls::Error> {
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use hyper::{Request, Response, body::{Bytes, Incoming}};
///
/// // A hyper service...
/// hyper_server.serve(hyper::service::service_fn(|_req: Request<Incoming>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hi"))))
/// })).await?;
///
/// // ...or any tower service (an axum Router, tonic's Routes, a tower stack).
/// #[derive(Clone)]
/// struct Hello;
/// impl tower_service::Service<Request<Incoming>> for Hello {
///     type Response = Response<Full<Bytes>>;
///     type Error = Infallible;
///     type Future = std::future::Ready<Result<Self::Response, Infallible>>;
///     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
///         std::task::Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _req: Request<Incoming>) -> Self::Future {
///         std::future::ready(Ok(Response::new(Full::new(Bytes::from("hi")))))
///     }
/// }
/// tower_server.serve(Hello).await?;
/// # Ok(()) }
/// ```
pub trait HttpService<Marker> {
    /// The hyper service each connection runs.
    type Service: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Self::Body>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + Sync
        + 'static;
    /// The response body.
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;

    /// Turns the value into the hyper service each connection runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::server::HttpService;
    ///
    /// let tower_service = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hi"))))
    /// });
    /// let hyper_service = tower_service.into_hyper_service(); // what each connection runs
    /// fn is_hyper<S: hyper::service::Service<http::Request<hyper::body::Incoming>>>(_: &S) {}
    /// is_hyper(&hyper_service);
    /// ```
    fn into_hyper_service(self) -> Self::Service;
}

/// Marks [`HttpService`] for hyper services.
///
/// # Examples
///
/// ```
/// fn runs_as_hyper<S: mtls::server::HttpService<mtls::server::Hyper<B>>, B>(_: &S) {}
///
/// let service = hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hi"))))
/// });
/// runs_as_hyper(&service);
/// ```
#[derive(Debug)]
pub struct Hyper<B>(PhantomData<fn() -> B>);

/// Marks [`HttpService`] for tower services.
///
/// # Examples
///
/// ```
/// fn runs_as_tower<S: mtls::server::HttpService<mtls::server::Tower<B>>, B>(_: &S) {}
///
/// let service = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("hi"))))
/// });
/// runs_as_tower(&service);
/// ```
#[derive(Debug)]
pub struct Tower<B>(PhantomData<fn() -> B>);

impl<S, B> HttpService<Hyper<B>> for S
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Service = S;
    type Body = B;

    fn into_hyper_service(self) -> S {
        self
    }
}

impl<S, B> HttpService<Tower<B>> for S
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Service = TowerToHyperService<S>;
    type Body = B;

    fn into_hyper_service(self) -> TowerToHyperService<S> {
        // Each request clones the service and drives `poll_ready` then `call`, as tower asks.
        TowerToHyperService::new(self)
    }
}
