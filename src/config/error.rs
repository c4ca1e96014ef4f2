//! [`ConfigError`]: why a configuration could not be loaded or used.

use std::path::PathBuf;

use crate::error::Error;

/// Why a configuration could not be loaded or used. Each names the file (when there is
/// one), the key, and the fix.
///
/// # Examples
///
/// ```
/// use mtls::{Config, ConfigError};
///
/// let err = Config::from_toml_str("[server]\nlisten = \"0.0.0.0:8443\"\nbundel = \"x\"\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Syntax { line: Some(_), .. }), "{err}"); // unknown key
/// let err = Config::from_toml_str("[client.stock]\nbundle = \"missing\"\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "client.stock.bundle"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("{}{}: {message}", origin, line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax {
        /// The file, or `configuration` for a string.
        origin: String,
        /// The line, when the parser knows it.
        line: Option<usize>,
        /// What the parser said (it names the key).
        message: String,
    },
    /// A key's value is invalid.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        /// The file, or `configuration` for a string.
        origin: String,
        /// The key, as a dotted path (`server.allow`, `bundle.inventory.ca`).
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An environment override was refused: it would empty a security setting without saying
    /// so, or its value is not of its setting's type (see `docs/CONFIG.md`).
    #[error("environment variable `{variable}` {message}")]
    Override {
        /// The variable.
        variable: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Building a server or client from the configuration failed.
    #[error(transparent)]
    Build(#[from] Error),
}
