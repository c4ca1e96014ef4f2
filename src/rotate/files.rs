//! The watched files, in reload groups (identity, trust, CRLs): their paths, content digests,
//! which groups changed, and loading a group.

use std::path::PathBuf;

use super::Update;
use crate::error::LoadError;
use crate::material::{Crls, Identity, TrustBundle};
use crate::util::provider::sha256;

/// Where our identity is read from.
#[derive(Debug, Clone)]
pub(crate) enum IdentityFiles {
    Pem(PathBuf, PathBuf),
    #[cfg(feature = "pkcs12")]
    Pkcs12(PathBuf, crate::material::pkcs12::Password, Option<String>),
}

impl IdentityFiles {
    fn paths(&self) -> Vec<&PathBuf> {
        match self {
            IdentityFiles::Pem(cert, key) => vec![cert, key],
            #[cfg(feature = "pkcs12")]
            IdentityFiles::Pkcs12(path, ..) => vec![path],
        }
    }

    fn load(&self) -> Result<Identity, LoadError> {
        match self {
            IdentityFiles::Pem(cert, key) => Identity::from_pem_files(cert, key),
            #[cfg(feature = "pkcs12")]
            IdentityFiles::Pkcs12(path, password, alias) => {
                Identity::from_pkcs12_file(path, password, alias.as_deref())
            }
        }
    }
}

/// Where a trust bundle is read from.
#[derive(Debug, Clone)]
pub(crate) enum TrustSource {
    Pem(PathBuf),
    #[cfg(feature = "pkcs12")]
    Pkcs12(PathBuf, crate::material::pkcs12::Password),
}

impl TrustSource {
    pub(super) fn path(&self) -> &PathBuf {
        match self {
            TrustSource::Pem(path) => path,
            #[cfg(feature = "pkcs12")]
            TrustSource::Pkcs12(path, _) => path,
        }
    }
}

/// A watched trust file, the SPIFFE trust domain (already validated) its bundle is bound to,
/// and the CRL files that speak for its CAs alone: all read again together, so a federated
/// partner's bundle rotates without ever vouching for more, and its CRLs never decide for
/// another bundle.
#[derive(Debug, Clone)]
pub(crate) struct TrustFile {
    pub(super) source: TrustSource,
    pub(super) trust_domain: Option<String>,
    pub(super) crls: Vec<PathBuf>,
}

impl TrustFile {
    /// The trust file, then its CRL files.
    pub(super) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(self.source.path()).chain(&self.crls)
    }

    pub(super) fn load(&self) -> Result<TrustBundle, LoadError> {
        let bundle = match &self.source {
            TrustSource::Pem(path) => TrustBundle::from_pem_file(path),
            #[cfg(feature = "pkcs12")]
            TrustSource::Pkcs12(path, password) => TrustBundle::from_pkcs12_file(path, password),
        }?;
        let mut bundle = match &self.trust_domain {
            Some(td) => bundle.bound_to(td),
            None => bundle,
        };
        for path in &self.crls {
            bundle = bundle.with_crls(Crls::from_file(path)?);
        }
        Ok(bundle)
    }
}

/// Files that material was loaded from, re-read when their content changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Files {
    pub(crate) identity: Option<IdentityFiles>,
    pub(crate) trust: Vec<TrustFile>,
    pub(crate) crls: Vec<PathBuf>,
    pub(crate) static_crls: Vec<Crls>,
    /// Content digests of the files as last loaded.
    pub(super) loaded: Vec<[u8; 32]>,
    /// Digests taken when the builder loaded each file.
    first: Vec<(PathBuf, [u8; 32])>,
}

impl Files {
    pub(crate) fn is_empty(&self) -> bool {
        self.identity.is_none() && self.trust.is_empty() && self.crls.is_empty()
    }

    pub(super) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.identity
            .iter()
            .flat_map(IdentityFiles::paths)
            .chain(self.trust.iter().flat_map(TrustFile::paths))
            .chain(self.crls.iter())
    }

    pub(super) fn note_loaded(&mut self, path: &std::path::Path) {
        self.first.push((path.to_owned(), digest_of(path)));
    }

    pub(super) fn first_seen(&self, path: &std::path::Path) -> [u8; 32] {
        self.first
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map_or_else(|| digest_of(path), |(_, d)| *d)
    }

    /// A digest of every file's current content (a missing file hashes as its error), read
    /// through the paths each time so that a swapped `..data` symlink is followed.
    pub(super) fn digest(&self) -> Vec<[u8; 32]> {
        self.paths().map(|p| digest_of(p)).collect()
    }

    /// Which groups of files differ between two digests of [`Files::digest`].
    pub(super) fn changed(&self, before: &[[u8; 32]], now: &[[u8; 32]]) -> Dirty {
        let differs =
            |range: std::ops::Range<usize>| range.into_iter().any(|i| before.get(i) != now.get(i));
        let ids = self.identity.as_ref().map_or(0, |i| i.paths().len());
        let trust_end = ids + self.trust.iter().map(|t| t.paths().count()).sum::<usize>();
        Dirty {
            identity: differs(0..ids),
            trust: differs(ids..trust_end),
            crls: differs(trust_end..trust_end + self.crls.len()),
        }
    }

    /// Reads the groups of files marked in `dirty`; the others stay as they are (so a change
    /// of the certificate files never reverts trust pushed from code, and the reverse). A group
    /// that does not load is left out of the update, with its error, so it holds back no
    /// other group (a half-written certificate never delays a new CRL).
    pub(super) fn load(&self, dirty: Dirty) -> (Update, Vec<LoadError>) {
        let mut unreadable = Vec::new();
        let identity = match self.identity.as_ref().filter(|_| dirty.identity) {
            Some(files) => files.load().map_err(|e| unreadable.push(e)).ok(),
            None => None,
        };
        let trust_files = (!self.trust.is_empty() && dirty.trust)
            .then(|| self.trust.iter().map(TrustFile::load).collect());
        let crls = if self.crls.is_empty() || !dirty.crls {
            None
        } else {
            let read: Result<Vec<Crls>, LoadError> =
                self.crls.iter().map(Crls::from_file).collect();
            read.map(|files| self.static_crls.iter().cloned().chain(files).collect())
                .map_err(|e| unreadable.push(e))
                .ok()
        };
        let update = Update {
            identity,
            trust: None,
            trust_files,
            crls,
        };
        (update, unreadable)
    }
}

/// Which groups of watched files changed (and still need loading).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Dirty {
    pub(super) identity: bool,
    pub(super) trust: bool,
    pub(super) crls: bool,
}

impl Dirty {
    pub(super) fn any(self) -> bool {
        self.identity || self.trust || self.crls
    }

    pub(super) fn or(self, other: Dirty) -> Dirty {
        Dirty {
            identity: self.identity || other.identity,
            trust: self.trust || other.trust,
            crls: self.crls || other.crls,
        }
    }
}

/// A digest of a file's content; a file that cannot be read hashes as its error. The content
/// (a key file's, for one) is wiped once hashed.
fn digest_of(path: &std::path::Path) -> [u8; 32] {
    match std::fs::read(path) {
        Ok(bytes) => sha256(&zeroize::Zeroizing::new(bytes)),
        Err(e) => sha256(e.to_string().as_bytes()),
    }
}
