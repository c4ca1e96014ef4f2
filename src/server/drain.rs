//! Shutdown and timeouts of the server's connections: draining (finish the request in
//! flight, then close), closing (at once), and closing connections that idle or take too long
//! over a request head, without a lock or a timer on any connection's hot path.
//!
//! Each connection task holds a [`Member`] and checks its state at every wake: one atomic
//! load and a lock-free waker registration. (A shared notifier, such as the
//! `tokio::sync::watch` behind hyper-util's graceful shutdown, takes a lock on every poll
//! while it waits.) The registry's lock is taken when a connection opens and when it ends,
//! by shutdown, and by the watch.
//!
//! The watch is one task per server that looks at every serving connection's [`Activity`]
//! a few times per timeout. A connection's I/O only bumps counters; it reads no clock and
//! polls no timer per request, and holds no timer of its own. A timeout is never cut short:
//! it ends at the first look at least the whole timeout after the last activity the watch saw,
//! so at most two looks (a quarter of the shortest timeout, and never more than a second)
//! late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::time::Instant;

/// What the server asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Serve as usual.
    Run,
    /// Finish the request in flight (HTTP/2: the streams already open), then close; a
    /// connection still in its handshake closes at once.
    Drain,
    /// Close now: the server is shutting down.
    Close,
    /// Close now: nothing moved and no request was in flight for the idle timeout.
    Idle,
    /// Close now: a request head stayed incomplete for the head timeout.
    HeadTimeout,
}

impl Order {
    fn from_u8(v: u8) -> Order {
        match v {
            0 => Order::Run,
            1 => Order::Drain,
            3 => Order::Idle,
            4 => Order::HeadTimeout,
            _ => Order::Close,
        }
    }

    /// Whether the connection is to close now (nothing changes an order after that).
    pub(crate) fn is_close(self) -> bool {
        matches!(self, Order::Close | Order::Idle | Order::HeadTimeout)
    }
}

/// What a connection and the server share: the server's order, and what the connection's
/// I/O and service record for the watch.
///
/// Aligned to 128 bytes (two cache lines, as adjacent-line prefetching pairs them): its
/// atomics are written on every request by the worker thread that runs the connection,
/// and a neighbour in the heap written by another thread would make every one of those
/// writes a cache miss.
#[repr(align(128))]
pub(crate) struct Signal {
    order: AtomicU8,
    waker: AtomicWaker,
    /// The connection's activity, read by the watch.
    pub(crate) activity: Activity,
}

impl Signal {
    /// Raises the order (never lowers it) and wakes the connection.
    fn raise(&self, order: Order) {
        if self.order.fetch_max(order as u8, Ordering::AcqRel) < order as u8 {
            self.waker.wake();
        }
    }
}

/// Whether a connection moved bytes, how many requests it has in flight, and whether a
/// request head is pending. Only the connection's own task writes it; the watch reads it.
pub(crate) struct Activity {
    /// What the watch looks at: nothing until the handshake is done (which has its own
    /// timeout), then the idle timeout, and request heads too where `WATCH_HEADS`.
    watching: AtomicU8,
    /// Bumped by every read and write that completed.
    events: AtomicU64,
    in_flight: AtomicUsize,
    /// Bytes arrived with no request in flight: a request head has begun.
    head_pending: AtomicBool,
    /// How many request heads have begun, so that the watch tells a new head from an old one.
    heads: AtomicU64,
}

const WATCH_NONE: u8 = 0;
const WATCH_IDLE: u8 = 1;
const WATCH_HEADS: u8 = 2;

impl Activity {
    fn new() -> Self {
        Activity {
            watching: AtomicU8::new(WATCH_NONE),
            events: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_pending: AtomicBool::new(false),
            heads: AtomicU64::new(0),
        }
    }

    /// The handshake is done: from now on the connection idles out, and with `time_heads`
    /// its request heads are timed, the first one from now: a peer that completes the
    /// handshake and then says nothing is cut after the head timeout, not the idle one.
    pub(crate) fn serving(&self, time_heads: bool) {
        if time_heads {
            self.head_pending.store(true, Ordering::Relaxed);
            self.heads.store(1, Ordering::Relaxed);
        }
        let watching = if time_heads { WATCH_HEADS } else { WATCH_IDLE };
        self.watching.store(watching, Ordering::Release);
    }

    /// Bytes were read. With no request in flight they begin a request head (or finish a body
    /// the handler left unread, which at worst closes that connection a little early).
    pub(crate) fn bytes_in(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.head_pending.load(Ordering::Relaxed)
        {
            // Only this connection's task writes these: no read-modify-write needed.
            let heads = self.heads.load(Ordering::Relaxed);
            self.heads.store(heads.wrapping_add(1), Ordering::Relaxed);
            self.head_pending.store(true, Ordering::Relaxed);
        }
    }

    /// A request head was complete and reached the service.
    pub(crate) fn request_started(&self) {
        self.head_pending.store(false, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response ended (or was dropped).
    pub(crate) fn request_ended(&self) {
        self.touch();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes moved.
    pub(crate) fn touch(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the watch last saw of one connection.
struct Seen {
    events: u64,
    /// When the watch last saw the connection active (new events, or a request in flight),
    /// or first saw it at all.
    quiet_since: Option<Instant>,
    heads: u64,
    /// When the watch first saw the pending head numbered `heads`.
    head_since: Option<Instant>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            events: 0,
            quiet_since: None,
            heads: 0,
            head_since: None,
        }
    }

    /// Looks at a connection at `now`; the order it has earned, if any.
    fn look(&mut self, activity: &Activity, now: Instant, timeouts: &Timeouts) -> Option<Order> {
        let watching = activity.watching.load(Ordering::Acquire);
        if watching == WATCH_NONE {
            return None;
        }
        let events = activity.events.load(Ordering::Relaxed);
        if events != self.events || activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.events = events;
            self.quiet_since = Some(now);
        } else if now.duration_since(*self.quiet_since.get_or_insert(now)) >= timeouts.idle {
            return Some(Order::Idle);
        }
        if watching == WATCH_HEADS && activity.head_pending.load(Ordering::Relaxed) {
            let heads = activity.heads.load(Ordering::Relaxed);
            if heads != self.heads || self.head_since.is_none() {
                self.heads = heads;
                self.head_since = Some(now);
            } else if self
                .head_since
                .is_some_and(|since| now.duration_since(since) >= timeouts.head)
            {
                return Some(Order::HeadTimeout);
            }
        } else {
            self.head_since = None;
        }
        None
    }
}

/// The timeouts the watch enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Nothing moved and no request in flight.
    pub(crate) idle: Duration,
    /// A request head pending (HTTP/1 by ALPN only).
    pub(crate) head: Duration,
}

impl Timeouts {
    /// How often the watch looks: a quarter of the shorter timeout, within 5 ms and 1 s.
    fn period(&self) -> Duration {
        (self.idle.min(self.head) / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

struct Entry {
    signal: Arc<Signal>,
    seen: Seen,
}

#[derive(Default)]
struct Members {
    next: u64,
    /// The order every connection has been given so far, for those that join later.
    order: u8,
    entries: HashMap<u64, Entry>,
}

struct Registry {
    members: Mutex<Members>,
    /// Notified when the last member leaves.
    emptied: tokio::sync::Notify,
    /// Notified when a member joins an empty registry (the watch sleeps while there is none).
    joined: tokio::sync::Notify,
    /// How many times the watch has looked at the members (a test reads it).
    looks: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Members> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server's connections, for shutdown and timeouts. Dropping it closes them all (the
/// serve future was dropped: no connection outlives it) and stops its watch.
pub(crate) struct Drain {
    registry: Arc<Registry>,
    watch: Option<tokio::task::JoinHandle<()>>,
}

impl Drain {
    /// A registry without a watch: its members never time out.
    pub(crate) fn new() -> Self {
        Drain {
            registry: Arc::new(Registry {
                members: Mutex::new(Members::default()),
                emptied: tokio::sync::Notify::new(),
                joined: tokio::sync::Notify::new(),
                looks: AtomicU64::new(0),
            }),
            watch: None,
        }
    }

    /// A registry whose watch (a task on the current runtime) closes members that pass
    /// `timeouts`.
    pub(crate) fn watched(timeouts: Timeouts) -> Self {
        let mut drain = Drain::new();
        drain.watch = Some(tokio::spawn(watch(Arc::clone(&drain.registry), timeouts)));
        drain
    }

    /// Registers a new connection.
    pub(crate) fn join(&self) -> Member {
        let mut members = self.registry.lock();
        let id = members.next;
        members.next += 1;
        let signal = Arc::new(Signal {
            order: AtomicU8::new(members.order),
            waker: AtomicWaker::new(),
            activity: Activity::new(),
        });
        let was_empty = members.entries.is_empty();
        members.entries.insert(
            id,
            Entry {
                signal: Arc::clone(&signal),
                seen: Seen::new(),
            },
        );
        drop(members);
        if was_empty {
            self.registry.joined.notify_one();
        }
        Member {
            id,
            signal,
            registry: Arc::clone(&self.registry),
        }
    }

    /// How many connections are open.
    pub(crate) fn count(&self) -> usize {
        self.registry.lock().entries.len()
    }

    /// Gives every connection, present and future, `order`.
    pub(crate) fn order(&self, order: Order) {
        let mut members = self.registry.lock();
        members.order = members.order.max(order as u8);
        for entry in members.entries.values() {
            entry.signal.raise(order);
        }
    }

    /// Completes once no connection is open.
    pub(crate) async fn closed(&self) {
        loop {
            let emptied = self.registry.emptied.notified();
            tokio::pin!(emptied);
            // Registered before the check, so a member leaving in between is not missed.
            emptied.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
        self.order(Order::Close);
    }
}

/// Looks at every member a few times per timeout and closes those that passed one. It runs
/// until its [`Drain`] aborts it.
async fn watch(registry: Arc<Registry>, timeouts: Timeouts) {
    let period = timeouts.period();
    loop {
        // Asleep while there is no member: an idle server does nothing.
        let joined = registry.joined.notified();
        tokio::pin!(joined);
        // Registered before the check, so a member joining in between is not missed.
        joined.as_mut().enable();
        if registry.lock().entries.is_empty() {
            joined.await;
        }
        tokio::time::sleep(period).await;
        registry.looks.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut members = registry.lock();
        for entry in members.entries.values_mut() {
            if let Some(order) = entry.seen.look(&entry.signal.activity, now, &timeouts) {
                entry.signal.raise(order);
            }
        }
    }
}

/// One connection's place in the [`Drain`]; it leaves when dropped.
pub(crate) struct Member {
    id: u64,
    signal: Arc<Signal>,
    registry: Arc<Registry>,
}

impl Member {
    /// What this connection shares with the server, for its I/O and service to record
    /// activity in.
    pub(crate) fn signal(&self) -> Arc<Signal> {
        Arc::clone(&self.signal)
    }

    /// The current order; until it is [`Order::Close`], the task is woken when it changes.
    ///
    /// `registered` belongs to the polling future: the waker is registered once per waker
    /// and order, not at every wake (a connection's task keeps one waker).
    pub(crate) fn poll_order(&self, cx: &mut Context<'_>, registered: &mut Registered) -> Order {
        let order = Order::from_u8(self.signal.order.load(Ordering::Acquire));
        if order.is_close() {
            return order;
        }
        if matches!(&registered.0, Some((waker, seen)) if *seen == order && waker.will_wake(cx.waker()))
        {
            return order;
        }
        self.signal.waker.register(cx.waker());
        registered.0 = Some((cx.waker().clone(), order));
        // An order given between the load and the registration woke the old waker.
        Order::from_u8(self.signal.order.load(Ordering::Acquire))
    }
}

/// The waker and order a future last registered with [`Member::poll_order`].
#[derive(Default)]
pub(crate) struct Registered(Option<(Waker, Order)>);

impl Drop for Member {
    fn drop(&mut self) {
        let mut members = self.registry.lock();
        members.entries.remove(&self.id);
        if members.entries.is_empty() {
            drop(members);
            self.registry.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests;
