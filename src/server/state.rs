//! What every connection task of a server reads, and the material it was built from.

use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use crate::error::Error;
use crate::live::tls::{TlsOptions, server_generation};
use crate::live::{LiveServer, ServerGeneration};
use crate::policy::authorizer::Authorizer;
use crate::rotate::{Material, ReloadState, Role, Target};
use crate::server::limits::Limits;
use crate::server::stats::ServerStats;
use crate::verify::ClientAuth;

/// What every connection task reads.
pub(crate) struct Shared {
    /// The material handshakes read; swapping a generation changes new handshakes only.
    pub(crate) live: Arc<LiveServer>,
    /// Our accept loop's rustls config, over `live`, with its session caches.
    pub(crate) config: Arc<ServerConfig>,
    /// The config `rustls_config()` hands out: over the same `live`, with no session cache.
    pub(crate) handed_out: Arc<ServerConfig>,
    /// What the current generation was built from, to rebuild it when one part changes.
    pub(crate) recipe: Mutex<Recipe>,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) reload: ReloadState,
    pub(crate) limits: Limits,
}

impl Shared {
    fn recipe(&self) -> std::sync::MutexGuard<'_, Recipe> {
        self.recipe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds a generation from the changed material and swaps it in; on error nothing
    /// changes.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Recipe)) -> Result<(), Error> {
        let mut recipe = self.recipe();
        let mut candidate = recipe.clone();
        change(&mut candidate);
        self.live.install(candidate.generation(&self.provider)?);
        *recipe = candidate;
        Ok(())
    }
}

impl Target for Shared {
    fn role(&self) -> Role {
        Role::Server
    }

    fn current(&self) -> Material {
        self.recipe().material.clone()
    }

    fn install(&self, material: Material) -> Result<(), Error> {
        // Only identity, trust and CRLs change: the policy and client-auth mode are kept, so
        // a reload can never turn client authentication off.
        self.update(|m| m.material = material)
    }

    fn reload_state(&self) -> &ReloadState {
        &self.reload
    }

    fn tolerates_expired_crls(&self) -> bool {
        self.recipe().tls.revocation.allow_expired_crls
    }
}

#[derive(Clone)]
pub(crate) struct Recipe {
    pub(crate) material: Material,
    pub(crate) policy: Authorizer,
    pub(crate) client_auth: ClientAuth,
    pub(crate) tls: TlsOptions,
}

impl Recipe {
    pub(crate) fn generation(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<ServerGeneration, Error> {
        server_generation(
            provider,
            &self.material.identity,
            &self.material.effective_trust(),
            self.client_auth,
            &self.policy,
            self.tls,
        )
    }
}
