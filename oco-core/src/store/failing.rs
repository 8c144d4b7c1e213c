//! [`FailingStore`]: a wrapper that fails a chosen call of any store, to test callers' error
//! paths.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{
    AdminToken, AgentCredentials, Applied, ChangeSet, DeploySnapshot, HousekeepingSnapshot,
    JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage, NewRule, Page, PlannerSnapshot,
    ReportSnapshot, RulePart, RuleSnapshot, ServerState, Store, StoreError, StoreResult,
};
use crate::housekeeping::JobSummary;
use crate::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId, Sha256Digest, TokenId,
};

/// The error a [`FailingStore`] injects, wrapped in [`StoreError::Backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    /// The number of the failed call, counting from 1.
    pub call: u64,
}

impl fmt::Display for InjectedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected failure of store call {}", self.call)
    }
}

impl std::error::Error for InjectedFailure {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nth,
    From,
}

/// Wraps a store and fails one call, or every call from one on, with [`StoreError::Backend`]
/// (holding an [`InjectedFailure`]), so that callers' error paths can be tested.
///
/// Every [`Store`] method counts as one call (an [`Store::apply_many`] is one call, and when it
/// fails every set gets the error), counted from 1. A failed call does not reach the wrapped
/// store, so it writes nothing.
///
/// ```
/// use oco_core::store::{FailingStore, MemoryStore, Page, Store, StoreError};
///
/// let store = FailingStore::fail_nth(MemoryStore::new(), 2);
/// assert!(store.list_computers(Page::first(10)).is_ok());
/// assert!(matches!(store.list_computers(Page::first(10)), Err(StoreError::Backend(_))));
/// assert!(store.list_computers(Page::first(10)).is_ok());
/// assert_eq!(store.calls(), 3);
/// ```
#[derive(Debug)]
pub struct FailingStore<S> {
    inner: S,
    mode: Mode,
    n: AtomicU64,
    calls: AtomicU64,
}

impl<S: Store> FailingStore<S> {
    /// Fails only the `n`-th call (counting from 1); the calls before and after pass through.
    pub fn fail_nth(inner: S, n: u64) -> Self {
        FailingStore {
            inner,
            mode: Mode::Nth,
            n: AtomicU64::new(n),
            calls: AtomicU64::new(0),
        }
    }

    /// Fails the `n`-th call (counting from 1) and every call after it.
    pub fn fail_from(inner: S, n: u64) -> Self {
        FailingStore {
            inner,
            mode: Mode::From,
            n: AtomicU64::new(n),
            calls: AtomicU64::new(0),
        }
    }

    /// Starts counting again: the `n`-th call from now on (counting from 1) is the one that fails
    /// (or the first that fails, as the store was made). For code that makes calls of its own
    /// before the calls under test, such as a server seeding its data at start: wrap with
    /// `n = 0` (no call is call 0), set up, then restart.
    ///
    /// ```
    /// use oco_core::store::{FailingStore, MemoryStore, Page, Store};
    ///
    /// let store = FailingStore::fail_nth(MemoryStore::new(), 0);
    /// assert!(store.list_computers(Page::first(10)).is_ok()); // setting up
    /// store.restart(1);
    /// assert!(store.list_computers(Page::first(10)).is_err());
    /// assert_eq!(store.calls(), 1);
    /// ```
    pub fn restart(&self, n: u64) {
        self.n.store(n, Ordering::SeqCst);
        self.calls.store(0, Ordering::SeqCst);
    }

    /// How many calls were made so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The wrapped store (reading it through here is not counted).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Counts a call; the error if this one fails.
    fn check(&self) -> Result<(), InjectedFailure> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let n = self.n.load(Ordering::SeqCst);
        let fails = match self.mode {
            Mode::Nth => call == n,
            Mode::From => call >= n,
        };
        if fails {
            Err(InjectedFailure { call })
        } else {
            Ok(())
        }
    }

    fn call<T>(&self, f: impl FnOnce(&S) -> StoreResult<T>) -> StoreResult<T> {
        self.check()
            .map_err(|failure| StoreError::Backend(Box::new(failure)))?;
        f(&self.inner)
    }
}

impl<S: Store> Store for FailingStore<S> {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        self.call(|s| s.create_computer(computer))
    }
    fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
        self.call(|s| s.update_computer(computer))
    }
    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>> {
        self.call(|s| s.delete_computer(id, at))
    }
    fn computer(&self, id: ComputerId) -> StoreResult<Computer> {
        self.call(|s| s.computer(id))
    }
    fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>> {
        self.call(|s| s.computer_by_hostname(hostname))
    }
    fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>> {
        self.call(|s| s.list_computers(page))
    }
    fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
        self.call(|s| s.set_last_seen(id, at))
    }
    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
        self.call(|s| s.credentials(id))
    }
    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        self.call(|s| s.set_credentials(id, credentials))
    }
    fn rule_snapshot(&self) -> StoreResult<RuleSnapshot> {
        self.call(|s| s.rule_snapshot())
    }
    fn rule_snapshot_for(&self, computers: &[ComputerId]) -> StoreResult<RuleSnapshot> {
        self.call(|s| s.rule_snapshot_for(computers))
    }
    fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
        self.call(|s| s.rule_snapshot_part(part))
    }
    fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
        self.call(|s| s.rule_job_computers(rule))
    }
    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        self.call(|s| s.job_summary(origin))
    }
    fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
        self.call(|s| s.delete_rule(id))
    }
    fn server_state(&self) -> StoreResult<ServerState> {
        self.call(|s| s.server_state())
    }
    fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
        self.call(|s| s.set_server_state(state))
    }
    fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken> {
        self.call(|s| s.create_admin_token(token))
    }
    fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>> {
        self.call(|s| s.list_admin_tokens(page))
    }
    fn admin_token_by_digest(&self, digest: &Sha256Digest) -> StoreResult<Option<AdminToken>> {
        self.call(|s| s.admin_token_by_digest(digest))
    }
    fn delete_admin_token(&self, id: TokenId) -> StoreResult<()> {
        self.call(|s| s.delete_admin_token(id))
    }
    fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
        self.call(|s| s.create_family(name))
    }
    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.call(|s| s.family(id))
    }
    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        self.call(|s| s.list_families(page))
    }
    fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
        self.call(|s| s.create_package(package))
    }
    fn update_package(&self, package: &Package) -> StoreResult<()> {
        self.call(|s| s.update_package(package))
    }
    fn package(&self, id: PackageId) -> StoreResult<Package> {
        self.call(|s| s.package(id))
    }
    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
        self.call(|s| s.list_packages(page))
    }
    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup> {
        self.call(|s| s.create_computer_group(name, parent))
    }
    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()> {
        self.call(|s| s.set_computer_group_parent(id, parent))
    }
    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()> {
        self.call(|s| s.set_computer_group_members(id, members))
    }
    fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
        self.call(|s| s.computer_groups())
    }
    fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<PackageGroup> {
        self.call(|s| s.create_package_group(name, parent))
    }
    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()> {
        self.call(|s| s.set_package_group_parent(id, parent))
    }
    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()> {
        self.call(|s| s.set_package_group_members(id, members))
    }
    fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
        self.call(|s| s.package_groups())
    }
    fn assignments(&self, computer: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)> {
        self.call(|s| s.assignments(computer))
    }
    fn container(&self, id: ContainerId) -> StoreResult<JobContainer> {
        self.call(|s| s.container(id))
    }
    fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>> {
        self.call(|s| s.list_containers(page))
    }
    fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule> {
        self.call(|s| s.create_rule(rule))
    }
    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
        self.call(|s| s.update_rule(rule))
    }
    fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule> {
        self.call(|s| s.rule(id))
    }
    fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>> {
        self.call(|s| s.list_rules(page))
    }
    fn job(&self, id: JobId) -> StoreResult<Job> {
        self.call(|s| s.job(id))
    }
    fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>> {
        self.call(|s| s.list_jobs(filter, page))
    }
    fn list_jobs_abridged(
        &self,
        filter: &JobFilter,
        page: Page,
        output_chars: usize,
    ) -> StoreResult<Vec<ListedJob>> {
        self.call(|s| s.list_jobs_abridged(filter, page, output_chars))
    }
    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
        self.call(|s| s.planner_snapshot(computer))
    }
    fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot> {
        self.call(|s| s.report_snapshot(job))
    }
    fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot> {
        self.call(|s| s.deploy_snapshot())
    }
    fn housekeeping_snapshot(&self, now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot> {
        self.call(|s| s.housekeeping_snapshot(now))
    }
    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
        self.call(|s| s.apply(changes))
    }
    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        match self.check() {
            Ok(()) => self.inner.apply_many(sets),
            Err(failure) => sets
                .iter()
                .map(|_| Err(StoreError::Backend(Box::new(failure))))
                .collect(),
        }
    }
}
