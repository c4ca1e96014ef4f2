//! The watcher task: polls the watched files, installs the groups that changed, and logs when
//! our certificate nears or passes its expiry.

use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use super::files::Dirty;
use super::swap::{Report, rotate_logged};
use super::{Files, Target};
use crate::error::Error;
use crate::peer::PeerIdentity;
use crate::util::time::{ExpiryLevel, expiry_level, humantime};

/// Polls `files` every `interval` and checks expiry, until the target is dropped.
pub(crate) fn spawn_watcher(target: Weak<dyn Target>, files: Files, interval: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: certificate files will not be reloaded");
        return;
    };
    runtime.spawn(async move {
        let files = Arc::new(files);
        let mut seen = files.loaded.clone();
        // Groups changed since the last successful load whose candidate loaded but was
        // refused: it is retried on every tick (a not-yet-valid certificate becomes valid
        // without its file changing). A file that does not load is read again only once it
        // changes, so a hostile or broken file costs one load per change, not one per tick.
        let mut pending = Dirty::default();
        // A zero interval would panic in tokio; poll at most every 10 ms.
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(target) = target.upgrade() else {
                break;
            };
            if !files.is_empty() {
                let now = files.digest();
                let changed = files.changed(&seen, &now);
                if changed.any() || pending.any() {
                    seen = now;
                    let dirty = pending.or(changed);
                    tracing::debug!(
                        files = ?files.paths().collect::<Vec<_>>(),
                        "reading the watched certificate files"
                    );
                    let now_changed = changed.any();
                    let report = if now_changed {
                        Report::Always
                    } else {
                        Report::Changes
                    };
                    let mixed = dirty.identity && (dirty.trust || dirty.crls);
                    // Identity, trust and CRLs together first: a CA rotation needs them at
                    // once. If that is refused, the refusal may be the identity's alone (one
                    // not valid yet, say), so trust and CRLs go in without it, then the
                    // identity is tried alone and retried until it is taken.
                    let first = if mixed { Report::Never } else { report };
                    pending = match reload_files(&*target, &files, dirty, now_changed, first).await
                    {
                        Ok(()) | Err(Refused::Unreadable) => Dirty::default(),
                        Err(Refused::Candidate) if mixed => {
                            let rest = Dirty {
                                identity: false,
                                ..dirty
                            };
                            let identity = Dirty {
                                identity: true,
                                ..Dirty::default()
                            };
                            let rest =
                                reload_files(&*target, &files, rest, now_changed, report).await;
                            let alone =
                                reload_files(&*target, &files, identity, now_changed, report).await;
                            match (rest, alone) {
                                (Err(Refused::Candidate), _) => dirty,
                                (_, Err(Refused::Candidate)) => identity,
                                _ => Dirty::default(),
                            }
                        }
                        Err(Refused::Candidate) => dirty,
                    };
                }
            }
            check_expiry(&*target, SystemTime::now());
        }
    });
}

/// Why a reload of the watched files did not land.
enum Refused {
    /// A file could not be read or parsed: only a change of the files can mend that.
    Unreadable,
    /// The candidate loaded but failed validation; time alone may mend it.
    Candidate,
}

/// Loads the groups of `files` marked in `dirty` and installs what loaded.
async fn reload_files(
    target: &dyn Target,
    files: &Arc<Files>,
    dirty: Dirty,
    changed: bool,
    report: Report,
) -> Result<(), Refused> {
    // Loading runs password-based key derivations (PKCS#12, bounded by
    // `material::pkcs12::cost`; timings in docs/PERFORMANCE.md) and file reads: never on an
    // async worker.
    let loading = Arc::clone(files);
    let (update, unreadable) = match tokio::task::spawn_blocking(move || loading.load(dirty)).await
    {
        Ok(loaded) => loaded,
        Err(e) => {
            unloadable(
                target,
                format!("loading the certificate files stopped: {e}"),
                changed,
            );
            return Err(Refused::Unreadable);
        }
    };
    for e in &unreadable {
        unloadable(target, e.to_string(), changed);
    }
    if update.identity.is_some() || update.trust_files.is_some() || update.crls.is_some() {
        rotate_logged(target, update, report).map_err(|e| match e {
            Error::Load(_) => Refused::Unreadable,
            _ => Refused::Candidate,
        })?;
    }
    match unreadable.is_empty() {
        true => Ok(()),
        false => Err(Refused::Unreadable),
    }
}

/// Records files that could not be loaded; cert-manager writes files one by one, so a
/// half-written state is logged once, not per tick.
fn unloadable(target: &dyn Target, message: String, changed: bool) {
    let state = target.reload_state();
    if changed || state.last_error().as_deref() != Some(&message) {
        tracing::warn!(error = %message, "certificate files could not be loaded; keeping the last good material");
        state.failed(message);
    }
}

/// Logs once when our leaf passes 2/3 of its lifetime or has under 24 h left, and once when
/// it has expired.
pub(crate) fn check_expiry(target: &dyn Target, now: SystemTime) {
    let identity = target.current().identity;
    let Ok(leaf) = PeerIdentity::from_chain(identity.chain()) else {
        return;
    };
    let level = expiry_level(leaf.not_before(), leaf.not_after(), now);
    let state = target.reload_state();
    let mut alarm = state.alarm.lock().unwrap_or_else(PoisonError::into_inner);
    let key = (*leaf.fingerprint().as_bytes(), level);
    if alarm.as_ref() == Some(&key) || level == ExpiryLevel::Fresh {
        *alarm = Some(key);
        return;
    }
    *alarm = Some(key);
    let remaining = leaf.not_after().duration_since(now).unwrap_or_default();
    match level {
        ExpiryLevel::Fresh => {}
        ExpiryLevel::Renew => tracing::warn!(
            subject = leaf.subject(),
            not_after = %humantime(leaf.not_after()),
            remaining_secs = remaining.as_secs(),
            "our certificate is due for renewal (past 2/3 of its lifetime, or under 24 h left)"
        ),
        ExpiryLevel::Expired => tracing::error!(
            subject = leaf.subject(),
            not_after = %humantime(leaf.not_after()),
            "our certificate has expired; peers will reject it until it is renewed"
        ),
    }
}
