//! Store failures: every failing store call gives a 500 and writes nothing.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use oco_core::model::{JobId, PackageId, PostAction, SequenceMode};
use oco_core::store::{testkit, FailingStore, MemoryStore, Store};
use oco_server_min::agent_api::client;
use serde_json::json;

/// pc1 with two jobs in an abort-after-failed container (the second with a payload), and
/// confirmed keys (so no request writes credentials but the hello).
struct Seed {
    jobs: Vec<JobId>,
    package: PackageId,
    agent_key: String,
    server_key: String,
}

fn seed(store: &dyn Store) -> Seed {
    let pc = computer(store, "pc1");
    let first = package(store, "first", "exit 1", "0", false, PostAction::None);
    let second = package(store, "second", "x", "0", true, PostAction::None);
    let (_, jobs) = container(
        store,
        "c",
        policy(SequenceMode::AbortAfterFailed),
        &[(pc.id, &first), (pc.id, &second)],
    );
    let credentials = oco_core::store::AgentCredentials {
        agent_key: Some("own-key".into()),
        previous_agent_key: None,
        server_key: Some("server-key".into()),
        last_hello: Some(1.0),
        ..Default::default()
    };
    store.set_credentials(pc.id, &credentials).unwrap();
    Seed {
        jobs,
        package: second.id,
        agent_key: "own-key".into(),
        server_key: "server-key".into(),
    }
}

/// Runs `request` against a store failing its n-th call, for n = 1, 2, … until it succeeds;
/// each failure must be a 500 that leaves the store as it was.
async fn every_failure_is_a_clean_500(
    request: impl Fn(&Seed, &mut TestAgent) -> (&'static str, Vec<u8>),
) {
    for n in 1.. {
        let memory = MemoryStore::new();
        let seed = seed(&memory);
        let before = testkit::dump(&memory);
        let store = Arc::new(FailingStore::fail_nth(memory, 0));
        let server = Server::new(store.clone());
        store.restart(n);
        server.put_payload(seed.package, &zip("a.txt", b"a"));
        let mut agent = TestAgent::new(server.target(), "pc1");
        agent.agent_key = seed.agent_key.clone();
        agent.server_key = Some(seed.server_key.clone());
        let (verb, body) = request(&seed, &mut agent);
        let response = server.target().send(verb, body, &agent.agent_key).await;
        if store.calls() < n {
            assert_eq!(response.status, 200, "call {n} was never made");
            assert_ne!(
                testkit::dump(store.inner()),
                before,
                "the request wrote nothing"
            );
            return;
        }
        assert_eq!(response.status, 500, "failing call {n}");
        assert_eq!(response.body, b"Internal server error");
        assert_eq!(
            testkit::dump(store.inner()),
            before,
            "failing call {n} wrote something"
        );
    }
}

#[tokio::test]
async fn hello() {
    every_failure_is_a_clean_500(|_, agent| ("POST", agent.hello_body())).await;
}

#[tokio::test]
async fn first_contact_hello() {
    for n in 1.. {
        let memory = MemoryStore::new();
        computer(&memory, "pc1");
        let before = testkit::dump(&memory);
        let store = Arc::new(FailingStore::fail_nth(memory, 0));
        let server = Server::new(store.clone());
        store.restart(n);
        let mut agent = TestAgent::new(server.target(), "pc1");
        let result = agent.hello().await;
        if store.calls() < n {
            result.unwrap();
            return;
        }
        assert_eq!(
            result.unwrap_err(),
            AgentError::Status(500, "Internal server error".into())
        );
        assert_eq!(testkit::dump(store.inner()), before, "failing call {n}");
    }
}

#[tokio::test]
async fn final_report_with_sequence_abort() {
    every_failure_is_a_clean_500(|seed, agent| {
        let id = json!(seed.jobs[0].0);
        ("POST", agent.report_body(&id, 3, Some(1), None, "failed"))
    })
    .await;
}

#[tokio::test]
async fn download_and_minimal_methods_fail_cleanly_too() {
    for n in 1..8 {
        let memory = MemoryStore::new();
        let seed = seed(&memory);
        let before = testkit::dump(&memory);
        let store = Arc::new(FailingStore::fail_nth(memory, 0));
        let server = Server::new(store.clone());
        store.restart(n);
        server.put_payload(seed.package, &zip("a.txt", b"a"));
        for method in ["oco.agent.download", "oco.agent.events"] {
            let body = if method == "oco.agent.download" {
                client::download_body("u", "pc1", 5.0, seed.package.0)
            } else {
                client::plain_body(method, "u", "pc1", 5.0)
            };
            let response = server.target().send("GET", body, &seed.agent_key).await;
            assert!(
                response.status == 200 || response.status == 500,
                "{method}: {}",
                response.status
            );
        }
        // A JSON reply's timestamp, stored before it is sent, is the one write these make.
        let inner = store.inner();
        let pc = inner.computer_by_hostname("pc1").unwrap().unwrap().id;
        let mut credentials = inner.credentials(pc).unwrap();
        credentials.last_reply = None;
        inner.set_credentials(pc, &credentials).unwrap();
        assert_eq!(testkit::dump(inner), before);
    }
}
