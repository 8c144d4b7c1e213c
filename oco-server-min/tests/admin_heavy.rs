//! Heavy admin operations run under a bounded number of permits: one beyond them waits, and
//! past the configured wait it is refused with 503, a JSON error and `Retry-After`, while light
//! requests go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oco_core::chrono::{TimeZone, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::{ComputerId, ContainerId, Origin, Revision};
use oco_core::store::{
    testkit, AgentCredentials, ChangeSet, MemoryStore, Page, PlannerSnapshot, Store, StoreResult,
};
use oco_core::Settings;
use oco_server_min::clock::FixedClock;
use oco_server_min::{app, AppState, Secrets, ServerOptions};
use serde_json::Value;
use tower::ServiceExt;

/// A store whose next `job_summary` says it started and waits to be released.
struct Gated {
    inner: MemoryStore,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for Gated {
    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        let entered = self.entered.lock().unwrap().take();
        let release = self.release.lock().unwrap().take();
        if let (Some(entered), Some(release)) = (entered, release) {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        self.inner.job_summary(origin)
    }

    fn hello_snapshot(
        &self,
        hostname: &str,
    ) -> StoreResult<Option<(oco_core::model::Computer, AgentCredentials, PlannerSnapshot)>> {
        self.inner.hello_snapshot(hostname)
    }

    forward! {
        create_computer(c: oco_core::store::NewComputer) -> StoreResult<oco_core::model::Computer>;
        update_computer(c: &oco_core::model::Computer) -> StoreResult<()>;
        delete_computer(id: ComputerId, at: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<Vec<oco_core::model::JobId>>;
        computer(id: ComputerId) -> StoreResult<oco_core::model::Computer>;
        computer_by_hostname(h: &str) -> StoreResult<Option<oco_core::model::Computer>>;
        list_computers(p: Page) -> StoreResult<Vec<oco_core::model::Computer>>;
        set_last_seen(id: ComputerId, at: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<()>;
        credentials(id: ComputerId) -> StoreResult<AgentCredentials>;
        set_credentials(id: ComputerId, c: &AgentCredentials) -> StoreResult<()>;
        server_state() -> StoreResult<oco_core::store::ServerState>;
        set_server_state(s: &oco_core::store::ServerState) -> StoreResult<()>;
        create_family(n: oco_core::model::Name) -> StoreResult<oco_core::model::PackageFamily>;
        family(id: oco_core::model::FamilyId) -> StoreResult<oco_core::model::PackageFamily>;
        list_families(p: Page) -> StoreResult<Vec<oco_core::model::PackageFamily>>;
        create_package(p: oco_core::model::Package) -> StoreResult<oco_core::model::Package>;
        update_package(p: &oco_core::model::Package) -> StoreResult<()>;
        package(id: oco_core::model::PackageId) -> StoreResult<oco_core::model::Package>;
        list_packages(p: Page) -> StoreResult<Vec<oco_core::model::Package>>;
        create_computer_group(n: oco_core::model::Name, p: Option<oco_core::model::ComputerGroupId>) -> StoreResult<oco_core::model::ComputerGroup>;
        set_computer_group_parent(id: oco_core::model::ComputerGroupId, p: Option<oco_core::model::ComputerGroupId>) -> StoreResult<()>;
        set_computer_group_members(id: oco_core::model::ComputerGroupId, m: &[ComputerId]) -> StoreResult<()>;
        computer_groups() -> StoreResult<Vec<(oco_core::model::ComputerGroup, Vec<ComputerId>)>>;
        create_package_group(n: oco_core::model::Name, p: Option<oco_core::model::PackageGroupId>) -> StoreResult<oco_core::model::PackageGroup>;
        set_package_group_parent(id: oco_core::model::PackageGroupId, p: Option<oco_core::model::PackageGroupId>) -> StoreResult<()>;
        set_package_group_members(id: oco_core::model::PackageGroupId, m: &[oco_core::model::PackageId]) -> StoreResult<()>;
        package_groups() -> StoreResult<Vec<(oco_core::model::PackageGroup, Vec<oco_core::model::PackageId>)>>;
        assignments(c: ComputerId) -> StoreResult<(Vec<oco_core::model::Assignment>, Revision)>;
        container(id: oco_core::model::ContainerId) -> StoreResult<oco_core::model::JobContainer>;
        list_containers(p: Page) -> StoreResult<Vec<oco_core::model::JobContainer>>;
        create_rule(r: oco_core::model::DeploymentRule) -> StoreResult<oco_core::model::DeploymentRule>;
        update_rule(r: &oco_core::model::DeploymentRule) -> StoreResult<()>;
        rule(id: oco_core::model::RuleId) -> StoreResult<oco_core::model::DeploymentRule>;
        list_rules(p: Page) -> StoreResult<Vec<oco_core::model::DeploymentRule>>;
        job(id: oco_core::model::JobId) -> StoreResult<oco_core::model::Job>;
        list_jobs(f: &oco_core::store::JobFilter, p: Page) -> StoreResult<Vec<oco_core::model::Job>>;
        planner_snapshot(c: ComputerId) -> StoreResult<PlannerSnapshot>;
        report_snapshot(j: oco_core::model::JobId) -> StoreResult<oco_core::store::ReportSnapshot>;
        deploy_snapshot() -> StoreResult<oco_core::store::DeploySnapshot>;
        rule_snapshot() -> StoreResult<oco_core::store::RuleSnapshot>;
        rule_snapshot_part(p: &oco_core::store::RulePart) -> StoreResult<oco_core::store::RuleSnapshot>;
        delete_rule(id: oco_core::model::RuleId) -> StoreResult<()>;
        housekeeping_snapshot(now: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<oco_core::store::HousekeepingSnapshot>;
        apply(c: &ChangeSet) -> StoreResult<oco_core::store::Applied>;
        apply_many(s: &[ChangeSet]) -> Vec<StoreResult<oco_core::store::Applied>>;
    }
}

async fn get(router: &axum::Router, path: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::get(format!("/api/v1{path}"))
        .header("authorization", "Bearer admin")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_request_beyond_the_permits_waits_then_gets_503() {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store = Arc::new(Gated {
        inner: MemoryStore::new(),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let fixture = testkit::fixture(store.as_ref());
    let job = testkit::job(
        Origin::Container(ContainerId(0)),
        fixture.computers[0].id,
        &fixture.other,
        1,
    );
    let (container, _) = testkit::create_container(store.as_ref(), "c", vec![job]);
    let options = ServerOptions {
        admin_heavy_concurrency: 1,
        admin_heavy_wait: Duration::from_millis(300),
        payload_dir: std::env::temp_dir(),
        ..ServerOptions::default()
    };
    let state = AppState::new(
        store,
        Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
        )),
        Settings::default(),
        options,
        Secrets {
            admin_token: "admin".into(),
            agent_key: "agent-key".into(),
            registration_key: None,
        },
    )
    .unwrap();
    let router = app(state);
    let path = format!("/containers/{container}/statistics");

    // The first holds the only permit until released.
    let first = tokio::spawn({
        let (router, path) = (router.clone(), path.clone());
        async move { get(&router, &path).await }
    });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();

    let (status, retry, body) = get(&router, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "busy", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("waited 0.3 s"), "{message}");
    // Light requests do not wait for heavy ones.
    let (status, _, body) = get(&router, &format!("/containers/{container}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    release_tx.send(()).unwrap();
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counts"]["waiting"], 1);
    let (status, _, body) = get(&router, &path).await;
    assert_eq!(status, StatusCode::OK, "the permit is back: {body}");
}
