//! The store conformance suite on `MemoryStore`, `FailingStore`, and change-set atomicity under
//! random change sets.

use std::collections::BTreeMap;

use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{Assignment, ComputerId, ContainerId, JobId, Origin, PackageId, Revision};
use oco_core::store::{
    testkit, Applied, Change, ChangeSet, FailingStore, JobFilter, MemoryStore, Page, Store,
    StoreError,
};
use proptest::prelude::*;

fn make() -> Box<dyn Store> {
    Box::new(MemoryStore::new())
}

#[test]
fn memory_store_passes_the_conformance_suite() {
    testkit::run_conformance(&make);
}

/// A store behind a reference or a smart pointer is a store too, and behaves as the one it points
/// to: the conformance suite through `Arc`, `Box<dyn Store>` and `&`.
#[test]
fn pointers_to_a_store_pass_the_conformance_suite() {
    testkit::run_conformance(&|| Box::new(std::sync::Arc::new(MemoryStore::new())));
    testkit::run_conformance(&|| Box::new(make()));
    // A `&'static` store for the suite's `Box<dyn Store>`: one small store leaked per check.
    testkit::run_conformance(&|| Box::new(&*Box::leak(Box::new(MemoryStore::new()))));
}

// FailingStore.

fn store_with_failure(nth: Option<u64>, from: Option<u64>) -> FailingStore<MemoryStore> {
    match (nth, from) {
        (Some(n), _) => FailingStore::fail_nth(MemoryStore::new(), n),
        (_, Some(n)) => FailingStore::fail_from(MemoryStore::new(), n),
        _ => unreachable!(),
    }
}

#[test]
fn failing_store_fails_exactly_the_nth_call_and_writes_nothing() {
    let store = store_with_failure(Some(3), None);
    store.create_computer(testkit::new_computer("pc1")).unwrap();
    store.create_computer(testkit::new_computer("pc2")).unwrap();
    let err = store
        .create_computer(testkit::new_computer("pc3"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(
        err.to_string().contains("injected failure of store call 3"),
        "{err}"
    );
    assert_eq!(store.calls(), 3);
    // Nothing of the failed call was written.
    assert!(store.inner().computer_by_hostname("pc3").unwrap().is_none());
    assert_eq!(
        store.inner().list_computers(Page::first(10)).unwrap().len(),
        2
    );
    // Later calls pass again.
    store.create_computer(testkit::new_computer("pc3")).unwrap();
    assert_eq!(store.list_computers(Page::first(10)).unwrap().len(), 3);
    assert_eq!(store.calls(), 5);
}

#[test]
fn failing_store_fail_from_keeps_failing() {
    let store = store_with_failure(None, Some(2));
    let pc = store.create_computer(testkit::new_computer("pc1")).unwrap();
    for _ in 0..3 {
        assert!(matches!(store.computer(pc.id), Err(StoreError::Backend(_))));
    }
    let set = ChangeSet {
        changes: vec![Change::CreateContainer {
            container: testkit::container("c"),
            jobs: vec![],
        }],
    };
    assert!(matches!(store.apply(&set), Err(StoreError::Backend(_))));
    let results = store.apply_many(&[set.clone(), set]);
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(StoreError::Backend(_)))));
    assert!(store
        .inner()
        .list_containers(Page::first(10))
        .unwrap()
        .is_empty());
    assert_eq!(store.calls(), 6);
}

#[test]
fn failing_store_fails_every_method_when_chosen() {
    // Every method goes through the counter: failing the first call of each fails it.
    type Call = fn(&FailingStore<MemoryStore>) -> bool;
    let calls: &[(&str, Call)] = &[
        ("computer", |s| s.computer(ComputerId(1)).is_err()),
        ("list_jobs", |s| {
            s.list_jobs(&JobFilter::default(), Page::first(1)).is_err()
        }),
        ("deploy_snapshot", |s| s.deploy_snapshot().is_err()),
        ("housekeeping_snapshot", |s| {
            s.housekeeping_snapshot(DateTime::UNIX_EPOCH).is_err()
        }),
        ("apply", |s| s.apply(&ChangeSet::default()).is_err()),
        ("computer_groups", |s| s.computer_groups().is_err()),
        ("package_groups", |s| s.package_groups().is_err()),
    ];
    for (name, call) in calls {
        let store = FailingStore::fail_nth(MemoryStore::new(), 1);
        assert!(call(&store), "{name} did not fail");
        assert_eq!(store.calls(), 1, "{name}");
    }
    // The conformance suite passes through a wrapper that never fails.
    testkit::run_conformance(&|| Box::new(FailingStore::fail_nth(MemoryStore::new(), 0)));
}

// Random change sets against a model.

#[derive(Debug, Clone)]
enum Op {
    Update {
        job: usize,
        wrong: bool,
    },
    Delete {
        job: usize,
        wrong: bool,
    },
    Insert {
        computer: usize,
        package: usize,
    },
    InsertOnUnknownComputer,
    Upsert {
        computer: usize,
        package: usize,
        at: i64,
    },
    Unassign {
        computer: usize,
        package: usize,
    },
    Expect {
        computer: usize,
        wrong: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, prop::bool::weighted(0.2)).prop_map(|(job, wrong)| Op::Update { job, wrong }),
        1 => (0..6usize, prop::bool::weighted(0.2)).prop_map(|(job, wrong)| Op::Delete { job, wrong }),
        2 => (0..2usize, 0..3usize).prop_map(|(computer, package)| Op::Insert { computer, package }),
        1 => Just(Op::InsertOnUnknownComputer),
        2 => (0..2usize, 0..3usize, 0..5i64).prop_map(|(computer, package, at)| Op::Upsert { computer, package, at }),
        1 => (0..2usize, 0..3usize).prop_map(|(computer, package)| Op::Unassign { computer, package }),
        1 => (0..2usize, prop::bool::weighted(0.2)).prop_map(|(computer, wrong)| Op::Expect { computer, wrong }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    /// Job id → (revision, output).
    jobs: BTreeMap<JobId, (Revision, String)>,
    /// (computer, package) → installed_at.
    assignments: BTreeMap<(ComputerId, PackageId), DateTime<Utc>>,
    revisions: BTreeMap<ComputerId, Revision>,
}

struct World {
    store: MemoryStore,
    f: testkit::Fixture,
    container: ContainerId,
}

fn world() -> World {
    let store = MemoryStore::new();
    let f = testkit::fixture(&store);
    let origin = Origin::Container(ContainerId(0));
    let jobs = (0..4)
        .map(|i| testkit::job(origin, f.computers[i % 2].id, &f.packages[i % 2], 1))
        .collect();
    let (container, _) = testkit::create_container(&store, "c", jobs);
    World {
        store,
        f,
        container,
    }
}

fn read_model(store: &dyn Store) -> Model {
    let dump = testkit::dump(store);
    Model {
        jobs: dump
            .jobs
            .iter()
            .map(|j| (j.id, (j.revision, j.output.clone())))
            .collect(),
        assignments: dump
            .computers
            .iter()
            .flat_map(|(_, _, list, _)| {
                list.iter()
                    .map(|a| ((a.computer, a.package), a.installed_at))
            })
            .collect(),
        revisions: dump
            .computers
            .iter()
            .map(|(c, _, _, revision)| (c.id, *revision))
            .collect(),
    }
}

/// Builds a change set from `ops` against `model`; returns it with the model after it (or `None`
/// if it must fail) and the outputs of the jobs it inserts, in order.
fn build(
    w: &World,
    model: &Model,
    ops: &[Op],
    tag: &str,
) -> (ChangeSet, Option<Model>, Vec<String>) {
    let mut next = Some(model.clone());
    let mut set = ChangeSet::default();
    let mut inserted = Vec::new();
    let computers = [w.f.computers[0].id, w.f.computers[1].id];
    let packages = [&w.f.packages[0], &w.f.packages[1], &w.f.other];
    for (i, op) in ops.iter().enumerate() {
        let output = format!("{tag} op {i}");
        // The job ids the base model knows, plus one that never existed.
        let mut ids: Vec<JobId> = model.jobs.keys().copied().collect();
        ids.push(JobId(9_999));
        match op {
            Op::Update { job, wrong } => {
                let id = ids[job % ids.len()];
                let current = next.as_ref().and_then(|m| m.jobs.get(&id)).map(|j| j.0);
                let expected = match current {
                    Some(r) if !wrong => r,
                    Some(r) => Revision(r.0 + 3),
                    None => Revision(1),
                };
                // An update keeps the job's identity (origin, computer, package, kind).
                let mut job = w.store.job(id).unwrap_or_else(|_| {
                    testkit::job(Origin::Container(w.container), computers[0], packages[0], 1)
                });
                job.id = id;
                job.output = output.clone();
                set.push(Change::UpdateJob { expected, job });
                if let Some(m) = next.as_mut() {
                    match m.jobs.get_mut(&id) {
                        Some(entry) if !wrong => *entry = (expected.next(), output),
                        _ => next = None,
                    }
                }
            }
            Op::Delete { job, wrong } => {
                let id = ids[job % ids.len()];
                let current = next.as_ref().and_then(|m| m.jobs.get(&id)).map(|j| j.0);
                let expected = match current {
                    Some(r) if !wrong => r,
                    Some(r) => Revision(r.0 + 3),
                    None => Revision(1),
                };
                let computer = w.store.job(id).map_or(computers[0], |job| job.computer);
                set.push(Change::DeleteJob {
                    id,
                    computer,
                    expected,
                    at: testkit::at(40),
                });
                if let Some(m) = next.as_mut() {
                    if current.is_some() && !wrong {
                        m.jobs.remove(&id);
                    } else {
                        next = None;
                    }
                }
            }
            Op::Insert { computer, package } => {
                let mut job = testkit::job(
                    Origin::Container(w.container),
                    computers[*computer],
                    packages[*package],
                    2,
                );
                job.output = output.clone();
                set.push(Change::InsertJob { job });
                inserted.push(output);
            }
            Op::InsertOnUnknownComputer => {
                let job = testkit::job(
                    Origin::Container(w.container),
                    ComputerId(777),
                    packages[0],
                    2,
                );
                set.push(Change::InsertJob { job });
                next = None;
            }
            Op::Upsert {
                computer,
                package,
                at,
            } => {
                let (computer, package) = (computers[*computer], packages[*package].id);
                let installed_at = testkit::at(*at);
                set.push(Change::UpsertAssignment {
                    assignment: Assignment {
                        computer,
                        package,
                        installed_at,
                        job: None,
                    },
                });
                if let Some(m) = next.as_mut() {
                    m.assignments.insert((computer, package), installed_at);
                    let r = m.revisions.entry(computer).or_default();
                    *r = r.next();
                }
            }
            Op::Unassign { computer, package } => {
                let (computer, package) = (computers[*computer], packages[*package].id);
                set.push(Change::DeleteAssignment { computer, package });
                if let Some(m) = next.as_mut() {
                    if m.assignments.remove(&(computer, package)).is_some() {
                        let r = m.revisions.entry(computer).or_default();
                        *r = r.next();
                    }
                }
            }
            Op::Expect { computer, wrong } => {
                let computer = computers[*computer];
                let current = next
                    .as_ref()
                    .map(|m| m.revisions.get(&computer).copied().unwrap_or_default())
                    .unwrap_or_default();
                let expected = if *wrong {
                    Revision(current.0 + 1)
                } else {
                    current
                };
                set.push(Change::ExpectAssignments { computer, expected });
                if *wrong {
                    next = None;
                }
            }
        }
    }
    (set, next, inserted)
}

/// Checks a successful set's result: the inserted jobs are there with revision 1, and the rest of
/// the state is `expected`; returns the model with the inserted jobs.
fn check_success(
    store: &dyn Store,
    mut expected: Model,
    applied: &Applied,
    inserted: &[String],
) -> Result<Model, TestCaseError> {
    prop_assert_eq!(applied.jobs.len(), inserted.len());
    for (id, output) in applied.jobs.iter().zip(inserted) {
        expected.jobs.insert(*id, (Revision(1), output.clone()));
    }
    prop_assert_eq!(&read_model(store), &expected);
    Ok(expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn apply_is_all_or_nothing(sets in prop::collection::vec(prop::collection::vec(op(), 1..8), 1..6)) {
        let w = world();
        let mut model = read_model(&w.store);
        for (n, ops) in sets.iter().enumerate() {
            let before = testkit::dump(&w.store);
            let (set, next, inserted) = build(&w, &model, ops, &format!("set {n}"));
            match (w.store.apply(&set), next) {
                (Ok(applied), Some(next)) => {
                    model = check_success(&w.store, next, &applied, &inserted)?;
                }
                (Err(_), None) => prop_assert_eq!(testkit::dump(&w.store), before),
                (result, next) => prop_assert!(
                    false,
                    "set {}: store says {:?}, model expected success: {}",
                    n, result, next.is_some()
                ),
            }
        }
    }

    #[test]
    fn apply_many_drops_only_failing_sets(sets in prop::collection::vec(prop::collection::vec(op(), 1..8), 1..6)) {
        let w = world();
        let mut model = read_model(&w.store);
        let mut built = Vec::new();
        for (n, ops) in sets.iter().enumerate() {
            let (set, next, inserted) = build(&w, &model, ops, &format!("set {n}"));
            if let Some(next) = &next {
                model = next.clone();
            }
            built.push((set, next.is_some(), inserted));
        }
        let change_sets: Vec<ChangeSet> = built.iter().map(|(s, _, _)| s.clone()).collect();
        let results = w.store.apply_many(&change_sets);
        prop_assert_eq!(results.len(), built.len());
        let mut inserted_total = Vec::new();
        for (result, (_, ok, inserted)) in results.iter().zip(&built) {
            prop_assert_eq!(result.is_ok(), *ok, "{:?}", result);
            if let Ok(applied) = result {
                prop_assert_eq!(applied.jobs.len(), inserted.len());
                inserted_total.extend(applied.jobs.iter().copied().zip(inserted.iter().cloned()));
            }
        }
        for (id, output) in inserted_total {
            model.jobs.insert(id, (Revision(1), output));
        }
        prop_assert_eq!(read_model(&w.store), model);
    }
}
