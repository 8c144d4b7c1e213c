//! Deployment rules: jobs as the difference between what a rule wants and what exists.
//!
//! A rule says "every computer in computer group G should have every package in package group
//! P". [`RuleWorld::evaluate`] computes the rule's *desired* jobs for the computers and families in a
//! [`Scope`], merges them with the rule's existing jobs by the merge table of the docs, and returns
//! the difference as a [`RuleDiff`]; applying it and evaluating again gives an empty diff.
//!
//! Two versions of one family desired as installed on one computer (by this rule or together with
//! other enabled rules' [`Claims`]), either with an upgrade behaviour that removes other versions,
//! would uninstall and reinstall each other forever (OCO documents this loop). Here no job of that
//! family is created or reset on that computer, and the diff reports a
//! [`Conflict::FamilyVersions`].
//!
//! [`RuleWorld`] holds what evaluation reads, resolved from a store's [`RuleSnapshot`]; the
//! trigger table that says which events re-evaluate which rules, for what scope, is
//! [`scopes_for`].
//!
//! # Examples
//!
//! ```
//! # use oco_core::chrono::{TimeZone, Utc};
//! # use oco_core::model::*;
//! # use oco_core::rules::{RuleWorld, Scope};
//! # use oco_core::store::{MemoryStore, NewComputer, NewPackage, NewRule, Store};
//! # let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
//! # let name = |text: &str| Name::new("name", text).unwrap();
//! # let store = MemoryStore::new();
//! # let pc = store.create_computer(NewComputer { hostname: name("pc1"), os: "Linux".into(),
//! #     os_version: String::new(), architecture: String::new(), macs: vec![] })?;
//! # let family = store.create_family(name("editor"))?;
//! # let package = |version: &str, upgrade| {
//! #     NewPackage::new(family.id, name(version), Procedure::new("install"))
//! #         .with_upgrade_behavior(upgrade)
//! # };
//! let v1 = store.create_package(package("1", UpgradeBehavior::ImplicitRemove))?;
//! let v2 = store.create_package(package("2", UpgradeBehavior::ImplicitRemove))?;
//! let computers = store.create_computer_group(name("office"), None)?;
//! store.set_computer_group_members(computers.id, &[pc.id])?;
//! let packages = store.create_package_group(name("editor"), None)?;
//! store.set_package_group_members(packages.id, &[v1.id])?;
//! let rule = store.create_rule(NewRule::new(
//!     name("editor for the office"),
//!     computers.id,
//!     packages.id,
//!     now,
//! ))?;
//!
//! // The rule wants v1 on pc1: one job to insert; applied, the rule is up to date.
//! let world = RuleWorld::from_snapshot(&store.rule_snapshot()?);
//! let diff = world.evaluate(rule.id, &Scope::full(), now);
//! assert_eq!(diff.insert.len(), 1);
//! store.apply(&diff.into_change_set())?;
//! let world = RuleWorld::from_snapshot(&store.rule_snapshot()?);
//! assert!(world.evaluate(rule.id, &Scope::full(), now).is_empty());
//!
//! // v1 and v2 in one group would remove each other forever: a conflict, and no jobs.
//! store.set_package_group_members(packages.id, &[v1.id, v2.id])?;
//! let world = RuleWorld::from_snapshot(&store.rule_snapshot()?);
//! assert_eq!(world.conflicts().len(), 1);
//! let diff = world.evaluate(rule.id, &Scope::full(), now);
//! assert!(diff.insert.is_empty() && diff.delete.len() == 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod existing;
mod new_jobs;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::resolve::{resolve_computer_group, resolve_package_group};
use crate::model::{
    Assignment, Computer, ComputerId, DeploymentRule, FamilyId, Job, JobId, JobKind, JobSnapshot,
    JobState, Origin, Package, PackageId, Revision, RuleId, ServerFinal, UpgradeBehavior,
};
use crate::store::{Change, ChangeSet, RulePart, RuleSnapshot};

pub use existing::RuleJobs;
use existing::{Key, Snapshots};
pub use new_jobs::{Iter as NewJobsIter, NewJob, NewJobs};

/// Which part of a rule to evaluate: computers and package families, `None` meaning all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Only these computers (`None`: every member of the rule's computer group).
    pub computers: Option<BTreeSet<ComputerId>>,
    /// Only jobs of packages of these families (`None`: every family).
    pub families: Option<BTreeSet<FamilyId>>,
}

impl Scope {
    /// The whole rule.
    pub fn full() -> Self {
        Scope::default()
    }

    /// Some computers, every family.
    pub fn computers(computers: impl IntoIterator<Item = ComputerId>) -> Self {
        Scope {
            computers: Some(computers.into_iter().collect()),
            families: None,
        }
    }

    /// Every computer, some families.
    pub fn families(families: impl IntoIterator<Item = FamilyId>) -> Self {
        Scope {
            computers: None,
            families: Some(families.into_iter().collect()),
        }
    }

    /// Whether the scope covers the whole rule.
    pub fn is_full(&self) -> bool {
        self.computers.is_none() && self.families.is_none()
    }

    /// Whether `computer` is in scope.
    pub fn has_computer(&self, computer: ComputerId) -> bool {
        self.computers
            .as_ref()
            .is_none_or(|set| set.contains(&computer))
    }

    /// Whether `family` is in scope.
    pub fn has_family(&self, family: FamilyId) -> bool {
        self.families
            .as_ref()
            .is_none_or(|set| set.contains(&family))
    }

    /// The union of two scopes.
    pub fn union(&self, other: &Scope) -> Scope {
        fn merge<T: Ord + Clone>(
            a: &Option<BTreeSet<T>>,
            b: &Option<BTreeSet<T>>,
        ) -> Option<BTreeSet<T>> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.union(b).cloned().collect()),
                _ => None,
            }
        }
        Scope {
            computers: merge(&self.computers, &other.computers),
            families: merge(&self.families, &other.families),
        }
    }
}

impl NewJob {
    /// The full job of `rule`, with the snapshot of `package` (the job's package) and, for
    /// Incompatible and AlreadyInstalled, `finished = at`.
    pub fn to_job(&self, rule: RuleId, package: &Package, at: DateTime<Utc>) -> Job {
        let mut job = Job::new(
            Origin::Rule(rule),
            self.computer,
            package,
            self.kind,
            self.sequence,
        );
        match self.state {
            JobState::Incompatible => job.finalize_by_server(ServerFinal::Incompatible, at),
            JobState::AlreadyInstalled => {
                job.finalize_by_server(ServerFinal::AlreadyInstalled, at);
            }
            _ => {}
        }
        job
    }
}

/// A job update computed from a revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The revision the update was computed from.
    pub expected: Revision,
    /// The job as it should be.
    pub job: Job,
}

/// A job a diff deletes: which, whose, and the revision it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDeletion {
    /// The job.
    pub id: JobId,
    /// Its computer.
    pub computer: ComputerId,
    /// The revision the deletion was computed from.
    pub expected: Revision,
}

impl JobDeletion {
    /// The deletion of `job` as read.
    pub fn of(job: &Job) -> Self {
        JobDeletion {
            id: job.id,
            computer: job.computer,
            expected: job.revision,
        }
    }
}

/// What evaluating a rule decided: the writes that make its jobs what it wants, and the conflicts
/// it found. [`RuleDiff::into_change_set`] turns it into one atomic change set whose preconditions
/// are the job revisions and the assignment revisions it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use = "a rule diff's writes happen only when applied (`into_change_set`, then the store)"]
pub struct RuleDiff {
    /// The rule.
    pub rule: RuleId,
    /// When the evaluation ran (deleted jobs' tombstones are dated by it).
    pub at: DateTime<Utc>,
    /// New jobs, compact: the store takes their snapshots from the packages as it writes them.
    pub insert: NewJobs,
    /// Jobs changed: state, snapshot or sequence.
    pub update: Vec<JobUpdate>,
    /// Jobs no longer wanted and not running: deleted (the store keeps a tombstone).
    pub delete: Vec<JobDeletion>,
    /// Running jobs no longer wanted: marked orphaned, deleted at their final report.
    pub orphan: Vec<JobUpdate>,
    /// Conflicts and missing dependencies found.
    pub conflicts: Vec<Conflict>,
    /// The assignment revision of each computer evaluated.
    pub assignments_read: Vec<(ComputerId, Revision)>,
}

impl RuleDiff {
    /// A diff of `rule` at `at` that changes nothing.
    pub fn empty(rule: RuleId, at: DateTime<Utc>) -> Self {
        RuleDiff {
            rule,
            at,
            insert: NewJobs::new(),
            update: Vec::new(),
            delete: Vec::new(),
            orphan: Vec::new(),
            conflicts: Vec::new(),
            assignments_read: Vec::new(),
        }
    }

    /// Records that an existing job is no longer wanted: deleted, or orphaned if it runs (once).
    fn unwant(&mut self, job: &Job) {
        if !job.state.is_running() {
            self.delete.push(JobDeletion::of(job));
        } else if !job.orphaned {
            let mut orphan = job.clone();
            orphan.orphaned = true;
            self.orphan.push(JobUpdate {
                expected: job.revision,
                job: orphan,
            });
        }
    }

    /// Whether nothing is to be written (conflicts may still be reported).
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.orphan.is_empty()
    }

    /// The change set that applies the diff: assignment preconditions first, then deletes,
    /// updates, orphan marks and inserts. An empty diff gives an empty change set.
    pub fn into_change_set(self) -> ChangeSet {
        let mut changes = ChangeSet::default();
        if self.is_empty() {
            return changes;
        }
        for (computer, expected) in self.assignments_read {
            changes.push(Change::ExpectAssignments { computer, expected });
        }
        for JobDeletion {
            id,
            computer,
            expected,
        } in self.delete
        {
            changes.push(Change::DeleteJob {
                id,
                computer,
                expected,
                at: self.at,
            });
        }
        for JobUpdate { expected, job } in self.update.into_iter().chain(self.orphan) {
            changes.push(Change::UpdateJob { expected, job });
        }
        if !self.insert.is_empty() {
            changes.push(Change::InsertRuleJobs {
                rule: self.rule,
                at: self.at,
                jobs: self.insert,
            });
        }
        changes
    }
}

/// A problem evaluation found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", tag = "conflict")]
pub enum Conflict {
    /// Two or more versions of one family are desired as installed on one computer, and one of
    /// them removes other versions: no job of that family is created or reset there.
    FamilyVersions {
        /// The computer.
        computer: ComputerId,
        /// The family.
        family: FamilyId,
        /// The versions desired, by id.
        packages: Vec<PackageId>,
        /// The enabled rules (and the evaluated one) desiring them, by id.
        rules: Vec<RuleId>,
    },
    /// A package needs a package that is neither in the rule's package group nor installed on the
    /// computer (informational: the job is still created; rules do not expand dependencies).
    MissingDependency {
        /// The computer.
        computer: ComputerId,
        /// The package with the dependency.
        package: PackageId,
        /// The missing dependency.
        dependency: PackageId,
    },
}

/// For each computer, the packages other enabled rules desire as installed there, with the rule.
pub type Claims = BTreeMap<ComputerId, Vec<(RuleId, PackageId)>>;

/// What rule evaluation reads, with groups resolved: every rule with its members (hostname order)
/// and packages (group order), the computers and packages they name, assignments with revisions,
/// and the rules' existing jobs ([`RuleWorld::set_jobs`]).
#[derive(Debug, Clone, Default)]
pub struct RuleWorld {
    /// Rules by id, resolved.
    pub rules: BTreeMap<RuleId, ResolvedRule>,
    /// Computers by id.
    pub computers: BTreeMap<ComputerId, Computer>,
    /// Packages by id (every package of a rule, and every assigned package).
    pub packages: BTreeMap<PackageId, Package>,
    /// Each computer's assignments (oldest first) and assignment revision.
    pub assignments: BTreeMap<ComputerId, (Vec<Assignment>, Revision)>,
    /// Each rule's existing jobs.
    jobs: BTreeMap<RuleId, RuleJobs>,
    /// The distinct snapshots of those jobs.
    snapshots: Snapshots,
}

/// A rule with its groups resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRule {
    /// The rule.
    pub rule: DeploymentRule,
    /// The members of its computer group, subgroups included, by hostname.
    pub computers: Vec<ComputerId>,
    /// The packages of its package group, subgroups included, in resolved order.
    pub packages: Vec<PackageId>,
}

impl RuleWorld {
    /// Resolves a store's snapshot, taking its jobs rather than copying them: the same world as
    /// [`from_snapshot`](Self::from_snapshot), with one copy of the jobs in memory instead of
    /// two while it is built (a rule's jobs can be a million).
    pub fn from_owned_snapshot(mut snapshot: RuleSnapshot) -> Self {
        let jobs = std::mem::take(&mut snapshot.jobs);
        let mut world = RuleWorld::from_snapshot(&snapshot);
        world.set_jobs(jobs);
        world
    }

    /// Resolves a store's snapshot.
    pub fn from_snapshot(snapshot: &RuleSnapshot) -> Self {
        let groups = &snapshot.deploy;
        let rules = snapshot
            .rules
            .iter()
            .map(|rule| {
                let computers = resolve_computer_group(
                    rule.computer_group,
                    &groups.computer_groups,
                    &groups.computer_group_members,
                    &groups.computers,
                );
                let packages = resolve_package_group(
                    rule.package_group,
                    &groups.package_groups,
                    &groups.package_group_members,
                );
                (
                    rule.id,
                    ResolvedRule {
                        rule: rule.clone(),
                        computers,
                        packages,
                    },
                )
            })
            .collect();
        let assignments = groups
            .computers
            .keys()
            .map(|&computer| {
                let list = groups
                    .assignments
                    .get(&computer)
                    .cloned()
                    .unwrap_or_default();
                let revision = snapshot
                    .assignment_revisions
                    .get(&computer)
                    .copied()
                    .unwrap_or_default();
                (computer, (list, revision))
            })
            .collect();
        let mut world = RuleWorld {
            rules,
            computers: groups.computers.clone(),
            packages: groups.packages.clone(),
            assignments,
            ..RuleWorld::default()
        };
        world.set_jobs(
            snapshot
                .jobs
                .iter()
                .filter(|job| matches!(job.origin, Origin::Rule(_)))
                .cloned(),
        );
        world
    }

    /// Replaces the rules' existing jobs with `jobs` (jobs of containers are left out).
    pub fn set_jobs(&mut self, jobs: impl IntoIterator<Item = Job>) {
        let mut by_rule: BTreeMap<RuleId, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            if let Origin::Rule(rule) = job.origin {
                by_rule.entry(rule).or_default().push(job);
            }
        }
        self.snapshots = Snapshots::default();
        self.jobs = by_rule
            .into_iter()
            .map(|(rule, jobs)| (rule, RuleJobs::new(jobs, &mut self.snapshots)))
            .collect();
    }

    /// The existing jobs of `rule` (none for a rule without jobs).
    pub fn jobs(&self, rule: RuleId) -> &RuleJobs {
        static NONE: RuleJobs = RuleJobs::EMPTY;
        self.jobs.get(&rule).unwrap_or(&NONE)
    }

    /// The claims of every enabled rule other than `except` on `computers`.
    pub fn claims(&self, except: RuleId, computers: impl Fn(ComputerId) -> bool) -> Claims {
        let mut claims = Claims::new();
        for (&id, resolved) in &self.rules {
            if id == except || !resolved.rule.enabled {
                continue;
            }
            for &computer in resolved.computers.iter().filter(|&&c| computers(c)) {
                let Some(pc) = self.computers.get(&computer) else {
                    continue;
                };
                let packages = resolved
                    .packages
                    .iter()
                    .filter_map(|p| self.packages.get(p));
                for package in desired_installs(pc, packages) {
                    claims.entry(computer).or_default().push((id, package));
                }
            }
        }
        claims
    }

    /// Evaluates rule `rule` for `scope` at `now`. A rule that no longer exists is retired: its
    /// jobs in scope are deleted or orphaned.
    pub fn evaluate(&self, rule: RuleId, scope: &Scope, now: DateTime<Utc>) -> RuleDiff {
        let existing = self.jobs(rule);
        let Some(resolved) = self.rules.get(&rule) else {
            let in_scope: Vec<Job> = jobs_in_scope(existing, scope).cloned().collect();
            return retire(rule, &in_scope, now);
        };
        let claims = self.claims(rule, |computer| scope.has_computer(computer));
        evaluate(
            &RuleInputs {
                rule: &resolved.rule,
                computers: &resolved.computers,
                packages: &resolved.packages,
                world: self,
                claims: &claims,
                conflicts_only: false,
            },
            scope,
            now,
        )
    }

    /// The conflicts [`evaluate`](Self::evaluate) of `rule` for `scope` reports, without
    /// merging jobs: the world needs no jobs (a snapshot of
    /// [`RulePart::without_jobs`](crate::store::RulePart::without_jobs) will do). Sorted; none
    /// for a rule the world does not have.
    pub fn conflicts_of(&self, rule: RuleId, scope: &Scope) -> Vec<Conflict> {
        let Some(resolved) = self.rules.get(&rule) else {
            return Vec::new();
        };
        let claims = self.claims(rule, |computer| scope.has_computer(computer));
        let inputs = RuleInputs {
            rule: &resolved.rule,
            computers: &resolved.computers,
            packages: &resolved.packages,
            world: self,
            claims: &claims,
            conflicts_only: true,
        };
        // The time only dates jobs, and none are made.
        evaluate(&inputs, scope, DateTime::<Utc>::UNIX_EPOCH).conflicts
    }

    /// Of `members` (every computer of `rule`), those where evaluating it can report a
    /// conflict, `others` giving each other rule's computers (the world's own member lists may
    /// be restricted to a part).
    ///
    /// A family conflict needs two versions of a family on one computer: within the rule's own
    /// packages, or with another enabled rule that has the computer and a package of the same
    /// family. A missing dependency needs a package depending on one outside the rule's group.
    /// So a rule whose packages are of distinct families and depend on nothing outside the group
    /// can have conflicts only on the computers it shares with such rules: often none, and the
    /// computers need not be read at all.
    pub fn conflict_candidates(
        &self,
        rule: RuleId,
        members: &BTreeSet<ComputerId>,
        others: &BTreeMap<RuleId, BTreeSet<ComputerId>>,
    ) -> BTreeSet<ComputerId> {
        let Some(resolved) = self.rules.get(&rule) else {
            return BTreeSet::new();
        };
        let packages: Vec<&Package> = resolved
            .packages
            .iter()
            .filter_map(|id| self.packages.get(id))
            .collect();
        let families: BTreeSet<FamilyId> = packages.iter().map(|p| p.family).collect();
        let in_group: BTreeSet<PackageId> = resolved.packages.iter().copied().collect();
        let outside_dependency = packages
            .iter()
            .any(|p| p.dependencies.iter().any(|d| !in_group.contains(d)));
        if families.len() != packages.len() || outside_dependency {
            return members.clone();
        }
        let mut candidates = BTreeSet::new();
        for (id, other) in &self.rules {
            let shares_family = other
                .packages
                .iter()
                .filter_map(|p| self.packages.get(p))
                .any(|p| families.contains(&p.family));
            if *id == rule || !other.rule.enabled || !shares_family {
                continue;
            }
            if let Some(computers) = others.get(id) {
                candidates.extend(members.intersection(computers).copied());
            }
        }
        candidates
    }
}

impl RuleWorld {
    /// Every family-version conflict among the enabled rules of this world, on every computer,
    /// sorted. The server builds the world as it would be after creating or enabling a rule, or
    /// adding a package to a group, and refuses the change when this lists a conflict the current
    /// world does not have.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut wanted: BTreeMap<ComputerId, Vec<(RuleId, PackageId)>> = BTreeMap::new();
        for (&id, resolved) in self.rules.iter().filter(|(_, r)| r.rule.enabled) {
            for computer in resolved
                .computers
                .iter()
                .filter_map(|c| self.computers.get(c))
            {
                let packages = resolved
                    .packages
                    .iter()
                    .filter_map(|p| self.packages.get(p));
                for package in desired_installs(computer, packages) {
                    wanted.entry(computer.id).or_default().push((id, package));
                }
            }
        }
        let mut conflicts = Vec::new();
        for (computer, claims) in wanted {
            let mut families: BTreeMap<FamilyId, BTreeMap<PackageId, BTreeSet<RuleId>>> =
                BTreeMap::new();
            for (rule, package) in claims {
                if let Some(p) = self.packages.get(&package) {
                    families
                        .entry(p.family)
                        .or_default()
                        .entry(package)
                        .or_default()
                        .insert(rule);
                }
            }
            for (family, versions) in families {
                if let Some(conflict) = version_conflict(computer, family, &versions, self) {
                    conflicts.push(conflict);
                }
            }
        }
        conflicts
    }
}

/// The conflict of `versions` of `family` desired on `computer`, if there are several and one of
/// them removes the others.
fn version_conflict(
    computer: ComputerId,
    family: FamilyId,
    versions: &BTreeMap<PackageId, BTreeSet<RuleId>>,
    world: &RuleWorld,
) -> Option<Conflict> {
    let removing = versions.keys().any(|id| {
        world
            .packages
            .get(id)
            .is_some_and(|p| p.upgrade_behavior.removes_others())
    });
    (versions.len() > 1 && removing).then(|| Conflict::FamilyVersions {
        computer,
        family,
        packages: versions.keys().copied().collect(),
        rules: versions
            .values()
            .flatten()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    })
}

/// What [`evaluate`] reads for one rule.
#[derive(Debug, Clone, Copy)]
struct RuleInputs<'a> {
    /// The rule.
    rule: &'a DeploymentRule,
    /// Its computers, by hostname.
    computers: &'a [ComputerId],
    /// Its packages, in resolved group order.
    packages: &'a [PackageId],
    /// Computers, packages, assignments and existing jobs.
    world: &'a RuleWorld,
    /// Other enabled rules' claims on the computers in scope.
    claims: &'a Claims,
    /// Only the conflicts are wanted: no job is merged, inserted or retired.
    conflicts_only: bool,
}

/// The packages of `packages` a rule desires as installed on `computer` (its compatible ones):
/// what the rule claims there for conflict detection.
pub fn desired_installs<'a>(
    computer: &Computer,
    packages: impl IntoIterator<Item = &'a Package>,
) -> Vec<PackageId> {
    packages
        .into_iter()
        .filter(|package| package.compatibility.allows(computer))
        .map(|package| package.id)
        .collect()
}

/// Evaluates one rule for `scope`: desired jobs merged with existing ones.
///
/// Desired jobs, per computer of the rule (in scope) with a sequence counter from 1, for each
/// package in group order: not compatible → an Incompatible install job; assigned → an
/// AlreadyInstalled install job; else, with explicit-uninstall, a Waiting uninstall job for every
/// other assigned version of the family (oldest first), then a Waiting install job. Families in
/// conflict on a computer get no jobs there. The merge with existing jobs (key: computer,
/// package, kind) follows the table of the docs: running jobs are never changed (orphaned when no
/// longer desired), and the sequence of every other job is refreshed.
fn evaluate(inputs: &RuleInputs<'_>, scope: &Scope, now: DateTime<Utc>) -> RuleDiff {
    let world = inputs.world;
    let existing = world.jobs(inputs.rule.id);
    let rule_id = inputs.rule.id;
    let in_group: BTreeSet<PackageId> = inputs.packages.iter().copied().collect();
    let mut diff = RuleDiff::empty(rule_id, now);

    let in_family_scope = |package: PackageId| {
        scope.families.is_none()
            || world
                .packages
                .get(&package)
                .is_none_or(|p| scope.has_family(p.family))
    };
    let members = computers_in_scope(inputs.computers, scope);
    let facts = RuleFacts::new(inputs.packages, world);
    let mut compatibility: BTreeMap<(&str, &str, &str), Vec<bool>> = BTreeMap::new();

    // Computers in scope that have jobs but are no longer members: nothing is desired there.
    let member_set: BTreeSet<ComputerId> = members.iter().copied().collect();
    let mut leftover: Vec<&Job> = Vec::new();
    for computer in computers_with_jobs_in_scope(existing, scope) {
        if !member_set.contains(&computer) {
            let (jobs, keys) = existing.keyed_on(computer);
            leftover.extend(
                jobs.iter()
                    .zip(keys)
                    .filter(|(_, key)| in_family_scope(key.package))
                    .map(|(job, _)| job),
            );
        }
    }

    // A first evaluation inserts a job per member and package: reserve once instead of growing
    // a vector of millions step by step.
    if existing.is_empty() && !inputs.conflicts_only {
        diff.insert
            .reserve(members.len().saturating_mul(facts.packages.len()));
    }

    // Buffers reused from computer to computer.
    let mut desired: Vec<Desired<'_>> = Vec::new();
    let mut installed: Vec<bool> = Vec::new();
    let mut matched: Vec<bool> = Vec::new();

    for computer_id in members {
        let Some(computer) = world.computers.get(&computer_id) else {
            continue;
        };
        let (assignments, revision) = world
            .assignments
            .get(&computer_id)
            .map_or((&[][..], Revision::default()), |(list, revision)| {
                (list.as_slice(), *revision)
            });
        diff.assignments_read.push((computer_id, revision));

        // Compatibility depends only on the computer's platform: worked out once per platform.
        let platform = (
            computer.os.trim(),
            computer.os_version.trim(),
            computer.architecture.trim(),
        );
        let compatible = compatibility.entry(platform).or_insert_with(|| {
            facts
                .packages
                .iter()
                .map(|p| p.compatibility.allows(computer))
                .collect()
        });
        facts.mark_installed(assignments, &mut installed);
        desired_jobs(
            &facts,
            compatible,
            assignments,
            &installed,
            world,
            &mut desired,
        );
        let claimed = inputs
            .claims
            .get(&computer_id)
            .is_some_and(|c| !c.is_empty());
        if claimed || !facts.distinct_families {
            let conflicted = family_conflicts(rule_id, computer, &desired, inputs.claims, world);
            for (family, conflict) in conflicted {
                desired.retain(|d| d.family != family);
                diff.conflicts.push(conflict);
            }
        }
        for d in desired
            .iter()
            .filter(|d| d.kind == JobKind::Install && d.state == JobState::Waiting)
        {
            for &dependency in &d.source.dependencies {
                let installed = assignments.iter().any(|a| a.package == dependency);
                if !in_group.contains(&dependency) && !installed {
                    diff.conflicts.push(Conflict::MissingDependency {
                        computer: computer_id,
                        package: d.package,
                        dependency,
                    });
                }
            }
        }

        if inputs.conflicts_only {
            continue;
        }

        // This computer's existing jobs, by (package, kind, id). A desired job in family scope
        // only matches jobs of its package, in scope too.
        let (jobs, keys) = existing.keyed_on(computer_id);
        matched.clear();
        matched.resize(keys.len(), false);
        let mut next = 0;

        // Sequences count every desired job of the computer, in scope or not.
        for (sequence, d) in (1..).zip(desired.iter()) {
            if !scope.has_family(d.family) {
                continue;
            }
            let package = d.source;
            // Package groups usually list packages in the order they were created, so the job
            // after the last one matched is tried first: then matching is a merge, not a search.
            let wanted = (d.package, d.kind);
            let found = match keys.get(next) {
                Some(key) if (key.package, key.kind) == wanted && !matched[next] => Some(next),
                _ => keys
                    .binary_search_by(|key| (key.package, key.kind).cmp(&wanted))
                    .ok()
                    .filter(|&i| !matched[i]),
            };
            next = found.map_or(next, |i| i + 1);
            match found {
                None => diff.insert.push(NewJob {
                    computer: computer_id,
                    package: package.id,
                    kind: d.kind,
                    sequence,
                    state: d.state,
                }),
                Some(i) => {
                    matched[i] = true;
                    merge(&jobs[i], keys[i], package, d, sequence, now, &mut diff);
                }
            }
        }
        leftover.extend(
            jobs.iter()
                .zip(keys)
                .zip(&matched)
                .filter(|((_, key), &m)| !m && in_family_scope(key.package))
                .map(|((job, _), _)| job),
        );
    }

    // Whatever existing job in scope is left is no longer desired.
    if inputs.conflicts_only {
        leftover.clear();
    }
    leftover.sort_unstable_by_key(|job| job.id);
    for job in leftover {
        diff.unwant(job);
    }
    diff.conflicts.sort();
    diff.conflicts.dedup();
    diff
}

/// The rule's computers in `scope`, in the rule's order. A small scope is looked up in the
/// rule's list rather than the list filtered by the scope (one computer joining a group of
/// thousands).
fn computers_in_scope(computers: &[ComputerId], scope: &Scope) -> Vec<ComputerId> {
    match &scope.computers {
        Some(set) if set.len().saturating_mul(64) < computers.len() => {
            let mut found: Vec<(usize, ComputerId)> = set
                .iter()
                .filter_map(|c| computers.iter().position(|m| m == c).map(|i| (i, *c)))
                .collect();
            found.sort_unstable();
            found.into_iter().map(|(_, c)| c).collect()
        }
        _ => computers
            .iter()
            .copied()
            .filter(|&c| scope.has_computer(c))
            .collect(),
    }
}

/// The computers in `scope` that have jobs.
fn computers_with_jobs_in_scope<'a>(
    jobs: &'a RuleJobs,
    scope: &'a Scope,
) -> Box<dyn Iterator<Item = ComputerId> + 'a> {
    match &scope.computers {
        None => Box::new(jobs.computers()),
        Some(computers) => Box::new(
            computers
                .iter()
                .copied()
                .filter(|&computer| !jobs.on(computer).is_empty()),
        ),
    }
}

/// The jobs of the computers in `scope` (families are filtered by the caller).
fn jobs_in_scope<'a>(jobs: &'a RuleJobs, scope: &'a Scope) -> impl Iterator<Item = &'a Job> + 'a {
    computers_with_jobs_in_scope(jobs, scope).flat_map(|computer| jobs.on(computer))
}

/// A desired job, before numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Desired<'a> {
    package: PackageId,
    family: FamilyId,
    kind: JobKind,
    /// Waiting, Incompatible or AlreadyInstalled.
    state: JobState,
    source: &'a Package,
    /// The number of the snapshot a job would take from `source` now, if an existing job has it.
    snapshot: Option<u32>,
}

/// What [`evaluate`] works out once per rule rather than once per computer.
struct RuleFacts<'a> {
    /// The rule's packages, in order.
    packages: Vec<&'a Package>,
    /// The number of each package's current install snapshot, if an existing job has it.
    install_snapshots: Vec<Option<u32>>,
    /// Each package with its index in `packages`, by id.
    by_id: Vec<(PackageId, usize)>,
    /// Whether no two of them share a family (then only other rules' claims can conflict).
    distinct_families: bool,
    /// Whether one has explicit-uninstall (then desired jobs can repeat and are de-duplicated).
    explicit_uninstall: bool,
}

impl<'a> RuleFacts<'a> {
    fn new(packages: &[PackageId], world: &'a RuleWorld) -> Self {
        let packages: Vec<&Package> = packages
            .iter()
            .filter_map(|id| world.packages.get(id))
            .collect();
        let families: BTreeSet<FamilyId> = packages.iter().map(|p| p.family).collect();
        let mut by_id: Vec<(PackageId, usize)> = packages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        by_id.sort_unstable();
        RuleFacts {
            by_id,
            install_snapshots: packages
                .iter()
                .map(|p| world.snapshots.current(p, JobKind::Install))
                .collect(),
            distinct_families: families.len() == packages.len(),
            explicit_uninstall: packages
                .iter()
                .any(|p| p.upgrade_behavior == UpgradeBehavior::ExplicitUninstall),
            packages,
        }
    }
}

impl RuleFacts<'_> {
    /// Sets `installed[i]` to whether the rule's `i`-th package is among `assignments`: one
    /// search per assignment rather than one per package.
    fn mark_installed(&self, assignments: &[Assignment], installed: &mut Vec<bool>) {
        installed.clear();
        installed.resize(self.packages.len(), false);
        for assignment in assignments {
            let start = self
                .by_id
                .partition_point(|&(id, _)| id < assignment.package);
            for &(_, i) in self.by_id[start..]
                .iter()
                .take_while(|&&(id, _)| id == assignment.package)
            {
                installed[i] = true;
            }
        }
    }
}

/// The rule's desired jobs on one computer; `compatible[i]` and `installed[i]` say whether the
/// rule's `i`-th package fits the computer and is installed there.
fn desired_jobs<'a>(
    facts: &RuleFacts<'a>,
    compatible: &[bool],
    assignments: &[Assignment],
    installed: &[bool],
    world: &'a RuleWorld,
    desired: &mut Vec<Desired<'a>>,
) {
    desired.clear();
    let mut seen: BTreeSet<(PackageId, JobKind)> = BTreeSet::new();
    // Without explicit uninstall every desired job is a distinct package's install.
    let dedupe = facts.explicit_uninstall;
    let mut push = |d: Desired<'a>, desired: &mut Vec<Desired<'a>>| {
        if !dedupe || seen.insert((d.package, d.kind)) {
            desired.push(d);
        }
    };
    for (((&package, &fits), &snapshot), &installed) in facts
        .packages
        .iter()
        .zip(compatible)
        .zip(&facts.install_snapshots)
        .zip(installed)
    {
        let install = |state| Desired {
            package: package.id,
            family: package.family,
            kind: JobKind::Install,
            state,
            source: package,
            snapshot,
        };
        if !fits {
            push(install(JobState::Incompatible), desired);
        } else if installed {
            push(install(JobState::AlreadyInstalled), desired);
        } else {
            if package.upgrade_behavior == UpgradeBehavior::ExplicitUninstall {
                // `assignments` are oldest first.
                for other in assignments
                    .iter()
                    .filter_map(|a| world.packages.get(&a.package))
                    .filter(|other| other.family == package.family && other.id != package.id)
                {
                    push(
                        Desired {
                            package: other.id,
                            family: other.family,
                            kind: JobKind::Uninstall,
                            state: JobState::Waiting,
                            source: other,
                            snapshot: world.snapshots.current(other, JobKind::Uninstall),
                        },
                        desired,
                    );
                }
            }
            push(install(JobState::Waiting), desired);
        }
    }
}

/// The families in conflict on `computer`, with the conflict to report.
fn family_conflicts(
    rule: RuleId,
    computer: &Computer,
    desired: &[Desired],
    claims: &Claims,
    world: &RuleWorld,
) -> Vec<(FamilyId, Conflict)> {
    // Family → package → rules desiring it installed.
    let mut wanted: BTreeMap<FamilyId, BTreeMap<PackageId, BTreeSet<RuleId>>> = BTreeMap::new();
    for d in desired.iter().filter(|d| {
        d.kind == JobKind::Install
            && matches!(d.state, JobState::Waiting | JobState::AlreadyInstalled)
    }) {
        wanted
            .entry(d.family)
            .or_default()
            .entry(d.package)
            .or_default()
            .insert(rule);
    }
    let ours: BTreeSet<FamilyId> = wanted.keys().copied().collect();
    for &(other_rule, package) in claims.get(&computer.id).map_or(&[][..], Vec::as_slice) {
        let Some(package) = world.packages.get(&package) else {
            continue;
        };
        if ours.contains(&package.family) {
            wanted
                .entry(package.family)
                .or_default()
                .entry(package.id)
                .or_default()
                .insert(other_rule);
        }
    }
    wanted
        .into_iter()
        .filter_map(|(family, versions)| {
            version_conflict(computer.id, family, &versions, world).map(|c| (family, c))
        })
        .collect()
}

/// Merges an existing job (`key` is its compact form) with what is desired for its key, by the
/// merge table.
fn merge(
    job: &Job,
    key: Key,
    package: &Package,
    desired: &Desired,
    sequence: u32,
    now: DateTime<Utc>,
    diff: &mut RuleDiff,
) {
    if key.state.is_running() {
        // Never changed in any way; only a leftover orphan mark is taken back.
        if key.orphaned {
            let mut kept = job.clone();
            kept.orphaned = false;
            diff.update.push(JobUpdate {
                expected: job.revision,
                job: kept,
            });
        }
        return;
    }
    if key.sequence == sequence && merge_keeps(key, desired) {
        return;
    }
    let mut next = job.clone();
    next.sequence = sequence;
    match (job.state, desired.state) {
        // Refresh the snapshot of a Waiting job.
        (JobState::Waiting, JobState::Waiting) => {
            next.snapshot = JobSnapshot::of(package, job.kind);
        }
        // Re-install, or a package that became compatible or is no longer installed.
        (
            JobState::Succeeded | JobState::Incompatible | JobState::AlreadyInstalled,
            JobState::Waiting,
        ) => reset(&mut next, package),
        (
            JobState::Waiting | JobState::Succeeded | JobState::Failed | JobState::Expired,
            JobState::Incompatible,
        ) => {
            next.finalize_by_server(ServerFinal::Incompatible, now);
        }
        (JobState::Waiting | JobState::Failed | JobState::Expired, JobState::AlreadyInstalled) => {
            next.finalize_by_server(ServerFinal::AlreadyInstalled, now);
        }
        // Everything else is kept: Failed/Expired wait for an administrator's renew; Succeeded,
        // Incompatible and AlreadyInstalled stay as they are.
        _ => {}
    }
    if next != *job {
        diff.update.push(JobUpdate {
            expected: job.revision,
            job: next,
        });
    }
}

/// Whether the merge table leaves the job of `key` as it is (its sequence aside), decided from
/// the key alone: the common case of a rule that is up to date.
fn merge_keeps(key: Key, desired: &Desired) -> bool {
    match (key.state, desired.state) {
        (JobState::Waiting, JobState::Waiting) => desired.snapshot == Some(key.snapshot),
        (
            JobState::Succeeded | JobState::Incompatible | JobState::AlreadyInstalled,
            JobState::Waiting,
        ) => false,
        (
            JobState::Waiting | JobState::Succeeded | JobState::Failed | JobState::Expired,
            JobState::Incompatible,
        ) => false,
        (JobState::Waiting | JobState::Failed | JobState::Expired, JobState::AlreadyInstalled) => {
            false
        }
        _ => true,
    }
}

/// Resets a finished job to Waiting for another run, with a fresh snapshot and the next attempt
/// (so late reports for the earlier run are told apart).
fn reset(job: &mut Job, package: &Package) {
    job.state = JobState::Waiting;
    job.snapshot = JobSnapshot::of(package, job.kind);
    job.download_progress = None;
    job.return_code = None;
    job.output.clear();
    job.message = None;
    job.download_started = None;
    job.execution_started = None;
    job.finished = None;
    job.last_report = None;
    job.wol_shutdown = None;
    job.orphaned = false;
    job.attempt = job.attempt.saturating_add(1);
}

/// The diff that retires a rule being deleted: its jobs that are not running are deleted, its
/// running ones orphaned (deleted at their final report). The rule itself can go once it has no
/// jobs left.
pub fn retire(rule: RuleId, jobs: &[Job], now: DateTime<Utc>) -> RuleDiff {
    let mut diff = RuleDiff::empty(rule, now);
    for job in jobs.iter().filter(|job| job.origin == Origin::Rule(rule)) {
        diff.unwant(job);
    }
    diff
}

/// A change that may call for rule re-evaluation (the trigger table of the docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum RuleEvent {
    /// An assignment of the computer was added or removed (by an agent report or by hand).
    AssignmentsChanged {
        /// The computer.
        computer: ComputerId,
    },
    /// The computer's os, os version or architecture changed.
    ComputerChanged {
        /// The computer.
        computer: ComputerId,
    },
    /// The computer was deleted (its jobs are deleted, running ones orphaned).
    ComputerDeleted {
        /// The computer.
        computer: ComputerId,
    },
    /// Computers joined or left a computer group, or a computer group was moved, created or
    /// deleted.
    ComputerGroupsChanged {
        /// The computers concerned, when the caller knows them (those that joined or left; the
        /// members of a moved group): only they are re-evaluated, without comparing the worlds.
        /// `None` compares every rule's members before and after.
        computers: Option<Vec<ComputerId>>,
    },
    /// Packages joined, left or were reordered in a package group, or a package group was moved.
    PackageGroupsChanged,
    /// A package was edited (procedure, codes, compatibility, payload, upgrade behaviour).
    PackageEdited {
        /// The package.
        package: PackageId,
    },
    /// A rule was created, edited, enabled, disabled or deleted.
    RuleChanged {
        /// The rule.
        rule: RuleId,
    },
}

impl RuleEvent {
    /// The part of the world the event concerns when the event alone says it: the computers it
    /// names. `None` (the whole world) for the events whose part takes knowing the change
    /// ([`RuleEvent::PackageEdited`], and group and rule changes without computers of their own).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::model::ComputerId;
    /// use oco_core::rules::RuleEvent;
    ///
    /// let event = RuleEvent::AssignmentsChanged { computer: ComputerId(7) };
    /// assert!(event.part().is_some_and(|part| part.computers.contains(&ComputerId(7))));
    /// assert!(RuleEvent::PackageGroupsChanged.part().is_none());
    /// ```
    pub fn part(&self) -> Option<RulePart> {
        match self {
            RuleEvent::AssignmentsChanged { computer }
            | RuleEvent::ComputerChanged { computer }
            | RuleEvent::ComputerDeleted { computer } => Some(RulePart::computers([*computer])),
            RuleEvent::ComputerGroupsChanged {
                computers: Some(computers),
            } => Some(RulePart::computers(computers.iter().copied())),
            _ => None,
        }
    }
}

/// Which rules to re-evaluate after `event`, and for what scope, given the world before and
/// after the change.
///
/// - A change on one computer (assignments, os or architecture, deletion) re-evaluates every
///   rule that has (or had) the computer, for that computer: its own jobs and, through claims,
///   conflicts with other rules there.
/// - Structural changes (groups, packages, rules) compare the two worlds: a rule whose fields,
///   package list or packages changed is re-evaluated fully; a rule whose members changed, for the
///   computers that joined or left. Every computer touched so is also re-evaluated by every
///   other rule that has it, since claims there may have appeared or vanished.
///
/// Scopes never narrow to families: a package's position shifts the sequence numbers of the jobs
/// after it, so the rest of the computer's jobs are refreshed too.
pub fn scopes_for(
    event: &RuleEvent,
    before: &RuleWorld,
    after: &RuleWorld,
) -> BTreeMap<RuleId, Scope> {
    let mut full: BTreeSet<RuleId> = BTreeSet::new();
    let mut touched: BTreeMap<RuleId, BTreeSet<ComputerId>> = BTreeMap::new();
    let mut touched_computers: BTreeSet<ComputerId> = BTreeSet::new();

    match event {
        RuleEvent::AssignmentsChanged { computer }
        | RuleEvent::ComputerChanged { computer }
        | RuleEvent::ComputerDeleted { computer } => {
            touched_computers.insert(*computer);
        }
        RuleEvent::ComputerGroupsChanged {
            computers: Some(computers),
        } => {
            touched_computers.extend(computers.iter().copied());
        }
        RuleEvent::ComputerGroupsChanged { computers: None }
        | RuleEvent::PackageGroupsChanged
        | RuleEvent::PackageEdited { .. }
        | RuleEvent::RuleChanged { .. } => {
            let ids: BTreeSet<RuleId> = before
                .rules
                .keys()
                .chain(after.rules.keys())
                .copied()
                .collect();
            for id in ids {
                let (old, new) = (before.rules.get(&id), after.rules.get(&id));
                let members = |rule: Option<&ResolvedRule>| -> BTreeSet<ComputerId> {
                    rule.map(|r| r.computers.iter().copied().collect())
                        .unwrap_or_default()
                };
                let (old_members, new_members) = (members(old), members(new));
                let edited = |p: &PackageId| before.packages.get(p) != after.packages.get(p);
                // Its packages, and for an edited package the packages its jobs snapshot
                // (uninstall jobs of other versions are of packages outside the group).
                let packages_changed = |r: &ResolvedRule| {
                    r.packages.iter().any(edited)
                        || matches!(event, RuleEvent::PackageEdited { package }
                        if edited(package) && after.jobs(id).has_package(*package))
                };
                let definition_changed = match (old, new) {
                    (Some(old), Some(new)) => {
                        old.rule != new.rule
                            || old.packages != new.packages
                            || packages_changed(new)
                    }
                    _ => true,
                };
                if definition_changed {
                    full.insert(id);
                    touched_computers.extend(old_members.union(&new_members).copied());
                } else {
                    let moved: BTreeSet<ComputerId> = old_members
                        .symmetric_difference(&new_members)
                        .copied()
                        .collect();
                    touched_computers.extend(moved.iter().copied());
                    touched.entry(id).or_default().extend(moved);
                }
            }
        }
    }

    // Every rule having a touched computer re-evaluates it.
    let scope = Scope {
        computers: Some(touched_computers),
        families: None,
    };
    for world in [before, after] {
        for (&id, rule) in &world.rules {
            let mine = computers_in_scope(&rule.computers, &scope);
            touched.entry(id).or_default().extend(mine);
        }
    }
    let mut scopes: BTreeMap<RuleId, Scope> = BTreeMap::new();
    for id in full {
        scopes.insert(id, Scope::full());
    }
    for (id, computers) in touched {
        if !computers.is_empty() && !scopes.contains_key(&id) {
            scopes.insert(id, Scope::computers(computers));
        }
    }
    scopes
}
