//! Side by side on one machine: our `Server`, a hand-written tokio-rustls + hyper-util server
//! with the same rustls configuration and handler, and nginx; and our `Client` against a
//! hand-written hyper-util client.
//!
//! `benches/compare.sh [--quick] [--rounds N]` builds this in release, makes the
//! certificates, measures the crypto limit with `openssl speed`, starts nginx and runs this
//! binary. `cargo bench --bench compare [-- --quick]` runs it alone, without nginx (its
//! columns then read `nan`). The bench re-runs itself as each Rust server in a child process
//! (one tokio worker thread per core), and drives every contender from this process with
//! plain tokio-rustls clients (none of our client code): each metric for mtls, raw, nginx
//! in turn, then the next metric, round after round, reporting the median of each. The
//! load generator shares the cores with the server under test, the same for every
//! contender. Loopback only; every measurement lasts a fixed time. The keep-alive metrics,
//! whose rates swing most from slice to slice, are measured for longer than the handshake
//! ones (see `THROUGHPUT`).
//!
//! Metrics (see docs/PERFORMANCE.md): `handshakes`, `resumed`, `requests`, `requests_h2`,
//! `p99_ms` (and p50) at half the slowest contender's keep-alive maximum, `kib_per_conn`,
//! and `client_requests`. With `--per-connection`, a fourth contender, our `Server` with a
//! service made per connection (`serve_connections`, no identity in the requests'
//! extensions), takes the throughput measurements too and prints a `PER_CONNECTION` line
//! for `requests` and `requests_h2` against mtls and raw. Each metric prints last as
//! `RESULT <metric> mtls=<v> raw=<v> nginx=<v> ratio_raw=<mtls/raw> ratio_nginx=<mtls/nginx>`,
//! after `BOUND handshakes_per_s=<v> per_server_core=<v> fraction=<mtls/bound> ...` when
//! `openssl speed` figures are given: the server's side of a full handshake's public-key
//! work on one core, against our full handshakes per second of server CPU.
//!
//! Modes used by `compare.sh` and by the bench itself: `--make-certs DIR`, `--free-port`,
//! `--cores`, `--serve-mtls DIR`, `--serve-mtls-conn DIR`, `--serve-raw DIR`; and for profiling one server under one
//! load, `--drive DIR METRIC ADDR SECONDS`. Options: `--quick`, `--rounds N`, `--slices N`,
//! `--seconds S`, `--per-connection`,
//! `--certs DIR`, `--nginx ADDR --nginx-pid PID`, `--openssl-speed SIGN,VERIFY,X25519`
//! (operations per second on one core).

#[path = "compare/certs.rs"]
mod certs;
#[path = "compare/clients.rs"]
mod clients;
#[path = "compare/crypto.rs"]
mod crypto;
#[path = "compare/load.rs"]
mod load;
#[path = "compare/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use servers::Running;

/// Worker threads for each Rust server and for the load generator; nginx worker processes.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

const MTLS: usize = 0;
const RAW: usize = 1;
const NGINX: usize = 2;
/// Our `Server` with a service made per connection (`serve_connections`), with
/// `--per-connection`: measured like the others for the throughput metrics, reported for the
/// keep-alive ones only, apart from the RESULT lines.
const MTLS_CONN: usize = 3;
const NAMES: [&str; 4] = ["mtls", "raw", "nginx", "mtls-conn"];
/// The metrics `MTLS_CONN` is reported for.
const PER_CONNECTION: [&str; 2] = ["requests", "requests_h2"];
/// The two clients of `client_requests`, under the `mtls` and `raw` columns.
const CLIENT_NAMES: [&str; 2] = ["our Client", "hand-written"];

/// In the order they print last, with the decimals of their values.
const RESULTS: [(&str, usize); 7] = [
    ("handshakes", 1),
    ("resumed", 1),
    ("requests", 1),
    ("requests_h2", 1),
    ("p99_ms", 3),
    ("kib_per_conn", 2),
    ("client_requests", 1),
];

struct Options {
    quick: bool,
    rounds: usize,
    /// Each measurement of `seconds` is cut into this many slices, taken in turn with the
    /// other contenders' (A B C, B C A, C A B, ...), so that the machine's drift over seconds
    /// hits all contenders alike. A measurement of another length has proportionally many,
    /// rounded up to a whole number of turns (see [`slices_for`]).
    slices: usize,
    seconds: f64,
    /// Also measure our `Server` with a service made per connection (`MTLS_CONN`).
    per_connection: bool,
    certs: Option<PathBuf>,
    nginx: Option<(SocketAddr, u32)>,
    openssl: Option<crypto::Speed>,
    /// The `openssl` binary, to time its public-key speed again at the start of every round.
    openssl_bin: Option<PathBuf>,
}

fn usage(problem: &str) -> ! {
    eprintln!("compare: {problem}");
    eprintln!(
        "usage: compare [--quick] [--rounds N] [--slices N] [--seconds S] [--per-connection] \
         [--certs DIR] [--nginx ADDR --nginx-pid PID] [--openssl-speed SIGN,VERIFY,X25519] \
         [--openssl BIN]"
    );
    std::process::exit(2)
}

fn options(args: &[String]) -> Options {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        quick,
        rounds: if quick { 1 } else { 7 },
        slices: if quick { 1 } else { 3 },
        seconds: if quick { 1.5 } else { 5.0 },
        per_connection: false,
        certs: None,
        nginx: None,
        openssl: None,
        openssl_bin: None,
    };
    let mut nginx_addr = None;
    let mut nginx_pid = None;
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        let bad = |what: &str| -> ! { usage(&format!("{arg}: {what}")) };
        match arg.as_str() {
            "--quick" => {}
            "--per-connection" => o.per_connection = true,
            // `cargo bench` passes this to every bench.
            "--bench" => {}
            "--rounds" => {
                o.rounds = value().parse().unwrap_or_else(|_| bad("a whole number"));
                if o.rounds == 0 {
                    bad("at least 1");
                }
            }
            "--slices" => {
                o.slices = value().parse().unwrap_or_else(|_| bad("a whole number"));
                if o.slices == 0 {
                    bad("at least 1");
                }
            }
            "--seconds" => {
                o.seconds = value().parse().unwrap_or_else(|_| bad("a number"));
                if o.seconds.is_nan() || o.seconds <= 0.0 {
                    bad("more than 0");
                }
            }
            "--certs" => o.certs = Some(PathBuf::from(value())),
            "--openssl" => o.openssl_bin = Some(PathBuf::from(value())),
            "--nginx" => {
                nginx_addr = Some(value().parse().unwrap_or_else(|_| bad("an address")));
            }
            "--nginx-pid" => nginx_pid = Some(value().parse().unwrap_or_else(|_| bad("a pid"))),
            "--openssl-speed" => {
                let rates: Vec<f64> = value()
                    .split(',')
                    .map(|v| v.trim().parse().unwrap_or_else(|_| bad("three numbers")))
                    .collect();
                let [sign, verify, x25519] = rates[..] else {
                    bad("three numbers")
                };
                o.openssl = Some(crypto::Speed {
                    sign,
                    verify,
                    keygen: x25519,
                    derive: x25519,
                });
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o.nginx = match (nginx_addr, nginx_pid) {
        (Some(addr), Some(pid)) => Some((addr, pid)),
        (None, None) => None,
        _ => usage("--nginx and --nginx-pid go together"),
    };
    o
}

/// Per metric, the samples of each contender (for `client_requests`: our `Client` under
/// `mtls`, the hand-written one under `raw`).
#[derive(Default)]
struct Samples(BTreeMap<&'static str, [Vec<f64>; 4]>);

impl Samples {
    fn push(&mut self, metric: &'static str, who: usize, value: f64) {
        self.0.entry(metric).or_default()[who].push(value);
    }

    fn median(&self, metric: &str, who: usize) -> f64 {
        self.0
            .get(metric)
            .map_or(f64::NAN, |s| median(s[who].clone()))
    }

    /// `a` over `b`: the median of the rounds' own ratios. Each round measures both within
    /// the same minutes (each metric in slices taken in turn), so a round's ratio is free of
    /// the drift between rounds that the ratio of the two medians would carry.
    fn ratio(&self, metric: &str, a: usize, b: usize) -> f64 {
        median(self.round_ratios(metric, a, b))
    }

    /// Round by round, `a`'s sample over `b`'s, sorted (rounds where either is missing or
    /// not a number are left out).
    fn round_ratios(&self, metric: &str, a: usize, b: usize) -> Vec<f64> {
        let Some(s) = self.0.get(metric) else {
            return Vec::new();
        };
        let mut v: Vec<f64> = s[a]
            .iter()
            .zip(&s[b])
            .map(|(x, y)| x / y)
            .filter(|r| r.is_finite())
            .collect();
        v.sort_by(|x, y| x.total_cmp(y));
        v
    }
}

/// The throughput metrics, each with the sample name its server CPU per operation is kept
/// under, and its length as a share of `--seconds`. A contender's keep-alive rate swings by
/// 10 to 17 % from one slice to the next on this kind of machine, its handshake rates by
/// less, and the handshake ratios sit far from their targets: so the keep-alive metrics
/// take most of the time (10 s per contender and round by default, the handshake ones 3 s).
const THROUGHPUT: [(&str, &str, f64); 4] = [
    ("handshakes", "cpu_handshakes", 0.6),
    ("resumed", "cpu_resumed", 0.6),
    ("requests", "cpu_requests", 2.0),
    ("requests_h2", "cpu_requests_h2", 2.0),
];

/// The client measurement's length as a share of `--seconds`: the longest of all (10 s per
/// client and round by default), as its ratio is the noisiest (rounds from 0.87 to 1.26 with
/// 5 s).
const CLIENT_SHARE: f64 = 2.0;

/// The slices of a measurement `share` times `--seconds` long among `contenders`: `--slices`
/// per `--seconds`, rounded up to a whole number of turns so that each contender takes each
/// place in the order equally often; one when `--slices` is 1.
fn slices_for(slices: usize, share: f64, contenders: usize) -> usize {
    if slices == 1 {
        return 1;
    }
    let wanted = (slices as f64 * share).ceil() as usize;
    wanted.div_ceil(contenders).max(1) * contenders
}

/// One contender's slices of one measurement in one round, added up.
#[derive(Default)]
struct Total {
    ops: f64,
    seconds: f64,
    server_cpu_s: f64,
    /// Resumed-run only: handshakes that did resume, and all handshakes.
    resumed_ops: f64,
    all_handshakes: f64,
    errors: u64,
}

impl Total {
    fn add(&mut self, o: &load::Outcome) {
        let ops = o.per_s * o.window_s;
        self.ops += ops;
        self.seconds += o.window_s;
        self.server_cpu_s += o.server_cpu_s;
        if o.resumed_share.is_finite() && o.resumed_share > 0.0 {
            self.resumed_ops += ops;
            self.all_handshakes += ops / o.resumed_share;
        }
        self.errors += o.errors;
    }

    fn per_s(&self) -> f64 {
        self.ops / self.seconds
    }

    /// Microseconds of the server's CPU per operation (NaN when not measured).
    fn server_cpu_us_per_op(&self) -> f64 {
        self.server_cpu_s / self.ops * 1e6
    }

    fn resumed_share(&self) -> f64 {
        self.resumed_ops / self.all_handshakes
    }
}

/// Failed operations, or contenders that did nothing: the run still prints, then fails.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, what: String, outcome: &load::Outcome, seconds: f64) {
        let ops = outcome.per_s * seconds;
        if outcome.per_s <= 0.0 {
            self.0.push(format!("{what}: nothing completed"));
        } else if outcome.errors as f64 > (ops / 100.0).max(1.0) {
            self.0
                .push(format!("{what}: {} failed operations", outcome.errors));
        }
    }
}

/// The middle value (the upper one of the two middle values of an even count); NaN when
/// there is none.
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn number(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "nan".to_owned()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir_arg = || {
        PathBuf::from(
            args.get(2)
                .unwrap_or_else(|| usage(&format!("{} needs a directory", args[1]))),
        )
    };
    match args.get(1).map(String::as_str) {
        Some("--serve-mtls") => return servers::serve_mtls(&dir_arg()),
        Some("--serve-mtls-conn") => return servers::serve_mtls_per_connection(&dir_arg()),
        Some("--serve-raw") => return servers::serve_raw(&dir_arg()),
        Some("--make-certs") => return certs::make(&dir_arg()),
        Some("--drive") => return drive(&args[2..]),
        Some("--cores") => return println!("{}", cores()),
        Some("--free-port") => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            println!("{}", listener.local_addr().unwrap().port());
            return;
        }
        _ => {}
    }
    let o = options(&args);
    let (dir, own_dir) = match &o.certs {
        Some(dir) => (dir.clone(), false),
        None => {
            let dir = std::env::temp_dir().join(format!("mtls-compare-{}", std::process::id()));
            certs::make(&dir);
            (dir, true)
        }
    };
    let failed = compare(&o, &dir);
    if own_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if failed {
        std::process::exit(1);
    }
}

/// Runs every measurement and prints the results; true if something failed.
fn compare(o: &Options, dir: &Path) -> bool {
    let certs = certs::Certs::load(dir);
    let cores = cores();
    let seconds = o.seconds;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let contenders: Vec<usize> = match o.nginx {
        Some(_) => vec![MTLS, RAW, NGINX],
        None => vec![MTLS, RAW],
    };
    // Both clients call one server that is neither ours nor the baseline, nginx, when it runs
    // (else the baseline); over ALPN both then speak HTTP/2 to it.
    let client_server = if o.nginx.is_some() { NGINX } else { RAW };
    eprintln!(
        "{} cores, provider {}, {} round(s) of {seconds} s per measurement; contenders: {}; \
         clients call {}",
        cores,
        mtls::CRYPTO_PROVIDER,
        o.rounds,
        contenders
            .iter()
            .map(|&c| NAMES[c])
            .collect::<Vec<_>>()
            .join(", "),
        NAMES[client_server],
    );

    // The provider's own public-key speed, on one core, before any server runs.
    let provider = crypto::measure(dir, if o.quick { 0.2 } else { 1.0 });

    let start = |who: usize| match who {
        MTLS => Running::child("--serve-mtls", dir),
        RAW => Running::child("--serve-raw", dir),
        MTLS_CONN => Running::child("--serve-mtls-conn", dir),
        _ => {
            let (addr, master) = o.nginx.expect("nginx runs");
            let nginx = Running::Nginx { master, addr };
            // New worker processes each round, as the Rust servers are new processes.
            nginx.fresh();
            nginx
        }
    };
    let mut samples = Samples::default();
    let mut problems = Problems::default();
    // `openssl speed`, timed again at the start of every round: the machine's speed drifts,
    // and the bound is read against the same round's handshakes.
    let mut speeds: Vec<crypto::Speed> = Vec::new();

    for round in 1..=o.rounds {
        if let Some(openssl) = &o.openssl_bin {
            match crypto::openssl_speed(openssl, 1) {
                Some(speed) => {
                    eprintln!(
                        "round {round} openssl speed: ECDSA P-256 sign {:.0}/s, verify {:.0}/s; \
                         X25519 {:.0}/s",
                        speed.sign, speed.verify, speed.derive
                    );
                    speeds.push(speed);
                }
                None => problems
                    .0
                    .push(format!("round {round}: openssl speed gave no figures")),
            }
        }
        // Every contender is up for the whole round (an idle server costs no CPU), so that
        // each metric is measured for mtls, raw and nginx back to back: this machine's speed
        // drifts over tens of seconds, and neighbours in time see the same machine.
        let all: Vec<usize> = contenders
            .iter()
            .copied()
            .chain(o.per_connection.then_some(MTLS_CONN))
            .collect();
        let all_servers: Vec<Running> = all.iter().map(|&who| start(who)).collect();
        let server = |who: usize| &all_servers[all.iter().position(|&c| c == who).unwrap()];
        let addr = |who: usize| server(who).addr();
        for (metric, cpu_metric, share) in THROUGHPUT {
            let slices = slices_for(o.slices, share, all.len());
            let slice_seconds = seconds * share / slices as f64;
            let mut totals = [(); 4].map(|()| Total::default());
            for slice in 0..slices {
                // A B C, then B C A, then C A B: each contender takes each place in turn.
                // Our per-connection server takes every throughput measurement as the others
                // do (a server's state after thousands of handshakes is part of what it
                // serves requests with), though only the keep-alive ones are reported for it.
                let mut order = all.clone();
                order.rotate_left(slice % all.len());
                for &who in &order {
                    load::watch_server(server(who).pids());
                    let outcome = runtime
                        .block_on(server_load(metric, addr(who), &certs, slice_seconds))
                        .expect("a throughput metric");
                    problems.check(
                        format!("round {round} {} {metric}", NAMES[who]),
                        &outcome,
                        slice_seconds,
                    );
                    totals[who].add(&outcome);
                }
            }
            load::watch_server(Vec::new());
            let mut line = format!("round {round} {metric}:");
            for &who in &all {
                let total = &totals[who];
                samples.push(metric, who, total.per_s());
                samples.push(cpu_metric, who, total.server_cpu_us_per_op());
                line += &format!(
                    " {} {:.0}/s ({:.0} µs server CPU each)",
                    NAMES[who],
                    total.per_s(),
                    total.server_cpu_us_per_op()
                );
                if metric == "resumed" {
                    line += &format!(" ({:.1}% resumed)", total.resumed_share() * 100.0);
                }
                line += &errors_note(total.errors);
            }
            if contenders.len() > 1 {
                line += &format!(
                    "; mtls/raw {:.3}",
                    totals[MTLS].per_s() / totals[RAW].per_s()
                );
            }
            if o.per_connection {
                line += &format!(
                    ", mtls-conn/raw {:.3}",
                    totals[MTLS_CONN].per_s() / totals[RAW].per_s()
                );
            }
            eprintln!("{line}");
        }
        let mut line = format!("round {round} KiB per idle connection:");
        for &who in &contenders {
            let server = server(who);
            let memory = runtime
                .block_on(load::idle_memory(
                    server.addr(),
                    certs.generator(&[b"http/1.1"], false),
                    &server.pids(),
                    std::time::Duration::from_millis(500),
                ))
                .unwrap_or_else(|e| {
                    problems
                        .0
                        .push(format!("round {round} {} kib_per_conn: {e}", NAMES[who]));
                    f64::NAN
                });
            samples.push("kib_per_conn", who, memory);
            line += &format!(" {} {memory:.2}", NAMES[who]);
        }
        eprintln!("{line}");
        // Both clients call the same server, in slices like the servers' measurements; which
        // goes first alternates from slice to slice and round to round.
        let uri: http::Uri = format!("https://{}/", addr(client_server)).parse().unwrap();
        let slices = slices_for(o.slices, CLIENT_SHARE, 2);
        let slice_seconds = seconds * CLIENT_SHARE / slices as f64;
        let mut totals = [Total::default(), Total::default()];
        for slice in 0..slices {
            let order = if (round + slice) % 2 == 1 {
                [MTLS, RAW]
            } else {
                [RAW, MTLS]
            };
            for client in order {
                let outcome = if client == MTLS {
                    runtime.block_on(clients::ours(dir, uri.clone(), slice_seconds))
                } else {
                    runtime.block_on(clients::hand_written(&certs, uri.clone(), slice_seconds))
                };
                problems.check(
                    format!("round {round} {} client", CLIENT_NAMES[client]),
                    &outcome,
                    slice_seconds,
                );
                totals[client].add(&outcome);
            }
        }
        let mut line = format!("round {round} clients -> {}:", NAMES[client_server]);
        for client in [MTLS, RAW] {
            let total = &totals[client];
            samples.push("client_requests", client, total.per_s());
            line += &format!(" {} {:.0}/s", CLIENT_NAMES[client], total.per_s());
            line += &errors_note(total.errors);
        }
        line += &format!(
            "; ours/hand-written {:.3}",
            totals[MTLS].per_s() / totals[RAW].per_s()
        );
        eprintln!("{line}");
        for server in all_servers {
            server.stop();
        }
    }

    // Latency at a fixed offered load: half the slowest contender's keep-alive maximum, the
    // same for all, so that each runs at half its capacity or less.
    let slowest = contenders
        .iter()
        .map(|&c| samples.median("requests", c))
        .filter(|r| r.is_finite() && *r > 0.0)
        .fold(f64::INFINITY, f64::min);
    let offered = if slowest.is_finite() {
        slowest / 2.0
    } else {
        1000.0
    };
    eprintln!("latency at {offered:.0} requests/s offered");
    for round in 1..=o.rounds {
        for &who in &contenders {
            let server = start(who);
            let addr = server.addr();
            let l = runtime.block_on(load::latency(
                addr,
                certs.generator(&[b"http/1.1"], false),
                offered,
                seconds,
            ));
            server.stop();
            samples.push("p50_ms", who, l.p50_ms);
            samples.push("p99_ms", who, l.p99_ms);
            if l.errors > 0 {
                problems.0.push(format!(
                    "round {round} {} latency: {} failed requests",
                    NAMES[who], l.errors
                ));
            }
            let short = if l.achieved < offered * 0.95 {
                " (the offered load was not kept up: the machine slowed down, or the server \
                 saturated)"
            } else {
                ""
            };
            eprintln!(
                "round {round} latency {}: p50 {:.3} ms, p99 {:.3} ms at {:.0} requests/s{short}",
                NAMES[who], l.p50_ms, l.p99_ms, l.achieved
            );
        }
    }

    // The summary, then the bound, then one RESULT line per metric, last.
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>10} {:>11}",
        "metric", "mtls", "raw", "nginx", "ratio_raw", "ratio_nginx"
    );
    let table = RESULTS
        .iter()
        .take(4)
        .chain(&[("p50_ms", 3)])
        .chain(&RESULTS[4..]);
    for &(metric, decimals) in table {
        let [m, r, n] = [MTLS, RAW, NGINX].map(|w| samples.median(metric, w));
        println!(
            "{metric:<16} {:>12} {:>12} {:>12} {:>10} {:>11}",
            number(m, decimals),
            number(r, decimals),
            number(n, decimals),
            number(samples.ratio(metric, MTLS, RAW), 3),
            number(samples.ratio(metric, MTLS, NGINX), 3),
        );
    }
    println!(
        "(client_requests: mtls = our Client, raw = the hand-written hyper-util client, both \
         calling the {} server; nginx has no client)",
        NAMES[client_server]
    );
    println!(
        "(latency: {offered:.0} requests/s offered over {} connections)",
        load::CONCURRENCY
    );
    // The server's own CPU per operation: steadier than rates on a machine whose speed
    // drifts, and free of the load generator's share of the cores.
    println!();
    println!("server CPU per operation (µs; lower is better; ratios mtls/other):");
    for (metric, cpu_metric, _) in THROUGHPUT {
        let [m, r, n] = [MTLS, RAW, NGINX].map(|w| samples.median(cpu_metric, w));
        println!(
            "{metric:<16} {:>12} {:>12} {:>12} {:>10} {:>11}",
            number(m, 1),
            number(r, 1),
            number(n, 1),
            number(samples.ratio(cpu_metric, MTLS, RAW), 3),
            number(samples.ratio(cpu_metric, MTLS, NGINX), 3),
        );
    }
    // How far one round's ratio strays: the noise the medians above are read against.
    println!();
    println!("per-round ratio mtls/raw (lowest, median, highest over rounds):");
    for (metric, _, _) in THROUGHPUT {
        let v = samples.round_ratios(metric, MTLS, RAW);
        let at = |i: usize| v.get(i).map_or(f64::NAN, |r| *r);
        println!(
            "{metric:<16} {:>12} {:>12} {:>12}",
            number(at(0), 3),
            number(at(v.len() / 2), 3),
            number(at(v.len().wrapping_sub(1)), 3),
        );
    }
    // Full handshakes per second of the server's CPU: what one server core would do.
    let per_core = |who: usize| 1e6 / samples.median("cpu_handshakes", who);
    println!(
        "full handshakes per server core: mtls {} raw {} nginx {}",
        number(per_core(MTLS), 0),
        number(per_core(RAW), 0),
        number(per_core(NGINX), 0),
    );
    let handshakes = samples.median("handshakes", MTLS);
    println!(
        "CRYPTO provider={} cores={cores} sign_per_s={:.0} verify_per_s={:.0} \
         x25519_keygen_per_s={:.0} x25519_derive_per_s={:.0} server_side_per_core={:.1} \
         fraction={} machine_bound_per_s={:.1} machine_fraction={:.3}",
        mtls::CRYPTO_PROVIDER,
        provider.sign,
        provider.verify,
        provider.keygen,
        provider.derive,
        provider.bound(1, false),
        number(per_core(MTLS) / provider.bound(1, false), 3),
        provider.bound(cores, true),
        handshakes / provider.bound(cores, true),
    );
    // Our server with a service made per connection, against the same baseline: what the
    // identity in each request's extensions costs the RESULT lines' `mtls`.
    for metric in PER_CONNECTION.iter().filter(|_| o.per_connection) {
        let [c, m, r] = [MTLS_CONN, MTLS, RAW].map(|w| samples.median(metric, w));
        let cpu = format!("cpu_{metric}");
        println!(
            "PER_CONNECTION {metric} mtls_conn={} mtls={} raw={} ratio_raw={} \
             ratio_mtls={} cpu_ratio_raw={} cpu_ratio_mtls={}",
            number(c, 1),
            number(m, 1),
            number(r, 1),
            number(samples.ratio(metric, MTLS_CONN, RAW), 3),
            number(samples.ratio(metric, MTLS_CONN, MTLS), 3),
            number(samples.ratio(&cpu, MTLS_CONN, RAW), 3),
            number(samples.ratio(&cpu, MTLS_CONN, MTLS), 3),
        );
    }
    // Each round's `openssl speed` when it was timed per round (the median of the rounds'
    // rates and fractions), else the one given.
    let openssl = if speeds.len() == o.rounds {
        let med = |f: fn(&crypto::Speed) -> f64| median(speeds.iter().map(f).collect());
        Some(crypto::Speed {
            sign: med(|s| s.sign),
            verify: med(|s| s.verify),
            keygen: med(|s| s.keygen),
            derive: med(|s| s.derive),
        })
    } else {
        o.openssl.clone()
    };
    if let Some(openssl) = &openssl {
        println!(
            "CRYPTO provider=openssl cores={cores} sign_per_s={:.0} verify_per_s={:.0} \
             x25519_per_s={:.0} server_side_per_core={:.1} machine_bound_per_s={:.1} \
             machine_fraction={:.3}",
            openssl.sign,
            openssl.verify,
            openssl.derive,
            openssl.bound(1, false),
            openssl.bound(cores, true),
            handshakes / openssl.bound(cores, true),
        );
        // The bound: the server's side of the public-key work, on one core, at `openssl
        // speed`'s rates; our full handshakes per second of server CPU against it. Timed
        // per round, each round's server CPU per handshake is read against its own bound.
        let bound = openssl.bound(1, false);
        let fraction = |who: usize| {
            if speeds.len() != o.rounds {
                return per_core(who) / bound;
            }
            let cpu = samples.0.get("cpu_handshakes").map(|s| s[who].clone());
            let cpu = cpu.unwrap_or_default();
            median(
                cpu.iter()
                    .zip(&speeds)
                    .map(|(us, speed)| 1e6 / us / speed.bound(1, false))
                    .collect(),
            )
        };
        println!(
            "BOUND handshakes_per_s={} per_server_core={} fraction={} raw_fraction={}",
            number(bound, 1),
            number(per_core(MTLS), 1),
            number(fraction(MTLS), 3),
            number(fraction(RAW), 3),
        );
    }
    for (metric, decimals) in RESULTS {
        let [m, r, n] = [MTLS, RAW, NGINX].map(|w| samples.median(metric, w));
        println!(
            "RESULT {metric} mtls={} raw={} nginx={} ratio_raw={} ratio_nginx={}",
            number(m, decimals),
            number(r, decimals),
            number(n, decimals),
            number(samples.ratio(metric, MTLS, RAW), 3),
            number(samples.ratio(metric, MTLS, NGINX), 3),
        );
    }
    for p in &problems.0 {
        eprintln!("problem: {p}");
    }
    !problems.0.is_empty()
}

/// One throughput measurement of the server at `addr`: `handshakes`, `resumed`, `requests` or
/// `requests_h2` (`None` for another name).
async fn server_load(
    metric: &str,
    addr: SocketAddr,
    certs: &certs::Certs,
    seconds: f64,
) -> Option<load::Outcome> {
    let h1 = |resume| certs.generator(&[b"http/1.1"], resume);
    Some(match metric {
        "handshakes" => load::handshakes(addr, h1(false), seconds).await,
        // Each caller keeps its own tickets, as separate clients would.
        "resumed" => load::resumed(addr, || h1(true), seconds).await,
        "requests" => load::keep_alive(addr, h1(false), seconds).await,
        "requests_h2" => load::h2_streams(addr, certs.generator(&[b"h2"], false), seconds).await,
        _ => return None,
    })
}

/// `--drive DIR METRIC ADDR SECONDS`: one load against one running server, for profiling
/// it (`perf record -p PID` on the server meanwhile). METRIC is `handshakes`, `resumed`,
/// `requests`, `requests_h2`, `client_ours` or `client_hand`; or `idle`, which opens the
/// memory measurement's idle connections and holds them for SECONDS (for a heap profiler).
fn drive(args: &[String]) {
    let [dir, metric, addr, seconds] = args else {
        usage("--drive DIR METRIC ADDR SECONDS")
    };
    let dir = Path::new(dir);
    let certs = certs::Certs::load(dir);
    let addr: SocketAddr = addr.parse().unwrap_or_else(|_| usage("ADDR: an address"));
    let seconds: f64 = seconds
        .parse()
        .unwrap_or_else(|_| usage("SECONDS: a number"));
    let uri: http::Uri = format!("https://{addr}/").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        match metric.as_str() {
            "client_ours" => clients::ours(dir, uri, seconds).await,
            "client_hand" => clients::hand_written(&certs, uri, seconds).await,
            "idle" => {
                let hold = std::time::Duration::from_secs_f64(seconds);
                let config = certs.generator(&[b"http/1.1"], false);
                if let Err(e) = load::idle_memory(addr, config, &[], hold).await {
                    eprintln!("idle: {e}");
                    std::process::exit(1);
                }
                load::Outcome {
                    per_s: load::IDLE_CONNECTIONS as f64 / seconds,
                    errors: 0,
                    resumed_share: f64::NAN,
                    server_cpu_s: f64::NAN,
                    window_s: seconds,
                }
            }
            other => server_load(other, addr, &certs, seconds)
                .await
                .unwrap_or_else(|| usage(&format!("unknown metric {other}"))),
        }
    });
    println!(
        "{metric} {:.1}/s{}",
        outcome.per_s,
        errors_note(outcome.errors)
    );
}

fn errors_note(errors: u64) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(" ({errors} failed operations)")
    }
}
