//! Several threads on one database: every compare-and-set loser gets `StoreError::Conflict`
//! (never a serialization failure, which the store retries), and exactly one of the writers
//! that read the same revision wins. The core's races ([`testkit::RACES`], which the SQLite
//! store runs too), on PostgreSQL, whose writers run at once rather than one after the other.
//! Skipped, saying so, without `OCO_TEST_POSTGRES`.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::TestDatabase;
use oco_core::store::testkit;
use oco_core::store::{AgentCredentials, Change, ChangeSet, Store};
use oco_store_postgres::PgStore;

#[test]
fn compare_and_set_races_have_exactly_one_winner() {
    let Some(db) = TestDatabase::get("compare_and_set_races_have_exactly_one_winner") else {
        return;
    };
    testkit::run_races(&|| Box::new(db.store()) as Box<dyn Store>);
}

/// The agent path's writes (credentials, job reports, assignments) take no predicate locks: a
/// `SERIALIZABLE` transaction keeps its predicate locks after its commit for as long as any
/// transaction it overlapped runs, so with one long transaction open (an administrator's deploy,
/// a stalled client) the commits of agents' requests piled them up until PostgreSQL's table of
/// them was full and every write failed with "out of shared memory".
#[test]
fn agent_path_writes_leave_no_predicate_locks_behind() {
    let Some(db) = TestDatabase::get("agent_path_writes_leave_no_predicate_locks_behind") else {
        return;
    };
    let schema = db.schema();
    let store = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    let computers = testkit::create_computers(&store, (0..20).map(|i| format!("pc{i}")));
    // The long transaction: serializable, and it has read.
    let mut long = db.client(Some(&schema));
    long.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM credentials")
        .unwrap();
    let long_pid: i32 = long
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    // The predicate locks on this schema's tables and indexes but the long transaction's own, each
    // named by its target and transaction. Compared as sets: PostgreSQL clears the locks of
    // transactions that overlapped nothing lazily, whenever a serializable one ends, so a count
    // may fall; a lock kept for the long transaction's sake cannot go before it ends.
    let predicate_locks = |client: &mut postgres::Client| -> BTreeSet<String> {
        client
            .query(
                "SELECT concat_ws(' ', locktype, relation::regclass, page, tuple, \
                                  virtualtransaction) \
                 FROM pg_locks \
                 WHERE mode = 'SIReadLock' AND pid IS DISTINCT FROM $1 \
                   AND relation IN (SELECT oid FROM pg_class \
                                    WHERE relnamespace = current_schema()::regnamespace)",
                &[&long_pid],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let new_locks = |client: &mut postgres::Client, before: &BTreeSet<String>| -> Vec<String> {
        predicate_locks(client)
            .difference(before)
            .cloned()
            .collect()
    };
    let mut watcher = db.client(Some(&schema));
    // Locks of the writes above may still be listed (PostgreSQL clears them lazily).
    let before = predicate_locks(&mut watcher);
    for round in 0..5_u32 {
        let sets: Vec<ChangeSet> = computers
            .iter()
            .map(|&computer| {
                let read = store.credentials(computer).unwrap();
                ChangeSet {
                    changes: vec![Change::SetCredentials {
                        computer,
                        expected: read.clone(),
                        credentials: AgentCredentials {
                            last_reply: Some(f64::from(round) + 0.5),
                            ..read
                        },
                    }],
                }
            })
            .collect();
        for result in store.apply_many(&sets) {
            result.unwrap();
        }
    }
    assert_eq!(new_locks(&mut watcher, &before), Vec::<String>::new());

    // An administrative write is still serializable: its locks stay while the long transaction
    // runs (which is what the agent path's were doing).
    let computer = computers[0];
    let read = store.credentials(computer).unwrap();
    store
        .apply(&ChangeSet {
            changes: vec![
                Change::SetCredentials {
                    computer,
                    expected: read.clone(),
                    credentials: AgentCredentials {
                        last_reply: Some(99.5),
                        ..read
                    },
                },
                Change::CreateContainer {
                    container: testkit::container("admin"),
                    jobs: Vec::new(),
                },
            ],
        })
        .unwrap();
    assert!(!new_locks(&mut watcher, &before).is_empty());
    long.batch_execute("COMMIT").unwrap();
}
