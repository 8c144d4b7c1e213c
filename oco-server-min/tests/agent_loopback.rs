//! The agent API over a real socket, with a Rust agent that behaves like the OCO agent 1.2.0:
//! Python `json.dumps` bodies, a new connection per request, signatures both ways.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use oco_core::model::{JobState, PostAction, SequenceMode};
use oco_core::store::{MemoryStore, Store};
use serde_json::json;

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cycle_with_downloads_reports_and_a_sequence_abort() {
    let store = memory();
    let pc = computer(store.as_ref(), "build-vm");
    let zipped = package(
        store.as_ref(),
        "zipped",
        "sh ./install.sh",
        "0",
        true,
        PostAction::None,
    );
    let rejected = plain_package(store.as_ref(), "rejected", "exit 3");
    let no_payload = package(
        store.as_ref(),
        "no-payload",
        "sh ./x.sh",
        "0",
        true,
        PostAction::None,
    );
    let chained = plain_package(store.as_ref(), "chained", "exit 0");
    let (_, plain) = container(
        store.as_ref(),
        "plain",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &zipped), (pc.id, &rejected), (pc.id, &no_payload)],
    );
    let (_, sequence) = container(
        store.as_ref(),
        "sequence",
        policy(SequenceMode::AbortAfterFailed),
        &[(pc.id, &rejected), (pc.id, &chained)],
    );
    let server = Server::new(store.clone());
    server.put_payload(zipped.id, &zip("install.sh", b"echo installed\n"));
    let target = server.serve().await;
    let mut agent = TestAgent::new(target, "build-vm");

    let events = agent.cycle().await.unwrap();
    // The key exchange happened, and every later reply was checked with the server key.
    assert_ne!(agent.agent_key, GLOBAL_KEY);
    assert!(agent.server_key.is_some());
    let id = |job: oco_core::model::JobId| json!(job.0);
    assert_eq!(
        events,
        vec![
            Event::Reported(id(plain[0]), 3, Some(0), true),
            Event::Reported(id(plain[1]), 3, Some(3), false),
            Event::Reported(id(plain[2]), -1, Some(-9999), false),
            Event::Reported(id(sequence[0]), 3, Some(3), false),
            Event::Skipped(id(sequence[1])),
        ]
    );
    let state = |job| store.job(job).unwrap();
    assert_eq!(state(plain[0]).state, JobState::Succeeded);
    assert_eq!(state(plain[0]).download_progress, Some(100));
    assert_eq!(state(plain[1]).state, JobState::Failed);
    assert_eq!(state(plain[2]).return_code, Some(-9999));
    assert_eq!(
        (state(sequence[1]).state, state(sequence[1]).return_code),
        (JobState::Failed, Some(-8888))
    );
    // The -8888 cascade is visible in the next hello: nothing is left to do.
    assert!(agent.cycle().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_state_2_after_the_final_state_changes_nothing() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.serve().await, "pc1");
    agent.hello().await.unwrap();
    let id = json!(jobs[0].0);
    // The reporter thread's output report and the final report in flight together; the
    // output report's body was made first (earlier timestamp) but arrives last.
    let stale = agent.report_body(&id, 2, None, None, "partial\n");
    assert!(agent.report(&id, 3, Some(0), None, "done\n").await.unwrap());
    let response = agent.target.send("POST", stale, &agent.agent_key).await;
    assert_eq!(response.status, 200);
    assert!(response.signed_with(agent.server_key.as_deref().unwrap()));
    let job = store.job(jobs[0]).unwrap();
    assert_eq!(
        (job.state, job.output.as_str()),
        (JobState::Succeeded, "done\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_at_once() {
    let store = memory();
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let mut all = Vec::new();
    for host in ["pc1", "pc2"] {
        let pc = computer(store.as_ref(), host);
        let (_, jobs) = container(
            store.as_ref(),
            &format!("c-{host}"),
            policy(SequenceMode::IgnoreFailed),
            &[(pc.id, &app), (pc.id, &app)],
        );
        all.extend(jobs);
    }
    let server = Server::new(store.clone());
    let target = server.serve().await;
    let mut one = TestAgent::new(target.clone(), "pc1");
    let mut two = TestAgent::new(target, "pc2");
    let (a, b) = tokio::join!(one.cycle(), two.cycle());
    assert_eq!(a.unwrap().len(), 2);
    assert_eq!(b.unwrap().len(), 2);
    assert_ne!(one.agent_key, two.agent_key);
    for job in all {
        assert_eq!(store.job(job).unwrap().state, JobState::Succeeded);
    }
    let (a, b) = tokio::join!(one.cycle(), two.cycle());
    assert!(a.unwrap().is_empty() && b.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_out_of_order_reports() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.serve().await, "pc1");
    agent.hello().await.unwrap();

    let hello = agent.hello_body();
    let first = agent
        .target
        .send("POST", hello.clone(), &agent.agent_key)
        .await;
    agent.accept(&first).unwrap();
    let replay = agent.target.send("POST", hello, &agent.agent_key).await;
    assert_eq!(
        (replay.status, replay.body),
        (401, b"Agent timestamp too old".to_vec())
    );

    // Reports need not increase among themselves.
    let id = json!(jobs[0].0);
    let older = agent.report_body(&id, 1, None, Some(0), "");
    let newer = agent.report_body(&id, 2, None, Some(100), "");
    for body in [newer, older] {
        let response = agent.target.send("POST", body, &agent.agent_key).await;
        agent.accept(&response).unwrap();
    }
    assert_eq!(store.job(jobs[0]).unwrap().state, JobState::Executing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_exchange_reply_does_not_lock_the_agent_out() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.serve().await, "pc1");
    // The reply never reaches the agent.
    let body = agent.hello_body();
    let lost = agent.target.send("POST", body, GLOBAL_KEY).await;
    assert_eq!(lost.status, 200);
    let events = agent.cycle().await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], Event::Reported(_, 3, Some(0), true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let store = memory();
    let pc1 = computer(store.as_ref(), "pc1");
    let pc2 = computer(store.as_ref(), "pc2");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc1.id, &app), (pc2.id, &app)],
    );
    let server = Server::new(store.clone());
    let target = server.serve().await;
    let mut agent = TestAgent::new(target.clone(), "pc1");
    agent.hello().await.unwrap();

    // A wrong signature.
    let body = agent.hello_body();
    let response = target.send("POST", body, "not-the-key").await;
    assert_eq!(
        (response.status, response.body),
        (401, b"Invalid signature".to_vec())
    );
    // An unknown computer.
    let mut stranger = TestAgent::new(target.clone(), "stranger");
    assert!(matches!(
        stranger.hello().await,
        Err(AgentError::Status(401, _))
    ));
    // Another computer's job.
    assert_eq!(
        agent.report(&json!(jobs[1].0), 3, Some(0), None, "").await,
        Err(AgentError::Status(401, "Job of another computer".into()))
    );
    // Malformed JSON, a missing field.
    let response = target
        .send("POST", b"{not json".to_vec(), &agent.agent_key)
        .await;
    assert_eq!(response.status, 400);
    let body = br#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"hostname": "pc1"}}"#;
    let response = target.send("POST", body.to_vec(), &agent.agent_key).await;
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("missing field `timestamp`"));
    // An oversized body gets an answer the agent can see.
    let mut huge = agent.report_body(&json!(jobs[0].0), 2, None, None, "");
    huge.resize(oco_server_min::BODY_LIMIT + 1024, b' ');
    let response = target.send("POST", huge, &agent.agent_key).await;
    assert_eq!(response.status, 413);
    // The agent still works.
    assert!(agent
        .report(&json!(jobs[0].0), 3, Some(0), None, "ok")
        .await
        .unwrap());
}
