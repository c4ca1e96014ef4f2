//! `tracing` events recorded for assertions on logs.

use std::sync::{Arc, Mutex};

/// Records every `tracing` event's fields as `name=value;` strings, for asserting on logs.
///
/// The recorder is installed once as the process-wide subscriber: a per-thread subscriber
/// races with tracing's callsite-interest cache when tests run in parallel. Events from every
/// test of the binary land in one list; [`Capture::scoped`] sees only the calling test's.
#[derive(Clone, Default)]
pub struct Capture {
    events: Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>,
    /// For a scoped view: the thread whose events it sees, and the first index it sees.
    scope: Option<(std::thread::ThreadId, usize)>,
}

static EVENTS: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();

impl Capture {
    /// The process-wide recorder, installed on first use: every test's events.
    pub fn global() -> Capture {
        EVENTS
            .get_or_init(|| {
                use tracing_subscriber::layer::SubscriberExt;
                let capture = Capture::default();
                let subscriber = tracing_subscriber::registry().with(capture.clone());
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber in tests");
                capture
            })
            .clone()
    }

    /// The events the calling test emits from now on: those on its own thread, which under
    /// `#[tokio::test]` (a current-thread runtime per test) runs every task the test spawns,
    /// servers' connection tasks included. Another test's events, even identical ones, never
    /// show. (Work moved to a blocking thread is not seen.)
    pub fn scoped() -> Capture {
        let global = Capture::global();
        let from = global.events.lock().unwrap().len();
        Capture {
            scope: Some((std::thread::current().id(), from)),
            ..global
        }
    }

    pub fn events(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        match self.scope {
            None => events.iter().map(|(_, e)| e.clone()).collect(),
            Some((thread, from)) => events[from..]
                .iter()
                .filter(|(t, _)| *t == thread)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?};", f.name(), v));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.push_str(&format!("{}={};", f.name(), v));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.events
            .lock()
            .unwrap()
            .push((std::thread::current().id(), fields.0));
    }
}
