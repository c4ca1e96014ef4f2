//! The CA names a server sends in its CertificateRequest, kept across trust changes.
//!
//! rustls borrows the names from the verifier (`ClientCertVerifier::root_hint_subjects`
//! returns `&[DistinguishedName]` for as long as the verifier is borrowed), so a list once
//! handed out must stay valid while the server lives: without unsafe code, nothing a borrow
//! may still point at can be freed or overwritten. Each *distinct* list is therefore kept
//! once, in one of [`LISTS`] write-once slots, and the current list is an index into them.
//! A trust change back to a list already kept (rotation between bundles, a reload of the same
//! trust) reuses its slot, so memory is bounded by the slots and [`BYTES`], however often
//! trust changes. A list that finds no room is not kept: CertificateRequest then names no CA,
//! which lets a client offer any certificate (RFC 8446 4.2.4, RFC 5246 7.4.4); the verifier
//! checks it as before, so this changes which certificate a client picks, never what is
//! accepted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rustls::DistinguishedName;

/// Distinct lists kept.
pub(crate) const LISTS: usize = 64;

/// Bytes of names the kept lists may hold together (the first list is kept whatever its size).
pub(crate) const BYTES: usize = 1024 * 1024;

/// `current` when no list is named.
const NONE: usize = usize::MAX;

pub(crate) struct Hints {
    /// Written once each, never cleared: a list handed to a handshake stays valid.
    slots: [OnceLock<Vec<DistinguishedName>>; LISTS],
    /// The slot of the current list, or [`NONE`]: one atomic load per handshake.
    current: AtomicUsize,
    /// Serializes updates; the bytes the filled slots hold.
    updating: Mutex<usize>,
    /// Whether the warning that a list found no room was logged.
    warned: AtomicBool,
}

impl Hints {
    pub(crate) fn new(names: Vec<DistinguishedName>) -> Self {
        let hints = Hints {
            slots: std::array::from_fn(|_| OnceLock::new()),
            current: AtomicUsize::new(0),
            updating: Mutex::new(size(&names)),
            warned: AtomicBool::new(false),
        };
        let _ = hints.slots[0].set(names);
        hints
    }

    /// The current list: no lock, no allocation, no walk.
    pub(crate) fn latest(&self) -> &[DistinguishedName] {
        self.slots
            .get(self.current.load(Ordering::Acquire))
            .and_then(OnceLock::get)
            .map_or(&[], Vec::as_slice)
    }

    /// Makes `names` the current list: its slot if it is kept already, else a free slot,
    /// else none (CertificateRequest then names no CA).
    pub(crate) fn update(&self, names: &[DistinguishedName]) {
        let mut used = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = self
            .slots
            .iter()
            .position(|slot| slot.get().is_some_and(|list| same(list, names)));
        let slot = kept.or_else(|| {
            let bytes = size(names);
            let free = self.slots.iter().position(|slot| slot.get().is_none())?;
            if used.saturating_add(bytes) > BYTES {
                return None;
            }
            self.slots[free].set(names.to_vec()).ok()?;
            *used += bytes;
            Some(free)
        });
        if slot.is_none() && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                lists = LISTS,
                bytes = BYTES,
                "the trust changed to a set of CAs not seen before and the CA names kept for \
                 CertificateRequest are full: from now on a trust set not seen before is \
                 requested without CA names (clients may offer any certificate; each is still \
                 verified); restart the server to start the list afresh"
            );
        }
        self.current.store(slot.unwrap_or(NONE), Ordering::Release);
    }

    /// How many lists are kept.
    #[cfg(test)]
    pub(crate) fn lists(&self) -> usize {
        self.slots.iter().filter(|s| s.get().is_some()).count()
    }
}

fn same(a: &[DistinguishedName], b: &[DistinguishedName]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.as_ref() == b.as_ref())
}

/// What a list holds, counted against [`BYTES`].
fn size(names: &[DistinguishedName]) -> usize {
    names
        .iter()
        .map(|n| n.as_ref().len() + std::mem::size_of::<DistinguishedName>())
        .sum()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rustls::client::ResolvesClientCert;
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, SignatureScheme};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::dev::DevCa;
    use crate::{Authorizer, Rotate, Server};

    fn names(list: &[&str]) -> Vec<DistinguishedName> {
        list.iter()
            .map(|n| DistinguishedName::from(n.as_bytes().to_vec()))
            .collect()
    }

    fn bytes(list: &[DistinguishedName]) -> Vec<&[u8]> {
        list.iter().map(|n| n.as_ref()).collect()
    }

    #[test]
    fn a_list_seen_before_is_reused_and_the_lists_kept_are_bounded() {
        let hints = Hints::new(names(&["a"]));
        for i in 0..1_000 {
            hints.update(&names(if i % 2 == 0 { &["b"] } else { &["a", "b"] }));
        }
        assert_eq!(hints.lists(), 3, "one per distinct list");
        assert_eq!(bytes(hints.latest()), [b"a", b"b"]);
        hints.update(&names(&["a"]));
        assert_eq!(bytes(hints.latest()), [b"a"]);

        // Distinct lists past the slots: bounded, and a list without room names no CA.
        for i in 0..3 * LISTS {
            hints.update(&names(&[&format!("CA {i}")]));
            assert!(hints.lists() <= LISTS);
        }
        assert_eq!(hints.lists(), LISTS);
        assert!(hints.latest().is_empty());
        hints.update(&names(&["a", "b"]));
        assert_eq!(
            bytes(hints.latest()),
            [b"a", b"b"],
            "a kept list is named again"
        );
    }

    #[test]
    fn a_list_past_the_byte_budget_is_not_kept() {
        let hints = Hints::new(names(&["a"]));
        let big = "x".repeat(BYTES);
        hints.update(&names(&[&big]));
        assert!(hints.latest().is_empty());
        assert_eq!(hints.lists(), 1);
        // The first list is kept whatever its size.
        let first = Hints::new(names(&[&big]));
        assert_eq!(first.latest().len(), 1);
    }

    /// Records the CA names of the server's CertificateRequest, and sends no certificate.
    #[derive(Debug, Default)]
    struct Asked(Mutex<Option<Vec<Vec<u8>>>>);

    impl ResolvesClientCert for Asked {
        fn resolve(&self, hints: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            *self.0.lock().unwrap() = Some(hints.iter().map(|h| h.to_vec()).collect());
            None
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    /// The CA names a handshake with `server` is asked for, exchanged in memory.
    fn asked_names(
        server: Arc<ServerConfig>,
        ca: &DevCa,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Vec<Vec<u8>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(ca.trust().unwrap().certificates().iter().cloned());
        let asked = Arc::new(Asked::default());
        let client = ClientConfig::builder_with_provider(crate::crypto_provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(asked.clone());
        let mut client =
            ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        let mut server = ServerConnection::new(server).unwrap();
        // Each flight in turn until the client has been asked (or either side gives up).
        for _ in 0..8 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                server.read_tls(&mut rest).unwrap();
            }
            if server.process_new_packets().is_err() {
                break;
            }
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
            }
            if client.process_new_packets().is_err() || asked.0.lock().unwrap().is_some() {
                break;
            }
        }
        let names = asked.0.lock().unwrap().take();
        names.expect("the server asked for a client certificate")
    }

    fn subject(ca: &DevCa) -> Vec<u8> {
        let der = ca.trust().unwrap().certificates()[0].clone();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.subject().as_raw().to_vec()
    }

    #[test]
    fn after_many_trust_changes_a_handshake_is_asked_for_the_current_cas() {
        let (one, two) = (DevCa::new("CA one").unwrap(), DevCa::new("CA two").unwrap());
        let handle = Server::builder()
            .identity(one.server("localhost").unwrap().identity().unwrap())
            .trust(one.trust().unwrap())
            .authorize(Authorizer::any_verified())
            .build_rustls_config()
            .unwrap();
        let both = || vec![one.trust().unwrap(), two.trust().unwrap()];
        for i in 0..1_000 {
            let trust = if i % 2 == 0 {
                both()
            } else {
                vec![one.trust().unwrap()]
            };
            handle.set_trust(trust).unwrap();
        }
        assert!(
            handle.live().hint_lists() <= 2,
            "{}",
            handle.live().hint_lists()
        );
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            assert_eq!(
                asked_names(handle.rustls_config(), &one, version),
                vec![subject(&one)]
            );
        }
        handle.set_trust(both()).unwrap();
        assert_eq!(
            asked_names(handle.rustls_config(), &one, &rustls::version::TLS13),
            vec![subject(&one), subject(&two)]
        );
    }
}
