//! An administrator's operations on deployment rules: create, update, enable or disable,
//! delete, statistics. Each change reads the part of the world the rule concerns, refuses new
//! family conflicts, writes, and evaluates the rule a chunk of computers at a time.

use serde::Serialize;

use super::change::{
    complete_packages, into_store_error, refuse_new_conflicts, world_and_rest, Changed, PartOf,
};
use super::groups::not_found;
use super::{Engine, EngineError, Evaluated, Undo};
use crate::chrono::{DateTime, Utc};
use crate::housekeeping::{statistics_of, ContainerStatistics};
use crate::model::{DeploymentRule, Origin, RuleId};
use crate::rules::{Conflict, RuleEvent, RuleWorld, Scope};
use crate::store::{NewRule, RulePart, RuleSnapshot, Store};

/// A rule's statistics, as a container's (never `scheduled`), with the conflicts a full
/// evaluation of it reports: [`Engine::rule_statistics`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct RuleStatistics {
    /// Where its jobs are.
    #[serde(flatten)]
    pub statistics: ContainerStatistics,
    /// Its conflicts and missing dependencies, sorted.
    pub conflicts: Vec<Conflict>,
}

impl<S: Store> Engine<S> {
    /// Creates a rule and evaluates it: the members of its computer group get jobs for the
    /// packages of its package group. Refused, with nothing written, when it would add
    /// conflicts between the versions rules install on some computer; the rule being created
    /// appears in them as rule 0.
    ///
    /// # Errors
    ///
    /// [`EngineError::Reference`] naming `computer_group` or `package_group` for an unknown
    /// group; [`EngineError::FamilyConflicts`]; the store's; [`EngineError::Reevaluation`] if
    /// evaluating failed (the rule is then deleted again and its jobs retired).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// engine.set_computer_group_members(office.id, &[f.computers[0].id, f.computers[1].id], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// engine.set_package_group_members(tools.id, &[f.other.id], now)?;
    ///
    /// let created = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?;
    /// assert_eq!(created.evaluations[0].rule, created.value.id);
    /// assert_eq!(created.evaluations[0].inserted, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_rule(
        &self,
        rule: NewRule,
        now: DateTime<Utc>,
    ) -> Result<Changed<DeploymentRule>, EngineError> {
        let store = &self.store;
        // The store assigns the id; conflicts name the new rule as rule 0.
        let draft = rule.clone().with_id(RuleId(0));
        let part = self.rules_part(&[&draft])?;
        // The world before needs no job (conflicts, and which rules to evaluate where): the
        // rule's jobs are read a chunk at a time as it is evaluated.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        check_groups(&snapshot, &draft)?;
        let (before, mut after) = world_and_rest(snapshot);
        after.rules.push(draft);
        complete_packages(self.dyn_store(), &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        drop(after);
        self.change(
            PartOf::Given(part),
            &before,
            now,
            || Ok(store.create_rule(rule)?),
            |rule| RuleEvent::RuleChanged { rule: rule.id },
            |rule| store.delete_rule(rule.id),
        )
    }

    /// Replaces the stored rule of `rule.id` with `rule` and re-evaluates it where it was and
    /// where it now is. Refused, with nothing written, when it would add family conflicts.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`](crate::store::StoreError::NotFound));
    /// [`EngineError::RuleBeingDeleted`]; otherwise as [`create_rule`](Self::create_rule) (the
    /// old rule is put back if evaluating fails).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// engine.set_computer_group_members(office.id, &[f.computers[0].id], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// engine.set_package_group_members(tools.id, &[f.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let mut renamed = rule.clone();
    /// renamed.name = Name::new("name", "office tools")?;
    /// engine.update_rule(renamed.clone(), now)?;
    /// assert_eq!(engine.store().rule(rule.id)?, renamed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_rule(
        &self,
        rule: DeploymentRule,
        now: DateTime<Utc>,
    ) -> Result<Changed<DeploymentRule>, EngineError> {
        let old = self.store.rule(rule.id)?;
        self.replace_rule(old, rule, now)
    }

    /// Enables or disables rule `id` and re-evaluates it: a disabled rule's jobs are held and
    /// it claims nothing. Enabling is refused, with nothing written, when it would add family
    /// conflicts.
    ///
    /// # Errors
    ///
    /// As [`update_rule`](Self::update_rule).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, NewRule};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    /// assert!(!engine.set_rule_enabled(rule.id, false, now)?.value.enabled);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_rule_enabled(
        &self,
        id: RuleId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Changed<DeploymentRule>, EngineError> {
        let old = self.store.rule(id)?;
        let new = DeploymentRule {
            enabled,
            ..old.clone()
        };
        self.replace_rule(old, new, now)
    }

    /// Deletes rule `id`: its jobs are retired (deleted, running ones orphaned) and other rules'
    /// claims settled. Returns what the evaluations did. A rule already being deleted (a
    /// deletion that failed half-way) is evaluated in full, which finishes its retirement.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`](crate::store::StoreError::NotFound));
    /// [`EngineError::Reevaluation`] with [`Undo::NotPossible`] if evaluating failed: the rule
    /// stays deleted, and deleting it again finishes the retirement.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// engine.set_computer_group_members(office.id, &[f.computers[0].id], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// engine.set_package_group_members(tools.id, &[f.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let evaluations = engine.delete_rule(rule.id, now)?;
    /// assert_eq!(evaluations[0].deleted, 1);
    /// assert!(engine.store().rule(rule.id).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_rule(
        &self,
        id: RuleId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        let rule = self.store.rule(id)?;
        let event = RuleEvent::RuleChanged { rule: id };
        let part = self.rules_part(&[&rule])?;
        let before = self.rule_world(Some(&part.clone().without_jobs()))?;
        let deleting_already = !before.rules.contains_key(&id);
        self.store.delete_rule(id)?;
        // Retires its jobs (running ones are orphaned) and settles other rules' claims.
        let mut evaluations = self.reevaluate_after(&event, Some(&part), &before, now)?;
        if deleting_already {
            let evaluated =
                self.evaluate_rule(&rule, now)
                    .map_err(|error| EngineError::Reevaluation {
                        source: into_store_error(error),
                        undo: Box::new(Undo::NotPossible),
                    })?;
            evaluations.push(evaluated);
        }
        Ok(evaluations)
    }

    /// Rule `id`'s statistics at `now`, with the conflicts a full evaluation of it reports,
    /// reading only the computers where it can find one and no job.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`](crate::store::StoreError::NotFound)).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, NewRule};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    /// let statistics = engine.rule_statistics(rule.id, now)?;
    /// assert!(statistics.conflicts.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rule_statistics(
        &self,
        id: RuleId,
        now: DateTime<Utc>,
    ) -> Result<RuleStatistics, EngineError> {
        let rule = self.store.rule(id)?;
        let summary = self.store.job_summary(Origin::Rule(id))?;
        Ok(RuleStatistics {
            statistics: statistics_of(&summary, None, rule.created_at, now),
            conflicts: self.rule_conflicts(id)?,
        })
    }

    /// Replaces `old` with `new` (the same rule), refusing new family conflicts, and
    /// re-evaluates.
    fn replace_rule(
        &self,
        old: DeploymentRule,
        new: DeploymentRule,
        now: DateTime<Utc>,
    ) -> Result<Changed<DeploymentRule>, EngineError> {
        let store = &self.store;
        let id = old.id;
        let part = self.rules_part(&[&old, &new])?;
        // Without jobs, as for a rule created.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        check_groups(&snapshot, &new)?;
        let (before, mut after) = world_and_rest(snapshot);
        match after.rules.iter_mut().find(|rule| rule.id == id) {
            Some(rule) => *rule = new.clone(),
            // Being deleted: it no longer takes part in evaluation.
            None => return Err(EngineError::RuleBeingDeleted(id)),
        }
        complete_packages(self.dyn_store(), &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        drop(after);
        let changed = self.change(
            PartOf::Given(part),
            &before,
            now,
            || Ok(store.update_rule(&new)?),
            |()| RuleEvent::RuleChanged { rule: id },
            |()| store.update_rule(&old),
        )?;
        Ok(Changed {
            value: new,
            evaluations: changed.evaluations,
        })
    }

    /// The conflicts a full evaluation of rule `id` reports, reading only the computers where
    /// it can find one ([`RuleWorld::conflict_candidates`]) and no job.
    fn rule_conflicts(&self, id: RuleId) -> Result<Vec<Conflict>, EngineError> {
        let rules = RuleWorld::from_snapshot(&self.store.rule_snapshot_part(&RulePart::default())?);
        if !rules.rules.contains_key(&id) {
            // Being deleted: it no longer takes part in evaluation.
            return Ok(Vec::new());
        }
        let enabled: Vec<&DeploymentRule> = rules
            .rules
            .values()
            .map(|r| &r.rule)
            .filter(|rule| rule.enabled || rule.id == id)
            .collect();
        let mut others = self.rule_members(&enabled)?;
        let members = others.remove(&id).unwrap_or_default();
        let candidates = rules.conflict_candidates(id, &members, &others);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let part = RulePart::computers(candidates.iter().copied()).without_jobs();
        let world = RuleWorld::from_snapshot(&self.store.rule_snapshot_part(&part)?);
        Ok(world.conflicts_of(id, &Scope::computers(candidates)))
    }
}

/// [`EngineError::Reference`] naming the field of a group of `rule` that `snapshot` does not
/// know.
fn check_groups(snapshot: &RuleSnapshot, rule: &DeploymentRule) -> Result<(), EngineError> {
    let deploy = &snapshot.deploy;
    if !deploy
        .computer_groups
        .iter()
        .any(|g| g.id == rule.computer_group)
    {
        return Err(EngineError::Reference {
            field: "computer_group".into(),
            source: not_found("computer group", rule.computer_group),
        });
    }
    if !deploy
        .package_groups
        .iter()
        .any(|g| g.id == rule.package_group)
    {
        return Err(EngineError::Reference {
            field: "package_group".into(),
            source: not_found("package group", rule.package_group),
        });
    }
    Ok(())
}
