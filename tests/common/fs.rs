//! Temporary directories that clean up, and files written as atomic writers do.

/// A fresh directory under the system temp dir, removed on drop.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mtls-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Writes through a temporary file and a rename, as atomic writers do: a reader sees the
    /// old contents or the new, never a part. Returns the file's path.
    pub fn put(&self, name: &str, contents: &(impl AsRef<[u8]> + ?Sized)) -> std::path::PathBuf {
        let path = self.path(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// Writes in place (a reader may see a part). Returns the file's path.
    pub fn write(&self, name: &str, contents: &(impl AsRef<[u8]> + ?Sized)) -> std::path::PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
