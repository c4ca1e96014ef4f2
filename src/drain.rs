//! Shutdown of the server's connections: draining (finish the request in flight, then
//! close) and closing (at once), without a lock on any connection's hot path.
//!
//! Each connection task holds a [`Member`] and checks its state at every wake: one atomic
//! load and a lock-free waker registration. (A shared notifier, such as the
//! `tokio::sync::watch` behind hyper-util's graceful shutdown, takes a lock on every poll
//! while it waits.) The registry's lock is taken when a connection opens and when it ends,
//! and by shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use atomic_waker::AtomicWaker;

/// What the server asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Serve as usual.
    Run,
    /// Finish the request in flight (HTTP/2: the streams already open), then close; a
    /// connection still in its handshake closes at once.
    Drain,
    /// Close now.
    Close,
}

impl Order {
    fn from_u8(v: u8) -> Order {
        match v {
            0 => Order::Run,
            1 => Order::Drain,
            _ => Order::Close,
        }
    }
}

struct Signal {
    order: AtomicU8,
    waker: AtomicWaker,
}

impl Signal {
    /// Raises the order (never lowers it) and wakes the connection.
    fn raise(&self, order: Order) {
        if self.order.fetch_max(order as u8, Ordering::AcqRel) < order as u8 {
            self.waker.wake();
        }
    }
}

#[derive(Default)]
struct Members {
    next: u64,
    /// The order every connection has been given so far, for those that join later.
    order: u8,
    signals: HashMap<u64, Arc<Signal>>,
}

struct Registry {
    members: Mutex<Members>,
    /// Notified when the last member leaves.
    emptied: tokio::sync::Notify,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Members> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server's connections, for shutdown. Dropping it closes them all (the serve future
/// was dropped: no connection outlives it).
pub(crate) struct Drain(Arc<Registry>);

impl Drain {
    pub(crate) fn new() -> Self {
        Drain(Arc::new(Registry {
            members: Mutex::new(Members::default()),
            emptied: tokio::sync::Notify::new(),
        }))
    }

    /// Registers a new connection.
    pub(crate) fn join(&self) -> Member {
        let mut members = self.0.lock();
        let id = members.next;
        members.next += 1;
        let signal = Arc::new(Signal {
            order: AtomicU8::new(members.order),
            waker: AtomicWaker::new(),
        });
        members.signals.insert(id, Arc::clone(&signal));
        Member {
            id,
            signal,
            registry: Arc::clone(&self.0),
        }
    }

    /// How many connections are open.
    pub(crate) fn count(&self) -> usize {
        self.0.lock().signals.len()
    }

    /// Gives every connection, present and future, `order`.
    pub(crate) fn order(&self, order: Order) {
        let mut members = self.0.lock();
        members.order = members.order.max(order as u8);
        for signal in members.signals.values() {
            signal.raise(order);
        }
    }

    /// Completes once no connection is open.
    pub(crate) async fn closed(&self) {
        loop {
            let emptied = self.0.emptied.notified();
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
        self.order(Order::Close);
    }
}

/// One connection's place in the [`Drain`]; it leaves when dropped.
pub(crate) struct Member {
    id: u64,
    signal: Arc<Signal>,
    registry: Arc<Registry>,
}

impl Member {
    /// The current order; until it is [`Order::Close`], the task is woken when it changes.
    ///
    /// `registered` belongs to the polling future: the waker is registered once per waker
    /// and order, not at every wake (a connection's task keeps one waker).
    pub(crate) fn poll_order(&self, cx: &mut Context<'_>, registered: &mut Registered) -> Order {
        let order = Order::from_u8(self.signal.order.load(Ordering::Acquire));
        if order == Order::Close {
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
        members.signals.remove(&self.id);
        if members.signals.is_empty() {
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

    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Poll<F::Output> {
        poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await
    }
}
