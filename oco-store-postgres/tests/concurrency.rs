//! Several threads on one database: every compare-and-set loser gets `StoreError::Conflict`
//! (never a serialization failure, which the store retries), and exactly one of the writers
//! that read the same revision wins. The SQLite store's races, on PostgreSQL, whose writers run
//! at once rather than one after the other. Skipped, saying so, without `OCO_TEST_POSTGRES`.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};

use common::TestDatabase;
use oco_core::model::{Assignment, ContainerId, Job, JobKind, Origin, PackageId, Revision};
use oco_core::store::testkit::{self, at, name, new_computer};
use oco_core::store::{Change, ChangeSet, Store, StoreError};
use oco_store_postgres::PgStore;

/// `rounds` times, `threads` threads apply the change set each builds from the same reading at
/// once; returns the results per round.
fn race<F>(
    store: &Arc<PgStore>,
    threads: usize,
    build: F,
) -> Vec<Result<oco_core::store::Applied, StoreError>>
where
    F: Fn(usize) -> ChangeSet + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(threads));
    let build = Arc::new(build);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, barrier, build) =
                (Arc::clone(store), Arc::clone(&barrier), Arc::clone(&build));
            std::thread::spawn(move || {
                let changes = build(t);
                barrier.wait();
                store.apply(&changes)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Panics unless exactly one result is `Ok` and every other is a conflict; returns the winner.
fn exactly_one_winner(results: &[Result<oco_core::store::Applied, StoreError>]) -> usize {
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "winners {winners:?} of {results:?}");
    for result in results {
        assert!(
            matches!(result, Ok(_) | Err(StoreError::Conflict { .. })),
            "a loser got {result:?}, not a conflict"
        );
    }
    winners[0]
}

#[test]
fn update_job_from_the_same_revision_has_exactly_one_winner() {
    let Some(db) = TestDatabase::get("update_job_from_the_same_revision_has_exactly_one_winner")
    else {
        return;
    };
    const THREADS: usize = 8;
    let store = db.store();
    let computer = store.create_computer(new_computer("pc")).unwrap();
    let family = store.create_family(name("app")).unwrap();
    let package = store
        .create_package(oco_core::store::testkit::package(family.id, "1.0", vec![]))
        .unwrap();
    let applied = store
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer {
                container: testkit::container("race"),
                jobs: vec![Job::new(
                    Origin::Container(ContainerId(0)),
                    computer.id,
                    &package,
                    JobKind::Install,
                    1,
                )],
            }],
        })
        .unwrap();
    let id = applied.jobs[0];
    let store = Arc::new(store);
    for round in 0..20_u64 {
        let read = store.job(id).unwrap();
        assert_eq!(read.revision, Revision(round + 1));
        let results = race(&store, THREADS, move |t| {
            let mut job = read.clone();
            job.output = format!("round {round} thread {t}");
            ChangeSet {
                changes: vec![Change::UpdateJob {
                    expected: read.revision,
                    job,
                }],
            }
        });
        let winner = exactly_one_winner(&results);
        let stored = store.job(id).unwrap();
        assert_eq!(stored.output, format!("round {round} thread {winner}"));
        assert_eq!(stored.revision, Revision(round + 2));
    }
}

#[test]
fn assignment_writes_from_the_same_revision_have_exactly_one_winner() {
    let Some(db) =
        TestDatabase::get("assignment_writes_from_the_same_revision_have_exactly_one_winner")
    else {
        return;
    };
    const THREADS: usize = 6;
    let store = db.store();
    let computer = store.create_computer(new_computer("pc")).unwrap().id;
    let family = store.create_family(name("app")).unwrap();
    let packages: Vec<PackageId> = (0..THREADS)
        .map(|i| {
            store
                .create_package(oco_core::store::testkit::package(
                    family.id,
                    &format!("{i}.0"),
                    vec![],
                ))
                .unwrap()
                .id
        })
        .collect();
    let store = Arc::new(store);
    for round in 0..10_i64 {
        let (before, revision) = store.assignments(computer).unwrap();
        let choices = packages.clone();
        let results = race(&store, THREADS, move |t| ChangeSet {
            changes: vec![
                Change::ExpectAssignments {
                    computer,
                    expected: revision,
                },
                Change::UpsertAssignment {
                    assignment: Assignment {
                        computer,
                        package: choices[t],
                        installed_at: at(round * 10 + i64::try_from(t).unwrap()),
                        job: None,
                    },
                },
            ],
        });
        let winner = exactly_one_winner(&results);
        let (after, new_revision) = store.assignments(computer).unwrap();
        assert_eq!(new_revision, revision.next());
        let expected = Assignment {
            computer,
            package: packages[winner],
            installed_at: at(round * 10 + i64::try_from(winner).unwrap()),
            job: None,
        };
        let mut want: Vec<Assignment> = before
            .into_iter()
            .filter(|a| a.package != packages[winner])
            .chain([expected])
            .collect();
        want.sort_by_key(|a| (a.installed_at, a.package));
        assert_eq!(after, want);
    }
}

#[test]
fn delete_and_update_of_one_job_race_to_one_winner() {
    let Some(db) = TestDatabase::get("delete_and_update_of_one_job_race_to_one_winner") else {
        return;
    };
    const THREADS: usize = 4;
    let store = db.store();
    let computer = store.create_computer(new_computer("pc")).unwrap();
    let family = store.create_family(name("app")).unwrap();
    let package = store
        .create_package(oco_core::store::testkit::package(family.id, "1.0", vec![]))
        .unwrap();
    let store = Arc::new(store);
    for round in 0..10 {
        let applied = store
            .apply(&ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: testkit::container(&format!("race {round}")),
                    jobs: vec![Job::new(
                        Origin::Container(ContainerId(0)),
                        computer.id,
                        &package,
                        JobKind::Install,
                        1,
                    )],
                }],
            })
            .unwrap();
        let read = store.job(applied.jobs[0]).unwrap();
        let id = read.id;
        let results = race(&store, THREADS, move |t| {
            let change = if t % 2 == 0 {
                Change::DeleteJob {
                    id: read.id,
                    computer: read.computer,
                    expected: read.revision,
                    at: at(100),
                }
            } else {
                let mut job = read.clone();
                job.output = format!("thread {t}");
                Change::UpdateJob {
                    expected: read.revision,
                    job,
                }
            };
            ChangeSet {
                changes: vec![change],
            }
        });
        let winner = exactly_one_winner(&results);
        match store.job(id) {
            Ok(job) => {
                assert_eq!(winner % 2, 1, "the delete won but the job is there");
                assert_eq!(job.output, format!("thread {winner}"));
            }
            Err(StoreError::NotFound { .. }) => {
                assert_eq!(winner % 2, 0, "an update won but the job is gone");
                assert!(store.report_snapshot(id).unwrap().deleted);
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}
