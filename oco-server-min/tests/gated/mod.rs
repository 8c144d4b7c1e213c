//! A store that holds one chosen read until the test lets it go, for tests of what happens
//! while a read is in progress.

use std::sync::mpsc;
use std::sync::Mutex;

use oco_core::housekeeping::JobSummary;
use oco_core::model::{ComputerId, Origin, Revision};
use oco_core::store::{
    AgentCredentials, ChangeSet, MemoryStore, Page, PlannerSnapshot, Store, StoreResult,
};

/// The read a [`Gated`] store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// `planner_snapshot`.
    PlannerSnapshot,
    /// `job_summary`.
    JobSummary,
}

/// A [`MemoryStore`] whose next `held` read, once armed by [`Gated::hold_next`], reads, says so,
/// and waits to be released before it returns.
pub(crate) struct Gated {
    inner: MemoryStore,
    held: Held,
    /// Told when the held read has read.
    reached: Mutex<Option<mpsc::Sender<()>>>,
    /// Waited on before the held read returns.
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Gated {
    pub(crate) fn new(held: Held) -> Gated {
        Gated {
            inner: MemoryStore::new(),
            held,
            reached: Mutex::new(None),
            release: Mutex::new(None),
        }
    }

    /// Arms the gate for the next held read: the receiver hears when it has read, the sender
    /// lets it return.
    pub(crate) fn hold_next(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (reached_tx, reached_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.reached.lock().unwrap() = Some(reached_tx);
        *self.release.lock().unwrap() = Some(release_rx);
        (reached_rx, release_tx)
    }

    /// Holds the caller if `read` is the held read and the gate is armed.
    fn pass(&self, read: Held) {
        if read != self.held {
            return;
        }
        let reached = self.reached.lock().unwrap().take();
        let release = self.release.lock().unwrap().take();
        if let (Some(reached), Some(release)) = (reached, release) {
            reached.send(()).unwrap();
            release.recv().unwrap();
        }
    }
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for Gated {
    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
        let result = self.inner.planner_snapshot(computer);
        self.pass(Held::PlannerSnapshot);
        result
    }

    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        let result = self.inner.job_summary(origin);
        self.pass(Held::JobSummary);
        result
    }

    forward! {
        create_computer(c: oco_core::store::NewComputer) -> StoreResult<oco_core::model::Computer>;
        update_computer(c: &oco_core::model::Computer) -> StoreResult<()>;
        delete_computer(id: ComputerId, at: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<Vec<oco_core::model::JobId>>;
        computer(id: ComputerId) -> StoreResult<oco_core::model::Computer>;
        computer_by_hostname(h: &str) -> StoreResult<Option<oco_core::model::Computer>>;
        list_computers(p: Page) -> StoreResult<Vec<oco_core::model::Computer>>;
        set_last_seen(id: ComputerId, at: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<()>;
        credentials(id: ComputerId) -> StoreResult<AgentCredentials>;
        set_credentials(id: ComputerId, c: &AgentCredentials) -> StoreResult<()>;
        server_state() -> StoreResult<oco_core::store::ServerState>;
        set_server_state(s: &oco_core::store::ServerState) -> StoreResult<()>;
        create_admin_token(t: oco_core::store::NewAdminToken) -> StoreResult<oco_core::store::AdminToken>;
        list_admin_tokens(p: Page) -> StoreResult<Vec<oco_core::store::AdminToken>>;
        admin_token_by_digest(d: &oco_core::model::Sha256Digest) -> StoreResult<Option<oco_core::store::AdminToken>>;
        delete_admin_token(id: oco_core::model::TokenId) -> StoreResult<()>;
        create_family(n: oco_core::model::Name) -> StoreResult<oco_core::model::PackageFamily>;
        family(id: oco_core::model::FamilyId) -> StoreResult<oco_core::model::PackageFamily>;
        list_families(p: Page) -> StoreResult<Vec<oco_core::model::PackageFamily>>;
        create_package(p: oco_core::store::NewPackage) -> StoreResult<oco_core::model::Package>;
        update_package(p: &oco_core::model::Package) -> StoreResult<()>;
        package(id: oco_core::model::PackageId) -> StoreResult<oco_core::model::Package>;
        list_packages(p: Page) -> StoreResult<Vec<oco_core::model::Package>>;
        create_computer_group(n: oco_core::model::Name, p: Option<oco_core::model::ComputerGroupId>) -> StoreResult<oco_core::model::ComputerGroup>;
        set_computer_group_parent(id: oco_core::model::ComputerGroupId, p: Option<oco_core::model::ComputerGroupId>) -> StoreResult<()>;
        set_computer_group_members(id: oco_core::model::ComputerGroupId, m: &[ComputerId]) -> StoreResult<()>;
        computer_groups() -> StoreResult<Vec<(oco_core::model::ComputerGroup, Vec<ComputerId>)>>;
        create_package_group(n: oco_core::model::Name, p: Option<oco_core::model::PackageGroupId>) -> StoreResult<oco_core::model::PackageGroup>;
        set_package_group_parent(id: oco_core::model::PackageGroupId, p: Option<oco_core::model::PackageGroupId>) -> StoreResult<()>;
        set_package_group_members(id: oco_core::model::PackageGroupId, m: &[oco_core::model::PackageId]) -> StoreResult<()>;
        package_groups() -> StoreResult<Vec<(oco_core::model::PackageGroup, Vec<oco_core::model::PackageId>)>>;
        assignments(c: ComputerId) -> StoreResult<(Vec<oco_core::model::Assignment>, Revision)>;
        container(id: oco_core::model::ContainerId) -> StoreResult<oco_core::model::JobContainer>;
        list_containers(p: Page) -> StoreResult<Vec<oco_core::model::JobContainer>>;
        create_rule(r: oco_core::store::NewRule) -> StoreResult<oco_core::model::DeploymentRule>;
        update_rule(r: &oco_core::model::DeploymentRule) -> StoreResult<()>;
        rule(id: oco_core::model::RuleId) -> StoreResult<oco_core::model::DeploymentRule>;
        list_rules(p: Page) -> StoreResult<Vec<oco_core::model::DeploymentRule>>;
        job(id: oco_core::model::JobId) -> StoreResult<oco_core::model::Job>;
        list_jobs(f: &oco_core::store::JobFilter, p: Page) -> StoreResult<Vec<oco_core::model::Job>>;
        report_snapshot(j: oco_core::model::JobId) -> StoreResult<oco_core::store::ReportSnapshot>;
        deploy_snapshot() -> StoreResult<oco_core::store::DeploySnapshot>;
        rule_snapshot() -> StoreResult<oco_core::store::RuleSnapshot>;
        rule_snapshot_part(p: &oco_core::store::RulePart) -> StoreResult<oco_core::store::RuleSnapshot>;
        delete_rule(id: oco_core::model::RuleId) -> StoreResult<()>;
        housekeeping_snapshot(now: oco_core::chrono::DateTime<oco_core::chrono::Utc>) -> StoreResult<oco_core::store::HousekeepingSnapshot>;
        apply(c: &ChangeSet) -> StoreResult<oco_core::store::Applied>;
        apply_many(s: &[ChangeSet]) -> Vec<StoreResult<oco_core::store::Applied>>;
    }
}
