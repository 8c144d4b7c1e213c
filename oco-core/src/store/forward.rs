//! `Store` for references and smart pointers to a store, so that code generic over
//! `S: Store` takes `&MemoryStore`, `Arc<SqliteStore>` or `Box<dyn Store>` alike.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    AdminToken, AgentCredentials, AgentLookup, Applied, ChangeSet, DeploySnapshot,
    HousekeepingSnapshot, JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage, NewRule,
    Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot, ServerState, Store, StoreResult,
};
use crate::housekeeping::JobSummary;
use crate::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId, Sha256Digest, TokenId,
};

/// Implements [`Store`] for a pointer type `$ptr` to a store, every method calling the store
/// pointed to (its own overrides of the provided methods included).
macro_rules! forward {
    ($($ptr:ty),*) => {
        $(impl<S: Store + ?Sized> Store for $ptr {
            fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
                (**self).create_computer(computer)
            }
            fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
                (**self).update_computer(computer)
            }
            fn delete_computer(
                &self,
                id: ComputerId,
                at: DateTime<Utc>,
            ) -> StoreResult<Vec<JobId>> {
                (**self).delete_computer(id, at)
            }
            fn computer(&self, id: ComputerId) -> StoreResult<Computer> {
                (**self).computer(id)
            }
            fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>> {
                (**self).computer_by_hostname(hostname)
            }
            fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>> {
                (**self).list_computers(page)
            }
            fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
                (**self).set_last_seen(id, at)
            }
            fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
                (**self).credentials(id)
            }
            fn set_credentials(
                &self,
                id: ComputerId,
                credentials: &AgentCredentials,
            ) -> StoreResult<()> {
                (**self).set_credentials(id, credentials)
            }
            fn server_state(&self) -> StoreResult<ServerState> {
                (**self).server_state()
            }
            fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
                (**self).set_server_state(state)
            }
            fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken> {
                (**self).create_admin_token(token)
            }
            fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>> {
                (**self).list_admin_tokens(page)
            }
            fn admin_token_by_digest(
                &self,
                digest: &Sha256Digest,
            ) -> StoreResult<Option<AdminToken>> {
                (**self).admin_token_by_digest(digest)
            }
            fn delete_admin_token(&self, id: TokenId) -> StoreResult<()> {
                (**self).delete_admin_token(id)
            }
            fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
                (**self).create_family(name)
            }
            fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
                (**self).family(id)
            }
            fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
                (**self).list_families(page)
            }
            fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
                (**self).create_package(package)
            }
            fn update_package(&self, package: &Package) -> StoreResult<()> {
                (**self).update_package(package)
            }
            fn package(&self, id: PackageId) -> StoreResult<Package> {
                (**self).package(id)
            }
            fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
                (**self).list_packages(page)
            }
            fn create_computer_group(
                &self,
                name: Name,
                parent: Option<ComputerGroupId>,
            ) -> StoreResult<ComputerGroup> {
                (**self).create_computer_group(name, parent)
            }
            fn set_computer_group_parent(
                &self,
                id: ComputerGroupId,
                parent: Option<ComputerGroupId>,
            ) -> StoreResult<()> {
                (**self).set_computer_group_parent(id, parent)
            }
            fn set_computer_group_members(
                &self,
                id: ComputerGroupId,
                members: &[ComputerId],
            ) -> StoreResult<()> {
                (**self).set_computer_group_members(id, members)
            }
            fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
                (**self).computer_groups()
            }
            fn create_package_group(
                &self,
                name: Name,
                parent: Option<PackageGroupId>,
            ) -> StoreResult<PackageGroup> {
                (**self).create_package_group(name, parent)
            }
            fn set_package_group_parent(
                &self,
                id: PackageGroupId,
                parent: Option<PackageGroupId>,
            ) -> StoreResult<()> {
                (**self).set_package_group_parent(id, parent)
            }
            fn set_package_group_members(
                &self,
                id: PackageGroupId,
                members: &[PackageId],
            ) -> StoreResult<()> {
                (**self).set_package_group_members(id, members)
            }
            fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
                (**self).package_groups()
            }
            fn assignments(
                &self,
                computer: ComputerId,
            ) -> StoreResult<(Vec<Assignment>, Revision)> {
                (**self).assignments(computer)
            }
            fn container(&self, id: ContainerId) -> StoreResult<JobContainer> {
                (**self).container(id)
            }
            fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>> {
                (**self).list_containers(page)
            }
            fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule> {
                (**self).create_rule(rule)
            }
            fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
                (**self).update_rule(rule)
            }
            fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule> {
                (**self).rule(id)
            }
            fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>> {
                (**self).list_rules(page)
            }
            fn job(&self, id: JobId) -> StoreResult<Job> {
                (**self).job(id)
            }
            fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>> {
                (**self).list_jobs(filter, page)
            }
            fn list_jobs_abridged(
                &self,
                filter: &JobFilter,
                page: Page,
                output_chars: usize,
            ) -> StoreResult<Vec<ListedJob>> {
                (**self).list_jobs_abridged(filter, page, output_chars)
            }
            fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
                (**self).planner_snapshot(computer)
            }
            fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot> {
                (**self).report_snapshot(job)
            }
            fn hello_snapshot(
                &self,
                hostname: &str,
            ) -> StoreResult<Option<(Computer, AgentCredentials, PlannerSnapshot)>> {
                (**self).hello_snapshot(hostname)
            }
            fn agent_lookup(&self, hostname: &str) -> StoreResult<Option<AgentLookup>> {
                (**self).agent_lookup(hostname)
            }
            fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot> {
                (**self).deploy_snapshot()
            }
            fn rule_snapshot(&self) -> StoreResult<RuleSnapshot> {
                (**self).rule_snapshot()
            }
            fn rule_snapshot_for(&self, computers: &[ComputerId]) -> StoreResult<RuleSnapshot> {
                (**self).rule_snapshot_for(computers)
            }
            fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
                (**self).rule_snapshot_part(part)
            }
            fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
                (**self).rule_job_computers(rule)
            }
            fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
                (**self).job_summary(origin)
            }
            fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
                (**self).delete_rule(id)
            }
            fn housekeeping_snapshot(
                &self,
                now: DateTime<Utc>,
            ) -> StoreResult<HousekeepingSnapshot> {
                (**self).housekeeping_snapshot(now)
            }
            fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
                (**self).apply(changes)
            }
            fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
                (**self).apply_many(sets)
            }
        })*
    };
}

forward!(&S, Box<S>, Arc<S>);
