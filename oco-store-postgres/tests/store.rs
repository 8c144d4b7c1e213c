//! What the PostgreSQL store does beyond the conformance suite: its migrations, a change set
//! failing at any statement or cut off by a killed connection leaves no trace, and the planner
//! snapshot's index. Skipped, saying so, without `OCO_TEST_POSTGRES`; see `tests/common`.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::TestDatabase;
use oco_core::model::{ComputerId, ContainerId, Job, JobKind, JobState, Origin};
use oco_core::store::testkit::{self, fixture, Fixture};
use oco_core::store::{AgentCredentials, Change, ChangeSet, Page, Store, StoreError};
use oco_store_postgres::{PgStore, SCHEMA_VERSION};

#[test]
fn a_new_database_gets_the_current_schema_and_records_it() {
    let Some(db) = TestDatabase::get("a_new_database_gets_the_current_schema_and_records_it")
    else {
        return;
    };
    let schema = db.schema();
    let store = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    // Opening again migrates nothing: one row per version.
    let store = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mut client = db.client(Some(&schema));
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM oco_schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=i64::from(SCHEMA_VERSION)).collect::<Vec<_>>()
    );
}

#[test]
fn stores_opened_at_once_migrate_one_after_the_other() {
    let Some(db) = TestDatabase::get("stores_opened_at_once_migrate_one_after_the_other") else {
        return;
    };
    let schema = db.schema();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let (url, options) = (db.url.clone(), db.options(&schema));
            thread::spawn(move || PgStore::connect_with(&url, &options).map(drop))
        })
        .collect();
    for handle in opened {
        handle.join().unwrap().unwrap();
    }
    let count: i64 = db
        .client(Some(&schema))
        .query_one("SELECT count(*) FROM oco_schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, i64::from(SCHEMA_VERSION));
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let Some(db) = TestDatabase::get("a_newer_schema_is_refused_naming_both_versions") else {
        return;
    };
    let schema = db.schema();
    drop(PgStore::connect_with(&db.url, &db.options(&schema)).unwrap());
    let newer = SCHEMA_VERSION + 1;
    db.client(Some(&schema))
        .execute(
            "INSERT INTO oco_schema_migrations (version, description) VALUES ($1, 'future')",
            &[&i64::from(newer)],
        )
        .unwrap();
    let err = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid: the database has schema version {newer}, newer than version \
             {SCHEMA_VERSION} that this oco-store-postgres knows: open it with a newer release"
        )
    );
}

#[test]
fn a_connection_string_that_does_not_parse_is_invalid() {
    let err = PgStore::connect("postgres://host:notaport/db").unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("the PostgreSQL connection string does not parse"),
        "{err}"
    );
}

/// A change set of a container with `jobs` Waiting jobs on the fixture's first computer.
fn big_container(f: &Fixture, jobs: usize) -> ChangeSet {
    let job = Job::new(
        Origin::Container(ContainerId(0)),
        f.computers[0].id,
        &f.packages[0],
        JobKind::Install,
        1,
    );
    ChangeSet {
        changes: vec![Change::CreateContainer {
            container: testkit::container("big"),
            jobs: vec![job; jobs],
        }],
    }
}

#[test]
fn a_failed_statement_rolls_the_whole_set_back() {
    let Some(db) = TestDatabase::get("a_failed_statement_rolls_the_whole_set_back") else {
        return;
    };
    let store = db.store();
    let f = fixture(&store);
    let c = testkit::create_container(
        &store,
        "c",
        vec![Job::new(
            Origin::Container(ContainerId(0)),
            f.computers[0].id,
            &f.packages[0],
            JobKind::Install,
            1,
        )],
    )
    .0;
    let job = store
        .list_jobs(&oco_core::store::JobFilter::default(), Page::first(1))
        .unwrap()[0]
        .clone();
    let mut done = job.clone();
    done.state = JobState::Succeeded;
    let set = ChangeSet {
        changes: vec![
            Change::UpdateJob {
                expected: job.revision,
                job: done,
            },
            Change::UpsertAssignment {
                assignment: oco_core::model::Assignment {
                    computer: job.computer,
                    package: job.package,
                    installed_at: testkit::at(3),
                    job: Some(job.id),
                },
            },
            Change::InsertJob {
                job: Job::new(
                    Origin::Container(c),
                    f.computers[1].id,
                    &f.other,
                    JobKind::Install,
                    1,
                ),
            },
        ],
    };
    let before = testkit::dump(&store);
    let mut n = 1;
    loop {
        store.fail_nth_statement(Some(n));
        match store.apply(&set) {
            Err(StoreError::Backend(_)) => {
                assert_eq!(testkit::dump(&store), before, "statement {n} failed");
                n += 1;
            }
            Ok(_) => break,
            Err(other) => panic!("statement {n}: {other:?}"),
        }
    }
    assert!(n > 4, "the set runs several statements, got {n}");
    store.fail_nth_statement(None);
    assert_eq!(store.job(job.id).unwrap().state, JobState::Succeeded);
}

/// A batch of hellos writes the credentials of several computers in one statement of its own,
/// then the rest in a transaction; with any statement failing, each set still fails or
/// succeeds whole, on its own.
#[test]
fn a_failed_statement_in_a_batch_of_hellos_fails_its_sets_alone() {
    let Some(db) =
        TestDatabase::get("a_failed_statement_in_a_batch_of_hellos_fails_its_sets_alone")
    else {
        return;
    };
    let store = db.store();
    let pcs = testkit::create_computers(&store, (0..5).map(|i| format!("pc{i}")));
    let hello = |n: u64| AgentCredentials {
        agent_key: Some(format!("key {n}")),
        last_hello: Some(n as f64),
        ..AgentCredentials::default()
    };
    // Every computer has had a hello: the batch writes rows that exist.
    for &computer in &pcs {
        store
            .apply(&ChangeSet {
                changes: vec![Change::SetCredentials {
                    computer,
                    expected: AgentCredentials::default(),
                    credentials: hello(0),
                }],
            })
            .unwrap();
    }
    let mut failing = Vec::new();
    for n in 1..=30 {
        let before: Vec<AgentCredentials> = pcs
            .iter()
            .map(|&pc| store.credentials(pc).unwrap())
            .collect();
        // Four hellos as expected, and the last computed from credentials no longer stored.
        let sets: Vec<ChangeSet> = pcs
            .iter()
            .zip(&before)
            .enumerate()
            .map(|(i, (&computer, stored))| ChangeSet {
                changes: vec![Change::SetCredentials {
                    computer,
                    expected: if i < 4 { stored.clone() } else { hello(1000) },
                    credentials: hello(n),
                }],
            })
            .collect();
        store.fail_nth_statement(Some(n));
        let results = store.apply_many(&sets);
        store.fail_nth_statement(None);
        for (i, (result, stored)) in results.iter().zip(&before).enumerate() {
            let now = store.credentials(pcs[i]).unwrap();
            match (i, result) {
                (0..4, Ok(_)) => assert_eq!(now, hello(n), "statement {n} failed, set {i}"),
                (4, Err(StoreError::Conflict { .. })) => {
                    assert_eq!(&now, stored, "statement {n} failed, set {i}")
                }
                (_, Err(StoreError::Backend(_))) => {
                    assert_eq!(&now, stored, "statement {n} failed, set {i}");
                    failing.push((n, i));
                }
                _ => panic!("statement {n} failed, set {i}: {result:?}"),
            }
        }
    }
    // Statement 1 is the batch's own: nothing of it is written, and in the transaction that
    // follows (where statement 1 fails again) the first set fails and the others are written.
    // Then the conflicting set's own statements (its savepoint, the compare-and-set, the reads
    // that tell a conflict apart) fail it alone.
    assert_eq!(failing[0], (1, 0), "{failing:?}");
    assert!(
        failing[1..].iter().all(|&(_, set)| set == 4) && failing.len() >= 4,
        "{failing:?}"
    );
}

#[test]
fn a_connection_killed_mid_transaction_leaves_nothing_half_written() {
    let Some(db) =
        TestDatabase::get("a_connection_killed_mid_transaction_leaves_nothing_half_written")
    else {
        return;
    };
    let schema = db.schema();
    // A name of its own, so that only this store's connection is terminated.
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name=oco-killed", db.url);
    let store = PgStore::connect_with(&url, &db.options(&schema)).unwrap();
    let f = fixture(&store);
    let set = big_container(&f, 20_000);
    let before = testkit::dump(&store);
    let (started, started_rx) = mpsc::channel();
    let mut client = db.client(None);
    let killer = thread::spawn(move || {
        started_rx.recv().unwrap();
        // Up to about 10 s for the set's transaction to be seen inserting its jobs.
        for _ in 0..5_000 {
            let killed = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'oco-killed' AND query LIKE 'INSERT INTO jobs%'",
                    &[],
                )
                .unwrap();
            if killed.iter().any(|row| row.get::<_, bool>(0)) {
                return true;
            }
            thread::sleep(Duration::from_millis(2));
        }
        false
    });
    started.send(()).unwrap();
    let result = store.apply(&set);
    assert!(
        killer.join().unwrap(),
        "the applying connection was terminated"
    );
    let err = result.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    // Nothing of the set is there, and the store goes on with a new connection.
    assert_eq!(testkit::dump(&store), before);
    assert!(store.apply(&big_container(&f, 1)).is_ok());
}

#[test]
fn a_computers_pending_jobs_are_one_index_range_scan() {
    let Some(db) = TestDatabase::get("a_computers_pending_jobs_are_one_index_range_scan") else {
        return;
    };
    let schema = db.schema();
    let store = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    let f = fixture(&store);
    // 300 computers with 5 jobs each: one computer's are a few rows among many.
    let mut jobs = Vec::new();
    for n in 0..300 {
        let pc = store
            .create_computer(testkit::new_computer(&format!("pc-{n}")))
            .unwrap();
        for package in [&f.packages[0], &f.packages[1], &f.other] {
            jobs.push(Job::new(
                Origin::Container(ContainerId(0)),
                pc.id,
                package,
                JobKind::Install,
                1,
            ));
        }
    }
    testkit::create_container(&store, "many", jobs);
    let mut client = db.client(Some(&schema));
    client.batch_execute("ANALYZE jobs").unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN (COSTS OFF) SELECT * FROM jobs j WHERE j.computer_id = $1 \
             AND j.state IN ('waiting', 'downloading', 'executing')",
            &[&f.computers[0].id.0],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.starts_with("Index Scan using jobs_by_computer on jobs"),
        "{plan}"
    );
}

#[test]
fn connections_closed_while_idle_are_replaced_without_an_error() {
    let Some(db) = TestDatabase::get("connections_closed_while_idle_are_replaced_without_an_error")
    else {
        return;
    };
    // An application name of this test's own, so that only its sessions are ended.
    let name = format!("oco_idle_test_{}", std::process::id());
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={name}", db.url);
    let schema = db.schema();
    let options = oco_store_postgres::Options {
        max_connections: 3,
        ..db.options(&schema)
    };
    let store = PgStore::connect_with(&url, &options).unwrap();
    let f = fixture(&store);
    // Three connections open and idle in the pool.
    thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                for _ in 0..20 {
                    store.computer(f.computers[0].id).unwrap();
                }
            });
        }
    });
    // The server ends every one of them (a restart, an administrator, a firewall).
    let mut admin = db.client(None);
    let ended: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(ended >= 1, "some connections were open");
    thread::sleep(Duration::from_millis(100));
    // The next reads (a single statement outside a transaction, then a transaction) and the
    // next write each run on a new connection, without an error.
    let found = store.agent_lookup("pc1").unwrap().expect("pc1 exists");
    assert_eq!(found.computer, f.computers[0].id);
    assert_eq!(store.computer(f.computers[0].id).unwrap(), f.computers[0]);
    store
        .set_last_seen(f.computers[0].id, testkit::at(9))
        .unwrap();
    assert_eq!(
        store.computer(f.computers[0].id).unwrap().last_seen,
        Some(testkit::at(9))
    );
}

#[test]
fn many_callers_share_few_connections_without_giving_up() {
    let Some(db) = TestDatabase::get("many_callers_share_few_connections_without_giving_up") else {
        return;
    };
    let schema = db.schema();
    let options = oco_store_postgres::Options {
        max_connections: 2,
        ..db.options(&schema)
    };
    let store = PgStore::connect_with(&db.url, &options).unwrap();
    let f = fixture(&store);
    // 32 callers over 2 connections: each waits its turn, often woken for a connection another
    // caller then takes first, and none gives up within the 5 s wait.
    let failures: Vec<StoreError> = thread::scope(|scope| {
        let callers: Vec<_> = (0..32)
            .map(|_| {
                scope.spawn(|| {
                    (0..25)
                        .filter_map(|_| store.computer(f.computers[0].id).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        callers
            .into_iter()
            .flat_map(|caller| caller.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        failures.first()
    );
}

#[test]
fn a_job_snapshot_of_a_rolled_back_change_set_is_not_reused() {
    let Some(db) = TestDatabase::get("a_job_snapshot_of_a_rolled_back_change_set_is_not_reused")
    else {
        return;
    };
    let schema = db.schema();
    // One connection, so that every call below runs on the connection that saw the rollback.
    let options = oco_store_postgres::Options {
        max_connections: 1,
        ..db.options(&schema)
    };
    let store = PgStore::connect_with(&db.url, &options).unwrap();
    let f = fixture(&store);
    let job = |computer: usize| {
        Job::new(
            Origin::Container(ContainerId(0)),
            f.computers[computer].id,
            &f.other,
            JobKind::Install,
            1,
        )
    };
    // The first member stores the snapshot of `f.other` and then fails: rolled back, snapshot
    // and all. The second member stores it again.
    let failing = ChangeSet {
        changes: vec![
            Change::CreateContainer {
                container: testkit::container("rolled back"),
                jobs: vec![job(0)],
            },
            Change::DeleteContainer {
                id: ContainerId(999_999),
                jobs: Vec::new(),
                at: testkit::at(1),
            },
        ],
    };
    let kept = ChangeSet {
        changes: vec![Change::CreateContainer {
            container: testkit::container("kept"),
            jobs: vec![job(1)],
        }],
    };
    let results = store.apply_many(&[failing, kept.clone()]);
    assert!(results[0].is_err(), "{:?}", results[0]);
    let first = results[1].as_ref().unwrap().jobs[0];
    // Read back (the snapshot now cached by id), then written again by value in new sets.
    assert_eq!(store.job(first).unwrap().snapshot, job(1).snapshot);
    let again = store.apply(&kept).unwrap().jobs[0];
    assert_eq!(store.job(again).unwrap().snapshot, job(1).snapshot);
}

/// A hello's credentials update stays in its row's page (a heap-only update, no index entry),
/// even when the rows were written one after the other: the table's pages keep room (schema
/// version 5). With full pages, every row of a full page moved at its first update.
#[test]
fn credentials_updates_stay_in_their_page() {
    let Some(db) = TestDatabase::get("credentials_updates_stay_in_their_page") else {
        return;
    };
    let schema = db.schema();
    let store = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    let keyed = |round: u32| AgentCredentials {
        agent_key: Some(format!("{round:0>64}")),
        server_key: Some("s".repeat(64)),
        last_reply: Some(f64::from(round)),
        ..AgentCredentials::default()
    };
    // Enough rows for several pages.
    let computers: Vec<ComputerId> = (0..200)
        .map(|i| {
            let id = store
                .create_computer(testkit::new_computer(&format!("pc{i}")))
                .unwrap()
                .id;
            store.set_credentials(id, &keyed(0)).unwrap();
            id
        })
        .collect();
    let mut client = db.client(Some(&schema));
    let page = |client: &mut postgres::Client, computer: ComputerId| -> String {
        let ctid: String = client
            .query_one(
                "SELECT ctid::text FROM credentials WHERE computer_id = $1",
                &[&computer.0],
            )
            .unwrap()
            .get(0);
        ctid.trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .next()
            .unwrap()
            .to_owned()
    };
    let before: Vec<String> = computers.iter().map(|&c| page(&mut client, c)).collect();
    assert!(
        before
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 2,
        "the rows span several pages: {before:?}"
    );
    for &computer in &computers {
        store
            .apply(&ChangeSet {
                changes: vec![Change::SetCredentials {
                    computer,
                    expected: keyed(0),
                    credentials: keyed(1),
                }],
            })
            .unwrap();
    }
    let moved = computers
        .iter()
        .zip(&before)
        .filter(|(&computer, page_before)| page(&mut client, computer) != **page_before)
        .count();
    assert_eq!(moved, 0, "rows moved to another page at their update");
}
