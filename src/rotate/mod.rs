//! Rotation: new certificates, keys and trust bundles swapped into a running server or client,
//! validated first, from files that are polled for changes or from code ([`Rotate`]); and the
//! expiry status of what is in use ([`CertificateStatus`]).

pub(crate) mod pem_dir;
pub(crate) mod status;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};

use crate::error::{Error, LoadError};
use crate::material::{Crls, Identity, TrustBundle};
use crate::peer::PeerIdentity;
use crate::policy::authorizer::Authorizer;
use crate::rotate::status::CertificateStatus;
use crate::util::provider::{crypto_provider, sha256};
use crate::util::time::{ExpiryLevel, expiry_level, humantime};
use crate::verify::{ClientAuth, ClientIdentityVerifier, RevocationPolicy, ServerIdentityVerifier};

/// Default interval at which certificate, key and CA files are checked for changes.
///
/// # Examples
///
/// ```
/// assert_eq!(mtls::DEFAULT_RELOAD_INTERVAL, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

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

/// The material a live config is built from. CRLs given apart from the bundles (builder
/// `crls`/`crl_file`) are kept apart, so replacing the bundles never drops them.
///
/// Trust has two parts. `fixed` holds the bundles given as values: the builder's, replaced
/// whole by each set pushed from code. `watched` has one entry per watched trust file: the
/// bundle last read from it, or `None` once code pushed a set without it, after which
/// rewrites of that file are never trusted again. So what code removes stays removed, and a
/// file's rotation replaces that file's bundle only.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) identity: Identity,
    pub(crate) fixed: Vec<TrustBundle>,
    pub(crate) watched: Vec<Option<TrustBundle>>,
    pub(crate) crls: Vec<Crls>,
}

impl Live {
    /// Every bundle trusted now: the fixed part, then the watched files'.
    pub(crate) fn trust(&self) -> Vec<TrustBundle> {
        self.fixed
            .iter()
            .chain(self.watched.iter().flatten())
            .cloned()
            .collect()
    }

    /// The trust after a push from code: a pushed bundle equal to a watched file's current
    /// bundle stays that file's (and follows its rotations); the rest become the fixed part;
    /// a watched file whose bundle was left out is detached.
    fn pushed(&self, pushed: Vec<TrustBundle>) -> (Vec<TrustBundle>, Vec<Option<TrustBundle>>) {
        let mut fixed = Vec::new();
        let mut watched: Vec<Option<TrustBundle>> = vec![None; self.watched.len()];
        for bundle in pushed {
            let file = self.watched.iter().enumerate().position(|(i, current)| {
                watched[i].is_none() && current.as_ref().is_some_and(|c| c.same_as(&bundle))
            });
            match file {
                Some(i) => watched[i] = Some(bundle),
                None => fixed.push(bundle),
            }
        }
        (fixed, watched)
    }

    /// The watched part after the files were read again: detached files stay out, and only
    /// their read errors are ignored.
    fn reread(
        &self,
        files: Vec<Result<TrustBundle, LoadError>>,
    ) -> Result<Vec<Option<TrustBundle>>, LoadError> {
        self.watched
            .iter()
            .zip(files)
            .map(|(current, read)| match current {
                Some(_) => read.map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// The bundles with the separate CRLs added to each (they apply to every bundle; a
    /// bundle's own CRLs apply to it alone).
    pub(crate) fn effective_trust(&self) -> Vec<TrustBundle> {
        let mut trust = self.trust();
        for bundle in &mut trust {
            for crls in &self.crls {
                *bundle = bundle.clone().with_crls(crls.clone());
            }
        }
        trust
    }
}

/// A candidate change: each part given replaces the current one, the rest stays.
#[derive(Default)]
pub(crate) struct Update {
    pub(crate) identity: Option<Identity>,
    /// A whole set pushed from code ([`Live::pushed`]).
    pub(crate) trust: Option<Vec<TrustBundle>>,
    /// The watched trust files read again, one result per file ([`Live::reread`]).
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
    fn current(&self) -> Live;
    /// Builds the TLS configuration from this material and swaps it in.
    fn install(&self, live: Live) -> Result<(), Error>;
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
enum Report {
    Always,
    /// Not a failure identical to the last one (the file watcher retries a rejected candidate
    /// on every tick until it becomes acceptable).
    Changes,
    /// None: a first try whose failure is followed by narrower tries that report their own.
    Never,
}

/// As [`rotate`], reporting failures as `report` says.
fn rotate_logged(target: &dyn Target, update: Update, report: Report) -> Result<(), Error> {
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
        let candidate = Live {
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

/// What a builder was given: material (loaded eagerly, errors kept for `bind`/`build`) and the
/// files it came from.
#[derive(Debug)]
pub(crate) struct MaterialSpec {
    identity: Option<Result<Identity, LoadError>>,
    /// Bundles given as values.
    trust: Vec<Result<TrustBundle, LoadError>>,
    /// Bundles read from files, in the order of `files.trust`.
    trust_files: Vec<Result<TrustBundle, LoadError>>,
    crls: Vec<Result<Crls, LoadError>>,
    files: Files,
    pub(crate) reload_interval: Option<Duration>,
}

impl Default for MaterialSpec {
    fn default() -> Self {
        MaterialSpec {
            identity: None,
            trust: Vec::new(),
            trust_files: Vec::new(),
            crls: Vec::new(),
            files: Files::default(),
            reload_interval: Some(DEFAULT_RELOAD_INTERVAL),
        }
    }
}

impl MaterialSpec {
    pub(crate) fn identity(&mut self, identity: Identity) {
        self.identity = Some(Ok(identity));
        self.files.identity = None;
    }

    pub(crate) fn identity_files(&mut self, cert: &std::path::Path, key: &std::path::Path) {
        self.files.note_loaded(cert);
        self.files.note_loaded(key);
        self.identity = Some(Identity::from_pem_files(cert, key));
        self.files.identity = Some(IdentityFiles::Pem(cert.to_owned(), key.to_owned()));
    }

    #[cfg(feature = "pkcs12")]
    pub(crate) fn identity_pkcs12(
        &mut self,
        path: &std::path::Path,
        password: crate::material::pkcs12::Password,
        alias: Option<&str>,
    ) {
        self.files.note_loaded(path);
        self.identity = Some(Identity::from_pkcs12_file(path, &password, alias));
        self.files.identity = Some(IdentityFiles::Pkcs12(
            path.to_owned(),
            password,
            alias.map(str::to_owned),
        ));
    }

    /// A PKCS#12 truststore, bound to `trust_domain` if given.
    #[cfg(feature = "pkcs12")]
    pub(crate) fn trust_pkcs12(
        &mut self,
        path: &std::path::Path,
        password: crate::material::pkcs12::Password,
        trust_domain: Option<&str>,
        crls: &[PathBuf],
    ) {
        self.watch_trust(
            TrustSource::Pkcs12(path.to_owned(), password),
            trust_domain,
            crls,
        );
    }

    pub(crate) fn trust(&mut self, bundle: TrustBundle) {
        self.trust.push(Ok(bundle));
    }

    /// A PEM CA file, bound to `trust_domain` if given, with CRL files of its own.
    pub(crate) fn trust_file(
        &mut self,
        path: &std::path::Path,
        trust_domain: Option<&str>,
        crls: &[PathBuf],
    ) {
        self.watch_trust(TrustSource::Pem(path.to_owned()), trust_domain, crls);
    }

    fn watch_trust(&mut self, source: TrustSource, trust_domain: Option<&str>, crls: &[PathBuf]) {
        // The name is checked as the policy checks it, so a binding can always be matched.
        if let Some(Err(e)) = trust_domain.map(Authorizer::trust_domain) {
            self.trust_files.push(Err(LoadError::TrustDomain {
                origin: crate::error::Origin::File(source.path().clone()),
                message: e.to_string(),
            }));
            return;
        }
        let file = TrustFile {
            source,
            trust_domain: trust_domain.map(str::to_owned),
            crls: crls.to_vec(),
        };
        for path in file.paths() {
            self.files.note_loaded(path);
        }
        self.trust_files.push(file.load());
        self.files.trust.push(file);
    }

    pub(crate) fn crls(&mut self, crls: Crls) {
        self.files.static_crls.push(crls.clone());
        self.crls.push(Ok(crls));
    }

    pub(crate) fn crl_file(&mut self, path: &std::path::Path) {
        self.files.note_loaded(path);
        self.crls.push(Crls::from_file(path));
        self.files.crls.push(path.to_owned());
    }

    /// The loaded material and the files to watch (none when reloading is off).
    pub(crate) fn resolve(self) -> Result<(Live, Files), Error> {
        let identity = self.identity.ok_or(Error::MissingIdentity)??;
        let fixed = self.trust.into_iter().collect::<Result<Vec<_>, _>>()?;
        let watched = self
            .trust_files
            .into_iter()
            .map(|bundle| bundle.map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        if fixed.is_empty() && watched.is_empty() {
            return Err(Error::MissingTrust);
        }
        let crls = self.crls.into_iter().collect::<Result<Vec<_>, _>>()?;
        // An expired certificate at start-up is not refused (a test or a doctor may want to
        // present one); the watcher's first tick logs it as an error.
        let mut files = match self.reload_interval {
            Some(_) => self.files,
            None => Files::default(),
        };
        // The baseline is what was read when each file was loaded (recorded just before), so
        // a change made since then is picked up on the first tick.
        files.loaded = files.paths().map(|p| files.first_seen(p)).collect();
        Ok((
            Live {
                identity,
                fixed,
                watched,
                crls,
            },
            files,
        ))
    }

    /// Starts the watcher for `target`: file changes every reload interval, and expiry.
    pub(crate) fn watch<T: Target>(target: &Arc<T>, files: Files, interval: Option<Duration>) {
        // Without reloading, expiry is still watched, once a minute.
        let every = interval.unwrap_or(Duration::from_secs(60));
        spawn_watcher(weak(target), files, every);
    }
}

/// Where our identity is read from.
#[derive(Debug, Clone)]
pub(crate) enum IdentityFiles {
    Pem(PathBuf, PathBuf),
    #[cfg(feature = "pkcs12")]
    Pkcs12(PathBuf, crate::material::pkcs12::Password, Option<String>),
}

impl IdentityFiles {
    fn paths(&self) -> Vec<&PathBuf> {
        match self {
            IdentityFiles::Pem(cert, key) => vec![cert, key],
            #[cfg(feature = "pkcs12")]
            IdentityFiles::Pkcs12(path, ..) => vec![path],
        }
    }

    fn load(&self) -> Result<Identity, LoadError> {
        match self {
            IdentityFiles::Pem(cert, key) => Identity::from_pem_files(cert, key),
            #[cfg(feature = "pkcs12")]
            IdentityFiles::Pkcs12(path, password, alias) => {
                Identity::from_pkcs12_file(path, password, alias.as_deref())
            }
        }
    }
}

/// Where a trust bundle is read from.
#[derive(Debug, Clone)]
pub(crate) enum TrustSource {
    Pem(PathBuf),
    #[cfg(feature = "pkcs12")]
    Pkcs12(PathBuf, crate::material::pkcs12::Password),
}

impl TrustSource {
    fn path(&self) -> &PathBuf {
        match self {
            TrustSource::Pem(path) => path,
            #[cfg(feature = "pkcs12")]
            TrustSource::Pkcs12(path, _) => path,
        }
    }
}

/// A watched trust file, the SPIFFE trust domain (already validated) its bundle is bound to,
/// and the CRL files that speak for its CAs alone: all read again together, so a federated
/// partner's bundle rotates without ever vouching for more, and its CRLs never decide for
/// another bundle.
#[derive(Debug, Clone)]
pub(crate) struct TrustFile {
    source: TrustSource,
    trust_domain: Option<String>,
    crls: Vec<PathBuf>,
}

impl TrustFile {
    /// The trust file, then its CRL files.
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(self.source.path()).chain(&self.crls)
    }

    fn load(&self) -> Result<TrustBundle, LoadError> {
        let bundle = match &self.source {
            TrustSource::Pem(path) => TrustBundle::from_pem_file(path),
            #[cfg(feature = "pkcs12")]
            TrustSource::Pkcs12(path, password) => TrustBundle::from_pkcs12_file(path, password),
        }?;
        let mut bundle = match &self.trust_domain {
            Some(td) => bundle.bound_to(td),
            None => bundle,
        };
        for path in &self.crls {
            bundle = bundle.with_crls(Crls::from_file(path)?);
        }
        Ok(bundle)
    }
}

/// Files that material was loaded from, re-read when their content changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Files {
    pub(crate) identity: Option<IdentityFiles>,
    pub(crate) trust: Vec<TrustFile>,
    pub(crate) crls: Vec<PathBuf>,
    pub(crate) static_crls: Vec<Crls>,
    /// Content digests of the files as last loaded.
    loaded: Vec<[u8; 32]>,
    /// Digests taken when the builder loaded each file.
    first: Vec<(PathBuf, [u8; 32])>,
}

impl Files {
    pub(crate) fn is_empty(&self) -> bool {
        self.identity.is_none() && self.trust.is_empty() && self.crls.is_empty()
    }

    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.identity
            .iter()
            .flat_map(IdentityFiles::paths)
            .chain(self.trust.iter().flat_map(TrustFile::paths))
            .chain(self.crls.iter())
    }

    fn note_loaded(&mut self, path: &std::path::Path) {
        self.first.push((path.to_owned(), digest_of(path)));
    }

    fn first_seen(&self, path: &std::path::Path) -> [u8; 32] {
        self.first
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map_or_else(|| digest_of(path), |(_, d)| *d)
    }

    /// A digest of every file's current content (a missing file hashes as its error), read
    /// through the paths each time so that a swapped `..data` symlink is followed.
    fn digest(&self) -> Vec<[u8; 32]> {
        self.paths().map(|p| digest_of(p)).collect()
    }

    /// Which groups of files differ between two digests of [`Files::digest`].
    fn changed(&self, before: &[[u8; 32]], now: &[[u8; 32]]) -> Dirty {
        let differs =
            |range: std::ops::Range<usize>| range.into_iter().any(|i| before.get(i) != now.get(i));
        let ids = self.identity.as_ref().map_or(0, |i| i.paths().len());
        let trust_end = ids + self.trust.iter().map(|t| t.paths().count()).sum::<usize>();
        Dirty {
            identity: differs(0..ids),
            trust: differs(ids..trust_end),
            crls: differs(trust_end..trust_end + self.crls.len()),
        }
    }

    /// Reads the groups of files marked in `dirty`; the others stay as they are (so a change
    /// of the certificate files never reverts trust pushed from code, and the reverse). A group
    /// that does not load is left out of the update, with its error, so it holds back no
    /// other group (a half-written certificate never delays a new CRL).
    fn load(&self, dirty: Dirty) -> (Update, Vec<LoadError>) {
        let mut unreadable = Vec::new();
        let identity = match self.identity.as_ref().filter(|_| dirty.identity) {
            Some(files) => files.load().map_err(|e| unreadable.push(e)).ok(),
            None => None,
        };
        let trust_files = (!self.trust.is_empty() && dirty.trust)
            .then(|| self.trust.iter().map(TrustFile::load).collect());
        let crls = if self.crls.is_empty() || !dirty.crls {
            None
        } else {
            let read: Result<Vec<Crls>, LoadError> =
                self.crls.iter().map(Crls::from_file).collect();
            read.map(|files| self.static_crls.iter().cloned().chain(files).collect())
                .map_err(|e| unreadable.push(e))
                .ok()
        };
        let update = Update {
            identity,
            trust: None,
            trust_files,
            crls,
        };
        (update, unreadable)
    }
}

/// Which groups of watched files changed (and still need loading).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Dirty {
    identity: bool,
    trust: bool,
    crls: bool,
}

impl Dirty {
    fn any(self) -> bool {
        self.identity || self.trust || self.crls
    }

    fn or(self, other: Dirty) -> Dirty {
        Dirty {
            identity: self.identity || other.identity,
            trust: self.trust || other.trust,
            crls: self.crls || other.crls,
        }
    }
}

/// A digest of a file's content; a file that cannot be read hashes as its error. The content
/// (a key file's, for one) is wiped once hashed.
fn digest_of(path: &std::path::Path) -> [u8; 32] {
    match std::fs::read(path) {
        Ok(bytes) => sha256(&zeroize::Zeroizing::new(bytes)),
        Err(e) => sha256(e.to_string().as_bytes()),
    }
}

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
    // Loading runs password-based key derivations (PKCS#12, bounded but up to seconds) and
    // file reads: never on an async worker.
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

/// Told of every material swapped in; returns false once it wants no more calls.
pub(crate) type Observer = Box<dyn Fn(&Identity, &[TrustBundle]) -> bool + Send + Sync>;

/// How reloads went, and which expiry alarm last fired.
#[derive(Default)]
pub(crate) struct ReloadState {
    /// Held for the whole of a rotation.
    rotating: Mutex<()>,
    /// Called after each successful swap (PEM directories).
    observers: Mutex<Vec<Observer>>,
    status: Mutex<ReloadStatus>,
    alarm: Mutex<Option<([u8; 32], ExpiryLevel)>>,
}

/// How reloads went: counts, and the last success and error.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReloadStatus {
    pub(crate) last_reload: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

impl std::fmt::Debug for ReloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadState")
            .field("status", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl ReloadState {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn observe(&self, observer: Observer) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(observer);
    }

    fn notify(&self, identity: &Identity, trust: &[TrustBundle]) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|observer| observer(identity, trust));
    }

    fn succeeded(&self) {
        let mut s = self.lock();
        s.last_reload = Some(SystemTime::now());
        s.last_error = None;
        s.succeeded += 1;
    }

    fn failed(&self, error: String) {
        let mut s = self.lock();
        s.last_error = Some(error);
        s.failed += 1;
    }

    fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// A copy of how reloads went so far.
    pub(crate) fn snapshot(&self) -> ReloadStatus {
        self.lock().clone()
    }
}

/// Writes `target`'s current material into `dir` and keeps it current.
pub(crate) fn pem_directory(
    target: &dyn Target,
    dir: &std::path::Path,
) -> Result<crate::rotate::pem_dir::PemDirectory, Error> {
    // Under the rotation lock, so no swap can land between the first write and registration.
    let state = target.reload_state();
    let _serialized = state
        .rotating
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let live = target.current();
    let directory =
        crate::rotate::pem_dir::PemDirectory::create(dir, &live.identity, &live.effective_trust())?;
    state.observe(directory.observer());
    Ok(directory)
}

fn weak<T: Target>(target: &Arc<T>) -> Weak<dyn Target> {
    let as_dyn: Arc<dyn Target> = Arc::clone(target) as Arc<dyn Target>;
    Arc::downgrade(&as_dyn)
}
