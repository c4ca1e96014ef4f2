//! `mtls ca`: a development CA in a directory, on the library's `DevCa`.

use std::path::Path;

use mtls::dev::{DevCa, LeafSpec, Usage};

use crate::cert::Facts;
use crate::{CaCommand, IssueArgs, Outcome};

pub fn run(command: CaCommand) -> Outcome {
    match command {
        CaCommand::Init { dir, name, force } => init(&dir, &name, force),
        CaCommand::Issue(args) => issue(&args),
    }
}

fn init(dir: &Path, name: &str, force: bool) -> Outcome {
    let existing = dir.join("ca.pem");
    if existing.exists() && !force {
        return Outcome::Usage(format!(
            "{} already holds a CA; keep it, or pass --force to replace it (certificates it issued stop being trusted)",
            existing.display()
        ));
    }
    let ca = match DevCa::new(name) {
        Ok(ca) => ca,
        Err(e) => return failed("cannot create the CA", &e),
    };
    match ca.write_pem(dir, "ca") {
        Ok((cert, key)) => {
            println!("development CA \"{name}\" (not for production)");
            println!("  certificate: {}", cert.display());
            println!("  private key: {} (mode 0600)", key.display());
            println!(
                "next: mtls ca issue {} --name NAME [--spiffe-id ID] [--dns NAME]",
                dir.display()
            );
            Outcome::Ok
        }
        Err(e) => failed("cannot write the CA", &e),
    }
}

fn issue(args: &IssueArgs) -> Outcome {
    let (cert_path, key_path) = (args.dir.join("ca.pem"), args.dir.join("ca.key"));
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read {}: {e}; create the CA first with `mtls ca init {}`",
                path.display(),
                args.dir.display()
            )
        })
    };
    let (cert_pem, key_pem) = match (read(&cert_path), read(&key_path)) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => return Outcome::Usage(e),
    };
    let ca = match DevCa::from_pem(&cert_pem, &key_pem) {
        Ok(ca) => ca,
        Err(e) => {
            return Outcome::Usage(format!(
                "{} and {} are not a usable CA: {e}",
                cert_path.display(),
                key_path.display()
            ));
        }
    };
    if args.name.is_empty() || args.name.contains(['/', '\\']) || args.name.starts_with('.') {
        return Outcome::Usage(format!(
            "--name `{}` is also the file name: use letters, digits, '-' or '_'",
            args.name
        ));
    }
    if args.name == "ca" || args.name == "truststore" {
        return Outcome::Usage(format!(
            "--name `{}` would overwrite the CA's own files in {}; choose another name",
            args.name,
            args.dir.display()
        ));
    }
    let existing = args.dir.join(format!("{}.pem", args.name));
    if existing.exists() && !args.force {
        return Outcome::Usage(format!(
            "{} already exists; pass --force to replace it",
            existing.display()
        ));
    }
    let usage = if args.client {
        Usage::Client
    } else if args.server {
        Usage::Server
    } else {
        Usage::Both
    };
    let mut spec = LeafSpec::new(&args.name).usage(usage).valid_for(args.ttl);
    if let Some(id) = &args.spiffe_id {
        if let Err(e) = mtls::SpiffeId::parse(id) {
            return Outcome::Usage(format!("--spiffe-id `{id}`: {e}"));
        }
        spec = spec.spiffe_id(id);
    }
    let mut dns = args.dns.clone();
    let mut ips = args.ip.clone();
    if usage != Usage::Client && dns.is_empty() && ips.is_empty() {
        dns.push("localhost".to_owned());
        ips.push(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    for name in &dns {
        spec = spec.dns(name);
    }
    for ip in &ips {
        spec = spec.ip(*ip);
    }
    let password = match &args.password_file {
        Some(file) => match mtls::Password::from_file(file) {
            Ok(p) => Some(p),
            Err(e) => return Outcome::Usage(e.to_string()),
        },
        None => None,
    };
    let leaf = match ca.issue(&spec) {
        Ok(leaf) => leaf,
        Err(e) => return Outcome::Usage(format!("cannot issue `{}`: {e}", args.name)),
    };
    let (cert, key) = match leaf.write_pem(&args.dir, &args.name) {
        Ok(paths) => paths,
        Err(e) => return failed("cannot write the certificate", &e),
    };
    println!("issued by the development CA (not for production):");
    println!("  certificate: {}", cert.display());
    println!("  private key: {} (mode 0600)", key.display());
    println!("  trust (CA):  {}", cert_path.display());
    if let Some(password) = &password {
        let stores = leaf
            .to_pkcs12(&args.name, password)
            .and_then(|keystore| Ok((keystore, ca.truststore_pkcs12("ca", password)?)));
        let (keystore, truststore) = match stores {
            Ok(s) => s,
            Err(e) => return failed("cannot make the PKCS#12 stores", &e),
        };
        let keystore_path = args.dir.join(format!("{}.p12", args.name));
        let truststore_path = args.dir.join("truststore.p12");
        if let Err(e) = write_private(&keystore_path, &keystore)
            .and_then(|()| std::fs::write(&truststore_path, &truststore))
        {
            return failed("cannot write the PKCS#12 stores", &e);
        }
        println!(
            "  keystore:    {} (alias {}, mode 0600)",
            keystore_path.display(),
            args.name
        );
        println!("  truststore:  {} (alias ca)", truststore_path.display());
    }
    if let Ok(facts) = Facts::of(&mtls::CertificateDer::from(leaf.der().to_vec())) {
        println!("  subject:     {}", facts.subject);
        if !facts.sans.is_empty() {
            println!("  names:       {}", facts.sans.join(", "));
        }
        println!("  valid until: {} ({})", facts.not_after, facts.time_left);
        println!("  usage:       {}", facts.extended_key_usage.join(", "));
    }
    Outcome::Ok
}

/// Writes a file only its owner can read (on Unix), as the key files are: any file already
/// there is removed first, so neither its permissions nor a link it is survive.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

fn failed(what: &str, error: &dyn std::fmt::Display) -> Outcome {
    eprintln!("error: {what}: {error}");
    Outcome::Broken
}
