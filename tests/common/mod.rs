//! Test fixtures: a throwaway CA that issues certificates in memory, a server that records the
//! identity it saw, raw TLS clients for the cases our own `Client` refuses to produce, log
//! capture, temporary directories and external tools.
#![allow(dead_code, unused_imports)]

pub mod ca;
pub mod capture;
pub mod fs;
pub mod raw;
pub mod refusal;
pub mod server;
pub mod tools;

pub use ca::*;
pub use capture::*;
pub use fs::*;
pub use raw::*;
pub use refusal::{alert_of, rejected_alert, rustls_error_in, server_refusal};
pub use server::*;
pub use tools::*;

use std::time::Duration;

/// Waits until `check` holds (server-side counters are updated by the connection task, a
/// moment after the client sees the result). Returns as soon as it holds; the 30 s budget is
/// for a busy machine, never a claim about its speed.
pub async fn eventually(check: impl Fn() -> bool) -> bool {
    eventually_for(Duration::from_secs(30), check).await
}

/// Waits until `check` holds, polling every 10 ms, for up to `budget` (a budget for a busy
/// machine: the check's state is what the test waits on, never the clock).
pub async fn eventually_for(budget: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// As [`eventually`], for a check that itself waits (a request, a handshake): polled every
/// 50 ms for up to 30 s, a budget for a busy machine.
pub async fn eventually_async<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
