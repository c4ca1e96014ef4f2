//! The public-key operations of a full mTLS handshake, timed one at a time on one core
//! through the rustls crypto provider the servers use, and the handshake rate they bound.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use rustls::SignatureScheme;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Operations per second on one core.
#[derive(Clone)]
pub struct Speed {
    pub sign: f64,
    pub verify: f64,
    /// X25519 key generation and shared-secret derivation. `openssl speed` times only the
    /// derivation; for it both are set to that rate.
    pub keygen: f64,
    pub derive: f64,
}

impl Speed {
    /// CPU seconds of public-key work one side spends on a full mTLS handshake with an ECDSA
    /// P-256 leaf issued directly by the trusted CA: one signature (its CertificateVerify),
    /// two verifications (the peer's CertificateVerify and the CA's signature on the peer's
    /// leaf) and one X25519 key pair plus one derivation. Both sides do the same.
    pub fn per_side(&self) -> f64 {
        1.0 / self.sign + 2.0 / self.verify + 1.0 / self.keygen + 1.0 / self.derive
    }

    /// The most full handshakes per second `cores` could complete if they did nothing but
    /// this public-key work, for both sides (the load generator shares the cores) or for the
    /// server's side alone.
    pub fn bound(&self, cores: usize, both_sides: bool) -> f64 {
        let sides = if both_sides { 2.0 } else { 1.0 };
        cores as f64 / (sides * self.per_side())
    }
}

/// Times each operation for about `seconds`, on this thread.
pub fn measure(dir: &Path, seconds: f64) -> Speed {
    let provider = mtls::crypto_provider();
    let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .unwrap()
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .expect("an ECDSA P-256 key");
    // What TLS 1.3 signs: 64 spaces, a context string, a zero byte, a SHA-256 transcript hash.
    let mut message = vec![0x20u8; 64];
    message.extend_from_slice(b"TLS 1.3, client CertificateVerify\0");
    message.extend_from_slice(&[0x5a; 32]);
    let signature = signer.sign(&message).unwrap();

    let leaf = CertificateDer::from_pem_file(dir.join("client.pem")).unwrap();
    let public_key = {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
        cert.public_key().subject_public_key.data.to_vec()
    };
    let verifier = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == SignatureScheme::ECDSA_NISTP256_SHA256)
        .map(|(_, algs)| algs[0])
        .expect("ECDSA P-256 verification");
    verifier
        .verify_signature(&public_key, &message, &signature)
        .expect("the signature verifies");

    let x25519 = provider
        .kx_groups
        .iter()
        .find(|g| g.name() == rustls::NamedGroup::X25519)
        .expect("X25519");
    let peer = x25519.start().unwrap().pub_key().to_vec();

    let sign = rate(seconds, || {
        black_box(signer.sign(black_box(&message)).unwrap());
    });
    let verify = rate(seconds, || {
        verifier
            .verify_signature(black_box(&public_key), black_box(&message), &signature)
            .unwrap();
    });
    let keygen = rate(seconds, || {
        black_box(x25519.start().unwrap());
    });
    let both = rate(seconds, || {
        black_box(x25519.start().unwrap().complete(black_box(&peer)).unwrap());
    });
    Speed {
        sign,
        verify,
        keygen,
        // Key generation and derivation together, less key generation.
        derive: 1.0 / (1.0 / both - 1.0 / keygen),
    }
}

fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed` for ECDSA P-256 (sign and verify) and X25519, `seconds` per operation on
/// one core, run through `timeout`; `None` (with the reason on standard error) when it fails
/// or its output cannot be read.
pub fn openssl_speed(openssl: &Path, seconds: u32) -> Option<Speed> {
    let output = std::process::Command::new("timeout")
        .arg("120")
        .arg(openssl)
        .args(["speed", "-seconds", &seconds.to_string(), "-mr"])
        .args(["ecdsap256", "ecdhx25519"])
        .stderr(std::process::Stdio::null())
        .output();
    let text = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            eprintln!("openssl speed failed: {}", out.status);
            return None;
        }
        Err(e) => {
            eprintln!("openssl speed did not run: {e}");
            return None;
        }
    };
    let speed = parse_openssl_speed(&text);
    if speed.is_none() {
        eprintln!("openssl speed: no ECDSA P-256 and X25519 figures in its output");
    }
    speed
}

/// Reads `openssl speed -mr`'s lines `+F4:<n>:256:<sign/s>:<verify/s>` and
/// `+F5:<n>:253:<derive/s>:<s/op>`.
fn parse_openssl_speed(text: &str) -> Option<Speed> {
    let field =
        |line: &str, i: usize| -> Option<f64> { line.split(':').nth(i)?.trim().parse().ok() };
    let ecdsa = text
        .lines()
        .find(|l| l.starts_with("+F4:") && l.split(':').nth(2) == Some("256"))?;
    let x25519 = text
        .lines()
        .find(|l| l.starts_with("+F5:") && l.split(':').nth(2) == Some("253"))?;
    let derive = field(x25519, 3)?;
    let speed = Speed {
        sign: field(ecdsa, 3)?,
        verify: field(ecdsa, 4)?,
        keygen: derive,
        derive,
    };
    [speed.sign, speed.verify, derive]
        .iter()
        .all(|v| v.is_finite() && *v > 0.0)
        .then_some(speed)
}
