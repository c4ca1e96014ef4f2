//! An mTLS server for your own PEM files.
//!
//! ```text
//! cargo run --example server -- --listen 127.0.0.1:8443 \
//!     --cert server.pem --key server.key --ca ca.pem
//! ```
//!
//! Without `--allow` flags any client whose certificate chains to the CA is let in. With
//! `--allow PATTERN` (repeatable; an exact SPIFFE ID, `spiffe://td/path/*`, `spiffe://td` or `spiffe://td/*`,
//! `dns:NAME` or `cn:NAME`, as in configuration files) or `--allow-domain TRUST_DOMAIN`, only
//! those identities are: the others are refused in the handshake with the `access_denied`
//! alert.
//!
//! `GET /` answers 200 with the caller's SPIFFE ID (or subject) and SANs. `GET /admin` is a
//! narrower route: only `spiffe://<the caller's trust domain>/admin` may call it; others get a
//! 403 naming the policy. `GET /healthz` answers 200 while our certificate is fresh and 503 once
//! it is due for renewal (past 2/3 of its lifetime or under 24 h left) or a reload failed, with
//! the facts as JSON (`mtls::Health`: expiry, reload errors, handshake failures by reason in
//! the last minute). Ctrl-C shuts down gracefully.
//!
//! The `--cert`, `--key` and `--ca` files are reloaded when they change (checked every 5 s,
//! Kubernetes `..data` symlink swaps included). A new set is validated before it is used; a
//! broken or half-written set leaves the last good one serving. `--no-reload` turns it off.
//!
//! `--keystore FILE --keystore-password-file FILE` and `--truststore FILE
//! --truststore-password-file FILE` read PKCS#12 stores (as `keytool` writes them) instead of
//! the PEM files. `--config FILE` takes the bundle, policy and limits from a configuration file's `[server]`
//! section instead (`docs/CONFIG.md`), and applies its `[[access]]` rules to every route but
//! `/healthz`; flags given beside it override the file.
//!
//! `--health-listen ADDR` also serves `/healthz`, `/readyz`, `/livez` and `/metrics` over plain
//! HTTP on ADDR, for probes that present no client certificate (`ServerHandle::serve_health`).
//!
//! `--handshake-timeout SECS` (fractions allowed) and `--max-connections N` set those limits.
//! `--no-ca-hints` leaves the list of trusted CAs out of the CertificateRequest, so clients that
//! pick their certificate by the server's hints (Java, browsers) present one anyway.

use std::convert::Infallible;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use mtls::{Authorizer, Denied, PeerIdentity, PolicyError, Server, ServerHandle};

const USAGE: &str =
    "usage: server ((--cert FILE --key FILE | --keystore FILE --keystore-password-file FILE) \
(--ca FILE | --truststore FILE --truststore-password-file FILE) | --config FILE) [--listen ADDR] \
[--allow PATTERN]... [--allow-domain TRUST_DOMAIN]... [--crl FILE]... \
[--handshake-timeout SECS] [--max-connections N] [--no-ca-hints] [--no-reload] [--health-listen ADDR]

Certificate, key and CA files are reloaded when they change (checked every 5 s); a broken
replacement is refused and the last good files keep serving.";

#[tokio::main]
async fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let policy = match args.policy() {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let reload = (!args.no_reload).then_some(mtls::rotate::DEFAULT_RELOAD_INTERVAL);
    let (mut builder, listen, access) = match &args.config {
        Some(path) => {
            let from_file = mtls::Config::from_file(path).and_then(|cfg| {
                let access = cfg.access().map_err(|e| mtls::ConfigError::Invalid {
                    origin: path.clone(),
                    key: "access".to_owned(),
                    message: e.to_string(),
                })?;
                let listen = cfg.server.as_ref().map(|s| s.listen.clone());
                Ok((cfg.server_builder()?, listen, access))
            });
            match from_file {
                Ok((builder, listen, access)) => {
                    // Flags beside the file override it.
                    let builder = if args.allow.is_empty() && args.allow_domain.is_empty() {
                        builder
                    } else {
                        builder.authorize(policy)
                    };
                    let builder = if args.no_reload {
                        builder.reload_interval(None)
                    } else {
                        builder
                    };
                    (builder, args.listen.clone().or(listen), access)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => {
            let mut builder = Server::builder().reload_interval(reload).authorize(policy);
            match args.stores() {
                Ok((keystore, truststore)) => {
                    builder = match keystore {
                        Some((path, password)) => {
                            builder.identity_pkcs12_file(path, password, None)
                        }
                        None => builder.identity_files(
                            args.cert.as_deref().unwrap_or_default(),
                            args.key.as_deref().unwrap_or_default(),
                        ),
                    };
                    builder = match truststore {
                        Some((path, password)) => builder.trust_pkcs12_file(path, password),
                        None => builder.trust_file(args.ca.as_deref().unwrap_or_default()),
                    };
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            (builder, args.listen.clone(), None)
        }
    };
    let listen = listen.unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    for crl in &args.crl {
        builder = builder.crl_file(crl);
    }
    if let Some(timeout) = args.handshake_timeout {
        builder = builder.handshake_timeout(timeout);
    }
    if args.no_ca_hints {
        builder = builder.send_ca_hints(false);
    }
    if let Some(n) = args.max_connections {
        builder = builder.max_connections(n);
    }
    let server = match builder.bind(listen.as_str()).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on https://{} (client certificates required)",
        server.local_addr()
    );
    let status = server.handle();
    println!("policy: {}", status.authorizer());
    // Plain-HTTP probes (kubelet httpGet, Prometheus): kept alive until the server stops.
    let _probes = match &args.health_listen {
        Some(addr) => match status.serve_health(addr.as_str()).await {
            Ok(probes) => {
                println!(
                    "health probes on http://{} (/healthz /readyz /livez /metrics, no TLS)",
                    probes.local_addr()
                );
                Some(probes)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        println!("shutting down");
    };
    match server
        .serve_with_shutdown(
            service_fn(move |req| handle(req, status.clone(), access.clone())),
            shutdown,
        )
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    server: ServerHandle,
    access: Option<mtls::Access>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/healthz" {
        return Ok(healthz(&server.health()));
    }
    // The configuration file's [[access]] rules, when given: first covering rule decides.
    if let Some(access) = &access {
        let peer = req.extensions().get::<PeerIdentity>();
        let reason = access
            .decide(req.method(), req.uri().path(), peer)
            .refusal(req.method(), req.uri().path());
        if let Some(reason) = reason {
            {
                let mut resp = Response::new(Full::new(Bytes::from(format!(
                    "forbidden: {}: {reason}\n",
                    peer.map_or_else(|| "anonymous".to_owned(), ToString::to_string)
                ))));
                *resp.status_mut() = StatusCode::FORBIDDEN;
                return Ok(resp);
            }
        }
    }
    let Some(peer) = req.extensions().get::<PeerIdentity>() else {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"no client identity\n")));
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    };
    if req.uri().path() == "/admin" {
        // A per-route policy, narrower than the server's.
        let admin = peer
            .spiffe_id()
            .map(|id| format!("spiffe://{}/admin", id.trust_domain()))
            .and_then(|id| Authorizer::spiffe_id(&id).ok());
        return Ok(match admin.map(|policy| policy.check_request(&req)) {
            Some(Ok(())) => {
                Response::new(Full::new(Bytes::from(format!("welcome, admin {peer}\n"))))
            }
            Some(Err(denied)) => denied.into_response(),
            None => Denied {
                policy: "spiffe_id(spiffe://<trust domain>/admin)".to_owned(),
                presented: peer.to_string(),
            }
            .into_response(),
        });
    }
    if req.uri().path() != "/" {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    let mut sans: Vec<String> = peer.uris().to_vec();
    sans.extend(peer.dns_names().iter().map(|d| format!("DNS:{d}")));
    sans.extend(peer.ip_addresses().iter().map(|ip| format!("IP:{ip}")));
    sans.extend(peer.emails().iter().map(|e| format!("email:{e}")));
    let body = format!("hello {peer}\nsans: {}\n", sans.join(", "));
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// 200 while our certificate is fresh and reloads succeed, 503 before it expires.
fn healthz(health: &mtls::Health) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(health.to_json() + "\n")));
    if !health.healthy() {
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

struct Args {
    listen: Option<String>,
    config: Option<String>,
    keystore: Option<String>,
    keystore_password_file: Option<String>,
    truststore: Option<String>,
    truststore_password_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    allow: Vec<String>,
    allow_domain: Vec<String>,
    crl: Vec<String>,
    handshake_timeout: Option<std::time::Duration>,
    max_connections: Option<usize>,
    no_ca_hints: bool,
    no_reload: bool,
    health_listen: Option<String>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut listen, mut cert, mut key, mut ca) = (None, None, None, None);
        let mut health_listen = None;
        let mut config = None;
        let (mut keystore, mut keystore_password_file) = (None, None);
        let (mut truststore, mut truststore_password_file) = (None, None);
        let (mut allow, mut allow_domain) = (Vec::new(), Vec::new());
        let (mut no_reload, mut no_ca_hints) = (false, false);
        let mut crl = Vec::new();
        let (mut handshake_timeout, mut max_connections) = (None, None);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--crl" => {
                    crl.push(args.next().ok_or("`--crl` needs a file")?);
                    continue;
                }
                "--handshake-timeout" => {
                    let v = args.next().ok_or("`--handshake-timeout` needs seconds")?;
                    // `try_from_secs_f64`, not `from_secs_f64`: the latter panics on values
                    // too large for a `Duration` (`1e20`); under a nanosecond rounds to zero.
                    let timeout = v
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                        .ok_or(format!(
                            "`--handshake-timeout {v}`: expected a positive number of seconds, \
                             at least 1e-9 and at most {}",
                            u64::MAX
                        ))?;
                    handshake_timeout = Some(timeout);
                    continue;
                }
                "--max-connections" => {
                    let v = args.next().ok_or("`--max-connections` needs a number")?;
                    let n: usize = v.parse().ok().filter(|n| *n > 0).ok_or(format!(
                        "`--max-connections {v}`: expected a positive integer"
                    ))?;
                    max_connections = Some(n);
                    continue;
                }
                "--no-reload" => {
                    no_reload = true;
                    continue;
                }
                "--no-ca-hints" => {
                    no_ca_hints = true;
                    continue;
                }
                "--allow" | "--allow-domain" => {
                    let value = args.next().ok_or(format!("`{flag}` needs a value"))?;
                    if flag == "--allow" {
                        allow.push(value)
                    } else {
                        allow_domain.push(value)
                    }
                    continue;
                }
                "--listen" => &mut listen,
                "--health-listen" => &mut health_listen,
                "--config" => &mut config,
                "--keystore" => &mut keystore,
                "--keystore-password-file" => &mut keystore_password_file,
                "--truststore" => &mut truststore,
                "--truststore-password-file" => &mut truststore_password_file,
                "--cert" => &mut cert,
                "--key" => &mut key,
                "--ca" => &mut ca,
                "-h" | "--help" => return Err("mTLS example server".to_owned()),
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
                        "missing `--{name}` (or the keystore/truststore flags, or `--config FILE`)"
                    ));
                }
            }
        }
        Ok(Args {
            listen,
            config,
            keystore,
            keystore_password_file,
            truststore,
            truststore_password_file,
            cert,
            key,
            ca,
            allow,
            allow_domain,
            crl,
            handshake_timeout,
            max_connections,
            no_ca_hints,
            no_reload,
            health_listen,
        })
    }

    /// The keystore and truststore flags, with their passwords read.
    #[allow(clippy::type_complexity)]
    fn stores(
        &self,
    ) -> Result<
        (
            Option<(String, mtls::Password)>,
            Option<(String, mtls::Password)>,
        ),
        String,
    > {
        let store =
            |path: &Option<String>, password: &Option<String>, flag: &str| match (path, password) {
                (Some(path), Some(file)) => mtls::Password::from_file(file)
                    .map(|p| Some((path.clone(), p)))
                    .map_err(|e| e.to_string()),
                (Some(_), None) => Err(format!("`--{flag}` needs `--{flag}-password-file FILE`")),
                (None, _) => Ok(None),
            };
        Ok((
            store(&self.keystore, &self.keystore_password_file, "keystore")?,
            store(
                &self.truststore,
                &self.truststore_password_file,
                "truststore",
            )?,
        ))
    }

    /// `--allow` patterns and `--allow-domain` combined with `any_of`; no flags: any verified
    /// client.
    fn policy(&self) -> Result<Authorizer, PolicyError> {
        // `--allow` takes the identity patterns of configuration files: an exact SPIFFE ID,
        // `spiffe://td/path/*`, `spiffe://td`, `dns:NAME` or `cn:NAME`.
        let mut rules = self
            .allow
            .iter()
            .map(|p| Authorizer::pattern(p))
            .collect::<Result<Vec<_>, _>>()?;
        for td in &self.allow_domain {
            rules.push(Authorizer::trust_domain(td)?);
        }
        match rules.len() {
            0 => Ok(Authorizer::any_verified()),
            1 => Ok(rules.remove(0)),
            _ => Authorizer::any_of(rules),
        }
    }
}
