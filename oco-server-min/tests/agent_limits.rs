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

#[tokio::test]
async fn a_payload_larger_than_a_chunk_arrives_whole() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pc = computer(store.as_ref(), "pc1");
    let app = package(
        store.as_ref(),
        "app",
        "sh ./install.sh",
        "0",
        true,
        oco_core::model::PostAction::None,
    );
    container(
        store.as_ref(),
        "c1",
        policy(oco_core::model::SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::new(store);
    // Sixteen chunks and a bit, every byte different from its neighbours.
    let payload: Vec<u8> = (0..(1024 * 1024 + 7))
        .map(|i: u32| (i % 251) as u8)
        .collect();
    server.put_payload(app.id, &payload);
    let mut agent = TestAgent::new(server.serve().await, "pc1");
    assert_eq!(agent.hello().await.unwrap().len(), 1);
    let downloaded = agent.download(app.id.0).await.unwrap();
    assert_eq!(downloaded.len(), payload.len());
    assert!(downloaded == payload, "the bytes differ");
}

#[tokio::test]
async fn a_long_job_output_is_stored_capped() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c1",
        policy(oco_core::model::SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::with_options(store.clone(), |options| options.max_job_output = 4096);
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let output = format!("{}{}", "a".repeat(10_000), "the end");
    let id = serde_json::json!(jobs[0].0);
    assert!(agent.report(&id, 3, Some(0), None, &output).await.unwrap());
    let stored = store.job(jobs[0]).unwrap().output;
    assert!(stored.len() < 4096 + 100, "{} bytes", stored.len());
    assert!(stored.starts_with(&"a".repeat(2048)), "the head is kept");
    assert!(stored.ends_with("the end"), "the tail is kept");
    // 10,007 bytes, 2,048 kept at each end.
    assert!(
        stored.contains("\n[… 5911 bytes of output left out by the server …]\n"),
        "the marker is missing"
    );
}
