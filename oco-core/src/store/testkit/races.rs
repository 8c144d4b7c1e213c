//! The compare-and-set races every [`Store`] adapter must win cleanly: several threads apply
//! change sets built from one reading at once; exactly one wins, every other gets
//! [`StoreError::Conflict`] (never a backend error such as a lock timeout or a serialization
//! failure, which the store must retry or map).

use std::sync::{Arc, Barrier};

use super::{at, container, name, new_computer, package, Check, MakeStore};
use crate::model::{Assignment, ContainerId, Job, JobKind, Origin, PackageId, Revision};
use crate::store::{AgentCredentials, Applied, Change, ChangeSet, Store, StoreError};

/// Every race, by name, in the order [`run_races`] runs them.
pub const RACES: &[(&str, Check)] = &[
    (
        "update_job_from_the_same_revision_has_exactly_one_winner",
        update_job_from_the_same_revision_has_exactly_one_winner,
    ),
    (
        "assignment_writes_from_the_same_revision_have_exactly_one_winner",
        assignment_writes_from_the_same_revision_have_exactly_one_winner,
    ),
    (
        "delete_and_update_of_one_job_race_to_one_winner",
        delete_and_update_of_one_job_race_to_one_winner,
    ),
    (
        "credentials_from_the_same_reading_have_exactly_one_winner",
        credentials_from_the_same_reading_have_exactly_one_winner,
    ),
    (
        "revoking_the_last_two_full_tokens_at_once_keeps_one",
        revoking_the_last_two_full_tokens_at_once_keeps_one,
    ),
];

/// Two threads revoke the last two full-access tokens at once, twenty rounds: one revocation
/// wins, the other is refused, and one full-access token stays.
pub fn revoking_the_last_two_full_tokens_at_once_keeps_one(make: MakeStore<'_>) {
    use crate::store::{NewAdminToken, Page, TokenAccess};
    let store: Arc<dyn Store> = Arc::from(make());
    let token = |n: u8| NewAdminToken {
        name: name(&format!("full-{n}")),
        access: TokenAccess::Full,
        digest: crate::model::Sha256Digest([n; 32]),
        created: at(0),
    };
    let mut kept = store.create_admin_token(token(0)).unwrap();
    for round in 1..=20_u8 {
        let other = store.create_admin_token(token(round)).unwrap();
        let ids = [kept.id, other.id];
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.delete_admin_token(id)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let won = results.iter().filter(|result| result.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .any(|result| matches!(result, Err(StoreError::Invalid { .. }))),
            "round {round}: {results:?}"
        );
        let left = store.list_admin_tokens(Page::first(10)).unwrap();
        assert_eq!(left.len(), 1, "round {round}: {left:?}");
        kept = left.into_iter().next().unwrap();
    }
}

/// Runs every race in [`RACES`], each on a fresh store from `make` shared by its threads.
///
/// ```
/// use oco_core::store::{testkit, MemoryStore, Store};
///
/// testkit::run_races(&|| Box::new(MemoryStore::new()) as Box<dyn Store>);
/// ```
///
/// # Panics
///
/// At the first race that fails, naming it.
pub fn run_races(make: MakeStore<'_>) {
    super::run_checks("store race", RACES, make);
}

/// Eight threads update one job from the revision they all read, twenty rounds: one output is
/// stored per round, the winner's, and the revision moves by one.
pub fn update_job_from_the_same_revision_has_exactly_one_winner(make: MakeStore<'_>) {
    const THREADS: usize = 8;
    let store: Arc<dyn Store> = Arc::from(make());
    let computer = store.create_computer(new_computer("pc")).unwrap();
    let family = store.create_family(name("app")).unwrap();
    let package = store
        .create_package(package(family.id, "1.0", vec![]))
        .unwrap();
    let applied = store
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer {
                container: container("race"),
                jobs: vec![install_job(computer.id, &package)],
            }],
        })
        .unwrap();
    let id = applied.jobs[0];
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

/// Six threads each write another assignment of one computer, expecting the assignment
/// revision they all read, ten rounds: the winner's assignment is stored and the revision moves
/// by one.
pub fn assignment_writes_from_the_same_revision_have_exactly_one_winner(make: MakeStore<'_>) {
    const THREADS: usize = 6;
    let store: Arc<dyn Store> = Arc::from(make());
    let computer = store.create_computer(new_computer("pc")).unwrap().id;
    let family = store.create_family(name("app")).unwrap();
    let packages: Vec<PackageId> = (0..THREADS)
        .map(|i| {
            store
                .create_package(package(family.id, &format!("{i}.0"), vec![]))
                .unwrap()
                .id
        })
        .collect();
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

/// Four threads, half deleting a job and half updating it from the revision they all read, ten
/// rounds: either the job is gone (with a tombstone) and a delete won, or it holds the winning
/// update.
pub fn delete_and_update_of_one_job_race_to_one_winner(make: MakeStore<'_>) {
    const THREADS: usize = 4;
    let store: Arc<dyn Store> = Arc::from(make());
    let computer = store.create_computer(new_computer("pc")).unwrap();
    let family = store.create_family(name("app")).unwrap();
    let package = store
        .create_package(package(family.id, "1.0", vec![]))
        .unwrap();
    for round in 0..10 {
        let applied = store
            .apply(&ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: container(&format!("race {round}")),
                    jobs: vec![install_job(computer.id, &package)],
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

/// Eight threads each write other credentials of one computer, expecting the credentials they
/// all read, ten rounds, the first on a computer that has none stored yet: the winner's are
/// stored, and a later round's reading sees them.
pub fn credentials_from_the_same_reading_have_exactly_one_winner(make: MakeStore<'_>) {
    const THREADS: usize = 8;
    let store: Arc<dyn Store> = Arc::from(make());
    let computer = store.create_computer(new_computer("pc")).unwrap().id;
    for round in 0..10_u32 {
        let read = store.credentials(computer).unwrap();
        let results = race(&store, THREADS, move |t| ChangeSet {
            changes: vec![Change::SetCredentials {
                computer,
                expected: read.clone(),
                credentials: AgentCredentials {
                    agent_key: Some(format!("key {round} {t}")),
                    last_reply: Some(f64::from(round * 10) + 0.5),
                    ..read.clone()
                },
            }],
        });
        let winner = exactly_one_winner(&results);
        let stored = store.credentials(computer).unwrap();
        assert_eq!(stored.agent_key, Some(format!("key {round} {winner}")));
        assert_eq!(stored.last_reply, Some(f64::from(round * 10) + 0.5));
    }
}

/// A Waiting install job of `package` on `computer` (origin set by the store).
fn install_job(computer: crate::model::ComputerId, package: &crate::model::Package) -> Job {
    Job::new(
        Origin::Container(ContainerId(0)),
        computer,
        package,
        JobKind::Install,
        1,
    )
}

/// `threads` threads apply the change set each builds from the same reading at once; returns
/// their results, by thread.
fn race<F>(store: &Arc<dyn Store>, threads: usize, build: F) -> Vec<Result<Applied, StoreError>>
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
fn exactly_one_winner(results: &[Result<Applied, StoreError>]) -> usize {
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
