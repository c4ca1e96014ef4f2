//! An mTLS client for your own PEM files.
//!
//! ```text
//! cargo run --example client -- --url https://localhost:8443/ \
//!     --cert client.pem --key client.key --ca ca.pem
//! ```
//!
//! With `--expect-server SPIFFE_ID` the server is verified by its SPIFFE ID instead of the URL's
//! host name. `--keystore FILE --keystore-password-file FILE` and `--truststore FILE
//! --truststore-password-file FILE` read PKCS#12 stores instead of PEM files.
//! `--config FILE --client NAME` takes the bundle and server check from a
//! configuration file's `[client.NAME]` profile instead (`docs/CONFIG.md`). Prints the status, the body and the server's verified identity. On failure it
//! prints the error and, for TLS failures, a line `reason=NAME` with the same names the server
//! logs (`expired`, `unknown_issuer`, `wrong_key_usage`, `protocol_version`, ...), and exits 1.

use std::process::ExitCode;

use http_body_util::BodyExt;
use mtls::{Authorizer, Client, ClientError, HandshakeFailure, PeerIdentity};

const USAGE: &str = "usage: client --url URL ((--cert FILE --key FILE | --keystore FILE --keystore-password-file FILE) \
(--ca FILE | --truststore FILE --truststore-password-file FILE) | --config FILE --client NAME) \
[--expect-server SPIFFE_ID]";

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(reason) = e.downcast_ref::<ClientError>().and_then(reason) {
                eprintln!("{reason}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A stable `reason=NAME` line for the TLS failures, in the server log's vocabulary.
fn reason(e: &ClientError) -> Option<String> {
    Some(match e {
        ClientError::ServerCertificate { reason, .. } | ClientError::Handshake { reason, .. } => {
            format!("reason={}", reason.as_str())
        }
        ClientError::ServerRejectedCertificate { alert } => {
            format!(
                "reason={} alert={alert}",
                HandshakeFailure::RejectedByPeer.as_str()
            )
        }
        ClientError::ServerNotAllowed { .. } => {
            format!("reason={}", HandshakeFailure::NotAuthorized.as_str())
        }
        ClientError::Timeout { .. } => format!("reason={}", HandshakeFailure::Timeout.as_str()),
        _ => return None,
    })
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = match (&args.config, &args.client) {
        (Some(path), Some(name)) => mtls::Config::from_file(path)?.client_builder(name)?,
        (Some(_), None) => {
            return Err("`--config` needs `--client NAME` (a [client.NAME] profile)".into());
        }
        _ => {
            let mut builder = Client::builder();
            builder = match (&args.keystore, &args.keystore_password_file) {
                (Some(path), Some(file)) => {
                    builder.identity_pkcs12_file(path, mtls::Password::from_file(file)?, None)
                }
                (Some(_), None) => {
                    return Err("`--keystore` needs `--keystore-password-file FILE`".into());
                }
                _ => builder.identity_files(
                    args.cert.as_deref().unwrap_or_default(),
                    args.key.as_deref().unwrap_or_default(),
                ),
            };
            match (&args.truststore, &args.truststore_password_file) {
                (Some(path), Some(file)) => {
                    builder.trust_pkcs12_file(path, mtls::Password::from_file(file)?)
                }
                (Some(_), None) => {
                    return Err("`--truststore` needs `--truststore-password-file FILE`".into());
                }
                _ => builder.trust_file(args.ca.as_deref().unwrap_or_default()),
            }
        }
    };
    if let Some(id) = &args.expect_server {
        builder = builder.expect_server(Authorizer::spiffe_id(id)?);
    }
    let client = builder.build()?;
    let url = args
        .url
        .parse()
        .map_err(|e| format!("`{}` is not a URL: {e}", args.url))?;
    let resp = client.get(url).await?;
    let status = resp.status();
    if let Some(server) = resp.extensions().get::<PeerIdentity>() {
        println!("server: {server}");
        println!("  subject: {}", server.subject());
        println!("  issuer:  {}", server.issuer());
        println!("  DNS:     {:?}", server.dns_names());
        if let Some(version) = server.tls_version() {
            println!("  TLS:     {version}");
        }
    }
    println!("status: {status}");
    let body = resp.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        return Err(format!("the server answered {status}").into());
    }
    Ok(())
}

struct Args {
    url: String,
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    config: Option<String>,
    client: Option<String>,
    keystore: Option<String>,
    keystore_password_file: Option<String>,
    truststore: Option<String>,
    truststore_password_file: Option<String>,
    expect_server: Option<String>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut url, mut cert, mut key, mut ca) = (None, None, None, None);
        let (mut expect_server, mut config, mut client) = (None, None, None);
        let (mut keystore, mut keystore_password_file) = (None, None);
        let (mut truststore, mut truststore_password_file) = (None, None);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--expect-server" => &mut expect_server,
                "--config" => &mut config,
                "--client" => &mut client,
                "--keystore" => &mut keystore,
                "--keystore-password-file" => &mut keystore_password_file,
                "--truststore" => &mut truststore,
                "--truststore-password-file" => &mut truststore_password_file,
                "--url" => &mut url,
                "--cert" => &mut cert,
                "--key" => &mut key,
                "--ca" => &mut ca,
                "-h" | "--help" => return Err("mTLS example client".to_owned()),
                other => return Err(format!("unknown argument `{other}`")),
            };
            *slot = Some(args.next().ok_or(format!("`{flag}` needs a value"))?);
        }
        if config.is_none() {
            let needed = [
                (&cert, "cert", keystore.is_some()),
                (&key, "key", keystore.is_some()),
                (&ca, "ca", truststore.is_some()),
            ];
            for (value, name, replaced) in needed {
                if value.is_none() && !replaced {
                    return Err(format!(
                        "missing `--{name}` (or the keystore/truststore flags, or `--config FILE --client NAME`)"
                    ));
                }
            }
        }
        Ok(Args {
            url: url.ok_or("missing `--url`")?,
            cert,
            key,
            ca,
            config,
            client,
            keystore,
            keystore_password_file,
            truststore,
            truststore_password_file,
            expect_server,
        })
    }
}
