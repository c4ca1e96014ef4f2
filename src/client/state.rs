//! What a client's connections read (its live TLS configuration) and the material it was
//! built from, which rotation replaces.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::ClientConfig;

use crate::client::Client;
use crate::error::Error;
use crate::live::LiveClient;
use crate::live::tls::{TlsOptions, client_generation};
use crate::material::{Identity, TrustBundle};
use crate::policy::authorizer::Authorizer;
use crate::rotate::status::{CertificateStatus, status};
use crate::rotate::{Material, ReloadState, Role, Rotate, Target, Update, rotate};

/// The client's live TLS configuration and what it was built from.
pub(crate) struct ClientShared {
    /// The material each handshake reads; a swap reaches new connections only.
    pub(crate) live: Arc<LiveClient>,
    /// The config `rustls_config()` hands out: over the same `live` as the connector's, with
    /// no session store.
    pub(crate) handed_out: Arc<ClientConfig>,
    pub(crate) recipe: Mutex<Recipe>,
    pub(crate) provider: Arc<rustls::crypto::CryptoProvider>,
    pub(crate) reload: ReloadState,
}

pub(crate) struct Recipe {
    pub(crate) material: Material,
    pub(crate) expect_server: Option<Authorizer>,
    pub(crate) tls: TlsOptions,
}

impl Target for ClientShared {
    fn role(&self) -> Role {
        Role::Client
    }

    fn current(&self) -> Material {
        let m = self.recipe.lock().unwrap_or_else(PoisonError::into_inner);
        m.material.clone()
    }

    fn install(&self, material: Material) -> Result<(), Error> {
        let mut m = self.recipe.lock().unwrap_or_else(PoisonError::into_inner);
        // The server check (`expect_server` or the host name) is kept as it was.
        let generation = client_generation(
            &self.provider,
            &material.identity,
            &material.effective_trust(),
            m.expect_server.clone(),
            m.tls,
        )?;
        self.live.install(generation);
        m.material = material;
        Ok(())
    }

    fn reload_state(&self) -> &ReloadState {
        &self.reload
    }

    fn tolerates_expired_crls(&self) -> bool {
        let m = self.recipe.lock().unwrap_or_else(PoisonError::into_inner);
        m.tls.revocation.allow_expired_crls
    }
}

impl Rotate for Client {
    fn set_identity(&self, identity: Identity) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::identity(identity))
    }

    fn set_trust(&self, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::trust(trust))
    }

    fn set_material(&self, identity: Identity, trust: Vec<TrustBundle>) -> Result<(), Error> {
        rotate(&*self.0.shared, Update::material(identity, trust))
    }

    fn certificate_status(&self) -> CertificateStatus {
        status(&*self.0.shared)
    }
}
