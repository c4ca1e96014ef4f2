//! The configuration file and its environment overrides from arbitrary text: no panic, and
//! whatever is accepted is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // TOML, then after a NUL the overrides, one `VARIABLE=value` a line.
    let (toml, env) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(cfg) = Config::from_toml_str(toml) else {
        return;
    };
    assert!(
        cfg.validate().is_ok(),
        "a parsed configuration validates again"
    );
    let lookup = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    if let Ok(overridden) = cfg.with_overrides(lookup) {
        assert!(
            overridden.validate().is_ok(),
            "an overridden configuration is valid"
        );
        if let Some(server) = &overridden.server {
            assert_ne!(
                server.max_connections,
                Some(0),
                "no server admits no connection"
            );
            assert!(!server.allow.is_empty(), "no server admits no one");
        }
    }
});
