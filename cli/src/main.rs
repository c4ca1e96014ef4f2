//! `mtls`: explains a failing mutual-TLS connection from both sides (`doctor`), prints what
//! certificate, key and keystore files hold (`inspect`), and runs a development CA (`ca`).
//!
//! Built on the `mtls` library's public API. Exit codes: 0 when all is well, 1 when the
//! connection (or a file) is broken, 2 for bad arguments.

mod ca;
mod cert;
mod doctor;
mod inspect;
mod load;
mod problems;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mtls",
    version,
    about = "Mutual TLS made plain: diagnose a connection, inspect certificates, run a development CA",
    long_about = "Mutual TLS made plain.\n\n\
        `mtls doctor URL` walks a connection step by step and says which side rejected which \
        certificate, why, and what to change. `mtls inspect FILE...` prints what certificate, key \
        and PKCS#12 files hold. `mtls ca` issues certificates from a local development CA.\n\n\
        Exit codes: 0 all is well; 1 the connection or a file is broken; 2 bad arguments."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to an https:// URL with mutual TLS and explain, step by step, what works and what
    /// does not, with the fix.
    Doctor(Box<DoctorArgs>),
    /// Print what certificate (PEM or DER), key and PKCS#12 files hold: names, validity, key,
    /// usages, fingerprints; whether a key matches and a chain is in order.
    Inspect(InspectArgs),
    /// A development CA for local work and tests. NOT a production CA: its key sits unprotected
    /// in a directory, and it keeps no record of what it issued.
    #[command(subcommand)]
    Ca(CaCommand),
}

/// Our identity and the CAs we trust, from PEM files, PKCS#12 stores or a configuration file.
#[derive(Args, Debug, Default)]
pub struct Material {
    /// Our certificate chain, PEM, leaf first.
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        help_heading = "Our identity and trust"
    )]
    pub cert: Option<PathBuf>,
    /// Our private key, PEM.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        help_heading = "Our identity and trust"
    )]
    pub key: Option<PathBuf>,
    /// CAs we trust for the server's certificate, PEM (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Our identity and trust")]
    pub ca: Vec<PathBuf>,
    /// Our identity as a PKCS#12 keystore (as keytool and openssl write them).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cert", "key"], help_heading = "Our identity and trust")]
    pub keystore: Option<PathBuf>,
    /// File holding the keystore's password (a trailing newline is ignored).
    #[arg(long, value_name = "FILE", help_heading = "Our identity and trust")]
    pub keystore_password_file: Option<PathBuf>,
    /// Environment variable holding the keystore's password.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "keystore_password_file",
        help_heading = "Our identity and trust"
    )]
    pub keystore_password_env: Option<String>,
    /// Which key entry of the keystore to use, when it holds several.
    #[arg(long, value_name = "ALIAS", help_heading = "Our identity and trust")]
    pub keystore_alias: Option<String>,
    /// CAs we trust, as a PKCS#12 truststore.
    #[arg(long, value_name = "FILE", help_heading = "Our identity and trust")]
    pub truststore: Option<PathBuf>,
    /// File holding the truststore's password.
    #[arg(long, value_name = "FILE", help_heading = "Our identity and trust")]
    pub truststore_password_file: Option<PathBuf>,
    /// Environment variable holding the truststore's password.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "truststore_password_file",
        help_heading = "Our identity and trust"
    )]
    pub truststore_password_env: Option<String>,
    /// Certificate revocation lists to check the server against, PEM or DER (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Our identity and trust")]
    pub crl: Vec<PathBuf>,
    /// A configuration file (docs/CONFIG.md) to take a client profile from.
    #[arg(long, value_name = "FILE", requires = "client", conflicts_with_all = ["cert", "key", "ca", "keystore", "truststore"], help_heading = "Our identity and trust")]
    pub config: Option<PathBuf>,
    /// The `[client.NAME]` profile of `--config` to use.
    #[arg(
        long,
        value_name = "NAME",
        requires = "config",
        help_heading = "Our identity and trust"
    )]
    pub client: Option<String>,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The https:// URL to diagnose, e.g. `https://inventory.internal:8443/healthz`.
    pub url: String,
    #[command(flatten)]
    pub material: Material,
    /// Who the server must be, beyond its name: a SPIFFE ID (spiffe://td/path), a trust
    /// domain (spiffe://td), a path prefix (spiffe://td/ns/*), or a DNS name (dns:NAME).
    #[arg(long, value_name = "PATTERN")]
    pub expect_server: Option<String>,
    /// Offer TLS 1.3 only, as a client configured with `tls13_only` does.
    #[arg(long)]
    pub tls13_only: bool,
    /// How long each network step may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
    /// Print the report as JSON (for monitoring) instead of a checklist.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Certificate (PEM or DER), private key (PEM) or PKCS#12 files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// File holding the password of PKCS#12 files (none: an empty password is tried).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a development root CA in DIR (ca.pem, and ca.key readable by you only).
    /// For local development and tests only, never production.
    Init {
        /// Directory to write the CA into (created if missing).
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "mtls development CA")]
        name: String,
        /// Replace a CA already in DIR (everything it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf certificate from the development CA in DIR, written as DIR/NAME.pem and
    /// DIR/NAME.key (mode 0600). For local development and tests only, never production.
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// Directory holding the CA made by `mtls ca init`.
    pub dir: PathBuf,
    /// The certificate's common name, also its file name.
    #[arg(long)]
    pub name: String,
    /// A SPIFFE ID to put in the certificate (spiffe://trust-domain/path).
    #[arg(long, value_name = "ID")]
    pub spiffe_id: Option<String>,
    /// A DNS name (repeatable). A server certificate with no --dns and no --ip gets localhost
    /// and 127.0.0.1.
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// An IP address (repeatable).
    #[arg(long, value_name = "IP")]
    pub ip: Vec<std::net::IpAddr>,
    /// For TLS clients only (extended key usage clientAuth).
    #[arg(long, conflicts_with_all = ["server", "both"])]
    pub client: bool,
    /// For TLS servers only (serverAuth).
    #[arg(long, conflicts_with_all = ["client", "both"])]
    pub server: bool,
    /// For both, as service meshes issue them (the default).
    #[arg(long, conflicts_with_all = ["client", "server"])]
    pub both: bool,
    /// How long the certificate lives: 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: std::time::Duration,
    /// Also write DIR/NAME.p12 (a PKCS#12 keystore: the certificate and its key) and
    /// DIR/truststore.p12 (the CA as a trusted entry), as Java services read them.
    #[arg(long, requires = "password_file")]
    pub p12: bool,
    /// File holding the password for the PKCS#12 stores (a trailing newline is ignored).
    #[arg(long, value_name = "FILE", requires = "p12")]
    pub password_file: Option<PathBuf>,
    /// Replace DIR/NAME.pem and DIR/NAME.key if they exist.
    #[arg(long)]
    pub force: bool,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 90s, 30m, 24h or 7d"))?;
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`; use s, m, h or d")),
    };
    const HUNDRED_YEARS: u64 = 100 * 365 * 86_400;
    let secs = n
        .checked_mul(per)
        .filter(|secs| *secs <= HUNDRED_YEARS)
        .ok_or_else(|| {
            format!("`{s}` is too long; a development certificate lives at most 100 years")
        })?;
    if secs == 0 {
        return Err("the lifetime must be longer than zero".to_owned());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// A command's outcome: printed, then the exit code.
pub enum Outcome {
    /// All is well.
    Ok,
    /// Something is broken (the output said what).
    Broken,
    /// The arguments cannot be used (message on stderr).
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Doctor(args) => doctor::run(*args),
        Command::Inspect(args) => inspect::run(args),
        Command::Ca(command) => ca::run(command),
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Broken => ExitCode::from(1),
        Outcome::Usage(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_ttl("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_ttl("7d").unwrap().as_secs(), 7 * 86_400);
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1y").unwrap_err().contains("unknown unit"));
        assert!(parse_ttl("soon").unwrap_err().contains("not a duration"));
        assert!(
            parse_ttl("18446744073709551615d")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse_ttl("36501d").unwrap_err().contains("too long"));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
