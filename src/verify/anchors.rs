//! Trust bundles as the verifiers check chains against them: grouped into stores that share
//! their CRLs, plain or per SPIFFE trust domain, and the choice of the stores a chain may be
//! checked against.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::error::Error;
use crate::material::TrustBundle;
use crate::peer::PeerIdentity;

/// Anchors that share their CRLs: bundles with the same CRLs (none, or the builder's) are
/// merged into one store; a bundle with CRLs of its own gets a store of its own, so its CRLs
/// never decide the status of another bundle's certificates (webpki takes the first CRL
/// whose issuer name matches, and two bundles' CAs may share a name).
pub(super) struct Store {
    pub(super) roots: Arc<RootCertStore>,
    pub(super) crls: Vec<CertificateRevocationListDer<'static>>,
}

/// One `T` per store of [`Anchors`]: the plain ones, and each trust domain's.
pub(super) type Grouped<T> = (Vec<T>, HashMap<String, Vec<T>>);

/// Trust bundles sorted by use: the plain stores, and the stores of each SPIFFE trust domain.
pub(super) struct Anchors {
    pub(super) plain: Vec<Store>,
    domains: HashMap<String, Vec<Store>>,
}

impl Anchors {
    pub(super) fn new(bundles: &[TrustBundle]) -> Result<Self, Error> {
        let mut plain: Vec<(RootCertStore, &[CertificateRevocationListDer<'static>])> = Vec::new();
        let mut domains: HashMap<&str, Vec<(RootCertStore, &[_])>> = HashMap::new();
        for bundle in bundles {
            let group = match bundle.trust_domain() {
                Some(td) => domains.entry(td).or_default(),
                None => &mut plain,
            };
            let index = match group.iter().position(|(_, crls)| *crls == bundle.crls()) {
                Some(i) => i,
                None => {
                    group.push((RootCertStore::empty(), bundle.crls()));
                    group.len() - 1
                }
            };
            group[index]
                .0
                .roots
                .extend(bundle.root_store().roots.iter().cloned());
        }
        if plain.is_empty() && domains.is_empty() {
            return Err(Error::MissingTrust);
        }
        let stores = |group: Vec<(RootCertStore, &[CertificateRevocationListDer<'static>])>| {
            group
                .into_iter()
                .map(|(roots, crls)| Store {
                    roots: Arc::new(roots),
                    crls: crls.to_vec(),
                })
                .collect::<Vec<_>>()
        };
        Ok(Anchors {
            plain: stores(plain),
            domains: domains
                .into_iter()
                .map(|(td, group)| (td.to_owned(), stores(group)))
                .collect(),
        })
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Store> {
        self.plain.iter().chain(self.domains.values().flatten())
    }

    /// One `T` per store, grouped as the stores are.
    pub(super) fn map<T>(
        &self,
        f: impl Fn(&Store) -> Result<T, Error>,
    ) -> Result<Grouped<T>, Error> {
        let plain = self.plain.iter().map(&f).collect::<Result<_, _>>()?;
        let mut domains = HashMap::new();
        for (td, group) in &self.domains {
            domains.insert(td.clone(), group.iter().map(&f).collect::<Result<_, _>>()?);
        }
        Ok((plain, domains))
    }
}

/// The only anchors (or verifiers) `peer` may be checked against. A SPIFFE identity is checked
/// against its own trust domain's bundles alone when bundles are bound to domains, so one
/// domain's CA cannot mint identities for another; anything else uses the plain bundles.
pub(super) fn pick<'a, T>(
    peer: &PeerIdentity,
    plain: &'a [T],
    domains: &'a HashMap<String, Vec<T>>,
) -> Result<&'a [T], rustls::Error> {
    let chosen = match peer.spiffe_id() {
        Some(id) if !domains.is_empty() => domains.get(id.trust_domain()).map_or(&[][..], |g| g),
        _ => plain,
    };
    if chosen.is_empty() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
    }
    Ok(chosen)
}

/// The chain checked against each store, each with its own CRLs: verified if one store
/// verifies it, and refused if any store's CRLs revoke it or cannot vouch for it (stale, or
/// none covering the chain): CRLs are consulted only once the chain built to that store's CA,
/// and a CRL speaks only for the CA that signed it, so that verdict is never another CA's. Otherwise the most telling refusal:
/// one from a store the chain built to, before "unknown issuer" or a bad signature from a
/// store whose CA merely shares a name. One store is the common case.
pub(super) fn first_issuer<T, R>(
    stores: &[T],
    check: impl Fn(&T) -> Result<R, rustls::Error>,
) -> Result<R, rustls::Error> {
    let not_ours = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        )
    };
    if let [only] = stores {
        return check(only);
    }
    let mut verified = None;
    let mut refusal: Option<rustls::Error> = None;
    for store in stores {
        match check(store) {
            Ok(answer) => verified = verified.or(Some(answer)),
            // Only a store the chain built to gets to consult its CRLs: their verdict stands.
            Err(
                e @ rustls::Error::InvalidCertificate(
                    CertificateError::Revoked
                    | CertificateError::UnknownRevocationStatus
                    | CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. },
                ),
            ) => return Err(e),
            Err(e) => {
                if refusal.as_ref().is_none_or(not_ours) && !not_ours(&e) || refusal.is_none() {
                    refusal = Some(e);
                }
            }
        }
    }
    verified.ok_or_else(|| {
        refusal.unwrap_or(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    })
}

/// `peer` as the bundle that vouched for it knows it: a bound bundle vouches for its trust
/// domain's SPIFFE ID and nothing else ([`PeerIdentity::bound_trust_domain`]).
pub(super) fn vouched<T>(peer: PeerIdentity, domains: &HashMap<String, T>) -> PeerIdentity {
    match peer.spiffe_id() {
        Some(id) if domains.contains_key(id.trust_domain()) => {
            peer.vouched_by_domain(id.trust_domain())
        }
        _ => peer,
    }
}

/// The presented chain's identity, for policy and bundle selection (parsed, or remembered from
/// an earlier connection). rustls has not validated it yet, so a parse failure is a bad
/// certificate.
pub(super) fn presented_identity(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<PeerIdentity, rustls::Error> {
    PeerIdentity::presented(end_entity, intermediates)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}
