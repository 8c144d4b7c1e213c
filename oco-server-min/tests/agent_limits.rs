//! What the agent endpoint decides from the headers, it decides before reading the body: a wrong
//! content type, a missing signature or a declared length over the limit are answered at once,
//! even to a client that never sends its body; a body that grows past the limit is a 413.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oco_core::store::{MemoryStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends only `head` (a request line and headers announcing a body) and reads the answer, which
/// must come within five seconds although the body never does.
async fn answer_without_body(target: &Target, head: &str) -> String {
    let Target::Socket(addr) = target else {
        panic!("a socket target");
    };
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn the_headers_are_checked_before_the_body_is_read() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    computer(store.as_ref(), "pc1");
    let server = Server::new(store);
    let target = server.serve().await;
    // 10 MiB announced, under the limit: only a server that waits for the body waits here.
    let request = |length: u64, headers: &str| {
        format!(
            "POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n{headers}\r\n"
        )
    };
    let under = 10 * 1024 * 1024;
    let answer =
        answer_without_body(&target, &request(under, "Content-Type: text/plain\r\n")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with("Content type mismatch"), "{answer}");
    let answer = answer_without_body(
        &target,
        &request(under, "Content-Type: application/json\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.ends_with("Missing signature"), "{answer}");
    let signed = request(
        100 * 1024 * 1024,
        "Content-Type: application/json\r\nX-Oco-Agent-Signature: 00\r\n",
    );
    let answer = answer_without_body(&target, &signed).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.ends_with("Request body too large: the limit is 67108864 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_refused() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    computer(store.as_ref(), "pc1");
    let server = Server::with_options(store, |options| options.agent_body_limit = 64 * 1024);
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    // The in-process router sees no Content-Length: the limit stops the read itself.
    let output = "x".repeat(70 * 1024);
    let body = agent.report_body(&serde_json::json!(1), 2, None, None, &output);
    let response = agent.target.send("POST", body, &agent.agent_key).await;
    assert_eq!(response.status, 413);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        "Request body too large: the limit is 65536 bytes"
    );
    // Under the limit is fine.
    let body = agent.report_body(&serde_json::json!(1), 2, None, None, "short");
    let response = agent.target.send("POST", body, &agent.agent_key).await;
    assert_ne!(response.status, 413);
}
