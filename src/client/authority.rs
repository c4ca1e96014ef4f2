//! Where a connection goes: the `https` URI a call accepts, its host and port, and the key
//! under which a connection's failure is recorded.

use http::Uri;

use crate::client::error::ClientError;

/// The host (without the brackets `Uri::host` keeps around an IPv6 literal) and port (443
/// by default) a connection to `uri` goes to.
pub(crate) fn host_port(uri: &Uri) -> (&str, u16) {
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, uri.port_u16().unwrap_or(443))
}

/// `host:port`: how errors name where a connection went.
pub(crate) fn authority_of(uri: &Uri) -> String {
    let (host, port) = host_port(uri);
    format!("{host}:{port}")
}

/// A hash of the URI's authority as written (ignoring case, as the connection pool's key
/// does): the key under which a connection records its TLS failure for the connector, and a
/// failed request looks it up. A request only ever uses a connection made for its own
/// authority, so both sides hash the same text. Two authorities sharing a hash would at
/// worst let one's request report the other's recent alert, within the five seconds that
/// record lasts.
pub(crate) fn authority_key(uri: &Uri) -> u64 {
    // Every request computes this key, so it is FNV-1a over the lowercased bytes, not a
    // `Hasher` fed byte by byte as `Authority`'s `Hash` does (docs/PERFORMANCE.md, "Where the
    // time goes").
    let text = uri.authority().map_or("", |a| a.as_str());
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The URI a call accepts: absolute, `https`, with a host.
pub(crate) fn check_uri(uri: &Uri) -> Result<(), ClientError> {
    let invalid = |reason| ClientError::InvalidUri {
        uri: uri.to_string(),
        reason,
    };
    match uri.scheme_str() {
        Some("https") => {}
        Some(_) => return Err(invalid("mutual TLS needs an `https://` URL")),
        None => {
            return Err(invalid(
                "the URL must be absolute, like `https://host:port/path`",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_and_a_failed_request_name_the_same_authority() {
        for (uri, authority) in [
            ("https://[::1]/", "::1:443"),
            ("https://[::1]:8443/x", "::1:8443"),
            ("https://orders.internal/", "orders.internal:443"),
            ("https://127.0.0.1:9000/", "127.0.0.1:9000"),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(authority_of(&uri), authority);
            let (host, port) = host_port(&uri);
            assert_eq!(format!("{host}:{port}"), authority);
        }
        // The failure record's key: the same for one authority whatever the path or the case
        // (as the connection pool's key), different for another host or port.
        let key = |uri: &str| authority_key(&uri.parse().unwrap());
        assert_eq!(key("https://[::1]/"), key("https://[::1]/other?q=1"));
        assert_eq!(
            key("https://Orders.internal:9000/a"),
            key("https://orders.internal:9000/b")
        );
        assert_ne!(key("https://[::1]/"), key("https://[::1]:8443/"));
        assert_ne!(
            key("https://orders.internal/"),
            key("https://billing.internal/")
        );
        assert_ne!(
            key("https://127.0.0.1:9000/"),
            key("https://127.0.0.2:9000/")
        );
    }
}
