//! Swapping material in: [`Rotate`] for code, the `Target` a server or client exposes, and
//! the checks a candidate passes before it is installed.

use std::sync::PoisonError;
use std::time::SystemTime;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};

use super::Material;
use super::reload_state::ReloadState;
use crate::error::{Error, LoadError};
use crate::material::{Crls, Identity, TrustBundle};
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::rotate::status::CertificateStatus;
use crate::util::provider::crypto_provider;
use crate::verify::{ClientAuth, ClientIdentityVerifier, RevocationPolicy, ServerIdentityVerifier};

/// Swaps new material into a running [`ServerHandle`](crate::ServerHandle) or
/// [`Client`](crate::Client), with the same validation the file watcher applies.
///
/// Use it to push certificates from Vault, SPIRE or your own control plane. A candidate is
/// installed only when every check passes: it parsed (that is, it is an [`Identity`] or
/// [`TrustBundle`] at all), the key matches the leaf, the leaf is valid now, and the chain
/// builds to the trust bundle (when the current identity's did). Otherwise the current material
/// stays, the failure is logged and counted, and the error is returned. Client authentication
/// is never turned off by a swap: only the identity and trust change.
///
/// New handshakes use the new material; established connections keep theirs. Sessions issued
/// before the swap do not resume after it.
///
/// # Examples
///
/// ```no_run
/// use mtls::{Identity, Rotate};
///
/// fn on_new_certificate(target: &impl Rotate, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), mtls::Error> {
///     target.set_identity(Identity::from_pem(cert_pem, key_pem)?)
/// }
/// ```
pub trait Rotate {
    /// Replaces our certificate chain and key.
    ///
    /// # Errors
    ///
    /// [`Error::NotValidNow`] or [`Error::DoesNotChain`] when the candidate fails validation,
    /// [`Error::Tls`] when rustls refuses it. The current material stays in use.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Rotate;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let renewed = ca.server("localhost")?.identity()?;
    /// handle.set_identity(renewed)?;
    /// assert_eq!(handle.certificate_status().reloads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn set_identity(&self, identity: Identity) -> Result<(), Error>;

    /// Replaces every trust bundle.
    ///
    /// What the new set leaves out stays out when watched trust files change later: a pushed
    /// bundle equal to a watched file's current content keeps following that file, every
    /// other pushed bundle is kept as given, and a file whose bundle was left out is no longer
    /// followed (docs/ROTATION.md, "Code and watched files together").
    ///
    /// # Errors
    ///
    /// [`Error::MissingTrust`] for an empty list, [`Error::DoesNotChain`] when our own
    /// certificate would no longer chain to the new trust (it did to the old), and
    /// [`Error::Tls`] or [`Error::Verifier`] when rustls refuses it.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Rotate;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let next_ca = mtls::dev::DevCa::new("next CA")?;
    /// handle.set_trust(vec![ca.trust()?, next_ca.trust()?])?; // trust the new CA beside the old
    /// // Our own certificate would no longer chain: refused, the current trust stays.
    /// let refused = handle.set_trust(vec![next_ca.trust()?]);
    /// assert!(matches!(refused, Err(mtls::Error::DoesNotChain { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn set_trust(&self, trust: Vec<TrustBundle>) -> Result<(), Error>;

    /// Replaces identity and trust together, as one candidate (as for a CA rotation where
    /// both change at once).
    ///
    /// # Errors
    ///
    /// As [`Rotate::set_identity`] and [`Rotate::set_trust`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Rotate;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let new_ca = mtls::dev::DevCa::new("new CA")?;
    /// handle.set_material(new_ca.server("localhost")?.identity()?, vec![new_ca.trust()?])?;
    /// assert_eq!(handle.certificate_status().trust_anchors[0].subject, "CN=new CA");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn set_material(&self, identity: Identity, trust: Vec<TrustBundle>) -> Result<(), Error>;

    /// Our leaf and trust anchors, with their expiry, and how the last reload went.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls::Rotate;
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let handle = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .build_rustls_config()?;
    /// let status = handle.certificate_status();
    /// assert!(!status.identity.expired && status.last_reload_error.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn certificate_status(&self) -> CertificateStatus;
}

/// Which side of the connection our identity is for, to check its chain with the right usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// A candidate change: each part given replaces the current one, the rest stays.
#[derive(Default)]
pub(crate) struct Update {
    pub(crate) identity: Option<Identity>,
    /// A whole set pushed from code ([`Material::pushed`]).
    pub(crate) trust: Option<Vec<TrustBundle>>,
    /// The watched trust files read again, one result per file ([`Material::reread`]).
    pub(crate) trust_files: Option<Vec<Result<TrustBundle, LoadError>>>,
    pub(crate) crls: Option<Vec<Crls>>,
}

impl Update {
    pub(crate) fn identity(identity: Identity) -> Self {
        Update {
            identity: Some(identity),
            ..Update::default()
        }
    }

    pub(crate) fn trust(trust: Vec<TrustBundle>) -> Self {
        Update {
            trust: Some(trust),
            ..Update::default()
        }
    }

    pub(crate) fn material(identity: Identity, trust: Vec<TrustBundle>) -> Self {
        Update {
            identity: Some(identity),
            trust: Some(trust),
            ..Update::default()
        }
    }
}

/// What the server and client expose to the rotation machinery.
pub(crate) trait Target: Send + Sync + 'static {
    fn role(&self) -> Role;
    fn current(&self) -> Material;
    /// Builds the TLS configuration from this material and swaps it in.
    fn install(&self, material: Material) -> Result<(), Error>;
    fn reload_state(&self) -> &ReloadState;
    /// Whether a CRL past its `nextUpdate` is used anyway (`allow_expired_crls`).
    fn tolerates_expired_crls(&self) -> bool;
}

/// Validates and installs a candidate; records and logs the outcome.
pub(crate) fn rotate(target: &dyn Target, update: Update) -> Result<(), Error> {
    rotate_logged(target, update, Report::Always)
}

/// Which failures of a rotation are logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    Always,
    /// Not a failure identical to the last one (the file watcher retries a rejected candidate
    /// on every tick until it becomes acceptable).
    Changes,
    /// None: a first try whose failure is followed by narrower tries that report their own.
    Never,
}

/// As [`rotate`], reporting failures as `report` says.
pub(super) fn rotate_logged(
    target: &dyn Target,
    update: Update,
    report: Report,
) -> Result<(), Error> {
    let state = target.reload_state();
    // One rotation at a time: a file reload and a push through the handle must not both
    // start from the same old material and overwrite each other's change.
    let _serialized = state
        .rotating
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let current = target.current();
    let result = (|| {
        // The file watcher re-reads the identity files with every change: the same chain is
        // not a new identity, so a trust or CRL change is never blocked by our own dates.
        let new_identity = update
            .identity
            .as_ref()
            .is_some_and(|i| i.chain() != current.identity.chain());
        // Under the rotation lock: a push from code and a file reload compose with each
        // other's latest result, never with a copy taken before the other landed.
        let following = current.watched.iter().flatten().count();
        let (fixed, watched) = match (update.trust, update.trust_files) {
            (Some(pushed), _) => current.pushed(pushed),
            (None, Some(files)) => (current.fixed.clone(), current.reread(files)?),
            (None, None) => (current.fixed.clone(), current.watched.clone()),
        };
        let candidate = Material {
            identity: update.identity.unwrap_or_else(|| current.identity.clone()),
            fixed,
            watched,
            crls: update.crls.unwrap_or_else(|| current.crls.clone()),
        };
        if candidate.trust().is_empty() {
            return Err(Error::MissingTrust);
        }
        // A new certificate must be valid now; a trust or CRL change is never blocked by our
        // own certificate's dates.
        if new_identity {
            check_valid_now(&candidate.identity, SystemTime::now())?;
        }
        // Revocation is left out of this check: a CRL that revokes our own chain must still
        // be installed, or revocation would stop being updated for everyone.
        let was_chained = chains(&current.identity, &current.trust(), target.role());
        if was_chained && !chains(&candidate.identity, &candidate.trust(), target.role()) {
            return Err(Error::DoesNotChain {
                subject: subject_of(&candidate.identity),
            });
        }
        let (identity, trust) = (candidate.identity.clone(), candidate.effective_trust());
        let detached = following.saturating_sub(candidate.watched.iter().flatten().count());
        target.install(candidate)?;
        if detached > 0 {
            // Not an error (removing a file's CAs is what the push may mean), but silent
            // otherwise: the file's later rewrites are read and ignored.
            tracing::warn!(
                detached,
                "trust pushed from code left out or changed the bundles of watched trust files; their rewrites are no longer followed"
            );
        }
        state.notify(&identity, &trust);
        Ok(())
    })();
    match &result {
        Ok(()) => {
            state.succeeded();
            tracing::info!("certificate material reloaded");
        }
        Err(_) if report == Report::Never => {}
        Err(e)
            if report == Report::Changes
                && state.last_error().as_deref() == Some(&e.to_string()) => {}
        Err(e) => {
            state.failed(e.to_string());
            tracing::warn!(error = %e, "certificate reload rejected; keeping the last good material");
        }
    }
    result
}

fn subject_of(identity: &Identity) -> String {
    PeerIdentity::from_chain(identity.chain())
        .map(|p| p.subject().to_owned())
        .unwrap_or_default()
}

fn check_valid_now(identity: &Identity, now: SystemTime) -> Result<(), Error> {
    let leaf = PeerIdentity::from_chain(identity.chain())?;
    if now < leaf.not_before() || now > leaf.not_after() {
        return Err(Error::NotValidNow {
            subject: leaf.subject().to_owned(),
            not_before: leaf.not_before(),
            not_after: leaf.not_after(),
        });
    }
    Ok(())
}

/// Whether our chain validates against the anchors of `trust` for our role (CRLs ignored).
fn chains(identity: &Identity, trust: &[TrustBundle], role: Role) -> bool {
    let trust: Vec<TrustBundle> = trust.iter().map(TrustBundle::without_crls).collect();
    let trust = trust.as_slice();
    let provider = crypto_provider();
    let chain = identity.chain();
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    // Whether the chain *builds* is asked apart from whether it is valid today (checked on
    // its own): an expired current certificate must not switch the chain check off.
    let now = match PeerIdentity::from_chain(chain) {
        Ok(p) => {
            // Not `clamp`: it panics when a certificate's dates are inverted.
            let now = SystemTime::now();
            let t = if now > p.not_after() {
                p.not_after()
            } else if now < p.not_before() {
                p.not_before()
            } else {
                now
            };
            UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
        }
        Err(_) => return false,
    };
    let ours = RevocationPolicy::default();
    crate::handshake::quietly(|| match role {
        Role::Server => {
            ServerIdentityVerifier::new(provider, trust, Some(Authorizer::any_verified()), ours)
                .is_ok_and(|v| {
                    let name = ServerName::try_from("mtls.invalid").expect("static DNS name");
                    v.verify_server_cert(leaf, intermediates, &name, &[], now)
                        .is_ok()
                })
        }
        Role::Client => ClientIdentityVerifier::new(
            provider,
            trust,
            Authorizer::any_verified(),
            ClientAuth::Required,
            ours,
        )
        .is_ok_and(|v| v.verify_client_cert(leaf, intermediates, now).is_ok()),
    })
}
