//! Chains parsed recently, so that a peer that comes back (a new connection from the same
//! workload, a resumed session, a pool's next connection) is not parsed again, and its
//! connections share one copy of what its certificate says.
//!
//! Parsing is a function of the bytes alone, so a remembered parse never stands in for a
//! verification: every handshake still verifies its chain. Entries are keyed by the SHA-256
//! of the leaf and a hit is taken only when the whole chain is byte for byte the one
//! remembered. Only chains of established connections are remembered (after rustls verified
//! them), so a peer cannot fill the memory with certificates that never verify. It is bounded
//! by two parts of [`PART`] chains, like the signature memory.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls_pki_types::CertificateDer;

use super::certificate::Certificate;
use super::fingerprint::Fingerprint;
use crate::error::LoadError;
use crate::util::cache::TwoPartCache;
use crate::util::provider::sha256;

/// Chains per part: when the current one is full it becomes the previous one, and
/// the previous one is forgotten. A chain used from the previous part moves back.
pub(super) const PART: usize = 512;

/// The parsed chains, by their leaf's SHA-256.
pub(super) struct Memory(TwoPartCache<Arc<Certificate>>);

impl Default for Memory {
    fn default() -> Self {
        Memory(TwoPartCache::new(PART))
    }
}

impl Memory {
    /// The remembered parse of exactly this chain (whose leaf's SHA-256 is `fingerprint`).
    pub(super) fn get(
        &mut self,
        fingerprint: &[u8; 32],
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<Arc<Certificate>> {
        self.0.get(fingerprint, |cert| {
            cert.chain.len() == intermediates.len() + 1
                && cert.chain[0] == *leaf
                && cert.chain[1..] == *intermediates
        })
    }

    /// Remembers `cert`, unless it already is.
    pub(super) fn remember(&mut self, cert: &Arc<Certificate>) {
        match self.0.current(&cert.fingerprint.0) {
            Some(known) if Arc::ptr_eq(known, cert) => {}
            _ => self.0.insert(cert.fingerprint.0, Arc::clone(cert)),
        }
    }
}

static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();

fn memory() -> std::sync::MutexGuard<'static, Memory> {
    MEMORY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Parses `leaf` (followed by `intermediates`) without remembering it.
pub(super) fn parse(
    fingerprint: [u8; 32],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<Arc<Certificate>, LoadError> {
    let chain = std::iter::once(leaf)
        .chain(intermediates)
        .map(|c| c.clone().into_owned())
        .collect();
    Ok(Arc::new(Certificate::parse(
        chain,
        Fingerprint(fingerprint),
    )?))
}

/// The remembered parse of exactly this chain, else a fresh one (not remembered).
pub(super) fn certificate(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<Arc<Certificate>, LoadError> {
    let fingerprint = sha256(leaf);
    if let Some(cert) = memory().get(&fingerprint, leaf, intermediates) {
        return Ok(cert);
    }
    parse(fingerprint, leaf, intermediates)
}

/// Remembers the chain of an established connection, unless it already is.
pub(super) fn remember(cert: &Arc<Certificate>) {
    memory().remember(cert);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::self_signed;

    #[test]
    fn a_remembered_chain_is_shared_only_for_the_same_bytes() {
        let (leaf, other, issuing) = (
            self_signed("orders"),
            self_signed("billing"),
            self_signed("issuing"),
        );
        let key = sha256(&leaf);
        let mut memory = Memory::default();
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "nothing remembered yet"
        );
        let parsed = parse(key, &leaf, &[]).unwrap();
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "parsing alone remembers nothing"
        );
        memory.remember(&parsed);
        let again = memory.get(&key, &leaf, &[]).unwrap();
        assert!(Arc::ptr_eq(&parsed, &again));
        assert_eq!(again.common_name.as_deref(), Some("orders"));
        // The same leaf with an intermediate is another chain.
        assert!(
            memory
                .get(&key, &leaf, std::slice::from_ref(&issuing))
                .is_none()
        );
        // Other bytes under the same key (a forged or colliding key) are never a hit.
        assert!(memory.get(&key, &other, &[]).is_none());
        // Remembering the same parse twice keeps one entry.
        memory.remember(&parsed);
        assert!(Arc::ptr_eq(&memory.get(&key, &leaf, &[]).unwrap(), &parsed));
    }

    #[test]
    fn the_memory_is_bounded_and_a_returning_chain_moves_back() {
        let leaf = self_signed("orders");
        let key = sha256(&leaf);
        let mut memory = Memory::default();
        let kept = parse(key, &leaf, &[]).unwrap();
        memory.remember(&kept);
        // Fill the rest of the first part and all of a second one (same bytes under
        // other keys: the memory only counts entries).
        let fill = |memory: &mut Memory, from: usize| {
            for i in from..from + PART {
                let mut other = [0u8; 32];
                other[..8].copy_from_slice(&(i as u64).to_be_bytes());
                other[31] = 1;
                memory.remember(&parse(other, &leaf, &[]).unwrap());
            }
        };
        fill(&mut memory, 0);
        // Now in the previous part: still found, and moved back to the current one.
        assert!(Arc::ptr_eq(&memory.get(&key, &leaf, &[]).unwrap(), &kept));
        fill(&mut memory, PART);
        assert!(
            memory.get(&key, &leaf, &[]).is_some(),
            "moved back, so it survived"
        );
        fill(&mut memory, 2 * PART);
        fill(&mut memory, 3 * PART);
        assert!(
            memory.get(&key, &leaf, &[]).is_none(),
            "forgotten after two parts"
        );
    }
}
