//! Rule re-evaluation after a change: the trigger table of the core, applied.
//!
//! The caller reads the world concerned before its change ([`world_for`]), makes the change, and
//! calls [`reevaluate`] with the event: the world is read again, [`scopes_for`] says which rules
//! to evaluate for which computers, and each diff is applied. A diff that loses a
//! compare-and-set race (an agent report moved a job meanwhile) is recomputed from a fresh read.
//! These are blocking store calls: run them off the async threads.

use oco_core::chrono::{DateTime, Utc};
use oco_core::rules::{scopes_for, RuleDiff, RuleEvent, RuleWorld};
use oco_core::store::{Store, StoreError, StoreResult};

/// How many times a diff is recomputed after losing a race before the error is returned.
const ATTEMPTS: usize = 5;

/// The part of the world `event` can concern: the rule snapshot of the computers it names, or the
/// whole rule snapshot for structural events.
///
/// # Errors
///
/// The store's.
pub fn world_for(store: &dyn Store, event: &RuleEvent) -> StoreResult<RuleWorld> {
    let snapshot = match computers_of(event) {
        Some(computers) => store.rule_snapshot_for(&computers)?,
        None => store.rule_snapshot()?,
    };
    Ok(RuleWorld::from_snapshot(&snapshot))
}

/// Re-evaluates what `event` calls for, `before` being [`world_for`] read before the change, and
/// applies each diff. Returns the diffs applied (conflicts found included).
///
/// # Errors
///
/// The store's; [`StoreError::Conflict`] if a diff lost its race `ATTEMPTS` (5) times.
pub fn reevaluate(
    store: &dyn Store,
    event: &RuleEvent,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<RuleDiff>> {
    let after = world_for(store, event)?;
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
                    world = Some(world_for(store, event)?);
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(applied)
}

/// The computers an event names, when it concerns only them.
fn computers_of(event: &RuleEvent) -> Option<Vec<oco_core::model::ComputerId>> {
    match event {
        RuleEvent::AssignmentsChanged { computer }
        | RuleEvent::ComputerChanged { computer }
        | RuleEvent::ComputerDeleted { computer } => Some(vec![*computer]),
        RuleEvent::ComputerGroupsChanged {
            computers: Some(computers),
        } => Some(computers.clone()),
        _ => None,
    }
}
