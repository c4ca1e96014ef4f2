//! Errors: loading material ([`LoadError`]), building and running ([`Error`]), calling out
//! ([`ClientError`](crate::ClientError)), and why a handshake failed ([`HandshakeFailure`]).
//!
//! Here: [`Error`], [`Origin`], the policy errors ([`PolicyError`], [`Denied`],
//! [`ServerNotAllowed`]); [`LoadError`] in `load`; [`HandshakeFailure`] and its classification
//! of rustls errors, alerts and I/O errors in `failure`. `error` may import `util` and
//! `spiffe`, nothing above them.

mod failure;
mod load;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use failure::{HandshakeFailure, alert_name};
pub(crate) use failure::{is_certificate_alert, rejection_hint};
pub use load::LoadError;

use crate::spiffe::SpiffeIdError;

/// Where a piece of material came from, so that an error can point at it.
///
/// # Examples
///
/// ```
/// use mtls::{LoadError, error::Origin};
///
/// assert_eq!(Origin::File("certs/ca.pem".into()).to_string(), "`certs/ca.pem`");
/// let err = mtls::TrustBundle::from_pem(b"").unwrap_err();
/// assert!(matches!(err, LoadError::EmptyTrustBundle { origin: Origin::Memory(_) }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// Bytes handed over in memory; the label says what they were meant to be.
    Memory(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "`{}`", path.display()),
            Origin::Memory(label) => write!(f, "the in-memory {label}"),
        }
    }
}

/// An error building or running a [`Server`](crate::Server) or [`Client`](crate::Client).
///
/// # Examples
///
/// ```
/// let err = mtls::Client::builder().build().unwrap_err();
/// assert!(matches!(err, mtls::Error::MissingIdentity));
/// assert!(err.to_string().starts_with("no identity configured"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Certificates, key or CAs could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The builder was not given our own certificate and key.
    #[error(
        "no identity configured; call `.identity(Identity::from_pem_files(cert, key)?)` or `.identity_files(cert, key)` on the builder"
    )]
    MissingIdentity,
    /// The builder was not given the CAs to verify peers against.
    #[error(
        "no trust bundle configured; call `.trust(TrustBundle::from_pem_file(ca)?)` or `.trust_file(ca)` on the builder, since mutual TLS verifies every peer against the CAs you trust"
    )]
    MissingTrust,
    /// A client whose bundles are all bound to trust domains was given no `expect_server`.
    #[error(
        "every trust bundle is bound to a SPIFFE trust domain, so servers cannot be verified by host name; call `.expect_server(Authorizer::spiffe_id(...)?)` on the client builder, or add a bundle not bound to a trust domain"
    )]
    NeedsExpectServer,
    /// The server builder was not given a policy.
    #[error(
        "no authorization policy configured; call `.authorize(...)` on the builder, for example `.authorize(Authorizer::any_verified())` to admit every client whose certificate chains to your CAs, or `Authorizer::trust_domain(\"example.org\")?` for a narrower policy"
    )]
    MissingPolicy,
    /// A policy could not be built.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A new certificate is not valid at this moment (rotation refuses it).
    #[error("the certificate `{subject}` is not valid now (valid from {} to {}); keeping the current one until a valid certificate arrives", crate::util::time::humantime(*not_before), crate::util::time::humantime(*not_after))]
    NotValidNow {
        /// Subject of the refused leaf.
        subject: String,
        /// Its start of validity.
        not_before: std::time::SystemTime,
        /// Its end of validity.
        not_after: std::time::SystemTime,
    },
    /// Our new certificate (or the current one, with a new trust bundle) does not chain to the
    /// trust bundle, although the current one did.
    #[error(
        "the certificate `{subject}` does not chain to the trust bundle, although the current one does; keeping the current material (during a CA rotation, add the new CA to the bundle before issuing from it, and remove the old CA last)"
    )]
    DoesNotChain {
        /// Subject of the refused leaf.
        subject: String,
    },
    /// The listening socket could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; check that the address is local and the port is free"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A PEM directory could not be written.
    #[error(
        "cannot write the PEM directory `{}`: {source}; check that the directory is writable \
         by this process",
        path.display()
    )]
    PemDirectory {
        /// The file or directory that could not be written.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls refused to build a certificate verifier from the trust bundle.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Why a policy could not be built.
///
/// # Examples
///
/// ```
/// use mtls::{Authorizer, PolicyError};
///
/// let err = Authorizer::spiffe_id("spiffe://example.org").unwrap_err();
/// assert!(matches!(err, PolicyError::MissingPath(_)));
/// assert!(matches!(Authorizer::any_of(Vec::new()), Err(PolicyError::Empty(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A SPIFFE ID in the policy is invalid.
    #[error("invalid SPIFFE ID in policy: {0}")]
    SpiffeId(#[from] SpiffeIdError),
    /// A workload SPIFFE ID was expected but the ID has no path.
    #[error(
        "`{0}` is a trust domain ID, not a workload ID; add the workload path (spiffe://domain/path), or use `Authorizer::trust_domain`"
    )]
    MissingPath(String),
    /// The trust domain name is invalid.
    #[error(
        "`{0}` is not a valid trust domain; use lower-case letters, digits, `.`, `-` and `_`, without `spiffe://`"
    )]
    TrustDomain(String),
    /// The DNS name or pattern is invalid.
    #[error(
        "`{0}` is not a valid DNS name pattern; use `host.example.org` or `*.example.org` (one wildcard label, leftmost, followed by at least two labels)"
    )]
    DnsName(String),
    /// An empty name, list or combinator.
    #[error("{0} needs at least one entry; an empty policy would deny everyone silently")]
    Empty(&'static str),
    /// An identity pattern in none of the known forms.
    #[error(
        "`{0}` is not an identity pattern; use `spiffe://domain/path` (exact), \
         `spiffe://domain/path/*` (path prefix), `spiffe://domain` (trust domain), `dns:NAME` \
         or `cn:NAME`"
    )]
    Pattern(String),
}

/// Why a peer was denied: the policy and the identity it was checked against.
///
/// # Examples
///
/// ```
/// let policy = mtls::Authorizer::spiffe_id("spiffe://example.org/admin")?;
/// let denied = policy.check(None).unwrap_err();
/// assert_eq!(denied.presented, "anonymous");
/// assert_eq!(denied.policy, "spiffe_id(spiffe://example.org/admin)");
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("peer {presented} is not allowed by policy {policy}")]
pub struct Denied {
    /// The policy that denied, in its `Display` form.
    pub policy: String,
    /// The peer's identity (SPIFFE ID, else subject), or `anonymous`.
    pub presented: String,
}

/// The server's certificate is valid but not the identity we expected.
///
/// # Examples
///
/// ```
/// let policy = mtls::Authorizer::spiffe_id("spiffe://example.org/inventory")?;
/// let err = mtls::verify::ServerNotAllowed(policy.check(None).unwrap_err());
/// assert_eq!(
///     err.to_string(),
///     "server anonymous is not the expected identity spiffe_id(spiffe://example.org/inventory)"
/// );
/// # Ok::<(), mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("server {} is not the expected identity {}", .0.presented, .0.policy)]
pub struct ServerNotAllowed(pub Denied);
