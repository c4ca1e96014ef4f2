//! [`Material`]: the material in use, with trust in a fixed part and a part per watched file.

use crate::error::LoadError;
use crate::material::{Crls, Identity, TrustBundle};

/// The material a live config is built from. CRLs given apart from the bundles (builder
/// `crls`/`crl_file`) are kept apart, so replacing the bundles never drops them.
///
/// Trust has two parts. `fixed` holds the bundles given as values: the builder's, replaced
/// whole by each set pushed from code. `watched` has one entry per watched trust file: the
/// bundle last read from it, or `None` once code pushed a set without it, after which
/// rewrites of that file are never trusted again. So what code removes stays removed, and a
/// file's rotation replaces that file's bundle only.
#[derive(Clone)]
pub(crate) struct Material {
    pub(crate) identity: Identity,
    pub(crate) fixed: Vec<TrustBundle>,
    pub(crate) watched: Vec<Option<TrustBundle>>,
    pub(crate) crls: Vec<Crls>,
}

impl Material {
    /// Every bundle trusted now: the fixed part, then the watched files'.
    pub(crate) fn trust(&self) -> Vec<TrustBundle> {
        self.fixed
            .iter()
            .chain(self.watched.iter().flatten())
            .cloned()
            .collect()
    }

    /// The trust after a push from code: a pushed bundle equal to a watched file's current
    /// bundle stays that file's (and follows its rotations); the rest become the fixed part;
    /// a watched file whose bundle was left out is detached.
    pub(super) fn pushed(
        &self,
        pushed: Vec<TrustBundle>,
    ) -> (Vec<TrustBundle>, Vec<Option<TrustBundle>>) {
        let mut fixed = Vec::new();
        let mut watched: Vec<Option<TrustBundle>> = vec![None; self.watched.len()];
        for bundle in pushed {
            let file = self.watched.iter().enumerate().position(|(i, current)| {
                watched[i].is_none() && current.as_ref().is_some_and(|c| c.same_as(&bundle))
            });
            match file {
                Some(i) => watched[i] = Some(bundle),
                None => fixed.push(bundle),
            }
        }
        (fixed, watched)
    }

    /// The watched part after the files were read again: detached files stay out, and only
    /// their read errors are ignored.
    pub(super) fn reread(
        &self,
        files: Vec<Result<TrustBundle, LoadError>>,
    ) -> Result<Vec<Option<TrustBundle>>, LoadError> {
        self.watched
            .iter()
            .zip(files)
            .map(|(current, read)| match current {
                Some(_) => read.map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// The bundles with the separate CRLs added to each (they apply to every bundle; a
    /// bundle's own CRLs apply to it alone).
    pub(crate) fn effective_trust(&self) -> Vec<TrustBundle> {
        let mut trust = self.trust();
        for bundle in &mut trust {
            for crls in &self.crls {
                *bundle = bundle.clone().with_crls(crls.clone());
            }
        }
        trust
    }
}
