//! [`Config`]: one TOML file with named bundles, a server, client profiles, roles and access
//! rules (feature `config`), the way Spring Boot's SSL bundles name key material once for a
//! whole service. See `docs/CONFIG.md` for every key.
//!
//! Everything is validated when the file loads: unknown keys, a bundle or role that is used
//! but not defined, malformed identity patterns and durations. Files named in bundles are read
//! when a server or client is built from the configuration.
//!
//! Layout: `schema` (the serde types), `error` ([`ConfigError`]), `load` (reading a file, a
//! string or the environment), `env` (environment overrides), `validate` (the checks made on
//! load), `access` (roles and access rules), `build` (servers and clients from profiles),
//! `duration` (`"10s"` and the like). It may import any module below it (up to `client`);
//! only `lib.rs` imports it.

mod access;
mod build;
mod duration;
pub(crate) mod env;
mod error;
mod load;
mod schema;
mod validate;

pub use error::ConfigError;
pub use schema::{AccessSection, Bundle, ClientSection, Config, OneOrMany, ServerSection};
