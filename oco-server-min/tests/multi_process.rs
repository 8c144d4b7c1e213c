//! Two server processes on one PostgreSQL database and one data directory, as behind a load
//! balancer, must look like one to agents and administrators: the agent alternates between them
//! through a deploy, its key exchange, hellos, a download and reports, and a rule change; a hello
//! replayed to the other process is refused; reply timestamps keep increasing; what one process
//! writes, the other serves at once (its hello cache forgets it within the listener's bound); a
//! new computer registers through one and polls the other; housekeeping runs on one of them and
//! passes to the other when it dies; and a process killed with SIGKILL under report load loses
//! no report it acknowledged.
//!
//! Needs `OCO_TEST_POSTGRES` (a PostgreSQL URL); without it the test says it was skipped,
//! unless `OCO_REQUIRE_POSTGRES=1` makes that a failure (CI sets it).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use oco_store_postgres::testing::{env_or_skip, TestSchema};
use serde_json::{json, Value};

use process::*;

/// A fresh schema of the test database, its URL naming it as the search path; `None` (after
/// saying so) when the test is to be skipped.
fn database(test: &str) -> Option<TestSchema> {
    let url = env_or_skip(test, &["OCO_TEST_POSTGRES"])?.remove(0);
    Some(TestSchema::create(&url).unwrap())
}

fn start(data: &Path, database: &str) -> Server {
    Server::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--database",
            database,
            "--housekeeping-interval",
            "1",
            "--wol-target",
            "127.0.0.1:9",
            "--self-registration",
        ],
        &[("OCO_LOG", "info,oco_server_min=debug")],
    )
}

fn admin(addr: SocketAddr, token: &str) -> Admin {
    Admin {
        addr,
        authorization: format!("Bearer {token}"),
    }
}

/// `result.timestamp` of the agent's last reply, as a number.
fn last_reply(agent: &Agent) -> f64 {
    agent.last_reply.trim().parse().unwrap()
}

/// The ids of the software jobs a hello hands out.
fn job_ids(hello: &Value) -> Vec<i64> {
    hello["software-jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn two_processes_on_one_database_act_as_one() {
    let test = "two_processes_on_one_database_act_as_one";
    let Some(schema) = database(test) else {
        return;
    };
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let a = start(data, &url);
    a.wait_for_log("this process leads housekeeping", 1);
    let b = start(data, &url);
    let (token, agent_key, registration_key) = secrets(data);
    let (on_a, on_b) = (admin(a.addr, &token), admin(b.addr, &token));

    // An administrator works through A; B sees every write at once.
    let pc = on_a.json(
        "POST",
        "/computers",
        Some(json!({"hostname": "pc-multi", "os": "Linux"})),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        on_b.json("GET", &format!("/computers/{pc}"), None, 200)["hostname"],
        "pc-multi"
    );
    let family = on_a.json(
        "POST",
        "/package-families",
        Some(json!({"name": "tool"})),
        201,
    );
    let package = |version: &str| {
        on_a.json(
            "POST",
            "/packages",
            Some(json!({"family": family["id"], "version": version,
                        "install": {"command": format!("install {version}")}})),
            201,
        )["id"]
            .as_i64()
            .unwrap()
    };
    let (p1, p2, p3) = (package("1"), package("2"), package("3"));
    // A token made through A works through B, and its revocation through B holds in A, each
    // within the age of the other process's copy of the tokens (0.1 s for an unknown token, 1 s
    // for a known one).
    let made = on_a.json("POST", "/tokens", Some(json!({"name": "ci"})), 201);
    let on_b_as_ci = admin(b.addr, made["token"].as_str().unwrap());
    let accepted = (0..50).any(|_| {
        let status = on_b_as_ci.request("GET", "/tokens", "", b"").status;
        status == 200 || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    assert!(
        accepted,
        "a token made through A works through B within 5 s"
    );
    assert_eq!(
        on_b_as_ci.json("GET", "/tokens", None, 200)["items"][1]["name"],
        "ci"
    );
    let revoked = on_b.request("DELETE", &format!("/tokens/{}", made["id"]), "", b"");
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    // A holds a copy of the tokens for at most a second.
    let on_a_as_ci = admin(a.addr, made["token"].as_str().unwrap());
    let refused = (0..50).any(|_| {
        let status = on_a_as_ci.request("GET", "/tokens", "", b"").status;
        status == 401 || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    assert!(refused, "a revocation through B holds in A within 5 s");
    // A payload uploaded through A is downloaded through B (one payload directory).
    let zip = empty_zip();
    let uploaded = on_a.request(
        "PUT",
        &format!("/packages/{p1}/payload"),
        "application/zip",
        &zip,
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    // Deployed through B.
    let deployed = on_b.json(
        "POST",
        "/containers/deploy",
        Some(json!({"container": {"name": "one"}, "computers": [pc], "packages": [p1]})),
        201,
    );
    let container = deployed["container"]["id"].as_i64().unwrap();

    // The agent's first hello, with the global key, through A: its keys and the job.
    let mut agent = Agent::new(a.addr, "pc-multi", &agent_key);
    let hello = agent.hello();
    assert_ne!(agent.key, agent_key, "a key of its own");
    let jobs = job_ids(&hello);
    assert_eq!(jobs.len(), 1, "{hello}");
    let job = jobs[0];
    let mut replies = vec![last_reply(&agent)];

    // A hello to A, replayed to B: refused there, as A would refuse it.
    let body = agent.body(
        "oco.agent.hello",
        json!({"data": {"agent_version": "1.2.0"}}),
    );
    assert_eq!(agent.send("POST", &body).status, 200);
    agent.addr = b.addr;
    let replayed = agent.send("POST", &body);
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.text(), "Agent timestamp too old");

    // Alternating: the download through B, reports through A and B; every reply signed with the
    // server key A handed out, and each reply's timestamp above the last.
    let download = agent.body("oco.agent.download", json!({"package-id": p1}));
    let payload = agent.send("GET", &download);
    assert_eq!(payload.status, 200, "{}", payload.text());
    assert_eq!(payload.body, zip);
    for (addr, state, code) in [
        (a.addr, 1, Value::Null),
        (b.addr, 2, Value::Null),
        (a.addr, 3, json!(0)),
    ] {
        agent.addr = addr;
        agent.call(
            "oco.agent.update_job_state",
            json!({"job-id": job, "state": state, "return-code": code, "message": ""}),
        );
        replies.push(last_reply(&agent));
    }
    agent.addr = b.addr;
    assert!(job_ids(&agent.hello()).is_empty());
    replies.push(last_reply(&agent));
    assert!(
        replies.windows(2).all(|pair| pair[0] < pair[1]),
        "reply timestamps must strictly increase: {replies:?}"
    );
    let statistics = on_a.json(
        "GET",
        &format!("/containers/{container}/statistics"),
        None,
        200,
    );
    assert_eq!(statistics["status"], "succeeded", "{statistics}");

    // B's hello cache holds the computer's outlook (a job held by a time frame that is always
    // closed); a deploy through A reaches B's next hellos within the listener's bound (2 s).
    let held = on_a.json(
        "POST",
        "/containers/deploy",
        Some(
            json!({"container": {"name": "never", "policy": {"ip_ranges": "192.0.2.0/24"}},
                    "computers": [pc], "packages": [p2]}),
        ),
        201,
    );
    let never = held["container"]["id"].as_i64().unwrap();
    for _ in 0..3 {
        assert!(job_ids(&agent.hello()).is_empty(), "held by its IP range");
    }
    on_a.json("POST", &format!("/containers/{never}/disable"), None, 200);
    on_a.json(
        "POST",
        "/containers/deploy",
        Some(json!({"container": {"name": "two"}, "computers": [pc], "packages": [p3]})),
        201,
    );
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen = job_ids(&agent.hello());
        if !seen.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        seen.len(),
        1,
        "B served a stale hello for 3 s after A's deploy"
    );

    // A rule created through B, the computer joining its group through A: the rule's job is
    // handed out by either, once.
    let group = on_b.json(
        "POST",
        "/computer-groups",
        Some(json!({"name": "office"})),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let tools = on_b.json(
        "POST",
        "/package-groups",
        Some(json!({"name": "tools"})),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    on_b.json(
        "PUT",
        &format!("/package-groups/{tools}/members"),
        Some(json!({"members": [p2]})),
        200,
    );
    let rule = on_b.json(
        "POST",
        "/rules",
        Some(json!({"name": "tools", "computer_group": group, "package_group": tools})),
        201,
    )["rule"]["id"]
        .as_i64()
        .unwrap();
    on_a.json(
        "PUT",
        &format!("/computer-groups/{group}/members"),
        Some(json!({"members": [pc]})),
        200,
    );
    let rule_jobs = on_b.json("GET", &format!("/jobs?origin=rule:{rule}"), None, 200);
    assert_eq!(
        rule_jobs["items"].as_array().unwrap().len(),
        1,
        "{rule_jobs}"
    );
    agent.addr = a.addr;
    let mut handed = BTreeMap::new();
    for _ in 0..60 {
        handed = job_ids(&agent.hello())
            .into_iter()
            .map(|id| (id, ()))
            .collect();
        if handed.len() == 2 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        handed.len(),
        2,
        "the deploy's job and the rule's, once each"
    );

    // An unknown computer registers through B with the registration key; its next hello, with
    // the key B handed out, is answered by A.
    let mut newcomer = Agent::new(b.addr, "pc-new", &registration_key);
    newcomer.hello();
    assert_ne!(newcomer.key, registration_key, "a key of its own");
    newcomer.addr = a.addr;
    assert!(job_ids(&newcomer.hello()).is_empty());
    let listed = on_a.json("GET", "/computers?limit=1000", None, 200);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|computer| computer["hostname"] == "pc-new"),
        "{listed}"
    );

    // One process leads housekeeping: A, started first. B logs nothing of the kind.
    assert!(
        !b.log().contains("this process leads housekeeping"),
        "{}",
        b.log()
    );

    // Report load on A: agents of a fresh deploy report their jobs done through A while A is
    // killed. Every report A acknowledged is in the database, as B shows.
    let hostnames: Vec<String> = (0..40).map(|i| format!("load-{i:02}")).collect();
    let computers: Vec<i64> = hostnames
        .iter()
        .map(|hostname| {
            on_b.json(
                "POST",
                "/computers",
                Some(json!({"hostname": hostname, "os": "Linux"})),
                201,
            )["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    on_b.json(
        "POST",
        "/containers/deploy",
        Some(json!({"container": {"name": "load"}, "computers": computers, "packages": [p1]})),
        201,
    );
    // Each agent's key exchange and first hello through B.
    let agents: Vec<(Agent, i64)> = hostnames
        .iter()
        .map(|hostname| {
            let mut agent = Agent::new(b.addr, hostname, &agent_key);
            let job = job_ids(&agent.hello())[0];
            agent.addr = a.addr;
            (agent, job)
        })
        .collect();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(Mutex::new(agents));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (queue, acknowledged, sent) = (queue.clone(), acknowledged.clone(), sent.clone());
            thread::spawn(move || loop {
                let Some((mut agent, job)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let body = agent.body(
                    "oco.agent.update_job_state",
                    json!({"data": {"job-id": job, "state": 3, "return-code": 0,
                                    "message": "done"}}),
                );
                sent.fetch_add(1, Ordering::SeqCst);
                // A killed server cuts the connection off: no acknowledgement.
                if agent
                    .try_send("POST", &body)
                    .is_ok_and(|response| response.status == 200)
                {
                    acknowledged.lock().unwrap().push(job);
                }
            })
        })
        .collect();
    while sent.load(Ordering::SeqCst) < 15 {
        thread::sleep(Duration::from_millis(1));
    }
    let killed = a.kill();
    for worker in workers {
        worker.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        !acknowledged.is_empty(),
        "some reports were acknowledged before the kill"
    );
    for job in &acknowledged {
        let stored = on_b.json("GET", &format!("/jobs/{job}"), None, 200);
        assert_eq!(
            stored["state"], "succeeded",
            "acknowledged report of job {job} lost: {stored}"
        );
    }

    // B takes over housekeeping within an interval or two of A's death.
    b.wait_for_log("this process leads housekeeping", 1);
    let (status, log) = b.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    // The leader's lock connection is closed after the runtime, not on an async worker.
    assert!(!log.contains("panicked") && !log.contains("ERROR"), "{log}");
    assert!(!killed.contains("ERROR"), "{killed}");
}
