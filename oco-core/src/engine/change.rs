//! The change wrapper every administrative write that concerns deployment rules goes through:
//! write, re-evaluate the rules the change concerns, and if that fails, undo the write and
//! repair the rules.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Engine, EngineError, Evaluated, Undo};
use crate::chrono::{DateTime, Utc};
use crate::model::resolve::resolve_package_group;
use crate::model::{PackageId, RuleId};
use crate::rules::{Conflict, RuleEvent, RuleWorld};
use crate::store::{RulePart, RuleSnapshot, Store, StoreError, StoreResult};

/// The outcome of a write that re-evaluates deployment rules: what the write made, and what
/// re-evaluating each rule the change concerns did (jobs inserted, updated, deleted, orphaned,
/// conflicts found), in rule order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Changed<T> {
    /// What the write made or changed.
    pub value: T,
    /// What re-evaluating each rule did.
    pub evaluations: Vec<Evaluated>,
}

/// Which part of the world a change's re-evaluation reads again after the write.
pub(super) enum PartOf {
    /// The part the event alone names ([`RuleEvent::part`]).
    Event,
    /// This part (a rule's or a package group's, worked out before the write).
    Given(RulePart),
}

impl<S: Store> Engine<S> {
    /// Runs `write`, then re-evaluates the rules the event (`event` of what `write` returned)
    /// concerns in `part`, `before` being that part's world read before the write.
    ///
    /// If the re-evaluation fails, `undo` puts the data back and every rule of `before`, of the
    /// store and the one the event names is evaluated in full again on the restored data (so a
    /// diff applied before the failure is reverted); the error says what became of the write.
    pub(super) fn change<T>(
        &self,
        part: PartOf,
        before: &RuleWorld,
        now: DateTime<Utc>,
        write: impl FnOnce() -> Result<T, EngineError>,
        event: impl FnOnce(&T) -> RuleEvent,
        undo: impl FnOnce(&T) -> StoreResult<()>,
    ) -> Result<Changed<T>, EngineError> {
        let value = write()?;
        let event = event(&value);
        let part = match part {
            PartOf::Event => event.part(),
            PartOf::Given(part) => Some(part),
        };
        match self.reevaluate_in(&event, part.as_ref(), before, now) {
            Ok(evaluations) => Ok(Changed { value, evaluations }),
            Err(error) => {
                let undo = match undo(&value) {
                    Ok(()) => Undo::Undone {
                        repair: self.repair(before, &event, now),
                    },
                    Err(error) => Undo::Failed(error),
                };
                Err(EngineError::Reevaluation {
                    source: into_store_error(error),
                    undo: Box::new(undo),
                })
            }
        }
    }

    /// [`reevaluate_in`](Self::reevaluate_in) after a write that cannot be undone (a deletion):
    /// a failure is [`EngineError::Reevaluation`] with [`Undo::NotPossible`].
    pub(super) fn reevaluate_after(
        &self,
        event: &RuleEvent,
        part: Option<&RulePart>,
        before: &RuleWorld,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        self.reevaluate_in(event, part, before, now)
            .map_err(|error| EngineError::Reevaluation {
                source: into_store_error(error),
                undo: Box::new(Undo::NotPossible),
            })
    }

    /// After an undone change: evaluates every rule of `before` and of the store now, and the
    /// rule `event` names, in full.
    fn repair(
        &self,
        before: &RuleWorld,
        event: &RuleEvent,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, StoreError> {
        let mut ids: BTreeSet<RuleId> = before.rules.keys().copied().collect();
        if let RuleEvent::RuleChanged { rule } = event {
            ids.insert(*rule);
        }
        self.evaluate_all_rules(ids, now).map_err(into_store_error)
    }
}

/// A re-evaluation's error as the store's: re-evaluating fails only in the store, or by losing
/// its compare-and-set race on every attempt, which is a conflict.
pub(super) fn into_store_error(error: EngineError) -> StoreError {
    match error {
        EngineError::Store(error) | EngineError::Reference { source: error, .. } => error,
        EngineError::Reevaluation { source, .. } => source,
        other @ EngineError::Contended { .. } => StoreError::Conflict {
            what: other.to_string(),
        },
        other => StoreError::Invalid {
            reason: other.to_string(),
        },
    }
}

/// [`EngineError::FamilyConflicts`] with the family-version conflicts the world of `after` has
/// and `before` has not.
pub(super) fn refuse_new_conflicts(
    before: &RuleWorld,
    after: &RuleSnapshot,
) -> Result<(), EngineError> {
    let current: BTreeSet<Conflict> = before.conflicts().into_iter().collect();
    let new: Vec<Conflict> = RuleWorld::from_snapshot(after)
        .conflicts()
        .into_iter()
        .filter(|conflict| !current.contains(conflict))
        .collect();
    if new.is_empty() {
        Ok(())
    } else {
        Err(EngineError::FamilyConflicts(new))
    }
}

/// The world of `snapshot`, and the snapshot without its jobs (what a conflict check needs, to
/// build the world after a change on): the jobs are moved into the world, not copied.
pub(super) fn world_and_rest(mut snapshot: RuleSnapshot) -> (RuleWorld, RuleSnapshot) {
    let jobs = std::mem::take(&mut snapshot.jobs);
    let mut world = RuleWorld::from_snapshot(&snapshot);
    world.set_jobs(jobs);
    (world, snapshot)
}

/// Adds to `snapshot` the packages of its rules that it lacks: a snapshot of a part of the world
/// holds the packages of the rules as they were, and a change may give a rule more (a rule that
/// takes another package group, a package group that gains members or moves).
pub(super) fn complete_packages(
    store: &dyn Store,
    snapshot: &mut RuleSnapshot,
) -> Result<(), EngineError> {
    let deploy = &snapshot.deploy;
    let missing: BTreeSet<PackageId> = snapshot
        .rules
        .iter()
        .flat_map(|rule| {
            resolve_package_group(
                rule.package_group,
                &deploy.package_groups,
                &deploy.package_group_members,
            )
        })
        .filter(|id| !deploy.packages.contains_key(id))
        .collect();
    for id in missing {
        let package = store.package(id)?;
        snapshot.deploy.packages.insert(id, package);
    }
    Ok(())
}

/// The store's refusal of a change ([`StoreError::Invalid`]: an unknown parent, a cycle, an
/// unknown member) as [`EngineError::Reference`] naming `field`; other errors as they are.
pub(super) fn refused(field: &'static str) -> impl Fn(StoreError) -> EngineError {
    move |error| match error {
        StoreError::Invalid { .. } => EngineError::Reference {
            field: field.to_owned(),
            source: error,
        },
        other => EngineError::Store(other),
    }
}

/// A read of what `field` of a request names: [`StoreError::NotFound`] as
/// [`EngineError::Reference`] naming `field`; other errors as they are.
pub(super) fn unknown(field: impl Into<String>) -> impl FnOnce(StoreError) -> EngineError {
    move |error| match error {
        StoreError::NotFound { .. } => EngineError::Reference {
            field: field.into(),
            source: error,
        },
        other => EngineError::Store(other),
    }
}
