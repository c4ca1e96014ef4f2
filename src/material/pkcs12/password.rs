//! [`Password`]: a store's password, from a string, a file or an environment variable, wiped
//! when dropped and never shown.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::LoadError;

/// A keystore or truststore password. It is wiped from memory when dropped and never shown
/// by `Debug` or in errors.
///
/// # Examples
///
/// ```
/// let password = mtls::Password::new("changeit");
/// assert_eq!(format!("{password:?}"), "Password(***)");
/// ```
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// A password given as a string.
    ///
    /// # Examples
    ///
    /// ```
    /// let password = mtls::Password::new(String::from("changeit"));
    /// assert!(!format!("{password:?}").contains("changeit"));
    /// ```
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password in `path`, without a trailing line break (as `echo` writes it).
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pass-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("ks.pass"), "changeit\n")?;
    /// let password = mtls::Password::from_file(dir.join("ks.pass"))?;
    /// assert_eq!(format!("{password:?}"), "Password(***)");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        Ok(Password::new(text.trim_end_matches(['\r', '\n'])))
    }

    /// The password in the environment variable `name`.
    ///
    /// The copy read here is wiped on drop, but the variable itself stays in this process's
    /// environment: readable by the same user and root (`/proc/<pid>/environ` on Linux) and
    /// inherited by every child process started later. This crate cannot remove it for you:
    /// changing the environment of a running multi-threaded process is `unsafe`
    /// (`std::env::remove_var`), and this crate forbids unsafe code. Prefer
    /// [`Password::from_file`] (a Kubernetes secret volume is a tmpfs file); otherwise remove
    /// the variable yourself first thing in `main`, before any thread starts, and start
    /// child processes with `Command::env_remove`.
    ///
    /// # Errors
    ///
    /// [`LoadError::PasswordVariable`] when it is not set (or not UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mtls::Password::from_env("SURELY_NOT_SET_MTLS_PASSWORD").unwrap_err();
    /// assert!(err.to_string().contains("SURELY_NOT_SET_MTLS_PASSWORD"));
    /// ```
    pub fn from_env(name: &str) -> Result<Self, LoadError> {
        std::env::var(name)
            .map(Password::new)
            .map_err(|_| LoadError::PasswordVariable {
                name: name.to_owned(),
            })
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}
