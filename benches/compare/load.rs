//! The load generator: plain tokio-rustls clients (and hyper's HTTP/2 client framing), none
//! of our own client code, the same for every contender. It runs in the bench process, on
//! the same cores as the server under test.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Concurrent HTTP/1.1 callers (one connection each) for the throughput and latency runs.
pub const CONCURRENCY: usize = 32;
/// HTTP/2: this many connections, each carrying `H2_STREAMS` concurrent streams.
const H2_CONNECTIONS: usize = 4;
const H2_STREAMS: usize = 32;
/// Idle connections opened for the memory measurement.
pub const IDLE_CONNECTIONS: usize = 1_000;
/// Every network step gives up after this long, so that nothing can hang the run.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Load runs this long before counting starts.
const WARM_UP: Duration = Duration::from_millis(300);

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";
const REQUEST_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";

/// What one throughput run counted.
#[derive(Default)]
pub struct Counters {
    /// Operations completed (handshakes, requests).
    pub done: AtomicU64,
    /// Operations that failed (each is retried).
    pub errors: AtomicU64,
    /// Handshakes completed, resumed or not (the resumed run counts only resumed ones in
    /// `done`).
    pub connections: AtomicU64,
}

pub struct Outcome {
    /// Completed operations per second over the measured window.
    pub per_s: f64,
    pub errors: u64,
    /// For the resumed run: the share of handshakes that did resume.
    pub resumed_share: f64,
    /// CPU seconds the server under test (the processes given to [`watch_server`]) used
    /// over the measured window; NaN when none are watched.
    pub server_cpu_s: f64,
    /// The measured window, in seconds.
    pub window_s: f64,
}

/// The processes whose CPU time the next throughput runs count as the server's.
static SERVER: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Counts the CPU time of `pids` (the server under test) in the runs that follow.
pub fn watch_server(pids: Vec<u32>) {
    *SERVER.lock().unwrap() = pids;
}

/// CPU time the watched processes have used so far, in seconds: the sum over their threads
/// of the scheduler's nanoseconds on CPU (`/proc/PID/task/TID/schedstat`, Linux); NaN when
/// nothing is watched or it cannot be read.
fn server_cpu() -> f64 {
    let pids = SERVER.lock().unwrap().clone();
    if pids.is_empty() {
        return f64::NAN;
    }
    let mut ns = 0u64;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return f64::NAN;
        };
        for task in tasks.flatten() {
            let on_cpu = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            ns += on_cpu.unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn error(message: &str) -> BoxError {
    io::Error::other(message.to_owned()).into()
}

async fn step<T, E: Into<BoxError>>(f: impl Future<Output = Result<T, E>>) -> Result<T, BoxError> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(error("timed out")),
    }
}

/// Runs `workers` tasks until `seconds` have been measured after the warm-up.
pub async fn run<F, Fut>(workers: usize, seconds: f64, worker: F) -> Outcome
where
    F: Fn(usize, Arc<Counters>, Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..workers)
        .map(|i| tokio::spawn(worker(i, Arc::clone(&counters), Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(WARM_UP).await;
    let start = Instant::now();
    let cpu = server_cpu();
    let done = counters.done.load(Ordering::Relaxed);
    let connections = counters.connections.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let done = counters.done.load(Ordering::Relaxed) - done;
    let connections = counters.connections.load(Ordering::Relaxed) - connections;
    let server_cpu_s = server_cpu() - cpu;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Outcome {
        per_s: done as f64 / elapsed,
        errors: counters.errors.load(Ordering::Relaxed),
        resumed_share: if connections == 0 {
            f64::NAN
        } else {
            done as f64 / connections as f64
        },
        server_cpu_s,
        window_s: elapsed,
    }
}

pub async fn connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let tcp = step(TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").unwrap();
    step(tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, tcp)).await
}

/// New TCP connection, handshake, one request with `connection: close`, read to the end.
/// Returns whether the handshake resumed a session.
async fn one_shot(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Result<bool, BoxError> {
    let mut tls = connect(addr, config).await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    step(tls.write_all(REQUEST_CLOSE)).await?;
    let mut out = Vec::with_capacity(512);
    // Some servers close without close_notify after `connection: close`; the response is
    // what counts.
    let _ = step(tls.read_to_end(&mut out)).await;
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(error("no 200 response before the server closed"));
    }
    Ok(resumed)
}

/// Full handshakes per second: client resumption off, so every connection does a full mTLS
/// handshake; then one request, then close.
pub async fn handshakes(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    seconds: f64,
) -> Outcome {
    run(CONCURRENCY, seconds, move |_, c, stop| {
        let config = Arc::clone(&config);
        async move {
            while !stop.load(Ordering::Relaxed) {
                match one_shot(addr, &config).await {
                    Ok(_) => {
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        c.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => note_error(&c).await,
                }
            }
        }
    })
    .await
}

/// Resumed handshakes per second: as `handshakes`, with TLS 1.3 tickets; only handshakes
/// that did resume are counted (the share is reported beside). Each caller has its own
/// config from `config`, so its own ticket store, as separate clients would: rustls keeps
/// at most 8 tickets per server in a store, and 32 callers sharing one would often find it
/// empty and fall back to full handshakes.
pub async fn resumed(
    addr: SocketAddr,
    config: impl Fn() -> Arc<rustls::ClientConfig>,
    seconds: f64,
) -> Outcome {
    run(CONCURRENCY, seconds, move |_, c, stop| {
        let config = config();
        async move {
            while !stop.load(Ordering::Relaxed) {
                match one_shot(addr, &config).await {
                    Ok(resumed) => {
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        if resumed {
                            c.done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => note_error(&c).await,
                }
            }
        }
    })
    .await
}

async fn note_error(c: &Counters) {
    c.errors.fetch_add(1, Ordering::Relaxed);
    // Do not spin on a failing server.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// HTTP/1.1 keep-alive requests per second, one at a time on each of `CONCURRENCY`
/// connections.
pub async fn keep_alive(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    seconds: f64,
) -> Outcome {
    run(CONCURRENCY, seconds, move |_, c, stop| {
        let config = Arc::clone(&config);
        async move {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let mut tls = match connect(addr, &config).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        note_error(&c).await;
                        continue;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    if exchange(&mut tls, &mut buf).await.is_err() {
                        note_error(&c).await;
                        break;
                    }
                    c.done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
    .await
}

/// One keep-alive request and its response.
async fn exchange(tls: &mut TlsStream<TcpStream>, buf: &mut [u8]) -> Result<(), BoxError> {
    step(tls.write_all(REQUEST)).await?;
    step(read_response(tls, buf)).await
}

/// Reads one `200` response with a Content-Length body (every contender sends one).
async fn read_response<S: AsyncRead + Unpin>(io: &mut S, buf: &mut [u8]) -> Result<(), BoxError> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(error("response larger than the buffer"));
        }
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(error("server closed a keep-alive connection"));
        }
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        if !buf.starts_with(b"HTTP/1.1 200") {
            return Err(error("not a 200 response"));
        }
        let head = std::str::from_utf8(&buf[..end])?.to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse())
            .transpose()?
            .unwrap_or(0);
        if filled >= end + 4 + length {
            return Ok(());
        }
    }
}

/// HTTP/2 requests per second: `H2_CONNECTIONS` connections, `H2_STREAMS` concurrent streams
/// on each (hyper's HTTP/2 client over the same plain tokio-rustls streams).
pub async fn h2_streams(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    seconds: f64,
) -> Outcome {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let mut senders = Vec::with_capacity(H2_CONNECTIONS);
    for _ in 0..H2_CONNECTIONS {
        let opened = async {
            let tls = connect(addr, &config).await?;
            let (send, conn) = step(
                hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .handshake::<_, Empty<Bytes>>(TokioIo::new(tls)),
            )
            .await?;
            tokio::spawn(conn);
            Ok::<_, BoxError>(send)
        };
        match opened.await {
            Ok(send) => senders.push(send),
            Err(e) => {
                eprintln!("  HTTP/2 connection failed: {e}");
                return Outcome {
                    per_s: 0.0,
                    errors: 1,
                    resumed_share: f64::NAN,
                    server_cpu_s: f64::NAN,
                    window_s: 0.0,
                };
            }
        }
    }
    let outcome = run(H2_CONNECTIONS * H2_STREAMS, seconds, |i, c, stop| {
        let mut send = senders[i % H2_CONNECTIONS].clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get("https://localhost/")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let exchanged = step(async {
                    let resp = send.send_request(req).await?;
                    if resp.status() != http::StatusCode::OK {
                        return Err(error("not a 200 response"));
                    }
                    resp.into_body().collect().await?;
                    Ok::<_, BoxError>(())
                })
                .await;
                match exchanged {
                    Ok(()) => {
                        c.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => note_error(&c).await,
                }
            }
        }
    })
    .await;
    drop(senders);
    outcome
}

/// Latency at a fixed offered load, in milliseconds.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests per second actually completed in the measured window.
    pub achieved: f64,
    pub errors: u64,
}

/// p50/p99 latency of HTTP/1.1 keep-alive requests offered at `rate` per second in total,
/// spread over `CONCURRENCY` connections, each on a fixed schedule (open loop).
///
/// A request is timed from its scheduled start when the connection was still busy with the
/// previous response at that time (the server's delay is counted, not hidden), and from when
/// it was sent otherwise (the generator's own timer, which wakes on millisecond ticks, is
/// not charged to the server).
pub async fn latency(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    rate: f64,
    seconds: f64,
) -> Latency {
    let interval = Duration::from_secs_f64(CONCURRENCY as f64 / rate);
    let begin = tokio::time::Instant::now() + Duration::from_millis(200);
    let measure_from = begin + WARM_UP;
    let end = measure_from + Duration::from_secs_f64(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let config = Arc::clone(&config);
            let errors = Arc::clone(&errors);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut buf = vec![0u8; 4096];
                let Ok(mut tls) = connect(addr, &config).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return samples;
                };
                // Spread the connections' schedules evenly over one interval.
                let first = begin + interval.mul_f64(i as f64 / CONCURRENCY as f64);
                let mut last_done = tokio::time::Instant::now();
                for k in 0u32.. {
                    let due = first + interval * k;
                    if due >= end {
                        break;
                    }
                    if tokio::time::Instant::now() < due {
                        tokio::time::sleep_until(due).await;
                    }
                    let sent = tokio::time::Instant::now();
                    let origin = if last_done > due { due } else { sent };
                    if exchange(&mut tls, &mut buf).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        match connect(addr, &config).await {
                            Ok(new) => tls = new,
                            Err(_) => return samples,
                        }
                        continue;
                    }
                    last_done = tokio::time::Instant::now();
                    if due >= measure_from {
                        samples.push((last_done - origin).as_micros() as u32);
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(samples) = t.await {
            all.extend(samples);
        }
    }
    all.sort_unstable();
    let quantile = |q: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1000.0
        }
    };
    Latency {
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        achieved: all.len() as f64 / seconds,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Resident memory the server adds per idle connection: `IDLE_CONNECTIONS` connections, each
/// with a completed handshake and one request, then left open for `hold`. `pids` are the
/// server's processes, whose resident memory is summed (none: just hold them, for profiling).
pub async fn idle_memory(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    pids: &[u32],
    hold: Duration,
) -> Result<f64, BoxError> {
    // Settle after the load runs, so that their buffers are not counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = crate::servers::rss_kib(pids);
    let mut open = Vec::with_capacity(IDLE_CONNECTIONS);
    let mut buf = vec![0u8; 4096];
    for _ in 0..IDLE_CONNECTIONS {
        let mut tls = connect(addr, &config).await?;
        exchange(&mut tls, &mut buf).await?;
        open.push(tls);
    }
    tokio::time::sleep(hold).await;
    let after = crate::servers::rss_kib(pids);
    drop(open);
    Ok(after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64)
}
