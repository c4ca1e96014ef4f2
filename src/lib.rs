//! # mtls: mutual TLS for Rust services
//!
//! A server that demands and verifies client certificates, a client that presents one, and the
//! verified peer's identity in every handler — on rustls, tokio-rustls and hyper 1.
//!
//! **The nouns** (at the root)
//! - [`Identity`]: our certificate chain and private key (checked against each other on load).
//! - [`TrustBundle`]: the CAs peers must chain to, optionally bound to a SPIFFE trust domain,
//!   with their [`Crls`].
//! - [`Server`] (built by a [`ServerBuilder`]): requires a verified client certificate by
//!   default ([`ClientAuth`]), serves any hyper or tower service over HTTP/1.1 or HTTP/2 (by
//!   ALPN) within [`Limits`], and shuts down gracefully; [`ServerHandle`] changes it while it
//!   runs.
//! - [`Client`] (built by a [`ClientBuilder`]): a pooled HTTPS client presenting our identity
//!   and verifying the server by name or, with `expect_server`, by identity. Both builders are
//!   one [`Builder`], whose material setters they share.
//! - [`PeerIdentity`]: the verified peer (subject, SANs, [`SpiffeId`], serial, validity,
//!   fingerprint, chain) in each request's and response's extensions.
//! - [`Authorizer`]: which verified peers are allowed, enforced inside the handshake, failing
//!   closed; [`Roles`] and [`Access`] name identities and rules; [`RequireIdentity`] narrows one
//!   route.
//! - [`Rotate`]: new certificates, keys, bundles and CRLs swapped in without a restart, from
//!   watched files or from code, validated first; [`CertificateStatus`] shows expiry coming.
//! - [`HandshakeFailure`]: why a handshake failed, in errors, `tracing` events and counters;
//!   [`Health`] puts expiry, reload errors and recent rejections in one value.
//! - [`Config`]: one TOML file with named bundles, a server, clients, roles and access rules.
//!
//! **The modules**, in the order data flows through them; each holds its concept's full set
//! of types:
//! [`material`] (identities, bundles, CRLs, PKCS#12) → [`rotate`] (rotation, status, the shared
//! builder) → [`verify`] (the rustls verifiers) and [`policy`] (authorizers, roles, access
//! rules, refusals) → [`peer`] (the verified identity) and [`spiffe`] (SPIFFE IDs) →
//! [`server`] (the server, its listeners, limits, statistics and health) and [`client`] (the
//! client and its connector) → your handler. [`error`] holds the errors, [`config`] the TOML
//! configuration, [`dev`] a throwaway CA. `docs/ARCHITECTURE.md` draws the house.
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

pub mod client;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod error;
mod handshake;
mod live;
pub mod material;
pub mod peer;
pub mod policy;
pub mod rotate;
pub mod server;
pub mod spiffe;
mod util;
pub mod verify;

pub use client::{Client, ClientBuilder, ClientError};
#[cfg(feature = "config")]
pub use config::{Config, ConfigError};
pub use error::{Denied, Error, HandshakeFailure, LoadError, PolicyError};
#[cfg(feature = "pkcs12")]
pub use material::Password;
pub use material::{Crls, Identity, TrustBundle};
pub use peer::PeerIdentity;
pub use policy::{Access, Authorizer, RequireIdentity, Roles};
pub use rotate::{Builder, CertificateStatus, Rotate};
pub use server::{Health, Limits, Server, ServerBuilder, ServerHandle};
pub use spiffe::SpiffeId;
pub use util::provider::{CRYPTO_PROVIDER, crypto_provider};
#[doc(inline)]
pub use verify::ClientAuth;

/// Re-exported so that users name the same versions this crate was built with.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
