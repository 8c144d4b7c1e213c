//! A success the agent reports is never lost, whatever the administrator deletes: deleting a
//! container, a rule or a computer, or housekeeping's purge, keeps a tombstone of each job, so
//! that a late report is answered and its success recorded once; housekeeping forgets tombstones
//! only after the stale-running expiry. In-process, on both stores, with a fixed clock and
//! signed agent requests.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use oco_core::chrono::{DateTime, Duration, Utc};
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, JobKind, JobState, Name, Origin, Package, PackageFamily,
    PackageGroup, PackageGroupId, PackageId, Revision, RuleId, Schedule, SequenceMode,
};
use oco_core::store::{
    testkit, AgentCredentials, Applied, Change, ChangeSet, DeploySnapshot, HousekeepingSnapshot,
    JobFilter, MemoryStore, NewComputer, Page, PlannerSnapshot, ReportSnapshot, RuleSnapshot,
    ServerState, Store, StoreError, StoreResult,
};
use oco_server_min::clock::Clock;
use oco_server_min::housekeeping::run_once;
use oco_store_sqlite::SqliteStore;
use serde_json::json;

/// The stores every test runs on.
fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite", Arc::new(SqliteStore::open_in_memory().unwrap())),
    ]
}

fn unknown_job(result: Result<bool, AgentError>) -> bool {
    matches!(result, Err(AgentError::Status(400, text)) if text.starts_with("Unknown job"))
}

#[tokio::test]
async fn a_success_reported_after_its_container_was_deleted_is_recorded_once() {
    for (kind, store) in stores() {
        // Arrange: the agent was handed the job and started it.
        let pc = computer(store.as_ref(), "pc1");
        let app = plain_package(store.as_ref(), "app", "exit 0");
        let (cid, jobs) = container(
            store.as_ref(),
            "c1",
            policy(SequenceMode::AbortAfterFailed),
            &[(pc.id, &app)],
        );
        let server = Server::new(store.clone());
        let mut agent = TestAgent::new(server.target(), "pc1");
        assert_eq!(agent.hello().await.unwrap().len(), 1, "{kind}");
        let id = json!(jobs[0].0);
        assert!(!agent.report(&id, 2, None, Some(100), "").await.unwrap());

        // Act: the administrator deletes the container; the agent finishes.
        let (status, _) = server
            .admin("DELETE", &format!("/containers/{}", cid.0))
            .await;
        assert_eq!(status, 204, "{kind}");
        // Neither handed out again nor listed.
        assert!(agent.hello().await.unwrap().is_empty(), "{kind}");
        let (status, listed) = server
            .admin("GET", &format!("/jobs?computer={}", pc.id.0))
            .await;
        assert_eq!((status, &listed["items"]), (200, &json!([])), "{kind}");
        let (status, _) = server.admin("GET", &format!("/jobs/{}", jobs[0].0)).await;
        assert_eq!(status, 404, "{kind}");
        server.clock.advance(Duration::seconds(60));
        let succeeded = agent.report(&id, 3, Some(0), None, "done").await;

        // Assert: answered as a success and recorded, once.
        assert!(succeeded.unwrap(), "{kind}");
        let recorded = Assignment {
            computer: pc.id,
            package: app.id,
            installed_at: now() + Duration::seconds(60),
            job: Some(jobs[0]),
        };
        assert_eq!(
            store.assignments(pc.id).unwrap().0,
            vec![recorded.clone()],
            "{kind}"
        );
        // The agent repeats its report (its reply was lost): nothing moves.
        server.clock.advance(Duration::seconds(60));
        assert!(agent.report(&id, 3, Some(0), None, "done").await.unwrap());
        assert_eq!(
            store.assignments(pc.id).unwrap().0,
            vec![recorded],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_success_reported_after_its_container_was_purged_is_recorded() {
    for (kind, store) in stores() {
        // Arrange: a container ending at 200 whose job the agent started at 100.
        let pc = computer(store.as_ref(), "pc1");
        let app = plain_package(store.as_ref(), "app", "exit 0");
        let (cid, jobs) = container(
            store.as_ref(),
            "c1",
            policy(SequenceMode::IgnoreFailed),
            &[(pc.id, &app)],
        );
        let mut ending = store.container(cid).unwrap();
        ending.schedule = Schedule::new(testkit::at(0), Some(testkit::at(200))).unwrap();
        store
            .apply(&ChangeSet {
                changes: vec![Change::UpdateContainer { container: ending }],
            })
            .unwrap();
        let server = Server::new(store.clone());
        let mut agent = TestAgent::new(server.target(), "pc1");
        assert_eq!(agent.hello().await.unwrap().len(), 1, "{kind}");
        let id = json!(jobs[0].0);
        assert!(!agent.report(&id, 2, None, Some(100), "").await.unwrap());

        // Act: silent for a day after the end, the job expires; two days later its container
        // (failed) is purged; then the agent reports its success.
        server
            .clock
            .set(testkit::at(200) + Duration::hours(24) + Duration::seconds(1));
        let expired = run_once(&server.state, &[]).await.unwrap();
        assert_eq!(expired.summary.expired_stale, 1, "{kind}");
        let purged_at = server.clock.now() + Duration::days(2) + Duration::seconds(1);
        server.clock.set(purged_at);
        let purge = run_once(&server.state, &[]).await.unwrap();
        assert_eq!(purge.summary.purged, 1, "{kind}");
        assert!(matches!(
            store.container(cid),
            Err(StoreError::NotFound { .. })
        ));
        let succeeded = agent.report(&id, 3, Some(0), None, "done").await;

        // Assert: the success overrides the server's expiry, as on a live job.
        assert!(succeeded.unwrap(), "{kind}");
        let (assignments, _) = store.assignments(pc.id).unwrap();
        assert_eq!(
            assignments
                .iter()
                .map(|a| (a.package, a.job))
                .collect::<Vec<_>>(),
            vec![(app.id, Some(jobs[0]))],
            "{kind}"
        );

        // The tombstone lives as long as the longest of the stale expiry and the purge ages
        // (two days by default), then housekeeping forgets it.
        server.clock.set(purged_at + Duration::days(2));
        let kept = run_once(&server.state, &[]).await.unwrap();
        assert!(!kept.summary.tombstones_purged, "{kind}");
        assert!(agent.report(&id, 3, Some(0), None, "done").await.unwrap());
        server
            .clock
            .set(purged_at + Duration::days(2) + Duration::seconds(1));
        let forgotten = run_once(&server.state, &[]).await.unwrap();
        assert!(forgotten.summary.tombstones_purged, "{kind}");
        assert!(
            unknown_job(agent.report(&id, 3, Some(0), None, "done").await),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_job_of_a_deleted_rule_reports_after_the_rule_is_gone() {
    for (kind, store) in stores() {
        // Arrange: a rule with two jobs on pc1, both handed out, the first started.
        let pc = computer(store.as_ref(), "pc1");
        let first = plain_package(store.as_ref(), "first", "exit 0");
        let second = plain_package(store.as_ref(), "second", "exit 0");
        let rule = rule(store.as_ref(), &[pc.id], &[first.id, second.id]);
        let jobs = [(&first, 1), (&second, 2)].map(|(package, sequence)| {
            let mut job = Job::new(Origin::Rule(rule.id), pc.id, package, JobKind::Install, 1);
            job.sequence = sequence;
            Change::InsertJob { job }
        });
        let jobs = store
            .apply(&ChangeSet {
                changes: jobs.to_vec(),
            })
            .unwrap()
            .jobs;
        let server = Server::new(store.clone());
        let mut agent = TestAgent::new(server.target(), "pc1");
        assert_eq!(agent.hello().await.unwrap().len(), 2, "{kind}");
        let [running, waiting] = [json!(jobs[0].0), json!(jobs[1].0)];
        assert!(!agent.report(&running, 2, None, None, "").await.unwrap());

        // Act: the rule is deleted (the running job is orphaned, the waiting one deleted); the
        // running job's success removes the rule with its last job; then the agent runs the
        // second job it was handed.
        let (status, _) = server
            .admin("DELETE", &format!("/rules/{}", rule.id.0))
            .await;
        assert_eq!(status, 204, "{kind}");
        assert!(agent.report(&running, 3, Some(0), None, "").await.unwrap());
        let (status, _) = server.admin("GET", &format!("/rules/{}", rule.id.0)).await;
        assert_eq!(status, 404, "{kind}: the rule went with its last job");
        let started = agent.report(&waiting, 2, None, None, "").await;
        let succeeded = agent.report(&waiting, 3, Some(0), None, "").await;

        // Assert: both installations are recorded.
        assert!(
            !started.unwrap(),
            "{kind}: progress on a tombstone is ignored"
        );
        assert!(succeeded.unwrap(), "{kind}");
        let (assignments, _) = store.assignments(pc.id).unwrap();
        let mut recorded: Vec<_> = assignments.iter().map(|a| (a.package, a.job)).collect();
        recorded.sort();
        assert_eq!(
            recorded,
            vec![(first.id, Some(jobs[0])), (second.id, Some(jobs[1]))],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn deleting_a_computer_names_its_unfinished_jobs_and_keeps_their_tombstones() {
    for (kind, store) in stores() {
        // Arrange: pc1 was handed two jobs and started the first; pc2 has one job too.
        let pc = computer(store.as_ref(), "pc1");
        let other = computer(store.as_ref(), "pc2");
        let app = plain_package(store.as_ref(), "app", "exit 0");
        let tool = plain_package(store.as_ref(), "tool", "exit 0");
        let (_, jobs) = container(
            store.as_ref(),
            "c1",
            policy(SequenceMode::IgnoreFailed),
            &[(pc.id, &app), (pc.id, &tool), (other.id, &app)],
        );
        let server = Server::new(store.clone());
        let mut agent = TestAgent::new(server.target(), "pc1");
        assert_eq!(agent.hello().await.unwrap().len(), 2, "{kind}");
        let id = json!(jobs[0].0);
        assert!(!agent.report(&id, 2, None, None, "").await.unwrap());

        // Act.
        let (status, reply) = server
            .admin("DELETE", &format!("/computers/{}", pc.id.0))
            .await;

        // Assert: the reply names what will not be recorded; the agent can no longer
        // authenticate; the tombstones stay until housekeeping purges them.
        assert_eq!(status, 200, "{kind}: {reply}");
        assert_eq!(
            reply,
            json!({"unfinished_jobs": [jobs[0].0, jobs[1].0]}),
            "{kind}"
        );
        assert!(
            matches!(
                agent.report(&id, 3, Some(0), None, "done").await,
                Err(AgentError::Status(401, text)) if text == "Unknown computer"
            ),
            "{kind}"
        );
        for job in &jobs[..2] {
            assert!(store.report_snapshot(*job).unwrap().deleted, "{kind}");
        }
        assert_eq!(
            store.job(jobs[2]).unwrap().state,
            JobState::Waiting,
            "{kind}: the other computer's job is untouched"
        );
        server
            .clock
            .advance(Duration::days(2) + Duration::seconds(1));
        let run = run_once(&server.state, &[]).await.unwrap();
        assert!(run.summary.tombstones_purged, "{kind}");
        assert!(
            matches!(
                store.report_snapshot(jobs[0]),
                Err(StoreError::NotFound { .. })
            ),
            "{kind}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A computer deleted while its report is handled.

/// A store that deletes a computer right after the next report snapshot has been read: the
/// report was authenticated and read a live job, and then the administrator deleted the
/// computer.
struct DeletesDuringReport {
    inner: MemoryStore,
    doomed: Mutex<Option<(ComputerId, DateTime<Utc>)>>,
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for DeletesDuringReport {
    fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot> {
        let snapshot = self.inner.report_snapshot(job);
        if let Some((computer, at)) = self.doomed.lock().unwrap().take() {
            self.inner.delete_computer(computer, at).unwrap();
        }
        snapshot
    }

    forward! {
        create_computer(c: NewComputer) -> StoreResult<Computer>;
        update_computer(c: &Computer) -> StoreResult<()>;
        delete_computer(id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>>;
        computer(id: ComputerId) -> StoreResult<Computer>;
        computer_by_hostname(h: &str) -> StoreResult<Option<Computer>>;
        list_computers(p: Page) -> StoreResult<Vec<Computer>>;
        set_last_seen(id: ComputerId, at: DateTime<Utc>) -> StoreResult<()>;
        credentials(id: ComputerId) -> StoreResult<AgentCredentials>;
        set_credentials(id: ComputerId, c: &AgentCredentials) -> StoreResult<()>;
        server_state() -> StoreResult<ServerState>;
        set_server_state(s: &ServerState) -> StoreResult<()>;
        create_admin_token(t: oco_core::store::NewAdminToken) -> StoreResult<oco_core::store::AdminToken>;
        list_admin_tokens(p: Page) -> StoreResult<Vec<oco_core::store::AdminToken>>;
        admin_token_by_digest(d: &oco_core::model::Sha256Digest) -> StoreResult<Option<oco_core::store::AdminToken>>;
        delete_admin_token(id: oco_core::model::TokenId) -> StoreResult<()>;
        create_family(n: Name) -> StoreResult<PackageFamily>;
        family(id: FamilyId) -> StoreResult<PackageFamily>;
        list_families(p: Page) -> StoreResult<Vec<PackageFamily>>;
        create_package(p: oco_core::store::NewPackage) -> StoreResult<Package>;
        update_package(p: &Package) -> StoreResult<()>;
        package(id: PackageId) -> StoreResult<Package>;
        list_packages(p: Page) -> StoreResult<Vec<Package>>;
        create_computer_group(n: Name, p: Option<ComputerGroupId>) -> StoreResult<ComputerGroup>;
        set_computer_group_parent(id: ComputerGroupId, p: Option<ComputerGroupId>) -> StoreResult<()>;
        set_computer_group_members(id: ComputerGroupId, m: &[ComputerId]) -> StoreResult<()>;
        computer_groups() -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>>;
        create_package_group(n: Name, p: Option<PackageGroupId>) -> StoreResult<PackageGroup>;
        set_package_group_parent(id: PackageGroupId, p: Option<PackageGroupId>) -> StoreResult<()>;
        set_package_group_members(id: PackageGroupId, m: &[PackageId]) -> StoreResult<()>;
        package_groups() -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>>;
        assignments(c: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)>;
        container(id: ContainerId) -> StoreResult<JobContainer>;
        list_containers(p: Page) -> StoreResult<Vec<JobContainer>>;
        create_rule(r: oco_core::store::NewRule) -> StoreResult<DeploymentRule>;
        update_rule(r: &DeploymentRule) -> StoreResult<()>;
        rule(id: RuleId) -> StoreResult<DeploymentRule>;
        list_rules(p: Page) -> StoreResult<Vec<DeploymentRule>>;
        job(id: JobId) -> StoreResult<Job>;
        list_jobs(f: &JobFilter, p: Page) -> StoreResult<Vec<Job>>;
        planner_snapshot(c: ComputerId) -> StoreResult<PlannerSnapshot>;
        deploy_snapshot() -> StoreResult<DeploySnapshot>;
        rule_snapshot() -> StoreResult<RuleSnapshot>;
        delete_rule(id: RuleId) -> StoreResult<()>;
        housekeeping_snapshot(now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot>;
        apply(c: &ChangeSet) -> StoreResult<Applied>;
        apply_many(s: &[ChangeSet]) -> Vec<StoreResult<Applied>>;
    }
}

#[tokio::test]
async fn a_report_whose_computer_is_deleted_meanwhile_is_unauthorized() {
    // Arrange: the agent started its job.
    let store = Arc::new(DeletesDuringReport {
        inner: MemoryStore::new(),
        doomed: Mutex::new(None),
    });
    let pc = computer(store.as_ref(), "pc1");
    let app = plain_package(store.as_ref(), "app", "exit 0");
    let (_, jobs) = container(
        store.as_ref(),
        "c1",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &app)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    agent.hello().await.unwrap();
    let id = json!(jobs[0].0);
    assert!(!agent.report(&id, 2, None, None, "").await.unwrap());

    // Act: the computer goes while the final report is handled.
    *store.doomed.lock().unwrap() = Some((pc.id, now()));
    let result = agent.report(&id, 3, Some(0), None, "done").await;

    // Assert: refused as the agent's next request will be, and nothing half-written.
    assert!(
        matches!(&result, Err(AgentError::Status(401, text)) if text == "Unknown computer"),
        "{result:?}"
    );
    assert!(store.report_snapshot(jobs[0]).unwrap().deleted);
    assert!(matches!(
        store.computer(pc.id),
        Err(StoreError::NotFound { .. })
    ));
}
