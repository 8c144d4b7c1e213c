//! The agent API in-process: the router driven with `oneshot`, a memory store and a fixed clock.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gated;

use std::sync::Arc;

use common::*;
use oco_core::model::{Job, JobKind, JobState, MessageCode, Origin, PostAction, SequenceMode};
use oco_core::store::{AgentCredentials, Change, ChangeSet, MemoryStore, Store};
use oco_server_min::agent_api::{self, client};
use serde_json::{json, Value};

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A server with pc1 having one waiting job (exit 0, payload), returns (server, job id).
fn one_job(server_store: Arc<dyn Store>) -> (Server, oco_core::model::JobId) {
    let store = server_store.as_ref();
    let pc = computer(store, "pc1");
    let app = package(store, "app", "sh ./install.sh", "0", true, PostAction::None);
    let (_, jobs) = container(
        store,
        "c1",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    (Server::new(server_store), jobs[0])
}

/// A computer deleted between a hello's credentials read and its planner snapshot: the hello
/// starts over and finds no computer (401, as for any unknown computer), rather than failing
/// (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computer_deleted_while_its_hello_plans_is_unknown_not_a_failure() {
    let gated = Arc::new(gated::Gated::new(gated::Held::PlannerSnapshot));
    let (server, _) = one_job(gated.clone());
    let pc1 = gated.computer_by_hostname("pc1").unwrap().unwrap().id;
    let mut agent = TestAgent::new(server.target(), "pc1");
    let (reached, release) = gated.hold_next();
    let hello = tokio::spawn(async move { agent.hello().await });
    tokio::task::spawn_blocking(move || reached.recv().unwrap())
        .await
        .unwrap();
    gated.delete_computer(pc1, now()).unwrap();
    release.send(()).unwrap();
    match hello.await.unwrap() {
        Err(AgentError::Status(401, body)) => {
            assert_eq!(body, "Client self-registration is disabled")
        }
        other => panic!("a 401 expected: {other:?}"),
    }
}

#[tokio::test]
async fn content_type_must_be_exactly_application_json() {
    let server = Server::new(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    for content_type in [
        "application/json; charset=utf-8",
        "text/plain",
        "Application/JSON",
    ] {
        let body = agent.hello_body();
        let signature = client::sign(GLOBAL_KEY, &body);
        let response = server
            .target()
            .send_raw("POST", content_type, &signature, body)
            .await;
        assert_eq!(response.status, 400, "{content_type}");
        assert_eq!(response.body, b"Content type mismatch");
    }
}

#[tokio::test]
async fn first_hello_exchanges_keys_and_stores_them_before_replying() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let body = agent.hello_body();
    let response = server.target().send("POST", body, GLOBAL_KEY).await;
    assert_eq!(response.status, 200);
    let reply: Value = serde_json::from_slice(&response.body).unwrap();
    let params = &reply["result"]["params"];
    let server_key = params["server-key"].as_str().unwrap();
    let agent_key = params["agent-key"].as_str().unwrap();
    for key in [server_key, agent_key] {
        assert_eq!(key.len(), 30);
        assert!(key
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }
    assert_ne!(server_key, agent_key);
    // Signed with the new server key, over the exact bytes.
    assert!(response.signed_with(server_key));
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["error"], Value::Null);
    assert_eq!(reply["result"]["success"], true);

    let pc = server.store.computer_by_hostname("pc1").unwrap().unwrap();
    let stored = server.store.credentials(pc.id).unwrap();
    assert_eq!(stored.agent_key.as_deref(), Some(agent_key));
    assert_eq!(stored.server_key.as_deref(), Some(server_key));
    // The global key is remembered by a fingerprint, not copied (see the test below).
    assert!(stored
        .previous_agent_key
        .as_deref()
        .is_some_and(|previous| previous.starts_with("fingerprint:")));
    assert_eq!(stored.last_hello, Some(agent.clock));
}

#[tokio::test]
async fn the_new_key_ends_the_grace_of_the_old_one() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let (agent_key, server_key) = (agent.agent_key.clone(), agent.server_key.clone().unwrap());
    assert_ne!(agent_key, GLOBAL_KEY);

    // A later hello with the new key: no keys sent, the old key is forgotten.
    let body = agent.hello_body();
    let response = server.target().send("POST", body, &agent_key).await;
    let result = agent.accept(&response).unwrap();
    assert!(result["params"].get("agent-key").is_none());
    assert!(result["params"].get("server-key").is_none());
    let pc = server.store.computer_by_hostname("pc1").unwrap().unwrap();
    let stored = server.store.credentials(pc.id).unwrap();
    assert_eq!(stored.previous_agent_key, None);
    assert_eq!(stored.server_key.as_deref(), Some(server_key.as_str()));

    let body = agent.hello_body();
    let response = server.target().send("POST", body, GLOBAL_KEY).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.body, b"Invalid signature");
}

#[tokio::test]
async fn a_lost_key_exchange_reply_gets_the_same_keys_again() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    // The reply is lost: the agent keeps no key.
    let body = agent.hello_body();
    let lost = server.target().send("POST", body, GLOBAL_KEY).await;
    let lost: Value = serde_json::from_slice(&lost.body).unwrap();

    let jobs = agent.hello().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        agent.agent_key,
        lost["result"]["params"]["agent-key"].as_str().unwrap()
    );
    assert_eq!(
        agent.server_key.as_deref(),
        lost["result"]["params"]["server-key"].as_str()
    );
    // The keys work.
    agent.hello().await.unwrap();
}

#[tokio::test]
async fn a_replayed_or_equal_hello_timestamp_is_refused() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let body = agent.hello_body();
    let first = server
        .target()
        .send("POST", body.clone(), &agent.agent_key)
        .await;
    assert_eq!(first.status, 200);
    let replay = server.target().send("POST", body, &agent.agent_key).await;
    assert_eq!(replay.status, 401);
    assert_eq!(replay.body, b"Agent timestamp too old");
    assert_eq!(
        replay.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // An older one too.
    agent.clock -= 10.0;
    assert_eq!(
        agent.hello().await,
        Err(AgentError::Status(401, "Agent timestamp too old".into()))
    );
}

#[tokio::test]
async fn signatures_are_checked() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let body = agent.hello_body();
    let response = server
        .target()
        .send("POST", body.clone(), "wrong-key")
        .await;
    assert_eq!(
        (response.status, response.body),
        (401, b"Invalid signature".to_vec())
    );
    let upper = client::sign(GLOBAL_KEY, &body).to_uppercase();
    let response = server
        .target()
        .send_raw("POST", "application/json", &upper, body.clone())
        .await;
    assert_eq!(response.status, 401);
    // Missing header.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(PATH)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = tower::ServiceExt::oneshot(server.router(loopback()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Nothing was stored, and no planner snapshot was read (none is in the hello cache).
    let pc = server.store.computer_by_hostname("pc1").unwrap().unwrap();
    assert_eq!(
        server.store.credentials(pc.id).unwrap(),
        AgentCredentials::default()
    );
    assert!(server.state.cached_store().is_empty());
    // A hello that passes reads it.
    agent.hello().await.unwrap();
    assert_eq!(server.state.cached_store().len(), 1);
}

#[tokio::test]
async fn unknown_computers_are_refused_unless_they_register() {
    let server = Server::new(memory());
    let mut agent = TestAgent::new(server.target(), "stranger");
    assert_eq!(
        agent.hello().await,
        Err(AgentError::Status(
            401,
            "Client self-registration is disabled".into()
        ))
    );
    let mut body = agent.report_body(&json!(1), 2, None, None, "");
    let response = server.target().send("POST", body.clone(), GLOBAL_KEY).await;
    assert_eq!(
        (response.status, response.body),
        (401, b"Unknown computer".to_vec())
    );
    body = client::plain_body("oco.agent.events", "u", "stranger", 5.0);
    let response = server.target().send("POST", body, GLOBAL_KEY).await;
    assert_eq!(response.status, 401);
    assert!(server
        .store
        .computer_by_hostname("stranger")
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn self_registration_needs_the_registration_key() {
    let server = Server::with_options(memory(), |options| options.self_registration = true);
    let mut agent = TestAgent::new(server.target(), "newcomer");
    // The global key does not register.
    assert_eq!(
        agent.hello().await,
        Err(AgentError::Status(401, "Invalid signature".into()))
    );
    assert!(server
        .store
        .computer_by_hostname("newcomer")
        .unwrap()
        .is_none());

    agent.agent_key = REGISTRATION_KEY.into();
    assert!(agent.hello().await.unwrap().is_empty());
    assert_ne!(agent.agent_key, REGISTRATION_KEY);
    let pc = server
        .store
        .computer_by_hostname("newcomer")
        .unwrap()
        .unwrap();
    let stored = server.store.credentials(pc.id).unwrap();
    assert_eq!(stored.agent_key.as_deref(), Some(agent.agent_key.as_str()));
    agent.hello().await.unwrap();
}

#[tokio::test]
async fn hello_lists_jobs_with_every_field() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = package(
        store.as_ref(),
        "app",
        "sh ./install.sh",
        "0",
        true,
        PostAction::Restart,
    );
    let tool = package(
        store.as_ref(),
        "tool",
        "exit 3",
        "0",
        false,
        PostAction::Shutdown,
    );
    let mut no_post_actions = policy(SequenceMode::AbortAfterFailed);
    no_post_actions.post_action_timeout = None;
    let (c1, jobs1) = container(
        store.as_ref(),
        "c1",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app), (pc.id, &tool)],
    );
    let (c2, jobs2) = container(store.as_ref(), "c2", no_post_actions, &[(pc.id, &app)]);
    // A renewed job: attempt 2.
    let mut renewed = store.job(jobs2[0]).unwrap();
    let expected = renewed.revision;
    renewed.attempt = 2;
    store
        .apply(&ChangeSet {
            changes: vec![Change::UpdateJob {
                expected,
                job: renewed,
            }],
        })
        .unwrap();
    let server = Server::new(store);
    let mut agent = TestAgent::new(server.target(), "pc1");
    let jobs = agent.hello().await.unwrap();
    let jobs: Vec<Value> = jobs.into_iter().map(|job| job.0).collect();
    assert_eq!(
        jobs,
        vec![
            json!({"id": jobs1[0].0, "container-id": c1.0, "package-id": app.id.0, "download": true,
                   "procedure": "sh ./install.sh", "sequence-mode": 0,
                   "restart": 5, "shutdown": null, "exit": null}),
            json!({"id": jobs1[1].0, "container-id": c1.0, "package-id": tool.id.0, "download": false,
                   "procedure": "exit 3", "sequence-mode": 0,
                   "restart": null, "shutdown": 5, "exit": null}),
            json!({"id": format!("{}.2", jobs2[0].0), "container-id": c2.0, "package-id": app.id.0,
                   "download": true, "procedure": "sh ./install.sh", "sequence-mode": 1,
                   "restart": null, "shutdown": null, "exit": null}),
        ]
    );
    // Reports name the renewed job by its wire id; the bare id is an earlier attempt.
    let wire = json!(format!("{}.2", jobs2[0].0));
    assert!(!agent
        .report(&json!(jobs2[0].0), 3, Some(0), None, "")
        .await
        .unwrap());
    assert_eq!(server.store.job(jobs2[0]).unwrap().state, JobState::Waiting);
    assert!(agent.report(&wire, 3, Some(0), None, "done").await.unwrap());
    assert_eq!(
        server.store.job(jobs2[0]).unwrap().state,
        JobState::Succeeded
    );
}

#[tokio::test]
async fn rule_jobs_carry_the_rule_container_id_and_trigger_re_evaluation() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let rule = rule(store.as_ref(), &[pc.id], &[app.id]);
    let mut job = Job::new(Origin::Rule(rule.id), pc.id, &app, JobKind::Install, 1);
    job.sequence = 1;
    let applied = store
        .apply(&ChangeSet {
            changes: vec![Change::InsertJob { job }],
        })
        .unwrap();
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let jobs = agent.hello().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].container(),
        &json!(format!("deployment_rule::{}", rule.id.0))
    );
    assert!(agent
        .report(jobs[0].id(), 3, Some(0), None, "ok")
        .await
        .unwrap());
    assert_eq!(
        store.job(applied.jobs[0]).unwrap().state,
        JobState::Succeeded
    );
    // The success recorded the installation; the re-evaluation runs in the background and
    // leaves the rule's job alone (the package is installed, the job succeeded).
    let (assignments, _) = store.assignments(pc.id).unwrap();
    assert_eq!(assignments.len(), 1);
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.job(applied.jobs[0]).unwrap().state,
        JobState::Succeeded
    );
}

#[tokio::test]
async fn reports_move_jobs_and_answer_job_succeeded() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let ok = package(store.as_ref(), "ok", "exit 0", "0", false, PostAction::None);
    let bad = plain_package(store.as_ref(), "bad", "exit 3");
    let boom = package(store.as_ref(), "boom", "x", "0", false, PostAction::None);
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &ok), (pc.id, &bad), (pc.id, &boom)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let id = |i: usize| json!(jobs[i].0);

    assert!(!agent.report(&id(0), 1, None, Some(0), "").await.unwrap());
    assert_eq!(store.job(jobs[0]).unwrap().state, JobState::Downloading);
    assert!(!agent.report(&id(0), 2, None, Some(100), "").await.unwrap());
    assert!(!agent
        .report(&id(0), 2, None, None, "partial\n")
        .await
        .unwrap());
    assert_eq!(store.job(jobs[0]).unwrap().output, "partial\n");
    assert!(agent
        .report(&id(0), 3, Some(0), None, "done\n")
        .await
        .unwrap());
    // The reporter thread's stale state 2 after the final state: answered, ignored.
    assert!(agent
        .report(&id(0), 2, None, None, "partial\n")
        .await
        .unwrap());
    let done = store.job(jobs[0]).unwrap();
    assert_eq!(
        (done.state, done.output.as_str()),
        (JobState::Succeeded, "done\n")
    );

    assert!(!agent
        .report(&id(1), 3, Some(3), None, "hi\n")
        .await
        .unwrap());
    let rejected = store.job(jobs[1]).unwrap();
    assert_eq!(rejected.state, JobState::Failed);
    assert_eq!(rejected.message, Some(MessageCode::ReturnCodeRejected));

    assert!(!agent
        .report(&id(2), -1, Some(-9999), None, "File is not a zip file")
        .await
        .unwrap());
    let failed = store.job(jobs[2]).unwrap();
    assert_eq!(
        (failed.state, failed.return_code),
        (JobState::Failed, Some(-9999))
    );
    assert!(agent.hello().await.unwrap().is_empty());
}

#[tokio::test]
async fn sequence_mode_abort_fails_the_later_jobs_with_minus_8888() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let first = plain_package(store.as_ref(), "first", "exit 1");
    let second = plain_package(store.as_ref(), "second", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::AbortAfterFailed),
        &[(pc.id, &first), (pc.id, &second)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let events = agent.cycle().await.unwrap();
    assert_eq!(
        events,
        vec![
            Event::Reported(json!(jobs[0].0), 3, Some(1), false),
            Event::Skipped(json!(jobs[1].0)),
        ]
    );
    let aborted = store.job(jobs[1]).unwrap();
    assert_eq!(
        (aborted.state, aborted.return_code),
        (JobState::Failed, Some(-8888))
    );
    assert!(agent.hello().await.unwrap().is_empty());
}

#[tokio::test]
async fn report_errors() {
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
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();

    // Another computer's job.
    assert_eq!(
        agent.report(&json!(jobs[1].0), 3, Some(0), None, "").await,
        Err(AgentError::Status(401, "Job of another computer".into()))
    );
    assert_eq!(store.job(jobs[1]).unwrap().state, JobState::Waiting);
    // Unknown jobs.
    for id in [json!(999_999), json!("dynamic-1"), json!("12.x")] {
        match agent.report(&id, 2, None, None, "").await {
            Err(AgentError::Status(400, text)) => {
                assert!(text.starts_with("Unknown job"), "{text}")
            }
            other => panic!("{other:?}"),
        }
    }
    // A state an agent cannot report.
    match agent.report(&json!(jobs[0].0), 0, None, None, "").await {
        Err(AgentError::Status(400, text)) => {
            assert!(text.contains("unknown job state 0"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    // Malformed JSON and a missing field.
    let response = server
        .target()
        .send("POST", b"{\"method\": ".to_vec(), &agent.agent_key)
        .await;
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).starts_with("Invalid request"));
    let body = br#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.update_job_state", "params": {"uid": "u", "hostname": "pc1", "timestamp": 1699996999.0, "data": {"job-id": 1, "return-code": null, "message": ""}}}"#;
    let response = server
        .target()
        .send("POST", body.to_vec(), &agent.agent_key)
        .await;
    assert_eq!(response.status, 400);
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.contains("missing field `state`"), "{text}");
    let body = br#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "u", "timestamp": 1699996999.0}}"#;
    let response = server
        .target()
        .send("POST", body.to_vec(), &agent.agent_key)
        .await;
    let text = String::from_utf8(response.body).unwrap();
    assert_eq!(response.status, 400);
    assert!(text.contains("missing field `hostname`"), "{text}");
    // An unknown method.
    let body = client::plain_body("oco.agent.dance", "u", "pc1", agent.tick());
    let response = server.target().send("POST", body, &agent.agent_key).await;
    assert_eq!(response.status, 400);
    // A report older than the last hello.
    agent.clock -= 100.0;
    assert_eq!(
        agent.report(&json!(jobs[0].0), 2, None, None, "").await,
        Err(AgentError::Status(401, "Agent timestamp too old".into()))
    );
}

#[tokio::test]
async fn reports_out_of_order_are_accepted() {
    let (server, job) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let earlier = agent.report_body(&json!(job.0), 2, None, None, "first\n");
    let later = agent.report_body(&json!(job.0), 3, Some(0), None, "done\n");
    let response = server.target().send("POST", later, &agent.agent_key).await;
    assert_eq!(response.status, 200);
    let response = server
        .target()
        .send("POST", earlier, &agent.agent_key)
        .await;
    assert_eq!(response.status, 200);
    let stored = server.store.job(job).unwrap();
    assert_eq!(
        (stored.state, stored.output.as_str()),
        (JobState::Succeeded, "done\n")
    );
}

#[tokio::test]
async fn downloads_need_a_pending_job_and_a_payload() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = package(
        store.as_ref(),
        "app",
        "sh ./install.sh",
        "0",
        true,
        PostAction::None,
    );
    let other = package(store.as_ref(), "other", "x", "0", true, PostAction::None);
    let missing = package(store.as_ref(), "missing", "x", "0", true, PostAction::None);
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app), (pc.id, &missing)],
    );
    let server = Server::new(store.clone());
    let archive = zip("install.sh", b"echo installed\n");
    server.put_payload(app.id, &archive);
    server.put_payload(other.id, &archive);
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();

    assert_eq!(agent.download(app.id.0).await.unwrap(), archive);
    assert!(matches!(
        agent.download(other.id.0).await,
        Err(AgentError::Status(400, _))
    ));
    assert!(matches!(
        agent.download(missing.id.0).await,
        Err(AgentError::Status(400, _))
    ));
    // POST works as well as GET: the method field decides.
    let timestamp = agent.tick();
    let body = client::download_body(&agent.uid, "pc1", timestamp, app.id.0);
    let response = server.target().send("POST", body, &agent.agent_key).await;
    assert_eq!(response.body, archive);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    // Not after the job finished.
    agent
        .report(&json!(jobs[0].0), 3, Some(0), None, "")
        .await
        .unwrap();
    assert!(matches!(
        agent.download(app.id.0).await,
        Err(AgentError::Status(400, _))
    ));
}

#[tokio::test]
async fn minimal_methods_reply_with_empty_params() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    for method in [
        "oco.agent.update",
        "oco.agent.events",
        "oco.agent.passwords",
    ] {
        let timestamp = agent.tick();
        let body = client::plain_body(method, &agent.uid, "pc1", timestamp);
        let response = server.target().send("POST", body, &agent.agent_key).await;
        let result = agent.accept(&response).unwrap();
        assert_eq!(result["params"], json!({}));
        let text = String::from_utf8(response.body).unwrap();
        assert!(
            text.starts_with(
                r#"{"id":1,"error":null,"result":{"success":true,"params":{},"timestamp":"#
            ),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_agent_address_comes_from_trusted_proxies_only() {
    let store = memory();
    let pc = computer(store.as_ref(), "pc1");
    let app = package(store.as_ref(), "app", "x", "0", false, PostAction::None);
    let mut office_only = policy(SequenceMode::IgnoreFailed);
    office_only.ip_ranges = "10.0.0.0/8".parse().unwrap();
    container(store.as_ref(), "c", office_only, &[(pc.id, &app)]);
    let server = Server::with_options(store, |options| {
        options.trusted_proxies = vec!["192.0.2.0/24".parse().unwrap()];
    });
    let hello = |peer: &str, forwarded: Option<&str>, agent: &mut TestAgent| {
        let body = agent.hello_body();
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(PATH)
            .header("content-type", "application/json")
            .header(
                client::AGENT_SIGNATURE,
                client::sign(&agent.agent_key, &body),
            );
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        let router = server.router(peer.parse().unwrap());
        async move {
            let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let reply: Value = serde_json::from_slice(&bytes).unwrap();
            reply["result"]["params"]["software-jobs"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let mut agent = TestAgent::new(server.target(), "pc1");
    assert_eq!(hello("10.1.1.1:5000", None, &mut agent).await, 1);
    assert_eq!(
        hello("198.51.100.1:5000", Some("10.1.1.1"), &mut agent).await,
        0
    );
    assert_eq!(
        hello("192.0.2.10:5000", Some("10.1.1.1"), &mut agent).await,
        1
    );
    assert_eq!(
        hello("192.0.2.10:5000", Some("198.51.100.1"), &mut agent).await,
        0
    );
}

#[tokio::test]
async fn reply_timestamps_increase_across_restarts() {
    let store = memory();
    computer(store.as_ref(), "pc1");
    let mut last = 0.0;
    for _ in 0..3 {
        // The same fixed time in every process: only the stored last reply keeps order.
        let server = Server::new(store.clone());
        let mut agent = TestAgent::new(server.target(), "pc1");
        agent.last_server_timestamp = last;
        for _ in 0..3 {
            agent.hello().await.unwrap();
            // A fresh agent each time: start again from the global key.
            let pc = store.computer_by_hostname("pc1").unwrap().unwrap();
            let credentials = store.credentials(pc.id).unwrap();
            store
                .set_credentials(pc.id, &credentials.reset_to_first_contact())
                .unwrap();
            agent.agent_key = GLOBAL_KEY.into();
            agent.server_key = None;
        }
        assert!(agent.last_server_timestamp > last);
        last = agent.last_server_timestamp;
        let pc = store.computer_by_hostname("pc1").unwrap().unwrap();
        let reserved = store.credentials(pc.id).unwrap().last_reply.unwrap();
        assert!(
            (last..=last + 0.5).contains(&reserved),
            "{reserved} for {last}"
        );
    }
}

/// A hello is seen at once: the credentials it commits hold the contact, which is the
/// computer's last-seen time. Other requests are seen at the next flush.
#[tokio::test]
async fn hellos_are_seen_at_once_other_requests_at_the_flush() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let jobs = agent.hello().await.unwrap();
    let pc = server.store.computer_by_hostname("pc1").unwrap().unwrap();
    assert_eq!(pc.last_seen, Some(now()));

    server.clock.advance(oco_core::chrono::Duration::seconds(5));
    agent
        .report(jobs[0].id(), 1, None, Some(10), "")
        .await
        .unwrap();
    assert_eq!(server.store.computer(pc.id).unwrap().last_seen, Some(now()));
    // A computer deleted since it was seen does not block the others.
    computer(server.store.as_ref(), "pc2");
    let mut other = TestAgent::new(server.target(), "pc2");
    other.hello().await.unwrap();
    let (_, other_jobs) = container(
        server.store.as_ref(),
        "c2",
        policy(SequenceMode::IgnoreFailed),
        &[(
            other_id(&server, "pc2"),
            &plain_package(server.store.as_ref(), "tool", "x"),
        )],
    );
    assert_eq!(other_jobs.len(), 1);
    let other_job = other.hello().await.unwrap();
    other
        .report(other_job[0].id(), 1, None, Some(10), "")
        .await
        .unwrap();
    server
        .store
        .delete_computer(other_id(&server, "pc2"), now())
        .unwrap();
    agent_api::flush(&server.state).await.unwrap();
    assert_eq!(
        server.store.computer(pc.id).unwrap().last_seen,
        Some(now() + oco_core::chrono::Duration::seconds(5))
    );
}

fn other_id(server: &Server, hostname: &str) -> oco_core::model::ComputerId {
    server
        .store
        .computer_by_hostname(hostname)
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn an_oversized_body_is_refused_cleanly() {
    let (server, _) = one_job(memory());
    let body = vec![b' '; oco_server_min::BODY_LIMIT + 1];
    let response = server.target().send("POST", body, GLOBAL_KEY).await;
    assert_eq!(response.status, 413);
    assert!(String::from_utf8_lossy(&response.body).starts_with("Request body too large"));
}

#[tokio::test]
async fn get_with_a_body_is_routed_on_the_method() {
    let (server, _) = one_job(memory());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let body = agent.hello_body();
    let response = server.target().send("GET", body, GLOBAL_KEY).await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn no_row_holds_a_copy_of_the_global_or_the_registration_key() {
    let store = memory();
    computer(store.as_ref(), "pc1");
    let server = Server::with_options(store.clone(), |options| options.self_registration = true);
    // pc1 with the global key, pc2 registering itself with the registration key; each reply is
    // lost once, so each repeats its first hello with the same key.
    for (hostname, key) in [("pc1", GLOBAL_KEY), ("pc2", REGISTRATION_KEY)] {
        let mut agent = TestAgent::new(server.target(), hostname);
        agent.agent_key = key.into();
        let body = agent.hello_body();
        let first = server.target().send("POST", body, key).await;
        assert_eq!(first.status, 200, "{hostname}");
        let mut again = TestAgent::new(server.target(), hostname);
        again.agent_key = key.into();
        again.clock = agent.clock;
        again.hello().await.unwrap();
        let pc = store.computer_by_hostname(hostname).unwrap().unwrap();
        let credentials = store.credentials(pc.id).unwrap();
        let row = format!("{credentials:?}");
        assert!(!row.contains(GLOBAL_KEY), "{hostname}: {row}");
        assert!(!row.contains(REGISTRATION_KEY), "{hostname}: {row}");
        // The agent now uses its own key, which ends the exchange.
        again.hello().await.unwrap();
    }
}

#[tokio::test]
async fn self_registration_refuses_a_hostname_an_administrator_could_not_enter() {
    let server = Server::with_options(memory(), |options| options.self_registration = true);
    for hostname in [
        "evil\u{202E}exe.txt",
        "pc\u{0}1",
        "two words",
        &"a".repeat(64),
    ] {
        let mut agent = TestAgent::new(server.target(), hostname);
        agent.agent_key = REGISTRATION_KEY.into();
        match agent.hello().await {
            Err(AgentError::Status(400, message)) => {
                assert!(
                    message.starts_with("Invalid hostname: hostname:"),
                    "{message}"
                );
            }
            other => panic!("{hostname:?}: {other:?}"),
        }
    }
    assert!(server
        .store
        .list_computers(oco_core::store::Page::first(10))
        .unwrap()
        .is_empty());
    // The same agent with a hostname as DNS allows registers.
    let mut agent = TestAgent::new(server.target(), "pc-01.corp");
    agent.agent_key = REGISTRATION_KEY.into();
    agent.hello().await.unwrap();
    assert!(server
        .store
        .computer_by_hostname("pc-01.corp")
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn copies_of_shared_keys_left_by_older_releases_are_replaced_and_still_recognised() {
    // A row as an older release wrote it: a computer in first contact, whose previous agent
    // key is a copy of the global key.
    let sqlite = Arc::new(oco_store_sqlite::SqliteStore::open_in_memory().unwrap());
    let store: Arc<dyn Store> = sqlite.clone();
    let pc = computer(store.as_ref(), "pc1");
    let first_contact = AgentCredentials {
        agent_key: Some("k".repeat(32)),
        previous_agent_key: Some(GLOBAL_KEY.into()),
        server_key: Some("s".repeat(32)),
        ..AgentCredentials::default()
    };
    store.set_credentials(pc.id, &first_contact).unwrap();

    let shared = [GLOBAL_KEY, REGISTRATION_KEY];
    assert_eq!(
        agent_api::forget_shared_keys(
            |from, to| sqlite.replace_previous_agent_key(from, to),
            &shared
        )
        .unwrap(),
        1
    );
    assert_eq!(
        agent_api::forget_shared_keys(
            |from, to| sqlite.replace_previous_agent_key(from, to),
            &shared
        )
        .unwrap(),
        0
    );
    let row = format!("{:?}", store.credentials(pc.id).unwrap());
    assert!(!row.contains(GLOBAL_KEY), "{row}");

    // The agent, which never got its own key, is still recognised by the global key.
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    assert_ne!(agent.agent_key, GLOBAL_KEY, "it got its own key");
    agent.hello().await.unwrap();
}

/// Agent requests are summed up for the log's once-a-minute line, by outcome, and each summary
/// starts from zero.
#[tokio::test]
async fn agent_requests_are_summed_up_for_the_log() {
    let server = Server::new(memory());
    computer(server.store.as_ref(), "pc1");
    let mut agent = TestAgent::new(server.target(), "pc1");
    assert_eq!(agent_api::summary(&server.state), None);
    agent.hello().await.unwrap();
    agent.hello().await.unwrap();
    let body = agent.hello_body();
    let signature = client::sign(GLOBAL_KEY, &body);
    let refused = server
        .target()
        .send_raw("POST", "text/plain", &signature, body)
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        agent_api::summary(&server.state).as_deref(),
        Some(
            "2 polls, 0 jobs handed out, 0 reports, 0 downloads, 0 other requests, 1 refused, \
             0 failed"
        )
    );
    assert_eq!(agent_api::summary(&server.state), None);
}
