//! Agent clocks and addresses, in-process: a timestamp from too far ahead is refused and stores
//! nothing, an administrator can reset a locked-out agent to first contact, each agent's reply
//! timestamps increase whichever server process answers, and the last hello's address, version
//! and time are kept, shown on the computer and used by `explain`.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use oco_core::chrono::Duration as TimeDelta;
use oco_core::model::{ComputerId, JobId, PostAction, SequenceMode};
use oco_core::store::{AgentCredentials, MemoryStore, Store};
use oco_server_min::agent_api::client::{self, HttpResponse};
use oco_server_min::clock::Clock;
use serde_json::{json, Value};

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A hello of `hostname` with `timestamp`, signed with `key`.
async fn hello_at(target: &Target, hostname: &str, timestamp: f64, key: &str) -> HttpResponse {
    let body = client::hello_body("uid", hostname, timestamp, &client::HelloData::minimal());
    target.send("POST", body, key).await
}

/// The server's clock as the agent's timestamp.
fn epoch(server: &Server) -> f64 {
    server.clock.now().timestamp_micros() as f64 / 1e6
}

fn text(response: &HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// pc1 with one waiting job of a package with a payload.
fn pc_with_a_job(store: &dyn Store, ranges: &str) -> (ComputerId, JobId) {
    let pc = computer(store, "pc1");
    let app = package(store, "app", "sh ./install.sh", "0", true, PostAction::None);
    let mut policy = policy(SequenceMode::IgnoreFailed);
    policy.ip_ranges = ranges.parse().unwrap();
    let (_, jobs) = container(store, "c1", policy, &[(pc.id, &app)]);
    (pc.id, jobs[0])
}

#[tokio::test]
async fn a_timestamp_from_too_far_ahead_is_refused_and_stores_nothing() {
    let store = memory();
    let (pc, _) = pc_with_a_job(store.as_ref(), "");
    let server = Server::new(store.clone());
    let target = server.target();
    let refused = "Agent timestamp too far ahead: more than 600 s ahead of the server clock \
                   (check the agent's clock)";
    // First contact, and a computer with its own key: both refused, nothing stored.
    for timestamp in [
        4_102_444_800.0,
        1.797_693_134_862_315_7e308,
        epoch(&server) + 600.5,
    ] {
        let response = hello_at(&target, "pc1", timestamp, GLOBAL_KEY).await;
        assert_eq!((response.status, text(&response)), (401, refused.into()));
        assert_eq!(store.credentials(pc).unwrap(), AgentCredentials::default());
    }
    let mut agent = TestAgent::new(target.clone(), "pc1");
    agent.hello().await.unwrap();
    let stored = store.credentials(pc).unwrap();
    for timestamp in [4_102_444_800.0, 1.797_693_134_862_315_7e308] {
        let response = hello_at(&target, "pc1", timestamp, &agent.agent_key).await;
        assert_eq!(response.status, 401, "{}", text(&response));
        assert_eq!(store.credentials(pc).unwrap(), stored);
        // A report from the future is refused as well.
        let mut body: Value =
            serde_json::from_slice(&agent.report_body(&json!(1), 2, None, None, "")).unwrap();
        body["params"]["timestamp"] = json!(timestamp);
        let body = serde_json::to_vec(&body).unwrap();
        let response = target.send("POST", body, &agent.agent_key).await;
        assert_eq!((response.status, text(&response)), (401, refused.into()));
    }
    // The agent goes on as if nothing had happened.
    assert_eq!(agent.hello().await.unwrap().len(), 1);
    // Up to the skew is fine.
    let response = hello_at(&target, "pc1", epoch(&server) + 600.0, &agent.agent_key).await;
    assert_eq!(response.status, 200, "{}", text(&response));
}

#[tokio::test]
async fn the_clock_skew_is_configurable() {
    let store = memory();
    pc_with_a_job(store.as_ref(), "");
    let server = Server::with_options(store, |options| {
        options.max_clock_skew = Duration::from_secs(30)
    });
    let target = server.target();
    let response = hello_at(&target, "pc1", epoch(&server) + 31.0, GLOBAL_KEY).await;
    assert_eq!(response.status, 401);
    assert!(
        text(&response).contains("more than 30 s ahead"),
        "{}",
        text(&response)
    );
    let response = hello_at(&target, "pc1", epoch(&server) + 29.0, GLOBAL_KEY).await;
    assert_eq!(response.status, 200, "{}", text(&response));
}

#[tokio::test]
async fn a_locked_out_agent_is_reset_to_first_contact() {
    let store = memory();
    let (pc, _) = pc_with_a_job(store.as_ref(), "");
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let server_key = agent.server_key.clone();
    // A bad timestamp stored by an earlier version: every request is refused.
    let mut locked = store.credentials(pc).unwrap();
    locked.last_hello = Some(4_102_444_800.0);
    store.set_credentials(pc, &locked).unwrap();
    assert_eq!(
        agent.hello().await.unwrap_err(),
        AgentError::Status(401, "Agent timestamp too old".into())
    );

    let (status, view) = server
        .admin("POST", &format!("/computers/{}/agent/reset", pc.0))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], pc.0);
    assert_eq!(view["agent"]["address"], "127.0.0.1");
    let reset = store.credentials(pc).unwrap();
    assert_eq!((reset.agent_key, reset.last_hello), (None, None));

    // The agent, still signing with its own key, gets a new key and keeps its server key.
    let old_key = agent.agent_key.clone();
    assert_eq!(agent.hello().await.unwrap().len(), 1);
    assert_ne!(agent.agent_key, old_key);
    assert_eq!(agent.server_key, server_key);
    assert_eq!(agent.hello().await.unwrap().len(), 1);

    // A reinstalled agent with the global key is welcome after a reset too; an unknown key not.
    server
        .admin("POST", &format!("/computers/{}/agent/reset", pc.0))
        .await;
    let mut reinstalled = TestAgent::new(server.target(), "pc1");
    reinstalled.clock = agent.clock;
    reinstalled.last_server_timestamp = agent.last_server_timestamp;
    reinstalled.server_key = agent.server_key.clone();
    assert_eq!(reinstalled.hello().await.unwrap().len(), 1);
    let response = hello_at(&server.target(), "pc1", reinstalled.tick(), "not-a-key").await;
    assert_eq!(response.status, 401);

    let (status, error) = server.admin("POST", "/computers/999/agent/reset").await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["code"], "not-found");
}

#[tokio::test]
async fn replies_to_each_agent_increase_whichever_process_answers() {
    let store = memory();
    let (pc, job) = pc_with_a_job(store.as_ref(), "");
    // Two processes on one database, the second one's clock a second behind.
    let first = Server::new(store.clone());
    let second = Server::new(store.clone());
    second.clock.set(now() - TimeDelta::seconds(1));
    let mut agent = TestAgent::new(first.target(), "pc1");
    for round in 0..12 {
        let server = if round % 2 == 0 { &first } else { &second };
        agent.target = server.target();
        // `accept` refuses a reply not above the last one, as the agent does.
        agent.hello().await.unwrap();
        agent
            .report(&json!(job.0), 2, None, None, "running")
            .await
            .unwrap();
        // The stored reservation covers every reply sent, by at most half a second.
        let stored = store.credentials(pc).unwrap().last_reply.unwrap();
        let ahead = stored - agent.last_server_timestamp;
        assert!((0.0..=0.5).contains(&ahead), "round {round}: {ahead}");
        first.clock.advance(TimeDelta::milliseconds(1));
        second.clock.advance(TimeDelta::milliseconds(1));
    }
    // Within one process's clock tick too, and written with six decimals every time.
    let before = agent.last_server_timestamp;
    let body = agent.hello_body();
    let response = agent.target.send("POST", body, &agent.agent_key).await;
    agent.accept(&response).unwrap();
    let body = text(&response);
    let written = body
        .rsplit("\"timestamp\":")
        .next()
        .unwrap()
        .trim_end_matches('}');
    assert_eq!(written.len(), 17, "{body}");
    assert!(agent.last_server_timestamp > before);
}

#[tokio::test]
async fn the_last_hello_is_shown_on_the_computer() {
    let store = memory();
    let (pc, _) = pc_with_a_job(store.as_ref(), "");
    let server = Server::new(store.clone());
    let (_, view) = server.admin("GET", &format!("/computers/{}", pc.0)).await;
    assert_eq!(view["agent"], Value::Null);
    assert_eq!(view["hostname"], "pc1");

    let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let mut agent = TestAgent::new(Target::Router(server.router(peer)), "pc1");
    let mut data = client::HelloData::minimal();
    data.agent_version = format!("1.2.0\n{}", "9".repeat(100));
    let body = client::hello_body("uid", "pc1", agent.tick(), &data);
    let response = agent.target.send("POST", body, &agent.agent_key).await;
    assert_eq!(response.status, 200, "{}", text(&response));

    let expected = json!({
        "at": now(),
        "address": "192.0.2.7",
        // Control characters dropped, at most 64 characters kept.
        "agent_version": format!("1.2.0{}", "9".repeat(59)),
    });
    let (_, view) = server.admin("GET", &format!("/computers/{}", pc.0)).await;
    assert_eq!(view["agent"], expected);
    let (_, list) = server.admin("GET", "/computers").await;
    assert_eq!(list["items"][0]["agent"], expected);
}

#[tokio::test]
async fn explain_uses_the_last_hello_address_or_says_it_depends() {
    let store = memory();
    // Agents on 127.0.0.1 never get this job.
    let (pc, job) = pc_with_a_job(store.as_ref(), "!127.0.0.0/8");
    let server = Server::new(store.clone());
    let explain = |query: &'static str| {
        let server = &server;
        async move {
            server
                .admin("GET", &format!("/jobs/{}/explain{query}", job.0))
                .await
                .1
        }
    };
    // No address given, none known: it depends.
    assert_eq!(
        explain("").await,
        json!({"status": "depends-on-address", "job": job.0})
    );
    assert_eq!(
        explain("?address=10.0.0.1").await,
        json!({"status": "deliverable", "job": job.0, "address": "10.0.0.1",
               "address_source": "query"})
    );
    // The agent polls from 127.0.0.1 and gets nothing; explain now says why.
    let mut agent = TestAgent::new(server.target(), "pc1");
    assert!(agent.hello().await.unwrap().is_empty());
    assert_eq!(
        explain("").await,
        json!({"status": "held", "job": job.0, "address": "127.0.0.1",
               "address_source": "last-hello", "reason": {"reason": "ip-denied"}})
    );
    assert_eq!(explain("?address=10.0.0.1").await["status"], "deliverable");
    assert_eq!(store.job(job).unwrap().computer, pc);

    // Lists whose verdict is the same for every address need no address.
    for (ranges, status) in [
        ("", "deliverable"),
        ("0.0.0.0/0, ::/0", "deliverable"),
        ("!0.0.0.0/0, !::/0", "held"),
        ("10.0.0.0/8", "depends-on-address"),
    ] {
        let store = memory();
        let (_, job) = pc_with_a_job(store.as_ref(), ranges);
        let server = Server::new(store);
        let (_, answer) = server
            .admin("GET", &format!("/jobs/{}/explain", job.0))
            .await;
        assert_eq!(answer["status"], status, "`{ranges}`: {answer}");
        if status != "depends-on-address" {
            assert_eq!(answer["address"], Value::Null, "`{ranges}`: {answer}");
        }
    }
}

#[tokio::test]
async fn replies_under_the_reservation_write_no_credentials() {
    let store = memory();
    let (pc, job) = pc_with_a_job(store.as_ref(), "");
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    // Signed with its own key: the previous key's grace period ends with this write.
    agent.hello().await.unwrap();
    let reserved = store.credentials(pc).unwrap();
    for _ in 0..3 {
        agent
            .report(&json!(job.0), 2, None, None, "running")
            .await
            .unwrap();
        let events = client::plain_body("oco.agent.events", "uid", "pc1", agent.tick());
        let response = agent.target.send("POST", events, &agent.agent_key).await;
        agent.accept(&response).unwrap();
    }
    // The reports wrote their job, not the credentials: the reservation covered their replies.
    assert_eq!(store.credentials(pc).unwrap(), reserved);
    assert!(agent.last_server_timestamp < reserved.last_reply.unwrap());
    // Past the reservation (two hellos in the same fixed instant pushed it a second ahead), a
    // reply stores a new one first.
    server.clock.advance(TimeDelta::seconds(2));
    agent
        .report(&json!(job.0), 2, None, None, "still running")
        .await
        .unwrap();
    let renewed = store.credentials(pc).unwrap().last_reply.unwrap();
    assert!(renewed > reserved.last_reply.unwrap());
    assert!(agent.last_server_timestamp < renewed);
}
