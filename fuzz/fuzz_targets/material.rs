//! PEM and DER loading: identities, trust bundles and CRLs from arbitrary bytes never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls::{CertificateDer, Crls, Identity, PrivateKeyDer, TrustBundle};

fuzz_target!(|data: &[u8]| {
    // Split the input so that certificate and key parts vary independently.
    let cut = data.first().map_or(0, |b| *b as usize % (data.len().max(1)));
    let (cert, key) = data.split_at(cut);
    let _ = Identity::from_pem(cert, key);
    let _ = Identity::from_pem(data, data);
    // DER: the same split, as a one-certificate chain and each kind of key.
    for key in [
        PrivateKeyDer::Pkcs8(key.to_vec().into()),
        PrivateKeyDer::Sec1(key.to_vec().into()),
        PrivateKeyDer::Pkcs1(key.to_vec().into()),
    ] {
        let _ = Identity::from_der(vec![CertificateDer::from(cert.to_vec())], key);
    }
    if let Ok(bundle) = TrustBundle::from_pem(data) {
        assert!(!bundle.certificates().is_empty());
        let _ = format!("{bundle:?}");
    }
    let _ = TrustBundle::from_der(vec![CertificateDer::from(data.to_vec())]);
    let _ = Crls::from_bytes(data);
});
