//! tokio-postgres over our client's rustls config: the same identity, trust and rotation as
//! every other connection the service makes.
//!
//! ```text
//! cargo run --example postgres -- --host 127.0.0.1 --port 5432 --user orders --dbname postgres \
//!     --cert orders.pem --key orders.key --ca ca.pem
//! ```
//!
//! It runs `SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()` and prints the
//! distinguished name the server saw. With `hostssl ... cert` in `pg_hba.conf`, PostgreSQL
//! requires a client certificate whose CN is the user name. Exits non-zero with the named
//! reason on failure.

use std::process::ExitCode;

use mtls::{Client, ClientError, HandshakeFailure};

struct Args {
    host: String,
    port: u16,
    user: String,
    dbname: String,
    cert: String,
    key: String,
    ca: String,
}

fn usage() -> &'static str {
    "usage: postgres --host H --port P --user U --dbname D --cert FILE --key FILE --ca FILE"
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut host, mut port, mut user, mut dbname) = (None, None, None, None);
    let (mut cert, mut key, mut ca) = (None, None, None);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage().to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value; {}", usage()))?;
        match flag.as_str() {
            "--host" => host = Some(value),
            "--port" => {
                port = Some(value.parse::<u16>().map_err(|_| {
                    format!("`--port {value}`: expected a port number from 1 to 65535")
                })?)
            }
            "--user" => user = Some(value),
            "--dbname" => dbname = Some(value),
            "--cert" => cert = Some(value),
            "--key" => key = Some(value),
            "--ca" => ca = Some(value),
            other => return Err(format!("unknown flag `{other}`; {}", usage())),
        }
    }
    let need = |v: Option<String>, flag: &str| {
        v.ok_or_else(|| format!("`{flag}` is required; {}", usage()))
    };
    Ok(Args {
        host: need(host, "--host")?,
        port: port.unwrap_or(5432),
        user: need(user, "--user")?,
        dbname: need(dbname, "--dbname")?,
        cert: need(cert, "--cert")?,
        key: need(key, "--key")?,
        ca: need(ca, "--ca")?,
    })
}

/// Connects with `client`'s live config and asks the server which certificate it saw.
async fn client_dn(client: &Client, args: &Args) -> Result<String, tokio_postgres::Error> {
    // A clone keeps the live resolver and verifier; a database client offers no HTTP ALPN.
    let mut tls = (*client.rustls_config()).clone();
    tls.alpn_protocols.clear();
    let params = format!(
        "host={} port={} user={} dbname={} sslmode=require",
        args.host, args.port, args.user, args.dbname
    );
    let (db, connection) =
        tokio_postgres::connect(&params, tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .await?;
    tokio::spawn(connection);
    let row = db
        .query_one(
            "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    row.try_get::<_, Option<String>>(0)
        .map(|dn| dn.unwrap_or_default())
}

/// The named reason of a failed connection: a TLS failure on either side (found in the
/// error's chain), or the server's own refusal.
fn reason(error: &tokio_postgres::Error) -> String {
    if let Some(tls) = ClientError::find_in(error) {
        let name = tls.reason().unwrap_or(HandshakeFailure::Other).as_str();
        return format!("reason={name}: {tls}");
    }
    match error.as_db_error() {
        Some(db) => format!("reason=refused_by_database: {}", db.message()),
        None => format!("reason=other: {error}"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let client = match Client::builder()
        .identity_files(&args.cert, &args.key)
        .trust_file(&args.ca)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match client_dn(&client, &args).await {
        Ok(dn) => {
            println!("client_dn: {dn}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("{}", reason(&e));
            ExitCode::FAILURE
        }
    }
}
