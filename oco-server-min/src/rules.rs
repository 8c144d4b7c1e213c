//! Rule re-evaluation after a change, as the admin handlers call it: the engine's
//! ([`oco_core::engine`]), over the server's store, with the store's errors.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;

use oco_core::chrono::{DateTime, Utc};
use oco_core::engine::{Engine, EngineError, EngineOptions};
use oco_core::model::{ComputerGroupId, ComputerId, DeploymentRule, PackageGroupId, RuleId};
use oco_core::rules::{RuleEvent, RuleWorld};
use oco_core::store::{RulePart, Store, StoreError, StoreResult};

pub use oco_core::engine::Evaluated;

/// How many computers a re-evaluation over many computers reads and evaluates at a time: the
/// engine's default ([`EngineOptions::chunk_computers`]).
pub const CHUNK_COMPUTERS: usize = 1_000;

fn engine(store: &dyn Store) -> Engine<&dyn Store> {
    Engine::new(store)
}

/// The engine's error as the store's: these operations fail only in the store, or by losing
/// their compare-and-set race too often, which the handlers answer as a conflict.
fn store_error(error: EngineError) -> StoreError {
    match error {
        EngineError::Store(error) => error,
        EngineError::Contended { .. } => StoreError::Conflict {
            what: error.to_string(),
        },
        other => StoreError::Invalid {
            reason: other.to_string(),
        },
    }
}

/// [`RuleEvent::part`].
pub fn part_of_event(event: &RuleEvent) -> Option<RulePart> {
    event.part()
}

/// [`Engine::rule_world`].
///
/// # Errors
///
/// The store's.
pub fn read_world(store: &dyn Store, part: Option<&RulePart>) -> StoreResult<RuleWorld> {
    engine(store).rule_world(part).map_err(store_error)
}

/// [`Engine::world_for`].
///
/// # Errors
///
/// The store's.
pub fn world_for(store: &dyn Store, event: &RuleEvent) -> StoreResult<RuleWorld> {
    engine(store).world_for(event).map_err(store_error)
}

/// [`Engine::reevaluate`].
///
/// # Errors
///
/// The store's; a conflict if a diff lost its race on every attempt.
pub fn reevaluate(
    store: &dyn Store,
    event: &RuleEvent,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    engine(store)
        .reevaluate(event, before, now)
        .map_err(store_error)
}

/// [`Engine::reevaluate_in`].
///
/// # Errors
///
/// As [`reevaluate`].
pub fn reevaluate_in(
    store: &dyn Store,
    event: &RuleEvent,
    part: Option<&RulePart>,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    engine(store)
        .reevaluate_in(event, part, before, now)
        .map_err(store_error)
}

/// [`Engine::evaluate_rule`] with `chunk` computers a chunk (at least one).
///
/// # Errors
///
/// As [`reevaluate`].
pub fn evaluate_rule_in_chunks(
    store: &dyn Store,
    rule: &DeploymentRule,
    now: DateTime<Utc>,
    chunk: usize,
) -> StoreResult<Evaluated> {
    let chunk = NonZeroUsize::new(chunk).unwrap_or(NonZeroUsize::MIN);
    Engine::with_options(store, EngineOptions::default().with_chunk_computers(chunk))
        .evaluate_rule(rule, now)
        .map_err(store_error)
}

/// [`Engine::evaluate_all_rules`].
///
/// # Errors
///
/// As [`reevaluate`].
pub fn evaluate_rules_fully(
    store: &dyn Store,
    also: impl IntoIterator<Item = RuleId>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    engine(store)
        .evaluate_all_rules(also, now)
        .map_err(store_error)
}

/// [`Engine::computer_group_members`].
///
/// # Errors
///
/// The store's.
pub fn computer_group_members(
    store: &dyn Store,
    group: ComputerGroupId,
) -> StoreResult<BTreeSet<ComputerId>> {
    engine(store)
        .computer_group_members(group)
        .map_err(store_error)
}

/// [`Engine::rule_members`].
///
/// # Errors
///
/// The store's.
pub fn rule_members(
    store: &dyn Store,
    rules: &[&DeploymentRule],
) -> StoreResult<BTreeMap<RuleId, BTreeSet<ComputerId>>> {
    engine(store).rule_members(rules).map_err(store_error)
}

/// [`Engine::rules_part`].
///
/// # Errors
///
/// The store's.
pub fn rules_part(store: &dyn Store, rules: &[&DeploymentRule]) -> StoreResult<RulePart> {
    engine(store).rules_part(rules).map_err(store_error)
}

/// [`Engine::package_group_part`].
///
/// # Errors
///
/// The store's.
pub fn package_group_part(
    store: &dyn Store,
    group: PackageGroupId,
    new_parent: Option<Option<PackageGroupId>>,
) -> StoreResult<RulePart> {
    engine(store)
        .package_group_part(group, new_parent)
        .map_err(store_error)
}
