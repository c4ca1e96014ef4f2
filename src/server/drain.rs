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
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    #[tokio::test]
    async fn an_order_wakes_a_waiting_member_and_reaches_late_joiners() {
        let drain = Drain::new();
        let member = drain.join();
        let waiting = tokio::spawn(async move {
            let mut registered = Registered::default();
            poll_fn(|cx| match member.poll_order(cx, &mut registered) {
                Order::Run => Poll::Pending,
                order => Poll::Ready(order),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(drain.count(), 1);
        drain.order(Order::Drain);
        let order = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the order woke the member")
            .unwrap();
        assert_eq!(order, Order::Drain);
        assert_eq!(drain.count(), 0, "a finished member left");

        let late = drain.join();
        assert_eq!(
            poll_fn(|cx| Poll::Ready(late.poll_order(cx, &mut Registered::default()))).await,
            Order::Drain,
            "a connection that joins after the order gets it"
        );
        // A draining member is woken again when the order becomes Close.
        let draining = drain.join();
        let waiting = tokio::spawn(async move {
            // Registered once while running, then again once draining: Close still wakes it.
            let mut registered = Registered::default();
            poll_fn(|cx| match draining.poll_order(cx, &mut registered) {
                Order::Close => Poll::Ready(()),
                _ => Poll::Pending,
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drain.order(Order::Close);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("close woke the draining member")
            .unwrap();

        assert_eq!(
            poll_fn(|cx| Poll::Ready(late.poll_order(cx, &mut Registered::default()))).await,
            Order::Close
        );
        // An order is never lowered.
        drain.order(Order::Drain);
        assert_eq!(
            poll_fn(|cx| Poll::Ready(late.poll_order(cx, &mut Registered::default()))).await,
            Order::Close
        );
    }

    #[tokio::test]
    async fn closed_waits_for_the_last_member() {
        let drain = Drain::new();
        tokio::time::timeout(Duration::from_secs(1), drain.closed())
            .await
            .expect("no members: closed at once");
        let a = drain.join();
        let b = drain.join();
        let closed = drain.closed();
        tokio::pin!(closed);
        assert!(futures_poll_once(closed.as_mut()).await.is_pending());
        drop(a);
        assert!(futures_poll_once(closed.as_mut()).await.is_pending());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), closed)
            .await
            .expect("closed once the last member left");
    }

    #[test]
    fn dropping_the_drain_closes_its_members() {
        let drain = Drain::new();
        let member = drain.join();
        drop(drain);
        let waker = std::task::Waker::noop();
        assert_eq!(
            member.poll_order(&mut Context::from_waker(waker), &mut Registered::default()),
            Order::Close
        );
    }

    const TIMEOUTS: Timeouts = Timeouts {
        idle: Duration::from_secs(10),
        head: Duration::from_secs(3),
    };

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_watch_ignores_a_connection_still_in_its_handshake() {
        let activity = Activity::new();
        let mut seen = Seen::new();
        let start = Instant::now();
        for ms in [0, 60_000, 600_000] {
            assert_eq!(seen.look(&activity, at(start, ms), &TIMEOUTS), None);
        }
    }

    #[test]
    fn a_quiet_connection_idles_out_after_the_whole_timeout_and_not_before() {
        let activity = Activity::new();
        activity.serving(false);
        let mut seen = Seen::new();
        let start = Instant::now();
        assert_eq!(seen.look(&activity, start, &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 9_999), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 10_000), &TIMEOUTS),
            Some(Order::Idle)
        );

        // Bytes moving start the count again, from the look that saw them.
        let mut seen = Seen::new();
        assert_eq!(seen.look(&activity, start, &TIMEOUTS), None);
        activity.touch();
        assert_eq!(seen.look(&activity, at(start, 9_000), &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 18_999), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 19_000), &TIMEOUTS),
            Some(Order::Idle)
        );
    }

    #[test]
    fn a_request_in_flight_is_never_idle() {
        let activity = Activity::new();
        activity.serving(false);
        activity.request_started();
        let mut seen = Seen::new();
        let start = Instant::now();
        for ms in [0, 10_000, 60_000, 600_000] {
            assert_eq!(seen.look(&activity, at(start, ms), &TIMEOUTS), None);
        }
        // Its end is activity: the idle count starts at the next look.
        activity.request_ended();
        assert_eq!(seen.look(&activity, at(start, 600_001), &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 610_000), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 610_001), &TIMEOUTS),
            Some(Order::Idle)
        );
    }

    #[test]
    fn a_pending_head_is_cut_after_the_head_timeout_counted_per_head() {
        let activity = Activity::new();
        // HTTP/1: the first head is pending from the end of the handshake.
        activity.serving(true);
        let mut seen = Seen::new();
        let start = Instant::now();
        assert_eq!(seen.look(&activity, start, &TIMEOUTS), None);
        // Bytes trickling in do not restart a head's clock.
        activity.touch();
        activity.bytes_in();
        assert_eq!(seen.look(&activity, at(start, 2_999), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 3_000), &TIMEOUTS),
            Some(Order::HeadTimeout)
        );

        // A head that completes in time, then a wait for the next request (idle time), then a
        // next head that is timed from the look that first saw it.
        let mut seen = Seen::new();
        assert_eq!(seen.look(&activity, start, &TIMEOUTS), None);
        activity.request_started();
        activity.request_ended();
        assert_eq!(seen.look(&activity, at(start, 2_000), &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 9_000), &TIMEOUTS), None);
        activity.touch();
        activity.bytes_in();
        assert_eq!(seen.look(&activity, at(start, 9_500), &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 12_499), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 12_500), &TIMEOUTS),
            Some(Order::HeadTimeout)
        );

        // A new head begun between two looks is a new head, even if one was pending at both.
        let mut seen = Seen::new();
        assert_eq!(seen.look(&activity, start, &TIMEOUTS), None);
        activity.request_started();
        activity.request_ended();
        activity.bytes_in();
        assert_eq!(seen.look(&activity, at(start, 2_500), &TIMEOUTS), None);
        assert_eq!(seen.look(&activity, at(start, 5_000), &TIMEOUTS), None);
        assert_eq!(
            seen.look(&activity, at(start, 5_500), &TIMEOUTS),
            Some(Order::HeadTimeout)
        );
    }

    #[test]
    fn bytes_during_a_request_do_not_begin_a_head_and_http2_heads_are_not_timed() {
        let activity = Activity::new();
        activity.serving(true);
        activity.request_started();
        activity.bytes_in();
        let mut seen = Seen::new();
        let start = Instant::now();
        for ms in [0, 3_000, 9_000] {
            activity.touch();
            assert_eq!(seen.look(&activity, at(start, ms), &TIMEOUTS), None);
        }

        let h2 = Activity::new();
        h2.serving(false);
        h2.bytes_in();
        let mut seen = Seen::new();
        for ms in [0, 3_000, 9_000] {
            h2.touch();
            assert_eq!(seen.look(&h2, at(start, ms), &TIMEOUTS), None);
        }
    }

    #[tokio::test]
    async fn the_watch_closes_an_idle_member_and_sleeps_while_there_is_none() {
        let drain = Drain::watched(Timeouts {
            idle: Duration::from_millis(100),
            head: Duration::from_secs(30),
        });
        // The watch has been asleep with no member; a member joining wakes it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let member = drain.join();
        member.signal().activity.serving(false);
        let started = std::time::Instant::now();
        let order = tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(
                |cx| match member.poll_order(cx, &mut Registered::default()) {
                    Order::Run => Poll::Pending,
                    order => Poll::Ready(order),
                },
            ),
        )
        .await
        .expect("the watch closed the idle member");
        assert_eq!(order, Order::Idle);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
            "closed after {waited:?}"
        );
        // A member still in its handshake is left alone.
        let handshaking = drain.join();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waker = std::task::Waker::noop();
        assert_eq!(
            handshaking.poll_order(&mut Context::from_waker(waker), &mut Registered::default()),
            Order::Run
        );
    }

    #[tokio::test]
    async fn the_watch_does_not_look_while_the_server_has_no_connection() {
        // Looks every 5 ms while there is a member.
        let drain = Drain::watched(Timeouts {
            idle: Duration::from_millis(20),
            head: Duration::from_secs(30),
        });
        let looks = || drain.registry.looks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(looks(), 0, "the watch looked at an empty registry");
        let member = drain.join();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let while_joined = looks();
        assert!(
            while_joined >= 5,
            "{while_joined} looks in 200 ms with a member"
        );
        drop(member);
        // The look under way when the member left may still finish; then nothing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_leaving = looks();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            looks(),
            after_leaving,
            "the watch kept looking after the last member left"
        );
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Poll<F::Output> {
        poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await
    }
}
