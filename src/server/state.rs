//! What every connection task of a server reads, and the material it was built from.

use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use crate::error::Error;
use crate::live::tls::{TlsOptions, server_generation};
use crate::live::{LiveServer, ServerGeneration};
use crate::policy::authorizer::Authorizer;
use crate::rotate::{Live, ReloadState, Role, Target};
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
    pub(crate) material: Mutex<Material>,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) reload: ReloadState,
    pub(crate) limits: Limits,
}

impl Shared {
    fn material(&self) -> std::sync::MutexGuard<'_, Material> {
        self.material
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds a generation from the changed material and swaps it in; on error nothing
    /// changes.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Material)) -> Result<(), Error> {
        let mut material = self.material();
        let mut candidate = material.clone();
        change(&mut candidate);
        self.live.install(candidate.generation(&self.provider)?);
        *material = candidate;
        Ok(())
    }
}

impl Target for Shared {
    fn role(&self) -> Role {
        Role::Server
    }

    fn current(&self) -> Live {
        let material = self.material();
        material.live.clone()
    }

    fn install(&self, live: Live) -> Result<(), Error> {
        // Only identity, trust and CRLs change: the policy and client-auth mode are kept, so
        // a reload can never turn client authentication off.
        self.update(|m| m.live = live)
    }

    fn reload_state(&self) -> &ReloadState {
        &self.reload
    }

    fn tolerates_expired_crls(&self) -> bool {
        self.material().tls.revocation.allow_expired_crls
    }
}

#[derive(Clone)]
pub(crate) struct Material {
    pub(crate) live: Live,
    pub(crate) policy: Authorizer,
    pub(crate) client_auth: ClientAuth,
    pub(crate) tls: TlsOptions,
}

impl Material {
    pub(crate) fn generation(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<ServerGeneration, Error> {
        server_generation(
            provider,
            &self.live.identity,
            &self.live.effective_trust(),
            self.client_auth,
            &self.policy,
            self.tls,
        )
    }
}
