//! Deployment rules through the public API, with `MemoryStore` as the world and a fixed clock:
//! the merge table, conflicts (and the OCO loop they prevent), the trigger table of incremental
//! re-evaluation, and the correctness property "after any sequence of events, each followed by its
//! incremental evaluation, a full evaluation of every rule yields an empty diff".

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The fleet's helpers apply what they decide and return it for inspection; a test that only
// needs the writes ignores it.
#![allow(unused_must_use)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::model::{
    Assignment, Compatibility, ComputerGroupId, ComputerId, DeliveryPolicy, FamilyId, Job, JobId,
    JobKind, JobSnapshot, JobState, Name, Origin, Package, PackageGroupId, PackageId, Payload,
    PostAction, Procedure, RuleId, ServerFinal, Sha256Digest, SuccessCodes, UpgradeBehavior,
};
use oco_core::plan::plan;
use oco_core::report::{apply_report, AgentReport, Disposition, ReportOutcome, ReportedState};
use oco_core::rules::{scopes_for, Conflict, JobDeletion, RuleDiff, RuleEvent, RuleWorld, Scope};
use oco_core::store::{
    Change, ChangeSet, JobFilter, MemoryStore, NewComputer, NewPackage, NewRule, Page, Store,
    StoreError,
};
use oco_core::Settings;

// ---- fixture -----------------------------------------------------------------------------------

/// The fixed clock: 2026-03-02 08:00 UTC plus `minutes`.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

fn agent_addr() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

fn procedure(command: String) -> Procedure {
    Procedure {
        command,
        success_codes: SuccessCodes::zero(),
        post_action: PostAction::None,
    }
}

/// A store, with the server's loop around it: every step reads a snapshot, lets the core decide
/// and applies the decision.
struct Fleet {
    store: MemoryStore,
}

impl Fleet {
    fn new() -> Self {
        Fleet {
            store: MemoryStore::new(),
        }
    }

    fn computer(&self, hostname: &str, os: &str) -> ComputerId {
        self.store
            .create_computer(NewComputer {
                hostname: name(hostname),
                os: os.into(),
                os_version: "11".into(),
                architecture: "x64".into(),
                macs: vec![],
            })
            .unwrap()
            .id
    }

    fn family(&self, title: &str) -> FamilyId {
        self.store.create_family(name(title)).unwrap().id
    }

    /// A package: commands naming the version, only 0 counts as success, compatible with
    /// everything.
    fn package(&self, family: FamilyId, version: &str, upgrade: UpgradeBehavior) -> Package {
        self.store
            .create_package(NewPackage {
                family,
                version: Name::new("version", version).unwrap(),
                install: procedure(format!("install {version}")),
                uninstall: procedure(format!("uninstall {version}")),
                payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
                download_for_uninstall: false,
                upgrade_behavior: upgrade,
                compatibility: Compatibility::default(),
                dependencies: Vec::new(),
            })
            .unwrap()
    }

    /// A package compatible with `os` only.
    fn package_for(
        &self,
        family: FamilyId,
        version: &str,
        upgrade: UpgradeBehavior,
        os: &str,
    ) -> Package {
        let package = self.package(family, version, upgrade);
        self.edit_package(package.id, |p| p.compatibility.os = vec![os.into()])
    }

    fn edit_package(&self, id: PackageId, edit: impl FnOnce(&mut Package)) -> Package {
        let mut package = self.store.package(id).unwrap();
        edit(&mut package);
        self.store.update_package(&package).unwrap();
        package
    }

    fn computer_group(
        &self,
        title: &str,
        parent: Option<ComputerGroupId>,
        members: &[ComputerId],
    ) -> ComputerGroupId {
        let group = self
            .store
            .create_computer_group(name(title), parent)
            .unwrap();
        self.store
            .set_computer_group_members(group.id, members)
            .unwrap();
        group.id
    }

    fn package_group(
        &self,
        title: &str,
        parent: Option<PackageGroupId>,
        members: &[PackageId],
    ) -> PackageGroupId {
        let group = self
            .store
            .create_package_group(name(title), parent)
            .unwrap();
        self.store
            .set_package_group_members(group.id, members)
            .unwrap();
        group.id
    }

    fn rule(
        &self,
        title: &str,
        computers: ComputerGroupId,
        packages: PackageGroupId,
        enabled: bool,
    ) -> RuleId {
        self.store
            .create_rule(NewRule {
                name: name(title),
                notes: String::new(),
                enabled,
                computer_group: computers,
                package_group: packages,
                policy: DeliveryPolicy::new(Tz::UTC),
                created_at: at(0),
            })
            .unwrap()
            .id
    }

    fn set_enabled(&self, rule: RuleId, enabled: bool) {
        let mut stored = self.store.rule(rule).unwrap();
        stored.enabled = enabled;
        self.store.update_rule(&stored).unwrap();
    }

    fn world(&self) -> RuleWorld {
        RuleWorld::from_snapshot(&self.store.rule_snapshot().unwrap())
    }

    /// Evaluates `rule` for `scope` on the current world and applies the diff, which is returned.
    fn evaluate(&self, rule: RuleId, scope: &Scope, now: DateTime<Utc>) -> RuleDiff {
        let diff = self.world().evaluate(rule, scope, now);
        self.store.apply(&diff.clone().into_change_set()).unwrap();
        diff
    }

    /// Every rule evaluated fully on the current world, nothing applied.
    fn full_diffs(&self, now: DateTime<Utc>) -> Vec<RuleDiff> {
        let world = self.world();
        world
            .rules
            .keys()
            .map(|&rule| world.evaluate(rule, &Scope::full(), now))
            .collect()
    }

    /// Every rule evaluated fully and applied.
    fn settle(&self, now: DateTime<Utc>) {
        for rule in self.world().rules.keys() {
            self.evaluate(*rule, &Scope::full(), now);
        }
    }

    /// The trigger table's evaluations after `event`, from `before` to `after`: every (rule,
    /// scope) evaluated on `after` and applied. Returns the scopes.
    fn incremental_to(
        &self,
        event: &RuleEvent,
        before: &RuleWorld,
        after: &RuleWorld,
        now: DateTime<Utc>,
    ) -> BTreeMap<RuleId, Scope> {
        let scopes = scopes_for(event, before, after);
        for (rule, scope) in &scopes {
            let diff = after.evaluate(*rule, scope, now);
            self.store
                .apply(&diff.into_change_set())
                .unwrap_or_else(|e| panic!("rule {rule} {scope:?} after {event:?}: {e}"));
        }
        scopes
    }

    /// As `incremental_to`, `after` being the store's current world.
    fn incremental(
        &self,
        event: &RuleEvent,
        before: &RuleWorld,
        now: DateTime<Utc>,
    ) -> BTreeMap<RuleId, Scope> {
        self.incremental_to(event, before, &self.world(), now)
    }

    /// Asserts that a full evaluation of every rule yields an empty diff.
    fn assert_settled(&self, now: DateTime<Utc>) {
        for diff in self.full_diffs(now) {
            assert!(diff.is_empty(), "full evaluation is not empty: {diff:#?}");
        }
    }

    fn jobs(&self, rule: RuleId) -> Vec<Job> {
        let filter = JobFilter {
            origin: Some(Origin::Rule(rule)),
            ..JobFilter::default()
        };
        self.store.list_jobs(&filter, Page::first(10_000)).unwrap()
    }

    fn all_jobs(&self) -> Vec<Job> {
        self.store
            .list_jobs(&JobFilter::default(), Page::first(10_000))
            .unwrap()
    }

    /// The rule's job for (computer, package, kind), if any.
    fn job_of(
        &self,
        rule: RuleId,
        computer: ComputerId,
        package: PackageId,
        kind: JobKind,
    ) -> Option<Job> {
        self.jobs(rule)
            .into_iter()
            .find(|j| j.computer == computer && j.package == package && j.kind == kind)
    }

    fn install_job(&self, rule: RuleId, computer: ComputerId, package: PackageId) -> Job {
        self.job_of(rule, computer, package, JobKind::Install)
            .unwrap_or_else(|| panic!("no install job of {package} on {computer} in rule {rule}"))
    }

    /// (package, kind, state, sequence) of the rule's jobs on `computer`, by sequence.
    fn summary(
        &self,
        rule: RuleId,
        computer: ComputerId,
    ) -> Vec<(PackageId, JobKind, JobState, u32)> {
        let mut jobs: Vec<_> = self
            .jobs(rule)
            .into_iter()
            .filter(|j| j.computer == computer)
            .map(|j| (j.package, j.kind, j.state, j.sequence))
            .collect();
        jobs.sort_by_key(|j| (j.3, j.0));
        jobs
    }

    /// Puts a job into `state` as an agent or the server would have, through `UpdateJob`.
    fn set_state(&self, id: JobId, state: JobState, now: DateTime<Utc>) -> Job {
        let old = self.store.job(id).unwrap();
        let mut job = old.clone();
        match state {
            JobState::Waiting => job.state = JobState::Waiting,
            JobState::Downloading => {
                job.state = state;
                job.download_started = Some(now);
                job.download_progress = Some(40);
                job.last_report = Some(now);
            }
            JobState::Executing => {
                job.state = state;
                job.execution_started = Some(now);
                job.last_report = Some(now);
            }
            JobState::Succeeded | JobState::Failed => {
                job.state = state;
                job.return_code = Some(if state == JobState::Succeeded { 0 } else { 1 });
                job.output = "done".into();
                job.finished = Some(now);
                job.last_report = Some(now);
            }
            JobState::Expired => job.finalize_by_server(ServerFinal::Expired, now),
            JobState::Incompatible => job.finalize_by_server(ServerFinal::Incompatible, now),
            JobState::AlreadyInstalled => {
                job.finalize_by_server(ServerFinal::AlreadyInstalled, now);
            }
        }
        self.store
            .apply(&ChangeSet {
                changes: vec![Change::UpdateJob {
                    expected: old.revision,
                    job,
                }],
            })
            .unwrap();
        self.store.job(id).unwrap()
    }

    fn assign(&self, computer: ComputerId, package: PackageId, installed_at: DateTime<Utc>) {
        self.store
            .apply(&ChangeSet {
                changes: vec![Change::UpsertAssignment {
                    assignment: Assignment {
                        computer,
                        package,
                        installed_at,
                        job: None,
                    },
                }],
            })
            .unwrap();
    }

    fn unassign(&self, computer: ComputerId, package: PackageId) {
        self.store
            .apply(&ChangeSet {
                changes: vec![Change::DeleteAssignment { computer, package }],
            })
            .unwrap();
    }

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

    /// The agent of the job's computer reports `state` (return code 0 on success, 1 on failure)
    /// at `now`; the outcome is applied and the computers it names are re-evaluated.
    fn report(&self, id: JobId, state: ReportedState, now: DateTime<Utc>) -> ReportOutcome {
        self.report_hiding(id, state, now, None)
    }

    /// As `report`, re-evaluating on worlds without rule `hidden` (a rule being deleted).
    fn report_hiding(
        &self,
        id: JobId,
        state: ReportedState,
        now: DateTime<Utc>,
        hidden: Option<RuleId>,
    ) -> ReportOutcome {
        let world = || {
            let mut world = self.world();
            if let Some(rule) = hidden {
                world.rules.remove(&rule);
            }
            world
        };
        let snapshot = self.store.report_snapshot(id).unwrap();
        let report = AgentReport {
            job: id,
            attempt: snapshot.job.attempt,
            state,
            return_code: match state {
                ReportedState::Succeeded => Some(0),
                ReportedState::Failed => Some(1),
                _ => None,
            },
            download_progress: None,
            output: Some(format!("{state:?}")),
        };
        let before = world();
        let outcome = apply_report(&snapshot, snapshot.job.computer, &report, now).unwrap();
        self.store.apply(&outcome.changes).unwrap();
        for &computer in &outcome.reevaluate {
            let event = RuleEvent::AssignmentsChanged { computer };
            self.incremental_to(&event, &before, &world(), now);
        }
        outcome
    }

    /// The jobs the agent of `computer` is handed at `now`.
    fn poll(&self, computer: ComputerId, now: DateTime<Utc>) -> Vec<JobId> {
        let snapshot = self.store.planner_snapshot(computer).unwrap();
        let plan = plan(&snapshot, now, agent_addr(), &Settings::default());
        self.store.apply(&plan.changes).unwrap();
        plan.deliver.iter().map(|d| d.job.id).collect()
    }
}

fn is_deleted(fleet: &Fleet, id: JobId) -> bool {
    matches!(fleet.store.job(id), Err(StoreError::NotFound { .. }))
}

fn family_versions(diff: &RuleDiff) -> Vec<&Conflict> {
    diff.conflicts
        .iter()
        .filter(|c| matches!(c, Conflict::FamilyVersions { .. }))
        .collect()
}

// ---- the merge table ---------------------------------------------------------------------------

/// What a cell's evaluation should want for the job of `package` on `pc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desired {
    Waiting,
    Incompatible,
    AlreadyInstalled,
    Unwanted,
}

/// One rule, one Windows computer, one keep-others package.
struct Cell {
    fleet: Fleet,
    pc: ComputerId,
    package: Package,
    packages: PackageGroupId,
    rule: RuleId,
}

impl Cell {
    fn new() -> Self {
        let fleet = Fleet::new();
        let pc = fleet.computer("pc1", "Windows");
        let family = fleet.family("editor");
        let package = fleet.package(family, "1.0", UpgradeBehavior::KeepOthers);
        let computers = fleet.computer_group("office", None, &[pc]);
        let packages = fleet.package_group("tools", None, &[package.id]);
        let rule = fleet.rule("tools for the office", computers, packages, true);
        Cell {
            fleet,
            pc,
            package,
            packages,
            rule,
        }
    }

    /// Creates the job (by a first evaluation) and puts it into `state`; `None`: no job.
    fn with_existing(state: Option<JobState>) -> (Cell, Option<Job>) {
        let cell = Cell::new();
        let job = state.map(|state| {
            cell.fleet.evaluate(cell.rule, &Scope::full(), at(0));
            let job = cell.fleet.install_job(cell.rule, cell.pc, cell.package.id);
            cell.fleet.set_state(job.id, state, at(1))
        });
        (cell, job)
    }

    /// Changes the world so that the rule desires `desired`; for Waiting, the package's install
    /// command is also edited so that a fresh snapshot is visible. Returns the package now.
    fn make_desired(&self, desired: Desired) -> Package {
        let fleet = &self.fleet;
        match desired {
            Desired::Waiting => fleet.edit_package(self.package.id, |p| {
                p.install.command = "install 1.0 --quiet".into();
            }),
            Desired::Incompatible => fleet.edit_package(self.package.id, |p| {
                p.compatibility.os = vec!["Linux".into()];
            }),
            Desired::AlreadyInstalled => {
                fleet.assign(self.pc, self.package.id, at(2));
                self.package.clone()
            }
            Desired::Unwanted => {
                fleet
                    .store
                    .set_package_group_members(self.packages, &[])
                    .unwrap();
                self.package.clone()
            }
        }
    }
}

/// What the merge should do with the cell's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A new job in this state.
    Insert(JobState),
    /// No job at all, and none written.
    Nothing,
    /// Waiting, with the current package's snapshot, same attempt.
    RefreshSnapshot,
    /// The stored job is exactly what it was (revision included).
    Untouched,
    /// Running, unchanged but for the orphan mark.
    Orphan,
    /// Finalised by the server into this state at the evaluation time.
    Becomes(JobState),
    /// Reset to Waiting with a fresh snapshot and the next attempt.
    Reset,
    /// Deleted, with a tombstone.
    Delete,
}

fn check_cell(existing: Option<JobState>, desired: Desired, expect: Expect) {
    let cell_name = format!("{existing:?} x {desired:?}");
    // Arrange.
    let (cell, before) = Cell::with_existing(existing);
    let package = cell.make_desired(desired);
    let now = at(10);

    // Act.
    let diff = cell.fleet.evaluate(cell.rule, &Scope::full(), now);

    // Assert.
    let after = cell
        .fleet
        .job_of(cell.rule, cell.pc, cell.package.id, JobKind::Install);
    match expect {
        Expect::Insert(state) => {
            assert_eq!(diff.insert.len(), 1, "{cell_name}: {diff:?}");
            let job = after.expect(&cell_name);
            assert_eq!(job.state, state, "{cell_name}");
            assert_eq!(job.sequence, 1, "{cell_name}");
            assert_eq!(job.attempt, 1, "{cell_name}");
            assert_eq!(
                job.snapshot,
                JobSnapshot::of(&package, JobKind::Install),
                "{cell_name}"
            );
            if state != JobState::Waiting {
                assert_eq!(job.finished, Some(now), "{cell_name}");
            }
        }
        Expect::Nothing => {
            assert!(diff.is_empty(), "{cell_name}: {diff:?}");
            assert!(after.is_none(), "{cell_name}");
        }
        Expect::RefreshSnapshot => {
            let (before, job) = (before.unwrap(), after.expect(&cell_name));
            assert_eq!(job.state, JobState::Waiting, "{cell_name}");
            assert_ne!(before.snapshot, job.snapshot, "{cell_name}");
            assert_eq!(
                job.snapshot,
                JobSnapshot::of(&package, JobKind::Install),
                "{cell_name}"
            );
            assert_eq!(job.attempt, before.attempt, "{cell_name}");
        }
        Expect::Untouched => {
            assert!(diff.is_empty(), "{cell_name}: {diff:?}");
            assert_eq!(after, before, "{cell_name}");
        }
        Expect::Orphan => {
            let (before, job) = (before.unwrap(), after.expect(&cell_name));
            assert!(job.orphaned, "{cell_name}");
            let mut unmarked = job.clone();
            unmarked.orphaned = false;
            unmarked.revision = before.revision;
            assert_eq!(
                unmarked, before,
                "{cell_name}: nothing but the mark changes"
            );
            assert!(diff.delete.is_empty(), "{cell_name}");
        }
        Expect::Becomes(state) => {
            let (before, job) = (before.unwrap(), after.expect(&cell_name));
            assert_eq!(job.state, state, "{cell_name}");
            assert_eq!(job.finished, Some(now), "{cell_name}");
            assert_eq!(job.message, None, "{cell_name}");
            assert_eq!(job.attempt, before.attempt, "{cell_name}");
            assert!(job.finalized_by_server(), "{cell_name}");
        }
        Expect::Reset => {
            let (before, job) = (before.unwrap(), after.expect(&cell_name));
            assert_eq!(job.state, JobState::Waiting, "{cell_name}");
            assert_eq!(job.attempt, before.attempt + 1, "{cell_name}");
            assert_eq!(
                job.snapshot,
                JobSnapshot::of(&package, JobKind::Install),
                "{cell_name}"
            );
            assert_ne!(job.snapshot, before.snapshot, "{cell_name}");
            assert_eq!(
                (
                    job.return_code,
                    job.finished,
                    job.message,
                    job.output.as_str()
                ),
                (None, None, None, ""),
                "{cell_name}: the earlier run's results are cleared"
            );
        }
        Expect::Delete => {
            let before = before.unwrap();
            assert!(after.is_none(), "{cell_name}");
            assert_eq!(diff.delete, vec![JobDeletion::of(&before)], "{cell_name}");
            let tombstone = cell.fleet.store.report_snapshot(before.id).unwrap();
            assert!(tombstone.deleted, "{cell_name}");
            assert_eq!(tombstone.job.state, before.state, "{cell_name}");
        }
    }
    // Evaluating again right after gives an empty diff.
    let again = cell
        .fleet
        .world()
        .evaluate(cell.rule, &Scope::full(), at(11));
    assert!(again.is_empty(), "{cell_name}: not idempotent: {again:?}");
}

#[test]
fn merge_no_existing_job_inserts_what_is_desired() {
    use Desired::*;
    check_cell(None, Waiting, Expect::Insert(JobState::Waiting));
    check_cell(None, Incompatible, Expect::Insert(JobState::Incompatible));
    check_cell(
        None,
        AlreadyInstalled,
        Expect::Insert(JobState::AlreadyInstalled),
    );
    check_cell(None, Unwanted, Expect::Nothing);
}

#[test]
fn merge_waiting_job_refreshes_snapshot_or_is_finalised_or_deleted() {
    use Desired::*;
    let waiting = Some(JobState::Waiting);
    check_cell(waiting, Waiting, Expect::RefreshSnapshot);
    check_cell(
        waiting,
        Incompatible,
        Expect::Becomes(JobState::Incompatible),
    );
    check_cell(
        waiting,
        AlreadyInstalled,
        Expect::Becomes(JobState::AlreadyInstalled),
    );
    check_cell(waiting, Unwanted, Expect::Delete);
}

#[test]
fn merge_running_job_is_never_changed_and_orphaned_when_not_desired() {
    use Desired::*;
    for running in [JobState::Downloading, JobState::Executing] {
        let existing = Some(running);
        check_cell(existing, Waiting, Expect::Untouched);
        check_cell(existing, Incompatible, Expect::Untouched);
        check_cell(existing, AlreadyInstalled, Expect::Untouched);
        check_cell(existing, Unwanted, Expect::Orphan);
    }
}

#[test]
fn merge_succeeded_job_is_reinstalled_when_its_assignment_is_gone() {
    use Desired::*;
    let succeeded = Some(JobState::Succeeded);
    check_cell(succeeded, Waiting, Expect::Reset);
    check_cell(
        succeeded,
        Incompatible,
        Expect::Becomes(JobState::Incompatible),
    );
    check_cell(succeeded, AlreadyInstalled, Expect::Untouched);
    check_cell(succeeded, Unwanted, Expect::Delete);
}

#[test]
fn merge_failed_and_expired_jobs_wait_for_an_administrator() {
    use Desired::*;
    for state in [JobState::Failed, JobState::Expired] {
        let existing = Some(state);
        check_cell(existing, Waiting, Expect::Untouched);
        check_cell(
            existing,
            Incompatible,
            Expect::Becomes(JobState::Incompatible),
        );
        check_cell(
            existing,
            AlreadyInstalled,
            Expect::Becomes(JobState::AlreadyInstalled),
        );
        check_cell(existing, Unwanted, Expect::Delete);
    }
}

#[test]
fn merge_incompatible_and_already_installed_jobs_go_back_to_waiting_when_needed() {
    use Desired::*;
    for state in [JobState::Incompatible, JobState::AlreadyInstalled] {
        let existing = Some(state);
        check_cell(existing, Waiting, Expect::Reset);
        check_cell(existing, Incompatible, Expect::Untouched);
        check_cell(existing, AlreadyInstalled, Expect::Untouched);
        check_cell(existing, Unwanted, Expect::Delete);
    }
}

#[test]
fn orphaned_running_job_is_deleted_at_its_final_report_and_its_success_recorded() {
    for running in [JobState::Downloading, JobState::Executing] {
        // Arrange: a running job whose package left the group.
        let (cell, job) = Cell::with_existing(Some(running));
        let job = job.unwrap();
        cell.make_desired(Desired::Unwanted);
        cell.fleet.evaluate(cell.rule, &Scope::full(), at(10));
        assert!(cell.fleet.store.job(job.id).unwrap().orphaned);

        // Act: the agent finishes it.
        let outcome = cell.fleet.report(job.id, ReportedState::Succeeded, at(20));

        // Assert: gone, the tombstone holds the success, the installation is recorded.
        assert_eq!(outcome.disposition, Disposition::Applied);
        assert!(is_deleted(&cell.fleet, job.id), "{running:?}");
        let tombstone = cell.fleet.store.report_snapshot(job.id).unwrap();
        assert!(tombstone.deleted);
        assert_eq!(tombstone.job.state, JobState::Succeeded);
        let (assignments, _) = cell.fleet.store.assignments(cell.pc).unwrap();
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].package, cell.package.id);
        assert_eq!(assignments[0].job, Some(job.id));
        assert!(cell.fleet.jobs(cell.rule).is_empty());
        cell.fleet.assert_settled(at(21));
    }
}

#[test]
fn orphaned_running_job_is_deleted_at_a_failure_report_too() {
    let (cell, job) = Cell::with_existing(Some(JobState::Executing));
    let job = job.unwrap();
    cell.make_desired(Desired::Unwanted);
    cell.fleet.evaluate(cell.rule, &Scope::full(), at(10));

    cell.fleet.report(job.id, ReportedState::Failed, at(20));

    assert!(is_deleted(&cell.fleet, job.id));
    assert!(cell.fleet.assigned(cell.pc).is_empty());
    cell.fleet.store.delete_rule(cell.rule).unwrap();
}

#[test]
fn failure_report_on_a_job_that_ran_through_a_change_leaves_nothing_stale() {
    for incompatible in [false, true] {
        // Arrange: a then b; b's job runs while a leaves the group (sequence frozen at 2), or
        // while b becomes incompatible.
        let fleet = Fleet::new();
        let pc = fleet.computer("pc1", "Windows");
        let [a, b] =
            ["a", "b"].map(|f| fleet.package(fleet.family(f), "1", UpgradeBehavior::KeepOthers));
        let computers = fleet.computer_group("office", None, &[pc]);
        let packages = fleet.package_group("tools", None, &[a.id, b.id]);
        let rule = fleet.rule("tools", computers, packages, true);
        fleet.settle(at(0));
        let job = fleet.install_job(rule, pc, b.id);
        fleet.set_state(job.id, JobState::Executing, at(1));
        let before = fleet.world();
        let event = if incompatible {
            fleet.edit_package(b.id, |p| p.compatibility.os = vec!["Linux".into()]);
            RuleEvent::PackageEdited { package: b.id }
        } else {
            fleet
                .store
                .set_package_group_members(packages, &[b.id])
                .unwrap();
            RuleEvent::PackageGroupsChanged
        };
        fleet.incremental(&event, &before, at(2));
        fleet.assert_settled(at(2));

        // Act: the agent reports failure; the server re-evaluates what the outcome names.
        fleet.report(job.id, ReportedState::Failed, at(3));

        // Assert: nothing is left stale.
        fleet.assert_settled(at(4));
        let job = fleet.store.job(job.id).unwrap();
        if incompatible {
            assert_eq!(job.state, JobState::Incompatible);
        } else {
            assert_eq!((job.state, job.sequence), (JobState::Failed, 1));
        }
    }
}

#[test]
fn orphan_progress_report_keeps_the_job_until_its_final_report() {
    let (cell, job) = Cell::with_existing(Some(JobState::Downloading));
    let job = job.unwrap();
    cell.make_desired(Desired::Unwanted);
    cell.fleet.evaluate(cell.rule, &Scope::full(), at(10));

    cell.fleet.report(job.id, ReportedState::Executing, at(12));

    let stored = cell.fleet.store.job(job.id).unwrap();
    assert_eq!(stored.state, JobState::Executing);
    assert!(stored.orphaned);
}

#[test]
fn succeeded_job_reinstalled_after_its_assignment_is_removed_through_a_report_cycle() {
    // Arrange: the job really succeeds through an agent report.
    let cell = Cell::new();
    let fleet = &cell.fleet;
    fleet.evaluate(cell.rule, &Scope::full(), at(0));
    let job = fleet.install_job(cell.rule, cell.pc, cell.package.id);
    assert_eq!(fleet.poll(cell.pc, at(1)), vec![job.id]);
    fleet.report(job.id, ReportedState::Succeeded, at(2));
    let succeeded = fleet.store.job(job.id).unwrap();
    assert_eq!(succeeded.state, JobState::Succeeded);
    let edited = fleet.edit_package(cell.package.id, |p| p.install.command = "v2".into());

    // Act: the assignment is removed by hand.
    let before = fleet.world();
    fleet.unassign(cell.pc, cell.package.id);
    fleet.incremental(
        &RuleEvent::AssignmentsChanged { computer: cell.pc },
        &before,
        at(3),
    );

    // Assert.
    let job = fleet.store.job(job.id).unwrap();
    assert_eq!(job.state, JobState::Waiting);
    assert_eq!(job.attempt, 2);
    assert_eq!(job.wire_id(), format!("{}.2", job.id));
    assert_eq!(job.snapshot, JobSnapshot::of(&edited, JobKind::Install));
    fleet.assert_settled(at(4));
}

// ---- sequences, snapshots, explicit uninstall, dependencies, disabled rules ----------------------

#[test]
fn inserting_a_package_earlier_refreshes_sequences_of_jobs_not_running() {
    // Arrange: A (Waiting), C (Failed), D (Executing) in that order.
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let family = |n| fleet.family(n);
    let [a, b, c, d] =
        ["a", "b", "c", "d"].map(|n| fleet.package(family(n), "1.0", UpgradeBehavior::KeepOthers));
    let computers = fleet.computer_group("office", None, &[pc]);
    let packages = fleet.package_group("tools", None, &[a.id, c.id, d.id]);
    let rule = fleet.rule("tools", computers, packages, true);
    fleet.evaluate(rule, &Scope::full(), at(0));
    let c_job = fleet.install_job(rule, pc, c.id);
    fleet.set_state(c_job.id, JobState::Failed, at(1));
    let d_job = fleet.install_job(rule, pc, d.id);
    let d_running = fleet.set_state(d_job.id, JobState::Executing, at(1));
    assert_eq!(d_running.sequence, 3);

    // Act: B goes first.
    let before = fleet.world();
    fleet
        .store
        .set_package_group_members(packages, &[b.id, a.id, c.id, d.id])
        .unwrap();
    let scopes = fleet.incremental(&RuleEvent::PackageGroupsChanged, &before, at(2));

    // Assert.
    assert_eq!(scopes.get(&rule), Some(&Scope::full()));
    assert_eq!(
        fleet.summary(rule, pc),
        vec![
            (b.id, JobKind::Install, JobState::Waiting, 1),
            (a.id, JobKind::Install, JobState::Waiting, 2),
            (c.id, JobKind::Install, JobState::Failed, 3),
            (d.id, JobKind::Install, JobState::Executing, 3),
        ]
    );
    assert_eq!(
        fleet.store.job(d_job.id).unwrap(),
        d_running,
        "a running job is never changed"
    );
    fleet.assert_settled(at(3));
}

#[test]
fn package_edit_refreshes_the_snapshot_of_waiting_jobs_only() {
    // Arrange: two computers, one job Waiting, one Executing.
    let fleet = Fleet::new();
    let (pc1, pc2) = (
        fleet.computer("pc1", "Windows"),
        fleet.computer("pc2", "Windows"),
    );
    let package = fleet.package(fleet.family("editor"), "1.0", UpgradeBehavior::KeepOthers);
    let computers = fleet.computer_group("office", None, &[pc1, pc2]);
    let packages = fleet.package_group("tools", None, &[package.id]);
    let rule = fleet.rule("tools", computers, packages, true);
    fleet.evaluate(rule, &Scope::full(), at(0));
    let running = fleet.install_job(rule, pc2, package.id);
    let running = fleet.set_state(running.id, JobState::Executing, at(1));

    // Act: every snapshotted field changes.
    let before = fleet.world();
    let edited = fleet.edit_package(package.id, |p| {
        p.install = Procedure {
            command: "install 1.0 /quiet".into(),
            success_codes: "0, 3010".parse().unwrap(),
            post_action: PostAction::Restart,
        };
        p.payload = None;
        p.upgrade_behavior = UpgradeBehavior::ImplicitRemove;
    });
    let scopes = fleet.incremental(
        &RuleEvent::PackageEdited {
            package: package.id,
        },
        &before,
        at(2),
    );

    // Assert.
    assert_eq!(scopes.get(&rule), Some(&Scope::full()));
    let waiting = fleet.install_job(rule, pc1, package.id);
    assert_eq!(waiting.snapshot, JobSnapshot::of(&edited, JobKind::Install));
    assert!(!waiting.snapshot.download);
    assert_eq!(
        waiting.snapshot.upgrade_behavior,
        UpgradeBehavior::ImplicitRemove
    );
    assert_eq!(fleet.store.job(running.id).unwrap(), running);
    fleet.assert_settled(at(3));
}

#[test]
fn explicit_uninstall_desires_uninstalls_of_other_assigned_versions_oldest_first() {
    // Arrange: v1 installed after v2; v3 (explicit-uninstall) in the group; v4 of another family.
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let family = fleet.family("editor");
    let v1 = fleet.package(family, "1", UpgradeBehavior::KeepOthers);
    let v2 = fleet.package(family, "2", UpgradeBehavior::KeepOthers);
    let v3 = fleet.package(family, "3", UpgradeBehavior::ExplicitUninstall);
    let other = fleet.package(fleet.family("viewer"), "1", UpgradeBehavior::KeepOthers);
    fleet.assign(pc, other.id, at(-30));
    fleet.assign(pc, v2.id, at(-20));
    fleet.assign(pc, v1.id, at(-10));
    let computers = fleet.computer_group("office", None, &[pc]);
    let packages = fleet.package_group("tools", None, &[v3.id]);
    let rule = fleet.rule("tools", computers, packages, true);

    // Act.
    let diff = fleet.evaluate(rule, &Scope::full(), at(0));

    // Assert.
    assert!(diff.conflicts.is_empty(), "{:?}", diff.conflicts);
    assert_eq!(
        fleet.summary(rule, pc),
        vec![
            (v2.id, JobKind::Uninstall, JobState::Waiting, 1),
            (v1.id, JobKind::Uninstall, JobState::Waiting, 2),
            (v3.id, JobKind::Install, JobState::Waiting, 3),
        ]
    );
    let uninstall = fleet.job_of(rule, pc, v2.id, JobKind::Uninstall).unwrap();
    assert_eq!(uninstall.snapshot, JobSnapshot::of(&v2, JobKind::Uninstall));

    // The agent runs them in order; the uninstall jobs, once done, are no longer desired.
    for round in 0..3 {
        for id in fleet.poll(pc, at(1 + round)) {
            fleet.report(id, ReportedState::Succeeded, at(1 + round));
        }
    }
    assert_eq!(fleet.assigned(pc), vec![v3.id, other.id]);
    assert_eq!(
        fleet.summary(rule, pc),
        vec![(v3.id, JobKind::Install, JobState::Succeeded, 1)]
    );
    fleet.assert_settled(at(10));
}

#[test]
fn missing_dependency_is_reported_and_the_job_still_created() {
    // Arrange: A needs B; B is not in the group and not installed.
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let b = fleet.package(fleet.family("runtime"), "1", UpgradeBehavior::KeepOthers);
    let a = fleet.package(fleet.family("app"), "1", UpgradeBehavior::KeepOthers);
    let a = fleet.edit_package(a.id, |p| p.dependencies = vec![b.id]);
    let computers = fleet.computer_group("office", None, &[pc]);
    let packages = fleet.package_group("tools", None, &[a.id]);
    let rule = fleet.rule("tools", computers, packages, true);

    // Act.
    let diff = fleet.evaluate(rule, &Scope::full(), at(0));

    // Assert.
    assert_eq!(
        diff.conflicts,
        vec![Conflict::MissingDependency {
            computer: pc,
            package: a.id,
            dependency: b.id,
        }]
    );
    assert_eq!(
        fleet.summary(rule, pc),
        vec![(a.id, JobKind::Install, JobState::Waiting, 1)]
    );

    // Installed: no longer missing.
    fleet.assign(pc, b.id, at(1));
    let diff = fleet.world().evaluate(rule, &Scope::full(), at(2));
    assert!(diff.conflicts.is_empty(), "{:?}", diff.conflicts);
    fleet.unassign(pc, b.id);
    // In the group: not missing either.
    fleet
        .store
        .set_package_group_members(packages, &[b.id, a.id])
        .unwrap();
    let diff = fleet.world().evaluate(rule, &Scope::full(), at(3));
    assert!(diff.conflicts.is_empty(), "{:?}", diff.conflicts);
}

#[test]
fn disabled_rule_is_evaluated_the_same_but_claims_nothing() {
    // Arrange: the same group twice, one rule enabled and one not; a third rule, enabled, has
    // v2 (implicit-remove) on the same computer.
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let family = fleet.family("editor");
    let v1 = fleet.package(family, "1", UpgradeBehavior::ImplicitRemove);
    let v2 = fleet.package(family, "2", UpgradeBehavior::ImplicitRemove);
    let tool = fleet.package(fleet.family("tool"), "1", UpgradeBehavior::KeepOthers);
    let computers = fleet.computer_group("office", None, &[pc]);
    let first = fleet.package_group("first", None, &[tool.id, v1.id]);
    let second = fleet.package_group("second", None, &[v2.id]);
    let enabled = fleet.rule("enabled", computers, first, true);
    let disabled = fleet.rule("disabled", computers, first, false);
    let other = fleet.rule("other", computers, second, false);

    // Act.
    let enabled_diff = fleet.evaluate(enabled, &Scope::full(), at(0));
    let disabled_diff = fleet.evaluate(disabled, &Scope::full(), at(0));
    let other_diff = fleet.evaluate(other, &Scope::full(), at(0));

    // Assert: the disabled rule gets the same jobs.
    let strip = |diff: &RuleDiff| -> Vec<(ComputerId, PackageId, JobState, u32)> {
        diff.insert
            .iter()
            .map(|j| (j.computer, j.package, j.state, j.sequence))
            .collect()
    };
    assert_eq!(strip(&enabled_diff), strip(&disabled_diff));
    assert_eq!(enabled_diff.insert.len(), 2);
    // Neither disabled rule makes a claim on the enabled one: no conflict, v1 wanted.
    assert!(family_versions(&enabled_diff).is_empty());
    assert!(fleet.job_of(enabled, pc, v1.id, JobKind::Install).is_some());
    assert!(fleet.world().conflicts().is_empty());
    // The disabled `other` rule sees the enabled rule's claim (an administrator inspects it).
    assert_eq!(family_versions(&other_diff).len(), 1);
    // Its jobs are held by delivery.
    let delivered = fleet.poll(pc, at(1));
    assert!(delivered
        .iter()
        .all(|id| fleet.store.job(*id).unwrap().origin == Origin::Rule(enabled)));
    assert_eq!(delivered.len(), 2);
}

#[test]
fn evaluating_twice_gives_an_empty_second_diff() {
    let fleet = Fleet::new();
    let (pc1, pc2) = (
        fleet.computer("pc1", "Windows"),
        fleet.computer("pc2", "Linux"),
    );
    let family = fleet.family("editor");
    let v1 = fleet.package_for(family, "1", UpgradeBehavior::ExplicitUninstall, "Windows");
    let v0 = fleet.package(family, "0", UpgradeBehavior::KeepOthers);
    let tool = fleet.package(fleet.family("tool"), "1", UpgradeBehavior::KeepOthers);
    fleet.assign(pc1, v0.id, at(-5));
    fleet.assign(pc2, tool.id, at(-5));
    let computers = fleet.computer_group("office", None, &[pc1, pc2]);
    let packages = fleet.package_group("tools", None, &[v1.id, tool.id]);
    let rule = fleet.rule("tools", computers, packages, true);

    let first = fleet.evaluate(rule, &Scope::full(), at(0));
    let second = fleet.world().evaluate(rule, &Scope::full(), at(5));

    assert_eq!(first.insert.len(), 5, "{first:#?}");
    assert!(second.is_empty(), "{second:#?}");
    assert!(second.into_change_set().is_empty());
}

#[test]
fn diff_computed_from_stale_assignments_fails_to_apply() {
    let cell = Cell::new();
    let diff = cell
        .fleet
        .world()
        .evaluate(cell.rule, &Scope::full(), at(0));
    cell.fleet.assign(cell.pc, cell.package.id, at(1));

    let result = cell.fleet.store.apply(&diff.into_change_set());

    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{result:?}"
    );
    assert!(cell.fleet.jobs(cell.rule).is_empty());
}

// ---- conflicts ---------------------------------------------------------------------------------

/// Two versions of one family (and another package) in one group on two Windows computers.
struct TwoVersions {
    fleet: Fleet,
    pcs: [ComputerId; 2],
    family: FamilyId,
    v1: Package,
    v2: Package,
    tool: Package,
    packages: PackageGroupId,
    computers: ComputerGroupId,
    rule: RuleId,
}

impl TwoVersions {
    fn new(v1: UpgradeBehavior, v2: UpgradeBehavior, both_in_group: bool) -> Self {
        let fleet = Fleet::new();
        let pcs = [
            fleet.computer("pc1", "Windows"),
            fleet.computer("pc2", "Windows"),
        ];
        let family = fleet.family("editor");
        let v1 = fleet.package(family, "1", v1);
        let v2 = fleet.package(family, "2", v2);
        let tool = fleet.package(fleet.family("tool"), "1", UpgradeBehavior::KeepOthers);
        let computers = fleet.computer_group("office", None, &pcs);
        let members = if both_in_group {
            vec![v1.id, tool.id, v2.id]
        } else {
            vec![v1.id, tool.id]
        };
        let packages = fleet.package_group("tools", None, &members);
        let rule = fleet.rule("tools", computers, packages, true);
        TwoVersions {
            fleet,
            pcs,
            family,
            v1,
            v2,
            tool,
            packages,
            computers,
            rule,
        }
    }
}

#[test]
fn two_versions_with_a_removing_upgrade_in_one_group_conflict_and_get_no_jobs() {
    for (b1, b2) in [
        (UpgradeBehavior::KeepOthers, UpgradeBehavior::ImplicitRemove),
        (
            UpgradeBehavior::ImplicitRemove,
            UpgradeBehavior::ImplicitRemove,
        ),
        (
            UpgradeBehavior::KeepOthers,
            UpgradeBehavior::ExplicitUninstall,
        ),
        (
            UpgradeBehavior::ExplicitUninstall,
            UpgradeBehavior::ExplicitUninstall,
        ),
    ] {
        // Arrange.
        let t = TwoVersions::new(b1, b2, true);

        // Act.
        let diff = t.fleet.evaluate(t.rule, &Scope::full(), at(0));

        // Assert: per computer, no job of the family, the tool at sequence 1.
        let expected: Vec<Conflict> = t
            .pcs
            .iter()
            .map(|&computer| Conflict::FamilyVersions {
                computer,
                family: t.family,
                packages: vec![t.v1.id, t.v2.id],
                rules: vec![t.rule],
            })
            .collect();
        assert_eq!(diff.conflicts, expected, "{b1:?}/{b2:?}");
        for pc in t.pcs {
            assert_eq!(
                t.fleet.summary(t.rule, pc),
                vec![(t.tool.id, JobKind::Install, JobState::Waiting, 1)],
                "{b1:?}/{b2:?}"
            );
        }
        assert_eq!(t.fleet.world().conflicts(), expected, "{b1:?}/{b2:?}");
        // Idempotent, and the conflict is still reported.
        let again = t.fleet.world().evaluate(t.rule, &Scope::full(), at(1));
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.conflicts, expected);
    }
}

#[test]
fn two_keep_others_versions_are_no_conflict() {
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::KeepOthers,
        true,
    );

    let diff = t.fleet.evaluate(t.rule, &Scope::full(), at(0));

    assert!(diff.conflicts.is_empty());
    assert_eq!(t.fleet.summary(t.rule, t.pcs[0]).len(), 3);
    assert!(t.fleet.world().conflicts().is_empty());
}

#[test]
fn installed_version_and_a_removing_version_in_the_group_conflict() {
    // v1 installed (desired AlreadyInstalled) counts as desired installed.
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        true,
    );
    t.fleet.assign(t.pcs[0], t.v1.id, at(-1));

    let diff = t.fleet.evaluate(t.rule, &Scope::full(), at(0));

    assert_eq!(family_versions(&diff).len(), 2);
    assert!(t.fleet.jobs(t.rule).iter().all(|j| j.package == t.tool.id));
}

#[test]
fn incompatible_versions_do_not_count_toward_a_conflict() {
    let t = TwoVersions::new(
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::ImplicitRemove,
        true,
    );
    t.fleet
        .edit_package(t.v2.id, |p| p.compatibility.os = vec!["Linux".into()]);

    let diff = t.fleet.evaluate(t.rule, &Scope::full(), at(0));

    assert!(diff.conflicts.is_empty(), "{:?}", diff.conflicts);
    assert_eq!(
        t.fleet.summary(t.rule, t.pcs[0]),
        vec![
            (t.v1.id, JobKind::Install, JobState::Waiting, 1),
            (t.tool.id, JobKind::Install, JobState::Waiting, 2),
            (t.v2.id, JobKind::Install, JobState::Incompatible, 3),
        ]
    );
}

#[test]
fn a_conflict_deletes_the_familys_existing_jobs_that_are_not_running() {
    // Arrange: v1 only; pc1's job Failed, pc2's Executing; then v2 joins.
    let t = TwoVersions::new(
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::ImplicitRemove,
        false,
    );
    t.fleet.evaluate(t.rule, &Scope::full(), at(0));
    let failed = t.fleet.install_job(t.rule, t.pcs[0], t.v1.id);
    let failed = t.fleet.set_state(failed.id, JobState::Failed, at(1));
    let running = t.fleet.install_job(t.rule, t.pcs[1], t.v1.id);
    let running = t.fleet.set_state(running.id, JobState::Executing, at(1));

    // Act.
    let before = t.fleet.world();
    t.fleet
        .store
        .set_package_group_members(t.packages, &[t.v1.id, t.tool.id, t.v2.id])
        .unwrap();
    let scopes = t
        .fleet
        .incremental(&RuleEvent::PackageGroupsChanged, &before, at(2));

    // Assert.
    assert_eq!(scopes.get(&t.rule), Some(&Scope::full()));
    assert!(is_deleted(&t.fleet, failed.id));
    let still = t.fleet.store.job(running.id).unwrap();
    assert_eq!(
        still.state,
        JobState::Executing,
        "a running job is never deleted"
    );
    assert_eq!(still.snapshot, running.snapshot);
    assert_eq!(still.sequence, running.sequence);
    assert_eq!(
        t.fleet.summary(t.rule, t.pcs[0]),
        vec![(t.tool.id, JobKind::Install, JobState::Waiting, 1)]
    );
    t.fleet.assert_settled(at(3));
}

#[test]
fn versions_in_two_rules_on_one_computer_conflict_in_both() {
    // Arrange: rule A has v1 on pc1 and pc2, rule B has v2 (implicit-remove) on pc2 only.
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        false,
    );
    let fleet = &t.fleet;
    let [pc1, pc2] = t.pcs;
    let only_pc2 = fleet.computer_group("lab", None, &[pc2]);
    let second = fleet.package_group("second", None, &[t.v2.id]);
    let rule_b = fleet.rule("second", only_pc2, second, true);

    // Act.
    let diff_a = fleet.evaluate(t.rule, &Scope::full(), at(0));
    let diff_b = fleet.evaluate(rule_b, &Scope::full(), at(0));

    // Assert.
    let conflict = Conflict::FamilyVersions {
        computer: pc2,
        family: t.family,
        packages: vec![t.v1.id, t.v2.id],
        rules: vec![t.rule, rule_b],
    };
    assert_eq!(diff_a.conflicts, vec![conflict.clone()]);
    assert_eq!(diff_b.conflicts, vec![conflict.clone()]);
    assert!(fleet
        .job_of(t.rule, pc1, t.v1.id, JobKind::Install)
        .is_some());
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_none());
    assert!(fleet.jobs(rule_b).is_empty());
    assert_eq!(fleet.world().conflicts(), vec![conflict]);
    fleet.assert_settled(at(1));
}

#[test]
fn windows_only_and_linux_only_versions_never_meet() {
    // Arrange.
    let fleet = Fleet::new();
    let win = fleet.computer("win", "Windows");
    let lin = fleet.computer("lin", "Linux");
    let family = fleet.family("editor");
    let v1 = fleet.package_for(family, "1", UpgradeBehavior::ImplicitRemove, "Windows");
    let v2 = fleet.package_for(family, "2", UpgradeBehavior::ExplicitUninstall, "Linux");
    let computers = fleet.computer_group("all", None, &[win, lin]);
    let packages = fleet.package_group("editor", None, &[v1.id, v2.id]);
    let rule = fleet.rule("editor", computers, packages, true);

    // Act.
    let diff = fleet.evaluate(rule, &Scope::full(), at(0));

    // Assert.
    assert!(diff.conflicts.is_empty(), "{:?}", diff.conflicts);
    assert!(fleet.world().conflicts().is_empty());
    assert_eq!(
        fleet.summary(rule, win),
        vec![
            (v1.id, JobKind::Install, JobState::Waiting, 1),
            (v2.id, JobKind::Install, JobState::Incompatible, 2),
        ]
    );
    assert_eq!(
        fleet.summary(rule, lin),
        vec![
            (v1.id, JobKind::Install, JobState::Incompatible, 1),
            (v2.id, JobKind::Install, JobState::Waiting, 2),
        ]
    );
}

#[test]
fn world_conflicts_is_the_refusal_check_and_ignores_disabled_rules() {
    // Arrange: rule A (v1) enabled; rule B (v2, implicit-remove) created disabled.
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        false,
    );
    let second = t.fleet.package_group("second", None, &[t.v2.id]);
    let rule_b = t.fleet.rule("second", t.computers, second, false);
    let current = t.fleet.world();
    assert!(current.conflicts().is_empty());

    // Act: the world as it would be with B enabled.
    let mut proposed = current.clone();
    proposed.rules.get_mut(&rule_b).unwrap().rule.enabled = true;

    // Assert: the server would refuse, naming every computer.
    let expected: Vec<Conflict> = t
        .pcs
        .iter()
        .map(|&computer| Conflict::FamilyVersions {
            computer,
            family: t.family,
            packages: vec![t.v1.id, t.v2.id],
            rules: vec![t.rule, rule_b],
        })
        .collect();
    assert_eq!(proposed.conflicts(), expected);

    // Adding v2 to A's group would be refused too; disabling A clears everything.
    let mut proposed = current.clone();
    proposed
        .rules
        .get_mut(&t.rule)
        .unwrap()
        .packages
        .push(t.v2.id);
    assert_eq!(proposed.conflicts().len(), 2);
    proposed.rules.get_mut(&t.rule).unwrap().rule.enabled = false;
    assert!(proposed.conflicts().is_empty());
}

// ---- the OCO loop ------------------------------------------------------------------------------

/// Agents that report success for every job handed out, for `rounds` rounds; returns the job set
/// (id, package, kind, state, attempt) and the assignments after each round.
#[allow(clippy::type_complexity)]
fn run_agents(
    fleet: &Fleet,
    pcs: &[ComputerId],
    rounds: i64,
) -> Vec<(
    Vec<(JobId, PackageId, JobKind, JobState, u32)>,
    Vec<Vec<PackageId>>,
)> {
    let mut history = Vec::new();
    for round in 0..rounds {
        let now = at(100 + round * 10);
        for &pc in pcs {
            for id in fleet.poll(pc, now) {
                fleet.report(id, ReportedState::Succeeded, now);
            }
        }
        let jobs = fleet
            .all_jobs()
            .into_iter()
            .map(|j| (j.id, j.package, j.kind, j.state, j.attempt))
            .collect();
        let assignments = pcs.iter().map(|&pc| fleet.assigned(pc)).collect();
        history.push((jobs, assignments));
    }
    history
}

fn assert_loop_reaches_a_fixed_point(b1: UpgradeBehavior, b2: UpgradeBehavior, installed: bool) {
    let case = format!("{b1:?}/{b2:?}, v1 installed: {installed}");
    // Arrange: both versions in one group; optionally v1 already installed by hand.
    let t = TwoVersions::new(b1, b2, true);
    if installed {
        t.fleet.assign(t.pcs[0], t.v1.id, at(-1));
    }
    t.fleet.settle(at(0));

    // Act: 20 rounds of obliging agents.
    let history = run_agents(&t.fleet, &t.pcs, 20);

    // Assert: a fixed point after the first round, the conflict still reported.
    let settled = &history[0];
    for (round, state) in history.iter().enumerate() {
        assert_eq!(state, settled, "{case}: round {round} changed something");
    }
    for pc in t.pcs {
        let family_jobs = t
            .fleet
            .all_jobs()
            .into_iter()
            .filter(|j| j.computer == pc && (j.package == t.v1.id || j.package == t.v2.id))
            .count();
        assert_eq!(family_jobs, 0, "{case}");
        assert_eq!(
            t.fleet.summary(t.rule, pc),
            vec![(t.tool.id, JobKind::Install, JobState::Succeeded, 1)],
            "{case}"
        );
    }
    assert_eq!(settled.1[0].contains(&t.v1.id), installed, "{case}");
    let diff = t.fleet.world().evaluate(t.rule, &Scope::full(), at(999));
    assert!(diff.is_empty(), "{case}: {diff:?}");
    assert_eq!(family_versions(&diff).len(), 2, "{case}");
    assert_eq!(t.fleet.world().conflicts().len(), 2, "{case}");
}

#[test]
fn the_documented_oco_loop_cannot_happen_with_implicit_remove() {
    for installed in [false, true] {
        assert_loop_reaches_a_fixed_point(
            UpgradeBehavior::ImplicitRemove,
            UpgradeBehavior::ImplicitRemove,
            installed,
        );
    }
}

#[test]
fn the_documented_oco_loop_cannot_happen_with_explicit_uninstall() {
    for installed in [false, true] {
        assert_loop_reaches_a_fixed_point(
            UpgradeBehavior::ExplicitUninstall,
            UpgradeBehavior::ExplicitUninstall,
            installed,
        );
    }
}

#[test]
fn the_loop_cannot_happen_across_two_rules_either() {
    // Arrange: v1 in rule A, v2 (implicit-remove) in rule B, same computers; v1 installed.
    let t = TwoVersions::new(
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::ImplicitRemove,
        false,
    );
    let second = t.fleet.package_group("second", None, &[t.v2.id]);
    let rule_b = t.fleet.rule("second", t.computers, second, true);
    t.fleet.assign(t.pcs[1], t.v1.id, at(-1));
    t.fleet.settle(at(0));

    let history = run_agents(&t.fleet, &t.pcs, 20);

    for (round, state) in history.iter().enumerate() {
        assert_eq!(state, &history[0], "round {round}");
    }
    assert!(t.fleet.jobs(rule_b).is_empty());
    assert_eq!(history[0].1[1], vec![t.v1.id, t.tool.id]);
    assert_eq!(t.fleet.world().conflicts().len(), 2);
    t.fleet.assert_settled(at(999));
}

// ---- the trigger table -------------------------------------------------------------------------

/// Scope of `rule` in `scopes` covers `computers`.
fn covers(scopes: &BTreeMap<RuleId, Scope>, rule: RuleId, computers: &[ComputerId]) -> bool {
    scopes
        .get(&rule)
        .is_some_and(|scope| computers.iter().all(|&c| scope.has_computer(c)))
}

/// Two rules on nested computer groups: `parent` (pc1) ⊃ `child` (pc2); rule P on the parent,
/// rule C on the child, both with `tool`; a third group `other` (pc3) with rule O.
struct Nested {
    fleet: Fleet,
    pcs: [ComputerId; 3],
    tool: Package,
    parent: ComputerGroupId,
    child: ComputerGroupId,
    other: ComputerGroupId,
    rule_p: RuleId,
    rule_c: RuleId,
    rule_o: RuleId,
}

impl Nested {
    fn new() -> Self {
        let fleet = Fleet::new();
        let pcs = [
            fleet.computer("pc1", "Windows"),
            fleet.computer("pc2", "Windows"),
            fleet.computer("pc3", "Windows"),
        ];
        let tool = fleet.package(fleet.family("tool"), "1", UpgradeBehavior::KeepOthers);
        let parent = fleet.computer_group("parent", None, &[pcs[0]]);
        let child = fleet.computer_group("child", Some(parent), &[pcs[1]]);
        let other = fleet.computer_group("other", None, &[pcs[2]]);
        let packages = fleet.package_group("tools", None, &[tool.id]);
        let rule_p = fleet.rule("parent", parent, packages, true);
        let rule_c = fleet.rule("child", child, packages, true);
        let rule_o = fleet.rule("other", other, packages, true);
        fleet.settle(at(0));
        Nested {
            fleet,
            pcs,
            tool,
            parent,
            child,
            other,
            rule_p,
            rule_c,
            rule_o,
        }
    }

    fn computers_with_jobs(&self, rule: RuleId) -> Vec<ComputerId> {
        let mut pcs: Vec<_> = self.fleet.jobs(rule).iter().map(|j| j.computer).collect();
        pcs.sort();
        pcs
    }
}

#[test]
fn trigger_computer_joins_and_leaves_a_group() {
    let n = Nested::new();
    let [pc1, pc2, pc3] = n.pcs;

    // pc3 joins the parent group directly.
    let before = n.fleet.world();
    n.fleet
        .store
        .set_computer_group_members(n.parent, &[pc1, pc3])
        .unwrap();
    let scopes = n.fleet.incremental(
        &RuleEvent::ComputerGroupsChanged { computers: None },
        &before,
        at(1),
    );
    assert!(covers(&scopes, n.rule_p, &[pc3]), "{scopes:?}");
    assert!(!scopes[&n.rule_p].has_computer(pc1), "{scopes:?}");
    assert_eq!(n.computers_with_jobs(n.rule_p), vec![pc1, pc2, pc3]);
    n.fleet.assert_settled(at(2));

    // ... and leaves it.
    let before = n.fleet.world();
    n.fleet
        .store
        .set_computer_group_members(n.parent, &[pc1])
        .unwrap();
    let scopes = n.fleet.incremental(
        &RuleEvent::ComputerGroupsChanged { computers: None },
        &before,
        at(3),
    );
    assert!(covers(&scopes, n.rule_p, &[pc3]), "{scopes:?}");
    assert_eq!(n.computers_with_jobs(n.rule_p), vec![pc1, pc2]);
    assert_eq!(n.computers_with_jobs(n.rule_o), vec![pc3]);
    n.fleet.assert_settled(at(4));
}

#[test]
fn trigger_computer_joins_a_subgroup_of_the_rules_group() {
    let n = Nested::new();
    let [_, pc2, pc3] = n.pcs;
    let before = n.fleet.world();

    n.fleet
        .store
        .set_computer_group_members(n.child, &[pc2, pc3])
        .unwrap();
    let scopes = n.fleet.incremental(
        &RuleEvent::ComputerGroupsChanged { computers: None },
        &before,
        at(1),
    );

    assert!(covers(&scopes, n.rule_p, &[pc3]), "{scopes:?}");
    assert!(covers(&scopes, n.rule_c, &[pc3]), "{scopes:?}");
    assert!(n.computers_with_jobs(n.rule_p).contains(&pc3));
    assert!(n.computers_with_jobs(n.rule_c).contains(&pc3));
    n.fleet.assert_settled(at(2));
}

#[test]
fn trigger_group_moved_under_another_parent() {
    let n = Nested::new();
    let [pc1, pc2, pc3] = n.pcs;
    let before = n.fleet.world();

    n.fleet
        .store
        .set_computer_group_parent(n.child, Some(n.other))
        .unwrap();
    let scopes = n.fleet.incremental(
        &RuleEvent::ComputerGroupsChanged { computers: None },
        &before,
        at(1),
    );

    assert!(
        covers(&scopes, n.rule_p, &[pc2]),
        "old ancestor: {scopes:?}"
    );
    assert!(
        covers(&scopes, n.rule_o, &[pc2]),
        "new ancestor: {scopes:?}"
    );
    assert_eq!(n.computers_with_jobs(n.rule_p), vec![pc1]);
    assert_eq!(n.computers_with_jobs(n.rule_o), vec![pc2, pc3]);
    assert_eq!(n.computers_with_jobs(n.rule_c), vec![pc2]);
    n.fleet.assert_settled(at(2));
}

#[test]
fn trigger_package_joins_leaves_and_reorders_in_a_package_group() {
    // Arrange.
    let fleet = Fleet::new();
    let pcs = [
        fleet.computer("pc1", "Windows"),
        fleet.computer("pc2", "Windows"),
    ];
    let [a, b] =
        ["a", "b"].map(|f| fleet.package(fleet.family(f), "1", UpgradeBehavior::KeepOthers));
    let computers = fleet.computer_group("office", None, &pcs);
    let top = fleet.package_group("top", None, &[a.id]);
    let sub = fleet.package_group("sub", Some(top), &[]);
    let rule = fleet.rule("tools", computers, top, true);
    let unrelated_group = fleet.package_group("unrelated", None, &[]);
    let unrelated_computers = fleet.computer_group("nobody", None, &[]);
    let unrelated = fleet.rule("unrelated", unrelated_computers, unrelated_group, true);
    fleet.settle(at(0));
    let step = |members: &[PackageId], group: PackageGroupId, now| {
        let before = fleet.world();
        fleet
            .store
            .set_package_group_members(group, members)
            .unwrap();
        let scopes = fleet.incremental(&RuleEvent::PackageGroupsChanged, &before, now);
        assert_eq!(scopes.get(&rule), Some(&Scope::full()), "{scopes:?}");
        assert!(!scopes.contains_key(&unrelated), "{scopes:?}");
        fleet.assert_settled(now);
    };

    // Joins the subgroup: an ancestor's rule.
    step(&[b.id], sub, at(1));
    for pc in pcs {
        assert_eq!(
            fleet.summary(rule, pc),
            vec![
                (a.id, JobKind::Install, JobState::Waiting, 1),
                (b.id, JobKind::Install, JobState::Waiting, 2),
            ]
        );
    }
    // Reorders (b moves to the top group, first).
    step(&[], sub, at(2));
    step(&[b.id, a.id], top, at(3));
    assert_eq!(
        fleet.summary(rule, pcs[0]),
        vec![
            (b.id, JobKind::Install, JobState::Waiting, 1),
            (a.id, JobKind::Install, JobState::Waiting, 2),
        ]
    );
    // Leaves.
    step(&[a.id], top, at(4));
    assert_eq!(
        fleet.summary(rule, pcs[1]),
        vec![(a.id, JobKind::Install, JobState::Waiting, 1)]
    );
}

#[test]
fn trigger_package_group_moved() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let [a, b] =
        ["a", "b"].map(|f| fleet.package(fleet.family(f), "1", UpgradeBehavior::KeepOthers));
    let computers = fleet.computer_group("office", None, &[pc]);
    let first = fleet.package_group("first", None, &[a.id]);
    let second = fleet.package_group("second", None, &[]);
    let moving = fleet.package_group("moving", Some(first), &[b.id]);
    let rule_1 = fleet.rule("first", computers, first, true);
    let rule_2 = fleet.rule("second", computers, second, true);
    fleet.settle(at(0));
    assert_eq!(fleet.jobs(rule_1).len(), 2);

    let before = fleet.world();
    fleet
        .store
        .set_package_group_parent(moving, Some(second))
        .unwrap();
    let scopes = fleet.incremental(&RuleEvent::PackageGroupsChanged, &before, at(1));

    assert_eq!(scopes.get(&rule_1), Some(&Scope::full()));
    assert_eq!(scopes.get(&rule_2), Some(&Scope::full()));
    assert_eq!(
        fleet.summary(rule_1, pc),
        vec![(a.id, JobKind::Install, JobState::Waiting, 1)]
    );
    assert_eq!(
        fleet.summary(rule_2, pc),
        vec![(b.id, JobKind::Install, JobState::Waiting, 1)]
    );
    fleet.assert_settled(at(2));
}

#[test]
fn trigger_assignment_added_and_removed_by_hand() {
    let n = Nested::new();
    let [pc1, pc2, _] = n.pcs;

    let before = n.fleet.world();
    n.fleet.assign(pc2, n.tool.id, at(1));
    let scopes = n.fleet.incremental(
        &RuleEvent::AssignmentsChanged { computer: pc2 },
        &before,
        at(1),
    );
    assert_eq!(scopes.get(&n.rule_p), Some(&Scope::computers([pc2])));
    assert_eq!(scopes.get(&n.rule_c), Some(&Scope::computers([pc2])));
    assert!(!scopes.contains_key(&n.rule_o));
    assert_eq!(
        n.fleet.install_job(n.rule_p, pc2, n.tool.id).state,
        JobState::AlreadyInstalled
    );
    assert_eq!(
        n.fleet.install_job(n.rule_p, pc1, n.tool.id).state,
        JobState::Waiting
    );
    n.fleet.assert_settled(at(2));

    let before = n.fleet.world();
    n.fleet.unassign(pc2, n.tool.id);
    let scopes = n.fleet.incremental(
        &RuleEvent::AssignmentsChanged { computer: pc2 },
        &before,
        at(3),
    );
    assert!(covers(&scopes, n.rule_c, &[pc2]));
    assert_eq!(
        n.fleet.install_job(n.rule_c, pc2, n.tool.id).state,
        JobState::Waiting
    );
    n.fleet.assert_settled(at(4));
}

#[test]
fn trigger_assignment_added_by_an_agent_report() {
    let n = Nested::new();
    let [_, pc2, _] = n.pcs;
    let job = n.fleet.install_job(n.rule_c, pc2, n.tool.id);
    let other = n.fleet.install_job(n.rule_p, pc2, n.tool.id);

    let outcome = n.fleet.report(job.id, ReportedState::Succeeded, at(1));

    assert_eq!(outcome.reevaluate, vec![pc2]);
    assert_eq!(
        n.fleet.store.job(job.id).unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        n.fleet.store.job(other.id).unwrap().state,
        JobState::AlreadyInstalled,
        "the other rule sees the installation"
    );
    n.fleet.assert_settled(at(2));
}

#[test]
fn trigger_package_edited_refreshes_only_the_rules_that_hold_it() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let loner = fleet.computer("pc2", "Windows");
    let [a, b] =
        ["a", "b"].map(|f| fleet.package(fleet.family(f), "1", UpgradeBehavior::KeepOthers));
    let computers = fleet.computer_group("office", None, &[pc]);
    let others = fleet.computer_group("lab", None, &[loner]);
    let with_a = fleet.package_group("with a", None, &[a.id]);
    let with_b = fleet.package_group("with b", None, &[b.id]);
    let rule_a = fleet.rule("a", computers, with_a, true);
    let rule_b = fleet.rule("b", others, with_b, true);
    fleet.settle(at(0));

    let before = fleet.world();
    let edited = fleet.edit_package(a.id, |p| p.install.command = "install a --new".into());
    let scopes = fleet.incremental(&RuleEvent::PackageEdited { package: a.id }, &before, at(1));

    assert_eq!(scopes.get(&rule_a), Some(&Scope::full()));
    assert!(!scopes.contains_key(&rule_b), "{scopes:?}");
    assert_eq!(
        fleet.install_job(rule_a, pc, a.id).snapshot,
        JobSnapshot::of(&edited, JobKind::Install)
    );
    fleet.assert_settled(at(2));
}

#[test]
fn trigger_package_compatibility_edit() {
    let cell = Cell::new();
    let fleet = &cell.fleet;
    fleet.settle(at(0));

    let before = fleet.world();
    cell.make_desired(Desired::Incompatible);
    let scopes = fleet.incremental(
        &RuleEvent::PackageEdited {
            package: cell.package.id,
        },
        &before,
        at(1),
    );

    assert_eq!(scopes.get(&cell.rule), Some(&Scope::full()));
    assert_eq!(
        fleet.install_job(cell.rule, cell.pc, cell.package.id).state,
        JobState::Incompatible
    );
    fleet.assert_settled(at(2));
}

#[test]
fn trigger_upgrade_behaviour_change_rechecks_conflicts_in_the_rule_and_across_rules() {
    // Arrange: v1 in rule A on both computers, v2 in rule B on pc2, and v2 also in A's group:
    // keep-others, so no conflict.
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::KeepOthers,
        false,
    );
    let fleet = &t.fleet;
    let [pc1, pc2] = t.pcs;
    let only_pc2 = fleet.computer_group("lab", None, &[pc2]);
    let second = fleet.package_group("second", None, &[t.v2.id]);
    let rule_b = fleet.rule("second", only_pc2, second, true);
    fleet.settle(at(0));
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_some());
    assert!(fleet
        .job_of(rule_b, pc2, t.v2.id, JobKind::Install)
        .is_some());

    // Act: v2 becomes implicit-remove.
    let before = fleet.world();
    fleet.edit_package(t.v2.id, |p| {
        p.upgrade_behavior = UpgradeBehavior::ImplicitRemove
    });
    let scopes = fleet.incremental(
        &RuleEvent::PackageEdited { package: t.v2.id },
        &before,
        at(1),
    );

    // Assert: B fully, A for pc2 (claims); the family's jobs on pc2 are gone in both rules.
    assert_eq!(scopes.get(&rule_b), Some(&Scope::full()));
    assert!(covers(&scopes, t.rule, &[pc2]), "{scopes:?}");
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_none());
    assert!(fleet.jobs(rule_b).is_empty());
    assert!(fleet
        .job_of(t.rule, pc1, t.v1.id, JobKind::Install)
        .is_some());
    assert_eq!(fleet.world().conflicts().len(), 1);
    fleet.assert_settled(at(2));

    // And back: the jobs return.
    let before = fleet.world();
    fleet.edit_package(t.v2.id, |p| {
        p.upgrade_behavior = UpgradeBehavior::KeepOthers
    });
    fleet.incremental(
        &RuleEvent::PackageEdited { package: t.v2.id },
        &before,
        at(3),
    );
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_some());
    assert!(fleet
        .job_of(rule_b, pc2, t.v2.id, JobKind::Install)
        .is_some());
    assert!(fleet.world().conflicts().is_empty());
    fleet.assert_settled(at(4));
}

#[test]
fn trigger_edit_of_an_assigned_package_outside_the_group_refreshes_its_uninstall_jobs() {
    // Arrange: v1 installed, not in any group; v2 (explicit-uninstall) in the group: the rule
    // wants a Waiting uninstall job of v1, snapshotting v1's uninstall procedure.
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let family = fleet.family("editor");
    let v1 = fleet.package(family, "1", UpgradeBehavior::KeepOthers);
    let v2 = fleet.package(family, "2", UpgradeBehavior::ExplicitUninstall);
    fleet.assign(pc, v1.id, at(-1));
    let computers = fleet.computer_group("office", None, &[pc]);
    let packages = fleet.package_group("tools", None, &[v2.id]);
    let rule = fleet.rule("tools", computers, packages, true);
    fleet.settle(at(0));
    assert!(fleet.job_of(rule, pc, v1.id, JobKind::Uninstall).is_some());

    // Act: v1's uninstall procedure is edited.
    let before = fleet.world();
    let edited = fleet.edit_package(v1.id, |p| {
        p.uninstall.command = "uninstall 1 --force".into()
    });
    let scopes = fleet.incremental(&RuleEvent::PackageEdited { package: v1.id }, &before, at(1));

    // Assert: the Waiting uninstall job gets the new snapshot, as a full evaluation would do.
    assert!(covers(&scopes, rule, &[pc]), "{scopes:?}");
    assert_eq!(
        fleet
            .job_of(rule, pc, v1.id, JobKind::Uninstall)
            .unwrap()
            .snapshot,
        JobSnapshot::of(&edited, JobKind::Uninstall)
    );
    fleet.assert_settled(at(2));
}

#[test]
fn trigger_computer_os_changed() {
    let fleet = Fleet::new();
    let pc = fleet.computer("pc1", "Windows");
    let package = fleet.package_for(
        fleet.family("editor"),
        "1",
        UpgradeBehavior::KeepOthers,
        "Windows",
    );
    let computers = fleet.computer_group("office", None, &[pc]);
    let packages = fleet.package_group("tools", None, &[package.id]);
    let rule = fleet.rule("tools", computers, packages, true);
    fleet.settle(at(0));

    let before = fleet.world();
    let mut computer = fleet.store.computer(pc).unwrap();
    computer.os = "Linux".into();
    fleet.store.update_computer(&computer).unwrap();
    let scopes = fleet.incremental(&RuleEvent::ComputerChanged { computer: pc }, &before, at(1));

    assert_eq!(scopes.get(&rule), Some(&Scope::computers([pc])));
    assert_eq!(
        fleet.install_job(rule, pc, package.id).state,
        JobState::Incompatible
    );
    fleet.assert_settled(at(2));
}

#[test]
fn trigger_computer_deleted() {
    // Arrange: pc2 has a Waiting job in rule C and a running one in rule P.
    let n = Nested::new();
    let [pc1, pc2, _] = n.pcs;
    let running = n.fleet.install_job(n.rule_p, pc2, n.tool.id);
    n.fleet.set_state(running.id, JobState::Executing, at(1));

    // Act.
    let before = n.fleet.world();
    n.fleet.store.delete_computer(pc2, at(2)).unwrap();
    let after = n.fleet.world();
    let scopes = scopes_for(
        &RuleEvent::ComputerDeleted { computer: pc2 },
        &before,
        &after,
    );
    let diffs: Vec<RuleDiff> = scopes
        .iter()
        .map(|(rule, scope)| after.evaluate(*rule, scope, at(2)))
        .collect();

    // Assert: both rules are re-evaluated for pc2; MemoryStore deleted its jobs (running ones
    // included) with the computer, so nothing is left to write.
    assert!(covers(&scopes, n.rule_p, &[pc2]), "{scopes:?}");
    assert!(covers(&scopes, n.rule_c, &[pc2]), "{scopes:?}");
    assert!(diffs.iter().all(RuleDiff::is_empty), "{diffs:?}");
    assert!(n.fleet.all_jobs().iter().all(|j| j.computer != pc2));
    assert_eq!(n.computers_with_jobs(n.rule_p), vec![pc1]);
    n.fleet.assert_settled(at(3));
}

#[test]
fn trigger_rule_created_and_edited() {
    let n = Nested::new();
    let [pc1, pc2, pc3] = n.pcs;
    let editor = n
        .fleet
        .package(n.fleet.family("editor"), "1", UpgradeBehavior::KeepOthers);
    let editors = n.fleet.package_group("editors", None, &[editor.id]);

    // Created.
    let before = n.fleet.world();
    let rule = n.fleet.rule("editors", n.child, editors, true);
    let scopes = n
        .fleet
        .incremental(&RuleEvent::RuleChanged { rule }, &before, at(1));
    assert_eq!(scopes.get(&rule), Some(&Scope::full()));
    assert_eq!(
        n.fleet.summary(rule, pc2),
        vec![(editor.id, JobKind::Install, JobState::Waiting, 1)]
    );
    n.fleet.assert_settled(at(2));

    // Edited: another computer group.
    let before = n.fleet.world();
    let mut stored = n.fleet.store.rule(rule).unwrap();
    stored.computer_group = n.other;
    n.fleet.store.update_rule(&stored).unwrap();
    let scopes = n
        .fleet
        .incremental(&RuleEvent::RuleChanged { rule }, &before, at(3));
    assert_eq!(scopes.get(&rule), Some(&Scope::full()));
    assert!(n.fleet.summary(rule, pc2).is_empty());
    assert_eq!(n.fleet.summary(rule, pc3).len(), 1);
    assert!(n.fleet.summary(rule, pc1).is_empty());
    n.fleet.assert_settled(at(4));
}

#[test]
fn trigger_rule_enabled_and_disabled_changes_another_rules_conflicts() {
    // Arrange: rule A (v1, implicit-remove) enabled; rule B (v2) disabled on pc2.
    let t = TwoVersions::new(
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::KeepOthers,
        false,
    );
    let fleet = &t.fleet;
    let [pc1, pc2] = t.pcs;
    let only_pc2 = fleet.computer_group("lab", None, &[pc2]);
    let second = fleet.package_group("second", None, &[t.v2.id]);
    let rule_b = fleet.rule("second", only_pc2, second, false);
    fleet.settle(at(0));
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_some());

    // Enabled.
    let before = fleet.world();
    fleet.set_enabled(rule_b, true);
    let scopes = fleet.incremental(&RuleEvent::RuleChanged { rule: rule_b }, &before, at(1));
    assert_eq!(scopes.get(&rule_b), Some(&Scope::full()));
    assert!(covers(&scopes, t.rule, &[pc2]), "{scopes:?}");
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_none());
    assert!(fleet
        .job_of(t.rule, pc1, t.v1.id, JobKind::Install)
        .is_some());
    assert!(fleet.jobs(rule_b).is_empty());
    fleet.assert_settled(at(2));

    // Disabled again.
    let before = fleet.world();
    fleet.set_enabled(rule_b, false);
    let scopes = fleet.incremental(&RuleEvent::RuleChanged { rule: rule_b }, &before, at(3));
    assert!(covers(&scopes, t.rule, &[pc2]), "{scopes:?}");
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_some());
    fleet.assert_settled(at(4));
}

/// Rule A (v1) and rule B (v2 implicit-remove, the tool, a viewer) on pc2, in conflict; B's
/// viewer job is Downloading. B is deleted: retired on the world without it.
struct DeletedRule {
    t: TwoVersions,
    rule_b: RuleId,
    viewer: Package,
    waiting: Job,
    running: Job,
    scopes: BTreeMap<RuleId, Scope>,
}

fn delete_rule_b() -> DeletedRule {
    // Arrange.
    let t = TwoVersions::new(
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        false,
    );
    let fleet = &t.fleet;
    let [_, pc2] = t.pcs;
    let only_pc2 = fleet.computer_group("lab", None, &[pc2]);
    let viewer = fleet.package(fleet.family("viewer"), "1", UpgradeBehavior::KeepOthers);
    let second = fleet.package_group("second", None, &[t.v2.id, t.tool.id, viewer.id]);
    let rule_b = fleet.rule("second", only_pc2, second, true);
    fleet.settle(at(0));
    assert!(fleet
        .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
        .is_none());
    let waiting = fleet.install_job(rule_b, pc2, t.tool.id);
    let running = fleet.install_job(rule_b, pc2, viewer.id);
    let running = fleet.set_state(running.id, JobState::Downloading, at(1));

    // Act: delete the rule; the store's world no longer has it, its jobs still exist.
    let before = fleet.world();
    fleet.store.delete_rule(rule_b).unwrap();
    let after = fleet.world();
    assert!(!after.rules.contains_key(&rule_b));
    let scopes = fleet.incremental_to(
        &RuleEvent::RuleChanged { rule: rule_b },
        &before,
        &after,
        at(2),
    );
    DeletedRule {
        t,
        rule_b,
        viewer,
        waiting,
        running,
        scopes,
    }
}

#[test]
fn trigger_rule_deleted_retires_its_jobs_and_frees_another_rules_conflicts() {
    let DeletedRule {
        t,
        rule_b,
        viewer,
        waiting,
        running,
        scopes,
    } = delete_rule_b();
    let fleet = &t.fleet;
    let [_, pc2] = t.pcs;

    // Assert: B retired, A re-evaluated for pc2 without B's claims.
    assert_eq!(scopes.get(&rule_b), Some(&Scope::full()));
    assert!(covers(&scopes, t.rule, &[pc2]), "{scopes:?}");
    assert!(is_deleted(fleet, waiting.id));
    let orphan = fleet.store.job(running.id).unwrap();
    assert!(orphan.orphaned);
    assert_eq!(orphan.state, JobState::Downloading);
    assert!(
        fleet
            .job_of(t.rule, pc2, t.v1.id, JobKind::Install)
            .is_some(),
        "the other rule's conflict is gone"
    );
    assert!(
        fleet.store.rule(rule_b).is_ok(),
        "a deleted rule stays while its orphan runs"
    );

    // The orphan's final report deletes it, and the rule goes with it.
    fleet.report_hiding(running.id, ReportedState::Succeeded, at(3), Some(rule_b));
    assert!(is_deleted(fleet, running.id));
    assert!(fleet.assigned(pc2).contains(&viewer.id));
    assert!(
        fleet.store.rule(rule_b).is_err(),
        "removed with its last job"
    );
    assert!(!fleet.world().rules.contains_key(&rule_b));
    fleet.assert_settled(at(4));
}

#[test]
fn trigger_rule_deleted_can_go_after_its_orphans_final_report_on_the_stores_world() {
    let DeletedRule {
        t, rule_b, running, ..
    } = delete_rule_b();
    let fleet = &t.fleet;

    // Act: the orphan's final report, re-evaluated as `outcome.reevaluate` says, on the world the
    // store gives.
    fleet.report(running.id, ReportedState::Succeeded, at(3));

    // Assert: "the rule itself disappears once its last orphan is gone".
    assert!(is_deleted(fleet, running.id));
    assert!(fleet.jobs(rule_b).is_empty(), "{:#?}", fleet.jobs(rule_b));
    assert!(
        fleet.store.rule(rule_b).is_err(),
        "removed with its last job"
    );
}

#[test]
fn trigger_final_report_on_an_orphan_deletes_it_without_a_rule_evaluation() {
    let (cell, job) = Cell::with_existing(Some(JobState::Executing));
    let job = job.unwrap();
    cell.make_desired(Desired::Unwanted);
    cell.fleet.evaluate(cell.rule, &Scope::full(), at(1));
    let snapshot = cell.fleet.store.report_snapshot(job.id).unwrap();
    let report = AgentReport {
        job: job.id,
        attempt: 1,
        state: ReportedState::Failed,
        return_code: Some(1),
        download_progress: None,
        output: None,
    };

    let outcome = apply_report(&snapshot, cell.pc, &report, at(2)).unwrap();
    cell.fleet.store.apply(&outcome.changes).unwrap();

    // A rule's job that stops running names its computer for re-evaluation.
    assert_eq!(outcome.reevaluate, [cell.pc]);
    assert!(is_deleted(&cell.fleet, job.id));
    cell.fleet.assert_settled(at(3));
}

// ---- properties --------------------------------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    const OSES: [&str; 2] = ["Windows", "Linux"];
    const BEHAVIORS: [UpgradeBehavior; 3] = [
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::ExplicitUninstall,
    ];

    /// A small universe: 3 computers; 5 packages in 2 families (a0..a2, b0, b1); computer groups
    /// g0 ⊃ g1 and g2; package groups p0 ⊃ p1 and p2; rules (g0, p0), (g2, p2), (g1, p1).
    struct Universe {
        fleet: Fleet,
        pcs: Vec<ComputerId>,
        packages: Vec<PackageId>,
        computer_groups: Vec<ComputerGroupId>,
        package_groups: Vec<PackageGroupId>,
        rules: Vec<RuleId>,
    }

    #[derive(Debug, Clone)]
    struct Setup {
        behaviors: Vec<usize>,
        compat: Vec<Option<usize>>,
        pc_os: Vec<usize>,
        computer_members: Vec<Vec<bool>>,
        package_members: Vec<Vec<usize>>,
        enabled: Vec<bool>,
        assigned: Vec<(usize, usize)>,
    }

    fn members() -> impl Strategy<Value = Vec<usize>> {
        proptest::sample::subsequence((0..5).collect::<Vec<usize>>(), 0..=5).prop_shuffle()
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            proptest::collection::vec(0..3usize, 5),
            proptest::collection::vec(proptest::option::of(0..2usize), 5),
            proptest::collection::vec(0..2usize, 3),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), 3), 3),
            proptest::collection::vec(members(), 3),
            proptest::collection::vec(any::<bool>(), 3),
            proptest::collection::vec((0..3usize, 0..5usize), 0..4),
        )
            .prop_map(
                |(
                    behaviors,
                    compat,
                    pc_os,
                    computer_members,
                    package_members,
                    enabled,
                    assigned,
                )| {
                    Setup {
                        behaviors,
                        compat,
                        pc_os,
                        computer_members,
                        package_members,
                        enabled,
                        assigned,
                    }
                },
            )
    }

    impl Universe {
        fn build(setup: &Setup) -> Self {
            let fleet = Fleet::new();
            let pcs: Vec<ComputerId> = (0..3)
                .map(|i| fleet.computer(&format!("pc{i}"), OSES[setup.pc_os[i]]))
                .collect();
            let families = [fleet.family("a"), fleet.family("b")];
            let packages: Vec<PackageId> = (0..5)
                .map(|i| {
                    let family = families[usize::from(i >= 3)];
                    let package =
                        fleet.package(family, &format!("{i}"), BEHAVIORS[setup.behaviors[i]]);
                    if let Some(os) = setup.compat[i] {
                        fleet.edit_package(package.id, |p| {
                            p.compatibility.os = vec![OSES[os].into()];
                        });
                    }
                    package.id
                })
                .collect();
            let pick_pcs = |flags: &[bool]| -> Vec<ComputerId> {
                pcs.iter()
                    .zip(flags)
                    .filter(|(_, &on)| on)
                    .map(|(pc, _)| *pc)
                    .collect()
            };
            let g0 = fleet.computer_group("g0", None, &pick_pcs(&setup.computer_members[0]));
            let g1 = fleet.computer_group("g1", Some(g0), &pick_pcs(&setup.computer_members[1]));
            let g2 = fleet.computer_group("g2", None, &pick_pcs(&setup.computer_members[2]));
            let pick = |indexes: &[usize]| -> Vec<PackageId> {
                indexes.iter().map(|&i| packages[i]).collect()
            };
            let p0 = fleet.package_group("p0", None, &pick(&setup.package_members[0]));
            let p1 = fleet.package_group("p1", Some(p0), &pick(&setup.package_members[1]));
            let p2 = fleet.package_group("p2", None, &pick(&setup.package_members[2]));
            let rules = vec![
                fleet.rule("r0", g0, p0, setup.enabled[0]),
                fleet.rule("r1", g2, p2, setup.enabled[1]),
                fleet.rule("r2", g1, p1, setup.enabled[2]),
            ];
            for (n, &(pc, package)) in setup.assigned.iter().enumerate() {
                fleet.assign(pcs[pc], packages[package], at(-100 + n as i64));
            }
            Universe {
                fleet,
                pcs,
                packages,
                computer_groups: vec![g0, g1, g2],
                package_groups: vec![p0, p1, p2],
                rules,
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        ComputerMembers(usize, Vec<bool>),
        MoveChildGroup(bool),
        PackageMembers(usize, Vec<usize>),
        Assign(usize, usize),
        Unassign(usize, usize),
        /// The agent of a computer polls and reports on the n-th job handed out: 0 executing,
        /// 1 success, 2 failure.
        Agent(usize, usize, u8),
        ToggleRule(usize),
        Compatibility(usize, Option<usize>),
        Upgrade(usize, usize),
        ComputerOs(usize, usize),
    }

    /// A random event; `upgrades`: also upgrade-behaviour edits, `failures`: also agent failure
    /// reports (each meets a bug, see the ignored properties).
    fn event(upgrades: bool, failures: bool) -> impl Strategy<Value = Event> {
        let reports: u8 = if failures { 3 } else { 2 };
        prop_oneof![
            1 => (0..3usize, proptest::collection::vec(any::<bool>(), 3))
                .prop_map(|(g, m)| Event::ComputerMembers(g, m)),
            1 => any::<bool>().prop_map(Event::MoveChildGroup),
            1 => (0..3usize, members()).prop_map(|(g, m)| Event::PackageMembers(g, m)),
            1 => (0..3usize, 0..5usize).prop_map(|(c, p)| Event::Assign(c, p)),
            1 => (0..3usize, 0..5usize).prop_map(|(c, p)| Event::Unassign(c, p)),
            3 => (0..3usize, 0..4usize, 0..reports).prop_map(|(c, n, s)| Event::Agent(c, n, s)),
            1 => (0..3usize).prop_map(Event::ToggleRule),
            1 => (0..5usize, proptest::option::of(0..2usize))
                .prop_map(|(p, os)| Event::Compatibility(p, os)),
            1 => (0..5usize, 0..3usize).prop_map(move |(p, b)| if upgrades {
                Event::Upgrade(p, b)
            } else {
                Event::Compatibility(p, None)
            }),
            1 => (0..3usize, 0..2usize).prop_map(|(c, os)| Event::ComputerOs(c, os)),
        ]
    }

    impl Universe {
        /// Applies `event` at `now` with its incremental evaluation.
        fn step(&self, event: &Event, now: DateTime<Utc>) {
            let fleet = &self.fleet;
            let before = fleet.world();
            let trigger = match event {
                Event::ComputerMembers(g, flags) => {
                    let members: Vec<ComputerId> = self
                        .pcs
                        .iter()
                        .zip(flags)
                        .filter(|(_, &on)| on)
                        .map(|(pc, _)| *pc)
                        .collect();
                    fleet
                        .store
                        .set_computer_group_members(self.computer_groups[*g], &members)
                        .unwrap();
                    RuleEvent::ComputerGroupsChanged { computers: None }
                }
                Event::MoveChildGroup(under_g0) => {
                    let parent = under_g0.then_some(self.computer_groups[0]);
                    fleet
                        .store
                        .set_computer_group_parent(self.computer_groups[1], parent)
                        .unwrap();
                    RuleEvent::ComputerGroupsChanged { computers: None }
                }
                Event::PackageMembers(g, indexes) => {
                    let members: Vec<PackageId> =
                        indexes.iter().map(|&i| self.packages[i]).collect();
                    fleet
                        .store
                        .set_package_group_members(self.package_groups[*g], &members)
                        .unwrap();
                    RuleEvent::PackageGroupsChanged
                }
                Event::Assign(c, p) => {
                    fleet.assign(self.pcs[*c], self.packages[*p], now);
                    RuleEvent::AssignmentsChanged {
                        computer: self.pcs[*c],
                    }
                }
                Event::Unassign(c, p) => {
                    fleet.unassign(self.pcs[*c], self.packages[*p]);
                    RuleEvent::AssignmentsChanged {
                        computer: self.pcs[*c],
                    }
                }
                Event::Agent(c, n, what) => {
                    let delivered = fleet.poll(self.pcs[*c], now);
                    if let Some(&id) = delivered.get(n % delivered.len().max(1)) {
                        let state = match what {
                            0 => ReportedState::Executing,
                            1 => ReportedState::Succeeded,
                            _ => ReportedState::Failed,
                        };
                        // `report` re-evaluates what the outcome names.
                        fleet.report(id, state, now);
                    }
                    return;
                }
                Event::ToggleRule(r) => {
                    let rule = self.rules[*r];
                    let enabled = fleet.store.rule(rule).unwrap().enabled;
                    fleet.set_enabled(rule, !enabled);
                    RuleEvent::RuleChanged { rule }
                }
                Event::Compatibility(p, os) => {
                    let package = self.packages[*p];
                    fleet.edit_package(package, |pk| {
                        pk.compatibility.os =
                            os.map(|os| vec![OSES[os].into()]).unwrap_or_default();
                    });
                    RuleEvent::PackageEdited { package }
                }
                Event::Upgrade(p, b) => {
                    let package = self.packages[*p];
                    fleet.edit_package(package, |pk| pk.upgrade_behavior = BEHAVIORS[*b]);
                    RuleEvent::PackageEdited { package }
                }
                Event::ComputerOs(c, os) => {
                    let mut computer = fleet.store.computer(self.pcs[*c]).unwrap();
                    computer.os = OSES[*os].into();
                    fleet.store.update_computer(&computer).unwrap();
                    RuleEvent::ComputerChanged {
                        computer: computer.id,
                    }
                }
            };
            fleet.incremental(&trigger, &before, now);
        }

        /// Puts some existing jobs into other states, as agents and the server would.
        fn scramble(&self, states: &[usize], now: DateTime<Utc>) {
            for (job, &state) in self.fleet.all_jobs().iter().zip(states) {
                self.fleet.set_state(job.id, JobState::ALL[state], now);
            }
        }
    }

    /// Builds the universe, settles it, then runs `events`, each followed by its incremental
    /// evaluation; after every event a full evaluation of every rule must be empty.
    fn check_incremental(setup: &Setup, events: &[Event]) -> Result<(), TestCaseError> {
        // Arrange.
        let universe = Universe::build(setup);
        universe.fleet.settle(at(0));
        // Act, and assert after every event.
        for (n, event) in events.iter().enumerate() {
            let now = at(1 + n as i64);
            universe.step(event, now);
            for diff in universe.fleet.full_diffs(now) {
                prop_assert!(
                    diff.is_empty(),
                    "after event {} {:?}: rule {}: {:#?}",
                    n,
                    event,
                    diff.rule,
                    diff
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn evaluating_any_rule_twice_gives_an_empty_second_diff(
            setup in setup(),
            states in proptest::collection::vec(0..8usize, 0..12),
            edits in proptest::collection::vec(event(true, true), 0..3),
        ) {
            // Arrange: jobs in every state, then the world changes without re-evaluation.
            let universe = Universe::build(&setup);
            universe.fleet.settle(at(0));
            universe.scramble(&states, at(1));
            for (n, edit) in edits.iter().enumerate() {
                if !matches!(edit, Event::Agent(..)) {
                    universe.step(edit, at(2 + n as i64));
                }
            }
            for &rule in &universe.rules {
                // Act.
                universe.fleet.evaluate(rule, &Scope::full(), at(10));
                let second = universe.fleet.world().evaluate(rule, &Scope::full(), at(11));
                // Assert.
                prop_assert!(second.is_empty(), "rule {}: {:#?}", rule, second);
            }
        }

        #[test]
        fn incremental_evaluation_after_any_events_leaves_nothing_for_a_full_one(
            setup in setup(),
            events in proptest::collection::vec(event(false, false), 1..16),
        ) {
            check_incremental(&setup, &events)?;
        }
    }

    proptest! {
        // Enough cases to meet the bug reliably (it needs an upgrade edit of an assigned package
        // outside the group of a rule with an explicit-uninstall sibling).
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn incremental_evaluation_with_upgrade_edits_leaves_nothing_for_a_full_one(
            setup in setup(),
            events in proptest::collection::vec(event(true, false), 1..16),
        ) {
            check_incremental(&setup, &events)?;
        }

        #[test]
        fn incremental_evaluation_with_failure_reports_leaves_nothing_for_a_full_one(
            setup in setup(),
            events in proptest::collection::vec(event(false, true), 1..16),
        ) {
            check_incremental(&setup, &events)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Matching tries the job after the last one matched first, which is right when the
        /// group lists packages in id order; any other order must match the same jobs.
        #[test]
        fn any_package_order_settles_and_reordering_only_renumbers(
            order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            reorder in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            installed in 0..6usize,
        ) {
            let fleet = Fleet::new();
            let pcs = [fleet.computer("pc1", "Windows"), fleet.computer("pc2", "Windows")];
            let packages: Vec<PackageId> = (0..6)
                .map(|i| {
                    let family = fleet.family(&format!("family {i}"));
                    fleet.package(family, "1", UpgradeBehavior::KeepOthers).id
                })
                .collect();
            let in_order = |order: &[usize]| order.iter().map(|&i| packages[i]).collect::<Vec<_>>();
            let computers = fleet.computer_group("all", None, &pcs);
            let group = fleet.package_group("set", None, &in_order(&order));
            let rule = fleet.rule("r", computers, group, true);
            fleet.assign(pcs[0], packages[installed], at(0));

            let first = fleet.evaluate(rule, &Scope::full(), at(1));
            prop_assert_eq!(first.insert.len(), 12);
            for job in &first.insert {
                prop_assert_eq!(in_order(&order)[job.sequence as usize - 1], job.package);
            }
            fleet.assert_settled(at(2));

            fleet.store.set_package_group_members(group, &in_order(&reorder)).unwrap();
            let second = fleet.evaluate(rule, &Scope::full(), at(3));
            prop_assert!(second.insert.is_empty() && second.delete.is_empty(), "{:?}", second);
            fleet.assert_settled(at(4));
            let jobs = fleet.jobs(rule);
            prop_assert_eq!(jobs.len(), 12);
            for job in jobs {
                prop_assert_eq!(in_order(&reorder)[job.sequence as usize - 1], job.package);
                let expected = if job.computer == pcs[0] && job.package == packages[installed] {
                    JobState::AlreadyInstalled
                } else {
                    JobState::Waiting
                };
                prop_assert_eq!(job.state, expected);
            }
        }
    }
}
