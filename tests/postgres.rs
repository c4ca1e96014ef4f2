//! A real database: PostgreSQL from Debian, started in a temporary directory with `ssl = on`
//! and `hostssl all all 127.0.0.1/32 cert`, so the client certificate's CN must be the user
//! name. Our client config connects and the server sees our DN; a foreign CA and a CN naming
//! another user are refused with a named reason.
//!
//! Needs PostgreSQL's server binaries (Debian's `postgresql` package); `.ci/run` installs them
//! and runs this with `--include-ignored`. As root it runs the server as the `postgres` user,
//! since PostgreSQL refuses to run as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mtls::{Client, ClientError, Rotate};

/// PostgreSQL's server binaries: Debian keeps them out of PATH.
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|bin| bin.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root.
fn pg(name: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin(name);
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let output = command.args(args).output().unwrap_or_else(|e| {
        panic!(
            "FAIL: cannot run {} ({e}): install postgresql",
            bin.display()
        )
    });
    assert!(output.status.success(), "{}", report(&command, &output));
    output
}

/// A PostgreSQL cluster in a temporary directory, stopped on drop (then the directory goes).
struct Cluster {
    dir: Dir,
    port: u16,
}

impl Cluster {
    fn start(ca: &Ca, server: &Issued) -> Cluster {
        let dir = Dir::new("pg");
        let data = dir.path("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if running_as_root() {
            chown_to_postgres(&dir.0);
        }
        pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        let write = |name: &str, contents: &str, private: bool| {
            let path = data.join(name);
            std::fs::write(&path, contents).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = if private { 0o600 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            if running_as_root() {
                chown_to_postgres(&path);
            }
        };
        write("server.crt", &server.cert_pem, false);
        write("server.key", &server.key_pem, true);
        write("root.crt", &ca.pem, false);
        let conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        write(
            "postgresql.conf",
            &format!(
                "{conf}\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                 ssl_ca_file = 'root.crt'\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
                 unix_socket_directories = '{}'\n",
                dir.0.display()
            ),
            false,
        );
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
            false,
        );
        let log = dir.path("server.log");
        pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        let cluster = Cluster { dir, port };
        let socket_dir = cluster.dir.0.to_str().unwrap().to_owned();
        let port = port.to_string();
        pg(
            "psql",
            &[
                "-h",
                &socket_dir,
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                "CREATE ROLE orders LOGIN",
            ],
        );
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path("data");
        let _ = std::panic::catch_unwind(|| {
            pg(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            )
        });
    }
}

#[cfg(unix)]
fn chown_to_postgres(path: &Path) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user")
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).unwrap();
}

#[cfg(not(unix))]
fn chown_to_postgres(_path: &Path) {}

/// The DN and serial of the client certificate the server saw, as `DN serial`.
async fn client_dn(
    client: &Client,
    port: u16,
    user: &str,
) -> Result<String, tokio_postgres::Error> {
    let mut tls = (*client.rustls_config()).clone();
    tls.alpn_protocols.clear();
    let params = format!("host=127.0.0.1 port={port} user={user} dbname=postgres sslmode=require");
    let (db, connection) =
        tokio_postgres::connect(&params, tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .await?;
    tokio::spawn(connection);
    let row = db
        .query_one(
            "SELECT client_dn, client_serial::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    let dn = row.get::<_, Option<String>>(0).unwrap_or_default();
    let serial = row.get::<_, Option<String>>(1).unwrap_or_default();
    Ok(format!("{dn} {serial}"))
}

fn client_for(trust: &Ca, leaf: &Issued) -> Client {
    Client::builder()
        .identity(leaf.identity())
        .trust(trust.trust())
        .build()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries (Debian package postgresql); .ci/run installs them"]
async fn postgres_sees_our_certificate_and_refuses_the_wrong_ones() {
    let ca = Ca::new("root");
    let cluster = Cluster::start(&ca, &ca.server());

    let orders = client_for(&ca, &ca.client("orders"));
    let dn = client_dn(&orders, cluster.port, "orders").await.unwrap();
    println!("PostgreSQL saw client_dn = {dn}");
    assert!(dn.contains("CN=orders"), "{dn}");
    // Rotation reaches the database's new connections, with nothing rebuilt.
    orders.set_identity(ca.client("orders").identity()).unwrap();
    let rotated = client_dn(&orders, cluster.port, "orders").await.unwrap();
    println!("after rotation: {rotated}");
    assert!(
        rotated.contains("CN=orders") && rotated != dn,
        "{rotated} vs {dn}"
    );

    // A certificate from a CA the server does not trust: refused in the TLS handshake.
    let foreign = Ca::new("foreign");
    let intruder = client_for(&ca, &foreign.client("orders"));
    let err = client_dn(&intruder, cluster.port, "orders")
        .await
        .unwrap_err();
    let named = ClientError::find_in(&err).unwrap_or_else(|| panic!("no TLS failure in {err:?}"));
    println!("foreign CA: {named}");
    assert!(
        matches!(&named, ClientError::ServerRejectedCertificate { alert } if alert == "unknown_ca"),
        "{named:?}"
    );

    // A valid certificate whose CN names another user: the database refuses it by name.
    let mallory = client_for(&ca, &ca.client("mallory"));
    let err = client_dn(&mallory, cluster.port, "orders")
        .await
        .unwrap_err();
    let refused = err
        .as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_default();
    println!("CN mallory as orders: {refused}");
    assert!(
        refused.contains("certificate authentication failed"),
        "{err:?}"
    );
}
