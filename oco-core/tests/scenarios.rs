//! End-to-end scenarios: the whole core driven through `MemoryStore` the way a server drives it,
//! with a fixed clock. Deploys, agent polls, agent reports and housekeeping runs all read a
//! snapshot from the store, decide with the core, and apply the decided change set.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::deploy::{deploy, renew_in_place, ContainerSettings, DeployRequest};
use oco_core::housekeeping::{
    container_statistics, housekeeping, ContainerStatistics, ContainerStatus, Effect, Housekeeping,
    Runtime,
};
use oco_core::model::{
    Assignment, Compatibility, ComputerId, ContainerId, DeliveryPolicy, FamilyId, Job, JobId,
    JobKind, JobState, MacAddress, MessageCode, Name, Origin, Package, PackageId, Payload,
    PostAction, Priority, Procedure, Schedule, SequenceMode, Sha256Digest, UpgradeBehavior,
    WolSettings, WolShutdown,
};
use oco_core::plan::{plan, HoldReason, PostActionOrder};
use oco_core::report::{
    apply_report, AgentReport, Disposition, IgnoredReport, ReportOutcome, ReportedState,
};
use oco_core::store::{
    Change, ChangeSet, FailingStore, JobFilter, MemoryStore, NewComputer, NewPackage, Page, Store,
    StoreError,
};
use oco_core::Settings;

// ---- fixture -----------------------------------------------------------------------------------

/// The fixed clock: 2026-03-02 08:00 UTC plus `minutes`.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// The address every agent polls from.
fn agent_addr() -> IpAddr {
    "10.20.30.40".parse().unwrap()
}

fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

/// A package of `family` to create: install/uninstall commands naming the version, only 0 counts
/// as success, no post action, keep-others, compatible with everything.
fn package(family: FamilyId, version: &str) -> NewPackage {
    NewPackage::new(
        family,
        Name::new("version", version).unwrap(),
        Procedure::new(format!("install {version}")),
    )
    .with_uninstall(Procedure::new(format!("uninstall {version}")))
    .with_payload(Payload::new(4096, Sha256Digest([0x5a; 32])))
}

/// A deploy of `packages` on `computers`: enabled, starting at `start`, no end, priority 0,
/// failures ignored, no WOL, not forced.
fn request(
    title: &str,
    start: DateTime<Utc>,
    computers: &[ComputerId],
    packages: &[&Package],
) -> DeployRequest {
    DeployRequest {
        container: ContainerSettings {
            name: name(title),
            notes: String::new(),
            enabled: true,
            schedule: Schedule::new(start, None).unwrap(),
            policy: DeliveryPolicy::new(Tz::UTC),
            wol: WolSettings::default(),
            self_service: false,
        },
        computers: computers.to_vec(),
        computer_groups: Vec::new(),
        packages: packages.iter().map(|p| p.id).collect(),
        package_groups: Vec::new(),
        force_reinstall: false,
    }
}

/// A report of job `job` (attempt 1) with OCO's wire state `state` and `return_code`.
fn agent_report(job: JobId, state: i64, return_code: Option<i64>) -> AgentReport {
    AgentReport {
        job,
        attempt: 1,
        state: ReportedState::from_wire_code(state).unwrap(),
        return_code,
        download_progress: None,
        output: Some(format!("state {state}")),
    }
}

/// What one poll handed out (job, post action) and held (job, reason), in plan order.
#[derive(Debug)]
struct Poll {
    deliver: Vec<(JobId, Option<PostActionOrder>)>,
    held: Vec<(JobId, HoldReason)>,
}

impl Poll {
    fn ids(&self) -> Vec<JobId> {
        self.deliver.iter().map(|(id, _)| *id).collect()
    }

    fn post_action_of(&self, job: JobId) -> Option<PostActionOrder> {
        self.deliver
            .iter()
            .find(|(id, _)| *id == job)
            .unwrap_or_else(|| panic!("job {job} was not handed out: {self:?}"))
            .1
    }
}

/// A store with the server's loop around it: each step reads a snapshot, lets the core decide
/// and applies the decision.
struct Fleet<S = MemoryStore> {
    store: S,
    settings: Settings,
}

impl Fleet {
    fn new() -> Self {
        Fleet {
            store: MemoryStore::new(),
            settings: Settings::default(),
        }
    }
}

impl<S: Store> Fleet<S> {
    /// A Windows 11 x64 computer with one MAC, last seen at `last_seen` (`None`: never).
    fn computer(&self, hostname: &str, mac: &str, last_seen: Option<DateTime<Utc>>) -> ComputerId {
        let computer = self
            .store
            .create_computer(NewComputer {
                hostname: name(hostname),
                os: "Windows".into(),
                os_version: "11".into(),
                architecture: "x64".into(),
                macs: vec![mac.parse().unwrap()],
            })
            .unwrap();
        if let Some(seen) = last_seen {
            self.store.set_last_seen(computer.id, seen).unwrap();
        }
        computer.id
    }

    fn family(&self, title: &str) -> FamilyId {
        self.store.create_family(name(title)).unwrap().id
    }

    fn package(&self, package: NewPackage) -> Package {
        self.store.create_package(package).unwrap()
    }

    /// Records by hand (no job) that `package` is installed on `computer`.
    fn assign(&self, computer: ComputerId, package: &Package, installed_at: DateTime<Utc>) {
        self.store
            .apply(&ChangeSet {
                changes: vec![Change::UpsertAssignment {
                    assignment: Assignment {
                        computer,
                        package: package.id,
                        installed_at,
                        job: None,
                    },
                }],
            })
            .unwrap();
    }

    /// Deploys at `now`; the new container and its jobs in creation order.
    fn deploy(&self, request: &DeployRequest, now: DateTime<Utc>) -> (ContainerId, Vec<JobId>) {
        let snapshot = self.store.deploy_snapshot().unwrap();
        let changes = deploy(request, &snapshot, now).unwrap();
        let applied = self.store.apply(&changes).unwrap();
        (applied.containers[0], applied.jobs)
    }

    /// The agent of `computer` polls at `now`; the poll's writes are applied.
    fn poll(&self, computer: ComputerId, now: DateTime<Utc>) -> Poll {
        let snapshot = self.store.planner_snapshot(computer).unwrap();
        let plan = plan(&snapshot, now, agent_addr(), &self.settings);
        self.store.apply(&plan.changes).unwrap();
        Poll {
            deliver: plan
                .deliver
                .iter()
                .map(|d| (d.job.id, d.post_action))
                .collect(),
            held: plan
                .held
                .iter()
                .map(|h| (h.job.id, h.reason.clone()))
                .collect(),
        }
    }

    /// The agent of `computer` sends `report` at `now`; the outcome's changes are applied.
    fn report(
        &self,
        computer: ComputerId,
        report: &AgentReport,
        now: DateTime<Utc>,
    ) -> Disposition {
        let snapshot = self.store.report_snapshot(report.job).unwrap();
        let outcome = apply_report(&snapshot, computer, report, now).unwrap();
        self.store.apply(&outcome.changes).unwrap();
        outcome.disposition
    }

    /// A housekeeping run at `now`; its changes are applied.
    fn housekeep(&self, now: DateTime<Utc>) -> Housekeeping {
        let snapshot = self.store.housekeeping_snapshot(now).unwrap();
        let run = housekeeping(now, &snapshot, &self.settings);
        self.store.apply(&run.changes).unwrap();
        run
    }

    fn job(&self, id: JobId) -> Job {
        self.store.job(id).unwrap()
    }

    fn jobs(&self, container: ContainerId) -> Vec<Job> {
        let filter = JobFilter {
            origin: Some(Origin::Container(container)),
            ..JobFilter::default()
        };
        self.store.list_jobs(&filter, Page::first(1000)).unwrap()
    }

    /// The packages assigned to `computer`, by id.
    fn assigned(&self, computer: ComputerId) -> Vec<PackageId> {
        let mut packages: Vec<PackageId> = self
            .store
            .assignments(computer)
            .unwrap()
            .0
            .iter()
            .map(|a| a.package)
            .collect();
        packages.sort();
        packages
    }

    fn statistics(&self, container: ContainerId, now: DateTime<Utc>) -> ContainerStatistics {
        let stored = self.store.container(container).unwrap();
        container_statistics(&stored, &self.jobs(container), now)
    }
}

fn applied() -> Disposition {
    Disposition::Applied
}

// ---- delivery order ----------------------------------------------------------------------------

#[test]
fn higher_priority_first_then_equal_priority_containers_as_blocks_oldest_first() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let tools = fleet.family("Tools");
    let [a1, a2, b1, b2, c1, c2] =
        ["a1", "a2", "b1", "b2", "c1", "c2"].map(|v| fleet.package(package(tools, v)));
    let (_, older) = fleet.deploy(&request("Older", at(0), &[pc], &[&a1, &a2]), at(0));
    let (_, newer) = fleet.deploy(&request("Newer", at(0), &[pc], &[&b1, &b2]), at(1));
    let mut urgent = request("Urgent", at(0), &[pc], &[&c1, &c2]);
    urgent.container.policy.priority = Priority::new(10).unwrap();
    let (_, urgent) = fleet.deploy(&urgent, at(2));

    let poll = fleet.poll(pc, at(3));

    // OCO sorts by (priority, sequence) and would hand out c1 c2 a1 b1 a2 b2.
    assert_eq!(
        poll.ids(),
        [urgent[0], urgent[1], older[0], older[1], newer[0], newer[1]]
    );
    assert!(poll.held.is_empty(), "{:?}", poll.held);

    // Once the urgent container is done, the older block still comes before the newer one.
    for &job in &urgent {
        assert_eq!(
            fleet.report(pc, &agent_report(job, 3, Some(0)), at(4)),
            applied()
        );
    }
    assert_eq!(
        fleet.poll(pc, at(5)).ids(),
        [older[0], older[1], newer[0], newer[1]]
    );
}

// ---- sequence mode -----------------------------------------------------------------------------

#[test]
fn abort_after_failed_aborts_only_the_failing_computers_later_jobs() {
    let fleet = Fleet::new();
    let pc_a = fleet.computer("pc-a", "02:00:00:00:00:0a", None);
    let pc_b = fleet.computer("pc-b", "02:00:00:00:00:0b", None);
    let suite = fleet.family("Suite");
    let [p1, p2, p3] = ["1", "2", "3"].map(|v| fleet.package(package(suite, v)));
    let mut rollout = request("Rollout", at(0), &[pc_a, pc_b], &[&p1, &p2, &p3]);
    rollout.container.policy.sequence_mode = SequenceMode::AbortAfterFailed;
    let (_, jobs) = fleet.deploy(&rollout, at(0));
    let (a, b) = jobs.split_at(3);
    assert_eq!(fleet.poll(pc_a, at(1)).ids(), a);

    // Computer A's first job ends with a code the package does not accept.
    let disposition = fleet.report(pc_a, &agent_report(a[0], 3, Some(1603)), at(2));

    assert_eq!(disposition, applied());
    let failed = fleet.job(a[0]);
    assert_eq!(
        (failed.state, failed.return_code, failed.message),
        (
            JobState::Failed,
            Some(1603),
            Some(MessageCode::ReturnCodeRejected)
        )
    );
    for &id in &a[1..] {
        let aborted = fleet.job(id);
        assert_eq!(
            (
                aborted.state,
                aborted.return_code,
                aborted.message,
                aborted.finished
            ),
            (
                JobState::Failed,
                Some(-8888),
                Some(MessageCode::AbortedAfterFailed),
                Some(at(2))
            ),
            "job {id}"
        );
        assert_eq!(
            aborted.message.unwrap().as_str(),
            "aborted-after-failed",
            "job {id}"
        );
    }
    let next = fleet.poll(pc_a, at(3));
    assert!(next.deliver.is_empty() && next.held.is_empty(), "{next:?}");

    // Computer B is untouched and gets all its jobs.
    for &id in b {
        let job = fleet.job(id);
        assert_eq!(
            (job.state, job.return_code, job.finished),
            (JobState::Waiting, None, None),
            "job {id}"
        );
    }
    assert_eq!(fleet.poll(pc_b, at(3)).ids(), b);

    // A's agent ran job 2 anyway and reports success: recorded, with its assignment.
    assert_eq!(fleet.assigned(pc_a), []);
    let late = fleet.report(pc_a, &agent_report(a[1], 3, Some(0)), at(4));

    assert_eq!(late, applied());
    let recorded = fleet.job(a[1]);
    assert_eq!(
        (
            recorded.state,
            recorded.return_code,
            recorded.message,
            recorded.finished
        ),
        (JobState::Succeeded, Some(0), None, Some(at(4)))
    );
    assert_eq!(fleet.assigned(pc_a), [p2.id]);
    assert_eq!(
        fleet.job(a[2]).state,
        JobState::Failed,
        "job 3 stays aborted"
    );
}

// ---- late and out-of-order reports -------------------------------------------------------------

#[test]
fn late_duplicate_and_earlier_attempt_reports_change_nothing_in_the_store() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let app = fleet.family("App");
    let [p1, p2] = ["1", "2"].map(|v| fleet.package(package(app, v)));
    let (_, jobs) = fleet.deploy(&request("Apps", at(0), &[pc], &[&p1, &p2]), at(0));
    let (done, retried) = (jobs[0], jobs[1]);
    fleet.poll(pc, at(1));
    assert_eq!(
        fleet.report(pc, &agent_report(done, 2, None), at(2)),
        applied()
    );
    assert_eq!(
        fleet.report(pc, &agent_report(done, 3, Some(0)), at(3)),
        applied()
    );
    let finished = fleet.job(done);
    assert_eq!(
        (
            finished.state,
            finished.execution_started,
            finished.finished
        ),
        (JobState::Succeeded, Some(at(2)), Some(at(3)))
    );

    // State 2 arriving after state 3.
    let late = fleet.report(pc, &agent_report(done, 2, None), at(4));
    assert_eq!(
        late,
        Disposition::Ignored(IgnoredReport::AlreadyFinal {
            state: JobState::Succeeded
        })
    );
    assert_eq!(
        fleet.job(done),
        finished,
        "nothing changed, revision included"
    );

    // The final report again, with another code.
    let duplicate = fleet.report(pc, &agent_report(done, -1, Some(-9999)), at(5));
    assert_eq!(
        duplicate,
        Disposition::Ignored(IgnoredReport::AlreadyFinal {
            state: JobState::Succeeded
        })
    );
    assert_eq!(fleet.job(done), finished);

    // The second job fails and is renewed in place.
    fleet.report(pc, &agent_report(retried, -1, Some(-9999)), at(6));
    let failed = fleet.job(retried);
    assert_eq!(failed.state, JobState::Failed);
    let snapshot = fleet.store.deploy_snapshot().unwrap();
    let renewal = renew_in_place(&[failed], &snapshot.packages, &snapshot.computers);
    assert_eq!(renewal.renewed, [retried]);
    fleet.store.apply(&renewal.changes).unwrap();
    let renewed = fleet.job(retried);
    assert_eq!((renewed.state, renewed.attempt), (JobState::Waiting, 2));

    // A late success of the first attempt.
    let stale = fleet.report(pc, &agent_report(retried, 3, Some(0)), at(7));

    assert_eq!(
        stale,
        Disposition::Ignored(IgnoredReport::EarlierAttempt { current: 2 })
    );
    assert_eq!(fleet.job(retried), renewed, "still Waiting, unchanged");
    assert_eq!(
        fleet.assigned(pc),
        [p1.id],
        "no assignment for the stale report"
    );
    assert_eq!(fleet.poll(pc, at(8)).ids(), [retried]);
}

// ---- upgrade behaviours ------------------------------------------------------------------------

/// A fleet with one computer on which `v1` of a family was installed by a deploy, and `v2` of the
/// same family with `behavior`.
fn upgrade_fixture(behavior: UpgradeBehavior) -> (Fleet, ComputerId, Package, Package) {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let browser = fleet.family("Browser");
    let v1 = fleet.package(package(browser, "1.0"));
    let v2 = fleet.package(NewPackage {
        upgrade_behavior: behavior,
        ..package(browser, "2.0")
    });
    let (_, jobs) = fleet.deploy(&request("v1", at(0), &[pc], &[&v1]), at(0));
    fleet.poll(pc, at(1));
    fleet.report(pc, &agent_report(jobs[0], 3, Some(0)), at(2));
    assert_eq!(fleet.assigned(pc), [v1.id]);
    (fleet, pc, v1, v2)
}

#[test]
fn implicit_remove_upgrade_leaves_only_the_new_version_assigned() {
    let (fleet, pc, v1, v2) = upgrade_fixture(UpgradeBehavior::ImplicitRemove);
    let (_, jobs) = fleet.deploy(&request("v2", at(10), &[pc], &[&v2]), at(10));
    assert_eq!(jobs.len(), 1, "no uninstall job");
    assert_eq!(fleet.poll(pc, at(11)).ids(), jobs);
    fleet.report(pc, &agent_report(jobs[0], 2, None), at(12));
    assert_eq!(fleet.assigned(pc), [v1.id], "v1 stays until v2 succeeds");

    fleet.report(pc, &agent_report(jobs[0], 3, Some(0)), at(13));

    assert_eq!(fleet.assigned(pc), [v2.id]);
}

#[test]
fn explicit_uninstall_upgrade_uninstalls_the_old_version_first() {
    let (fleet, pc, v1, v2) = upgrade_fixture(UpgradeBehavior::ExplicitUninstall);

    let (_, jobs) = fleet.deploy(&request("v2", at(10), &[pc], &[&v2]), at(10));

    let [uninstall, install] = [fleet.job(jobs[0]), fleet.job(jobs[1])];
    assert_eq!(
        (uninstall.kind, uninstall.package, uninstall.sequence),
        (JobKind::Uninstall, v1.id, 1)
    );
    assert_eq!(uninstall.snapshot.procedure.command, "uninstall 1.0");
    assert_eq!(
        (install.kind, install.package, install.sequence),
        (JobKind::Install, v2.id, 2)
    );
    assert_eq!(fleet.poll(pc, at(11)).ids(), [uninstall.id, install.id]);

    fleet.report(pc, &agent_report(uninstall.id, 3, Some(0)), at(12));
    assert_eq!(fleet.assigned(pc), [], "v1 uninstalled");
    fleet.report(pc, &agent_report(install.id, 3, Some(0)), at(13));

    assert_eq!(fleet.assigned(pc), [v2.id]);
}

// ---- Wake-on-LAN -------------------------------------------------------------------------------

#[test]
fn wake_on_lan_marks_offline_computers_and_the_first_poll_settles_the_mark() {
    let fleet = Fleet::new();
    // X was last seen an hour ago, Y never, Z half a minute ago; W has everything installed.
    let x = fleet.computer("x", "02:00:00:00:00:01", Some(at(-60)));
    let y = fleet.computer("y", "02:00:00:00:00:02", None);
    let z = fleet.computer(
        "z",
        "02:00:00:00:00:03",
        Some(at(0) - Duration::seconds(30)),
    );
    let w = fleet.computer("w", "02:00:00:00:00:04", None);
    let office = fleet.family("Office");
    let tool = fleet.family("Tool");
    let first = fleet.package(package(office, "1"));
    let mut last = package(tool, "1");
    last.install.post_action = PostAction::ExitAgent;
    let last = fleet.package(last);
    fleet.assign(w, &first, at(-100));
    fleet.assign(w, &last, at(-100));
    let mut night = request("Night", at(0), &[x, y, z, w], &[&first, &last]);
    night.container.wol = WolSettings {
        wake: true,
        shutdown_after: true,
        sent_at: None,
    };
    let (container, jobs) = fleet.deploy(&night, at(-10));
    let job_of = |computer, sequence| {
        let job = fleet
            .jobs(container)
            .into_iter()
            .find(|j| j.computer == computer && j.sequence == sequence)
            .unwrap();
        job.id
    };
    assert_eq!(jobs.len(), 8);

    let run = fleet.housekeep(at(0));

    let mac = |text: &str| text.parse::<MacAddress>().unwrap();
    assert_eq!(
        run.effects,
        [Effect::Wake {
            container,
            macs: vec![
                mac("02:00:00:00:00:01"),
                mac("02:00:00:00:00:02"),
                mac("02:00:00:00:00:03")
            ],
        }]
    );
    assert_eq!((run.summary.wakes, run.summary.shutdown_marks), (1, 2));
    let pending = Some(WolShutdown::Pending { since: at(0) });
    for (computer, sequence, mark) in [
        (x, 1, None),
        (x, 2, pending),
        (y, 1, None),
        (y, 2, pending),
        (z, 1, None),
        (z, 2, None),
    ] {
        assert_eq!(
            fleet.job(job_of(computer, sequence)).wol_shutdown,
            mark,
            "computer {computer} sequence {sequence}"
        );
    }
    assert_eq!(
        fleet.store.container(container).unwrap().wol.sent_at,
        Some(at(0))
    );
    assert!(fleet.housekeep(at(1)).effects.is_empty(), "woken once");

    // X comes up two minutes after the packets: woken by WOL, so it is shut down afterwards.
    let shutdown = Some(PostActionOrder {
        action: PostAction::Shutdown,
        timeout_minutes: 5,
    });
    let poll_x = fleet.poll(x, at(2));
    assert_eq!(poll_x.ids(), [job_of(x, 1), job_of(x, 2)]);
    assert_eq!(poll_x.post_action_of(job_of(x, 1)), None);
    assert_eq!(poll_x.post_action_of(job_of(x, 2)), shutdown);
    assert_eq!(
        fleet.job(job_of(x, 2)).wol_shutdown,
        Some(WolShutdown::Confirmed)
    );
    assert_eq!(
        fleet.poll(x, at(20)).post_action_of(job_of(x, 2)),
        shutdown,
        "a later poll keeps the shutdown"
    );

    // Y first polls ten minutes later: someone switched it on, it keeps its own post action.
    let poll_y = fleet.poll(y, at(10));
    assert_eq!(
        poll_y.post_action_of(job_of(y, 2)),
        Some(PostActionOrder {
            action: PostAction::ExitAgent,
            timeout_minutes: 5,
        })
    );
    assert_eq!(fleet.job(job_of(y, 2)).wol_shutdown, None);
}

// ---- expiry and purge --------------------------------------------------------------------------

#[test]
fn ended_container_expires_waiting_jobs_lets_running_ones_finish_then_is_purged() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let app = fleet.family("App");
    let [p1, p2] = ["1", "2"].map(|v| fleet.package(package(app, v)));
    let mut window = request("Window", at(0), &[pc], &[&p1, &p2]);
    window.container.schedule = Schedule::new(at(0), Some(at(60))).unwrap();
    let (container, jobs) = fleet.deploy(&window, at(0));
    let (running, waiting) = (jobs[0], jobs[1]);
    assert_eq!(fleet.poll(pc, at(10)).ids(), jobs);
    fleet.report(pc, &agent_report(running, 2, None), at(15));

    let run = fleet.housekeep(at(60));

    assert_eq!(
        (
            run.summary.expired,
            run.summary.expired_stale,
            run.summary.purged
        ),
        (1, 0, 0)
    );
    let expired = fleet.job(waiting);
    assert_eq!(
        (expired.state, expired.message, expired.finished),
        (JobState::Expired, Some(MessageCode::Expired), Some(at(60)))
    );
    assert_eq!(fleet.job(running).state, JobState::Executing);
    let after_end = fleet.poll(pc, at(61));
    assert_eq!(
        after_end.ids(),
        [running],
        "the running job is handed out again"
    );
    assert!(after_end.held.is_empty(), "{:?}", after_end.held);
    assert_eq!(
        fleet.report(pc, &agent_report(running, 3, Some(0)), at(70)),
        applied()
    );
    assert_eq!(fleet.job(running).state, JobState::Succeeded);
    assert_eq!(fleet.assigned(pc), [p1.id]);
    assert_eq!(
        fleet.statistics(container, at(70)).status,
        ContainerStatus::Failed
    );

    // Failed status: kept for purge_failed_after (2 days), not purge_succeeded_after (4 h).
    let finished = at(70);
    for not_yet in [
        finished + Duration::hours(4) + Duration::seconds(1),
        finished + Duration::days(2),
    ] {
        assert_eq!(fleet.housekeep(not_yet).summary.purged, 0, "{not_yet}");
        assert!(fleet.store.container(container).is_ok(), "{not_yet}");
    }
    let run = fleet.housekeep(finished + Duration::days(2) + Duration::seconds(1));

    assert_eq!(run.summary.purged, 1);
    assert!(matches!(
        fleet.store.container(container),
        Err(StoreError::NotFound { .. })
    ));
    assert!(fleet.jobs(container).is_empty());
    assert!(matches!(
        fleet.store.job(running),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(fleet.assigned(pc), [p1.id], "assignments outlive the purge");
}

#[test]
fn succeeded_container_is_purged_after_purge_succeeded_after_not_before() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let app = fleet.family("App");
    let p1 = fleet.package(package(app, "1"));
    let (container, jobs) = fleet.deploy(&request("Quick", at(0), &[pc], &[&p1]), at(0));
    fleet.poll(pc, at(1));
    assert_eq!(fleet.housekeep(at(2)).summary.purged, 0, "pending jobs");
    fleet.report(pc, &agent_report(jobs[0], 3, Some(0)), at(10));
    assert_eq!(
        fleet.statistics(container, at(10)).status,
        ContainerStatus::Succeeded
    );

    let kept = fleet.housekeep(at(10) + Duration::hours(4));
    let purged = fleet.housekeep(at(10) + Duration::hours(4) + Duration::seconds(1));

    assert_eq!((kept.summary.purged, purged.summary.purged), (0, 1));
    assert!(fleet.store.container(container).is_err());
}

// ---- server-finalised jobs at deploy -----------------------------------------------------------

#[test]
fn already_installed_and_incompatible_jobs_take_sequences_are_never_handed_out_and_are_counted() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let [installed_family, linux_family, new_family] =
        ["Installed", "LinuxOnly", "New"].map(|f| fleet.family(f));
    let installed = fleet.package(package(installed_family, "1"));
    let linux_only = fleet.package(NewPackage {
        compatibility: Compatibility {
            os: vec!["Linux".into()],
            ..Compatibility::default()
        },
        ..package(linux_family, "1")
    });
    let fresh = fleet.package(package(new_family, "1"));
    fleet.assign(pc, &installed, at(-100));

    let (container, jobs) = fleet.deploy(
        &request("Mixed", at(0), &[pc], &[&installed, &linux_only, &fresh]),
        at(0),
    );

    let states: Vec<(u32, JobState)> = jobs
        .iter()
        .map(|&id| {
            let job = fleet.job(id);
            (job.sequence, job.state)
        })
        .collect();
    assert_eq!(
        states,
        [
            (1, JobState::AlreadyInstalled),
            (2, JobState::Incompatible),
            (3, JobState::Waiting)
        ]
    );
    let poll = fleet.poll(pc, at(1));
    assert_eq!(poll.ids(), [jobs[2]]);
    assert!(poll.held.is_empty(), "{:?}", poll.held);
    let counts = |stats: &ContainerStatistics| {
        [
            JobState::Waiting,
            JobState::Succeeded,
            JobState::AlreadyInstalled,
            JobState::Incompatible,
        ]
        .map(|state| stats.counts[&state])
    };
    let running = fleet.statistics(container, at(1));
    assert_eq!(running.status, ContainerStatus::Waiting);
    assert_eq!(counts(&running), [1, 0, 1, 1]);

    fleet.report(pc, &agent_report(jobs[2], 2, None), at(3));
    fleet.report(pc, &agent_report(jobs[2], 3, Some(0)), at(5));

    let done = fleet.statistics(container, at(6));
    assert_eq!(
        done.status,
        ContainerStatus::Failed,
        "Incompatible counts as failed"
    );
    assert_eq!(counts(&done), [0, 1, 1, 1]);
    assert_eq!(
        done.total_runtime,
        Some(Runtime {
            duration: Duration::minutes(5),
            running: false
        })
    );
    assert_eq!(done.effective_runtime, Some(Duration::minutes(2)));
    let later = fleet.poll(pc, at(7));
    assert!(
        later.deliver.is_empty() && later.held.is_empty(),
        "{later:?}"
    );
}

// ---- store failures ----------------------------------------------------------------------------

#[test]
fn failed_report_write_leaves_the_job_unchanged_and_a_recomputed_retry_succeeds() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "02:00:00:00:00:01", None);
    let app = fleet.family("App");
    let p1 = fleet.package(package(app, "1"));
    let (_, jobs) = fleet.deploy(&request("App", at(0), &[pc], &[&p1]), at(0));
    let job = jobs[0];
    fleet.poll(pc, at(1));
    let before = fleet.job(job);
    // Call 1 reads the snapshot, call 2 (the write) fails, later calls pass.
    let store = FailingStore::fail_nth(fleet.store, 2);
    let success = agent_report(job, 3, Some(0));
    let decide = |store: &FailingStore<MemoryStore>| -> ReportOutcome {
        let snapshot = store.report_snapshot(job).unwrap();
        apply_report(&snapshot, pc, &success, at(2)).unwrap()
    };

    let first = decide(&store);
    let err = store.apply(&first.changes).unwrap_err();

    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_eq!(store.inner().job(job).unwrap(), before);
    assert!(store.inner().assignments(pc).unwrap().0.is_empty());

    let retry = decide(&store);
    store.apply(&retry.changes).unwrap();

    assert_eq!(retry.disposition, applied());
    let after = store.inner().job(job).unwrap();
    assert_eq!(
        (after.state, after.return_code, after.finished),
        (JobState::Succeeded, Some(0), Some(at(2)))
    );
    assert_eq!(after.revision, before.revision.next());
    let assignments = store.inner().assignments(pc).unwrap().0;
    assert_eq!(
        assignments.iter().map(|a| a.package).collect::<Vec<_>>(),
        [p1.id]
    );
    // The outcome computed before the failure is stale now: applying it is refused.
    assert!(matches!(
        store.apply(&first.changes),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.calls(), 5);
}
