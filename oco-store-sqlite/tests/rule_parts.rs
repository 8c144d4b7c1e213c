//! A rule snapshot of a large part of the computers is read by scanning the tables rather than
//! computer by computer (the conformance suite's worlds are too small for that path): it holds
//! the same as the part read computer by computer, and a full evaluation on it gives the diff of
//! the whole snapshot.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oco_core::rules::{RuleWorld, Scope};
use oco_core::store::testkit::{at, create_computers, fixture, name, rule};
use oco_core::store::{NewRule, RulePart, Store};
use oco_store_sqlite::SqliteStore;

#[test]
fn a_large_part_scanned_equals_the_part_read_by_computer() {
    let store = SqliteStore::open_in_memory().unwrap();
    let f = fixture(&store);
    let computers = create_computers(&store, (0..1_200).map(|n| format!("host{n:04}")));
    let group = store.create_computer_group(name("many"), None).unwrap();
    store
        .set_computer_group_members(group.id, &computers[..1_150])
        .unwrap();
    let packages = store.create_package_group(name("tools"), None).unwrap();
    store
        .set_package_group_members(packages.id, &[f.other.id, f.packages[0].id])
        .unwrap();
    let id = store
        .create_rule(NewRule {
            enabled: true,
            ..rule("many", group.id, packages.id)
        })
        .unwrap()
        .id;
    let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
    store
        .apply(&world.evaluate(id, &Scope::full(), at(1)).into_change_set())
        .unwrap();
    // 100 members leave, so a full evaluation has jobs to retire outside the part's members.
    store
        .set_computer_group_members(group.id, &computers[100..1_150])
        .unwrap();

    let members = RulePart::computers(computers[100..1_150].iter().copied()).with_rule_jobs([id]);
    let scanned = store.rule_snapshot_part(&members).unwrap();
    assert_eq!(scanned.deploy.computers.len(), 1_050);
    let full = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
    let expected = full.evaluate(id, &Scope::full(), at(2));
    assert_eq!(expected.delete.len(), 200, "the leavers' jobs");
    assert_eq!(
        RuleWorld::from_snapshot(&scanned).evaluate(id, &Scope::full(), at(2)),
        expected
    );

    // More than the scan threshold: the same snapshot as computer by computer would read.
    let many = RulePart::computers(computers[..1_050].iter().copied());
    let scanned = store.rule_snapshot_part(&many).unwrap();
    assert_eq!(scanned.deploy.computers.len(), 1_050);
    let by_computer: Vec<_> = computers[..1_050]
        .chunks(500)
        .map(|chunk| {
            store
                .rule_snapshot_part(&RulePart::computers(chunk.iter().copied()))
                .unwrap()
        })
        .collect();
    let jobs: usize = by_computer.iter().map(|s| s.jobs.len()).sum();
    assert_eq!(scanned.jobs.len(), jobs);
    for snapshot in &by_computer {
        for (id, computer) in &snapshot.deploy.computers {
            assert_eq!(scanned.deploy.computers.get(id), Some(computer));
        }
        for (id, assignments) in &snapshot.deploy.assignments {
            assert_eq!(scanned.deploy.assignments.get(id), Some(assignments));
        }
    }
    let members: usize = scanned
        .deploy
        .computer_group_members
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(members, 950, "members filtered to the part");
}
