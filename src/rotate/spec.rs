//! [`Sources`]: what a builder collects, resolved into the material in use and the files
//! to watch.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::files::{IdentityFiles, TrustFile, TrustSource};
use super::watch::spawn_watcher;
use super::{Files, Material, Target};
use crate::error::{Error, LoadError};
use crate::material::{Crls, Identity, TrustBundle};
use crate::policy::authorizer::Authorizer;

/// Default interval at which certificate, key and CA files are checked for changes.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::rotate::DEFAULT_RELOAD_INTERVAL, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// What a builder was given: material (loaded eagerly, errors kept for `bind`/`build`) and the
/// files it came from.
#[derive(Debug)]
pub(crate) struct Sources {
    identity: Option<Result<Identity, LoadError>>,
    /// Bundles given as values.
    trust: Vec<Result<TrustBundle, LoadError>>,
    /// Bundles read from files, in the order of `files.trust`.
    trust_files: Vec<Result<TrustBundle, LoadError>>,
    crls: Vec<Result<Crls, LoadError>>,
    files: Files,
    pub(crate) reload_interval: Option<Duration>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            identity: None,
            trust: Vec::new(),
            trust_files: Vec::new(),
            crls: Vec::new(),
            files: Files::default(),
            reload_interval: Some(DEFAULT_RELOAD_INTERVAL),
        }
    }
}

impl Sources {
    pub(crate) fn identity(&mut self, identity: Identity) {
        self.identity = Some(Ok(identity));
        self.files.identity = None;
    }

    pub(crate) fn identity_files(&mut self, cert: &std::path::Path, key: &std::path::Path) {
        self.files.note_loaded(cert);
        self.files.note_loaded(key);
        self.identity = Some(Identity::from_pem_files(cert, key));
        self.files.identity = Some(IdentityFiles::Pem(cert.to_owned(), key.to_owned()));
    }

    #[cfg(feature = "pkcs12")]
    pub(crate) fn identity_pkcs12(
        &mut self,
        path: &std::path::Path,
        password: crate::material::pkcs12::Password,
        alias: Option<&str>,
    ) {
        self.files.note_loaded(path);
        self.identity = Some(Identity::from_pkcs12_file(path, &password, alias));
        self.files.identity = Some(IdentityFiles::Pkcs12(
            path.to_owned(),
            password,
            alias.map(str::to_owned),
        ));
    }

    /// A PKCS#12 truststore, bound to `trust_domain` if given.
    #[cfg(feature = "pkcs12")]
    pub(crate) fn trust_pkcs12(
        &mut self,
        path: &std::path::Path,
        password: crate::material::pkcs12::Password,
        trust_domain: Option<&str>,
        crls: &[PathBuf],
    ) {
        self.watch_trust(
            TrustSource::Pkcs12(path.to_owned(), password),
            trust_domain,
            crls,
        );
    }

    pub(crate) fn trust(&mut self, bundle: TrustBundle) {
        self.trust.push(Ok(bundle));
    }

    /// A PEM CA file, bound to `trust_domain` if given, with CRL files of its own.
    pub(crate) fn trust_file(
        &mut self,
        path: &std::path::Path,
        trust_domain: Option<&str>,
        crls: &[PathBuf],
    ) {
        self.watch_trust(TrustSource::Pem(path.to_owned()), trust_domain, crls);
    }

    fn watch_trust(&mut self, source: TrustSource, trust_domain: Option<&str>, crls: &[PathBuf]) {
        // The name is checked as the policy checks it, so a binding can always be matched.
        if let Some(Err(e)) = trust_domain.map(Authorizer::trust_domain) {
            self.trust_files.push(Err(LoadError::TrustDomain {
                origin: crate::error::Origin::File(source.path().clone()),
                message: e.to_string(),
            }));
            return;
        }
        let file = TrustFile {
            source,
            trust_domain: trust_domain.map(str::to_owned),
            crls: crls.to_vec(),
        };
        for path in file.paths() {
            self.files.note_loaded(path);
        }
        self.trust_files.push(file.load());
        self.files.trust.push(file);
    }

    pub(crate) fn crls(&mut self, crls: Crls) {
        self.files.static_crls.push(crls.clone());
        self.crls.push(Ok(crls));
    }

    pub(crate) fn crl_file(&mut self, path: &std::path::Path) {
        self.files.note_loaded(path);
        self.crls.push(Crls::from_file(path));
        self.files.crls.push(path.to_owned());
    }

    /// The loaded material and the files to watch (none when reloading is off).
    pub(crate) fn resolve(self) -> Result<(Material, Files), Error> {
        let identity = self.identity.ok_or(Error::MissingIdentity)??;
        let fixed = self.trust.into_iter().collect::<Result<Vec<_>, _>>()?;
        let watched = self
            .trust_files
            .into_iter()
            .map(|bundle| bundle.map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        if fixed.is_empty() && watched.is_empty() {
            return Err(Error::MissingTrust);
        }
        let crls = self.crls.into_iter().collect::<Result<Vec<_>, _>>()?;
        // An expired certificate at start-up is not refused (a test or a doctor may want to
        // present one); the watcher's first tick logs it as an error.
        let mut files = match self.reload_interval {
            Some(_) => self.files,
            None => Files::default(),
        };
        // The baseline is what was read when each file was loaded (recorded just before), so
        // a change made since then is picked up on the first tick.
        files.loaded = files.paths().map(|p| files.first_seen(p)).collect();
        Ok((
            Material {
                identity,
                fixed,
                watched,
                crls,
            },
            files,
        ))
    }

    /// Starts the watcher for `target`: file changes every reload interval, and expiry.
    pub(crate) fn watch<T: Target>(target: &Arc<T>, files: Files, interval: Option<Duration>) {
        // Without reloading, expiry is still watched, once a minute.
        let every = interval.unwrap_or(Duration::from_secs(60));
        spawn_watcher(weak(target), files, every);
    }
}

fn weak<T: Target>(target: &Arc<T>) -> Weak<dyn Target> {
    let as_dyn: Arc<dyn Target> = Arc::clone(target) as Arc<dyn Target>;
    Arc::downgrade(&as_dyn)
}
