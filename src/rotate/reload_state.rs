//! [`ReloadState`]: how reloads went, the rotation lock, the observers told of each swap, and
//! the expiry alarm last raised.

use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::Target;
use crate::error::Error;
use crate::material::{Identity, TrustBundle};
use crate::util::time::ExpiryLevel;

/// Told of every material swapped in; returns false once it wants no more calls.
pub(crate) type Observer = Box<dyn Fn(&Identity, &[TrustBundle]) -> bool + Send + Sync>;

/// How reloads went, and which expiry alarm last fired.
#[derive(Default)]
pub(crate) struct ReloadState {
    /// Held for the whole of a rotation.
    pub(super) rotating: Mutex<()>,
    /// Called after each successful swap (PEM directories).
    observers: Mutex<Vec<Observer>>,
    status: Mutex<ReloadStatus>,
    pub(super) alarm: Mutex<Option<([u8; 32], ExpiryLevel)>>,
}

/// How reloads went: counts, and the last success and error.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReloadStatus {
    pub(crate) last_reload: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

impl std::fmt::Debug for ReloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadState")
            .field("status", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl ReloadState {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn observe(&self, observer: Observer) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(observer);
    }

    pub(super) fn notify(&self, identity: &Identity, trust: &[TrustBundle]) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|observer| observer(identity, trust));
    }

    pub(super) fn succeeded(&self) {
        let mut s = self.lock();
        s.last_reload = Some(SystemTime::now());
        s.last_error = None;
        s.succeeded += 1;
    }

    pub(super) fn failed(&self, error: String) {
        let mut s = self.lock();
        s.last_error = Some(error);
        s.failed += 1;
    }

    pub(super) fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// A copy of how reloads went so far.
    pub(crate) fn snapshot(&self) -> ReloadStatus {
        self.lock().clone()
    }
}

/// Writes `target`'s current material into `dir` and keeps it current.
pub(crate) fn pem_directory(
    target: &dyn Target,
    dir: &std::path::Path,
) -> Result<crate::rotate::pem_dir::PemDirectory, Error> {
    // Under the rotation lock, so no swap can land between the first write and registration.
    let state = target.reload_state();
    let _serialized = state
        .rotating
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let material = target.current();
    let directory = crate::rotate::pem_dir::PemDirectory::create(
        dir,
        &material.identity,
        &material.effective_trust(),
    )?;
    state.observe(directory.observer());
    Ok(directory)
}
