//! One database file shared by several threads: concurrent polls and reports lose no accepted
//! update, leave no job in an impossible state, and every compare-and-set loser gets
//! `StoreError::Conflict` (never a backend error such as "database is locked").

// Tests report failures by panicking: unwrap and expect are their assertions. The wall clock
// only bounds how long threads and processes run here; no decision reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oco_core::model::{Assignment, ComputerId, Job, JobId, JobState, PackageId, Revision};
use oco_core::plan::plan;
use oco_core::report::{apply_report, AgentReport, Disposition, ReportedState};
use oco_core::store::testkit::{self, at, create_computers, name};
use oco_core::store::{Change, ChangeSet, JobFilter, Page, Store, StoreError};
use oco_core::Settings;
use oco_store_sqlite::SqliteStore;

use common::{open_container, temp_store, waiting_job};

const COMPUTERS: usize = 3;
const PACKAGES: usize = 10;
const CONTAINERS: usize = 8;
const THREADS: usize = 4;
/// An upper bound: the run normally ends earlier, once every job is final.
const RUN_FOR: Duration = Duration::from_secs(4);

/// A small xorshift generator, so that each thread's choices are reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

/// An update the store accepted: the job, the revision it was computed from, the job written.
#[derive(Debug, Clone)]
struct Accepted {
    expected: Revision,
    job: Job,
}

#[derive(Default)]
struct Log {
    /// Per job, every accepted `UpdateJob`.
    updates: BTreeMap<JobId, Vec<Accepted>>,
    /// Per computer, the accepted assignment writes (each bumps the assignment revision).
    assignment_writes: BTreeMap<ComputerId, u64>,
    /// Per (computer, package), the jobs whose accepted success upserted the assignment.
    succeeded: BTreeMap<(ComputerId, PackageId), Vec<JobId>>,
}

fn agent_addr() -> IpAddr {
    "10.1.2.3".parse().unwrap()
}

/// The next report an agent would send for a job in `state`: one step forward, final reports
/// either accepted (code 0), rejected (code 1603) or an agent error.
fn next_report(job: &Job, rng: &mut Rng) -> Option<AgentReport> {
    let (state, return_code) = match job.state {
        JobState::Waiting => (ReportedState::Downloading, None),
        JobState::Downloading => (ReportedState::Executing, None),
        JobState::Executing => match rng.below(4) {
            0 => (ReportedState::Succeeded, Some(1603)),
            1 => (ReportedState::Failed, Some(-9999)),
            _ => (ReportedState::Succeeded, Some(0)),
        },
        _ => return None,
    };
    Some(AgentReport {
        job: job.id,
        attempt: job.attempt,
        state,
        return_code,
        download_progress: None,
        output: Some(format!("{state:?}")),
    })
}

/// Sends `report` the way a server does: snapshot, decide, apply; on a conflict reload and
/// decide again. Returns how many conflicts it met.
fn report_with_retries(
    store: &SqliteStore,
    computer: ComputerId,
    report: &AgentReport,
    now: oco_core::chrono::DateTime<oco_core::chrono::Utc>,
    log: &Mutex<Log>,
) -> u64 {
    let mut conflicts = 0;
    loop {
        let snapshot = store.report_snapshot(report.job).unwrap();
        let outcome = apply_report(&snapshot, computer, report, now).unwrap();
        if outcome.changes.is_empty() {
            // Ignored: another thread moved the job past what this report says.
            assert!(matches!(outcome.disposition, Disposition::Ignored(_)));
            return conflicts;
        }
        match store.apply(&outcome.changes) {
            Ok(_) => {
                record(&outcome.changes, log);
                return conflicts;
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("a report's change set failed with {other:?}, not a conflict"),
        }
    }
}

fn record(changes: &ChangeSet, log: &Mutex<Log>) {
    let mut log = log.lock().unwrap();
    for change in &changes.changes {
        match change {
            Change::UpdateJob { expected, job } => {
                log.updates.entry(job.id).or_default().push(Accepted {
                    expected: *expected,
                    job: job.clone(),
                });
            }
            Change::UpsertAssignment { assignment } => {
                *log.assignment_writes
                    .entry(assignment.computer)
                    .or_default() += 1;
                let job = assignment.job.expect("a report's assignment names its job");
                log.succeeded
                    .entry((assignment.computer, assignment.package))
                    .or_default()
                    .push(job);
            }
            Change::DeleteAssignment { computer, .. } => {
                *log.assignment_writes.entry(*computer).or_default() += 1;
            }
            _ => {}
        }
    }
}

fn rank(state: JobState) -> u8 {
    match state {
        JobState::Waiting => 0,
        JobState::Downloading => 1,
        JobState::Executing => 2,
        _ => 3,
    }
}

#[test]
fn concurrent_polls_and_reports_lose_no_update() {
    let (_dir, _path, store) = temp_store();
    let computers = create_computers(&store, (0..COMPUTERS).map(|i| format!("pc{i}")));
    let family = store.create_family(name("app")).unwrap();
    let packages: Vec<_> = (0..PACKAGES)
        .map(|i| {
            let mut package =
                oco_core::store::testkit::package(family.id, &format!("{i}.0"), vec![]);
            package.install.success_codes = "0".parse().unwrap();
            package.upgrade_behavior = oco_core::model::UpgradeBehavior::KeepOthers;
            store.create_package(package).unwrap()
        })
        .collect();
    // Every container has a job for every (computer, package): jobs of different containers
    // race for the same assignments.
    for c in 0..CONTAINERS {
        let jobs = computers
            .iter()
            .flat_map(|&computer| {
                packages
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| waiting_job(computer, p, u32::try_from(i).unwrap() + 1))
            })
            .collect();
        store
            .apply(&ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: open_container(&format!("c{c}")),
                    jobs,
                }],
            })
            .unwrap();
    }
    let all_jobs = store
        .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
        .unwrap();
    assert_eq!(all_jobs.len(), COMPUTERS * PACKAGES * CONTAINERS);

    let store = Arc::new(store);
    let log = Arc::new(Mutex::new(Log::default()));
    let conflicts = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, log, conflicts, polls) = (
                Arc::clone(&store),
                Arc::clone(&log),
                Arc::clone(&conflicts),
                Arc::clone(&polls),
            );
            let computers = computers.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let settings = Settings::default();
                let mut tick = 0;
                while start.elapsed() < RUN_FOR {
                    tick += 1;
                    let now = at(3600 + tick);
                    let computer = computers[rng.below(computers.len())];
                    let snapshot = store.planner_snapshot(computer).unwrap();
                    polls.fetch_add(1, Ordering::Relaxed);
                    let plan = plan(&snapshot, now, agent_addr(), &settings);
                    assert!(
                        plan.held.is_empty(),
                        "nothing should be held: {:?}",
                        plan.held
                    );
                    if !plan.changes.is_empty() {
                        match store.apply(&plan.changes) {
                            Ok(_) | Err(StoreError::Conflict { .. }) => {}
                            Err(other) => panic!("a poll's change set failed with {other:?}"),
                        }
                    }
                    if plan.deliver.is_empty() {
                        // This computer is done; stop once every computer is.
                        let pending = computers
                            .iter()
                            .any(|&c| !store.planner_snapshot(c).unwrap().jobs.is_empty());
                        if !pending {
                            break;
                        }
                        continue;
                    }
                    // Threads on the same computer mostly pick the same, first, job: contention.
                    let pick = if rng.below(3) == 0 {
                        rng.below(plan.deliver.len())
                    } else {
                        0
                    };
                    let job = plan.deliver[pick].job;
                    if let Some(report) = next_report(job, &mut rng) {
                        let met = report_with_retries(&store, computer, &report, now, &log);
                        conflicts.fetch_add(met, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let elapsed = start.elapsed();
    let conflicts = conflicts.load(Ordering::Relaxed);
    let log = log.lock().unwrap();
    let accepted: usize = log.updates.values().map(Vec::len).sum();
    eprintln!(
        "{THREADS} threads, {elapsed:?}: {} polls, {accepted} accepted job updates, {conflicts} conflicts",
        polls.load(Ordering::Relaxed)
    );

    // The run reached the end: every job is final.
    let jobs = store
        .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
        .unwrap();
    assert_eq!(jobs.len(), all_jobs.len());
    for job in &jobs {
        assert!(
            job.state.is_final(),
            "job {} is still {}",
            job.id,
            job.state
        );
    }

    for job in &jobs {
        let updates = log.updates.get(&job.id).cloned().unwrap_or_default();
        // No lost update: each accepted update moved the revision by one, from a distinct
        // revision; together they account for the stored revision exactly.
        let mut expected: Vec<u64> = updates.iter().map(|u| u.expected.0).collect();
        expected.sort_unstable();
        let chain: Vec<u64> = (1..job.revision.0).collect();
        assert_eq!(
            expected, chain,
            "job {}: accepted updates from revisions {expected:?}, stored revision {}",
            job.id, job.revision
        );
        // The stored job is the last accepted write (revision aside).
        let last = updates
            .iter()
            .max_by_key(|u| u.expected)
            .expect("every job was reported on");
        let mut written = last.job.clone();
        written.revision = job.revision;
        assert_eq!(
            &written, job,
            "job {} is not its last accepted write",
            job.id
        );
        // No state moved backward along the chain of accepted writes.
        let mut chain = updates.clone();
        chain.sort_by_key(|u| u.expected);
        for pair in chain.windows(2) {
            assert!(
                rank(pair[0].job.state) <= rank(pair[1].job.state)
                    && !(pair[0].job.state.is_final() && pair[1].job.state != pair[0].job.state),
                "job {} moved from {} to {}",
                job.id,
                pair[0].job.state,
                pair[1].job.state
            );
        }
        // The invariants the core documents for a final job reached through agent reports.
        assert!(
            job.finished.is_some(),
            "final job {} without `finished`",
            job.id
        );
        assert!(job.download_started.is_some() && job.execution_started.is_some());
        assert!(job.last_report.is_some());
        assert!(job.return_code.is_some());
        assert!(matches!(job.state, JobState::Succeeded | JobState::Failed));
    }

    // Every accepted success is reflected in the assignments; their revisions count every
    // accepted assignment write.
    for &computer in &computers {
        let (assignments, revision) = store.assignments(computer).unwrap();
        let writes = log.assignment_writes.get(&computer).copied().unwrap_or(0);
        assert_eq!(
            revision,
            Revision(writes),
            "assignment revision of {computer}"
        );
        let stored: BTreeMap<PackageId, &Assignment> =
            assignments.iter().map(|a| (a.package, a)).collect();
        for package in &packages {
            let succeeded = log.succeeded.get(&(computer, package.id));
            match (succeeded, stored.get(&package.id)) {
                (None, None) => {}
                (Some(jobs), Some(assignment)) => {
                    let job = assignment.job.unwrap();
                    assert!(jobs.contains(&job), "{assignment:?} names no succeeded job");
                    assert_eq!(store.job(job).unwrap().state, JobState::Succeeded);
                }
                (succeeded, assignment) => panic!(
                    "computer {computer} package {}: successes {succeeded:?}, assignment {assignment:?}",
                    package.id
                ),
            }
        }
    }
    // Some successes happened, so assignments were exercised.
    assert!(!log.succeeded.is_empty());
    // Threads raced for the same jobs: some of them must have lost a compare-and-set.
    assert!(
        conflicts > 0,
        "no conflicts were recorded: the race did not happen"
    );
}

/// The core's compare-and-set races ([`testkit::RACES`]), each on a database file of its own.
#[test]
fn compare_and_set_races_have_exactly_one_winner() {
    let dirs = std::sync::Mutex::new(Vec::new());
    testkit::run_races(&|| {
        let (dir, _path, store) = temp_store();
        dirs.lock().unwrap().push(dir);
        Box::new(store) as Box<dyn Store>
    });
}
