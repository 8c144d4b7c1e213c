//! Stored values edited by hand into garbage: reading that container or rule is
//! `StoreError::Corrupt` naming it, the planner holds its jobs with reason `Corrupt`, and every
//! other container, rule and computer stays usable; writing a valid value repairs it.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use oco_core::model::{ContainerId, JobId, JobKind, JobState, Origin, RuleId};
use oco_core::plan::{plan, HoldReason};
use oco_core::rules::{NewJob, NewJobs};
use oco_core::store::testkit::{at, fixture, name, rule, Fixture};
use oco_core::store::{Change, ChangeSet, Store, StoreError};
use oco_core::Settings;
use oco_store_sqlite::SqliteStore;

use common::{open_container, temp_store, waiting_job};

struct Scene {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
    f: Fixture,
    bad: ContainerId,
    good: ContainerId,
    bad_jobs: Vec<JobId>,
    good_jobs: Vec<JobId>,
}

/// Two containers with jobs on both computers.
fn scene() -> Scene {
    let (dir, path, store) = temp_store();
    let f = fixture(&store);
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let mut ids = Vec::new();
    for title in ["bad", "good"] {
        let applied = store
            .apply(&ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: open_container(title),
                    jobs: vec![
                        waiting_job(pc1, &f.packages[0], 1),
                        waiting_job(pc1, &f.other, 2),
                        waiting_job(pc2, &f.packages[0], 1),
                    ],
                }],
            })
            .unwrap();
        ids.push(applied);
    }
    Scene {
        _dir: dir,
        path,
        store,
        bad: ids[0].containers[0],
        good: ids[1].containers[0],
        bad_jobs: ids[0].jobs.clone(),
        good_jobs: ids[1].jobs.clone(),
        f,
    }
}

/// Sets `column` of row `id` of `table` to `value` behind the store's back.
fn vandalise(path: &Path, table: &str, column: &str, id: i64, value: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let changed = conn
        .execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"),
            rusqlite::params![value, id],
        )
        .unwrap();
    assert_eq!(changed, 1, "no {table} row {id}");
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, id: i64) {
    match result {
        Err(error @ StoreError::Corrupt { .. }) => {
            let StoreError::Corrupt { id: named, .. } = &error else {
                unreachable!()
            };
            assert_eq!(named, &id.to_string(), "{error}");
            assert!(error.to_string().contains(&id.to_string()), "{error}");
        }
        other => panic!("expected Corrupt naming {id}, got {other:?}"),
    }
}

/// What a poll of `computer` holds and hands out.
fn poll(
    store: &SqliteStore,
    computer: oco_core::model::ComputerId,
) -> (Vec<(JobId, HoldReason)>, Vec<JobId>) {
    let snapshot = store.planner_snapshot(computer).unwrap();
    let plan = plan(
        &snapshot,
        at(3_600),
        "10.1.2.3".parse().unwrap(),
        &Settings::default(),
    );
    (
        plan.held
            .iter()
            .map(|h| (h.job.id, h.reason.clone()))
            .collect(),
        plan.deliver.iter().map(|d| d.job.id).collect(),
    )
}

fn check_corrupt_container(column: &str, garbage: &str) {
    let s = scene();
    vandalise(&s.path, "containers", column, s.bad.0, garbage);
    let [pc1, pc2] = [s.f.computers[0].id, s.f.computers[1].id];

    assert_corrupt(s.store.container(s.bad), s.bad.0);
    assert_eq!(s.store.container(s.good).unwrap().name, name("good"));

    // The planner snapshot succeeds, with the reason in that origin's policy.
    let snapshot = s.store.planner_snapshot(pc1).unwrap();
    let reason = snapshot.origins[&Origin::Container(s.bad)]
        .policy
        .clone()
        .expect_err("the vandalised policy reads as an error");
    assert!(!reason.is_empty());
    assert!(snapshot.origins[&Origin::Container(s.good)].policy.is_ok());

    // Its jobs are held as Corrupt; the other container's are handed out.
    for computer in [pc1, pc2] {
        let (held, delivered) = poll(&s.store, computer);
        let bad_here: Vec<JobId> = held.iter().map(|(id, _)| *id).collect();
        for (id, reason) in &held {
            assert!(
                s.bad_jobs.contains(id),
                "a good job {id} is held: {reason:?}"
            );
            assert!(matches!(reason, HoldReason::Corrupt { .. }), "{reason:?}");
        }
        for id in &delivered {
            assert!(
                s.good_jobs.contains(id),
                "a corrupt container's job {id} was delivered"
            );
        }
        assert!(
            !bad_here.is_empty() && !delivered.is_empty(),
            "{column}: {held:?} {delivered:?}"
        );
    }

    // Jobs themselves stay readable; the good container's jobs take reports.
    for &id in s.bad_jobs.iter().chain(&s.good_jobs) {
        assert_eq!(s.store.job(id).unwrap().state, JobState::Waiting);
    }
    s.store.report_snapshot(s.good_jobs[0]).unwrap();
    // A bad container's report snapshot is readable or reported as corrupt, never a panic or
    // a backend failure.
    match s.store.report_snapshot(s.bad_jobs[0]) {
        Ok(_) | Err(StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("report snapshot of a corrupt container's job: {other:?}"),
    }
    match s
        .store
        .housekeeping_snapshot(oco_core::chrono::DateTime::UNIX_EPOCH)
    {
        Ok(_) | Err(StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("housekeeping with a corrupt container: {other:?}"),
    }

    // Writing a valid container repairs it.
    let mut repaired = open_container("bad");
    repaired.id = s.bad;
    s.store
        .apply(&ChangeSet {
            changes: vec![Change::UpdateContainer {
                container: repaired.clone(),
            }],
        })
        .unwrap();
    assert_eq!(s.store.container(s.bad).unwrap(), repaired);
    assert!(
        poll(&s.store, pc1).0.is_empty(),
        "nothing is held once repaired"
    );
}

#[test]
fn garbage_ip_ranges_make_only_that_container_corrupt() {
    check_corrupt_container("ip_ranges", "10.0.0.0/33, ¡garbage!");
}

#[test]
fn garbage_time_frames_make_only_that_container_corrupt() {
    check_corrupt_container("time_frames", "EVERY BLUE MOON 25:00-26:00");
}

#[test]
fn an_unknown_time_zone_makes_only_that_container_corrupt() {
    check_corrupt_container("time_zone", "Mars/Olympus_Mons");
}

#[test]
fn a_garbage_rule_policy_makes_only_that_rule_corrupt() {
    let s = scene();
    let pc1 = s.f.computers[0].id;
    let computers = s.store.create_computer_group(name("all"), None).unwrap();
    s.store
        .set_computer_group_members(computers.id, &[pc1])
        .unwrap();
    let packages = s.store.create_package_group(name("apps"), None).unwrap();
    let mut rules: Vec<RuleId> = Vec::new();
    for title in ["bad rule", "good rule"] {
        let mut created = rule(title, computers.id, packages.id);
        created.enabled = true;
        created.policy = common::open_policy();
        let created = s.store.create_rule(created).unwrap();
        let mut jobs = NewJobs::new();
        jobs.push(NewJob {
            computer: pc1,
            package: s.f.packages[1].id,
            kind: JobKind::Install,
            sequence: 1,
            state: JobState::Waiting,
        });
        s.store
            .apply(&ChangeSet {
                changes: vec![Change::InsertRuleJobs {
                    rule: created.id,
                    at: at(1),
                    jobs,
                }],
            })
            .unwrap();
        rules.push(created.id);
    }
    let [bad, good] = [rules[0], rules[1]];
    vandalise(&s.path, "rules", "ip_ranges", bad.0, "not an address");

    assert_corrupt(s.store.rule(bad), bad.0);
    assert_eq!(s.store.rule(good).unwrap().name, name("good rule"));
    let snapshot = s.store.planner_snapshot(pc1).unwrap();
    assert!(snapshot.origins[&Origin::Rule(bad)].policy.is_err());
    assert!(snapshot.origins[&Origin::Rule(good)].policy.is_ok());
    let (held, delivered) = poll(&s.store, pc1);
    let bad_job = snapshot
        .jobs
        .iter()
        .find(|j| j.origin == Origin::Rule(bad))
        .unwrap()
        .id;
    let good_job = snapshot
        .jobs
        .iter()
        .find(|j| j.origin == Origin::Rule(good))
        .unwrap()
        .id;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].0, bad_job);
    assert!(matches!(held[0].1, HoldReason::Corrupt { .. }));
    assert!(delivered.contains(&good_job));
    // The containers' jobs are unaffected.
    assert!(delivered.contains(&s.bad_jobs[0]) && delivered.contains(&s.good_jobs[0]));

    // Updating the rule with a valid policy repairs it.
    let mut repaired = rule("bad rule", computers.id, packages.id).with_id(bad);
    repaired.enabled = true;
    repaired.policy = common::open_policy();
    s.store.update_rule(&repaired).unwrap();
    assert_eq!(s.store.rule(bad).unwrap(), repaired);
    assert!(poll(&s.store, pc1).0.is_empty());
}
