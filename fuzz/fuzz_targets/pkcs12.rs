//! PKCS#12 keystores and truststores from arbitrary bytes: no panic, and a store that loads
//! holds what it promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls::{Identity, Password, TrustBundle};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the password and the alias; the rest is the store. The seeds are
    // written with the password `changeit` and the alias `orders`.
    let Some((&mode, store)) = data.split_first() else {
        return;
    };
    let password = Password::new(if mode & 1 == 0 { "changeit" } else { "" });
    let alias = (mode & 2 != 0).then_some("orders");
    if let Ok(identity) = Identity::from_pkcs12(store, &password, alias) {
        assert!(
            !identity.chain().is_empty(),
            "an identity has a certificate"
        );
    }
    if let Ok(bundle) = TrustBundle::from_pkcs12(store, &password) {
        assert!(
            !bundle.certificates().is_empty(),
            "a truststore that loads is not empty"
        );
    }
});
