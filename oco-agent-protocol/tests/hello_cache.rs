//! The hello cache (`oco_agent_protocol::cache::CachedStore`): a store like the one it wraps, whose
//! hello outlooks always equal what planning on the wrapped store gives, after any sequence of
//! writes, at any time and from any address.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

// The server's tests hold reads with the same store.
#[path = "../../oco-server-min/tests/gated/mod.rs"]
mod gated;

use gated::{Gated, Held};

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread;

use oco_agent_protocol::cache::{CachedStore, Elsewhere, HelloOutlook};
use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::model::{
    ComputerId, ContainerId, DeliveryPolicy, JobState, Origin, Revision, Schedule,
};
use oco_core::store::{
    testkit, AgentCredentials, Change, ChangeSet, MemoryStore, Page, Store, StoreResult,
};
use oco_core::Settings;
use proptest::prelude::*;

fn cached(memory: u64) -> CachedStore {
    CachedStore::new(Arc::new(MemoryStore::new()), memory)
}

#[test]
fn passes_the_store_conformance_suite() {
    for memory in [0, 300, 1 << 20] {
        testkit::run_conformance(&|| Box::new(cached(memory)));
    }
}

/// Monday 2026-11-30 07:30 UTC: half an hour before the office-hours frames open.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 7, 30, 0).unwrap()
}

const LAN: &str = "10.1.2.3";
const WAN: &str = "203.0.113.9";

/// What a hello of `hostname` hands out, as `store` answers it: the lookup, then the outlook's
/// contents (not whether it was a hit).
type Answer = Option<(
    AgentCredentials,
    String,
    u32,
    u32,
    Option<DateTime<Utc>>,
    ChangeSet,
)>;

fn answer(
    store: &CachedStore,
    hostname: &str,
    now: DateTime<Utc>,
    address: IpAddr,
) -> StoreResult<Answer> {
    let Some(lookup) = store.agent_lookup(hostname)? else {
        return Ok(None);
    };
    let HelloOutlook {
        outlook, changes, ..
    } = store.hello_outlook(&lookup, now, address, &Settings::default())?;
    Ok(Some((
        lookup.credentials,
        outlook.software_jobs().to_owned(),
        outlook.delivered(),
        outlook.held(),
        outlook.until(),
        changes,
    )))
}

// ---------------------------------------------------------------------------------------------
// For all sequences of writes, instants and addresses: the cache answers as planning does.

const HOSTNAMES: [&str; 5] = ["pc0", "pc1", "PC1", "pc2", "pc3"];

/// The delivery constraints a step may give a container: (IP ranges, time frames).
const POLICIES: [(&str, &str); 4] = [
    ("", ""),
    ("10.0.0.0/8", ""),
    ("", "MON-FRI 08:00-17:00"),
    ("10.0.0.0/8", "MON-FRI 07:45-08:15, !MON 08:00-08:05"),
];

/// One step; indexes pick among what exists when the step runs.
#[derive(Debug, Clone)]
enum Step {
    /// A hello of each hostname from each address, the cache's answer compared with planning's.
    Hellos,
    /// The clock moves on by this many minutes.
    Tick(i64),
    CreateComputer(usize),
    RenameComputer(usize, usize),
    DeleteComputer(usize),
    /// Credentials through a change set (every hello writes them); `stale` computes it from
    /// out-of-date credentials.
    Credentials {
        computer: usize,
        timestamp: u16,
        stale: bool,
    },
    CredentialsSetter(usize, u16),
    LastSeen(usize, i64),
    /// A job's state; `stale` names an old revision (a conflict).
    JobState {
        job: usize,
        state: usize,
        stale: bool,
    },
    InsertJob(usize, usize),
    DeleteJob(usize),
    ToggleContainer(usize),
    /// A container's delivery constraints become one of [`POLICIES`].
    Policy(usize, usize),
    Assignment(usize),
    /// Several credential and job changes in one `apply_many`.
    Many(Vec<(usize, u16)>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Hellos),
        2 => (1..90i64).prop_map(Step::Tick),
        1 => any::<usize>().prop_map(Step::CreateComputer),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(c, n)| Step::RenameComputer(c, n)),
        1 => any::<usize>().prop_map(Step::DeleteComputer),
        3 => (any::<usize>(), any::<u16>(), prop::bool::weighted(0.2)).prop_map(
            |(computer, timestamp, stale)| Step::Credentials { computer, timestamp, stale }
        ),
        1 => (any::<usize>(), any::<u16>()).prop_map(|(c, t)| Step::CredentialsSetter(c, t)),
        1 => (any::<usize>(), 0..1_000i64).prop_map(|(c, t)| Step::LastSeen(c, t)),
        3 => (any::<usize>(), any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(job, state, stale)| Step::JobState { job, state, stale }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(c, pc)| Step::InsertJob(c, pc)),
        1 => any::<usize>().prop_map(Step::DeleteJob),
        1 => any::<usize>().prop_map(Step::ToggleContainer),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(c, p)| Step::Policy(c, p)),
        1 => any::<usize>().prop_map(Step::Assignment),
        1 => prop::collection::vec((any::<usize>(), any::<u16>()), 1..6).prop_map(Step::Many),
    ]
}

/// Opens every container from a day before the clock starts, for ever, to any address at any
/// time, in UTC (the steps give them constraints).
fn open_containers(store: &dyn Store) {
    for mut container in store.list_containers(Page::first(10)).unwrap() {
        container.schedule = Schedule::new(start() - Duration::days(1), None).unwrap();
        container.policy.ip_ranges = Default::default();
        container.policy.time_frames = Default::default();
        container.policy.time_zone = Tz::UTC;
        testkit::apply(store, vec![Change::UpdateContainer { container }]);
    }
}

/// Two equal stores: `plain`, and `cached` over its own copy; every write goes to both.
/// `planned` plans on `plain` with no cache: the reference.
struct World {
    plain: Arc<MemoryStore>,
    planned: CachedStore,
    cached: CachedStore,
    now: Cell<DateTime<Utc>>,
}

impl World {
    fn new(memory: u64) -> World {
        let plain = Arc::new(MemoryStore::new());
        let world = World {
            planned: CachedStore::new(plain.clone(), 0),
            plain,
            cached: cached(memory),
            now: Cell::new(start()),
        };
        for store in [world.plain.as_ref() as &dyn Store, &world.cached] {
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
            open_containers(store);
        }
        world
    }

    /// Runs `write` on both stores; both must answer alike (errors compared by their text).
    fn both<T: std::fmt::Debug>(&self, write: impl Fn(&dyn Store) -> T) {
        let plain = format!("{:?}", write(self.plain.as_ref()));
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

    fn hellos(&self) {
        for hostname in HOSTNAMES {
            for address in [LAN, WAN] {
                let address = address.parse().unwrap();
                let now = self.now.get();
                let planned = answer(&self.planned, hostname, now, address).unwrap();
                let cached = answer(&self.cached, hostname, now, address).unwrap();
                assert_eq!(
                    planned, cached,
                    "hello of {hostname} from {address} at {now}"
                );
            }
        }
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
            Step::Hellos => self.hellos(),
            Step::Tick(minutes) => self.now.set(self.now.get() + Duration::minutes(*minutes)),
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
            Step::Policy(container, policy) => {
                let containers = self.containers();
                if !containers.is_empty() {
                    let mut container = containers[container % containers.len()].clone();
                    let (ranges, frames) = POLICIES[policy % POLICIES.len()];
                    container.policy.ip_ranges = ranges.parse().unwrap();
                    container.policy.time_frames = frames.parse().unwrap();
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

    /// For every sequence of writes and clock steps, a hello through the cache hands out what
    /// planning on the plain store hands out, and the cache stays within its memory.
    #[test]
    fn hellos_hand_out_what_planning_does(
        memory in prop_oneof![Just(0u64), Just(300), Just(1 << 20)],
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let world = World::new(memory);
        for step in &steps {
            world.run(step);
            world.hellos();
            prop_assert!(world.cached.weight() <= memory.max(1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What is kept and what is forgotten.

fn outlook(world: &World, hostname: &str, address: &str) -> HelloOutlook {
    let lookup = world.cached.agent_lookup(hostname).unwrap().unwrap();
    world
        .cached
        .hello_outlook(
            &lookup,
            world.now.get(),
            address.parse().unwrap(),
            &Settings::default(),
        )
        .unwrap()
}

/// The index among all jobs (as [`World::job`] picks) of a job of `hostname` in container `name`.
fn job_index(world: &World, hostname: &str, container: &str) -> usize {
    let computer = world.plain.computer_by_hostname(hostname).unwrap().unwrap();
    let container = world
        .containers()
        .into_iter()
        .find(|c| c.name.as_str() == container)
        .unwrap();
    world
        .plain
        .list_jobs(&Default::default(), Page::first(1_000))
        .unwrap()
        .iter()
        .position(|job| {
            job.computer == computer.id && job.origin == Origin::Container(container.id)
        })
        .unwrap()
}

#[test]
fn a_write_forgets_only_the_outlooks_it_touches() {
    let world = World::new(1 << 20);
    let first = outlook(&world, "pc1", LAN);
    assert!(!first.hit);
    assert_eq!(first.outlook.delivered(), 4);
    let pc2 = outlook(&world, "pc2", LAN);
    assert!(
        outlook(&world, "pc1", LAN).hit,
        "the second hello plans nothing"
    );
    assert_eq!(world.cached.len(), 2);

    // Credentials (every hello writes them), last-seen times and assignments are in no outlook.
    world.run(&Step::Credentials {
        computer: 0,
        timestamp: 9,
        stale: false,
    });
    world.run(&Step::LastSeen(0, 5));
    world.run(&Step::Assignment(0));
    let again = outlook(&world, "pc1", LAN);
    assert!(again.hit && Arc::ptr_eq(&first.outlook, &again.outlook));

    // A job of pc1 changes: pc1 plans again, pc2 does not.
    world.run(&Step::JobState {
        job: job_index(&world, "pc1", "a"),
        state: 3, // Succeeded
        stale: false,
    });
    let fresh = outlook(&world, "pc1", LAN);
    assert!(!fresh.hit);
    assert_eq!(fresh.outlook.delivered(), 3);
    assert!(outlook(&world, "pc2", LAN).hit);

    // Container b (pc1's only) changes: pc1 plans again, pc2 does not.
    world.run(&Step::Policy(1, 1));
    assert!(!outlook(&world, "pc1", LAN).hit);
    let kept = outlook(&world, "pc2", LAN);
    assert!(kept.hit && Arc::ptr_eq(&kept.outlook, &pc2.outlook));
    // Container a (both) changes: both plan again.
    world.run(&Step::Policy(0, 1));
    assert!(!outlook(&world, "pc1", LAN).hit);
    assert!(!outlook(&world, "pc2", LAN).hit);
}

#[test]
fn an_outlook_holds_for_its_address_and_until_its_time_frames_change() {
    let world = World::new(1 << 20);
    // Both containers: office hours only. At 07:30 on a Monday, everything is held.
    world.run(&Step::Policy(0, 2));
    world.run(&Step::Policy(1, 2));
    let early = outlook(&world, "pc1", LAN);
    assert_eq!((early.outlook.delivered(), early.outlook.held()), (0, 4));
    let opens = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    assert_eq!(early.outlook.until(), Some(opens));
    world.run(&Step::Tick(29));
    assert!(
        outlook(&world, "pc1", LAN).hit,
        "07:59 is still before the edge"
    );
    assert!(
        !outlook(&world, "pc1", WAN).hit,
        "another address plans again"
    );
    world.run(&Step::Tick(1));
    let open = outlook(&world, "pc1", LAN);
    assert!(!open.hit, "08:00 is past the edge");
    assert_eq!(open.outlook.delivered(), 4);
    assert_eq!(
        open.outlook.until(),
        Some(Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap())
    );
}

#[test]
fn memory_zero_keeps_nothing_and_an_idle_computer_takes_nothing() {
    let world = World::new(0);
    assert!(!outlook(&world, "pc1", LAN).hit);
    assert!(!outlook(&world, "pc1", LAN).hit);
    assert!(world.cached.is_empty());

    let world = World::new(1 << 20);
    world.both(|s| s.create_computer(testkit::new_computer("pc3")));
    let idle = outlook(&world, "pc3", LAN);
    assert_eq!((idle.outlook.delivered(), idle.outlook.held()), (0, 0));
    assert_eq!(idle.outlook.software_jobs(), "[]");
    assert!(
        world.cached.is_empty(),
        "no outlook is kept for a computer without jobs"
    );
}

#[test]
fn the_cache_stays_within_its_memory_and_serves_what_it_keeps() {
    // Room for a few outlooks of held jobs; 50 computers poll in turn, three times, and one of
    // them also between each of the others' polls.
    let store = cached(2_000);
    let fixture = testkit::fixture(&store);
    let mut jobs = Vec::new();
    for n in 0..50 {
        let pc = store
            .create_computer(testkit::new_computer(&format!("fleet{n}")))
            .unwrap();
        jobs.push(testkit::job(
            Origin::Container(ContainerId(0)),
            pc.id,
            &fixture.packages[0],
            1,
        ));
    }
    testkit::create_container(&store, "fleet", jobs);
    open_containers(&store);
    let address: IpAddr = LAN.parse().unwrap();
    let poll = |hostname: &str| {
        let lookup = store.agent_lookup(hostname).unwrap().unwrap();
        let planned = store
            .hello_outlook(&lookup, start(), address, &Settings::default())
            .unwrap();
        assert_eq!(planned.outlook.delivered(), 1, "{hostname}");
        assert!(store.weight() <= 2_000, "{} bytes", store.weight());
        planned.hit
    };
    let mut hot_hits = 0;
    for _ in 0..3 {
        for n in 0..50 {
            poll(&format!("fleet{n}"));
            hot_hits += usize::from(poll("fleet0"));
        }
    }
    assert!(
        hot_hits >= 140,
        "the frequent poller is kept: {hot_hits} hits of 150"
    );
}

// ---------------------------------------------------------------------------------------------
// A read that overlaps a write.

/// A hello that read the snapshot before a write and returns after it must not leave what it
/// planned behind.
#[test]
fn a_plan_overlapping_a_write_is_not_kept() {
    let gated = Arc::new(Gated::new(Held::PlannerSnapshot));
    let store = Arc::new(CachedStore::new(gated.clone(), 1 << 20));
    let fixture = testkit::fixture(store.as_ref());
    let pc1 = fixture.computers[0].id;
    let job = testkit::job(Origin::Container(ContainerId(0)), pc1, &fixture.other, 0);
    testkit::create_container(store.as_ref(), "a", vec![job]);
    open_containers(store.as_ref());
    let lookup = store.agent_lookup("pc1").unwrap().unwrap();
    let address: IpAddr = LAN.parse().unwrap();

    let (read, release) = gated.hold_next();
    let reader = {
        let store = store.clone();
        let lookup = lookup.clone();
        thread::spawn(move || {
            store
                .hello_outlook(&lookup, start(), address, &Settings::default())
                .unwrap()
        })
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
        overlapped.outlook.delivered(),
        1,
        "the reader read before the write"
    );

    let after = store
        .hello_outlook(&lookup, start(), address, &Settings::default())
        .unwrap();
    assert!(!after.hit, "a stale plan was kept: {after:?}");
    assert_eq!(after.outlook.delivered(), 0);
}

// ---------------------------------------------------------------------------------------------
// Other processes writing to the same database.

/// Two caches over one store, as two server processes over one database; pc1 has one job of a
/// container open since yesterday.
fn two_processes() -> (CachedStore, CachedStore, ComputerId, ContainerId) {
    let database: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = CachedStore::shared(database.clone(), 1 << 20);
    let b = CachedStore::shared(database, 1 << 20);
    let fixture = testkit::fixture(&a);
    let mut container = testkit::container("c");
    container.schedule = Schedule::new(start() - Duration::days(1), None).unwrap();
    container.policy = DeliveryPolicy::new(Tz::UTC);
    let pc = fixture.computers[0].id;
    let jobs = [&fixture.packages[0], &fixture.other]
        .into_iter()
        .zip(1..)
        .map(|(package, sequence)| {
            testkit::job(Origin::Container(ContainerId(0)), pc, package, sequence)
        })
        .collect();
    let applied = a
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer { container, jobs }],
        })
        .unwrap();
    let container = applied.containers[0];
    (a, b, pc, container)
}

fn hello(store: &CachedStore, now: DateTime<Utc>) -> HelloOutlook {
    let lookup = store.agent_lookup("pc1").unwrap().unwrap();
    store
        .hello_outlook(&lookup, now, LAN.parse().unwrap(), &Settings::default())
        .unwrap()
}

#[test]
fn with_other_writers_a_hit_is_trusted_only_within_the_reported_bound() {
    let (_, b, _, _) = two_processes();
    let now = start();
    assert!(!hello(&b, now).hit);
    assert!(!hello(&b, now).hit, "nothing reported yet: no hit");
    b.in_sync_until(now + Duration::seconds(2));
    assert!(hello(&b, now).hit);
    // An earlier bound does not shorten a later one.
    b.in_sync_until(now + Duration::seconds(1));
    assert!(hello(&b, now + Duration::milliseconds(1999)).hit);
    assert!(
        !hello(&b, now + Duration::seconds(2)).hit,
        "past the bound the store answers"
    );
    let now = now + Duration::seconds(2);
    // The listener lost its connection: no hit until it reports again.
    b.out_of_sync();
    assert!(!hello(&b, now).hit);
    b.in_sync_until(now + Duration::seconds(2));
    assert!(hello(&b, now).hit);
}

#[test]
fn a_write_by_another_process_is_forgotten_when_reported() {
    let (a, b, pc, container) = two_processes();
    let now = start();
    b.in_sync_until(now + Duration::days(1));
    let before = hello(&b, now);
    assert_eq!(before.outlook.delivered(), 2);

    // A's job update, not yet reported to B: B still answers from its cache. This is the window
    // the bound limits.
    let job = a
        .list_jobs(&Default::default(), Page::first(1))
        .unwrap()
        .remove(0);
    let mut done = job.clone();
    done.state = JobState::Succeeded;
    a.apply(&ChangeSet {
        changes: vec![Change::UpdateJob {
            expected: job.revision,
            job: done,
        }],
    })
    .unwrap();
    assert!(hello(&b, now).hit);
    assert_eq!(
        hello(&b, now).outlook.delivered(),
        2,
        "stale until reported"
    );
    b.touched_elsewhere(Elsewhere::Computers(&[pc]));
    let after = hello(&b, now);
    assert!(!after.hit);
    assert_eq!(after.outlook.delivered(), 1);
    assert!(hello(&b, now).hit);

    // A container disabled elsewhere: reported as its origin.
    let mut disabled = a.container(container).unwrap();
    disabled.enabled = false;
    a.apply(&ChangeSet {
        changes: vec![Change::UpdateContainer {
            container: disabled,
        }],
    })
    .unwrap();
    b.touched_elsewhere(Elsewhere::Origin(Origin::Container(container)));
    let held = hello(&b, now);
    assert!(!held.hit);
    assert_eq!(held.outlook.delivered(), 0);

    // Anything: every outlook is planned again.
    assert!(hello(&b, now).hit);
    b.touched_elsewhere(Elsewhere::Everything);
    assert!(!hello(&b, now).hit);
    assert!(hello(&b, now).hit);
}
