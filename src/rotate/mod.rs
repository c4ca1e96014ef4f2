//! Rotation: new certificates, keys and trust bundles swapped into a running server or client,
//! validated first, from files that are polled for changes or from code ([`Rotate`]); and the
//! expiry status of what is in use ([`CertificateStatus`]).
//!
//! Layout: `swap` ([`Rotate`], the `Target` a server or client exposes, and the checks made
//! before a swap), `in_use` (the material in use), `spec` (what a builder collects), `files`
//! (the watched files and their reload groups), `watch` (the task that polls them),
//! `reload_state` (how reloads went, and who is told of a swap), `builder` (the builder both
//! sides share), `pem_dir` (material written out as PEM), `status` (certificate expiry).
//! It may import any module below it (`util` up to `live`); `server`, `client` and `config`
//! import it.

pub(crate) mod builder;
mod files;
mod in_use;
pub(crate) mod pem_dir;
mod reload_state;
mod spec;
pub(crate) mod status;
mod swap;
mod watch;

pub use builder::{Builder, Side};
pub(crate) use files::Files;
pub(crate) use in_use::Material;
pub use pem_dir::PemDirectory;
pub(crate) use reload_state::{Observer, ReloadState, pem_directory};
pub use spec::DEFAULT_RELOAD_INTERVAL;
pub(crate) use spec::Sources;
pub use status::{CertificateInfo, CertificateStatus};
pub use swap::Rotate;
pub(crate) use swap::{Role, Target, Update, rotate};
