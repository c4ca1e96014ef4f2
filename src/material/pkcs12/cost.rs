//! Limits on the password-hashing work a PKCS#12 store may ask for.
//!
//! A store names its own cost parameters: the integrity MAC's iteration count (an `i32`, so up to
//! 2^31 rounds, run before the MAC can say whether the file is genuine), PBKDF2's iteration count
//! (a `u32`) and scrypt's `N`, `r` and `p` (scrypt allocates `128·r·(N + p)` bytes, which a store
//! can push to 2^50 and more, and a failed allocation aborts the process). Every derivation is
//! charged to a [`Budget`] before it runs, so a hostile or damaged file costs at most
//! [`MAX_TOTAL_ROUNDS`] rounds and [`MAX_SCRYPT_MEMORY`] bytes, and is refused with
//! [`LoadError::Pkcs12TooCostly`] naming the parameter.
//!
//! The limits are far above what the tools write: `openssl pkcs12` 3.x uses 2,048 iterations,
//! `keytool` (JDK 17 and later) 10,000, OWASP's 2023 advice for PBKDF2-HMAC-SHA-256 is 600,000,
//! and scrypt as `openssl pkcs8 -scrypt` writes it (`N` = 16,384, `r` = 8, `p` = 1) takes 16 MiB.

use crate::error::{LoadError, Origin};

/// Rounds one derivation may run: a MAC or PBKDF2 iteration count, or scrypt's `N·r·p`. One
/// round is one or two SHA-256 compressions (one scrypt unit is four Salsa20/8 cores, about as
/// much), so one derivation is at most 20,000,000 compressions: seconds of one core, never
/// hours (the time measured is in `docs/PERFORMANCE.md`, "PKCS#12 key derivation").
pub(crate) const MAX_ROUNDS: u64 = 10_000_000;

/// Rounds a whole store may run: its MAC, its encrypted certificates and one key at
/// [`MAX_ROUNDS`] each (what `openssl pkcs12 -export -iter 10000000` writes), or thousands of
/// entries at the tools' defaults.
pub(crate) const MAX_TOTAL_ROUNDS: u64 = 3 * MAX_ROUNDS;

/// Bytes one scrypt derivation may allocate, `128·r·(N + p)`: 256 MiB, sixteen times what
/// `openssl pkcs8 -scrypt` asks for and eight times OpenSSL's own default scrypt memory limit.
pub(crate) const MAX_SCRYPT_MEMORY: u64 = 256 << 20;

/// The rounds charged so far while reading one store.
#[derive(Debug, Default)]
pub(super) struct Budget {
    spent: u64,
}

impl Budget {
    /// Charges the integrity MAC's derivation; returns its iteration count.
    pub(super) fn mac(&mut self, iterations: i32, origin: &Origin) -> Result<i32, LoadError> {
        if iterations < 1 {
            return Err(LoadError::Pkcs12 {
                origin: origin.clone(),
                detail: format!("the MAC iteration count {iterations} is not positive"),
            });
        }
        self.charge("MAC iterations", iterations as u64, origin)?;
        Ok(iterations)
    }

    /// Charges a PBES2 scheme's key derivation, before it runs.
    pub(super) fn pbes2(
        &mut self,
        params: &pkcs5::pbes2::Parameters<'_>,
        origin: &Origin,
    ) -> Result<(), LoadError> {
        match &params.kdf {
            pkcs5::pbes2::Kdf::Pbkdf2(pbkdf2) => {
                self.charge("PBKDF2 iterations", pbkdf2.iteration_count.into(), origin)
            }
            pkcs5::pbes2::Kdf::Scrypt(scrypt) => {
                let (n, r, p) = (
                    u128::from(scrypt.cost_parameter),
                    u128::from(scrypt.block_size),
                    u128::from(scrypt.parallelization),
                );
                // scrypt is defined for N a power of two above 1 and r, p at least 1; the
                // derivation's own arithmetic assumes it.
                if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
                    return Err(LoadError::Pkcs12 {
                        origin: origin.clone(),
                        detail: format!(
                            "the scrypt parameters N = {n}, r = {r}, p = {p} are invalid (N must be a power of two above 1, r and p at least 1); export the store again"
                        ),
                    });
                }
                let saturate = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
                let memory = saturate(128 * r * (n + p));
                if memory > MAX_SCRYPT_MEMORY {
                    return Err(too_costly(
                        origin,
                        "scrypt memory in bytes (128·r·(N + p))",
                        memory,
                        MAX_SCRYPT_MEMORY,
                    ));
                }
                self.charge("scrypt work (N·r·p)", saturate(n * r * p), origin)
            }
            other => Err(LoadError::Pkcs12 {
                origin: origin.clone(),
                detail: format!("the key derivation {} is not supported", other.oid()),
            }),
        }
    }

    fn charge(
        &mut self,
        parameter: &'static str,
        rounds: u64,
        origin: &Origin,
    ) -> Result<(), LoadError> {
        if rounds > MAX_ROUNDS {
            return Err(too_costly(origin, parameter, rounds, MAX_ROUNDS));
        }
        let spent = self.spent.saturating_add(rounds);
        if spent > MAX_TOTAL_ROUNDS {
            return Err(too_costly(
                origin,
                "key-derivation rounds of the whole store (MAC and every encrypted part together)",
                spent,
                MAX_TOTAL_ROUNDS,
            ));
        }
        self.spent = spent;
        Ok(())
    }
}

fn too_costly(origin: &Origin, parameter: &'static str, value: u64, limit: u64) -> LoadError {
    LoadError::Pkcs12TooCostly {
        origin: origin.clone(),
        parameter,
        value,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::Memory("test store")
    }

    #[test]
    fn the_tools_defaults_fit_and_the_limits_hold() {
        let mut budget = Budget::default();
        assert_eq!(budget.mac(2048, &origin()).unwrap(), 2048);
        assert!(budget.mac(i32::MAX, &origin()).is_err());
        assert!(budget.mac(0, &origin()).is_err());
        assert!(
            budget
                .charge("PBKDF2 iterations", MAX_ROUNDS, &origin())
                .is_ok()
        );
        assert!(
            budget
                .charge("PBKDF2 iterations", MAX_ROUNDS, &origin())
                .is_ok()
        );
        let err = budget
            .charge("PBKDF2 iterations", MAX_ROUNDS, &origin())
            .unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::Pkcs12TooCostly {
                    limit: MAX_TOTAL_ROUNDS,
                    ..
                }
            ),
            "{err}"
        );
        let err = Budget::default()
            .charge("PBKDF2 iterations", u32::MAX.into(), &origin())
            .unwrap_err();
        assert!(
            err.to_string().contains("PBKDF2 iterations = 4294967295"),
            "{err}"
        );
    }

    #[test]
    fn scrypt_parameters_outside_scrypt_are_refused_before_the_derivation() {
        let params = |n: u64, r: u16, p: u16| pkcs5::pbes2::Parameters {
            kdf: pkcs5::pbes2::Kdf::Scrypt(pkcs5::pbes2::ScryptParams {
                salt: b"salt",
                cost_parameter: n,
                block_size: r,
                parallelization: p,
                key_length: Some(32),
            }),
            encryption: pkcs5::pbes2::EncryptionScheme::Aes256Cbc { iv: &[0; 16] },
        };
        for (n, r, p) in [
            (0, 8, 1),
            (1, 8, 1),
            (3000, 8, 1),
            (16_384, 0, 1),
            (16_384, 8, 0),
        ] {
            let err = Budget::default()
                .pbes2(&params(n, r, p), &origin())
                .unwrap_err();
            assert!(
                err.to_string().contains("are invalid"),
                "{n} {r} {p}: {err}"
            );
        }
        assert!(
            Budget::default()
                .pbes2(&params(16_384, 8, 1), &origin())
                .is_ok()
        );
    }
}
