//! `mtls inspect FILE...`: what certificate, key and keystore files hold.

use std::path::Path;

use mtls::{CertificateDer, Identity, Password, PrivateKeyDer, TrustBundle};
use rustls_pki_types::pem::PemObject;
use serde::Serialize;

use crate::cert::{Facts, chain_order};
use crate::{InspectArgs, Outcome};

#[derive(Serialize)]
struct FileReport {
    path: String,
    /// "PEM", "DER" or "PKCS#12".
    format: &'static str,
    certificates: Vec<Facts>,
    /// Private keys in the file, each with the certificate it belongs to.
    keys: Vec<KeyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<ChainReport>,
    /// What is wrong with this file, in sentences.
    problems: Vec<String>,
    #[serde(skip)]
    ders: Vec<CertificateDer<'static>>,
}

#[derive(Serialize)]
struct KeyReport {
    /// "certificate 1 of server.pem (CN=server)", or null when no certificate matches.
    matches: Option<String>,
}

#[derive(Serialize)]
struct ChainReport {
    in_order: bool,
    /// Ends at a self-signed root.
    complete: bool,
    note: String,
}

pub fn run(args: InspectArgs) -> Outcome {
    let password = match &args.password_file {
        Some(file) => match Password::from_file(file) {
            Ok(p) => Some(p),
            Err(e) => return Outcome::Usage(e.to_string()),
        },
        None => None,
    };
    let mut reports = Vec::new();
    let mut keys: Vec<(usize, PrivateKeyDer<'static>)> = Vec::new();
    for (index, path) in args.files.iter().enumerate() {
        let (report, file_keys) = read(path, password.as_ref());
        keys.extend(file_keys.into_iter().map(|k| (index, k)));
        reports.push(report);
    }
    // Keys against every certificate given, in any file (a CA's key too).
    let leaves: Vec<(String, &CertificateDer<'static>)> = reports
        .iter()
        .flat_map(|r| {
            r.certificates
                .iter()
                .zip(&r.ders)
                .enumerate()
                .map(move |(i, (f, der))| {
                    (
                        format!("certificate {} of {} ({})", i + 1, r.path, f.subject),
                        der,
                    )
                })
        })
        .collect();
    let mut found = Vec::new();
    for (file, key) in keys {
        let matches = leaves
            .iter()
            .find(|(_, der)| Identity::from_der(vec![(*der).clone()], key.clone_key()).is_ok())
            .map(|(label, _)| label.clone());
        found.push((file, matches, leaves.is_empty()));
    }
    for (file, matches, no_leaves) in found {
        if matches.is_none() {
            reports[file].problems.push(if no_leaves {
                "the private key has no certificate to match: give the certificate file too"
                    .to_owned()
            } else {
                "the private key matches none of the certificates given".to_owned()
            });
        }
        reports[file].keys.push(KeyReport { matches });
    }
    let broken = reports.iter().any(|r| !r.problems.is_empty());
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(e) => return Outcome::Usage(format!("cannot encode the report: {e}")),
        }
    } else {
        for report in &reports {
            print_text(report);
        }
    }
    if broken { Outcome::Broken } else { Outcome::Ok }
}

type Contents = (
    Vec<CertificateDer<'static>>,
    Vec<PrivateKeyDer<'static>>,
    &'static str,
);

/// Certificates and keys in a file, and its format.
fn certificates(path: &Path, password: Option<&Password>) -> Result<Contents, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: a PEM certificate is damaged: {e}", path.display()))?;
        let keys: Vec<PrivateKeyDer<'static>> = PrivateKeyDer::from_pem_slice(&bytes)
            .ok()
            .into_iter()
            .collect();
        if certs.is_empty() && keys.is_empty() {
            return Err(format!(
                "{}: PEM without a CERTIFICATE or PRIVATE KEY block",
                path.display()
            ));
        }
        return Ok((certs, keys, "PEM"));
    }
    let der = CertificateDer::from(bytes.clone());
    if Facts::of(&der).is_ok() {
        return Ok((vec![der], Vec::new(), "DER"));
    }
    // PKCS#12: a keystore (key and chain) or a truststore (certificates only).
    let empty = Password::new("");
    let password = password.unwrap_or(&empty);
    match Identity::from_pkcs12(&bytes, password, None) {
        Ok(identity) => Ok((identity.chain().to_vec(), Vec::new(), "PKCS#12")),
        Err(keystore_error) => match TrustBundle::from_pkcs12(&bytes, password) {
            Ok(bundle) => Ok((bundle.certificates().to_vec(), Vec::new(), "PKCS#12")),
            Err(_) => Err(format!(
                "{}: not a PEM or DER certificate, and as PKCS#12: {keystore_error}",
                path.display()
            )),
        },
    }
}

fn read(path: &Path, password: Option<&Password>) -> (FileReport, Vec<PrivateKeyDer<'static>>) {
    let mut report = FileReport {
        path: path.display().to_string(),
        format: "?",
        certificates: Vec::new(),
        keys: Vec::new(),
        chain: None,
        problems: Vec::new(),
        ders: Vec::new(),
    };
    let (certs, keys, format) = match certificates(path, password) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(e);
            return (report, Vec::new());
        }
    };
    report.format = format;
    if format == "PKCS#12" {
        report.keys.push(KeyReport {
            matches: Some(
                "certificate 1 (a keystore's key and certificate are checked together)".to_owned(),
            ),
        });
    }
    for (i, der) in certs.iter().enumerate() {
        match Facts::of(der) {
            Ok(facts) => {
                if facts.expired() {
                    report.problems.push(format!(
                        "certificate {} ({}) has EXPIRED",
                        i + 1,
                        facts.subject
                    ));
                } else if facts.not_yet_valid() {
                    report.problems.push(format!(
                        "certificate {} ({}) is NOT YET VALID",
                        i + 1,
                        facts.subject
                    ));
                }
                report.certificates.push(facts);
                report.ders.push(der.clone());
            }
            Err(e) => report
                .problems
                .push(format!("certificate {} cannot be parsed: {e}", i + 1)),
        }
    }
    if report.certificates.len() > 1 {
        report.chain = Some(chain_report(&report.certificates, &mut report.problems));
    }
    (report, keys)
}

fn chain_report(chain: &[Facts], problems: &mut Vec<String>) -> ChainReport {
    // A file of independent CAs (a trust bundle) is not a chain.
    if chain.iter().all(|c| c.ca && c.self_signed) {
        return ChainReport {
            in_order: true,
            complete: true,
            note: format!("{} independent root CAs (a trust bundle)", chain.len()),
        };
    }
    let order = chain_order(chain);
    let top = chain.last().expect("more than one");
    if !order.breaks.is_empty() {
        let hint = match &order.suggested {
            Some(o) => format!(
                "; the right order is {}",
                o.iter()
                    .map(|i| format!("{} ({})", i + 1, chain[*i].subject))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let at = order.breaks[0];
        let note = format!(
            "out of order: certificate {} ({}) is not issued by certificate {} ({}){hint}",
            at + 1,
            chain[at].subject,
            at + 2,
            chain[at + 1].subject
        );
        problems.push(format!("the chain is {note}"));
        return ChainReport {
            in_order: false,
            complete: false,
            note,
        };
    }
    if top.self_signed {
        ChainReport {
            in_order: true,
            complete: true,
            note: format!("in order, up to the root {}", top.subject),
        }
    } else {
        ChainReport {
            in_order: true,
            complete: false,
            note: format!(
                "in order; ends at {}, issued by {} (not included: peers must trust it)",
                top.subject, top.issuer
            ),
        }
    }
}

fn print_text(report: &FileReport) {
    println!("{} ({})", report.path, report.format);
    for (i, c) in report.certificates.iter().enumerate() {
        let role = if c.ca {
            if c.self_signed {
                "root CA"
            } else {
                "intermediate CA"
            }
        } else {
            "leaf"
        };
        println!("  certificate {} — {role}", i + 1);
        println!("    subject:     {}", c.subject);
        println!("    issuer:      {}", c.issuer);
        println!("    serial:      {}", c.serial);
        if !c.sans.is_empty() {
            println!("    names:       {}", c.sans.join(", "));
        }
        if let Some(id) = &c.spiffe_id {
            println!("    SPIFFE ID:   {id}");
        }
        println!(
            "    validity:    {} to {} ({})",
            c.not_before, c.not_after, c.time_left
        );
        println!("    key:         {}", c.key);
        if !c.key_usage.is_empty() {
            println!("    key usage:   {}", c.key_usage.join(", "));
        }
        if !c.extended_key_usage.is_empty() {
            println!("    ext. usage:  {}", c.extended_key_usage.join(", "));
        }
        println!("    SHA-256:     {}", c.sha256);
        println!("    x5t#S256:    {}", c.x5t_s256);
    }
    if let Some(chain) = &report.chain {
        println!("  chain: {}", chain.note);
    }
    for key in &report.keys {
        match &key.matches {
            Some(m) => println!("  private key: matches {m}"),
            None => println!("  private key: matches NO certificate given"),
        }
    }
    for problem in &report.problems {
        println!("  ✗ {problem}");
    }
}
