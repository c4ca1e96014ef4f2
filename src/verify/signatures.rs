//! A process-wide memory of certificate signatures that verified, so that a peer that comes
//! back with the same certificate costs one public-key verification less per handshake.
//!
//! A full mTLS handshake has the server verify two signatures: the client's CertificateVerify
//! (new every time) and the CA's signature on the client's certificate (the same every time
//! the same client connects). ECDSA P-256 verification is the most expensive public-key
//! operation of the handshake, so the second one is worth remembering. The chain's other
//! checks (validity dates, key usage, name constraints, revocation, the path to a trust
//! anchor we trust *now*) and our policy still run on every handshake; only the arithmetic of
//! "this signature over these bytes verifies under this key" is remembered.
//!
//! Soundness: an entry is the SHA-256 of the algorithm, the public key, the signed message
//! and the signature, stored only after that exact verification succeeded. A hit therefore
//! means the same bytes verified before, which is a fact that no change of trust or policy
//! undoes; forging a hit means finding a SHA-256 collision. Failures are never stored, so
//! bad signatures cost a full verification each time. The memory is bounded
//! (two parts of at most [`PART`] entries: 32-byte keys, about 400 KiB at most).
//!
//! Only certificate and CRL signatures go through it (webpki's chain verification, in both
//! our client-certificate and server-certificate verifiers); the handshake's own signatures
//! (CertificateVerify) are verified directly, never remembered.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};

/// Entries per part: when the current one is full it becomes the previous one, and
/// the previous one is forgotten. An entry used from the previous part moves back.
const PART: usize = 4096;

type Memory = crate::util::cache::TwoPartCache<()>;

static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();

fn memory() -> std::sync::MutexGuard<'static, Memory> {
    MEMORY
        .get_or_init(|| Mutex::new(Memory::new(PART)))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
thread_local! {
    /// Verifications answered from memory, and ones that ran, on this thread (the verifiers
    /// run on the caller's thread, so a test sees only its own).
    static COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Counts a verification for the tests; nothing in a build without them.
fn count(hit: bool) {
    #[cfg(test)]
    COUNTS.with(|c| {
        let (hits, misses) = c.get();
        c.set(if hit {
            (hits + 1, misses)
        } else {
            (hits, misses + 1)
        });
    });
    let _ = hit;
}

fn remembered(key: &[u8; 32]) -> bool {
    memory().get(key, |_| true).is_some()
}

fn remember(key: [u8; 32]) {
    memory().insert(key, ());
}

/// One of the provider's algorithms, answering from memory when it can.
struct Remembering {
    inner: &'static dyn SignatureVerificationAlgorithm,
}

impl fmt::Debug for Remembering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Remembering").field(&self.inner).finish()
    }
}

impl SignatureVerificationAlgorithm for Remembering {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let public_key_alg = self.inner.public_key_alg_id();
        let signature_alg = self.inner.signature_alg_id();
        // Each part is preceded by its length, so that no two inputs hash alike.
        let key = crate::util::provider::sha256_parts(&[
            public_key_alg.as_ref(),
            signature_alg.as_ref(),
            public_key,
            message,
            signature,
        ]);
        if remembered(&key) {
            count(true);
            return Ok(());
        }
        count(false);
        self.inner
            .verify_signature(public_key, message, signature)?;
        remember(key);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

type Algorithms = &'static [&'static dyn SignatureVerificationAlgorithm];

/// `algorithms` for certificate chains, with every algorithm answering from memory.
///
/// The wrappers are made once per distinct set of algorithms (one per crypto provider in
/// practice) and live for the process: webpki takes them as `'static`.
pub(crate) fn for_chains(algorithms: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    static MADE: OnceLock<Mutex<Vec<(usize, Algorithms)>>> = OnceLock::new();
    let made = MADE.get_or_init(|| Mutex::new(Vec::new()));
    let mut made = made.lock().unwrap_or_else(PoisonError::into_inner);
    let id = algorithms.all.as_ptr() as *const () as usize;
    let all = match made.iter().find(|(known, _)| *known == id) {
        Some((_, all)) => *all,
        None => {
            let wrapped: Vec<&'static dyn SignatureVerificationAlgorithm> = algorithms
                .all
                .iter()
                .map(|inner| {
                    let remembering: &'static Remembering =
                        Box::leak(Box::new(Remembering { inner: *inner }));
                    remembering as &'static dyn SignatureVerificationAlgorithm
                })
                .collect();
            let all: Algorithms = Box::leak(wrapped.into_boxed_slice());
            made.push((id, all));
            all
        }
    };
    WebPkiSupportedAlgorithms {
        all,
        // Handshake signatures (CertificateVerify) are new every time: not remembered.
        mapping: algorithms.mapping,
    }
}

/// `provider` with its chain algorithms answering from memory ([`for_chains`]), for rustls'
/// webpki verifiers: they check chains with `all` and handshake signatures with `mapping`,
/// which stays the provider's own.
pub(crate) fn chain_provider(provider: &CryptoProvider) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        signature_verification_algorithms: for_chains(provider.signature_verification_algorithms),
        ..provider.clone()
    })
}

/// (answered from memory, verified) on this thread so far.
#[cfg(test)]
pub(crate) fn counts() -> (u64, u64) {
    COUNTS.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Signed {
        algorithm: &'static dyn SignatureVerificationAlgorithm,
        public_key: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    }

    fn ecdsa_p256() -> Signed {
        use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let provider = crate::util::provider::crypto_provider();
        let algorithms = for_chains(provider.signature_verification_algorithms);
        let algorithm = *algorithms
            .all
            .iter()
            .find(|a| {
                a.signature_alg_id() == rustls_pki_types::alg_id::ECDSA_SHA256
                    && a.public_key_alg_id() == rustls_pki_types::alg_id::ECDSA_P256
            })
            .unwrap();
        let signer = provider
            .key_provider
            .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(
                key.serialize_der().into(),
            ))
            .unwrap()
            .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
            .unwrap();
        let message = b"tbsCertificate stand-in".to_vec();
        let signature = signer.sign(&message).unwrap();
        Signed {
            algorithm,
            public_key: key.public_key_raw().to_vec(),
            message,
            signature,
        }
    }

    #[test]
    fn a_signature_that_verified_is_remembered_and_a_bad_one_never_is() {
        let Signed {
            algorithm,
            public_key,
            message,
            signature,
        } = ecdsa_p256();
        let (message, signature) = (&message[..], &signature[..]);

        let (hits, misses) = counts();
        algorithm
            .verify_signature(&public_key, message, signature)
            .expect("a good signature verifies");
        assert_eq!(
            counts(),
            (hits, misses + 1),
            "the first time it is verified"
        );
        algorithm
            .verify_signature(&public_key, message, signature)
            .expect("and again");
        assert_eq!(
            counts(),
            (hits + 1, misses + 1),
            "the second time it is remembered"
        );

        // One changed bit anywhere is a different entry, verified in full and refused.
        let mut bad_signature = signature.to_vec();
        let last = bad_signature.len() - 1;
        bad_signature[last] ^= 1;
        let mut bad_message = message.to_vec();
        bad_message[0] ^= 1;
        let mut bad_key = public_key.clone();
        bad_key[10] ^= 1;
        for _ in 0..2 {
            assert!(
                algorithm
                    .verify_signature(&public_key, message, &bad_signature)
                    .is_err()
            );
            assert!(
                algorithm
                    .verify_signature(&public_key, &bad_message, signature)
                    .is_err()
            );
            assert!(
                algorithm
                    .verify_signature(&bad_key, message, signature)
                    .is_err()
            );
        }
        assert_eq!(
            counts().0,
            hits + 1,
            "no bad signature was answered from memory"
        );
    }

    #[test]
    fn handshake_signatures_are_not_wrapped_and_wrappers_are_made_once() {
        let provider = crate::util::provider::crypto_provider();
        let plain = provider.signature_verification_algorithms;
        let a = for_chains(plain);
        let b = for_chains(plain);
        assert_eq!(a.all.as_ptr(), b.all.as_ptr(), "made once per set");
        assert_eq!(a.all.len(), plain.all.len());
        assert_eq!(a.mapping.as_ptr(), plain.mapping.as_ptr());
    }

    #[test]
    fn memory_is_bounded() {
        let mut memory = Memory::new(PART);
        for i in 0..(3 * PART as u32) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            memory.insert(key, ());
        }
        assert!(memory.len() <= 2 * PART);
        assert!(memory.len() > PART, "a full part is kept, not cleared");
    }

    #[test]
    fn an_entry_used_from_the_previous_part_moves_back() {
        let key = |i: u32| {
            let mut key = [0xa5u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            key
        };
        let kept = key(u32::MAX);
        remember(kept);
        // A whole part after it: it is in the previous one now (other tests' entries
        // only push it further).
        for i in 0..PART as u32 {
            remember(key(i));
        }
        assert!(memory().current(&kept).is_none());
        assert!(remembered(&kept));
        assert!(memory().current(&kept).is_some(), "moved back");
    }
}

#[cfg(all(test, feature = "dev"))]
mod verifier_tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::server::danger::ClientCertVerifier;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use crate::verify::{ClientIdentityVerifier, ServerIdentityVerifier};

    /// Runs `verify` twice and says whether the second run was answered from memory.
    fn second_is_remembered(verify: impl Fn()) -> bool {
        verify();
        let (hits, misses) = super::counts();
        verify();
        super::counts() == (hits + 1, misses)
    }

    #[test]
    fn both_verifiers_remember_a_returning_peers_chain_signature() {
        let ca = crate::dev::DevCa::new("test CA").unwrap();
        let provider = crate::util::provider::crypto_provider();
        let server = ca.server("localhost").unwrap();
        let server_leaf = CertificateDer::from(server.der().to_vec());
        let by_name = ServerIdentityVerifier::new(
            provider.clone(),
            &[ca.trust().unwrap()],
            None,
            Default::default(),
        )
        .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        assert!(second_is_remembered(|| {
            by_name
                .verify_server_cert(&server_leaf, &[], &name, &[], UnixTime::now())
                .unwrap();
        }));

        let client = ca.client("spiffe://example.org/orders").unwrap();
        let client_leaf = CertificateDer::from(client.der().to_vec());
        let verifier = ClientIdentityVerifier::new(
            provider,
            &[ca.trust().unwrap()],
            crate::Authorizer::any_verified(),
            crate::ClientAuth::Required,
            Default::default(),
        )
        .unwrap();
        assert!(second_is_remembered(|| {
            verifier
                .verify_client_cert(&client_leaf, &[], UnixTime::now())
                .unwrap();
        }));
    }
}
