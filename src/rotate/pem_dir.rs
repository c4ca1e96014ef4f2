//! [`PemDirectory`]: our current identity and trust as PEM files that stay current on disk,
//! for libraries that only take file paths (librdkafka, for one).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::material::{Identity, TrustBundle};
use crate::util::base64::base64;

/// A directory holding our current identity and trust as PEM, rewritten atomically on every
/// rotation, laid out as a Kubernetes secret volume is:
///
/// | file | content |
/// |---|---|
/// | `tls.crt` | our certificate chain, leaf first |
/// | `tls.key` | our private key, PKCS#8 (owner-only, mode 0600 on Unix) |
/// | `ca.crt` | every trust anchor |
/// | `tls.pem` | chain and key in one file (owner-only) |
/// | `ca.crl` | every CRL, when there are any |
/// | `ca-<trust domain>.crt` | the anchors of a bundle bound to a SPIFFE trust domain |
///
/// `ca.crt` holds only the bundles not bound to a trust domain: merging a partner domain's
/// CA into it would let that CA vouch for any identity in a library that reads the file.
///
/// Each version is written into a fresh subdirectory, then the `..data` symlink is switched
/// to it with one atomic rename; the top-level names are symlinks through `..data`. So a
/// reader never sees a half-written file. `tls.pem` is always a matching pair; a reader that
/// opens `tls.crt` and `tls.key` one after the other can straddle a rotation, exactly as with
/// a Kubernetes volume, unless it resolves `..data` once and reads both from there.
///
/// Get one with [`Client::pem_directory`](crate::Client::pem_directory) or
/// [`ServerHandle::pem_directory`](crate::ServerHandle::pem_directory). It is updated while
/// the `PemDirectory` value is alive.
///
/// # Examples
///
/// ```
/// # let ca = mtls::dev::DevCa::new("test CA")?;
/// # let handle = mtls::Server::builder()
/// #     .identity(ca.server("localhost")?.identity()?)
/// #     .trust(ca.trust()?)
/// #     .authorize(mtls::Authorizer::any_verified())
/// #     .build_rustls_config()?;
/// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-{}", std::process::id()));
/// let pem: mtls::rotate::PemDirectory = handle.pem_directory(&dir)?;
/// let identity = mtls::Identity::from_pem_files(pem.cert_path(), pem.key_path())?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PemDirectory {
    inner: Arc<Writer>,
}

struct Writer {
    dir: PathBuf,
    /// Serializes writes; counts versions.
    version: Mutex<u64>,
}

impl fmt::Debug for PemDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemDirectory")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl PemDirectory {
    /// Writes the first version into `dir` (created if missing).
    pub(crate) fn create(
        dir: &Path,
        identity: &Identity,
        trust: &[TrustBundle],
    ) -> Result<PemDirectory, Error> {
        let writer = Arc::new(Writer {
            dir: dir.to_owned(),
            version: Mutex::new(0),
        });
        writer.write(identity, trust)?;
        Ok(PemDirectory { inner: writer })
    }

    /// A callback that rewrites the directory, holding it weakly (a dropped `PemDirectory`
    /// stops being updated).
    pub(crate) fn observer(&self) -> crate::rotate::Observer {
        let weak = Arc::downgrade(&self.inner);
        Box::new(move |identity: &Identity, trust: &[TrustBundle]| {
            let Some(writer) = weak.upgrade() else {
                return false;
            };
            if let Err(e) = writer.write(identity, trust) {
                tracing::error!(error = %e, "the PEM directory could not be updated");
            }
            true
        })
    }

    /// The directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-dir-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?;
    /// assert_eq!(pem.dir(), dir.as_path());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// `tls.crt`: our certificate chain.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-cert-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?;
    /// assert_eq!(pem.cert_path(), dir.join("tls.crt"));
    /// assert!(std::fs::read_to_string(pem.cert_path())?.starts_with("-----BEGIN CERTIFICATE-----"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cert_path(&self) -> PathBuf {
        self.inner.dir.join("tls.crt")
    }

    /// `tls.key`: our private key.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-key-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?;
    /// assert!(std::fs::read_to_string(pem.key_path())?.starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_path(&self) -> PathBuf {
        self.inner.dir.join("tls.key")
    }

    /// `ca.crt`: the trust anchors.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-ca-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?;
    /// let trust = mtls::TrustBundle::from_pem_file(pem.ca_path())?;
    /// assert_eq!(trust.certificates(), ca.trust()?.certificates());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ca_path(&self) -> PathBuf {
        self.inner.dir.join("ca.crt")
    }

    /// `tls.pem`: chain and key in one file, always a matching pair.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-pem-directory-combined-{}", std::process::id()));
    /// let pem = handle.pem_directory(&dir)?;
    /// let both = pem.combined_path();
    /// let identity = mtls::Identity::from_pem_files(&both, &both)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn combined_path(&self) -> PathBuf {
        self.inner.dir.join("tls.pem")
    }
}

const FILES: [&str; 4] = ["tls.crt", "tls.key", "ca.crt", "tls.pem"];

impl Writer {
    fn write(&self, identity: &Identity, trust: &[TrustBundle]) -> Result<(), Error> {
        let mut version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        *version += 1;
        let fail = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::PemDirectory { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(fail(&self.dir))?;
        let chain: String = identity
            .chain()
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect();
        let key = private_key_pem(identity.private_key());
        // Bundles bound to a SPIFFE trust domain stay apart: merged into `ca.crt` they would
        // let one domain's CA vouch for any identity in a library that reads the file.
        let anchors: String = trust
            .iter()
            .filter(|b| b.trust_domain().is_none())
            .flat_map(|b| b.certificates())
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect();
        let mut domains: Vec<(String, String)> = Vec::new();
        for bundle in trust {
            if let Some(td) = bundle.trust_domain() {
                let pem: String = bundle
                    .certificates()
                    .iter()
                    .map(|c| pem_block("CERTIFICATE", c.as_ref()))
                    .collect();
                match domains.iter_mut().find(|(d, _)| d == td) {
                    Some((_, all)) => all.push_str(&pem),
                    None => domains.push((td.to_owned(), pem)),
                }
            }
        }
        // Each CRL once: the builder's CRLs are carried by every bundle.
        let mut seen = Vec::new();
        let crls: String = trust
            .iter()
            .flat_map(|b| b.crls())
            .filter(|c| {
                let new = !seen.contains(c);
                seen.push(*c);
                new
            })
            .map(|c| pem_block("X509 CRL", c.as_ref()))
            .collect();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("..{stamp}.{}", *version);
        let fresh = self.dir.join(&name);
        std::fs::create_dir(&fresh).map_err(fail(&fresh))?;
        let put = |file: &str, contents: &str, private: bool| {
            let path = fresh.join(file);
            write_file(&path, contents, private).map_err(fail(&path))
        };
        put("tls.crt", &chain, false)?;
        put("tls.key", &key, true)?;
        put("ca.crt", &anchors, false)?;
        let mut both = Zeroizing::new(String::with_capacity(chain.len() + key.len()));
        both.push_str(&chain);
        both.push_str(&key);
        put("tls.pem", &both, true)?;
        if !crls.is_empty() {
            put("ca.crl", &crls, false)?;
        }
        for (td, pem) in &domains {
            put(&format!("ca-{td}.crt"), pem, false)?;
        }
        // One rename switches every file at once.
        let data = self.dir.join("..data");
        let previous = std::fs::read_link(&data).ok();
        let staged = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&staged);
        symlink(Path::new(&name), &staged).map_err(fail(&staged))?;
        std::fs::rename(&staged, &data).map_err(fail(&data))?;
        let optional = std::iter::once("ca.crl".to_owned())
            .filter(|_| !crls.is_empty())
            .chain(domains.iter().map(|(td, _)| format!("ca-{td}.crt")));
        for file in FILES.iter().map(|f| (*f).to_owned()).chain(optional) {
            let link = self.dir.join(&file);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(&Path::new("..data").join(&file), &link).map_err(fail(&link))?;
            }
        }
        // Keep this version and the previous one (readers may still be in it); remove the
        // rest. Decided by name, never by clock, so a clock step cannot delete the live one.
        let keep = [Some(PathBuf::from(&name)), previous];
        for entry in std::fs::read_dir(&self.dir)
            .map_err(fail(&self.dir))?
            .flatten()
        {
            let file_name = PathBuf::from(entry.file_name());
            let is_version = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(".."))
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()));
            if is_version && !keep.iter().flatten().any(|k| *k == file_name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

fn write_file(path: &Path, contents: &str, private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "PEM directories need symbolic links (Unix)",
    ))
}

/// The key as PEM, wiped when dropped.
fn private_key_pem(key: &PrivateKeyDer<'_>) -> Zeroizing<String> {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    Zeroizing::new(pem_block(label, key.secret_der()))
}

/// One PEM block: base64 in 64-column lines (RFC 7468). It may encode a private key, so the
/// base64 is wiped when dropped and the block is allocated once at its final size (growing it
/// would leave copies behind).
fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = Zeroizing::new(base64(der, false));
    let (begin, end) = (
        format!("-----BEGIN {label}-----\n"),
        format!("-----END {label}-----\n"),
    );
    let mut out =
        String::with_capacity(begin.len() + encoded.len() + encoded.len().div_ceil(64) + end.len());
    out.push_str(&begin);
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&end);
    out
}

#[cfg(test)]
mod tests {
    use super::pem_block;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn a_pem_block_is_allocated_once_so_a_key_leaves_no_copy_behind() {
        for len in [1usize, 47, 48, 49, 121, 1218] {
            let der = vec![0x5a; len];
            let pem = pem_block("PRIVATE KEY", &der);
            assert_eq!(pem.capacity(), pem.len(), "{len} bytes");
        }
        let key = rustls_pki_types::PrivateKeyDer::from(
            rustls_pki_types::PrivatePkcs8KeyDer::from(vec![1, 2, 3]),
        );
        // The type is the promise: the key's PEM is wiped when dropped.
        let pem: zeroize::Zeroizing<String> = super::private_key_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn pem_blocks_round_trip_through_the_pem_reader() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 100, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let pem = pem_block("CERTIFICATE", &der);
            if len == 0 {
                continue;
            }
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), der.as_slice(), "length {len}");
            assert!(pem.lines().all(|l| l.len() <= 64));
        }
    }
}
