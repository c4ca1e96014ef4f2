//! # mtls: mutual TLS for Rust services
//!
//! A server that demands and verifies client certificates, a client that presents one, and the
//! verified peer's identity in every handler — on rustls, tokio-rustls and hyper 1.
//!
//! **Concepts**
//! - [`Identity`]: our certificate chain and private key (checked against each other on load).
//! - [`TrustBundle`]: the CAs peers must chain to, optionally bound to a SPIFFE trust domain,
//!   with their [`Crls`].
//! - [`Server`]: binds, requires a verified client certificate by default ([`ClientAuth`]),
//!   serves any hyper `Service` over HTTP/1.1 or HTTP/2 (by ALPN), within [`Limits`], and
//!   shuts down gracefully.
//! - [`Client`]: pooled HTTPS client presenting our identity and verifying the server by name
//!   or, with `expect_server`, by identity.
//! - [`PeerIdentity`]: the verified peer — subject, SANs, [`SpiffeId`], serial, validity,
//!   fingerprint, chain — in each request's (and response's) extensions, or once per
//!   connection with [`Server::serve_connections`] ([`ConnectionInfo`]).
//! - [`Authorizer`]: which verified peers are allowed — SPIFFE IDs, trust domains, path
//!   prefixes, DNS SANs, closures — enforced inside the handshake, failing closed.
//! - [`HandshakeFailure`]: why a handshake failed, in `tracing` events and [`ServerStats`].
//! - [`RequireIdentity`]: a tower layer that narrows the policy for one route (403 with the
//!   reason, or a gRPC status to a gRPC caller); [`Server::serve`] takes hyper and tower
//!   services alike ([`HttpService`]).
//! - [`Rotate`]: new certificates, keys, bundles and CRLs swapped in without a restart, from
//!   watched files or from code, validated first; [`CertificateStatus`] shows expiry coming.
//! - [`Health`]: our certificate's expiry, reload errors and recent rejections in one value,
//!   as JSON for a `/healthz` route.
//!
//! **Features**
//!
//! | feature    | default | what it does |
//! |------------|---------|--------------|
//! | `aws-lc-rs`| yes     | rustls crypto provider aws-lc-rs (wins when both are on) |
//! | `ring`     | no      | rustls crypto provider ring |
//! | `axum`     | no      | [`PeerIdentity`] as an axum extractor (401 without one), [`Denied`] as a 403 |
//! | `dev`      | no      | [`dev::DevCa`]: a throwaway CA for tests and local development |
//! | `tonic`    | no      | [`Server::incoming`] streams for tonic's `serve_with_incoming`, whose requests our layers and extractor read the caller from |
//! | `pkcs12`   | yes     | PKCS#12 keystores and truststores ([`Identity::from_pkcs12`], [`Password`]) |
//! | `config`   | yes     | [`Config`]: one TOML file with named bundles, server, clients, roles |
//!
//! The provider is passed explicitly to every rustls config; the process-wide default is never
//! used. See [`CRYPTO_PROVIDER`].
//!
//! **Example**
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::{Request, Response, body::{Bytes, Incoming}, service::service_fn};
//! use mtls::{Authorizer, PeerIdentity, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .identity_files("certs/inventory.pem", "certs/inventory.key")
//!     .trust_file("certs/ca.pem")
//!     .authorize(Authorizer::trust_domain("example.org")?)
//!     .bind("127.0.0.1:8443")
//!     .await?;
//! server.serve(service_fn(|req: Request<Incoming>| async move {
//!     let peer = req.extensions().get::<PeerIdentity>().expect("client auth is required");
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("hello {peer}")))))
//! })).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
#[cfg(feature = "config")]
mod config;
#[cfg(feature = "dev")]
pub mod dev;
mod error;
mod handshake;
mod live;
mod material;
mod peer;
mod policy;
mod rotate;
mod server;
mod spiffe;
mod util;
pub mod verify;

pub use client::error::ClientError;
pub use client::{Client, ClientBuilder, Connector, DEFAULT_CONNECT_TIMEOUT, TlsConnection};
#[cfg(feature = "config")]
pub use config::{
    AccessSection, Bundle, ClientSection, Config, ConfigError, OneOrMany, ServerSection,
};
pub use error::{Denied, Error, HandshakeFailure, LoadError, Origin, PolicyError, alert_name};
pub use material::crl_info::CrlInfo;
#[cfg(feature = "pkcs12")]
pub use material::pkcs12::Password;
pub use material::{Crls, Identity, TrustBundle};
#[cfg(feature = "tonic")]
pub use peer::request::VerifiedConnectInfo;
pub use peer::{Fingerprint, PeerIdentity, TlsVersion};
pub use policy::authorizer::Authorizer;
#[cfg(feature = "axum")]
pub use policy::axum::MissingIdentity;
pub use policy::path::{PathError, canonical_path};
pub use policy::require::{RequireIdentity, RequireIdentityFuture, RequireIdentityService};
pub use policy::roles::{Access, AccessError, AccessRule, AccessService, Decision, Roles};
pub use rotate::builder::{Builder, Side};
pub use rotate::pem_dir::PemDirectory;
pub use rotate::status::{CertificateInfo, CertificateStatus};
pub use rotate::{DEFAULT_RELOAD_INTERVAL, Rotate};
pub use server::health::Health;
pub use server::probes::HealthListener;
pub use server::incoming::{TlsIncoming, VerifiedStream};
pub use server::limits::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, Limits};
pub use server::service::{HttpService, Hyper, Tower};
pub use server::stats::{RECENT_WINDOW, ServerStats};
pub use server::{ConnectionInfo, Server, ServerBuilder, ServerHandle};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use util::provider::{CRYPTO_PROVIDER, crypto_provider};
#[doc(inline)]
pub use verify::ClientAuth;

/// Re-exported so that users name the same versions this crate was built with.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
