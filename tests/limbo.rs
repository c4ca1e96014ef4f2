//! No weakening: on the x509-limbo path-validation corpus, our verifiers reach the same verdict
//! as rustls' own `WebPkiServerVerifier` / `WebPkiClientVerifier` on every case.
//!
//! Run with `LIMBO_JSON=path/to/limbo.json cargo test --test limbo -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Duration;

use mtls::verify::{ClientIdentityVerifier, RevocationPolicy, ServerIdentityVerifier};
use mtls::{Authorizer, ClientAuth, TrustBundle, crypto_provider};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde_json::Value;

fn certs(value: &Value) -> Vec<CertificateDer<'static>> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .flat_map(|pem| CertificateDer::pem_slice_iter(pem.as_bytes()))
                .filter_map(Result::ok)
                .collect()
        })
        .unwrap_or_default()
}

fn time_of(case: &Value) -> UnixTime {
    match case["validation_time"].as_str() {
        Some(t) => {
            let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339 validation time");
            UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64))
        }
        None => UnixTime::now(),
    }
}

/// The policy that stands for the expected peer name: a DNS or IP SAN.
fn name_policy(case: &Value) -> Option<(Authorizer, ServerName<'static>)> {
    let name = &case["expected_peer_name"];
    let value = name["value"].as_str()?;
    let server_name = ServerName::try_from(value.to_owned()).ok()?;
    let policy = match name["kind"].as_str()? {
        "DNS" => Authorizer::dns_name(value).ok()?,
        "IP" => Authorizer::ip_address(value.parse().ok()?),
        _ => return None,
    };
    Some((policy, server_name))
}

#[derive(Default)]
struct Tally {
    cases: usize,
    agree_success: usize,
    agree_failure: usize,
    skipped: Vec<String>,
    weaker: Vec<String>,
    stricter: Vec<String>,
}

#[test]
#[ignore = "needs LIMBO_JSON pointing at the x509-limbo corpus"]
fn verifiers_agree_with_rustls_on_x509_limbo() {
    let path = std::env::var("LIMBO_JSON").expect("set LIMBO_JSON to the limbo.json path");
    let text = std::fs::read_to_string(&path).expect("read LIMBO_JSON");
    let corpus: Value = serde_json::from_str(&text).expect("limbo.json is JSON");
    let provider = crypto_provider();
    let mut tally = Tally::default();

    for case in corpus["testcases"].as_array().expect("testcases") {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let anchors = certs(&case["trusted_certs"]);
        let intermediates = certs(&case["untrusted_intermediates"]);
        let Some(leaf) = case["peer_certificate"]
            .as_str()
            .and_then(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).ok())
        else {
            tally
                .skipped
                .push(format!("{id}: unparsable peer certificate"));
            continue;
        };
        let now = time_of(case);
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(anchors.clone());
        // Our bundle refuses non-CA anchors at load time; that is a failure verdict, stricter.
        let bundle = TrustBundle::from_der(anchors.clone());
        tally.cases += 1;

        let (theirs, ours) = match case["validation_kind"].as_str() {
            Some("SERVER") => {
                let Some((policy, server_name)) = name_policy(case) else {
                    tally
                        .skipped
                        .push(format!("{id}: no usable DNS/IP peer name"));
                    tally.cases -= 1;
                    continue;
                };
                let theirs = added > 0
                    && WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        Arc::clone(&provider),
                    )
                    .build()
                    .is_ok_and(|v| {
                        v.verify_server_cert(&leaf, &intermediates, &server_name, &[], now)
                            .is_ok()
                    });
                let ours = bundle.is_ok_and(|bundle| {
                    ServerIdentityVerifier::new(
                        Arc::clone(&provider),
                        &[bundle],
                        Some(policy),
                        RevocationPolicy::default(),
                    )
                    .is_ok_and(|v| {
                        v.verify_server_cert(&leaf, &intermediates, &server_name, &[], now)
                            .is_ok()
                    })
                });
                (theirs, ours)
            }
            Some("CLIENT") => {
                let theirs = added > 0
                    && WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        Arc::clone(&provider),
                    )
                    .build()
                    .is_ok_and(|v| v.verify_client_cert(&leaf, &intermediates, now).is_ok());
                let ours = bundle.is_ok_and(|bundle| {
                    ClientIdentityVerifier::new(
                        Arc::clone(&provider),
                        &[bundle],
                        Authorizer::any_verified(),
                        ClientAuth::Required,
                        RevocationPolicy::default(),
                    )
                    .is_ok_and(|v| v.verify_client_cert(&leaf, &intermediates, now).is_ok())
                });
                (theirs, ours)
            }
            other => {
                tally.skipped.push(format!("{id}: kind {other:?}"));
                tally.cases -= 1;
                continue;
            }
        };
        match (theirs, ours) {
            (true, true) => tally.agree_success += 1,
            (false, false) => tally.agree_failure += 1,
            (false, true) => tally.weaker.push(id),
            (true, false) => tally.stricter.push(id),
        }
    }

    println!(
        "x509-limbo: {} cases compared; agree: {} accepted, {} rejected; ours weaker: {}; ours stricter: {}; skipped: {}",
        tally.cases,
        tally.agree_success,
        tally.agree_failure,
        tally.weaker.len(),
        tally.stricter.len(),
        tally.skipped.len()
    );
    for s in &tally.skipped {
        println!("  skipped {s}");
    }
    for s in &tally.stricter {
        println!("  stricter {s}");
    }
    // Every case but those with no DNS/IP peer name (one in the corpus: a name-constraint case
    // on directory names, which rustls' server verifier cannot take without a name) is compared.
    assert!(
        tally.cases >= 207 && tally.skipped.len() <= 1,
        "the whole corpus was compared ({} cases, skipped {:?})",
        tally.cases,
        tally.skipped
    );
    assert!(
        tally.weaker.is_empty(),
        "accepted where rustls rejects: {:?}",
        tally.weaker
    );
    assert!(
        tally.stricter.is_empty(),
        "rejected where rustls accepts: {:?}",
        tally.stricter
    );
}
