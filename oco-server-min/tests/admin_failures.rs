//! Store failures through the admin API: every store call of an operation failed in turn gives
//! an error status, the server keeps answering, and the store is as it was before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::sync::Arc;

use admin_support::{noon, Api};
use axum::http::StatusCode;
use oco_core::model::{ComputerGroupId, PackageGroupId, PackageId};
use oco_core::rules::{RuleWorld, Scope};
use oco_core::store::testkit::{self, dump};
use oco_core::store::{FailingStore, MemoryStore, NewRule, Store};
use serde_json::{json, Value};

/// What a fixture made: ids the operations name.
struct Ids {
    pc: i64,
    office: ComputerGroupId,
    package: PackageId,
    tools: PackageGroupId,
}

/// A store with two computers, a group, two packages in a group, and a rule whose jobs exist.
fn fixture(with_rule: bool) -> (MemoryStore, Ids) {
    let store = MemoryStore::new();
    let pc1 = store.create_computer(testkit::new_computer("pc1")).unwrap();
    let pc2 = store.create_computer(testkit::new_computer("pc2")).unwrap();
    let family = store.create_family(testkit::name("editor")).unwrap();
    let other = store.create_family(testkit::name("viewer")).unwrap();
    let package = store
        .create_package(testkit::package(family.id, "1", vec![]))
        .unwrap();
    let viewer = store
        .create_package(testkit::package(other.id, "1", vec![]))
        .unwrap();
    let office = store
        .create_computer_group(testkit::name("office"), None)
        .unwrap();
    store
        .set_computer_group_members(office.id, &[pc1.id, pc2.id])
        .unwrap();
    let tools = store
        .create_package_group(testkit::name("tools"), None)
        .unwrap();
    store
        .set_package_group_members(tools.id, &[package.id, viewer.id])
        .unwrap();
    if with_rule {
        let rule = store
            .create_rule(NewRule::new(
                testkit::name("existing"),
                office.id,
                tools.id,
                noon(),
            ))
            .unwrap();
        let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        let diff = world.evaluate(rule.id, &Scope::full(), noon());
        store.apply(&diff.into_change_set()).unwrap();
    }
    let ids = Ids {
        pc: pc1.id.0,
        office: office.id,
        package: package.id,
        tools: tools.id,
    };
    (store, ids)
}

/// Runs `operation` with the n-th store call failing, for n = 1, 2, … until it makes fewer
/// calls than n: each failed run answers an error, leaves the store as it was, and the server
/// still answers. Returns how many calls the operation makes.
async fn fail_each_call<F, Fut>(with_rule: bool, expected_success: StatusCode, operation: F) -> u64
where
    F: Fn(Api, Ids) -> Fut,
    Fut: std::future::Future<Output = (Api, (StatusCode, Value))>,
{
    for n in 1.. {
        let (store, ids) = fixture(with_rule);
        let before = dump(&store);
        // Counted from the request on: the server's start reads the store too.
        let failing = Arc::new(FailingStore::fail_nth(store, 0));
        let api = Api::on(failing.clone());
        failing.restart(n);
        let (api, (status, body)) = operation(api, ids).await;
        if failing.calls() < n {
            assert_eq!(status, expected_success, "without failures: {body}");
            return n - 1;
        }
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "call {n} failed: {body}"
        );
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(
            dump(failing.inner()),
            before,
            "call {n} failed: the store changed"
        );
        let (status, _) = api.get("/computers").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the server answers after call {n} failed"
        );
    }
    unreachable!()
}

#[tokio::test]
async fn a_failing_deploy_writes_nothing() {
    let calls = fail_each_call(false, StatusCode::CREATED, |api, ids| async move {
        let answer = api
            .post(
                "/containers/deploy",
                json!({"container": {"name": "x"}, "computers": [ids.pc], "packages": [ids.package]}),
            )
            .await;
        (api, answer)
    })
    .await;
    assert!(calls >= 2, "{calls}");
}

#[tokio::test]
async fn a_failing_rule_creation_writes_nothing() {
    let calls = fail_each_call(false, StatusCode::CREATED, |api, ids| async move {
        let answer = api
            .post(
                "/rules",
                json!({"name": "new", "computer_group": ids.office, "package_group": ids.tools}),
            )
            .await;
        (api, answer)
    })
    .await;
    assert!(calls >= 4, "{calls}");
}

#[tokio::test]
async fn a_failing_rule_creation_beside_another_rule_writes_nothing() {
    fail_each_call(true, StatusCode::CREATED, |api, ids| async move {
        let answer = api
            .post(
                "/rules",
                json!({"name": "new", "computer_group": ids.office, "package_group": ids.tools}),
            )
            .await;
        (api, answer)
    })
    .await;
}

#[tokio::test]
async fn a_failing_package_update_writes_nothing() {
    let calls = fail_each_call(true, StatusCode::OK, |api, ids| async move {
        let answer = api
            .patch(
                &format!("/packages/{}", ids.package.0),
                json!({"install": {"command": "new setup"}, "upgrade_behavior": "implicit-remove"}),
            )
            .await;
        (api, answer)
    })
    .await;
    assert!(calls >= 5, "{calls}");
}

#[tokio::test]
async fn a_failing_membership_change_writes_nothing() {
    fail_each_call(true, StatusCode::OK, |api, ids| async move {
        let answer = api
            .put(
                &format!("/computer-groups/{}/members", ids.office.0),
                json!({"members": [ids.pc]}),
            )
            .await;
        (api, answer)
    })
    .await;
}
