//! The hello cache: what each polling computer's hello hands out, kept in memory.
//!
//! A hello reads the computer named by the agent and its credentials (one small read,
//! [`Store::agent_lookup`], which also tells whether the computer has pending jobs), checks the
//! request, and plans: for a computer with pending jobs that means reading its planner snapshot
//! (every pending job and its origins) and running the planner. An agent polls about once a
//! minute and its jobs rarely change in between, and a plan stays right until one of its inputs
//! changes: the computer's jobs, their origins, the agent's address, or the time passing one of
//! the instants [`valid_until`] names (a time frame opening or closing, a container starting or
//! ending). So [`CachedStore`] keeps each computer's [`Outlook`] (the planner's decision, the
//! jobs to hand out as the reply carries them, and the conditions under which it holds; the part
//! of a job's wire form that the jobs of one origin and package share is kept once for all),
//! and a repeated hello of a computer whose jobs are held by time frames or IP ranges, or handed
//! out, reads nothing but its credentials. A computer without pending jobs needs no outlook.
//!
//! **Exact, not a time-to-live cache.** [`CachedStore`] wraps the server's [`Store`] and is the
//! store every handler, housekeeping and rule evaluation use, so every write passes through it.
//! Each write stamps what it touched with a new epoch: the computers of a job change (a job
//! inserted, updated or deleted; a container created or a rule's jobs inserted, for each job's
//! computer; a computer updated or deleted), or an origin (a container or rule updated, deleted,
//! or its Wake-on-LAN packets marked sent). An outlook records the epoch read before its snapshot
//! was, and is used only while no stamp of its computer or of its origins is newer: a write that
//! finished while the snapshot was read makes the outlook stale at once, and a deploy to 100
//! computers forgets the outlooks of those 100 computers only. Credentials, last-seen times,
//! assignments, packages and groups are in no outlook, so their writes (every hello writes the
//! credentials) forget nothing. The price: every write must pass through the cache, so **the
//! server is the only writer of its database** (`DESIGN.md`).
//!
//! **Other writers.** When other processes write to the same database (several servers on one
//! PostgreSQL), [`CachedStore::shared`] makes the cache trust a hit only while someone who hears
//! those writes says it may: [`CachedStore::touched_elsewhere`] forgets what another process's
//! write touched, and [`CachedStore::in_sync_until`] says until when everything written elsewhere
//! so far has been reported (a listener's round trip to the database). Past that instant, or
//! before the first report, every hello plans from the store: a write by another process is seen
//! within that bound, never later.
//!
//! **Bounded by memory.** The outlooks live in a concurrent cache of a configured size in bytes
//! (`quick_cache`, S3-FIFO: frequency- and recency-aware, resistant to scans), each weighed by
//! its estimated size. A fleet larger than the cache keeps the computers the policy prefers and
//! plans the others as without a cache: a miss costs the uncached read and plan plus an insert,
//! never a cache that starts again empty.
//!
//! [`valid_until`]: oco_core::plan::valid_until

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use oco_core::chrono::{DateTime, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId, Sha256Digest, TokenId,
};
use oco_core::plan::{plan, valid_until};
use oco_core::store::{
    AdminToken, AgentCredentials, AgentLookup, Applied, Change, ChangeSet, DeploySnapshot,
    HousekeepingSnapshot, JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage, NewRule,
    Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot, ServerState, Store, StoreResult,
};
use oco_core::Settings;

use serde_json::value::RawValue;

use crate::wire::{no_software_jobs, render_software_jobs, JobParts};

/// The memory the cache may use by default, in bytes (192 MiB): the outlooks of a million-computer
/// fleet between deployments (`benches/RESULTS.md`) with room to spare, the server within 256 MiB.
pub const DEFAULT_MEMORY: u64 = 192 * 1024 * 1024;

/// What an entry costs beyond its outlook's own fields and heap: the cache's slot, key and
/// metadata, the `Arc`'s counts and the allocator's headers (measured, see `benches/RESULTS.md`).
const ENTRY_OVERHEAD: u64 = 96;

/// The weight the cache's table is sized for, per expected entry (an outlook of held jobs).
const TYPICAL_WEIGHT: u64 = 256;

/// Distinct shared parts of delivered jobs kept (one per origin, package and post action in
/// practice, about 200 bytes each): at most about 13 MiB beside the cache's own memory.
const MAX_SHARED_PARTS: usize = 1 << 16;

/// Stripes of computer stamps: a write to a computer's jobs makes the outlooks of the computers
/// of its stripe (about one in this many of the fleet) plan again.
const STRIPES: usize = 1 << 16;

/// Origins stamped one by one; past this many distinct origins written since the last reset,
/// every outlook is forgotten and the count starts again (a bound on the map, reached only by a
/// long-running server that saw this many containers and rules change).
const MAX_ORIGIN_STAMPS: usize = 1 << 16;

/// What a hello of one computer hands out, as the planner decided it, and when that decision
/// holds: for the agent's `address`, from `planned_at` until `until`, as long as no write touches
/// the computer's jobs or their origins.
#[derive(Debug, Clone)]
pub struct Outlook {
    address: IpAddr,
    planned_at: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    /// The origins of the computer's pending jobs when planned.
    origins: Origins,
    /// The epoch read before the snapshot.
    epoch: u64,
    /// The jobs handed out, in order.
    deliveries: Box<[Delivered]>,
    held: u32,
}

/// A job handed out: its own part of the wire form, and the part it shares with the jobs of its
/// origin and package (kept once, see [`CachedStore`]'s interned parts).
#[derive(Debug, Clone)]
struct Delivered {
    id: JobId,
    attempt: u32,
    rest: Arc<str>,
}

/// The origins an outlook depends on; most computers' jobs come from one.
#[derive(Debug, Clone)]
enum Origins {
    One(Origin),
    Many(Box<[Origin]>),
}

impl Origins {
    fn of(origins: impl ExactSizeIterator<Item = Origin>) -> Self {
        let mut origins = origins.peekable();
        match (origins.len(), origins.peek()) {
            (1, Some(&one)) => Origins::One(one),
            _ => Origins::Many(origins.collect()),
        }
    }

    fn as_slice(&self) -> &[Origin] {
        match self {
            Origins::One(one) => std::slice::from_ref(one),
            Origins::Many(many) => many,
        }
    }

    fn heap(&self) -> usize {
        match self {
            Origins::One(_) => 0,
            Origins::Many(many) => many.len() * size_of::<Origin>(),
        }
    }
}

impl Outlook {
    /// The outlook of a computer without pending jobs: nothing to hand out, at any time, to
    /// any address.
    fn idle() -> Self {
        Outlook {
            address: IpAddr::from([0, 0, 0, 0]),
            planned_at: DateTime::<Utc>::MIN_UTC,
            until: None,
            origins: Origins::Many(Box::new([])),
            epoch: 0,
            deliveries: Box::new([]),
            held: 0,
        }
    }

    /// The jobs handed out, as the JSON array of the reply's `software-jobs`.
    pub fn software_jobs(&self) -> String {
        self.software_jobs_json().get().to_owned()
    }

    /// The jobs handed out, as the JSON array of the reply's `software-jobs`, ready for
    /// [`HelloParams::software_jobs`](crate::wire::HelloParams::software_jobs).
    pub fn software_jobs_json(&self) -> Box<RawValue> {
        if self.deliveries.is_empty() {
            return no_software_jobs();
        }
        render_software_jobs(
            self.deliveries
                .iter()
                .map(|job| (job.id, job.attempt, &*job.rest)),
        )
    }

    /// How many jobs are handed out.
    pub fn delivered(&self) -> u32 {
        u32::try_from(self.deliveries.len()).unwrap_or(u32::MAX)
    }

    /// How many pending jobs are held.
    pub fn held(&self) -> u32 {
        self.held
    }

    /// Until when the decision holds (for the same address and inputs); `None`: for ever.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// The memory it takes in the cache, estimated (the shared parts of its jobs are counted
    /// apart, see [`MAX_SHARED_PARTS`]).
    fn weight(&self) -> u64 {
        let heap = self.origins.heap() + self.deliveries.len() * size_of::<Delivered>();
        ENTRY_OVERHEAD + (size_of::<Self>() + heap) as u64
    }

    fn holds_at(&self, now: DateTime<Utc>, address: IpAddr) -> bool {
        self.address == address
            && self.planned_at <= now
            && self.until.is_none_or(|until| now < until)
    }
}

/// The outcome of [`CachedStore::hello_outlook`].
#[derive(Debug, Clone)]
pub struct HelloOutlook {
    /// What the hello hands out.
    pub outlook: Arc<Outlook>,
    /// Writes the plan implies (Wake-on-LAN shutdown marks), to commit with the hello's own; an
    /// outlook with writes is never kept, since they change the jobs it was planned from.
    pub changes: ChangeSet,
    /// Whether the outlook came from the cache.
    pub hit: bool,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<ComputerId, Arc<Outlook>> for Weigh {
    fn weight(&self, _: &ComputerId, outlook: &Arc<Outlook>) -> u64 {
        outlook.weight()
    }
}

type Outlooks = quick_cache::sync::Cache<ComputerId, Arc<Outlook>, Weigh>;

/// When writes last touched what outlooks are planned from (see the module docs).
struct Stamps {
    /// Advanced by every write that touches an outlook's inputs.
    epoch: AtomicU64,
    /// The epoch of the last write to the jobs of a computer of each stripe.
    computers: Box<[AtomicU64]>,
    origins: RwLock<OriginStamps>,
}

#[derive(Default)]
struct OriginStamps {
    /// Outlooks read before this epoch are stale.
    floor: u64,
    by_origin: HashMap<Origin, u64>,
}

impl Stamps {
    fn new() -> Self {
        Stamps {
            epoch: AtomicU64::new(1),
            computers: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            origins: RwLock::new(OriginStamps::default()),
        }
    }

    /// The epoch a read that starts now records.
    fn now(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A new epoch for a write that finished.
    fn advance(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn stripe(&self, computer: ComputerId) -> &AtomicU64 {
        // Invariant: the remainder is below STRIPES, the slice's length.
        let stripe = usize::try_from(computer.0.rem_euclid(STRIPES as i64)).unwrap_or(0);
        &self.computers[stripe]
    }

    fn computer(&self, computer: ComputerId, epoch: u64) {
        self.stripe(computer).fetch_max(epoch, Ordering::SeqCst);
    }

    fn origin(&self, origin: Origin, epoch: u64) {
        let mut origins = self.origins.write().unwrap_or_else(PoisonError::into_inner);
        if origins.by_origin.len() >= MAX_ORIGIN_STAMPS && !origins.by_origin.contains_key(&origin)
        {
            origins.by_origin.clear();
            origins.floor = epoch;
        }
        origins.by_origin.insert(origin, epoch);
    }

    /// Makes every outlook read before `epoch` stale.
    fn everything(&self, epoch: u64) {
        let mut origins = self.origins.write().unwrap_or_else(PoisonError::into_inner);
        origins.by_origin.clear();
        origins.floor = epoch;
    }

    /// Whether no write since `outlook` was read touched its computer or origins.
    fn fresh(&self, computer: ComputerId, outlook: &Outlook) -> bool {
        if self.stripe(computer).load(Ordering::SeqCst) > outlook.epoch {
            return false;
        }
        let origins = self.origins.read().unwrap_or_else(PoisonError::into_inner);
        origins.floor <= outlook.epoch
            && outlook.origins.as_slice().iter().all(|origin| {
                origins
                    .by_origin
                    .get(origin)
                    .is_none_or(|&stamp| stamp <= outlook.epoch)
            })
    }
}

/// What a write by another process touched (see [`CachedStore::touched_elsewhere`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere<'a> {
    /// The jobs of these computers, or the computers themselves.
    Computers(&'a [ComputerId]),
    /// This container or rule.
    Origin(Origin),
    /// Anything: what was written is not known (a listener reconnected, say).
    Everything,
}

/// What a write touched.
enum Touched<'a> {
    /// Nothing an outlook is planned from.
    Nothing,
    /// The jobs of this computer.
    Computer(ComputerId),
    /// The changes of a change set.
    Changes(&'a [Change]),
    /// An origin.
    Origin(Origin),
}

/// A [`Store`] that remembers what each polling computer's hello hands out (see the module docs).
///
/// ```
/// use std::sync::Arc;
///
/// use oco_core::chrono::{Duration, TimeZone, Utc};
/// use oco_core::chrono_tz::Tz;
/// use oco_core::model::{ContainerId, DeliveryPolicy, Origin, Schedule};
/// use oco_core::store::{testkit, Change, MemoryStore, Store};
/// use oco_core::Settings;
/// use oco_agent_protocol::cache::CachedStore;
///
/// let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
/// let store = CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20);
/// let fixture = testkit::fixture(&store);
/// let mut container = testkit::container("c");
/// container.schedule = Schedule::new(now - Duration::days(1), None)?;
/// container.policy = DeliveryPolicy::new(Tz::UTC);
/// let pc = fixture.computers[0].id;
/// let job = testkit::job(Origin::Container(ContainerId(0)), pc, &fixture.packages[0], 1);
/// testkit::apply(&store, vec![Change::CreateContainer { container, jobs: vec![job] }]);
///
/// let lookup = store.agent_lookup("pc1")?.expect("pc1 exists");
/// let address = "10.0.0.1".parse()?;
/// let first = store.hello_outlook(&lookup, now, address, &Settings::default())?;
/// assert!(!first.hit && first.outlook.delivered() == 1);
/// let again = store.hello_outlook(&lookup, now, address, &Settings::default())?;
/// assert!(again.hit && Arc::ptr_eq(&first.outlook, &again.outlook)); // planned once
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CachedStore {
    inner: Arc<dyn Store>,
    /// The outlook of every computer without pending jobs.
    idle: Arc<Outlook>,
    memory: u64,
    outlooks: Option<Outlooks>,
    stamps: Stamps,
    /// The parts of delivered jobs' wire forms that jobs of one origin and package share.
    shared: Mutex<HashSet<Arc<str>>>,
    /// Held across each write and the stamps after it.
    writes: Mutex<()>,
    /// With other writers ([`CachedStore::shared`]): until when (microseconds since the epoch)
    /// a hit may be trusted; [`NOT_SYNCED`] before the first report. `None`: the only writer.
    synced_until: Option<AtomicI64>,
}

/// [`CachedStore::synced_until`] before anything was reported, or after
/// [`CachedStore::out_of_sync`].
const NOT_SYNCED: i64 = i64::MIN;

impl CachedStore {
    /// `inner` with a cache of at most `memory` bytes of outlooks (0: nothing is cached).
    pub fn new(inner: Arc<dyn Store>, memory: u64) -> Self {
        let outlooks = (memory > 0).then(|| {
            let entries = usize::try_from(memory / TYPICAL_WEIGHT)
                .unwrap_or(usize::MAX)
                .max(16);
            Outlooks::with_weighter(entries, memory, Weigh)
        });
        CachedStore {
            inner,
            idle: Arc::new(Outlook::idle()),
            memory,
            outlooks,
            stamps: Stamps::new(),
            shared: Mutex::new(HashSet::new()),
            writes: Mutex::new(()),
            synced_until: None,
        }
    }

    /// `inner` with a cache of at most `memory` bytes, when other processes write to the same
    /// database too: a hit is trusted only until the instant the last
    /// [`CachedStore::in_sync_until`] named, and their writes are reported with
    /// [`CachedStore::touched_elsewhere`].
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use oco_core::chrono::{Duration, TimeZone, Utc};
    /// use oco_core::chrono_tz::Tz;
    /// use oco_core::model::{ContainerId, DeliveryPolicy, Origin, Schedule};
    /// use oco_core::store::{testkit, Change, MemoryStore, Store};
    /// use oco_core::Settings;
    /// use oco_agent_protocol::cache::{CachedStore, Elsewhere};
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    /// let store = CachedStore::shared(Arc::new(MemoryStore::new()), 1 << 20);
    /// let fixture = testkit::fixture(&store);
    /// let mut container = testkit::container("c");
    /// container.schedule = Schedule::new(now - Duration::days(1), None)?;
    /// container.policy = DeliveryPolicy::new(Tz::UTC);
    /// let pc = fixture.computers[0].id;
    /// let job = testkit::job(Origin::Container(ContainerId(0)), pc, &fixture.packages[0], 1);
    /// testkit::apply(&store, vec![Change::CreateContainer { container, jobs: vec![job] }]);
    /// let lookup = store.agent_lookup("pc1")?.expect("pc1 exists");
    /// let address = "10.0.0.1".parse()?;
    /// let hello = || store.hello_outlook(&lookup, now, address, &Settings::default());
    ///
    /// hello()?;
    /// assert!(!hello()?.hit, "nobody said the cache is in sync yet");
    /// store.in_sync_until(now + Duration::seconds(2));
    /// hello()?;
    /// assert!(hello()?.hit);
    /// // Another process wrote to this computer's jobs: planned again.
    /// store.touched_elsewhere(Elsewhere::Computers(&[pc]));
    /// assert!(!hello()?.hit);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared(inner: Arc<dyn Store>, memory: u64) -> Self {
        CachedStore {
            synced_until: Some(AtomicI64::new(NOT_SYNCED)),
            ..CachedStore::new(inner, memory)
        }
    }

    /// Forgets what a write by another process touched (see [`CachedStore::shared`]). Safe to
    /// call at any time, from any thread.
    pub fn touched_elsewhere(&self, touched: Elsewhere<'_>) {
        // Without the write lock: the stamps are atomic, and a long write of this process must
        // not hold up the listener (whose round trips keep the cache trusted).
        let epoch = self.stamps.advance();
        match touched {
            Elsewhere::Computers(computers) => {
                for &computer in computers {
                    self.forget(computer, epoch);
                }
            }
            Elsewhere::Origin(origin) => self.stamps.origin(origin, epoch),
            Elsewhere::Everything => {
                self.stamps.everything(epoch);
                if let Some(outlooks) = &self.outlooks {
                    outlooks.clear();
                }
            }
        }
    }

    /// Says that every write by another process committed so far has been reported, and that
    /// until `until` a hit may be trusted. A later instant than an earlier call's extends the
    /// trust; an earlier one changes nothing. Without [`CachedStore::shared`], nothing to do.
    pub fn in_sync_until(&self, until: DateTime<Utc>) {
        if let Some(synced) = &self.synced_until {
            synced.fetch_max(until.timestamp_micros(), Ordering::SeqCst);
        }
    }

    /// Says that writes by other processes may go unreported from now on (the listener lost its
    /// connection): no hit is trusted until the next [`CachedStore::in_sync_until`].
    pub fn out_of_sync(&self) {
        if let Some(synced) = &self.synced_until {
            synced.store(NOT_SYNCED, Ordering::SeqCst);
        }
    }

    /// Whether a hit may be trusted at `now`.
    fn trusted_at(&self, now: DateTime<Utc>) -> bool {
        self.synced_until
            .as_ref()
            .is_none_or(|synced| now.timestamp_micros() < synced.load(Ordering::SeqCst))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// How many computers' outlooks the cache holds now.
    pub fn len(&self) -> usize {
        self.outlooks.as_ref().map_or(0, Outlooks::len)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The estimated memory the cache's outlooks take now, in bytes.
    pub fn weight(&self) -> u64 {
        self.outlooks.as_ref().map_or(0, Outlooks::weight)
    }

    /// What a hello of the computer `lookup` found hands out at `now` to an agent at `address`:
    /// from the cache when it holds a fresh outlook for them, else planned from the computer's
    /// snapshot (and kept, unless the plan writes).
    ///
    /// # Errors
    ///
    /// The store's, on a miss.
    pub fn hello_outlook(
        &self,
        lookup: &AgentLookup,
        now: DateTime<Utc>,
        address: IpAddr,
        settings: &Settings,
    ) -> StoreResult<HelloOutlook> {
        if !lookup.pending_jobs {
            return Ok(HelloOutlook {
                outlook: self.idle.clone(),
                changes: ChangeSet::default(),
                hit: false,
            });
        }
        let computer = lookup.computer;
        if let Some(outlooks) = &self.outlooks {
            if let Some(hit) = outlooks.get(&computer) {
                if hit.holds_at(now, address)
                    && self.stamps.fresh(computer, &hit)
                    && self.trusted_at(now)
                {
                    return Ok(HelloOutlook {
                        outlook: hit,
                        changes: ChangeSet::default(),
                        hit: true,
                    });
                }
            }
        }
        let epoch = self.stamps.now();
        let snapshot = self.inner.planner_snapshot(computer)?;
        let (outlook, changes) = self.plan(&snapshot, epoch, now, address, settings);
        let outlook = Arc::new(outlook);
        if let (Some(outlooks), true) = (&self.outlooks, changes.is_empty()) {
            outlooks.insert(computer, outlook.clone());
        }
        Ok(HelloOutlook {
            outlook,
            changes,
            hit: false,
        })
    }

    fn plan(
        &self,
        snapshot: &PlannerSnapshot,
        epoch: u64,
        now: DateTime<Utc>,
        address: IpAddr,
        settings: &Settings,
    ) -> (Outlook, ChangeSet) {
        let decided = plan(snapshot, now, address, settings);
        let deliveries = decided
            .deliver
            .iter()
            .map(|delivery| {
                let parts = JobParts::of(delivery);
                Delivered {
                    id: parts.id,
                    attempt: parts.attempt,
                    rest: self.share(parts.rest),
                }
            })
            .collect();
        let outlook = Outlook {
            address,
            planned_at: now,
            until: valid_until(snapshot, now, address, settings),
            origins: Origins::of(snapshot.origins.keys().copied()),
            epoch,
            deliveries,
            held: u32::try_from(decided.held.len()).unwrap_or(u32::MAX),
        };
        (outlook, decided.changes)
    }

    /// `rest`, shared with the outlooks that hold the same (while fewer than
    /// [`MAX_SHARED_PARTS`] distinct ones are shared; then the set starts again).
    fn share(&self, rest: String) -> Arc<str> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = shared.get(rest.as_str()) {
            return found.clone();
        }
        if shared.len() >= MAX_SHARED_PARTS {
            shared.clear();
        }
        let rest: Arc<str> = rest.into();
        shared.insert(rest.clone());
        rest
    }

    /// Runs the write `f`, then stamps what it `touched` (whether or not it succeeded: the cache
    /// does not guess what a failed write left behind), under the write lock.
    fn write<T>(&self, touched: Touched<'_>, f: impl FnOnce() -> T) -> T {
        let _serial = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f();
        self.stamp(touched);
        result
    }

    fn stamp(&self, touched: Touched<'_>) {
        match touched {
            Touched::Nothing => {}
            Touched::Computer(computer) => {
                let epoch = self.stamps.advance();
                self.forget(computer, epoch);
            }
            Touched::Origin(origin) => {
                let epoch = self.stamps.advance();
                self.stamps.origin(origin, epoch);
            }
            Touched::Changes(changes) => {
                let mut epoch = None;
                let mut epoch = || *epoch.get_or_insert_with(|| self.stamps.advance());
                for change in changes {
                    match change {
                        Change::SetCredentials { .. }
                        | Change::SetLastSeen { .. }
                        | Change::SetServerState { .. }
                        | Change::ExpectAssignments { .. }
                        | Change::UpsertAssignment { .. }
                        | Change::DeleteAssignment { .. }
                        | Change::PurgeTombstones { .. } => {}
                        Change::InsertJob { job } | Change::UpdateJob { job, .. } => {
                            self.forget(job.computer, epoch());
                        }
                        Change::DeleteJob { computer, .. } => self.forget(*computer, epoch()),
                        // A new origin is in no outlook; its jobs' computers are.
                        Change::CreateContainer { jobs, .. } => {
                            let epoch = epoch();
                            for job in jobs {
                                self.forget(job.computer, epoch);
                            }
                        }
                        Change::InsertRuleJobs { jobs, .. } => {
                            let epoch = epoch();
                            for job in jobs.iter() {
                                self.forget(job.computer, epoch);
                            }
                        }
                        Change::UpdateContainer { container } => {
                            self.stamps.origin(Origin::Container(container.id), epoch());
                        }
                        Change::DeleteContainer { id, .. }
                        | Change::MarkWolSent { container: id, .. } => {
                            self.stamps.origin(Origin::Container(*id), epoch());
                        }
                    }
                }
            }
        }
    }

    /// Stamps `computer` with `epoch` and drops its outlook.
    fn forget(&self, computer: ComputerId, epoch: u64) {
        self.stamps.computer(computer, epoch);
        if let Some(outlooks) = &self.outlooks {
            outlooks.remove(&computer);
        }
    }
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("memory", &self.memory)
            .field("len", &self.len())
            .field("weight", &self.weight())
            .finish_non_exhaustive()
    }
}

impl Store for CachedStore {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        self.write(Touched::Nothing, || self.inner.create_computer(computer))
    }
    fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
        self.write(Touched::Computer(computer.id), || {
            self.inner.update_computer(computer)
        })
    }
    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>> {
        self.write(Touched::Computer(id), || self.inner.delete_computer(id, at))
    }
    fn computer(&self, id: ComputerId) -> StoreResult<Computer> {
        self.inner.computer(id)
    }
    fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>> {
        self.inner.computer_by_hostname(hostname)
    }
    fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>> {
        self.inner.list_computers(page)
    }
    fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(Touched::Nothing, || self.inner.set_last_seen(id, at))
    }
    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
        self.inner.credentials(id)
    }
    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        self.write(Touched::Nothing, || {
            self.inner.set_credentials(id, credentials)
        })
    }
    fn server_state(&self) -> StoreResult<ServerState> {
        self.inner.server_state()
    }
    fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
        self.write(Touched::Nothing, || self.inner.set_server_state(state))
    }

    // Tokens are not part of any hello: they pass straight through.
    fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken> {
        self.inner.create_admin_token(token)
    }
    fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>> {
        self.inner.list_admin_tokens(page)
    }
    fn admin_token_by_digest(&self, digest: &Sha256Digest) -> StoreResult<Option<AdminToken>> {
        self.inner.admin_token_by_digest(digest)
    }
    fn delete_admin_token(&self, id: TokenId) -> StoreResult<()> {
        self.inner.delete_admin_token(id)
    }

    fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
        self.write(Touched::Nothing, || self.inner.create_family(name))
    }
    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.inner.family(id)
    }
    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        self.inner.list_families(page)
    }
    // Jobs keep their own snapshot of the package: a package write changes no pending job.
    fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
        self.write(Touched::Nothing, || self.inner.create_package(package))
    }
    fn update_package(&self, package: &Package) -> StoreResult<()> {
        self.write(Touched::Nothing, || self.inner.update_package(package))
    }
    fn package(&self, id: PackageId) -> StoreResult<Package> {
        self.inner.package(id)
    }
    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
        self.inner.list_packages(page)
    }

    // Groups are in no plan: the rule evaluation that follows a group change writes jobs.
    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup> {
        self.write(Touched::Nothing, || {
            self.inner.create_computer_group(name, parent)
        })
    }
    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()> {
        self.write(Touched::Nothing, || {
            self.inner.set_computer_group_parent(id, parent)
        })
    }
    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()> {
        self.write(Touched::Nothing, || {
            self.inner.set_computer_group_members(id, members)
        })
    }
    fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
        self.inner.computer_groups()
    }
    fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<PackageGroup> {
        self.write(Touched::Nothing, || {
            self.inner.create_package_group(name, parent)
        })
    }
    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()> {
        self.write(Touched::Nothing, || {
            self.inner.set_package_group_parent(id, parent)
        })
    }
    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()> {
        self.write(Touched::Nothing, || {
            self.inner.set_package_group_members(id, members)
        })
    }
    fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
        self.inner.package_groups()
    }

    fn assignments(&self, computer: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)> {
        self.inner.assignments(computer)
    }
    fn container(&self, id: ContainerId) -> StoreResult<JobContainer> {
        self.inner.container(id)
    }
    fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>> {
        self.inner.list_containers(page)
    }
    fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule> {
        self.write(Touched::Nothing, || self.inner.create_rule(rule))
    }
    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
        self.write(Touched::Origin(Origin::Rule(rule.id)), || {
            self.inner.update_rule(rule)
        })
    }
    fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule> {
        self.inner.rule(id)
    }
    fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>> {
        self.inner.list_rules(page)
    }
    fn job(&self, id: JobId) -> StoreResult<Job> {
        self.inner.job(id)
    }
    fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>> {
        self.inner.list_jobs(filter, page)
    }

    fn list_jobs_abridged(
        &self,
        filter: &JobFilter,
        page: Page,
        output_chars: usize,
    ) -> StoreResult<Vec<ListedJob>> {
        self.inner.list_jobs_abridged(filter, page, output_chars)
    }

    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
        self.inner.planner_snapshot(computer)
    }
    fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot> {
        self.inner.report_snapshot(job)
    }
    fn hello_snapshot(
        &self,
        hostname: &str,
    ) -> StoreResult<Option<(Computer, AgentCredentials, PlannerSnapshot)>> {
        self.inner.hello_snapshot(hostname)
    }
    fn agent_lookup(&self, hostname: &str) -> StoreResult<Option<AgentLookup>> {
        self.inner.agent_lookup(hostname)
    }
    fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot> {
        self.inner.deploy_snapshot()
    }
    fn rule_snapshot(&self) -> StoreResult<RuleSnapshot> {
        self.inner.rule_snapshot()
    }
    fn rule_snapshot_for(&self, computers: &[ComputerId]) -> StoreResult<RuleSnapshot> {
        self.inner.rule_snapshot_for(computers)
    }
    fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
        self.inner.rule_snapshot_part(part)
    }
    fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
        self.inner.rule_job_computers(rule)
    }
    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        self.inner.job_summary(origin)
    }
    fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
        self.write(Touched::Origin(Origin::Rule(id)), || {
            self.inner.delete_rule(id)
        })
    }
    fn housekeeping_snapshot(&self, now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot> {
        self.inner.housekeeping_snapshot(now)
    }

    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
        self.write(Touched::Changes(&changes.changes), || {
            self.inner.apply(changes)
        })
    }
    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        let _serial = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let results = self.inner.apply_many(sets);
        for set in sets {
            self.stamp(Touched::Changes(&set.changes));
        }
        results
    }
}
