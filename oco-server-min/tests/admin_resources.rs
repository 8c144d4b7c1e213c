//! The admin API's resources, one happy path each, paging and payloads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::{error, Api};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest as _;

#[tokio::test]
async fn computers_create_get_list_update_delete() {
    let api = Api::new();
    let (status, pc) = api
        .post(
            "/computers",
            json!({"hostname": "pc1", "os": "Windows", "macs": ["AA-BB-CC-DD-EE-FF", "0011.2233.4455"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pc}");
    assert_eq!(
        pc["macs"],
        json!(["aa:bb:cc:dd:ee:ff", "00:11:22:33:44:55"])
    );
    let id = pc["id"].as_i64().unwrap();

    let (status, got) = api.get(&format!("/computers/{id}")).await;
    assert_eq!((status, &got), (StatusCode::OK, &pc));

    let (status, updated) = api
        .patch(
            &format!("/computers/{id}"),
            json!({"os": "Linux", "architecture": "x86_64"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["os"], "Linux");
    assert_eq!(updated["hostname"], "pc1");

    let (_, list) = api.get("/computers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["architecture"], "x86_64");
    assert_eq!(list["next"], json!(null));

    let (status, deleted) = api.delete(&format!("/computers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted, json!({"unfinished_jobs": []}));
    error(
        &api.get(&format!("/computers/{id}")).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn groups_with_parents_and_members() {
    let api = Api::new();
    let pc1 = api.computer("pc1", "").await;
    let pc2 = api.computer("pc2", "").await;
    let office = api.computer_group("office", &[pc1]).await;
    let (status, floor) = api
        .post(
            "/computer-groups",
            json!({"name": "floor 1", "parent": office}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{floor}");
    let floor = floor["id"].as_i64().unwrap();
    let (status, moved) = api
        .put(
            &format!("/computer-groups/{floor}/parent"),
            json!({"parent": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["parent"], json!(null));
    let (_, members) = api
        .put(
            &format!("/computer-groups/{floor}/members"),
            json!({"members": [pc2, pc1]}),
        )
        .await;
    assert_eq!(members["members"], json!([pc1, pc2]));
    let (_, got) = api.get(&format!("/computer-groups/{office}")).await;
    assert_eq!(
        got,
        json!({"id": office, "name": "office", "parent": null, "members": [pc1]})
    );
    let (_, list) = api.get("/computer-groups").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let family = api.family("editor").await;
    let a = api.package(family, "1", "keep-others").await;
    let b = api.package(family, "2", "keep-others").await;
    let group = api.package_group("tools", &[b, a]).await;
    let (_, got) = api.get(&format!("/package-groups/{group}")).await;
    assert_eq!(
        got["members"],
        json!([b, a]),
        "package groups keep their order"
    );
    let (_, list) = api.get("/package-groups").await;
    assert_eq!(list["items"][0]["name"], "tools");
}

#[tokio::test]
async fn families_and_packages() {
    let api = Api::new();
    let family = api.family("editor").await;
    let (_, got) = api.get(&format!("/package-families/{family}")).await;
    assert_eq!(got, json!({"id": family, "name": "editor"}));
    let (_, families) = api.get("/package-families").await;
    assert_eq!(families["items"].as_array().unwrap().len(), 1);

    let (status, package) = api
        .post(
            "/packages",
            json!({
                "family": family, "version": "1.0",
                "install": {"command": "setup /S", "success_codes": "0, 3010", "post_action": "restart"},
                "compatibility": {"os": ["Windows"]},
                "upgrade_behavior": "implicit-remove",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{package}");
    assert_eq!(package["install"]["success_codes"], "0, 3010");
    assert_eq!(package["uninstall"]["success_codes"], "0");
    assert_eq!(package["payload"], Value::Null);
    let id = package["id"].as_i64().unwrap();

    let (status, updated) = api
        .patch(
            &format!("/packages/{id}"),
            json!({"install": {"command": "setup /quiet", "success_codes": "*"}, "download_for_uninstall": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["install"]["command"], "setup /quiet");
    assert_eq!(updated["install"]["success_codes"], "*");
    let (_, got) = api.get(&format!("/packages/{id}")).await;
    assert_eq!(got, updated);
    let (_, list) = api.get("/packages").await;
    assert_eq!(list["items"][0], updated);
}

#[tokio::test]
async fn payload_upload_and_download_round_trip() {
    let api = Api::new();
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    error(
        &api.get(&format!("/packages/{package}/payload")).await,
        StatusCode::NOT_FOUND,
    );

    let zip = common::zip("setup.exe", b"MZ pretend installer \x00\x01\x02");
    let (status, body) = api
        .raw(
            Method::PUT,
            &format!("/packages/{package}/payload"),
            zip.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (_, got) = api.get(&format!("/packages/{package}")).await;
    assert_eq!(got["payload"]["size"], zip.len());
    assert_eq!(
        got["payload"]["sha256"],
        format!("{:x}", sha2::Sha256::digest(&zip))
    );

    let (status, downloaded) = api
        .raw(
            Method::GET,
            &format!("/packages/{package}/payload"),
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(downloaded, zip);
    let stored = api
        .dir
        .path()
        .join("payloads")
        .join(format!("{package}.zip"));
    assert_eq!(std::fs::read(stored).unwrap(), zip);
    let leftovers = std::fs::read_dir(api.dir.path().join("payloads"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");

    let (status, _) = api
        .raw(
            Method::PUT,
            &format!("/packages/{package}/payload"),
            b"not a zip".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn assignments_by_hand() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, assignment) = api
        .put(
            &format!("/computers/{pc}/assignments/{package}"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assignment}");
    assert_eq!(assignment["job"], json!(null));
    let (_, list) = api.get(&format!("/computers/{pc}/assignments")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["revision"], 1);
    let (status, _) = api
        .delete(&format!("/computers/{pc}/assignments/{package}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = api.get(&format!("/computers/{pc}/assignments")).await;
    assert_eq!(list["items"], json!([]));
    error(
        &api.delete(&format!("/computers/{pc}/assignments/{package}"))
            .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn containers_deploy_edit_enable_renew_uninstall_delete() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "roll-out", "policy": {"priority": 5}},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["container"]["id"].as_i64().unwrap();
    assert_eq!(created["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(created["container"]["policy"]["time_zone"], "UTC");

    let (status, edited) = api
        .patch(
            &format!("/containers/{id}"),
            json!({"name": "roll-out 2", "end": "2026-12-01T00:00:00Z", "notes": "n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["name"], "roll-out 2");
    assert_eq!(edited["schedule"]["end"], "2026-12-01T00:00:00Z");
    let (_, disabled) = api
        .post(&format!("/containers/{id}/disable"), json!(null))
        .await;
    assert_eq!(disabled["enabled"], false);
    let (_, enabled) = api
        .post(&format!("/containers/{id}/enable"), json!(null))
        .await;
    assert_eq!(enabled["enabled"], true);
    let (_, list) = api.get("/containers").await;
    assert_eq!(list["items"][0]["name"], "roll-out 2");

    // Nothing failed yet: nothing to renew.
    let (status, renewed) = api
        .post(&format!("/containers/{id}/renew"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["renewed"], json!([]));
    assert_eq!(renewed["skipped"].as_array().unwrap().len(), 1);

    api.put(
        &format!("/computers/{pc}/assignments/{package}"),
        json!(null),
    )
    .await;
    let (status, uninstall) = api
        .post(
            "/containers/uninstall",
            json!({"container": {"name": "remove"}, "assignments": [{"computer": pc, "package": package}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uninstall}");
    let job = uninstall["jobs"][0]["id"].as_i64().unwrap();
    let (_, job) = api.get(&format!("/jobs/{job}")).await;
    assert_eq!(job["kind"], "uninstall");

    let (status, _) = api.delete(&format!("/containers/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    error(
        &api.get(&format!("/containers/{id}")).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(api.jobs(&format!("origin=container:{id}")).await.len(), 0);
}

#[tokio::test]
async fn paging_walks_every_item_once() {
    let api = Api::new();
    for i in 0..7 {
        api.computer(&format!("pc{i}"), "").await;
    }
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(after) => format!("/computers?limit=3&after={after}"),
            None => "/computers?limit=3".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["hostname"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("pc{i}")).collect::<Vec<_>>());
    let (_, exact) = api.get("/computers?limit=7").await;
    assert_eq!(exact["next"], json!(null), "a full last page has no next");
    error(
        &api.get("/computers?limit=0").await,
        StatusCode::BAD_REQUEST,
    );
    error(
        &api.get("/computers?limit=1001").await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn housekeeping_status_answers() {
    let api = Api::new();
    let (status, _) = api.get("/housekeeping").await;
    assert_eq!(status, StatusCode::OK);
}
