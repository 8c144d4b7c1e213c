//! `PATCH` is a JSON merge patch for every resource: absent members stay, nested objects merge,
//! `null` clears an optional field and is refused on a required one. Package dependency cycles
//! are refused when written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{error, Api};
use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{json, Value};

/// A container with every policy field away from its default; its id and JSON.
async fn container(api: &Api) -> (i64, Value) {
    let pc = api.computer("pc1", "").await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {
                       "name": "roll-out", "notes": "first wave", "end": "2026-12-24T00:00:00Z",
                       "policy": {"priority": 1, "sequence_mode": "abort-after-failed",
                                  "ip_ranges": "10.0.0.0/8", "time_frames": "MON-FRI 18:00-06:00",
                                  "time_zone": "Europe/Berlin", "post_action_timeout": 10},
                       "wol": {"wake": true, "shutdown_after": false}},
                   "computers": [pc], "packages": [package]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["container"]["id"].as_i64().unwrap();
    let (_, got) = api.get(&format!("/containers/{id}")).await;
    (id, got)
}

/// `before` with the value at `pointer` replaced by `value`.
fn with(before: &Value, pointer: &str, value: Value) -> Value {
    let mut after = before.clone();
    *after.pointer_mut(pointer).unwrap() = value;
    after
}

#[tokio::test]
async fn a_nested_policy_field_changes_alone() {
    let api = Api::new();
    let (id, before) = container(&api).await;
    let (status, after) = api
        .patch(
            &format!("/containers/{id}"),
            json!({"policy": {"priority": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after, with(&before, "/policy/priority", json!(5)));
    let (_, stored) = api.get(&format!("/containers/{id}")).await;
    assert_eq!(stored, after);

    let (_, after) = api
        .patch(
            &format!("/containers/{id}"),
            json!({"wol": {"shutdown_after": true}}),
        )
        .await;
    assert_eq!(
        after["wol"],
        json!({"wake": true, "shutdown_after": true, "sent_at": null})
    );
    assert_eq!(after["policy"]["ip_ranges"], "10.0.0.0/8");
}

#[tokio::test]
async fn null_clears_an_optional_field_and_is_refused_on_a_required_one() {
    let api = Api::new();
    let (id, before) = container(&api).await;
    let path = format!("/containers/{id}");
    let (status, after) = api
        .patch(
            &path,
            json!({"end": null, "notes": null,
                   "policy": {"ip_ranges": null, "post_action_timeout": null}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    let expected = with(&before, "/schedule/end", Value::Null);
    let expected = with(&expected, "/notes", json!(""));
    let expected = with(&expected, "/policy/ip_ranges", json!(""));
    let expected = with(&expected, "/policy/post_action_timeout", Value::Null);
    assert_eq!(after, expected);

    // A whole nested object set to null takes its defaults (a new policy in the server's zone).
    let (_, after) = api.patch(&path, json!({"policy": null})).await;
    assert_eq!(
        after["policy"],
        json!({"priority": 0, "sequence_mode": "ignore-failed", "ip_ranges": "",
               "time_frames": "", "time_zone": "UTC", "post_action_timeout": 5})
    );

    let err = error(
        &api.patch(&path, json!({"name": null})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "name");
    assert_eq!(err["message"], "is required and cannot be null");
    let (_, unchanged) = api.get(&path).await;
    assert_eq!(unchanged["name"], "roll-out");
}

#[tokio::test]
async fn every_resource_merges_its_nested_objects() {
    let api = Api::new();
    // Computers.
    let (_, pc) = api
        .post(
            "/computers",
            json!({"hostname": "pc1", "os": "Linux", "os_version": "12",
                   "macs": ["aa:bb:cc:dd:ee:01"]}),
        )
        .await;
    let pc_path = format!("/computers/{}", pc["id"]);
    let (status, edited) = api.patch(&pc_path, json!({"os_version": "13"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited, with(&pc, "/os_version", json!("13")));
    let (_, edited) = api.patch(&pc_path, json!({"macs": null})).await;
    assert_eq!(edited["macs"], json!([]));
    assert_eq!(edited["os"], "Linux");
    let err = error(
        &api.patch(&pc_path, json!({"hostname": null})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "hostname");

    // Packages: procedures and compatibility merge.
    let family = api.family("editor").await;
    let (_, package) = api
        .post(
            "/packages",
            json!({"family": family, "version": "1",
                   "install": {"command": "setup /S", "success_codes": "0, 3010",
                               "post_action": "restart"},
                   "compatibility": {"os": ["Windows"], "architecture": ["x64"]}}),
        )
        .await;
    let package_path = format!("/packages/{}", package["id"]);
    let (status, edited) = api
        .patch(
            &package_path,
            json!({"install": {"command": "setup /quiet"}, "compatibility": {"os": ["Linux"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let expected = with(&package, "/install/command", json!("setup /quiet"));
    assert_eq!(
        edited,
        with(&expected, "/compatibility/os", json!(["Linux"]))
    );
    let (_, edited) = api
        .patch(&package_path, json!({"install": {"success_codes": null}}))
        .await;
    assert_eq!(
        edited["install"]["success_codes"], "0",
        "null is the default, 0"
    );
    assert_eq!(edited["install"]["post_action"], "restart");
    for (patch, field) in [
        (json!({"version": null}), "version"),
        (json!({"family": 99}), "family"),
        (
            json!({"install": {"success_codes": ""}}),
            "install.success_codes",
        ),
        (json!({"install": {"shell": "bash"}}), "install.shell"),
    ] {
        let err = error(
            &api.patch(&package_path, patch.clone()).await,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(err["field"], field, "{patch}");
    }

    // Rules: the policy merges.
    let computers = api.computer_group("office", &[]).await;
    let packages = api.package_group("tools", &[]).await;
    let (status, rule) = api
        .post(
            "/rules",
            json!({"name": "tools", "computer_group": computers, "package_group": packages,
                   "policy": {"priority": 3, "time_frames": "SAT", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule = rule["rule"].clone();
    let rule_path = format!("/rules/{}", rule["id"]);
    let (status, edited) = api
        .patch(
            &rule_path,
            json!({"policy": {"sequence_mode": "abort-after-failed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        edited["rule"],
        with(&rule, "/policy/sequence_mode", json!("abort-after-failed"))
    );
    let err = error(
        &api.patch(&rule_path, json!({"computer_group": null})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "computer_group");
    let err = error(
        &api.patch(&rule_path, json!({"policy": {"colour": "red"}}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "policy.colour");
}

#[tokio::test]
async fn a_patch_body_is_an_object() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    for body in [json!([]), json!("pc2"), json!(null), json!(1)] {
        let err = error(
            &api.patch(&format!("/computers/{pc}"), body.clone()).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .starts_with("a PATCH body is a JSON object"),
            "{body}: {err}"
        );
    }
}

#[tokio::test]
async fn dependency_cycles_are_refused_when_written() {
    let api = Api::new();
    let family = api.family("f").await;
    let a = api.package(family, "a", "keep-others").await;
    let (_, b) = api
        .post(
            "/packages",
            json!({"family": family, "version": "b", "dependencies": [a]}),
        )
        .await;
    let b = b["id"].as_i64().unwrap();
    let (_, c) = api
        .post(
            "/packages",
            json!({"family": family, "version": "c", "dependencies": [b]}),
        )
        .await;
    let c = c["id"].as_i64().unwrap();
    let (_, before) = api.get(&format!("/packages/{a}")).await;

    let err = error(
        &api.patch(&format!("/packages/{a}"), json!({"dependencies": [b]}))
            .await,
        StatusCode::CONFLICT,
    );
    assert_eq!(err["field"], "dependencies");
    assert_eq!(
        err["message"],
        format!("dependency cycle: package {a} → {b} → {a}")
    );
    let err = error(
        &api.patch(&format!("/packages/{a}"), json!({"dependencies": [c]}))
            .await,
        StatusCode::CONFLICT,
    );
    assert_eq!(
        err["message"],
        format!("dependency cycle: package {a} → {c} → {b} → {a}")
    );
    let err = error(
        &api.patch(&format!("/packages/{a}"), json!({"dependencies": [a]}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "dependencies");
    assert_eq!(err["message"], "a package cannot depend on itself");
    let (_, after) = api.get(&format!("/packages/{a}")).await;
    assert_eq!(after, before, "nothing was written");

    // The packages still deploy.
    let pc = api.computer("pc1", "").await;
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "all"}, "computers": [pc], "packages": [c]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["jobs"].as_array().unwrap().len(), 3);

    // Adding a dependency that closes no cycle is fine.
    let d = api.package(family, "d", "keep-others").await;
    let (status, edited) = api
        .patch(&format!("/packages/{a}"), json!({"dependencies": [d]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
}

/// One edit of a container: the patch, where its effect shows in the container's JSON, and the
/// value it shows there.
#[derive(Debug, Clone)]
struct Edit {
    patch: Value,
    pointer: &'static str,
    shows: Value,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        "[a-z]{1,12}".prop_map(|name| Edit {
            patch: json!({"name": name}),
            pointer: "/name",
            shows: json!(name)
        }),
        "[a-z ]{0,12}".prop_map(|notes| Edit {
            patch: json!({"notes": notes}),
            pointer: "/notes",
            shows: json!(notes)
        }),
        any::<bool>().prop_map(|enabled| Edit {
            patch: json!({"enabled": enabled}),
            pointer: "/enabled",
            shows: json!(enabled)
        }),
        (-100_i64..=100).prop_map(|priority| Edit {
            patch: json!({"policy": {"priority": priority}}),
            pointer: "/policy/priority",
            shows: json!(priority)
        }),
        prop_oneof![Just("ignore-failed"), Just("abort-after-failed")].prop_map(|mode| Edit {
            patch: json!({"policy": {"sequence_mode": mode}}),
            pointer: "/policy/sequence_mode",
            shows: json!(mode)
        }),
        prop_oneof![Just(""), Just("192.168.0.0/16"), Just("!10.66.0.0/16")].prop_map(|ranges| {
            Edit {
                patch: json!({"policy": {"ip_ranges": ranges}}),
                pointer: "/policy/ip_ranges",
                shows: json!(ranges),
            }
        }),
        prop_oneof![Just(""), Just("SAT"), Just("MON 08:00-12:00")].prop_map(|frames| Edit {
            patch: json!({"policy": {"time_frames": frames}}),
            pointer: "/policy/time_frames",
            shows: json!(frames)
        }),
        prop_oneof![Just("UTC"), Just("America/New_York")].prop_map(|zone| Edit {
            patch: json!({"policy": {"time_zone": zone}}),
            pointer: "/policy/time_zone",
            shows: json!(zone)
        }),
        proptest::option::of(0_u32..60).prop_map(|timeout| Edit {
            patch: json!({"policy": {"post_action_timeout": timeout}}),
            pointer: "/policy/post_action_timeout",
            shows: json!(timeout)
        }),
        any::<bool>().prop_map(|wake| Edit {
            patch: json!({"wol": {"wake": wake}}),
            pointer: "/wol/wake",
            shows: json!(wake)
        }),
        any::<bool>().prop_map(|shutdown| Edit {
            patch: json!({"wol": {"shutdown_after": shutdown}}),
            pointer: "/wol/shutdown_after",
            shows: json!(shutdown)
        }),
        any::<bool>().prop_map(|flag| Edit {
            patch: json!({"self_service": flag}),
            pointer: "/self_service",
            shows: json!(flag)
        }),
        proptest::option::of(Just("2027-01-01T00:00:00Z")).prop_map(|end| Edit {
            patch: json!({"end": end}),
            pointer: "/schedule/end",
            shows: json!(end)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For every container: an empty patch changes nothing, and a patch of one field changes
    /// that field and leaves every other equal.
    #[test]
    fn one_field_changes_and_nothing_else(edits in prop::collection::vec(edit(), 1..4)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let api = Api::new();
            let (id, mut before) = container(&api).await;
            let path = format!("/containers/{id}");
            let (status, same) = api.patch(&path, json!({})).await;
            assert_eq!(status, StatusCode::OK, "{same}");
            assert_eq!(same, before);
            for edit in edits {
                let (status, after) = api.patch(&path, edit.patch.clone()).await;
                assert_eq!(status, StatusCode::OK, "{edit:?}: {after}");
                assert_eq!(after, with(&before, edit.pointer, edit.shows.clone()), "{edit:?}");
                before = after;
            }
            let (_, stored) = api.get(&path).await;
            assert_eq!(stored, before);
        });
    }
}
