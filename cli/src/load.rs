//! Our identity and trust, from the command line's flags, into a library `Client`.

use std::time::Duration;

use mtls::{Authorizer, Client, Config, Crls, Identity, Password, TrustBundle};

use crate::Material;

/// Where our material comes from, checked before anything is read.
pub enum Source<'a> {
    Pem,
    Keystore,
    Config {
        file: &'a std::path::Path,
        client: &'a str,
    },
}

/// Checks that the flags name an identity and a trust source. `Err`: a usage error.
pub fn source(m: &Material) -> Result<Source<'_>, String> {
    if let (Some(file), Some(client)) = (&m.config, &m.client) {
        return Ok(Source::Config { file, client });
    }
    let has_identity = m.cert.is_some() || m.keystore.is_some();
    let has_trust = !m.ca.is_empty() || m.truststore.is_some();
    match (has_identity, has_trust) {
        (false, _) => Err(
            "say who we are: --cert FILE --key FILE, --keystore FILE, or --config FILE --client NAME"
                .to_owned(),
        ),
        (true, false) => Err(
            "say which CAs we trust for the server: --ca FILE or --truststore FILE".to_owned(),
        ),
        (true, true) if m.keystore.is_some() => Ok(Source::Keystore),
        (true, true) => Ok(Source::Pem),
    }
}

/// What we present and trust, or why it could not be read (a sentence naming the file).
pub struct Loaded {
    pub identity: Identity,
    pub trust: Vec<TrustBundle>,
    pub client: Client,
}

/// A failure to load, attributed to the part it concerns.
pub enum LoadFailure {
    /// Our certificate or key (or their pairing).
    Identity(String),
    /// The trust bundle or CRLs.
    Trust(String),
    /// The configuration file.
    Config(String),
    /// The client could not be built from otherwise readable material.
    Client(String),
}

fn password(file: &Option<std::path::PathBuf>, env: &Option<String>) -> Result<Password, String> {
    match (file, env) {
        (Some(f), _) => Password::from_file(f).map_err(|e| e.to_string()),
        (None, Some(var)) => Password::from_env(var).map_err(|e| e.to_string()),
        (None, None) => Ok(Password::new("")),
    }
}

/// Reads the material and builds a client that checks the server as asked.
pub fn load(
    m: &Material,
    source: &Source<'_>,
    expect_server: Option<Authorizer>,
    tls13_only: bool,
    timeout: Duration,
) -> Result<Loaded, LoadFailure> {
    let mut builder = match source {
        Source::Config { file, client } => {
            let config = Config::from_file(file).map_err(|e| LoadFailure::Config(e.to_string()))?;
            config
                .client_builder(client)
                .map_err(|e| LoadFailure::Config(e.to_string()))?
        }
        Source::Pem | Source::Keystore => {
            let identity = match (&m.cert, &m.key, &m.keystore) {
                (Some(cert), Some(key), _) => Identity::from_pem_files(cert, key),
                (_, _, Some(store)) => {
                    let pw = password(&m.keystore_password_file, &m.keystore_password_env)
                        .map_err(LoadFailure::Identity)?;
                    Identity::from_pkcs12_file(store, &pw, m.keystore_alias.as_deref())
                }
                _ => {
                    return Err(LoadFailure::Identity(
                        "give --cert with --key, or --keystore".to_owned(),
                    ));
                }
            }
            .map_err(|e| LoadFailure::Identity(e.to_string()))?;
            let mut builder = Client::builder().identity(identity);
            for ca in &m.ca {
                let bundle = TrustBundle::from_pem_file(ca)
                    .map_err(|e| LoadFailure::Trust(e.to_string()))?;
                builder = builder.trust(bundle);
            }
            if let Some(store) = &m.truststore {
                let pw = password(&m.truststore_password_file, &m.truststore_password_env)
                    .map_err(LoadFailure::Trust)?;
                let bundle = TrustBundle::from_pkcs12_file(store, &pw)
                    .map_err(|e| LoadFailure::Trust(e.to_string()))?;
                builder = builder.trust(bundle);
            }
            builder
        }
    };
    for crl in &m.crl {
        let crls = Crls::from_file(crl).map_err(|e| LoadFailure::Trust(e.to_string()))?;
        builder = builder.crls(crls);
    }
    if let Some(policy) = expect_server {
        builder = builder.expect_server(policy);
    }
    if tls13_only {
        builder = builder.tls13_only();
    }
    let client = builder
        .reload_interval(None)
        .connect_timeout(timeout)
        // Every request on a new connection: the doctor checks resumption that way.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| match (e, source) {
            // From a configuration file every path is read here; the message names the file.
            (e, Source::Config { .. }) => LoadFailure::Config(e.to_string()),
            (mtls::Error::Load(e), _) => LoadFailure::Identity(e.to_string()),
            (other, _) => LoadFailure::Client(other.to_string()),
        })?;
    Ok(Loaded {
        identity: client.identity(),
        trust: client.trust(),
        client,
    })
}
