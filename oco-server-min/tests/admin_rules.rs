//! Deploy and deployment rules through the admin API: jobs, statistics, conflicts, explain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{error, Api};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn deploy_then_list_jobs_then_statistics() {
    let api = Api::new();
    let pc1 = api.computer("pc1", "Windows").await;
    let pc2 = api.computer("pc2", "Linux").await;
    let office = api.computer_group("office", &[pc1, pc2]).await;
    let family = api.family("editor").await;
    let (_, windows_only) = api
        .post(
            "/packages",
            json!({"family": family, "version": "1", "compatibility": {"os": ["Windows"]}}),
        )
        .await;
    let package = windows_only["id"].as_i64().unwrap();
    let container = api
        .create(
            "/containers/deploy",
            json!({"container": {"name": "editor"}, "computer_groups": [office], "packages": [package]}),
        )
        .await;

    let jobs = api.jobs(&format!("origin=container:{container}")).await;
    assert_eq!(jobs.len(), 2);
    let waiting = api
        .jobs(&format!("origin=container:{container}&state=waiting"))
        .await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["computer"], pc1);
    let on_pc2 = api.jobs(&format!("computer={pc2}")).await;
    assert_eq!(on_pc2[0]["state"], "incompatible");
    assert_eq!(
        api.jobs(&format!("package={package}&limit=1")).await.len(),
        1
    );

    let (status, stats) = api
        .get(&format!("/containers/{container}/statistics"))
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["status"], "waiting");
    assert_eq!(stats["counts"]["waiting"], 1);
    assert_eq!(stats["counts"]["incompatible"], 1);
}

#[tokio::test]
async fn rule_creation_makes_jobs_and_membership_changes_follow() {
    let api = Api::new();
    let pc1 = api.computer("pc1", "").await;
    let pc2 = api.computer("pc2", "").await;
    let office = api.computer_group("office", &[pc1]).await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let tools = api.package_group("tools", &[package]).await;

    let (status, created) = api
        .post(
            "/rules",
            json!({"name": "editor everywhere", "computer_group": office, "package_group": tools}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let rule = created["rule"]["id"].as_i64().unwrap();
    assert_eq!(created["evaluations"][0]["inserted"], 1);
    let jobs = api.jobs(&format!("origin=rule:{rule}")).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["computer"], pc1);

    // pc2 joins: it gets the job too; pc1 leaves: its waiting job goes.
    api.put(
        &format!("/computer-groups/{office}/members"),
        json!({"members": [pc1, pc2]}),
    )
    .await;
    assert_eq!(api.jobs(&format!("origin=rule:{rule}")).await.len(), 2);
    api.put(
        &format!("/computer-groups/{office}/members"),
        json!({"members": [pc2]}),
    )
    .await;
    let jobs = api.jobs(&format!("origin=rule:{rule}")).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["computer"], pc2);

    // An assignment by hand turns the job into AlreadyInstalled.
    api.put(
        &format!("/computers/{pc2}/assignments/{package}"),
        json!(null),
    )
    .await;
    assert_eq!(
        api.jobs(&format!("origin=rule:{rule}")).await[0]["state"],
        "already-installed"
    );

    // A package edit refreshes nothing for a finished job, but the rule still has it.
    let (status, _) = api
        .patch(
            &format!("/packages/{package}"),
            json!({"install": {"command": "new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Statistics, on-demand evaluation, disable, delete.
    let (_, stats) = api.get(&format!("/rules/{rule}/statistics")).await;
    assert_eq!(stats["status"], "succeeded");
    assert_eq!(stats["conflicts"], json!([]));
    let (status, evaluated) = api
        .post(&format!("/rules/{rule}/evaluate"), json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{evaluated}");
    assert_eq!(evaluated["evaluations"][0]["inserted"], 0);
    let (_, disabled) = api
        .post(&format!("/rules/{rule}/disable"), json!(null))
        .await;
    assert_eq!(disabled["rule"]["enabled"], false);
    let (_, list) = api.get("/rules").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, _) = api.delete(&format!("/rules/{rule}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.jobs(&format!("origin=rule:{rule}")).await.len(), 0);
    let (_, list) = api.get("/rules").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn package_edits_refresh_waiting_rule_jobs() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let office = api.computer_group("office", &[pc]).await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let tools = api.package_group("tools", &[package]).await;
    api.create(
        "/rules",
        json!({"name": "r", "computer_group": office, "package_group": tools}),
    )
    .await;
    api.patch(
        &format!("/packages/{package}"),
        json!({"install": {"command": "v2 setup"}}),
    )
    .await;
    let jobs = api.jobs("").await;
    assert_eq!(
        jobs[0]["snapshot"]["procedure"]["command"], "v2 setup",
        "{}",
        jobs[0]
    );
}

#[tokio::test]
async fn a_rule_that_would_loop_is_refused_naming_the_conflict() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let office = api.computer_group("office", &[pc]).await;
    let family = api.family("editor").await;
    let v1 = api.package(family, "1", "implicit-remove").await;
    let v2 = api.package(family, "2", "implicit-remove").await;
    let old = api.package_group("old", &[v1]).await;
    let new = api.package_group("new", &[v2]).await;
    api.create(
        "/rules",
        json!({"name": "old", "computer_group": office, "package_group": old}),
    )
    .await;

    let answer = api
        .post(
            "/rules",
            json!({"name": "new", "computer_group": office, "package_group": new}),
        )
        .await;
    let err = error(&answer, StatusCode::CONFLICT);
    assert_eq!(err["code"], "family-conflict");
    let conflict = &err["conflicts"][0];
    assert_eq!(conflict["conflict"], "family-versions");
    assert_eq!(conflict["computer"], pc);
    assert_eq!(conflict["family"], family);
    assert_eq!(conflict["packages"], json!([v1, v2]));
    let (_, rules) = api.get("/rules").await;
    assert_eq!(
        rules["items"].as_array().unwrap().len(),
        1,
        "nothing written"
    );

    // Created disabled it is harmless; enabling it is refused.
    let disabled = api
        .create(
            "/rules",
            json!({"name": "new", "enabled": false, "computer_group": office, "package_group": new}),
        )
        .await;
    error(
        &api.post(&format!("/rules/{disabled}/enable"), json!(null))
            .await,
        StatusCode::CONFLICT,
    );

    // Adding v2 to the old rule's group is refused too.
    error(
        &api.put(
            &format!("/package-groups/{old}/members"),
            json!({"members": [v1, v2]}),
        )
        .await,
        StatusCode::CONFLICT,
    );
}

#[tokio::test]
async fn explain_names_why_a_job_is_held() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    // Tuesday 12:00 UTC: outside the evening window.
    let container = api
        .create(
            "/containers/deploy",
            json!({"container": {"name": "evening", "policy": {"time_frames": "MON-FRI 18:00-06:00"}},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    let job = api.jobs(&format!("origin=container:{container}")).await[0]["id"]
        .as_i64()
        .unwrap();
    let (status, why) = api.get(&format!("/jobs/{job}/explain")).await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["status"], "held");
    assert_eq!(why["reason"]["reason"], "outside-time-frames");
    assert_eq!(why["reason"]["next_open"], "2026-11-24T18:00:00Z");

    // IP ranges: held for an address outside, deliverable inside, undecided without one.
    let ranged = api
        .create(
            "/containers/deploy",
            json!({"container": {"name": "lan", "policy": {"ip_ranges": "10.0.0.0/8"}},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    let job = api.jobs(&format!("origin=container:{ranged}")).await[0]["id"]
        .as_i64()
        .unwrap();
    let (_, outside) = api
        .get(&format!("/jobs/{job}/explain?address=192.168.1.1"))
        .await;
    assert_eq!(outside["reason"]["reason"], "ip-denied");
    let (_, inside) = api
        .get(&format!("/jobs/{job}/explain?address=10.1.2.3"))
        .await;
    assert_eq!(inside["status"], "deliverable");
    let (_, unknown) = api.get(&format!("/jobs/{job}/explain")).await;
    assert_eq!(unknown["status"], "depends-on-address");
}
