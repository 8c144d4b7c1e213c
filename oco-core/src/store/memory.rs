//! [`MemoryStore`]: the in-memory implementation of the [`Store`] port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{
    AdminToken, AgentCredentials, Applied, Change, ChangeSet, ContainerJobs, DeploySnapshot,
    FailedJob, HousekeepingSnapshot, JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage,
    NewRule, OriginInfo, Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot,
    ServerState, Store, StoreError, StoreResult, TokenAccess,
};
use crate::housekeeping::JobSummary;
use crate::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, JobState, Name, Origin, Package, PackageFamily,
    PackageGroup, PackageGroupId, PackageId, Revision, RuleId, SequenceMode, Sha256Digest, TokenId,
};

/// A [`Store`] that keeps everything in memory, in one mutex-protected state of ordered maps, so
/// that every read is deterministic.
///
/// Meant for tests, examples and embedders that need no durability. Ids are assigned
/// sequentially from 1 per kind (job ids across containers and rules). A change set is applied to
/// a copy of the state that replaces the state only when every change succeeded, so a failing
/// change set changes nothing.
///
/// A panic while the mutex is held cannot leave a half-written state (writes either go through a
/// copy or validate everything before the first mutation), so a poisoned mutex is recovered from
/// rather than reported.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Default)]
struct State {
    last_ids: LastIds,
    computers: BTreeMap<ComputerId, Computer>,
    credentials: BTreeMap<ComputerId, AgentCredentials>,
    server: ServerState,
    tokens: BTreeMap<TokenId, AdminToken>,
    families: BTreeMap<FamilyId, PackageFamily>,
    packages: BTreeMap<PackageId, Package>,
    computer_groups: BTreeMap<ComputerGroupId, (ComputerGroup, Vec<ComputerId>)>,
    package_groups: BTreeMap<PackageGroupId, (PackageGroup, Vec<PackageId>)>,
    assignments: BTreeMap<ComputerId, BTreeMap<PackageId, Assignment>>,
    assignment_revisions: BTreeMap<ComputerId, Revision>,
    containers: BTreeMap<ContainerId, JobContainer>,
    rules: BTreeMap<RuleId, DeploymentRule>,
    jobs: BTreeMap<JobId, Job>,
    /// Deleted jobs with when they were deleted.
    tombstones: BTreeMap<JobId, (Job, DateTime<Utc>)>,
    /// Rules deleted while they still had jobs: gone from rule snapshots and listings, removed
    /// with their last job.
    deleting: BTreeSet<RuleId>,
}

#[derive(Debug, Clone, Copy, Default)]
struct LastIds {
    computer: i64,
    computer_group: i64,
    family: i64,
    package: i64,
    package_group: i64,
    container: i64,
    rule: i64,
    job: i64,
    token: i64,
}

fn next(last: &mut i64) -> i64 {
    *last += 1;
    *last
}

fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        reason: reason.into(),
    }
}

fn page_of<K: Copy, V: Clone>(map: &BTreeMap<K, V>, page: Page, key: impl Fn(K) -> i64) -> Vec<V> {
    map.iter()
        .filter(|(k, _)| page.after.is_none_or(|after| key(**k) > after))
        .take(page.limit)
        .map(|(_, v)| v.clone())
        .collect()
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // See the type's docs: the state is consistent even if a holder panicked.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Raises `computer`'s last-seen time to the last contact of its new `credentials`.
    fn contacted(&mut self, computer: ComputerId, credentials: &AgentCredentials) {
        if let (Some(contact), Some(stored)) = (
            credentials.last_contact.as_ref(),
            self.computers.get_mut(&computer),
        ) {
            stored.last_seen = stored.last_seen.max(Some(contact.at));
        }
    }

    fn computer(&self, id: ComputerId) -> StoreResult<&Computer> {
        self.computers
            .get(&id)
            .ok_or_else(|| not_found("computer", id))
    }

    fn check_hostname(&self, hostname: &Name, except: Option<ComputerId>) -> StoreResult<()> {
        let lower = hostname.as_str().to_lowercase();
        let taken = self
            .computers
            .values()
            .any(|c| Some(c.id) != except && c.hostname.as_str().to_lowercase() == lower);
        if taken {
            return Err(StoreError::Duplicate {
                what: "hostname",
                key: hostname.to_string(),
            });
        }
        Ok(())
    }

    fn check_package(&self, package: &Package, except: Option<PackageId>) -> StoreResult<()> {
        if !self.families.contains_key(&package.family) {
            return Err(invalid(format!(
                "unknown package family {}",
                package.family
            )));
        }
        for dependency in &package.dependencies {
            if Some(*dependency) != except && !self.packages.contains_key(dependency) {
                return Err(invalid(format!("unknown dependency package {dependency}")));
            }
        }
        // Only an update can close a cycle: nothing depends on a package being created.
        if let Some(id) = except {
            let cycle = crate::model::dependency_cycle(id, &package.dependencies, |other| {
                Ok::<_, StoreError>(
                    self.packages
                        .get(&other)
                        .map(|p| p.dependencies.clone())
                        .unwrap_or_default(),
                )
            })?;
            if let Some(cycle) = cycle {
                return Err(invalid(cycle.to_string()));
            }
        }
        let taken = self.packages.values().any(|p| {
            Some(p.id) != except && p.family == package.family && p.version == package.version
        });
        if taken {
            return Err(StoreError::Duplicate {
                what: "package version",
                key: format!("{}/{}", package.family, package.version),
            });
        }
        Ok(())
    }

    fn check_rule_groups(&self, rule: &DeploymentRule) -> StoreResult<()> {
        if !self.computer_groups.contains_key(&rule.computer_group) {
            return Err(invalid(format!(
                "unknown computer group {}",
                rule.computer_group
            )));
        }
        if !self.package_groups.contains_key(&rule.package_group) {
            return Err(invalid(format!(
                "unknown package group {}",
                rule.package_group
            )));
        }
        Ok(())
    }

    fn origin_exists(&self, origin: Origin) -> bool {
        match origin {
            Origin::Container(id) => self.containers.contains_key(&id),
            Origin::Rule(id) => self.rules.contains_key(&id),
        }
    }

    fn check_job_refs(&self, job: &Job) -> StoreResult<()> {
        if !self.origin_exists(job.origin) {
            return Err(invalid(format!("unknown origin {}", job.origin)));
        }
        self.check_job_refs_but_origin(job)
    }

    fn check_job_refs_but_origin(&self, job: &Job) -> StoreResult<()> {
        if !self.computers.contains_key(&job.computer) {
            return Err(invalid(format!("unknown computer {}", job.computer)));
        }
        if !self.packages.contains_key(&job.package) {
            return Err(invalid(format!("unknown package {}", job.package)));
        }
        Ok(())
    }

    fn assignment_revision(&self, computer: ComputerId) -> Revision {
        self.assignment_revisions
            .get(&computer)
            .copied()
            .unwrap_or_default()
    }

    fn bump_assignments(&mut self, computer: ComputerId) {
        let revision = self.assignment_revisions.entry(computer).or_default();
        *revision = revision.next();
    }

    /// A computer's assignments, oldest first (then by package id).
    fn assignments_of(&self, computer: ComputerId) -> Vec<Assignment> {
        let mut list: Vec<Assignment> = self
            .assignments
            .get(&computer)
            .map(|map| map.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|a| (a.installed_at, a.package));
        list
    }

    fn sequence_mode(&self, origin: Origin) -> Option<SequenceMode> {
        match origin {
            Origin::Container(id) => self.containers.get(&id).map(|c| c.policy.sequence_mode),
            Origin::Rule(id) => self.rules.get(&id).map(|r| r.policy.sequence_mode),
        }
    }

    fn insert_job(&mut self, mut job: Job) -> JobId {
        let id = JobId(next(&mut self.last_ids.job));
        job.id = id;
        job.revision = Revision(1);
        self.jobs.insert(id, job);
        id
    }

    /// A job that is gone (deleted since the change was computed) is a failed precondition like a
    /// moved revision: the caller reloads and recomputes (and a report then finds the tombstone).
    /// Inserts a job after checking its references and, for a rule's job, that the rule has no
    /// job with the same computer, package and kind.
    fn insert_checked(&mut self, job: Job, applied: &mut Applied) -> StoreResult<()> {
        self.check_job_refs(&job)?;
        if matches!(job.origin, Origin::Rule(_))
            && self.jobs.values().any(|other| {
                (other.origin, other.computer, other.package, other.kind)
                    == (job.origin, job.computer, job.package, job.kind)
            })
        {
            return Err(duplicate_rule_job(&job));
        }
        applied.jobs.push(self.insert_job(job));
        Ok(())
    }

    fn check_job_revision(&self, id: JobId, expected: Revision) -> StoreResult<()> {
        let stored = self.jobs.get(&id).ok_or_else(|| StoreError::Conflict {
            what: format!("job {id} no longer exists"),
        })?;
        if stored.revision != expected {
            return Err(StoreError::Conflict {
                what: format!(
                    "job {id} is at revision {}, not {expected}",
                    stored.revision
                ),
            });
        }
        Ok(())
    }

    /// Applies one change to `self`, validating it against the current (evolving) state first.
    /// On an error `self` may be half-changed: callers work on a copy.
    fn apply_change(&mut self, change: &Change, applied: &mut Applied) -> StoreResult<()> {
        match change {
            Change::CreateContainer { container, jobs } => {
                for job in jobs {
                    self.check_job_refs_but_origin(job)?;
                }
                let id = ContainerId(next(&mut self.last_ids.container));
                let mut container = container.clone();
                container.id = id;
                self.containers.insert(id, container);
                applied.containers.push(id);
                for job in jobs {
                    let mut job = job.clone();
                    job.origin = Origin::Container(id);
                    applied.jobs.push(self.insert_job(job));
                }
            }
            Change::UpdateContainer { container } => {
                let stored = self
                    .containers
                    .get_mut(&container.id)
                    .ok_or_else(|| not_found("container", container.id))?;
                *stored = container.clone();
            }
            Change::MarkWolSent { container, at } => {
                let stored = self
                    .containers
                    .get_mut(container)
                    .ok_or_else(|| not_found("container", container))?;
                if let Some(sent) = stored.wol.sent_at {
                    return Err(StoreError::Conflict {
                        what: format!("wake packets of container {container} were sent at {sent}"),
                    });
                }
                stored.wol.sent_at = Some(*at);
            }
            Change::DeleteContainer { id, jobs, at } => {
                let origin = Origin::Container(*id);
                let stored: BTreeMap<JobId, Revision> = self
                    .jobs
                    .values()
                    .filter(|job| job.origin == origin)
                    .map(|job| (job.id, job.revision))
                    .collect();
                let expected: BTreeMap<JobId, Revision> = jobs.iter().copied().collect();
                if stored != expected {
                    return Err(StoreError::Conflict {
                        what: format!("the jobs of container {id} changed since they were read"),
                    });
                }
                if self.containers.remove(id).is_none() {
                    return Err(not_found("container", id));
                }
                self.bury(|job| job.origin == origin, *at);
            }
            Change::InsertJob { job } => {
                self.insert_checked(job.clone(), applied)?;
            }
            Change::InsertRuleJobs { rule, at, jobs } => {
                // The rule's keys are collected once, not searched for every new job.
                let origin = Origin::Rule(*rule);
                let mut keys: BTreeSet<(ComputerId, PackageId, crate::model::JobKind)> = self
                    .jobs
                    .values()
                    .filter(|job| job.origin == origin)
                    .map(|job| (job.computer, job.package, job.kind))
                    .collect();
                for new in jobs {
                    let package = self
                        .packages
                        .get(&new.package)
                        .ok_or_else(|| invalid(format!("unknown package {}", new.package)))?;
                    let job = new.to_job(*rule, package, *at);
                    self.check_job_refs(&job)?;
                    if !keys.insert((job.computer, job.package, job.kind)) {
                        return Err(duplicate_rule_job(&job));
                    }
                    applied.jobs.push(self.insert_job(job));
                }
            }
            Change::UpdateJob { expected, job } => {
                self.check_job_revision(job.id, *expected)?;
                self.check_job_refs(job)?;
                let stored = &self.jobs[&job.id];
                if (stored.origin, stored.computer, stored.package, stored.kind)
                    != (job.origin, job.computer, job.package, job.kind)
                {
                    return Err(invalid(format!(
                        "job {} cannot change its origin, computer, package or kind",
                        job.id
                    )));
                }
                let mut job = job.clone();
                job.revision = expected.next();
                self.jobs.insert(job.id, job);
            }
            Change::PurgeTombstones { deleted_before } => {
                self.tombstones.retain(|_, (_, at)| *at >= *deleted_before);
            }
            Change::DeleteJob {
                id,
                computer,
                expected,
                at,
            } => {
                self.check_job_revision(*id, *expected)?;
                if self
                    .jobs
                    .get(id)
                    .is_some_and(|job| job.computer != *computer)
                {
                    return Err(invalid(format!("job {id} is not computer {computer}'s")));
                }
                if let Some(job) = self.jobs.remove(id) {
                    let origin = job.origin;
                    self.tombstones.insert(*id, (job, *at));
                    if let Origin::Rule(rule) = origin {
                        self.remove_rule_if_deleted_and_empty(rule);
                    }
                }
            }
            Change::UpsertAssignment { assignment } => {
                if !self.computers.contains_key(&assignment.computer) {
                    return Err(invalid(format!("unknown computer {}", assignment.computer)));
                }
                if !self.packages.contains_key(&assignment.package) {
                    return Err(invalid(format!("unknown package {}", assignment.package)));
                }
                self.assignments
                    .entry(assignment.computer)
                    .or_default()
                    .insert(assignment.package, assignment.clone());
                self.bump_assignments(assignment.computer);
            }
            Change::DeleteAssignment { computer, package } => {
                if !self.computers.contains_key(computer) {
                    return Err(invalid(format!("unknown computer {computer}")));
                }
                let removed = self
                    .assignments
                    .get_mut(computer)
                    .and_then(|map| map.remove(package));
                if removed.is_some() {
                    self.bump_assignments(*computer);
                }
            }
            Change::SetCredentials {
                computer,
                expected,
                credentials,
            } => {
                self.computer(*computer)?;
                let stored = self.credentials.get(computer).cloned().unwrap_or_default();
                if stored != *expected {
                    return Err(StoreError::Conflict {
                        what: format!("credentials of computer {computer} changed since read"),
                    });
                }
                self.credentials.insert(*computer, credentials.clone());
                self.contacted(*computer, credentials);
            }
            Change::SetLastSeen { computer, at } => {
                let stored = self
                    .computers
                    .get_mut(computer)
                    .ok_or_else(|| not_found("computer", *computer))?;
                stored.last_seen = stored.last_seen.max(Some(*at));
            }
            Change::SetServerState { state } => self.server = state.clone(),
            Change::ExpectAssignments { computer, expected } => {
                self.computer(*computer)?;
                let revision = self.assignment_revision(*computer);
                if revision != *expected {
                    return Err(StoreError::Conflict {
                        what: format!(
                            "assignments of computer {computer} are at revision {revision}, not {expected}"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies a change set atomically: on success the state is replaced by the changed copy.
    fn apply(&mut self, changes: &ChangeSet) -> StoreResult<Applied> {
        let mut copy = self.clone();
        let mut applied = Applied::default();
        for change in &changes.changes {
            copy.apply_change(change, &mut applied)?;
        }
        *self = copy;
        Ok(applied)
    }

    fn has_group_cycle<K: Ord + Copy>(parents: impl Fn(K) -> Option<K>, id: K, parent: K) -> bool {
        // Walk up from the new parent; reaching `id` means a cycle. Bounded by the set of visited
        // groups in case the stored hierarchy were already cyclic.
        let mut seen = BTreeSet::new();
        let mut current = Some(parent);
        while let Some(group) = current {
            if group == id || !seen.insert(group) {
                return true;
            }
            current = parents(group);
        }
        false
    }

    /// Removes a rule being deleted once it has no job left. Its tombstones stay until
    /// housekeeping purges them: a late report on one still records the installation.
    fn remove_rule_if_deleted_and_empty(&mut self, rule: RuleId) {
        let origin = Origin::Rule(rule);
        if self.deleting.contains(&rule) && !self.jobs.values().any(|job| job.origin == origin) {
            self.deleting.remove(&rule);
            self.rules.remove(&rule);
        }
    }

    /// Deletes the jobs `doomed` selects, each leaving a tombstone dated `at`.
    fn bury(&mut self, doomed: impl Fn(&Job) -> bool, at: DateTime<Utc>) {
        let ids: Vec<JobId> = self
            .jobs
            .values()
            .filter(|job| doomed(job))
            .map(|job| job.id)
            .collect();
        for id in ids {
            if let Some(job) = self.jobs.remove(&id) {
                self.tombstones.insert(id, (job, at));
            }
        }
    }

    /// The deploy snapshot: of every computer, or of the `wanted` ones only (their rows,
    /// memberships and assignments; groups and packages are always whole).
    fn deploy_snapshot(&self, wanted: Option<&BTreeSet<ComputerId>>) -> DeploySnapshot {
        let state = self;
        let kept = |computer: &ComputerId| wanted.is_none_or(|wanted| wanted.contains(computer));
        let computers: Vec<ComputerId> = match wanted {
            Some(wanted) => wanted.iter().copied().collect(),
            None => state.computers.keys().copied().collect(),
        };
        DeploySnapshot {
            computers: computers
                .iter()
                .filter_map(|id| state.computers.get(id).map(|c| (*id, c.clone())))
                .collect(),
            computer_groups: state
                .computer_groups
                .values()
                .map(|(g, _)| g.clone())
                .collect(),
            computer_group_members: state
                .computer_groups
                .iter()
                .map(|(id, (_, members))| {
                    (*id, members.iter().filter(|m| kept(m)).copied().collect())
                })
                .collect(),
            packages: state.packages.clone(),
            package_groups: state
                .package_groups
                .values()
                .map(|(g, _)| g.clone())
                .collect(),
            package_group_members: state
                .package_groups
                .iter()
                .map(|(id, (_, members))| (*id, members.clone()))
                .collect(),
            assignments: computers
                .iter()
                .map(|computer| (*computer, state.assignments_of(*computer)))
                .filter(|(_, list)| !list.is_empty())
                .collect(),
        }
    }
}

/// The jobs of `state` that `filter` and `page` list, by id.
fn listed<'s>(
    state: &'s State,
    filter: &'s JobFilter,
    page: Page,
) -> impl Iterator<Item = &'s Job> + 's {
    state
        .jobs
        .values()
        .filter(move |job| page.after.is_none_or(|after| job.id.0 > after))
        .filter(|job| filter.origin.is_none_or(|o| job.origin == o))
        .filter(|job| filter.computer.is_none_or(|c| job.computer == c))
        .filter(|job| filter.package.is_none_or(|p| job.package == p))
        .filter(|job| filter.state.is_none_or(|s| job.state == s))
        .take(page.limit)
}

impl Store for MemoryStore {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        let mut state = self.lock();
        state.check_hostname(&computer.hostname, None)?;
        let id = ComputerId(next(&mut state.last_ids.computer));
        let computer = Computer {
            id,
            hostname: computer.hostname,
            os: computer.os,
            os_version: computer.os_version,
            architecture: computer.architecture,
            macs: computer.macs,
            last_seen: None,
        };
        state.computers.insert(id, computer.clone());
        Ok(computer)
    }

    fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
        let mut state = self.lock();
        state.computer(computer.id)?;
        state.check_hostname(&computer.hostname, Some(computer.id))?;
        state.computers.insert(computer.id, computer.clone());
        Ok(())
    }

    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>> {
        let mut state = self.lock();
        state.computer(id)?;
        // Everything below is infallible, so the state is never left half-changed.
        let unfinished: Vec<JobId> = state
            .jobs
            .values()
            .filter(|job| job.computer == id && job.state.is_pending())
            .map(|job| job.id)
            .collect();
        state.computers.remove(&id);
        state.credentials.remove(&id);
        state.assignments.remove(&id);
        state.assignment_revisions.remove(&id);
        state.bury(|job| job.computer == id, at);
        for rule in state.deleting.clone() {
            state.remove_rule_if_deleted_and_empty(rule);
        }
        for (_, members) in state.computer_groups.values_mut() {
            members.retain(|member| *member != id);
        }
        Ok(unfinished)
    }

    fn computer(&self, id: ComputerId) -> StoreResult<Computer> {
        self.lock().computer(id).cloned()
    }

    fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>> {
        let lower = hostname.trim().to_lowercase();
        Ok(self
            .lock()
            .computers
            .values()
            .find(|c| c.hostname.as_str().to_lowercase() == lower)
            .cloned())
    }

    fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>> {
        Ok(page_of(&self.lock().computers, page, |id| id.0))
    }

    fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
        let mut state = self.lock();
        let contact = state
            .credentials
            .get(&id)
            .and_then(|credentials| credentials.last_contact.as_ref())
            .map(|contact| contact.at);
        let computer = state
            .computers
            .get_mut(&id)
            .ok_or_else(|| not_found("computer", id))?;
        computer.last_seen = Some(at).max(contact);
        Ok(())
    }

    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
        let state = self.lock();
        state.computer(id)?;
        Ok(state.credentials.get(&id).cloned().unwrap_or_default())
    }

    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        let mut state = self.lock();
        state.computer(id)?;
        state.credentials.insert(id, credentials.clone());
        state.contacted(id, credentials);
        Ok(())
    }

    fn server_state(&self) -> StoreResult<ServerState> {
        Ok(self.lock().server.clone())
    }

    fn set_server_state(&self, server: &ServerState) -> StoreResult<()> {
        self.lock().server = server.clone();
        Ok(())
    }

    fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken> {
        let mut state = self.lock();
        for taken in state.tokens.values() {
            if taken.name == token.name || taken.digest == token.digest {
                return Err(super::columns::admin_token_taken(
                    &token,
                    taken.name == token.name,
                ));
            }
        }
        let token = token.with_id(TokenId(next(&mut state.last_ids.token)));
        state.tokens.insert(token.id, token.clone());
        Ok(token)
    }

    fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>> {
        Ok(page_of(&self.lock().tokens, page, |id| id.0))
    }

    fn admin_token_by_digest(&self, digest: &Sha256Digest) -> StoreResult<Option<AdminToken>> {
        Ok(self
            .lock()
            .tokens
            .values()
            .find(|token| token.digest == *digest)
            .cloned())
    }

    fn delete_admin_token(&self, id: TokenId) -> StoreResult<()> {
        let mut state = self.lock();
        let token = state
            .tokens
            .get(&id)
            .ok_or_else(|| not_found("admin token", id))?;
        let others_full = state
            .tokens
            .values()
            .any(|other| other.id != id && other.access == TokenAccess::Full);
        if token.access == TokenAccess::Full && !others_full {
            return Err(super::columns::last_full_token(id, token.name.as_str()));
        }
        state.tokens.remove(&id);
        Ok(())
    }

    fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
        let mut state = self.lock();
        if state.families.values().any(|f| f.name == name) {
            return Err(StoreError::Duplicate {
                what: "package family",
                key: name.to_string(),
            });
        }
        let id = FamilyId(next(&mut state.last_ids.family));
        let family = PackageFamily { id, name };
        state.families.insert(id, family.clone());
        Ok(family)
    }

    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.lock()
            .families
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("package family", id))
    }

    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        Ok(page_of(&self.lock().families, page, |id| id.0))
    }

    fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
        let mut state = self.lock();
        // Checked under the id it would get; the id is taken only if it passes.
        let mut package = package.with_id(PackageId(state.last_ids.package + 1));
        state.check_package(&package, None)?;
        package.id = PackageId(next(&mut state.last_ids.package));
        state.packages.insert(package.id, package.clone());
        Ok(package)
    }

    fn update_package(&self, package: &Package) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.packages.contains_key(&package.id) {
            return Err(not_found("package", package.id));
        }
        state.check_package(package, Some(package.id))?;
        state.packages.insert(package.id, package.clone());
        Ok(())
    }

    fn package(&self, id: PackageId) -> StoreResult<Package> {
        self.lock()
            .packages
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("package", id))
    }

    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
        Ok(page_of(&self.lock().packages, page, |id| id.0))
    }

    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup> {
        let mut state = self.lock();
        if let Some(parent) = parent {
            if !state.computer_groups.contains_key(&parent) {
                return Err(invalid(format!("unknown parent computer group {parent}")));
            }
        }
        let id = ComputerGroupId(next(&mut state.last_ids.computer_group));
        let group = ComputerGroup { id, name, parent };
        state
            .computer_groups
            .insert(id, (group.clone(), Vec::new()));
        Ok(group)
    }

    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.computer_groups.contains_key(&id) {
            return Err(not_found("computer group", id));
        }
        if let Some(parent) = parent {
            if !state.computer_groups.contains_key(&parent) {
                return Err(invalid(format!("unknown parent computer group {parent}")));
            }
            let parents = |g| state.computer_groups.get(&g).and_then(|(g, _)| g.parent);
            if State::has_group_cycle(parents, id, parent) {
                return Err(invalid(format!(
                    "computer group {parent} is {id} or one of its subgroups: a cycle"
                )));
            }
        }
        if let Some((group, _)) = state.computer_groups.get_mut(&id) {
            group.parent = parent;
        }
        Ok(())
    }

    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.computer_groups.contains_key(&id) {
            return Err(not_found("computer group", id));
        }
        if let Some(unknown) = members.iter().find(|m| !state.computers.contains_key(m)) {
            return Err(invalid(format!("unknown computer {unknown}")));
        }
        let members: BTreeSet<ComputerId> = members.iter().copied().collect();
        if let Some((_, stored)) = state.computer_groups.get_mut(&id) {
            *stored = members.into_iter().collect();
        }
        Ok(())
    }

    fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
        Ok(self.lock().computer_groups.values().cloned().collect())
    }

    fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<PackageGroup> {
        let mut state = self.lock();
        if let Some(parent) = parent {
            if !state.package_groups.contains_key(&parent) {
                return Err(invalid(format!("unknown parent package group {parent}")));
            }
        }
        let id = PackageGroupId(next(&mut state.last_ids.package_group));
        let group = PackageGroup { id, name, parent };
        state.package_groups.insert(id, (group.clone(), Vec::new()));
        Ok(group)
    }

    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.package_groups.contains_key(&id) {
            return Err(not_found("package group", id));
        }
        if let Some(parent) = parent {
            if !state.package_groups.contains_key(&parent) {
                return Err(invalid(format!("unknown parent package group {parent}")));
            }
            let parents = |g| state.package_groups.get(&g).and_then(|(g, _)| g.parent);
            if State::has_group_cycle(parents, id, parent) {
                return Err(invalid(format!(
                    "package group {parent} is {id} or one of its subgroups: a cycle"
                )));
            }
        }
        if let Some((group, _)) = state.package_groups.get_mut(&id) {
            group.parent = parent;
        }
        Ok(())
    }

    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.package_groups.contains_key(&id) {
            return Err(not_found("package group", id));
        }
        if let Some(unknown) = members.iter().find(|m| !state.packages.contains_key(m)) {
            return Err(invalid(format!("unknown package {unknown}")));
        }
        // Ordered; a package listed twice keeps its first position.
        let mut seen = BTreeSet::new();
        let members: Vec<PackageId> = members
            .iter()
            .copied()
            .filter(|m| seen.insert(*m))
            .collect();
        if let Some((_, stored)) = state.package_groups.get_mut(&id) {
            *stored = members;
        }
        Ok(())
    }

    fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
        Ok(self.lock().package_groups.values().cloned().collect())
    }

    fn assignments(&self, computer: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)> {
        let state = self.lock();
        state.computer(computer)?;
        Ok((
            state.assignments_of(computer),
            state.assignment_revision(computer),
        ))
    }

    fn container(&self, id: ContainerId) -> StoreResult<JobContainer> {
        self.lock()
            .containers
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("container", id))
    }

    fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>> {
        Ok(page_of(&self.lock().containers, page, |id| id.0))
    }

    fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule> {
        let mut state = self.lock();
        let mut rule = rule.with_id(RuleId(state.last_ids.rule + 1));
        state.check_rule_groups(&rule)?;
        rule.id = RuleId(next(&mut state.last_ids.rule));
        state.rules.insert(rule.id, rule.clone());
        Ok(rule)
    }

    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.rules.contains_key(&rule.id) {
            return Err(not_found("rule", rule.id));
        }
        state.check_rule_groups(rule)?;
        state.rules.insert(rule.id, rule.clone());
        Ok(())
    }

    fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule> {
        self.lock()
            .rules
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("rule", id))
    }

    fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>> {
        let state = self.lock();
        let listed: BTreeMap<RuleId, DeploymentRule> = state
            .rules
            .iter()
            .filter(|(id, _)| !state.deleting.contains(id))
            .map(|(id, rule)| (*id, rule.clone()))
            .collect();
        Ok(page_of(&listed, page, |id| id.0))
    }

    fn job(&self, id: JobId) -> StoreResult<Job> {
        self.lock()
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("job", id))
    }

    fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>> {
        let state = self.lock();
        Ok(listed(&state, filter, page).cloned().collect())
    }

    fn list_jobs_abridged(
        &self,
        filter: &JobFilter,
        page: Page,
        output_chars: usize,
    ) -> StoreResult<Vec<ListedJob>> {
        let mut state = self.lock();
        let ids: Vec<JobId> = listed(&state, filter, page).map(|job| job.id).collect();
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(job) = state.jobs.get_mut(&id) else {
                continue;
            };
            // Only the kept part of the output is copied: the whole is moved out for the clone
            // of the rest and put back.
            let output = std::mem::take(&mut job.output);
            let cut = output.char_indices().nth(output_chars).map(|(at, _)| at);
            let mut copy = job.clone();
            copy.output = output[..cut.unwrap_or(output.len())].to_owned();
            job.output = output;
            jobs.push(ListedJob {
                job: copy,
                output_truncated: cut.is_some(),
            });
        }
        Ok(jobs)
    }

    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
        let state = self.lock();
        let computer = state.computer(computer)?.clone();
        let jobs: Vec<Job> = state
            .jobs
            .values()
            .filter(|job| job.computer == computer.id && job.state.is_pending())
            .cloned()
            .collect();
        let mut origins = BTreeMap::new();
        for job in &jobs {
            if origins.contains_key(&job.origin) {
                continue;
            }
            let (enabled, created_at, schedule, policy) = match job.origin {
                Origin::Container(id) => {
                    let c = state.containers.get(&id);
                    let c = c.ok_or_else(|| missing_origin(job))?;
                    (c.enabled, c.created_at, Some(c.schedule), c.policy.clone())
                }
                Origin::Rule(id) => {
                    let r = state.rules.get(&id).ok_or_else(|| missing_origin(job))?;
                    (r.enabled, r.created_at, None, r.policy.clone())
                }
            };
            let mut failed: Vec<FailedJob> = state
                .jobs
                .values()
                .filter(|other| {
                    other.computer == computer.id
                        && other.origin == job.origin
                        && other.state == JobState::Failed
                })
                .map(|other| FailedJob {
                    id: other.id,
                    sequence: other.sequence,
                })
                .collect();
            failed.sort_by_key(|f| (f.sequence, f.id));
            origins.insert(
                job.origin,
                OriginInfo {
                    enabled,
                    created_at,
                    schedule,
                    policy: Ok(policy),
                    failed,
                },
            );
        }
        Ok(PlannerSnapshot {
            computer,
            jobs,
            origins,
        })
    }

    fn report_snapshot(&self, id: JobId) -> StoreResult<ReportSnapshot> {
        let state = self.lock();
        let (job, deleted) = match (
            state.jobs.get(&id),
            state.tombstones.get(&id).map(|(job, _)| job),
        ) {
            (Some(job), _) => (job.clone(), false),
            (None, Some(tombstone)) => (tombstone.clone(), true),
            (None, None) => return Err(not_found("job", id)),
        };
        // A tombstone may outlive its origin (a deleted container or rule); its report never
        // cascades, so any mode will do. A live job without its origin is corrupt.
        let sequence_mode = match state.sequence_mode(job.origin) {
            Some(mode) => mode,
            None if deleted => SequenceMode::IgnoreFailed,
            None => return Err(missing_origin(&job)),
        };
        let origin_jobs = state
            .jobs
            .values()
            .filter(|other| {
                other.id != job.id && other.computer == job.computer && other.origin == job.origin
            })
            .cloned()
            .collect();
        let family = state.packages.get(&job.package).map(|p| p.family);
        let family_assignments = state
            .assignments_of(job.computer)
            .into_iter()
            .filter(|a| state.packages.get(&a.package).map(|p| p.family) == family)
            .collect();
        Ok(ReportSnapshot {
            assignment_revision: state.assignment_revision(job.computer),
            job,
            deleted,
            sequence_mode,
            origin_jobs,
            family_assignments,
        })
    }

    fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot> {
        Ok(self.lock().deploy_snapshot(None))
    }

    fn rule_snapshot(&self) -> StoreResult<RuleSnapshot> {
        let state = self.lock();
        Ok(RuleSnapshot {
            deploy: state.deploy_snapshot(None),
            rules: state
                .rules
                .values()
                .filter(|rule| !state.deleting.contains(&rule.id))
                .cloned()
                .collect(),
            assignment_revisions: state.assignment_revisions.clone(),
            jobs: state
                .jobs
                .values()
                .filter(|job| matches!(job.origin, Origin::Rule(_)))
                .cloned()
                .collect(),
        })
    }

    fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
        let state = self.lock();
        let wanted = &part.computers;
        // Only what the part names is copied; `restrict_rule_snapshot` then keeps the packages
        // it needs and filters the memberships.
        let snapshot = RuleSnapshot {
            deploy: state.deploy_snapshot(Some(wanted)),
            rules: state
                .rules
                .values()
                .filter(|rule| !state.deleting.contains(&rule.id))
                .cloned()
                .collect(),
            assignment_revisions: wanted
                .iter()
                .filter_map(|c| state.assignment_revisions.get(c).map(|r| (*c, *r)))
                .collect(),
            jobs: state
                .jobs
                .values()
                .filter(|job| part.has_job(job))
                .cloned()
                .collect(),
        };
        Ok(super::port::restrict_rule_snapshot(snapshot, part))
    }

    fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
        let state = self.lock();
        Ok(state
            .jobs
            .values()
            .filter(|job| job.origin == Origin::Rule(rule))
            .map(|job| job.computer)
            .collect())
    }

    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        let state = self.lock();
        let mut summary = JobSummary::default();
        for job in state.jobs.values().filter(|job| job.origin == origin) {
            summary.add(job);
        }
        Ok(summary)
    }

    fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
        let mut state = self.lock();
        if !state.rules.contains_key(&id) {
            return Err(not_found("rule", id));
        }
        state.deleting.insert(id);
        state.remove_rule_if_deleted_and_empty(id);
        Ok(())
    }

    // Every container: the in-memory store has no index to leave any out by.
    fn housekeeping_snapshot(&self, _now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot> {
        let state = self.lock();
        let mut computers = BTreeMap::new();
        let containers = state
            .containers
            .values()
            .map(|container| {
                let origin = Origin::Container(container.id);
                let jobs: Vec<Job> = state
                    .jobs
                    .values()
                    .filter(|job| job.origin == origin)
                    .cloned()
                    .collect();
                for job in &jobs {
                    if let Some(computer) = state.computers.get(&job.computer) {
                        computers.insert(job.computer, computer.clone());
                    }
                }
                ContainerJobs {
                    container: container.clone(),
                    jobs,
                }
            })
            .collect();
        Ok(HousekeepingSnapshot {
            oldest_tombstone: state.tombstones.values().map(|(_, at)| *at).min(),
            containers,
            computers,
        })
    }

    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
        self.lock().apply(changes)
    }

    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        let mut state = self.lock();
        sets.iter().map(|set| state.apply(set)).collect()
    }
}

/// A job whose origin is gone: impossible while the store keeps its invariants (deleting an
/// origin deletes its jobs), reported rather than panicked on.
fn missing_origin(job: &Job) -> StoreError {
    StoreError::Corrupt {
        what: "job",
        id: job.id.to_string(),
        reason: format!("its origin {} does not exist", job.origin),
    }
}

fn duplicate_rule_job(job: &Job) -> StoreError {
    StoreError::Duplicate {
        what: "rule job",
        key: format!(
            "{} computer {} package {} {:?}",
            job.origin, job.computer, job.package, job.kind
        ),
    }
}
