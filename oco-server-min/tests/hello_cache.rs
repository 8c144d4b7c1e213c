//! The hello cache (`oco_server_min::cache::CachedStore`): a store like the one it wraps, whose
//! hello reads always equal the wrapped store's after any sequence of writes through it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod gated;

use gated::{Gated, Held};

use std::sync::Arc;
use std::thread;

use oco_core::model::{ComputerId, ContainerId, JobState, Origin, Revision};
use oco_core::store::{
    testkit, AgentCredentials, Change, ChangeSet, MemoryStore, Page, PlannerSnapshot, Store,
    StoreResult,
};
use oco_server_min::cache::CachedStore;
use proptest::prelude::*;

fn cached(capacity: usize) -> CachedStore {
    CachedStore::new(Arc::new(MemoryStore::new()), capacity)
}

#[test]
fn passes_the_store_conformance_suite() {
    for capacity in [0, 1, 1_000] {
        testkit::run_conformance(&|| Box::new(cached(capacity)));
    }
}

/// What a hello of `hostname` reads, as the plain store answers it.
type HelloAnswer = Option<(AgentCredentials, PlannerSnapshot)>;

fn from_store(store: &dyn Store, hostname: &str) -> StoreResult<HelloAnswer> {
    Ok(store
        .hello_snapshot(hostname)?
        .map(|(_, credentials, snapshot)| (credentials, snapshot)))
}

fn from_cache(store: &CachedStore, hostname: &str) -> StoreResult<HelloAnswer> {
    Ok(store
        .hello(hostname)?
        .map(|read| (read.credentials, (*read.snapshot).clone())))
}

// ---------------------------------------------------------------------------------------------
// For all sequences of writes: the cache answers as the store.

const HOSTNAMES: [&str; 5] = ["pc0", "pc1", "PC1", "pc2", "pc3"];

/// One step; indexes pick among what exists when the step runs.
#[derive(Debug, Clone)]
enum Step {
    /// A hello of each hostname, the cache's answer compared with the store's.
    Hellos,
    CreateComputer(usize),
    RenameComputer(usize, usize),
    DeleteComputer(usize),
    /// Credentials through a change set; `stale` computes it from out-of-date credentials.
    Credentials {
        computer: usize,
        timestamp: u16,
        stale: bool,
    },
    CredentialsSetter(usize, u16),
    LastSeen(usize, i64),
    LastSeenSetter(usize, i64),
    /// A job's state; `stale` names an old revision (a conflict).
    JobState {
        job: usize,
        state: usize,
        stale: bool,
    },
    InsertJob(usize, usize),
    DeleteJob(usize),
    ToggleContainer(usize),
    Assignment(usize),
    /// Several credential and job changes in one `apply_many`.
    Many(Vec<(usize, u16)>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Hellos),
        1 => any::<usize>().prop_map(Step::CreateComputer),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(c, n)| Step::RenameComputer(c, n)),
        1 => any::<usize>().prop_map(Step::DeleteComputer),
        3 => (any::<usize>(), any::<u16>(), prop::bool::weighted(0.2)).prop_map(
            |(computer, timestamp, stale)| Step::Credentials { computer, timestamp, stale }
        ),
        1 => (any::<usize>(), any::<u16>()).prop_map(|(c, t)| Step::CredentialsSetter(c, t)),
        2 => (any::<usize>(), 0..1_000i64).prop_map(|(c, t)| Step::LastSeen(c, t)),
        1 => (any::<usize>(), 0..1_000i64).prop_map(|(c, t)| Step::LastSeenSetter(c, t)),
        3 => (any::<usize>(), any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(job, state, stale)| Step::JobState { job, state, stale }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(c, pc)| Step::InsertJob(c, pc)),
        1 => any::<usize>().prop_map(Step::DeleteJob),
        1 => any::<usize>().prop_map(Step::ToggleContainer),
        1 => any::<usize>().prop_map(Step::Assignment),
        1 => prop::collection::vec((any::<usize>(), any::<u16>()), 1..6).prop_map(Step::Many),
    ]
}

/// Two equal stores: `plain`, and `cached` over its own copy; every write goes to both.
struct World {
    plain: MemoryStore,
    cached: CachedStore,
}

impl World {
    fn new(capacity: usize) -> World {
        let world = World {
            plain: MemoryStore::new(),
            cached: cached(capacity),
        };
        for store in [&world.plain as &dyn Store, &world.cached] {
            let fixture = testkit::fixture(store);
            let [pc1, pc2] = &fixture.computers;
            let jobs = |pc: ComputerId| {
                vec![
                    testkit::job(
                        Origin::Container(ContainerId(0)),
                        pc,
                        &fixture.packages[0],
                        0,
                    ),
                    testkit::job(Origin::Container(ContainerId(0)), pc, &fixture.other, 1),
                ]
            };
            testkit::create_container(store, "a", [jobs(pc1.id), jobs(pc2.id)].concat());
            testkit::create_container(store, "b", jobs(pc1.id));
        }
        world
    }

    /// Runs `write` on both stores; both must answer alike (errors compared by their text).
    fn both<T: std::fmt::Debug>(&self, write: impl Fn(&dyn Store) -> T) {
        let plain = format!("{:?}", write(&self.plain));
        let cached = format!("{:?}", write(&self.cached));
        assert_eq!(plain, cached, "the stores answered a write differently");
    }

    fn computer(&self, index: usize) -> Option<ComputerId> {
        let all = self.plain.list_computers(Page::first(100)).unwrap();
        (!all.is_empty()).then(|| all[index % all.len()].id)
    }

    fn job(&self, index: usize) -> Option<oco_core::model::Job> {
        let all = self
            .plain
            .list_jobs(&Default::default(), Page::first(1_000))
            .unwrap();
        (!all.is_empty()).then(|| all[index % all.len()].clone())
    }

    fn containers(&self) -> Vec<oco_core::model::JobContainer> {
        self.plain.list_containers(Page::first(100)).unwrap()
    }

    fn credentials_change(&self, computer: ComputerId, timestamp: u16, stale: bool) -> Change {
        let mut expected = self.plain.credentials(computer).unwrap();
        if stale {
            expected.last_hello = Some(-1.0);
        }
        let mut credentials = expected.clone();
        credentials.last_hello = Some(f64::from(timestamp));
        credentials.server_key = Some(format!("server-{timestamp}"));
        Change::SetCredentials {
            computer,
            expected,
            credentials,
        }
    }

    fn job_change(&self, index: usize, state: usize, stale: bool) -> Option<Change> {
        let mut job = self.job(index)?;
        let expected = if stale {
            Revision(job.revision.0 + 7)
        } else {
            job.revision
        };
        job.state = JobState::ALL[state % JobState::ALL.len()];
        Some(Change::UpdateJob { expected, job })
    }

    fn run(&self, step: &Step) {
        let apply = |changes: Vec<Change>| {
            self.both(|s| {
                s.apply(&ChangeSet {
                    changes: changes.clone(),
                })
            })
        };
        match step {
            Step::Hellos => {
                for hostname in HOSTNAMES {
                    let plain = from_store(&self.plain, hostname).unwrap();
                    let cached = from_cache(&self.cached, hostname).unwrap();
                    assert_eq!(plain, cached, "hello of {hostname}");
                }
            }
            Step::CreateComputer(name) => self.both(|s| {
                s.create_computer(testkit::new_computer(HOSTNAMES[name % HOSTNAMES.len()]))
            }),
            Step::RenameComputer(computer, name) => {
                if let Some(id) = self.computer(*computer) {
                    let mut renamed = self.plain.computer(id).unwrap();
                    renamed.hostname = testkit::name(HOSTNAMES[name % HOSTNAMES.len()]);
                    self.both(|s| s.update_computer(&renamed));
                }
            }
            Step::DeleteComputer(computer) => {
                if let Some(id) = self.computer(*computer) {
                    self.both(|s| s.delete_computer(id, testkit::at(0)));
                }
            }
            Step::Credentials {
                computer,
                timestamp,
                stale,
            } => {
                if let Some(id) = self.computer(*computer) {
                    apply(vec![self.credentials_change(id, *timestamp, *stale)]);
                }
            }
            Step::CredentialsSetter(computer, timestamp) => {
                if let Some(id) = self.computer(*computer) {
                    let credentials = AgentCredentials {
                        agent_key: Some(format!("agent-{timestamp}")),
                        last_hello: Some(f64::from(*timestamp)),
                        ..AgentCredentials::default()
                    };
                    self.both(|s| s.set_credentials(id, &credentials));
                }
            }
            Step::LastSeen(computer, at) => {
                if let Some(id) = self.computer(*computer) {
                    apply(vec![Change::SetLastSeen {
                        computer: id,
                        at: testkit::at(*at),
                    }]);
                }
            }
            Step::LastSeenSetter(computer, at) => {
                if let Some(id) = self.computer(*computer) {
                    self.both(|s| s.set_last_seen(id, testkit::at(*at)));
                }
            }
            Step::JobState { job, state, stale } => {
                if let Some(change) = self.job_change(*job, *state, *stale) {
                    apply(vec![change]);
                }
            }
            Step::InsertJob(container, computer) => {
                let containers = self.containers();
                if let (Some(id), false) = (self.computer(*computer), containers.is_empty()) {
                    let container = &containers[container % containers.len()];
                    let package = self.plain.list_packages(Page::first(1)).unwrap();
                    let job = testkit::job(Origin::Container(container.id), id, &package[0], 5);
                    apply(vec![Change::InsertJob { job }]);
                }
            }
            Step::DeleteJob(job) => {
                if let Some(job) = self.job(*job) {
                    apply(vec![Change::DeleteJob {
                        id: job.id,
                        computer: job.computer,
                        expected: job.revision,
                        at: testkit::at(1),
                    }]);
                }
            }
            Step::ToggleContainer(container) => {
                let containers = self.containers();
                if !containers.is_empty() {
                    let mut container = containers[container % containers.len()].clone();
                    container.enabled = !container.enabled;
                    apply(vec![Change::UpdateContainer { container }]);
                }
            }
            Step::Assignment(computer) => {
                if let Some(id) = self.computer(*computer) {
                    let package = self.plain.list_packages(Page::first(1)).unwrap();
                    apply(vec![Change::DeleteAssignment {
                        computer: id,
                        package: package[0].id,
                    }]);
                }
            }
            Step::Many(members) => {
                let sets: Vec<ChangeSet> = members
                    .iter()
                    .filter_map(|&(index, timestamp)| {
                        let change = if timestamp % 2 == 0 {
                            self.credentials_change(self.computer(index)?, timestamp, false)
                        } else {
                            self.job_change(index, usize::from(timestamp), false)?
                        };
                        Some(ChangeSet {
                            changes: vec![change],
                        })
                    })
                    .collect();
                self.both(|s| s.apply_many(&sets));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For every sequence of writes, a hello through the cache reads what the plain store reads.
    #[test]
    fn hellos_read_what_the_store_holds(
        capacity in prop_oneof![Just(0usize), Just(2), Just(100)],
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let world = World::new(capacity);
        for step in &steps {
            world.run(step);
            world.run(&Step::Hellos);
        }
    }
}

#[test]
fn a_repeated_hello_is_served_from_memory() {
    let world = World::new(100);
    let first = world.cached.hello("pc1").unwrap().unwrap();
    let again = world.cached.hello("pc1").unwrap().unwrap();
    assert!(Arc::ptr_eq(&first.snapshot, &again.snapshot));
    assert_eq!(world.cached.len(), 1);
    // A credentials write is kept in place: the next hello still reads nothing.
    world.run(&Step::Credentials {
        computer: 0,
        timestamp: 9,
        stale: false,
    });
    let after = world.cached.hello("pc1").unwrap().unwrap();
    assert!(Arc::ptr_eq(&first.snapshot, &after.snapshot));
    assert_eq!(after.credentials.last_hello, Some(9.0));
    // A change of one of its jobs is not.
    let pc1 = first.computer().id;
    let job = first.snapshot.jobs[0].clone();
    assert_eq!(job.computer, pc1);
    world.run(&Step::JobState {
        job: world
            .plain
            .list_jobs(&Default::default(), Page::first(100))
            .unwrap()
            .iter()
            .position(|j| j.id == job.id)
            .unwrap(),
        state: 3, // Succeeded
        stale: false,
    });
    let fresh = world.cached.hello("pc1").unwrap().unwrap();
    assert!(!Arc::ptr_eq(&first.snapshot, &fresh.snapshot));
    assert!(fresh.snapshot.jobs.iter().all(|j| j.id != job.id));
}

#[test]
fn capacity_zero_keeps_nothing() {
    let world = World::new(0);
    world.cached.hello("pc1").unwrap().unwrap();
    assert!(world.cached.is_empty());
}

// ---------------------------------------------------------------------------------------------
// A read that overlaps a write.

/// A hello that read before a write and returns after it must not leave what it read behind.
#[test]
fn a_read_overlapping_a_write_is_not_kept() {
    let gated = Arc::new(Gated::new(Held::HelloSnapshot));
    let store = Arc::new(CachedStore::new(gated.clone(), 100));
    let fixture = testkit::fixture(store.as_ref());
    let pc1 = fixture.computers[0].id;
    let job = testkit::job(Origin::Container(ContainerId(0)), pc1, &fixture.other, 0);
    testkit::create_container(store.as_ref(), "a", vec![job]);

    let (read, release) = gated.hold_next();
    let reader = {
        let store = store.clone();
        thread::spawn(move || store.hello("pc1").unwrap().unwrap())
    };
    read.recv().unwrap();
    // The reader has read the Waiting job; now it finishes.
    let mut job = store
        .list_jobs(&Default::default(), Page::first(10))
        .unwrap()[0]
        .clone();
    let expected = job.revision;
    job.state = JobState::Succeeded;
    testkit::apply(store.as_ref(), vec![Change::UpdateJob { expected, job }]);
    release.send(()).unwrap();
    let overlapped = reader.join().unwrap();
    assert_eq!(
        overlapped.snapshot.jobs.len(),
        1,
        "the reader read before the write"
    );

    let after = store.hello("pc1").unwrap().unwrap();
    assert!(
        after.snapshot.jobs.is_empty(),
        "a stale read was kept: {after:?}"
    );
    assert_eq!(
        from_cache(&store, "pc1").unwrap(),
        from_store(gated.as_ref(), "pc1").unwrap()
    );
}
