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

use std::collections::{BTreeMap, BTreeSet};

use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{
    ComputerGroup, ComputerGroupId, ComputerId, DeploymentRule, PackageGroup, PackageGroupId,
    RuleId,
};
use oco_core::rules::{scopes_for, RuleDiff, RuleEvent, RuleWorld};
use oco_core::store::{RulePart, RuleSnapshot, Store, StoreError, StoreResult};

/// How many times a diff is recomputed after losing a race before the error is returned.
const ATTEMPTS: usize = 5;

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
) -> StoreResult<Vec<RuleDiff>> {
    reevaluate_in(store, event, part_of_event(event).as_ref(), before, now)
}

/// Re-evaluates what `event` calls for, `before` being [`read_world`] of `part` read before the
/// change, and applies each diff. Returns the diffs applied (conflicts found included).
///
/// `part` must hold every computer whose rules the change can alter (it is read again after
/// the change, and only its computers are re-evaluated) and every rule evaluated in full.
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
) -> StoreResult<Vec<RuleDiff>> {
    let after = read_world(store, part)?;
    let scopes = scopes_for(event, before, &after);
    let mut applied = Vec::with_capacity(scopes.len());
    for (rule, scope) in scopes {
        let mut world = None;
        let mut attempt = 0;
        loop {
            let current = world.as_ref().unwrap_or(&after);
            let diff = current.evaluate(rule, &scope, now);
            match store.apply(&diff.clone().into_change_set()) {
                Ok(_) => {
                    applied.push(diff);
                    break;
                }
                Err(StoreError::Conflict { .. }) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    world = Some(read_world(store, part)?);
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(applied)
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
