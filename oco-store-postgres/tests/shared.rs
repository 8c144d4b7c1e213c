//! Several stores on one database: each hears the others' committed writes that change what a
//! hello hands out, never its own nor a rolled-back one, and one at a time holds a leadership
//! lock, which passes on when its holder goes. Skipped, saying so, without `OCO_TEST_POSTGRES`;
//! see `tests/common`.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestDatabase;
use oco_core::model::{ComputerId, ContainerId, Job, JobKind, JobState, Origin};
use oco_core::store::testkit::{self, fixture};
use oco_core::store::{Change, ChangeSet, JobFilter, Page, Store};
use oco_store_postgres::{Listener, PgStore, Touched};

/// Two stores of two "processes" on one schema.
fn two_stores(db: &TestDatabase) -> (PgStore, PgStore) {
    let schema = db.schema();
    let a = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    let b = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    (a, b)
}

/// Everything `listener` hears within a round trip and a short wait.
fn heard(listener: &mut Listener) -> Vec<Touched> {
    let mut touched = listener.sync().unwrap();
    touched.extend(listener.wait(Duration::from_millis(50)).unwrap());
    touched
}

fn computers(touched: &[Touched]) -> BTreeSet<ComputerId> {
    touched
        .iter()
        .flat_map(|t| match t {
            Touched::Computers(ids) => ids.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_listener_hears_the_other_stores_writes_and_not_its_own() {
    let Some(db) = TestDatabase::get("a_listener_hears_the_other_stores_writes_and_not_its_own")
    else {
        return;
    };
    let (a, b) = two_stores(&db);
    let f = fixture(&a);
    let mut hears_b = a.listen().unwrap();
    let mut hears_a = b.listen().unwrap();
    // The fixture's own writes (computers, packages: in no hello) were before listening.
    assert_eq!(heard(&mut hears_a), vec![]);

    // A deploys to two computers: B hears both, A hears nothing of its own write.
    let jobs = [0, 1]
        .map(|i| {
            Job::new(
                Origin::Container(ContainerId(0)),
                f.computers[i].id,
                &f.packages[0],
                JobKind::Install,
                1,
            )
        })
        .to_vec();
    let (container, _) = testkit::create_container(&a, "c", jobs);
    assert_eq!(
        computers(&heard(&mut hears_a)),
        BTreeSet::from([f.computers[0].id, f.computers[1].id])
    );
    assert_eq!(heard(&mut hears_b), vec![]);

    // B reports on one job: A hears that computer only.
    let job = b
        .list_jobs(
            &JobFilter {
                computer: Some(f.computers[1].id),
                ..JobFilter::default()
            },
            Page::first(1),
        )
        .unwrap()
        .remove(0);
    let mut done = job.clone();
    done.state = JobState::Succeeded;
    b.apply(&ChangeSet {
        changes: vec![Change::UpdateJob {
            expected: job.revision,
            job: done,
        }],
    })
    .unwrap();
    assert_eq!(
        computers(&heard(&mut hears_b)),
        BTreeSet::from([f.computers[1].id])
    );

    // B edits the container: A hears the origin.
    let mut edited = b.container(container).unwrap();
    edited.name = oco_core::model::Name::new("name", "renamed").unwrap();
    b.apply(&ChangeSet {
        changes: vec![Change::UpdateContainer { container: edited }],
    })
    .unwrap();
    assert_eq!(
        heard(&mut hears_b),
        vec![Touched::Containers(vec![container])]
    );

    // Last-seen times (every poll writes them) notify nobody.
    b.set_last_seen(f.computers[0].id, testkit::at(50)).unwrap();
    assert_eq!(heard(&mut hears_b), vec![]);
}

#[test]
fn a_rolled_back_write_and_a_write_by_hand() {
    let Some(db) = TestDatabase::get("a_rolled_back_write_and_a_write_by_hand") else {
        return;
    };
    let schema = db.schema();
    let a = PgStore::connect_with(&db.url, &db.options(&schema)).unwrap();
    let f = fixture(&a);
    let job = Job::new(
        Origin::Container(ContainerId(0)),
        f.computers[0].id,
        &f.packages[0],
        JobKind::Install,
        1,
    );
    testkit::create_container(&a, "c", vec![job]);
    let mut listener = a.listen().unwrap();

    // A set that fails (a stale revision) is rolled back: nothing to hear.
    let stored = a.list_jobs(&JobFilter::default(), Page::first(1)).unwrap()[0].clone();
    let mut stale = stored.clone();
    stale.state = JobState::Failed;
    let failed = a.apply(&ChangeSet {
        changes: vec![Change::UpdateJob {
            expected: stored.revision.next(),
            job: stale,
        }],
    });
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(heard(&mut listener), vec![]);

    // An administrator's UPDATE by hand, in another search path, is heard.
    let mut client = db.client(None);
    client
        .batch_execute(&format!(
            "UPDATE \"{schema}\".jobs SET state = 'failed' WHERE id = {}",
            stored.id.0
        ))
        .unwrap();
    assert_eq!(
        heard(&mut listener),
        vec![Touched::Computers(vec![f.computers[0].id])]
    );

    // A statement over very many rows says "everything" once.
    client
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".computers (hostname, hostname_key, os, os_version, \
             architecture, macs) SELECT 'bulk' || i, 'bulk' || i, '', '', '', '' \
             FROM generate_series(1, 7000) AS i; \
             UPDATE \"{schema}\".computers SET os = 'Linux'"
        ))
        .unwrap();
    assert_eq!(heard(&mut listener), vec![Touched::Everything]);
}

#[test]
fn one_store_leads_at_a_time_and_another_takes_over_when_it_goes() {
    let Some(db) =
        TestDatabase::get("one_store_leads_at_a_time_and_another_takes_over_when_it_goes")
    else {
        return;
    };
    let (a, b) = two_stores(&db);
    // A key of this test's own: tests in parallel share the database's advisory locks.
    let key = i64::from(std::process::id()) << 20 | 0x5eed;
    let mut leader = a.try_lead(key).unwrap().expect("nobody leads yet");
    leader.confirm().unwrap();
    assert!(b.try_lead(key).unwrap().is_none());
    assert!(a.try_lead(key).unwrap().is_none(), "one session at a time");

    // The leader's session is killed (its process died): the lock is gone, B takes it.
    let mut admin = db.client(None);
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND objid = {}",
            key & 0xffff_ffff
        ))
        .unwrap();
    assert!(leader.confirm().is_err(), "the old leader learns it lost");
    // PostgreSQL ends the session a moment after the signal: up to 250 tries, 20 ms apart.
    let mut tries = 0;
    let mut next = loop {
        if let Some(next) = b.try_lead(key).unwrap() {
            break next;
        }
        tries += 1;
        assert!(tries < 250, "nobody took over");
        std::thread::sleep(Duration::from_millis(20));
    };
    next.confirm().unwrap();
    // Dropping hands it on at once.
    drop(next);
    assert!(a.try_lead(key).unwrap().is_some());
}
