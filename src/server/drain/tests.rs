//! The drain's promises: an order reaches every member, present and future, and is never
//! lowered; the watch cuts idle connections and stale request heads on time, never early, and
//! sleeps while the server has no connection.

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
