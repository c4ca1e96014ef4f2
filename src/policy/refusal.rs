//! Refusals: how [`RequireIdentity`](crate::RequireIdentity), [`Access`](crate::Access),
//! [`Denied`](crate::Denied) and the axum extractor answer a request they turn away, in one
//! form for each kind of caller.
//!
//! An HTTP caller gets the HTTP status and a plain-text body `{label}: {reason}`. A gRPC caller
//! (`content-type: application/grpc` or `application/grpc+…`) cannot read an HTTP error
//! (tonic reports a protocol error, without the reason), so it gets a gRPC status as a
//! *trailers-only* response:
//! HTTP 200, `content-type: application/grpc`, `grpc-status`, the reason percent-encoded in
//! `grpc-message` (gRPC over HTTP/2, "Responses"), and an empty body that ends the stream.
//!
//! | refusal | HTTP | gRPC |
//! |---|---|---|
//! | an identity the policy or rule does not admit | 403 | 7 `PERMISSION_DENIED` |
//! | no identity, refused by a policy or rule | 403 | 16 `UNAUTHENTICATED` |
//! | no identity where a handler needs one | 401 | 16 `UNAUTHENTICATED` |
//! | a path with no canonical form | 400 | 3 `INVALID_ARGUMENT` |
//!
//! [`Denied::into_response`](crate::Denied::into_response) and the axum extractor's rejection
//! (`MissingIdentity`, feature `axum`) do not see the request, so they give the HTTP
//! form; the layers see it and choose.

use std::fmt::{self, Write as _};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::error::Denied;

/// Why a request is turned away, which fixes its HTTP status and its gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The caller's identity is not admitted by the policy or rule.
    Denied,
    /// The caller presented no identity, and the policy or rule admits none.
    Anonymous,
    /// The caller presented no identity, and the handler needs one (the axum extractor).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    MissingIdentity,
    /// The request path has no canonical form ([`canonical_path`](crate::policy::canonical_path)).
    /// A gRPC method path (`/package.Service/Method`) is always canonical, so only a hand-made
    /// request gets here: it is malformed, and retrying it cannot succeed.
    BadPath,
}

impl Refusal {
    fn http_status(self) -> StatusCode {
        match self {
            Refusal::Denied | Refusal::Anonymous => StatusCode::FORBIDDEN,
            Refusal::MissingIdentity => StatusCode::UNAUTHORIZED,
            Refusal::BadPath => StatusCode::BAD_REQUEST,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Refusal::Denied | Refusal::Anonymous => "forbidden",
            Refusal::MissingIdentity => "unauthorized",
            Refusal::BadPath => "bad request",
        }
    }

    /// The gRPC status code, as the decimal `grpc-status` carries it.
    fn grpc_status(self) -> &'static str {
        match self {
            Refusal::Denied => "7",
            Refusal::Anonymous | Refusal::MissingIdentity => "16",
            Refusal::BadPath => "3",
        }
    }
}

/// The refusal of a request with these headers: a gRPC status for a gRPC request, the HTTP
/// status with a plain-text reason otherwise.
pub(crate) fn refuse(
    request: &HeaderMap,
    refusal: Refusal,
    reason: &dyn fmt::Display,
) -> Response<Full<Bytes>> {
    if is_grpc(request) {
        grpc(refusal, reason)
    } else {
        text(refusal, reason)
    }
}

/// The HTTP form of a refusal: its status, and `{label}: {reason}` as plain text.
pub(crate) fn text(refusal: Refusal, reason: &dyn fmt::Display) -> Response<Full<Bytes>> {
    let body = format!("{}: {reason}\n", refusal.label());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = refusal.http_status();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The gRPC form of a refusal: a trailers-only response (status 200, the gRPC status in the
/// headers, an empty body).
fn grpc(refusal: Refusal, reason: &dyn fmt::Display) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from_static(refusal.grpc_status()),
    );
    // Percent-encoding leaves only visible ASCII and spaces, which a header value always
    // holds; were it ever refused, the status alone still refuses.
    if let Ok(message) = HeaderValue::try_from(percent_encode(&reason.to_string())) {
        headers.insert(HeaderName::from_static("grpc-message"), message);
    }
    resp
}

/// Whether the request is gRPC: `content-type` is `application/grpc`, optionally followed by
/// `+` and a message format (`application/grpc+proto`) or by parameters. gRPC-Web
/// (`application/grpc-web`) is not: its clients expect their own content type.
fn is_grpc(request: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let Some(value) = request.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    value
        .get(..GRPC.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC))
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// `grpc-message` encoding: every byte outside `0x20..=0x7E`, and `%` itself, as `%XX`
/// (upper-case hex); the rest as it is.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

impl Denied {
    /// A `403 Forbidden` response with a short plain-text reason. It does not see the request,
    /// so it is the HTTP answer; [`RequireIdentity`](crate::RequireIdentity) answers a gRPC
    /// caller with `PERMISSION_DENIED` or `UNAUTHENTICATED` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let denied = mtls::Authorizer::any_verified().check(None).unwrap_err();
    /// let resp = denied.into_response();
    /// assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    /// ```
    pub fn into_response(self) -> Response<Full<Bytes>> {
        text(Refusal::Denied, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn grpc_content_types_are_told_apart() {
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&content_type(grpc)), "{grpc}");
        }
        for other in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
            "text/plain",
            "application/grp",
            "",
        ] {
            assert!(!is_grpc(&content_type(other)), "{other}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("peer a: no"), "peer a: no");
        assert_eq!(percent_encode("100% ok\n"), "100%25 ok%0A");
        assert_eq!(percent_encode("é~"), "%C3%A9~");
        assert_eq!(percent_encode("\u{7f}"), "%7F");
    }

    #[test]
    fn a_grpc_refusal_is_trailers_only() {
        let resp = refuse(
            &content_type("application/grpc"),
            Refusal::Denied,
            &"nope %",
        );
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "7");
        assert_eq!(resp.headers()["grpc-message"], "nope %25");
        assert!(hyper::body::Body::is_end_stream(resp.body()));
        for (refusal, status) in [
            (Refusal::Anonymous, "16"),
            (Refusal::MissingIdentity, "16"),
            (Refusal::BadPath, "3"),
        ] {
            let resp = refuse(&content_type("application/grpc+proto"), refusal, &"x");
            assert_eq!(resp.headers()["grpc-status"], status, "{refusal:?}");
        }
    }

    #[test]
    fn an_http_refusal_is_plain_text() {
        for (refusal, status, body) in [
            (Refusal::Denied, 403, "forbidden: why\n"),
            (Refusal::Anonymous, 403, "forbidden: why\n"),
            (Refusal::MissingIdentity, 401, "unauthorized: why\n"),
            (Refusal::BadPath, 400, "bad request: why\n"),
        ] {
            let resp = refuse(&content_type("application/json"), refusal, &"why");
            assert_eq!(resp.status(), status);
            assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
            assert!(resp.headers().get("grpc-status").is_none());
            assert_eq!(body_text(resp.into_body()), body);
        }
    }

    /// The bytes of a `Full` body, which is ready at once.
    fn body_text(body: Full<Bytes>) -> String {
        use hyper::body::Body as _;
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match body.as_mut().poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                String::from_utf8(frame.into_data().unwrap_or_default().to_vec()).unwrap()
            }
            _ => String::new(),
        }
    }
}
