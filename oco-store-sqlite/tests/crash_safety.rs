//! A change set interrupted midway leaves no trace: with the `fault-injection` hook failing the
//! N-th statement of a transaction, for every N, a failed `apply` leaves every table exactly as
//! before and the first N that succeeds gives exactly the state of a fault-free apply; in
//! `apply_many`, a fault in one member leaves that member unapplied and the others applied. And a
//! second process reading while another writes sees only committed states.

// Tests report failures by panicking: unwrap and expect are their assertions. The wall clock
// only bounds how long threads and processes run here; no decision reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oco_core::model::{Assignment, ComputerId, ContainerId, JobKind, JobState, Origin, Revision};
use oco_core::rules::{NewJob, NewJobs};
use oco_core::store::testkit::{at, container, fixture, name, rule};
use oco_core::store::{Applied, Change, ChangeSet, JobFilter, Page, Store, StoreError};
use oco_store_sqlite::SqliteStore;

use common::{raw_dump, waiting_job, Rows};

/// More statements than any change set here could have: a hook that never fires is a bug.
const MAX_STATEMENTS: u64 = 10_000;

/// A store with something of everything, and the changes of one representative change set
/// against it, each of a different kind.
struct Scene {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: SqliteStore,
}

impl Scene {
    /// A copy of the database as it is now (consistent, through the WAL), opened as a store.
    fn copy(&self, file: &str) -> (PathBuf, SqliteStore) {
        let copy = self.path.with_file_name(file);
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
            .unwrap();
        drop(conn);
        let store = SqliteStore::open(&copy).unwrap();
        (copy, store)
    }
}

fn scene() -> (Scene, Vec<Change>) {
    let (dir, path, store) = common::temp_store();
    let f = fixture(&store);
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let [v1, v2] = [&f.packages[0], &f.packages[1]];
    let apply = |changes: Vec<Change>| store.apply(&ChangeSet { changes }).unwrap();

    let a = apply(vec![Change::CreateContainer {
        container: container("a"),
        jobs: vec![
            waiting_job(pc1, v1, 1),
            waiting_job(pc1, &f.other, 2),
            waiting_job(pc2, v1, 1),
            waiting_job(pc2, v2, 2),
        ],
    }]);
    let mut unsent = container("b");
    unsent.wol.sent_at = None;
    let b = apply(vec![Change::CreateContainer {
        container: unsent,
        jobs: vec![waiting_job(pc1, v2, 1), waiting_job(pc2, v2, 1)],
    }]);
    // A tombstone to purge.
    apply(vec![Change::DeleteJob {
        id: a.jobs[3],
        computer: pc2,
        expected: Revision(1),
        at: at(10),
    }]);
    apply(vec![Change::UpsertAssignment {
        assignment: Assignment {
            computer: pc1,
            package: v1.id,
            installed_at: at(1),
            job: Some(a.jobs[0]),
        },
    }]);
    let computers = store.create_computer_group(name("all"), None).unwrap();
    store
        .set_computer_group_members(computers.id, &[pc1, pc2])
        .unwrap();
    let packages = store.create_package_group(name("apps"), None).unwrap();
    store
        .set_package_group_members(packages.id, &[v1.id, f.other.id])
        .unwrap();
    let live = store
        .create_rule(rule("live", computers.id, packages.id))
        .unwrap();
    // A rule deleted while it still has a job: it goes with that job.
    let dying = store
        .create_rule(rule("dying", computers.id, packages.id))
        .unwrap();
    let mut one = NewJobs::new();
    one.push(NewJob {
        computer: pc1,
        package: v1.id,
        kind: JobKind::Install,
        sequence: 1,
        state: JobState::Waiting,
    });
    let dying_jobs = apply(vec![Change::InsertRuleJobs {
        rule: dying.id,
        at: at(20),
        jobs: one,
    }]);
    store.delete_rule(dying.id).unwrap();

    let mut running = store.job(a.jobs[0]).unwrap();
    running.state = JobState::Executing;
    running.execution_started = Some(at(30));
    running.output = "half way".into();
    let mut edited = store.container(a.containers[0]).unwrap();
    edited.notes = "edited".into();
    edited.enabled = false;
    let mut rule_jobs = NewJobs::new();
    for (computer, package, state) in [
        (pc1, f.other.id, JobState::Waiting),
        (pc2, v1.id, JobState::AlreadyInstalled),
        (pc2, f.other.id, JobState::Incompatible),
    ] {
        rule_jobs.push(NewJob {
            computer,
            package,
            kind: JobKind::Install,
            sequence: 1,
            state,
        });
    }
    let (_, revision) = store.assignments(pc1).unwrap();
    let changes = vec![
        Change::ExpectAssignments {
            computer: pc1,
            expected: revision,
        },
        Change::CreateContainer {
            container: container("new"),
            jobs: vec![
                waiting_job(pc1, v2, 1),
                waiting_job(pc2, v2, 1),
                waiting_job(pc2, &f.other, 2),
            ],
        },
        Change::UpdateJob {
            expected: Revision(1),
            job: running,
        },
        Change::DeleteJob {
            id: a.jobs[1],
            computer: pc1,
            expected: Revision(1),
            at: at(40),
        },
        Change::InsertJob {
            job: waiting_job_in(a.containers[0], pc2, &f.other, 3),
        },
        Change::UpdateContainer { container: edited },
        Change::MarkWolSent {
            container: b.containers[0],
            at: at(41),
        },
        Change::UpsertAssignment {
            assignment: Assignment {
                computer: pc2,
                package: v2.id,
                installed_at: at(42),
                job: None,
            },
        },
        Change::DeleteAssignment {
            computer: pc1,
            package: v1.id,
        },
        Change::InsertRuleJobs {
            rule: live.id,
            at: at(43),
            jobs: rule_jobs,
        },
        Change::DeleteJob {
            id: dying_jobs.jobs[0],
            computer: pc1,
            expected: Revision(1),
            at: at(44),
        },
        Change::PurgeTombstones {
            deleted_before: at(11),
        },
    ];
    (
        Scene {
            _dir: dir,
            path,
            store,
        },
        changes,
    )
}

fn waiting_job_in(
    origin: ContainerId,
    computer: ComputerId,
    package: &oco_core::model::Package,
    sequence: u32,
) -> oco_core::model::Job {
    let mut job = waiting_job(computer, package, sequence);
    job.origin = Origin::Container(origin);
    job
}

fn dump(path: &Path) -> BTreeMap<String, Rows> {
    raw_dump(path)
}

/// Names the tables whose rows differ, with the rows, for a readable failure.
#[track_caller]
fn assert_same_tables(got: &BTreeMap<String, Rows>, want: &BTreeMap<String, Rows>, context: &str) {
    let differing: Vec<&String> = want
        .keys()
        .chain(got.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|table| got.get(*table) != want.get(*table))
        .collect();
    if !differing.is_empty() {
        let detail: Vec<String> = differing
            .iter()
            .map(|t| format!("{t}:\n  got  {:?}\n  want {:?}", got.get(*t), want.get(*t)))
            .collect();
        panic!("{context}: tables differ:\n{}", detail.join("\n"));
    }
}

#[test]
fn an_apply_failing_at_any_statement_leaves_no_trace() {
    let (scene, changes) = scene();
    let set = ChangeSet { changes };
    // The reference: the same change set applied without faults to a copy.
    let (reference_path, reference) = scene.copy("reference.sqlite");
    let want_applied = reference.apply(&set).unwrap();
    let want = dump(&reference_path);

    let before = dump(&scene.path);
    let mut failures = 0;
    for n in 1..=MAX_STATEMENTS {
        scene.store.fail_nth_statement(Some(n));
        let result = scene.store.apply(&set);
        scene.store.fail_nth_statement(None);
        match result {
            Err(StoreError::Backend(_)) => {
                failures += 1;
                assert_same_tables(
                    &dump(&scene.path),
                    &before,
                    &format!("after a fault at statement {n}"),
                );
            }
            Err(other) => panic!("a fault at statement {n} gave {other:?}, not a backend error"),
            Ok(applied) => {
                assert_eq!(
                    applied, want_applied,
                    "ids assigned after {failures} faults"
                );
                assert_same_tables(&dump(&scene.path), &want, "after the fault-free apply");
                break;
            }
        }
        assert!(n < MAX_STATEMENTS, "the fault hook never stopped firing");
    }
    eprintln!("the change set ran {failures} statements");
    // Every change writes or checks something: at least one statement each.
    assert!(
        failures >= set.changes.len(),
        "only {failures} statements for {} changes: the hook misses some",
        set.changes.len()
    );
    // And the store still works after all those rollbacks.
    let jobs = scene
        .store
        .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
        .unwrap();
    assert_eq!(
        jobs,
        reference
            .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
            .unwrap()
    );
}

#[test]
fn a_fault_leaves_the_hook_for_each_later_transaction() {
    // The hook fires in every transaction while set, and stops when cleared.
    let (scene, changes) = scene();
    let set = ChangeSet {
        changes: changes[..2].to_vec(),
    };
    scene.store.fail_nth_statement(Some(1));
    for _ in 0..3 {
        assert!(matches!(
            scene.store.apply(&set),
            Err(StoreError::Backend(_))
        ));
    }
    scene.store.fail_nth_statement(None);
    scene.store.apply(&set).unwrap();
}

/// Independent members: each applies alone or together with any of the others.
fn batch(changes: &[Change]) -> Vec<ChangeSet> {
    let set = |range: std::ops::Range<usize>| ChangeSet {
        changes: changes[range].to_vec(),
    };
    vec![
        // ExpectAssignments, CreateContainer, UpdateJob.
        set(0..3),
        // DeleteJob, InsertJob, UpdateContainer, MarkWolSent.
        set(3..7),
        // Always a conflict: the job's revision is not 7.
        ChangeSet {
            changes: vec![match &changes[2] {
                Change::UpdateJob { job, .. } => Change::DeleteJob {
                    id: job.id,
                    computer: job.computer,
                    expected: Revision(7),
                    at: at(50),
                },
                _ => unreachable!(),
            }],
        },
        // UpsertAssignment, DeleteAssignment, InsertRuleJobs, DeleteJob, PurgeTombstones.
        set(7..12),
    ]
}

#[test]
fn apply_many_with_a_fault_at_any_statement_applies_exactly_the_other_members() {
    let (scene, changes) = scene();
    let sets = batch(&changes);
    let conflicting = 2;
    let before = dump(&scene.path);
    let mut reached_the_end = false;
    // Per set of applied members: the ids assigned and the tables.
    type Reference = (Vec<Applied>, BTreeMap<String, Rows>);
    let mut references: BTreeMap<Vec<usize>, Reference> = BTreeMap::new();
    for n in 1..=MAX_STATEMENTS {
        // Each attempt starts from the same state: a copy of the untouched scene.
        let (path, store) = scene.copy(&format!("attempt-{n}.sqlite"));
        assert_same_tables(&dump(&path), &before, "the copy");
        store.fail_nth_statement(Some(n));
        let results = store.apply_many(&sets);
        store.fail_nth_statement(None);
        assert_eq!(results.len(), sets.len());
        assert!(
            matches!(
                &results[conflicting],
                Err(StoreError::Conflict { .. } | StoreError::Backend(_))
            ),
            "the conflicting member gave {:?}",
            results[conflicting]
        );
        for (i, result) in results.iter().enumerate() {
            assert!(
                matches!(result, Ok(_) | Err(StoreError::Backend(_)))
                    || (i == conflicting && matches!(result, Err(StoreError::Conflict { .. }))),
                "fault at {n}: member {i} gave {result:?}"
            );
        }
        let faulted: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Err(StoreError::Backend(_))))
            .map(|(i, _)| i)
            .collect();
        // One fault hits one member; only a failed commit may fail them all.
        assert!(
            faulted.len() <= 1 || faulted.len() == sets.len(),
            "fault at {n} failed members {faulted:?}: {results:?}"
        );
        // The reference: the members that did not fail, applied without faults to a copy
        // (computed once per set of failed members).
        let applied: Vec<usize> = (0..sets.len()).filter(|i| results[*i].is_ok()).collect();
        let (want, want_tables) = references.entry(applied.clone()).or_insert_with(|| {
            let (reference_path, reference) = scene.copy(&format!("reference-{n}.sqlite"));
            let survivors: Vec<ChangeSet> = applied.iter().map(|&i| sets[i].clone()).collect();
            let want: Vec<Applied> = reference
                .apply_many(&survivors)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            (want, dump(&reference_path))
        });
        let got: Vec<Applied> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .cloned()
            .collect();
        assert_eq!(&got, want, "fault at {n}: ids assigned");
        assert_same_tables(
            &dump(&path),
            want_tables,
            &format!("fault at {n} (failed members {faulted:?})"),
        );
        drop(store);
        std::fs::remove_file(&path).ok();
        if faulted.is_empty() {
            reached_the_end = true;
            // Every member but the conflicting one applied.
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), sets.len() - 1);
            break;
        }
    }
    assert!(reached_the_end, "the fault hook never stopped firing");
    // Faults hit every member that has statements of its own, one at a time.
    let outcomes: Vec<&Vec<usize>> = references.keys().collect();
    eprintln!("applied members per fault position: {outcomes:?}");
    for member in 0..sets.len() {
        if member != conflicting {
            assert!(
                references
                    .keys()
                    .any(|applied| !applied.contains(&member) && applied.len() == sets.len() - 2),
                "no fault hit member {member} alone: {outcomes:?}"
            );
        }
    }
}

// ---- a second process reading while this one writes ------------------------------------------

const READER_DB: &str = "OCO_TEST_READER_DB";
const ROUNDS: usize = 150;
const JOBS_PER_ROUND: usize = 10;

#[test]
fn a_reader_process_sees_only_committed_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let f = fixture(&store);
    let pc = f.computers[0].id;
    let bulk = store
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer {
                container: common::open_container("bulk"),
                jobs: vec![],
            }],
        })
        .unwrap()
        .containers[0];

    let ready = dir.path().join("ready");
    let done = dir.path().join("done");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "reader_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READER_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !ready.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the reader never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    for round in 0..ROUNDS {
        // Each round: ten jobs into the bulk container, a new container with ten jobs, and the
        // bulk container's notes naming the round. Only whole rounds may ever be seen.
        let mut changes: Vec<Change> = (0..JOBS_PER_ROUND)
            .map(|i| Change::InsertJob {
                job: waiting_job_in(bulk, pc, &f.packages[i % 2], u32::try_from(round).unwrap()),
            })
            .collect();
        changes.push(Change::CreateContainer {
            container: common::open_container(&format!("round {round}")),
            jobs: (0..JOBS_PER_ROUND)
                .map(|i| waiting_job(pc, &f.other, u32::try_from(i).unwrap()))
                .collect(),
        });
        let mut notes = store.container(bulk).unwrap();
        notes.notes = format!("{}", round + 1);
        changes.push(Change::UpdateContainer { container: notes });
        store.apply(&ChangeSet { changes }).unwrap();
    }
    std::fs::write(&done, b"").unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the reader failed:\n{stdout}\n{stderr}"
    );
    let distinct: usize = stdout
        .lines()
        .find_map(|l| l.split("READER distinct states: ").nth(1))
        .unwrap_or_else(|| panic!("no report from the reader:\n{stdout}"))
        .trim()
        .parse()
        .unwrap();
    eprintln!("the reader saw {distinct} distinct committed states");
    // It read while the writes went on, not only before or after them.
    assert!(distinct >= 2, "the reader saw {distinct} states");
}

/// The reader side of [`a_reader_process_sees_only_committed_states`]: does nothing unless
/// started by it (with the database path in the environment).
#[test]
fn reader_process() {
    let Some(path) = std::env::var_os(READER_DB) else {
        return;
    };
    let path = PathBuf::from(path);
    let dir = path.parent().unwrap().to_path_buf();
    let store = SqliteStore::open(&path).unwrap();
    let pc = store
        .list_computers(Page::first(1))
        .unwrap()
        .first()
        .unwrap()
        .id;
    let bulk = store.list_containers(Page::first(1)).unwrap()[0].id;
    std::fs::write(dir.join("ready"), b"").unwrap();

    let started = Instant::now();
    let mut seen = BTreeSet::new();
    let (mut last_bulk, mut last_round) = (0, 0);
    loop {
        let finished = dir.join("done").exists();
        // One snapshot: the bulk jobs and the round containers' jobs come in equal numbers.
        let snapshot = store.planner_snapshot(pc).unwrap();
        let bulk_jobs = snapshot
            .jobs
            .iter()
            .filter(|j| j.origin == Origin::Container(bulk))
            .count();
        let rounds = snapshot.origins.len().saturating_sub(1);
        assert_eq!(
            snapshot.jobs.len(),
            bulk_jobs * 2,
            "a planner snapshot with {bulk_jobs} bulk jobs of {} jobs",
            snapshot.jobs.len()
        );
        assert_eq!(bulk_jobs, rounds * JOBS_PER_ROUND, "planner snapshot");
        // One listing: whole rounds only, never fewer than before.
        let filter = JobFilter {
            origin: Some(Origin::Container(bulk)),
            ..JobFilter::default()
        };
        let listed = store
            .list_jobs(&filter, Page::first(usize::MAX))
            .unwrap()
            .len();
        assert_eq!(
            listed % JOBS_PER_ROUND,
            0,
            "a listing of {listed} bulk jobs"
        );
        assert!(
            listed >= last_bulk,
            "went back from {last_bulk} to {listed} jobs"
        );
        last_bulk = listed;
        // The notes name a round at least as late as every earlier read.
        let round: usize = match store.container(bulk).unwrap().notes.as_str() {
            "" => 0,
            notes => notes.parse().unwrap(),
        };
        // Read after the listing, so never behind it.
        assert!(
            round >= last_round && round * JOBS_PER_ROUND >= listed,
            "notes name round {round} after round {last_round} and {listed} bulk jobs"
        );
        last_round = round;
        seen.insert(bulk_jobs);
        if finished {
            assert_eq!(listed, ROUNDS * JOBS_PER_ROUND, "the final state");
            assert_eq!(round, ROUNDS);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer never finished"
        );
    }
    println!("READER distinct states: {}", seen.len());
}
