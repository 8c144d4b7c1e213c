//! The hello cache: what each polling agent's hello reads, kept in memory.
//!
//! A hello reads the computer named by the agent, its credentials and its planner snapshot, and
//! in the steady state writes only the credentials (the agent's timestamp, the replay guard). An
//! agent polls about once a minute and its jobs rarely change in between, so [`CachedStore`]
//! keeps those reads per computer and a repeated hello reads nothing from the database.
//!
//! [`CachedStore`] wraps the server's [`Store`] and is the store every handler, housekeeping and
//! rule evaluation use, so every write passes through it. After each write it forgets what the
//! write may have changed: the computer of a job or assignment change, or everything for a write
//! of containers, rules, packages, groups or computers. Credentials and last-seen times, the
//! writes of every hello, are updated in place instead of forgotten. Writes through the wrapper
//! are serialised, so these updates happen in commit order.
//!
//! A read that misses notes the cache's epoch, which every write advances, before it reads the
//! store, and keeps its result only if the epoch has not moved when it is done: a result read
//! before a write that finished meanwhile is never kept. Anything the cache returns is therefore
//! what the store returned after the last write through the wrapper. The server must be the only
//! writer of its database (`DESIGN.md`).
//!
//! The cache holds at most a configured number of computers and starts again empty when it is
//! full.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use oco_core::chrono::{DateTime, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId,
};
use oco_core::store::{
    AgentCredentials, Applied, Change, ChangeSet, DeploySnapshot, HousekeepingSnapshot, JobFilter,
    ListedJob, NewComputer, Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot,
    ServerState, Store, StoreResult,
};

/// How many computers the cache holds by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// What a hello reads of one computer: its credentials and its planner snapshot (which holds
/// the computer).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedHello {
    /// The computer's agent credentials.
    pub credentials: AgentCredentials,
    /// Its planner snapshot, shared with the cache.
    pub snapshot: Arc<PlannerSnapshot>,
}

impl CachedHello {
    /// The computer.
    pub fn computer(&self) -> &Computer {
        &self.snapshot.computer
    }
}

/// A [`Store`] that remembers the hello reads of the computers that poll (see the module docs).
///
/// ```
/// use std::sync::Arc;
///
/// use oco_core::store::{testkit, MemoryStore, Store};
/// use oco_server_min::cache::CachedStore;
///
/// let store = CachedStore::new(Arc::new(MemoryStore::new()), 1_000);
/// let pc = store.create_computer(testkit::new_computer("pc1"))?;
/// let first = store.hello("pc1")?.expect("pc1 exists");
/// let again = store.hello("pc1")?.expect("pc1 exists");
/// assert!(Arc::ptr_eq(&first.snapshot, &again.snapshot)); // the second read was remembered
/// assert_eq!(again.computer().id, pc.id);
/// # Ok::<(), oco_core::store::StoreError>(())
/// ```
pub struct CachedStore {
    inner: Arc<dyn Store>,
    capacity: usize,
    cache: Mutex<Cache>,
    /// Held across each write and the cache update after it, so that updates follow the
    /// order of the writes.
    writes: Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// Advanced by every write; a miss keeps its result only if it did not move.
    epoch: u64,
    /// Hostnames as agents spelled them (the store compares them case-insensitively, so one
    /// computer may have several).
    hosts: HashMap<Box<str>, ComputerId>,
    entries: HashMap<ComputerId, CachedHello>,
}

impl Cache {
    /// The entry of the computer an agent names `hostname`, if the cache holds it.
    fn get(&self, hostname: &str) -> Option<&CachedHello> {
        self.hosts.get(hostname).and_then(|id| self.entries.get(id))
    }

    fn clear(&mut self) {
        self.hosts.clear();
        self.entries.clear();
    }
}

/// What a write may have changed.
enum Touched<'a> {
    /// Nothing a hello reads.
    Nothing,
    /// These computers' hello reads.
    Computers(&'a [ComputerId]),
    /// Anything.
    Everything,
}

impl CachedStore {
    /// `inner` with a cache of at most `capacity` computers (0: nothing is cached).
    pub fn new(inner: Arc<dyn Store>, capacity: usize) -> Self {
        CachedStore {
            inner,
            capacity,
            cache: Mutex::new(Cache::default()),
            writes: Mutex::new(()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// How many computers the cache holds now.
    pub fn len(&self) -> usize {
        self.cache().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the cache holds for a hello of `hostname`, reading nothing from the store.
    pub fn cached(&self, hostname: &str) -> Option<CachedHello> {
        self.cache().get(hostname).cloned()
    }

    /// What a hello of `hostname` reads ([`Store::hello_snapshot`]), from the cache when it
    /// holds it; `None` if no computer has the hostname.
    ///
    /// # Errors
    ///
    /// The store's, on a miss.
    pub fn hello(&self, hostname: &str) -> StoreResult<Option<CachedHello>> {
        let epoch = {
            let cache = self.cache();
            if let Some(hit) = cache.get(hostname) {
                return Ok(Some(hit.clone()));
            }
            cache.epoch
        };
        let Some((_, credentials, snapshot)) = self.inner.hello_snapshot(hostname)? else {
            return Ok(None);
        };
        let read = CachedHello {
            credentials,
            snapshot: Arc::new(snapshot),
        };
        let mut cache = self.cache();
        if cache.epoch == epoch && self.capacity > 0 {
            if cache.hosts.len() >= self.capacity {
                cache.clear();
            }
            let id = read.computer().id;
            cache.hosts.insert(hostname.into(), id);
            cache.entries.insert(id, read.clone());
        }
        Ok(Some(read))
    }

    /// The computer named `hostname` and its credentials, from the cache when it holds them
    /// (nothing is added to it on a miss); `None` if no computer has the hostname.
    ///
    /// # Errors
    ///
    /// The store's, on a miss.
    pub fn computer_and_credentials(
        &self,
        hostname: &str,
    ) -> StoreResult<Option<(Computer, AgentCredentials)>> {
        if let Some(hit) = self.cache().get(hostname) {
            return Ok(Some((hit.computer().clone(), hit.credentials.clone())));
        }
        let Some(computer) = self.inner.computer_by_hostname(hostname)? else {
            return Ok(None);
        };
        let credentials = self.inner.credentials(computer.id)?;
        Ok(Some((computer, credentials)))
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the write `f`, then lets `update` bring the cache up to date with its result; both
    /// under the write lock, so that updates follow the order of the writes. Advances the epoch.
    fn write<T>(&self, f: impl FnOnce() -> T, update: impl FnOnce(&mut Cache, &T)) -> T {
        let _serial = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f();
        let mut cache = self.cache();
        cache.epoch += 1;
        update(&mut cache, &result);
        result
    }

    /// Runs the plain write `f`, then forgets what it `touched` (whether or not it succeeded:
    /// the cache does not guess what a failed write left behind).
    fn forget<T>(&self, touched: Touched<'_>, f: impl FnOnce() -> T) -> T {
        self.write(f, |cache, _| match touched {
            Touched::Nothing => {}
            Touched::Computers(ids) => {
                for id in ids {
                    cache.entries.remove(id);
                }
            }
            Touched::Everything => cache.clear(),
        })
    }

    /// Brings the cache up to date with `set`, which the store applied (`applied`) or refused.
    fn settle(cache: &mut Cache, set: &ChangeSet, applied: bool) {
        for change in &set.changes {
            match change {
                // Tombstones are in no hello: a purge leaves every entry as it is.
                Change::SetServerState { .. }
                | Change::ExpectAssignments { .. }
                | Change::PurgeTombstones { .. } => {}
                Change::SetCredentials {
                    computer,
                    credentials,
                    ..
                } if applied => {
                    if let Some(entry) = cache.entries.get_mut(computer) {
                        entry.credentials = credentials.clone();
                    }
                }
                Change::SetLastSeen { computer, at } if applied => {
                    if let Some(entry) = cache.entries.get_mut(computer) {
                        let seen = &mut Arc::make_mut(&mut entry.snapshot).computer.last_seen;
                        *seen = (*seen).max(Some(*at));
                    }
                }
                Change::SetCredentials { computer, .. }
                | Change::SetLastSeen { computer, .. }
                | Change::DeleteAssignment { computer, .. } => {
                    cache.entries.remove(computer);
                }
                Change::InsertJob { job } | Change::UpdateJob { job, .. } => {
                    cache.entries.remove(&job.computer);
                }
                Change::UpsertAssignment { assignment } => {
                    cache.entries.remove(&assignment.computer);
                }
                // Containers, rule jobs, deletions (whose computer the change does not name):
                // rare, and they may touch many computers.
                Change::CreateContainer { .. }
                | Change::UpdateContainer { .. }
                | Change::DeleteContainer { .. }
                | Change::MarkWolSent { .. }
                | Change::InsertRuleJobs { .. }
                | Change::DeleteJob { .. } => {
                    cache.clear();
                    return;
                }
            }
        }
    }
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Store for CachedStore {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        self.forget(Touched::Everything, || self.inner.create_computer(computer))
    }
    fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
        self.forget(Touched::Everything, || self.inner.update_computer(computer))
    }
    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>> {
        self.forget(Touched::Everything, || self.inner.delete_computer(id, at))
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
        self.forget(Touched::Computers(&[id]), || {
            self.inner.set_last_seen(id, at)
        })
    }
    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
        self.inner.credentials(id)
    }
    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        self.forget(Touched::Computers(&[id]), || {
            self.inner.set_credentials(id, credentials)
        })
    }
    fn server_state(&self) -> StoreResult<ServerState> {
        self.inner.server_state()
    }
    fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
        self.forget(Touched::Nothing, || self.inner.set_server_state(state))
    }

    fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
        self.forget(Touched::Everything, || self.inner.create_family(name))
    }
    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.inner.family(id)
    }
    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        self.inner.list_families(page)
    }
    fn create_package(&self, package: Package) -> StoreResult<Package> {
        self.forget(Touched::Everything, || self.inner.create_package(package))
    }
    fn update_package(&self, package: &Package) -> StoreResult<()> {
        self.forget(Touched::Everything, || self.inner.update_package(package))
    }
    fn package(&self, id: PackageId) -> StoreResult<Package> {
        self.inner.package(id)
    }
    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
        self.inner.list_packages(page)
    }

    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup> {
        self.forget(Touched::Everything, || {
            self.inner.create_computer_group(name, parent)
        })
    }
    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()> {
        self.forget(Touched::Everything, || {
            self.inner.set_computer_group_parent(id, parent)
        })
    }
    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()> {
        self.forget(Touched::Everything, || {
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
        self.forget(Touched::Everything, || {
            self.inner.create_package_group(name, parent)
        })
    }
    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()> {
        self.forget(Touched::Everything, || {
            self.inner.set_package_group_parent(id, parent)
        })
    }
    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()> {
        self.forget(Touched::Everything, || {
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
    fn create_rule(&self, rule: DeploymentRule) -> StoreResult<DeploymentRule> {
        self.forget(Touched::Everything, || self.inner.create_rule(rule))
    }
    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
        self.forget(Touched::Everything, || self.inner.update_rule(rule))
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
        Ok(self.hello(hostname)?.map(|read| {
            let snapshot = Arc::unwrap_or_clone(read.snapshot);
            (snapshot.computer.clone(), read.credentials, snapshot)
        }))
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
        self.forget(Touched::Everything, || self.inner.delete_rule(id))
    }
    fn housekeeping_snapshot(&self, now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot> {
        self.inner.housekeeping_snapshot(now)
    }

    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
        self.write(
            || self.inner.apply(changes),
            |cache, result| Self::settle(cache, changes, result.is_ok()),
        )
    }
    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        self.write(
            || self.inner.apply_many(sets),
            |cache, results| {
                for (set, result) in sets.iter().zip(results) {
                    Self::settle(cache, set, result.is_ok());
                }
            },
        )
    }
}
