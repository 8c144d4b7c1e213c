//! The constraint lint through the admin API: warnings beside a saved container or rule (the
//! write happens), and the findings `explain` gives when they bear on a job's verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use admin_support::Api;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// A deploy of one package to one computer under `policy`: the answer and the job's id.
async fn deploy(api: &Api, policy: Value) -> (Value, i64) {
    let pc = match api.store.computer_by_hostname("pc1").unwrap() {
        Some(pc) => pc.id.0,
        None => api.computer("pc1", "").await,
    };
    let family = api
        .family(&format!("f{}", FAMILIES.fetch_add(1, Ordering::Relaxed)))
        .await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "c", "policy": policy},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let job = created["jobs"][0]["id"].as_i64().unwrap();
    (created, job)
}

/// The kinds of a list of warnings or findings.
fn kinds(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect()
}

/// Numbers the families of the deploys, so that each has its own.
static FAMILIES: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn a_saved_container_comes_with_the_lint_warnings() {
    let api = Api::new();
    let input = "10.0.0.0/8, !10.66.0.0/16";
    let (created, _) = deploy(&api, json!({"ip_ranges": input})).await;
    assert_eq!(
        created["warnings"],
        json!([{
            "field": "container.policy.ip_ranges",
            "kind": "shadowed",
            "message": "entry 2 `!10.66.0.0/16` never applies: entry 1 `10.0.0.0/8` already \
                        allows all of it; did you mean `!10.66.0.0/16, 10.0.0.0/8`?",
            "entry": 2,
            "position": {"start": 12, "end": 25},
            "rendered": "entry 2 `!10.66.0.0/16` never applies: entry 1 `10.0.0.0/8` already \
                         allows all of it; did you mean `!10.66.0.0/16, 10.0.0.0/8`?\n\
                         10.0.0.0/8, !10.66.0.0/16\n            ^^^^^^^^^^^^^"
        }])
    );
    // The write happened as given.
    let id = created["container"]["id"].as_i64().unwrap();
    let (_, stored) = api.get(&format!("/containers/{id}")).await;
    assert_eq!(stored["policy"]["ip_ranges"], input);

    // An edit warns about the policy it leaves, and saves it.
    let (status, edited) = api
        .patch(
            &format!("/containers/{id}"),
            json!({"policy": {"ip_ranges": "", "time_frames": "SAT 0:00-23:59, !SAT 11:00-13:00"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let warnings = edited["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{edited}");
    assert_eq!(warnings[0]["field"], "policy.time_frames");
    assert_eq!(warnings[0]["kind"], "shadowed");
    assert_eq!(warnings[0]["position"], json!({"start": 16, "end": 32}));
    assert_eq!(
        edited["policy"]["time_frames"],
        "SAT 00:00-23:59, !SAT 11:00-13:00"
    );
    let (_, stored) = api.get(&format!("/containers/{id}")).await;
    assert_eq!(stored["policy"], edited["policy"]);

    // A policy with nothing to say: no `warnings` at all.
    let (_, clean) = api
        .patch(
            &format!("/containers/{id}"),
            json!({"policy": {"time_frames": "!SAT 11:00-13:00, SAT"}}),
        )
        .await;
    assert!(clean.get("warnings").is_none(), "{clean}");
}

#[tokio::test]
async fn a_saved_rule_comes_with_the_lint_warnings() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let family = api.family("f").await;
    let package = api.package(family, "1", "keep-others").await;
    let computers = api.computer_group("all", &[pc]).await;
    let packages = api.package_group("apps", &[package]).await;
    let (status, created) = api
        .post(
            "/rules",
            json!({"name": "never", "computer_group": computers, "package_group": packages,
                   "policy": {"time_frames": "!MON-SUN, 08:00-09:00"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        kinds(&created["warnings"]),
        ["shadowed", "denies-everything"]
    );
    assert_eq!(created["warnings"][1]["field"], "policy.time_frames");
    assert_eq!(
        created["warnings"][1]["message"],
        "the list denies every time of the week: a job under it is never handed out"
    );
    assert!(created["warnings"][1].get("entry").is_none());
    // The rule exists and made its job.
    let rule = created["rule"]["id"].as_i64().unwrap();
    assert_eq!(api.jobs(&format!("origin=rule:{rule}")).await.len(), 1);

    let (status, edited) = api
        .patch(
            &format!("/rules/{rule}"),
            json!({"policy": {"time_frames": "", "ip_ranges": "0.0.0.0/0, ::/0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["warnings"][0]["kind"], "allows-everything");
    assert_eq!(edited["warnings"][0]["field"], "policy.ip_ranges");
}

#[tokio::test]
async fn explain_gives_the_findings_that_bear_on_the_verdict() {
    let api = Api::new();
    // The lab was meant to be excluded; the negation never applies.
    let (_, job) = deploy(&api, json!({"ip_ranges": "10.0.0.0/8, !10.66.0.0/16"})).await;
    let (_, lab) = api
        .get(&format!("/jobs/{job}/explain?address=10.66.1.1"))
        .await;
    assert_eq!(lab["status"], "deliverable");
    assert_eq!(lab["findings"][0]["kind"], "shadowed");
    assert_eq!(lab["findings"][0]["entry"], 2);
    assert_eq!(lab["findings"][0]["field"], "policy.ip_ranges");
    // Elsewhere in the office the finding changes nothing.
    let (_, office) = api
        .get(&format!("/jobs/{job}/explain?address=10.1.1.1"))
        .await;
    assert_eq!(office["status"], "deliverable");
    assert!(office.get("findings").is_none(), "{office}");
    // A redundant entry never bears on a verdict.
    let (_, job) = deploy(&api, json!({"ip_ranges": "10.1.0.0/16, 10.0.0.0/8"})).await;
    let (_, why) = api
        .get(&format!("/jobs/{job}/explain?address=10.1.1.1"))
        .await;
    assert!(why.get("findings").is_none(), "{why}");

    // Time frames that deny every time of the week: held, and the list says why. Tuesday
    // 12:00 UTC is inside the shadowed window too.
    let (_, job) = deploy(&api, json!({"time_frames": "!MON-SUN, 12:00-13:00"})).await;
    let (_, held) = api.get(&format!("/jobs/{job}/explain")).await;
    assert_eq!(held["status"], "held", "{held}");
    assert_eq!(held["reason"]["reason"], "outside-time-frames");
    assert_eq!(kinds(&held["findings"]), ["shadowed", "denies-everything"]);
    assert_eq!(held["findings"][1]["field"], "policy.time_frames");
    // Outside the shadowed window, only the list's finding bears on it.
    let (_, job) = deploy(&api, json!({"time_frames": "!MON-SUN, 08:00-09:00"})).await;
    let (_, held) = api.get(&format!("/jobs/{job}/explain")).await;
    assert_eq!(held["findings"].as_array().unwrap().len(), 1, "{held}");
    assert_eq!(held["findings"][0]["kind"], "denies-everything");
}
