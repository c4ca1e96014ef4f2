//! The PEM files the development CA writes: a certificate chain and its key, the key
//! readable by its owner only.

use std::path::{Path, PathBuf};

use super::error::DevCaError;

/// Writes `<name>.pem` and `<name>.key` (owner-only) into `dir`.
pub(super) fn write_pair(
    dir: &Path,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(PathBuf, PathBuf), DevCaError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| DevCaError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, cert_pem).map_err(write_err(&cert))?;
    write_private(&key, key_pem).map_err(write_err(&key))?;
    Ok((cert, key))
}

/// Creates (or truncates) `path` readable by its owner only, then writes `contents`.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    // A new file every time: an existing one (or a symlink in its place) could carry a wider
    // mode or open descriptors.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        options.open(path)?.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(contents.as_bytes())
    }
}
