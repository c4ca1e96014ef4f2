//! rust-lang/rust#155241 in a dozen lines of safe Rust, with nothing but `std`.
//!
//! rustc's MIR GVN pass (rustc 1.77 to 1.96; fixed in 1.97.0) sees that two calls of a closure
//! get equal by-value arguments and passes the first call's argument storage to the second.
//! The closure owns that storage and writes to it, so the second call starts from the first
//! call's result: assigning `b.timer` there drops the first builder's timer while the first
//! builder still holds it. With an `Arc` in that field (hyper's timer) that is a use after free
//! on every connection; here a drop counter shows it without touching freed memory.
//!
//! `mtls`'s HTTP builders are configured through `&mut` (the second form below) for this
//! reason. Run it on a new toolchain with `cargo run --release -p miscompile`:
//! it exits 1 if the `&mut` form is wrong, and with `--strict` also if the by-value form is
//! (an affected compiler). `src/bin/hyper_builders.rs` is the same shape with hyper-util's
//! builders, as `mtls` had it: `valgrind target/release/hyper_builders` shows the invalid reads
//! (`cargo build --release -p miscompile` first).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Timer;

impl Drop for Timer {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

struct Builder {
    timer: Option<Timer>,
    limit: u64,
    version: Option<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            timer: None,
            limit: 0,
            version: None,
        }
    }

    fn only(mut self) -> Self {
        self.version = Some(1);
        self
    }
}

/// The shape the compiler gets wrong: a configuring closure that takes the builder by value.
#[inline(never)]
fn by_value(limit: u64) -> (Builder, Builder) {
    let configure = |mut b: Builder| {
        b.timer = Some(Timer);
        b.limit = limit;
        b
    };
    let mut first = configure(Builder::new());
    first.limit = 0;
    (first.only(), configure(Builder::new()))
}

/// The shape `mtls` uses: the closure configures a builder in place.
#[inline(never)]
fn by_mut(limit: u64) -> (Builder, Builder) {
    let configure = |b: &mut Builder| {
        b.timer = Some(Timer);
        b.limit = limit;
    };
    let mut first = Builder::new();
    let mut second = Builder::new();
    configure(&mut first);
    configure(&mut second);
    first.limit = 0;
    (first.only(), second)
}

/// Builds both builders and counts the timers dropped meanwhile (none may be).
fn sound(name: &str, make: fn(u64) -> (Builder, Builder)) -> bool {
    DROPS.store(0, Ordering::SeqCst);
    let built = make(std::hint::black_box(7));
    let dropped = DROPS.load(Ordering::SeqCst);
    let held = [&built.0, &built.1]
        .iter()
        .filter(|b| b.timer.is_some())
        .count();
    // A miscompiled build holds a timer that was already dropped: never drop it again.
    std::mem::forget(built);
    let ok = dropped == 0 && held == 2;
    println!(
        "{name}: {dropped} timer(s) dropped while building, {held} held: {}",
        if ok {
            "correct"
        } else {
            "MISCOMPILED (rust-lang/rust#155241)"
        }
    );
    ok
}

fn main() -> ExitCode {
    let strict = std::env::args().any(|a| a == "--strict");
    let value = sound("closure taking the builder by value", by_value);
    let in_place = sound("closure taking the builder by &mut", by_mut);
    if !in_place || (strict && !value) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
