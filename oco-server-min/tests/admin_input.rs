//! Input hygiene: names on one line and shown as written, hostnames as DNS allows, free text
//! bounded; every refusal a 400 naming the field, and nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{error, Api};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// Posts `body` to `path` and returns the refusal's field and message.
async fn refused(api: &Api, path: &str, body: Value) -> (String, String) {
    let err = error(&api.post(path, body).await, StatusCode::BAD_REQUEST);
    (
        err["field"].as_str().unwrap_or_default().to_owned(),
        err["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn hostnames_with_control_characters_or_beyond_dns_are_refused_naming_the_field() {
    let api = Api::new();
    for (hostname, why) in [
        ("pc\u{0}1", "NUL"),
        ("pc\n1", "line break"),
        ("pc\u{202E}1", "bidirectional"),
        ("pc 1", "letters, digits"),
        ("pc1..corp", "empty label"),
    ] {
        let (field, message) = refused(&api, "/computers", json!({ "hostname": hostname })).await;
        assert_eq!(field, "hostname", "{hostname:?}");
        assert!(message.contains(why), "{hostname:?}: {message}");
    }
    let long_label = "a".repeat(64);
    let (field, message) = refused(&api, "/computers", json!({ "hostname": long_label })).await;
    assert_eq!(field, "hostname");
    assert!(message.contains("DNS allows at most 63"), "{message}");
    let too_long = vec!["a".repeat(63); 4].join(".");
    let (_, message) = refused(&api, "/computers", json!({ "hostname": too_long })).await;
    assert!(message.contains("at most 253 bytes"), "{message}");

    // Nothing was stored; a good hostname of every script still is.
    let (status, list) = api.get("/computers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let id = api.computer("münchen-01.corp", "Windows").await;
    let (_, computer) = api.get(&format!("/computers/{id}")).await;
    assert_eq!(computer["hostname"], "münchen-01.corp");
}

#[tokio::test]
async fn a_renamed_computer_is_checked_as_a_new_one() {
    let api = Api::new();
    let id = api.computer("pc1", "").await;
    let err = error(
        &api.patch(&format!("/computers/{id}"), json!({"hostname": "pc\u{7}1"}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "hostname", "{err}");
    let (_, computer) = api.get(&format!("/computers/{id}")).await;
    assert_eq!(computer["hostname"], "pc1");
}

#[tokio::test]
async fn names_of_every_kind_refuse_reordering_and_control_characters() {
    let api = Api::new();
    let family = api.family("Firefox").await;
    let cases = [
        (
            "/package-families",
            json!({"name": "Fire\u{202E}fox"}),
            "name",
        ),
        (
            "/packages",
            json!({"family": family, "version": "1.0\u{1b}[2J"}),
            "version",
        ),
        ("/computer-groups", json!({"name": "lab\u{2066}"}), "name"),
        ("/package-groups", json!({"name": "ba\rse"}), "name"),
        (
            "/containers/deploy",
            json!({"container": {"name": "roll\u{0}out"}}),
            "container.name",
        ),
    ];
    for (path, body, expected) in cases {
        let (field, message) = refused(&api, path, body.clone()).await;
        assert_eq!(field, expected, "{path} {body}");
        assert!(message.contains("must not contain"), "{path}: {message}");
    }
}

#[tokio::test]
async fn free_text_fields_are_bounded_and_name_the_field() {
    let api = Api::new();
    let pc = api.computer("pc0", "").await;
    let family = api.family("Tools").await;
    let package = api.package(family, "0", "keep-others").await;
    // Notes up to the limit are kept; one character more is refused, whatever the size.
    let notes = "n".repeat(oco_core::model::MAX_NOTES_CHARS);
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "c", "notes": notes},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for notes in [
        "n".repeat(oco_core::model::MAX_NOTES_CHARS + 1),
        "x".repeat(1 << 20),
    ] {
        let (field, message) = refused(
            &api,
            "/containers/deploy",
            json!({"container": {"name": "c2", "notes": notes},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
        assert_eq!(field, "container.notes");
        assert!(message.contains("at most 10000 characters"), "{message}");
    }

    let (field, _) = refused(
        &api,
        "/computers",
        json!({"hostname": "pc1", "os": "Windows\u{0}"}),
    )
    .await;
    assert_eq!(field, "os");
    let (field, _) = refused(
        &api,
        "/computers",
        json!({"hostname": "pc1", "architecture": "x".repeat(256)}),
    )
    .await;
    assert_eq!(field, "architecture");

    let (field, _) = refused(
        &api,
        "/packages",
        json!({"family": family, "version": "1", "install": {"command": "setup.exe\u{0}/S"}}),
    )
    .await;
    assert_eq!(field, "install.command");
    let (field, _) = refused(
        &api,
        "/packages",
        json!({"family": family, "version": "1", "compatibility": {"os": ["Windows", "Linux\n"]}}),
    )
    .await;
    assert_eq!(field, "compatibility.os[1]");
    let (field, message) = refused(
        &api,
        "/computers",
        json!({"hostname": "pc1", "macs": vec!["aa:bb:cc:dd:ee:ff"; 1001]}),
    )
    .await;
    assert_eq!(field, "macs");
    assert!(message.contains("at most 1000 entries"), "{message}");
    // A multi-line command is a command.
    let (status, _) = api
        .post(
            "/packages",
            json!({"family": family, "version": "2", "install": {"command": "a\nb"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Stores `output` as job `id`'s, as a report would.
fn set_output(api: &Api, id: i64, output: &str) {
    use oco_core::model::JobId;
    use oco_core::store::{Change, ChangeSet};
    let stored = api.store.job(JobId(id)).unwrap();
    let mut job = stored.clone();
    job.output = output.to_owned();
    api.store
        .apply(&ChangeSet {
            changes: vec![Change::UpdateJob {
                expected: stored.revision,
                job,
            }],
        })
        .unwrap();
}

#[tokio::test]
async fn listings_show_the_head_of_each_output_and_a_job_shows_it_whole() {
    let sqlite = std::sync::Arc::new(oco_store_sqlite::SqliteStore::open_in_memory().unwrap());
    for api in [Api::new(), Api::on(sqlite)] {
        let pcs = [api.computer("pc1", "").await, api.computer("pc2", "").await];
        let family = api.family("Tools").await;
        let package = api.package(family, "1", "keep-others").await;
        let (status, created) = api
            .post(
                "/containers/deploy",
                json!({"container": {"name": "c"}, "computers": pcs, "packages": [package]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let ids: Vec<i64> = created["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_i64().unwrap())
            .collect();
        let long = format!("{}end", "é".repeat(500_000));
        set_output(&api, ids[0], &long);
        set_output(&api, ids[1], "done");

        let listed = api.jobs("").await;
        assert_eq!(listed[0]["output"], "é".repeat(1_000));
        assert_eq!(listed[0]["output_truncated"], true);
        assert_eq!(listed[1]["output"], "done");
        assert_eq!(listed[1]["output_truncated"], false);
        let listed = api.jobs("output_chars=0").await;
        assert_eq!(listed[1]["output"], "");
        assert_eq!(listed[1]["output_truncated"], true);
        let listed = api.jobs("output_chars=16384").await;
        assert_eq!(
            listed[0]["output"].as_str().unwrap().chars().count(),
            16_384
        );

        let err = error(
            &api.get("/jobs?output_chars=16385").await,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(err["field"], "output_chars");
        let (status, whole) = api.get(&format!("/jobs/{}", ids[0])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(whole["output"], long.as_str());
        assert!(whole.get("output_truncated").is_none());
    }
}
