//! [`DevCaError`]: why the development CA could not issue or write something.

use std::fmt;
use std::path::PathBuf;

use crate::error::LoadError;

/// Why the development CA could not issue or write something.
///
/// # Examples
///
/// ```
/// use mtls::dev::{DevCa, DevCaError, LeafSpec};
///
/// let ca = DevCa::new("test CA")?;
/// let err = ca.issue(&LeafSpec::server("na\u{ef}ve.example")).unwrap_err(); // not ASCII
/// assert!(matches!(err, DevCaError::Issue { .. }));
/// # Ok::<(), DevCaError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCaError {
    /// A name, SPIFFE ID or date the certificate generator refused.
    #[error("cannot issue `{subject}`: {detail}")]
    Issue {
        /// The subject being issued.
        subject: String,
        /// What the generator reported.
        detail: String,
    },
    /// A CA certificate or key given back to [`DevCa::from_pem`](super::DevCa::from_pem) could not be used.
    #[error(
        "cannot load the development CA: {detail}; give the PEM certificate and PEM key that DevCa::write_pem wrote"
    )]
    LoadCa {
        /// What went wrong.
        detail: String,
    },
    /// Writing a file failed.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The issued material did not load back (a bug if it happens).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A PKCS#12 store could not be written.
    #[error("cannot write the PKCS#12 store: {detail}")]
    Pkcs12 {
        /// What went wrong.
        detail: String,
    },
}

pub(super) fn issue_error(subject: &str, e: impl fmt::Display) -> DevCaError {
    DevCaError::Issue {
        subject: subject.to_owned(),
        detail: e.to_string(),
    }
}
