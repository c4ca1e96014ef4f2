//! The canonical form of a request path, which access rules match and the inner service
//! receives: one spelling per resource, so that no spelling of a protected path can miss
//! its rule and fall into a broader one.
//!
//! As RFC 3986 section 6.2.2 normalises a URI and Envoy's path normalisation does: percent-
//! escaped unreserved characters are decoded (`%72` is `r`), other escapes keep their bytes
//! with upper-case hex, `.` and `..` segments are resolved, and runs of `/` are merged. What
//! could mean two things to the services behind us is refused instead: an escaped `/` or `\`,
//! a raw `\`, a malformed escape, and a `..` that would climb above the root.

use std::borrow::Cow;

/// Why a request path has no canonical form (the request is answered 400).
///
/// # Examples
///
/// ```
/// use mtls::{policy::PathError, policy::canonical_path};
///
/// assert_eq!(canonical_path("/stock%2Freserved"), Err(PathError::EncodedSeparator));
/// assert_eq!(canonical_path("/../etc"), Err(PathError::AboveRoot));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is not absolute (`*`, or empty).
    #[error("the request path does not start with `/`")]
    NotAbsolute,
    /// An escaped `/` or `\` (`%2F`, `%5C`), or a raw `\`: separators some services split on
    /// and others do not.
    #[error("the request path holds an escaped `/` or `\\`, or a `\\`")]
    EncodedSeparator,
    /// A `%` not followed by two hex digits.
    #[error("the request path holds a malformed percent escape")]
    BadEscape,
    /// A `..` segment above the root.
    #[error("the request path climbs above the root with `..`")]
    AboveRoot,
}

/// The canonical form of `path` (the path of a request's URI, without its query): borrowed
/// when `path` is canonical already.
///
/// # Errors
///
/// A [`PathError`] when the path cannot be canonicalised safely.
///
/// # Examples
///
/// ```
/// use mtls::policy::canonical_path;
///
/// for spelling in ["/stock/reserved", "/stock//reserved", "/stock/./reserved",
///                  "/stock/x/../reserved", "/stock/%72eserved", "/%73tock/reserved"] {
///     assert_eq!(canonical_path(spelling).unwrap(), "/stock/reserved");
/// }
/// assert_eq!(canonical_path("/a%2a/").unwrap(), "/a%2A/"); // not unreserved: kept, upper-case
/// # Ok::<(), mtls::policy::PathError>(())
/// ```
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(path.as_bytes())? {
        return Ok(Cow::Borrowed(path));
    }
    let mut segments: Vec<String> = Vec::new();
    let raw: Vec<&str> = path[1..].split('/').collect();
    let last = raw.len() - 1;
    let mut trailing_slash = false;
    for (i, segment) in raw.into_iter().enumerate() {
        let segment = decode_segment(segment)?;
        match segment.as_str() {
            "" => trailing_slash = i == last,
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = i == last;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut canonical = String::with_capacity(path.len());
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        canonical.push('/');
    }
    Ok(Cow::Owned(canonical))
}

/// Whether `path` (absolute) is canonical already: the common case, checked without
/// allocating. Refuses what can never be canonicalised.
fn is_canonical(path: &[u8]) -> Result<bool, PathError> {
    let mut canonical = true;
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'\\' => return Err(PathError::EncodedSeparator),
            b'%' => {
                let byte = escaped(path, i)?;
                if matches!(byte, b'/' | b'\\') {
                    return Err(PathError::EncodedSeparator);
                }
                // Unreserved characters are decoded, and other escapes use upper-case hex.
                if is_unreserved(byte) || path[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
                    canonical = false;
                }
                i += 3;
                continue;
            }
            b'/' => {
                let rest = &path[i + 1..];
                let segment = &rest[..rest.iter().position(|&b| b == b'/').unwrap_or(rest.len())];
                if (segment.is_empty() && i + 1 < path.len()) || segment == b"." || segment == b".."
                {
                    canonical = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(canonical)
}

/// The byte escaped at `path[at]` (a `%`).
fn escaped(path: &[u8], at: usize) -> Result<u8, PathError> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    match (
        path.get(at + 1).and_then(|&b| hex(b)),
        path.get(at + 2).and_then(|&b| hex(b)),
    ) {
        (Some(high), Some(low)) => Ok(high << 4 | low),
        _ => Err(PathError::BadEscape),
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// One segment with its unreserved escapes decoded and the others in upper-case hex.
fn decode_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = escaped(bytes, i)?;
            if is_unreserved(byte) {
                out.push(byte as char);
            } else {
                out.push('%');
                out.push_str(&segment[i + 1..i + 3].to_ascii_uppercase());
            }
            i += 3;
        } else {
            // The path of an `http::Uri` is ASCII, so a byte is a character.
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/stock",
            "/stock/",
            "/stock/reserved",
            "/a%20b",
            "/a%2A",
            "/.well-known/x",
        ] {
            assert!(
                matches!(canonical_path(path), Ok(Cow::Borrowed(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn spellings_of_one_path_meet() {
        let cases = [
            ("//", "/"),
            ("/.", "/"),
            ("/./", "/"),
            ("/a/..", "/"),
            ("/a/../", "/"),
            ("/stock/.", "/stock/"),
            ("/stock//", "/stock/"),
            ("/stock/x/..", "/stock/"),
            ("/stock/%2e%2e/x", "/x"),
            ("/stock/%2E/reserved", "/stock/reserved"),
            ("///stock///reserved", "/stock/reserved"),
            ("/stock/reserved%7e", "/stock/reserved~"),
            ("/a%2a", "/a%2A"),
            ("/%41%42", "/AB"),
        ];
        for (path, want) in cases {
            assert_eq!(canonical_path(path).unwrap(), want, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("/stock%2Freserved", PathError::EncodedSeparator),
            ("/stock%2freserved", PathError::EncodedSeparator),
            ("/stock%5Creserved", PathError::EncodedSeparator),
            ("/stock\\reserved", PathError::EncodedSeparator),
            ("/..", PathError::AboveRoot),
            ("/a/../..", PathError::AboveRoot),
            ("/%2e%2e/etc", PathError::AboveRoot),
            ("/a%", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (path, want) in cases {
            assert_eq!(canonical_path(path), Err(want), "{path}");
        }
    }
}
