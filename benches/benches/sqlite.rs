//! The SQLite rows of `benches/PERFORMANCE.md`, on a file database in a temporary directory
//! holding the fixed seed of `oco_benches::sqlite` (20,000 computers, 1,000,000 jobs: 1,000
//! polled computers with 20 Waiting jobs in 4 containers, and a rule over 9,800 computers × 100
//! packages with every job existing):
//!
//! - `sqlite/planner_snapshot`: one polled computer's planner snapshot, rotating over the 1,000
//!   polled computers; asserts its 20 jobs and 4 origins.
//! - `sqlite/apply_report/full`: a final success report on a Waiting job, end to end:
//!   `report_snapshot`, `apply_report`, `apply` (the job becomes Succeeded and an assignment is
//!   recorded). `sqlite/apply_report/apply_only` times the `apply` of that change set alone.
//!   Each iteration reports on the next of the 20,000 polled jobs (rotating over computers);
//!   the job and assignment are put back before the next iteration, outside the timing.
//! - `sqlite/rule_join_one/sqlite`: one computer joins the rule's group (it becomes the member
//!   of `office/new`, a subgroup of the rule's `office`): after `set_computer_group_members`,
//!   `rule_snapshot_for` that computer, `RuleWorld::from_snapshot`, `scopes_for`, `evaluate`
//!   (100 inserts) and `apply`. The world before the join is read before the membership change,
//!   outside the timing, as a server would read it. `…/memory_store` is the same on a
//!   `MemoryStore` holding the same seed (the baseline), `…/core` the in-memory part alone
//!   (`scopes_for` and `evaluate` on worlds read before). Each iteration takes the next computer
//!   of the join pool; it leaves again (its jobs deleted, tombstones purged) before the next
//!   iteration, outside the timing.
//! - `sqlite/deploy_1m/apply`: `apply` of a `Change::CreateContainer` of 1,000,000 jobs (every
//!   computer × 50 packages, built by `deploy` outside the timing), into the seeded database;
//!   `sqlite/deploy_1m/end_to_end` adds `deploy_snapshot` and `deploy`. The container is deleted
//!   again before the next iteration, outside the timing.
//!
//! Under `--test` (`cargo bench -- --test`, one untimed pass each, what CI runs on 2 cores) the
//! seed is `SEED_TEST` (2,000 computers, 100 polled, 480 rule members, 50,000 jobs) and the
//! deploy 2,000 × 25 = 50,000 jobs, so that the whole file takes seconds.
//!
//! Run: `cargo bench -p oco-benches --bench sqlite` (about 3.5 minutes on 2 cores, most of it
//! the two 1M deploys and the in-memory baseline; the `--test` pass takes about a second).

// Setup panics on invalid fixed inputs or a failing store, which is a bug in the bench or the
// store, not a case to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode,
};
use oco_benches::sqlite::{
    deploy_request, seed, sqlite_now, SeedCase, Seeded, POLLED_CONTAINERS, POLLED_JOBS, SEED_1M,
    SEED_TEST,
};
use oco_core::deploy::deploy;
use oco_core::model::{ComputerId, Job, JobState};
use oco_core::report::{apply_report, AgentReport, Disposition, ReportedState};
use oco_core::rules::{scopes_for, RuleEvent, RuleWorld};
use oco_core::store::{Applied, Change, ChangeSet, MemoryStore, RuleSnapshot, Store};
use oco_store_sqlite::SqliteStore;

fn sqlite(c: &mut Criterion) {
    // Criterion passes `--test` for one untimed pass; the full seed would take a minute there.
    let test = std::env::args().any(|arg| arg == "--test");
    let case = if test { SEED_TEST } else { SEED_1M };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("oco.sqlite3")).unwrap();
    let seeded = seed(&store, case).unwrap();

    let mut group = c.benchmark_group("sqlite");
    planner_snapshot(&mut group, &store, &seeded);
    report(&mut group, &store, &seeded);
    rule_join_one(&mut group, &store, &seeded, case);
    deploy_1m(&mut group, &store, &seeded);
    group.finish();
}

/// One polled computer's planner snapshot, rotating over the polled computers.
fn planner_snapshot(group: &mut BenchmarkGroup<'_, WallTime>, store: &dyn Store, seeded: &Seeded) {
    let next = Cell::new(0);
    group.bench_function("planner_snapshot", |b| {
        b.iter(|| {
            let computer = seeded.polled[next.get() % seeded.polled.len()];
            next.set(next.get() + 1);
            let snapshot = store.planner_snapshot(black_box(computer)).unwrap();
            assert_eq!(snapshot.jobs.len(), POLLED_JOBS);
            assert_eq!(snapshot.origins.len(), POLLED_CONTAINERS);
            snapshot
        })
    });
}

/// A final success report on the next Waiting job of the polled computers: end to end, and the
/// `apply` of its change set alone.
fn report(group: &mut BenchmarkGroup<'_, WallTime>, store: &dyn Store, seeded: &Seeded) {
    let now = sqlite_now();
    let reports = ReportRotation::new(store, seeded);
    group.bench_function(BenchmarkId::new("apply_report", "full"), |b| {
        b.iter_batched(
            || reports.next(),
            |job| {
                let snapshot = store.report_snapshot(job.id).unwrap();
                let outcome = apply_report(&snapshot, job.computer, &success(&job), now).unwrap();
                assert_eq!(outcome.disposition, Disposition::Applied);
                assert_eq!(outcome.reevaluate, [job.computer]);
                store.apply(&outcome.changes).unwrap();
                outcome
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function(BenchmarkId::new("apply_report", "apply_only"), |b| {
        b.iter_batched(
            || {
                let job = reports.next();
                let snapshot = store.report_snapshot(job.id).unwrap();
                apply_report(&snapshot, job.computer, &success(&job), now)
                    .unwrap()
                    .changes
            },
            |changes| {
                // The job's update and the assignment's upsert.
                assert!(changes.changes.len() >= 2);
                store.apply(black_box(&changes)).unwrap();
                changes
            },
            BatchSize::PerIteration,
        )
    });
    reports.restore();
}

/// Hands out the polled computers' Waiting jobs in turn (one computer after another), and puts
/// the previous one back (Waiting, no assignment) first, so the seed is unchanged afterwards.
struct ReportRotation<'a> {
    store: &'a dyn Store,
    seeded: &'a Seeded,
    next: Cell<usize>,
    reported: RefCell<Option<Job>>,
}

impl<'a> ReportRotation<'a> {
    fn new(store: &'a dyn Store, seeded: &'a Seeded) -> Self {
        ReportRotation {
            store,
            seeded,
            next: Cell::new(0),
            reported: RefCell::new(None),
        }
    }

    /// The next job to report on, as stored.
    fn next(&self) -> Job {
        self.restore();
        let (n, computers) = (self.next.get(), self.seeded.polled.len());
        self.next.set(n + 1);
        // `polled_jobs` lists each computer's jobs together: step over computers first.
        let index = (n % computers) * POLLED_JOBS + (n / computers) % POLLED_JOBS;
        let job = self.store.job(self.seeded.polled_jobs[index]).unwrap();
        assert_eq!(job.state, JobState::Waiting);
        *self.reported.borrow_mut() = Some(job.clone());
        job
    }

    /// Puts the last job handed out back as it was, without the assignment its success made.
    fn restore(&self) {
        let Some(original) = self.reported.borrow_mut().take() else {
            return;
        };
        let current = self.store.job(original.id).unwrap();
        if current == original {
            return;
        }
        let restore = ChangeSet {
            changes: vec![
                Change::UpdateJob {
                    expected: current.revision,
                    job: original.clone(),
                },
                Change::DeleteAssignment {
                    computer: original.computer,
                    package: original.package,
                },
            ],
        };
        self.store.apply(&restore).unwrap();
    }
}

/// The agent's report that `job` succeeded with code 0.
fn success(job: &Job) -> AgentReport {
    AgentReport {
        job: job.id,
        attempt: job.attempt,
        state: ReportedState::Succeeded,
        return_code: Some(0),
        download_progress: None,
        output: Some("Installation completed successfully.\r\n".into()),
    }
}

/// One computer joins the rule's group, on SQLite, on the in-memory store (the baseline, seeded
/// alike), and the in-memory evaluation alone.
fn rule_join_one(
    group: &mut BenchmarkGroup<'_, WallTime>,
    store: &dyn Store,
    seeded: &Seeded,
    case: SeedCase,
) {
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("rule_join_one", "sqlite"), |b| {
        let joins = JoinRotation::new(store, seeded, case);
        b.iter_batched(
            || joins.next(),
            |join| joins.run(join),
            BatchSize::PerIteration,
        );
        joins.leave();
    });

    // The in-memory store reads its whole world for a scoped snapshot (hundreds of
    // milliseconds on the full seed): ten samples of one iteration each.
    let memory = MemoryStore::new();
    let memory_seeded = seed(&memory, case).unwrap();
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("rule_join_one", "memory_store"), |b| {
        let joins = JoinRotation::new(&memory, &memory_seeded, case);
        b.iter_batched(
            || joins.next(),
            |join| joins.run(join),
            BatchSize::PerIteration,
        );
        joins.leave();
    });
    drop(memory);
    group.sampling_mode(SamplingMode::Auto);
    group.sample_size(50);

    // The worlds of one join, read from SQLite; only the evaluation is timed.
    let joins = JoinRotation::new(store, seeded, case);
    let join = joins.next();
    let after = RuleWorld::from_snapshot(&rule_snapshot_for(store, &[join.computer]));
    store
        .set_computer_group_members(seeded.join_group, &[])
        .unwrap();
    let event = join.event();
    group.bench_function(BenchmarkId::new("rule_join_one", "core"), |b| {
        b.iter(|| {
            let scopes = scopes_for(&event, black_box(&join.before), black_box(&after));
            let diff = after.evaluate(seeded.rule, &scopes[&seeded.rule], sqlite_now());
            assert_eq!(diff.insert.len(), case.rule_packages);
            diff
        })
    });
}

/// A computer that has just joined the rule's group, with the world read before it did.
struct Join {
    computer: ComputerId,
    before: RuleWorld,
}

impl Join {
    /// The event the server raises: it knows which computer joined.
    fn event(&self) -> RuleEvent {
        RuleEvent::ComputerGroupsChanged {
            computers: Some(vec![self.computer]),
        }
    }
}

/// Lets the computers of the join pool join the rule in turn; each leaves again (its jobs
/// deleted, their tombstones purged) before the next joins.
struct JoinRotation<'a> {
    store: &'a dyn Store,
    seeded: &'a Seeded,
    packages: usize,
    next: Cell<usize>,
    joined: Cell<Option<ComputerId>>,
}

impl<'a> JoinRotation<'a> {
    fn new(store: &'a dyn Store, seeded: &'a Seeded, case: SeedCase) -> Self {
        JoinRotation {
            store,
            seeded,
            packages: case.rule_packages,
            next: Cell::new(0),
            joined: Cell::new(None),
        }
    }

    /// The previous computer leaves; the next one joins (the membership change, untimed).
    fn next(&self) -> Join {
        self.leave();
        let pool = &self.seeded.join_pool;
        let computer = pool[self.next.get() % pool.len()];
        self.next.set(self.next.get() + 1);
        let before = RuleWorld::from_snapshot(&rule_snapshot_for(self.store, &[computer]));
        self.store
            .set_computer_group_members(self.seeded.join_group, &[computer])
            .unwrap();
        self.joined.set(Some(computer));
        Join { computer, before }
    }

    /// What the server does after the membership change: read the computer's part of the rule
    /// world, evaluate it and persist the diff.
    fn run(&self, join: Join) -> (RuleWorld, Applied) {
        let rule = self.seeded.rule;
        let after = RuleWorld::from_snapshot(&rule_snapshot_for(self.store, &[join.computer]));
        let scopes = scopes_for(&join.event(), &join.before, &after);
        let diff = after.evaluate(rule, &scopes[&rule], sqlite_now());
        assert_eq!((diff.insert.len(), diff.delete.len()), (self.packages, 0));
        let applied = self.store.apply(&diff.into_change_set()).unwrap();
        assert_eq!(applied.jobs.len(), self.packages);
        (after, applied)
    }

    /// The computer that joined last leaves: its jobs are deleted and their tombstones purged.
    fn leave(&self) {
        let Some(computer) = self.joined.take() else {
            return;
        };
        let rule = self.seeded.rule;
        let before = RuleWorld::from_snapshot(&rule_snapshot_for(self.store, &[computer]));
        self.store
            .set_computer_group_members(self.seeded.join_group, &[])
            .unwrap();
        let after = RuleWorld::from_snapshot(&rule_snapshot_for(self.store, &[computer]));
        let event = RuleEvent::ComputerGroupsChanged {
            computers: Some(vec![computer]),
        };
        let scopes = scopes_for(&event, &before, &after);
        let diff = after.evaluate(rule, &scopes[&rule], sqlite_now());
        assert_eq!(diff.delete.len(), self.packages);
        let mut changes = diff.into_change_set();
        changes.push(Change::PurgeTombstones {
            deleted_before: sqlite_now() + oco_core::chrono::Duration::days(1),
        });
        self.store.apply(&changes).unwrap();
    }
}

/// The rule snapshot restricted to `computers`.
fn rule_snapshot_for(store: &dyn Store, computers: &[ComputerId]) -> RuleSnapshot {
    store.rule_snapshot_for(computers).unwrap()
}

/// A container of every computer × 50 packages (1,000,000 jobs) into the seeded database:
/// `apply` alone, and with `deploy_snapshot` and `deploy`.
fn deploy_1m(group: &mut BenchmarkGroup<'_, WallTime>, store: &dyn Store, seeded: &Seeded) {
    let now = sqlite_now();
    let request = deploy_request(seeded);
    let jobs = seeded.case.deploy_jobs();
    let created: RefCell<Option<Applied>> = RefCell::new(None);
    // Deletes the container the previous iteration created (untimed).
    let delete_created = || {
        if let Some(applied) = created.borrow_mut().take() {
            delete_container(store, &applied);
        }
    };

    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.bench_function(BenchmarkId::new("deploy_1m", "apply"), |b| {
        b.iter_batched(
            || {
                delete_created();
                deploy(&request, &store.deploy_snapshot().unwrap(), now).unwrap()
            },
            |changes| {
                let applied = store.apply(&changes).unwrap();
                assert_eq!(applied.jobs.len(), jobs);
                *created.borrow_mut() = Some(applied);
                changes
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function(BenchmarkId::new("deploy_1m", "end_to_end"), |b| {
        b.iter_batched(
            delete_created,
            |()| {
                let snapshot = store.deploy_snapshot().unwrap();
                let changes = deploy(&request, &snapshot, now).unwrap();
                let applied = store.apply(&changes).unwrap();
                assert_eq!(applied.jobs.len(), jobs);
                *created.borrow_mut() = Some(applied);
                (snapshot, changes)
            },
            BatchSize::PerIteration,
        )
    });
    delete_created();
}

/// Deletes a container created with revision-1 jobs.
fn delete_container(store: &dyn Store, applied: &Applied) {
    let delete = ChangeSet {
        changes: vec![Change::DeleteContainer {
            id: applied.containers[0],
            jobs: applied
                .jobs
                .iter()
                .map(|&id| (id, oco_core::model::Revision(1)))
                .collect(),
            at: sqlite_now(),
        }],
    };
    store.apply(&delete).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = sqlite
}
criterion_main!(benches);
