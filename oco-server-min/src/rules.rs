//! Rule re-evaluation after a change: the trigger table of the core, applied.
//!
//! The caller works out the part of the world its change concerns (a [`RulePart`]: the
//! computers that may join or leave a rule or see its packages change, and the rules whose every
//! job is read), reads it before its change ([`read_world`]), makes the change, and calls
//! [`reevaluate_in`] with the event: the same part is read again, [`scopes_for`] says which rules
//! to evaluate for which computers, and each diff is applied. A diff that loses a
//! compare-and-set race (an agent report moved a job meanwhile) is recomputed from a fresh read.
//! These are blocking store calls: run them off the async threads.
//!
//! What each change reads, so that its cost follows the change and not the database:
//!
//! - a computer's assignments, platform or deletion: that computer ([`part_of_event`]);
//! - computers joining or leaving a computer group: those computers;
//! - a computer group moved: the members of it and its subgroups ([`computer_group_members`]);
//!   an empty group reads no computer and no job;
//! - a rule created, edited or deleted: the members of its computer group before and after,
//!   and every job of the rule ([`rules_part`]);
//! - a package group changed or moved: the same for every rule whose package group contains it,
//!   before or after ([`package_group_part`]).
//!
//! Every rule, every group and the rules' packages are always read: they are few.
//!
//! A part with every job of a rule, or with more than [`CHUNK_COMPUTERS`] computers, is not read
//! whole: the rules' definitions are read without jobs (enough to say which rules to evaluate
//! for which computers), then the computers that matter (the part's, and every computer where a
//! rule of the part has jobs, [`Store::rule_job_computers`]) are evaluated a chunk at a time,
//! each chunk read, evaluated, applied and dropped before the next. Evaluation is per computer
//! (a computer's jobs, sequences, claims and conflicts depend on that computer alone), so the
//! chunks together give what one evaluation of the whole part gives, and a rule of a million
//! jobs takes the memory of a chunk's jobs, not of its million.

use std::collections::{BTreeMap, BTreeSet};

use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{
    ComputerGroup, ComputerGroupId, ComputerId, DeploymentRule, PackageGroup, PackageGroupId,
    RuleId,
};
use oco_core::rules::{scopes_for, Conflict, RuleDiff, RuleEvent, RuleWorld, Scope};
use oco_core::store::{RulePart, RuleSnapshot, Store, StoreError, StoreResult};
use serde::Serialize;

/// How many times a diff is recomputed after losing a race before the error is returned.
const ATTEMPTS: usize = 5;

/// How many computers a re-evaluation over many computers reads and evaluates at a time. A chunk
/// holds every rule's jobs on its computers: on the load generator's seed (50 jobs a computer)
/// some 50,000 jobs, a few tens of MiB, however many jobs the rule has; and each chunk reads
/// the rules and groups again, which is cheap next to a thousand computers' jobs.
pub const CHUNK_COMPUTERS: usize = 1_000;

/// What re-evaluating one rule wrote and found, summed over the chunks it was evaluated in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluated {
    /// The rule.
    pub rule: RuleId,
    /// Jobs inserted.
    pub inserted: usize,
    /// Jobs updated.
    pub updated: usize,
    /// Jobs deleted.
    pub deleted: usize,
    /// Running jobs marked orphaned.
    pub orphaned: usize,
    /// Conflicts and missing dependencies found, sorted.
    pub conflicts: Vec<Conflict>,
}

impl Evaluated {
    /// Nothing yet for `rule`.
    fn new(rule: RuleId) -> Self {
        Evaluated {
            rule,
            inserted: 0,
            updated: 0,
            deleted: 0,
            orphaned: 0,
            conflicts: Vec::new(),
        }
    }

    /// Adds what another evaluation of the rule (another chunk's) did.
    fn merge(&mut self, other: Evaluated) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.orphaned += other.orphaned;
        self.conflicts.extend(other.conflicts);
    }

    /// Sorts the conflicts, as one evaluation reports them.
    fn finish(mut self) -> Self {
        self.conflicts.sort();
        self.conflicts.dedup();
        self
    }
}

impl From<&RuleDiff> for Evaluated {
    fn from(diff: &RuleDiff) -> Self {
        Evaluated {
            rule: diff.rule,
            inserted: diff.insert.len(),
            updated: diff.update.len(),
            deleted: diff.delete.len(),
            orphaned: diff.orphan.len(),
            conflicts: diff.conflicts.clone(),
        }
        .finish()
    }
}

/// The part of the world `event` concerns when the event alone says it: the computers it names.
/// `None` (the whole world) for the events whose part takes knowing the change
/// ([`RuleEvent::PackageEdited`], and group and rule changes without a part of their own).
pub fn part_of_event(event: &RuleEvent) -> Option<RulePart> {
    match event {
        RuleEvent::AssignmentsChanged { computer }
        | RuleEvent::ComputerChanged { computer }
        | RuleEvent::ComputerDeleted { computer } => Some(RulePart::computers([*computer])),
        RuleEvent::ComputerGroupsChanged {
            computers: Some(computers),
        } => Some(RulePart::computers(computers.iter().copied())),
        _ => None,
    }
}

/// The rule snapshot of `part`, or the whole one for `None`.
///
/// # Errors
///
/// The store's.
pub fn read_snapshot(store: &dyn Store, part: Option<&RulePart>) -> StoreResult<RuleSnapshot> {
    match part {
        Some(part) => store.rule_snapshot_part(part),
        None => store.rule_snapshot(),
    }
}

/// The rule world of `part`, or the whole one for `None`.
///
/// # Errors
///
/// The store's.
pub fn read_world(store: &dyn Store, part: Option<&RulePart>) -> StoreResult<RuleWorld> {
    Ok(RuleWorld::from_owned_snapshot(read_snapshot(store, part)?))
}

/// The part of the world `event` can concern ([`part_of_event`]), read.
///
/// # Errors
///
/// The store's.
pub fn world_for(store: &dyn Store, event: &RuleEvent) -> StoreResult<RuleWorld> {
    read_world(store, part_of_event(event).as_ref())
}

/// [`reevaluate_in`] the part of the world the event alone names ([`part_of_event`]).
///
/// # Errors
///
/// As [`reevaluate_in`].
pub fn reevaluate(
    store: &dyn Store,
    event: &RuleEvent,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    reevaluate_in(store, event, part_of_event(event).as_ref(), before, now)
}

/// Re-evaluates what `event` calls for, `before` being [`read_world`] of `part` read before the
/// change (its jobs are not needed: [`RulePart::without_jobs`] of `part` will do), and applies
/// each diff. Returns what each rule's evaluation did (conflicts found included).
///
/// `part` must hold every computer whose rules the change can alter (it is read again after
/// the change, and only its computers are re-evaluated) and every rule evaluated in full. A part
/// with a rule's every job or more than [`CHUNK_COMPUTERS`] computers is evaluated
/// [`CHUNK_COMPUTERS`] computers at a time.
///
/// # Errors
///
/// The store's; [`StoreError::Conflict`] if a diff lost its race `ATTEMPTS` (5) times.
pub fn reevaluate_in(
    store: &dyn Store,
    event: &RuleEvent,
    part: Option<&RulePart>,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    reevaluate_in_chunks(store, event, part, before, now, CHUNK_COMPUTERS)
}

/// [`reevaluate_in`], `chunk` computers at a time (at least one) when the part has a rule's
/// every job or more than `chunk` computers.
///
/// # Errors
///
/// As [`reevaluate_in`].
pub fn reevaluate_in_chunks(
    store: &dyn Store,
    event: &RuleEvent,
    part: Option<&RulePart>,
    before: &RuleWorld,
    now: DateTime<Utc>,
    chunk: usize,
) -> StoreResult<Vec<Evaluated>> {
    let chunked = part
        .filter(|part| part.jobs && (!part.rule_jobs.is_empty() || part.computers.len() > chunk));
    let Some(part) = chunked else {
        // A small part: read once.
        let after = read_world(store, part)?;
        let scopes = scopes_for(event, before, &after);
        let mut applied = Vec::with_capacity(scopes.len());
        for (rule, scope) in scopes {
            applied.push(apply_evaluation(store, part, &after, rule, &scope, now)?);
        }
        return Ok(applied);
    };
    let scopes = {
        let after = read_world(store, Some(&part.clone().without_jobs()))?;
        scopes_for(event, before, &after)
    };
    let mut computers = part.computers.clone();
    for &rule in &part.rule_jobs {
        computers.extend(store.rule_job_computers(rule)?);
    }
    evaluate_in_chunks(store, &scopes, &computers, now, chunk)
}

/// Evaluates rule `rule` in full and applies the diff, `chunk` computers at a time (at least
/// one): the members of its computer group and the computers where it has jobs (a rule being
/// deleted is retired wherever its jobs are). Returns what the evaluation did.
///
/// # Errors
///
/// The store's; [`StoreError::Conflict`] if a chunk's diff lost its race `ATTEMPTS` (5) times.
pub fn evaluate_rule_in_chunks(
    store: &dyn Store,
    rule: &DeploymentRule,
    now: DateTime<Utc>,
    chunk: usize,
) -> StoreResult<Evaluated> {
    let mut computers = computer_group_members(store, rule.computer_group)?;
    computers.extend(store.rule_job_computers(rule.id)?);
    let scopes = BTreeMap::from([(rule.id, Scope::full())]);
    let mut evaluated = evaluate_in_chunks(store, &scopes, &computers, now, chunk)?;
    Ok(evaluated.pop().unwrap_or_else(|| Evaluated::new(rule.id)))
}

/// Evaluates in full every rule of the store and every rule of `also` (rules that no longer exist
/// are retired), and applies each diff, [`CHUNK_COMPUTERS`] computers at a time: the members of
/// every rule's computer group and the computers where one of the rules has jobs.
///
/// # Errors
///
/// The store's; [`StoreError::Conflict`] if a chunk's diff lost its race `ATTEMPTS` (5) times.
pub fn evaluate_rules_fully(
    store: &dyn Store,
    also: impl IntoIterator<Item = RuleId>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    // Every rule and group, no computer and no job.
    let rules = store.rule_snapshot_part(&RulePart::default())?.rules;
    let groups = store.computer_groups()?;
    let mut computers = members_in(&groups, rules.iter().map(|rule| rule.computer_group));
    let ids: BTreeSet<RuleId> = rules.iter().map(|rule| rule.id).chain(also).collect();
    for &rule in &ids {
        computers.extend(store.rule_job_computers(rule)?);
    }
    let scopes = ids.into_iter().map(|rule| (rule, Scope::full())).collect();
    evaluate_in_chunks(store, &scopes, &computers, now, CHUNK_COMPUTERS)
}

/// Evaluates each rule of `scopes` for its scope, restricted to `computers` (which must hold
/// every computer of the scopes, and every computer where a rule of a full scope has jobs),
/// `chunk` computers at a time (at least one): each chunk's part of the world is read, every
/// rule evaluated on it and its diff applied, then the chunk is dropped.
fn evaluate_in_chunks(
    store: &dyn Store,
    scopes: &BTreeMap<RuleId, Scope>,
    computers: &BTreeSet<ComputerId>,
    now: DateTime<Utc>,
    chunk: usize,
) -> StoreResult<Vec<Evaluated>> {
    let mut evaluated: BTreeMap<RuleId, Evaluated> = scopes
        .keys()
        .map(|&rule| (rule, Evaluated::new(rule)))
        .collect();
    let computers: Vec<ComputerId> = computers.iter().copied().collect();
    for chunk in computers.chunks(chunk.max(1)) {
        let part = RulePart::computers(chunk.iter().copied());
        let world = read_world(store, Some(&part))?;
        for (&rule, scope) in scopes {
            let scope = Scope {
                computers: Some(
                    chunk
                        .iter()
                        .copied()
                        .filter(|&computer| scope.has_computer(computer))
                        .collect(),
                ),
                families: scope.families.clone(),
            };
            if scope.computers.as_ref().is_some_and(BTreeSet::is_empty) {
                continue;
            }
            let done = apply_evaluation(store, Some(&part), &world, rule, &scope, now)?;
            if let Some(total) = evaluated.get_mut(&rule) {
                total.merge(done);
            }
        }
    }
    Ok(evaluated.into_values().map(Evaluated::finish).collect())
}

/// Evaluates `rule` for `scope` on `world` (read from `part`) and applies the diff; a diff that
/// loses a race is recomputed on `part` read again. An empty diff writes nothing.
fn apply_evaluation(
    store: &dyn Store,
    part: Option<&RulePart>,
    world: &RuleWorld,
    rule: RuleId,
    scope: &Scope,
    now: DateTime<Utc>,
) -> StoreResult<Evaluated> {
    let mut fresh = None;
    let mut attempt = 0;
    loop {
        let current = fresh.as_ref().unwrap_or(world);
        let diff = current.evaluate(rule, scope, now);
        if diff.is_empty() {
            return Ok(Evaluated::from(&diff));
        }
        let evaluated = Evaluated::from(&diff);
        match store.apply(&diff.into_change_set()) {
            Ok(_) => return Ok(evaluated),
            Err(StoreError::Conflict { .. }) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                fresh = Some(read_world(store, part)?);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Every computer in computer group `group` or one of its subgroups (none for an unknown group).
///
/// # Errors
///
/// The store's.
pub fn computer_group_members(
    store: &dyn Store,
    group: ComputerGroupId,
) -> StoreResult<BTreeSet<ComputerId>> {
    let groups = store.computer_groups()?;
    Ok(members_in(&groups, [group]))
}

/// The computers of each of `rules` (the members of its computer group and its subgroups).
///
/// # Errors
///
/// The store's.
pub fn rule_members(
    store: &dyn Store,
    rules: &[&DeploymentRule],
) -> StoreResult<BTreeMap<RuleId, BTreeSet<ComputerId>>> {
    let groups = store.computer_groups()?;
    Ok(rules
        .iter()
        .map(|rule| (rule.id, members_in(&groups, [rule.computer_group])))
        .collect())
}

/// The part a change of `rules` concerns (a rule created, edited or deleted: give each version
/// it has before and after): the members of their computer groups, and every job of the rules.
///
/// # Errors
///
/// The store's.
pub fn rules_part(store: &dyn Store, rules: &[&DeploymentRule]) -> StoreResult<RulePart> {
    let groups = store.computer_groups()?;
    let computers = members_in(&groups, rules.iter().map(|rule| rule.computer_group));
    Ok(RulePart::computers(computers).with_rule_jobs(rules.iter().map(|rule| rule.id)))
}

/// The part a change of package group `group` concerns (its members, or its parent becoming
/// `new_parent`): [`rules_part`] of every rule whose package group contains `group`, now or
/// after the move.
///
/// # Errors
///
/// The store's.
pub fn package_group_part(
    store: &dyn Store,
    group: PackageGroupId,
    new_parent: Option<Option<PackageGroupId>>,
) -> StoreResult<RulePart> {
    // No computer: every rule and every group, without reading a computer or a job.
    let snapshot = store.rule_snapshot_part(&RulePart::default())?;
    let groups = &snapshot.deploy.package_groups;
    let mut containing = ancestors_or_self(groups, Some(group));
    if let Some(parent) = new_parent {
        containing.extend(ancestors_or_self(groups, parent));
    }
    let rules: Vec<&DeploymentRule> = snapshot
        .rules
        .iter()
        .filter(|rule| containing.contains(&rule.package_group))
        .collect();
    rules_part(store, &rules)
}

/// The computers of `roots` and their subgroups.
fn members_in(
    groups: &[(ComputerGroup, Vec<ComputerId>)],
    roots: impl IntoIterator<Item = ComputerGroupId>,
) -> BTreeSet<ComputerId> {
    let mut children: BTreeMap<ComputerGroupId, Vec<ComputerGroupId>> = BTreeMap::new();
    let mut members: BTreeMap<ComputerGroupId, &[ComputerId]> = BTreeMap::new();
    for (group, list) in groups {
        if let Some(parent) = group.parent {
            children.entry(parent).or_default().push(group.id);
        }
        members.insert(group.id, list);
    }
    let mut found = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut stack: Vec<ComputerGroupId> = roots.into_iter().collect();
    while let Some(current) = stack.pop() {
        if !visited.insert(current) {
            continue;
        }
        found.extend(members.get(&current).copied().unwrap_or_default());
        stack.extend(children.get(&current).into_iter().flatten().copied());
    }
    found
}

/// `group` and the groups above it (none for `None`); a cycle ends the walk.
fn ancestors_or_self(
    groups: &[PackageGroup],
    mut group: Option<PackageGroupId>,
) -> BTreeSet<PackageGroupId> {
    let mut found = BTreeSet::new();
    while let Some(id) = group {
        if !found.insert(id) {
            break;
        }
        group = groups.iter().find(|g| g.id == id).and_then(|g| g.parent);
    }
    found
}
