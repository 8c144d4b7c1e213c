//! Refused agent requests are logged at a bounded rate. In a test binary of its own: the test
//! captures the log with a subscriber for its thread, and `tracing` decides whether a call site
//! is enabled once for all threads, so another test of the same binary hitting the same call
//! site at the same moment, with no subscriber, could make this one miss lines.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use oco_core::store::{MemoryStore, Store};

/// A log sink for the test's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn refused_requests_are_logged_at_a_bounded_rate() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    computer(store.as_ref(), "pc1");
    let server = Server::new(store);
    let mut agent = TestAgent::new(server.target(), "pc1");
    for _ in 0..100 {
        let body = agent.hello_body();
        let response = agent.target.send("POST", body, "not-the-key").await;
        assert_eq!(response.status, 401);
    }
    let refused = |text: &str| text.matches("agent request refused").count();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(refused(&log), 10, "{log}");
    // The next window's first line says how many were left out.
    server
        .clock
        .advance(oco_core::chrono::Duration::seconds(10));
    let body = agent.hello_body();
    agent.target.send("POST", body, "not-the-key").await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(refused(&log), 11, "{log}");
    assert!(
        log.lines().last().unwrap().contains("suppressed=90"),
        "{log}"
    );
}
