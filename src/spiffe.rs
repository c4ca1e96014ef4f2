//! SPIFFE IDs (`spiffe://trust-domain/path`) and trust domain names, validated per the SPIFFE
//! ID specification. A leaf: material binds bundles to trust domains, policy matches IDs and
//! domains, and the peer's identity carries its ID, all with these types.

use std::fmt;
use std::str::FromStr;

/// A SPIFFE ID, `spiffe://trust-domain/path`, validated per the SPIFFE ID specification.
///
/// # Examples
///
/// ```
/// let id: mtls::SpiffeId = "spiffe://example.org/ns/prod/sa/orders".parse()?;
/// assert_eq!(id.trust_domain(), "example.org");
/// assert_eq!(id.path(), "/ns/prod/sa/orders");
/// assert!("spiffe://Example.org/x".parse::<mtls::SpiffeId>().is_err());
/// # Ok::<(), mtls::spiffe::SpiffeIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    path_start: usize,
}

/// Why a string is not a valid SPIFFE ID.
///
/// # Examples
///
/// ```
/// let err = "spiffe://example.org/a?x=1".parse::<mtls::SpiffeId>().unwrap_err();
/// assert!(matches!(err, mtls::spiffe::SpiffeIdError::BadPathChar { ch: '?', .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// It does not start with `spiffe://`.
    #[error("`{0}` is not a SPIFFE ID: it must start with `spiffe://` (lower case)")]
    WrongScheme(String),
    /// The trust domain is empty.
    #[error("`{0}` has an empty trust domain; expected `spiffe://trust-domain/path`")]
    EmptyTrustDomain(String),
    /// The trust domain holds a character other than `a-z 0-9 . - _`.
    #[error(
        "`{id}` has a trust domain with the character {ch:?}; trust domains allow only lower-case letters, digits, `.`, `-` and `_` (no ports, no user info)"
    )]
    BadTrustDomainChar {
        /// The whole input.
        id: String,
        /// The offending character.
        ch: char,
    },
    /// The path has an empty segment (`//`) or ends with `/`.
    #[error("`{0}` has an empty path segment or a trailing `/`")]
    EmptySegment(String),
    /// The path has a `.` or `..` segment.
    #[error("`{0}` has a `.` or `..` path segment")]
    DotSegment(String),
    /// The path holds a character other than `a-z A-Z 0-9 . - _`.
    #[error(
        "`{id}` has the character {ch:?} in its path; paths allow only letters, digits, `.`, `-` and `_` (no query or fragment)"
    )]
    BadPathChar {
        /// The whole input.
        id: String,
        /// The offending character.
        ch: char,
    },
    /// Longer than 2048 bytes.
    #[error("SPIFFE ID is longer than 2048 bytes")]
    TooLong,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    ///
    /// # Errors
    ///
    /// A [`SpiffeIdError`] naming the rule the input breaks.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mtls::SpiffeId::parse("spiffe://example.org/ns/prod/sa/orders")?;
    /// assert_eq!(id.path(), "/ns/prod/sa/orders");
    /// assert!(mtls::SpiffeId::parse("https://example.org/orders").is_err());
    /// # Ok::<(), mtls::spiffe::SpiffeIdError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        const SCHEME: &str = "spiffe://";
        if input.len() > 2048 {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or_else(|| SpiffeIdError::WrongScheme(input.to_owned()))?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        if td.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain(input.to_owned()));
        }
        if let Some(ch) = td
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(*c)))
        {
            return Err(SpiffeIdError::BadTrustDomainChar {
                id: input.to_owned(),
                ch,
            });
        }
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                if segment.is_empty() {
                    return Err(SpiffeIdError::EmptySegment(input.to_owned()));
                }
                if segment == "." || segment == ".." {
                    return Err(SpiffeIdError::DotSegment(input.to_owned()));
                }
                if let Some(ch) = segment
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c)))
                {
                    return Err(SpiffeIdError::BadPathChar {
                        id: input.to_owned(),
                        ch,
                    });
                }
            }
        }
        Ok(SpiffeId {
            id: input.to_owned(),
            path_start: SCHEME.len() + td_len,
        })
    }

    /// The trust domain, e.g. `example.org`.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mtls::SpiffeId::parse("spiffe://example.org/orders")?;
    /// assert_eq!(id.trust_domain(), "example.org");
    /// # Ok::<(), mtls::spiffe::SpiffeIdError>(())
    /// ```
    pub fn trust_domain(&self) -> &str {
        &self.id["spiffe://".len()..self.path_start]
    }

    /// The path, e.g. `/ns/prod/sa/orders`; empty for a trust domain's own ID.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mtls::SpiffeId::parse("spiffe://example.org/orders")?;
    /// assert_eq!(id.path(), "/orders");
    /// assert_eq!(mtls::SpiffeId::parse("spiffe://example.org")?.path(), "");
    /// # Ok::<(), mtls::spiffe::SpiffeIdError>(())
    /// ```
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// The whole ID.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mtls::SpiffeId::parse("spiffe://example.org/orders")?;
    /// assert_eq!(id.as_str(), "spiffe://example.org/orders");
    /// # Ok::<(), mtls::spiffe::SpiffeIdError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

/// Whether `name` is a valid trust domain name (`example.org`: lower-case letters, digits,
/// `.`, `-` and `_`, without `spiffe://`, a port or a path).
pub(crate) fn is_trust_domain(name: &str) -> bool {
    SpiffeId::parse(&format!("spiffe://{name}")).is_ok_and(|id| id.path().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_spiffe_ids_parse() {
        let id = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "");
        let id = SpiffeId::parse("spiffe://td-1_x.y/a/B.c-d_e").unwrap();
        assert_eq!(id.path(), "/a/B.c-d_e");
    }

    type Check = fn(&SpiffeIdError) -> bool;

    #[test]
    fn invalid_spiffe_ids_are_refused_with_the_rule() {
        let cases: &[(&str, Check)] = &[
            ("http://example.org/a", |e| {
                matches!(e, SpiffeIdError::WrongScheme(_))
            }),
            ("SPIFFE://example.org/a", |e| {
                matches!(e, SpiffeIdError::WrongScheme(_))
            }),
            ("spiffe:///a", |e| {
                matches!(e, SpiffeIdError::EmptyTrustDomain(_))
            }),
            ("spiffe://Example.org/a", |e| {
                matches!(e, SpiffeIdError::BadTrustDomainChar { ch: 'E', .. })
            }),
            ("spiffe://example.org:443/a", |e| {
                matches!(e, SpiffeIdError::BadTrustDomainChar { ch: ':', .. })
            }),
            ("spiffe://example.org/a/", |e| {
                matches!(e, SpiffeIdError::EmptySegment(_))
            }),
            ("spiffe://example.org//a", |e| {
                matches!(e, SpiffeIdError::EmptySegment(_))
            }),
            ("spiffe://example.org/a/../b", |e| {
                matches!(e, SpiffeIdError::DotSegment(_))
            }),
            ("spiffe://example.org/a?x=1", |e| {
                matches!(e, SpiffeIdError::BadPathChar { ch: '?', .. })
            }),
            ("spiffe://example.org/a#f", |e| {
                matches!(e, SpiffeIdError::BadPathChar { ch: '#', .. })
            }),
        ];
        for (input, check) in cases {
            let err = SpiffeId::parse(input).expect_err(input);
            assert!(check(&err), "{input}: {err:?}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2048));
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeIdError::TooLong));
    }

    #[test]
    fn trust_domain_names_are_checked_as_in_a_spiffe_id() {
        assert!(is_trust_domain("example.org"));
        for bad in [
            "",
            "Example.org",
            "spiffe://example.org",
            "example.org/x",
            "example.org:443",
        ] {
            assert!(!is_trust_domain(bad), "{bad}");
        }
    }
}
