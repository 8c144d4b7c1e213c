//! Rule re-evaluation after a change: the trigger table of the core, applied.
//!
//! The caller works out the part of the world its change concerns (a [`RulePart`]: the
//! computers that may join or leave a rule or see its packages change, and the rules whose every
//! job is read), reads it before its change ([`Engine::rule_world`]), makes the change, and calls
//! [`Engine::reevaluate_in`] with the event: the same part is read again, [`scopes_for`] says
//! which rules to evaluate for which computers, and each diff is applied. A diff that loses a
//! compare-and-set race (an agent report moved a job meanwhile) is recomputed from a fresh read.
//!
//! What each change reads, so that its cost follows the change and not the database:
//!
//! - a computer's assignments, platform or deletion: that computer ([`RuleEvent::part`]);
//! - computers joining or leaving a computer group: those computers;
//! - a computer group moved: the members of it and its subgroups
//!   ([`Engine::computer_group_members`]); an empty group reads no computer and no job;
//! - a rule created, edited or deleted: the members of its computer group before and after,
//!   and every job of the rule ([`Engine::rules_part`]);
//! - a package group changed or moved: the same for every rule whose package group contains it,
//!   before or after ([`Engine::package_group_part`]).
//!
//! Every rule, every group and the rules' packages are always read: they are few.
//!
//! A part with every job of a rule, or with more than
//! [`chunk_computers`](super::EngineOptions::chunk_computers) computers, is not read whole: the
//! rules' definitions are read without jobs (enough to say which rules to evaluate for which
//! computers), then the computers that matter (the part's, and every computer where a rule of
//! the part has jobs, [`Store::rule_job_computers`]) are evaluated a chunk at a time, each chunk
//! read, evaluated, applied and dropped before the next. Evaluation is per computer (a
//! computer's jobs, sequences, claims and conflicts depend on that computer alone), so the
//! chunks together give what one evaluation of the whole part gives, and a rule of a million
//! jobs takes the memory of a chunk's jobs, not of its million.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Engine, EngineError};
use crate::chrono::{DateTime, Utc};
use crate::model::{
    ComputerGroup, ComputerGroupId, ComputerId, DeploymentRule, PackageGroup, PackageGroupId,
    RuleId,
};
use crate::rules::{scopes_for, Conflict, RuleDiff, RuleEvent, RuleWorld, Scope};
use crate::store::{RulePart, RuleSnapshot, Store, StoreError, StoreResult};

/// What re-evaluating one rule wrote and found, summed over the chunks it was evaluated in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
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

impl<S: Store> Engine<S> {
    /// The rule world of `part` (what rule evaluation reads: rules, groups, packages, and the
    /// part's computers and jobs), or the whole world for `None`.
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{MemoryStore, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let world = engine.rule_world(Some(&RulePart::default()))?;
    /// assert!(world.conflicts().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rule_world(&self, part: Option<&RulePart>) -> Result<RuleWorld, EngineError> {
        Ok(read_world(self.dyn_store(), part)?)
    }

    /// The part of the world `event` alone names (the computers of a computer event), read; the
    /// whole world for the other events. What [`reevaluate`](Self::reevaluate) needs as `before`.
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let before = engine.world_for(&oco_core::rules::RuleEvent::AssignmentsChanged { computer: pc1 })?;
    /// assert_eq!(before.jobs(rule.id).len(), 1); // pc1's job of the rule: its part only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn world_for(&self, event: &RuleEvent) -> Result<RuleWorld, EngineError> {
        Ok(read_world(self.dyn_store(), event.part().as_ref())?)
    }

    /// [`reevaluate_in`](Self::reevaluate_in) the part of the world the event alone names: for a
    /// change made directly on the store, such as a computer's assignments.
    ///
    /// # Errors
    ///
    /// As [`reevaluate_in`](Self::reevaluate_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::rules::RuleEvent;
    /// use oco_core::store::{MemoryStore, NewComputer, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let pc = engine.store().create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// let event = RuleEvent::ComputerChanged { computer: pc.id };
    /// let before = engine.world_for(&event)?;
    /// // … change the computer through the store …
    /// let evaluated = engine.reevaluate(&event, &before, now)?;
    /// assert!(evaluated.is_empty()); // no rule
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reevaluate(
        &self,
        event: &RuleEvent,
        before: &RuleWorld,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        self.reevaluate_in(event, event.part().as_ref(), before, now)
    }

    /// Re-evaluates what `event` calls for, `before` being [`rule_world`](Self::rule_world) of
    /// `part` read before the change (its jobs are not needed: [`RulePart::without_jobs`] of
    /// `part` will do), and applies each diff. Returns what each rule's evaluation did
    /// (conflicts found included).
    ///
    /// `part` must hold every computer whose rules the change can alter (it is read again after
    /// the change, and only its computers are re-evaluated) and every rule evaluated in full. A
    /// part with a rule's every job or more than
    /// [`chunk_computers`](super::EngineOptions::chunk_computers) computers is evaluated a chunk
    /// at a time.
    ///
    /// # Errors
    ///
    /// The store's; [`EngineError::Contended`] if a diff lost its race on every attempt
    /// ([`rule_attempts`](super::EngineOptions::rule_attempts)). Diffs applied before the error
    /// stand.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// // pc2 leaves the group behind the engine's back, then the rule is re-evaluated for it.
    /// let part = RulePart::computers([pc2]);
    /// let before = engine.rule_world(Some(&part))?;
    /// use oco_core::store::Store;
    /// engine.store().set_computer_group_members(office.id, &[pc1])?;
    /// let event = oco_core::rules::RuleEvent::ComputerGroupsChanged { computers: Some(vec![pc2]) };
    /// let evaluated = engine.reevaluate_in(&event, Some(&part), &before, now)?;
    /// assert_eq!((evaluated[0].rule, evaluated[0].deleted), (rule.id, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reevaluate_in(
        &self,
        event: &RuleEvent,
        part: Option<&RulePart>,
        before: &RuleWorld,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        let rules = self.rules();
        let chunked = part.filter(|part| {
            part.jobs && (!part.rule_jobs.is_empty() || part.computers.len() > rules.chunk)
        });
        let Some(part) = chunked else {
            // A small part: read once.
            let after = read_world(rules.store, part)?;
            let scopes = scopes_for(event, before, &after);
            let mut applied = Vec::with_capacity(scopes.len());
            for (rule, scope) in scopes {
                applied.push(rules.apply_evaluation(part, &after, rule, &scope, now)?);
            }
            return Ok(applied);
        };
        let scopes = {
            let after = read_world(rules.store, Some(&part.clone().without_jobs()))?;
            scopes_for(event, before, &after)
        };
        let mut computers = part.computers.clone();
        for &rule in &part.rule_jobs {
            computers.extend(rules.store.rule_job_computers(rule)?);
        }
        rules.evaluate_in_chunks(&scopes, &computers, now)
    }

    /// Evaluates `rule` in full and applies the diff, a chunk of computers at a time: the
    /// members of its computer group and the computers where it has jobs (a rule being deleted is
    /// retired wherever its jobs are). Returns what the evaluation did.
    ///
    /// # Errors
    ///
    /// As [`reevaluate_in`](Self::reevaluate_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let evaluated = engine.evaluate_rule(&rule, now)?;
    /// assert_eq!(evaluated.inserted, 0, "already up to date");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evaluate_rule(
        &self,
        rule: &DeploymentRule,
        now: DateTime<Utc>,
    ) -> Result<Evaluated, EngineError> {
        let rules = self.rules();
        let mut computers = self.computer_group_members(rule.computer_group)?;
        computers.extend(rules.store.rule_job_computers(rule.id)?);
        let scopes = BTreeMap::from([(rule.id, Scope::full())]);
        let mut evaluated = rules.evaluate_in_chunks(&scopes, &computers, now)?;
        Ok(evaluated.pop().unwrap_or_else(|| Evaluated::new(rule.id)))
    }

    /// Evaluates in full every rule of the store and every rule of `also` (rules that no longer
    /// exist are retired), and applies each diff, a chunk of computers at a time: the members of
    /// every rule's computer group and the computers where one of the rules has jobs. The repair
    /// after a change whose re-evaluation failed half-way.
    ///
    /// # Errors
    ///
    /// As [`reevaluate_in`](Self::reevaluate_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let evaluated = engine.evaluate_all_rules([], now)?;
    /// assert_eq!(evaluated.len(), 1);
    /// assert!(evaluated[0].conflicts.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evaluate_all_rules(
        &self,
        also: impl IntoIterator<Item = RuleId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        let rules = self.rules();
        // Every rule and group, no computer and no job.
        let all = rules.store.rule_snapshot_part(&RulePart::default())?.rules;
        let groups = rules.store.computer_groups()?;
        let mut computers = members_in(&groups, all.iter().map(|rule| rule.computer_group));
        let ids: BTreeSet<RuleId> = all.iter().map(|rule| rule.id).chain(also).collect();
        for &rule in &ids {
            computers.extend(rules.store.rule_job_computers(rule)?);
        }
        let scopes = ids.into_iter().map(|rule| (rule, Scope::full())).collect();
        rules.evaluate_in_chunks(&scopes, &computers, now)
    }

    /// Every computer in computer group `group` or one of its subgroups (none for an unknown
    /// group).
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// assert_eq!(engine.computer_group_members(office.id)?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn computer_group_members(
        &self,
        group: ComputerGroupId,
    ) -> Result<BTreeSet<ComputerId>, EngineError> {
        let groups = self.store.computer_groups()?;
        Ok(members_in(&groups, [group]))
    }

    /// The computers of each of `rules` (the members of its computer group and its subgroups).
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// assert_eq!(engine.rule_members(&[&rule])?[&rule.id].len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rule_members(
        &self,
        rules: &[&DeploymentRule],
    ) -> Result<BTreeMap<RuleId, BTreeSet<ComputerId>>, EngineError> {
        let groups = self.store.computer_groups()?;
        Ok(rules
            .iter()
            .map(|rule| (rule.id, members_in(&groups, [rule.computer_group])))
            .collect())
    }

    /// The part a change of `rules` concerns (a rule created, edited or deleted: give each
    /// version it has before and after): the members of their computer groups, and every job of
    /// the rules.
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let part = engine.rules_part(&[&rule])?;
    /// assert_eq!((part.computers.len(), part.rule_jobs.len()), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rules_part(&self, rules: &[&DeploymentRule]) -> Result<RulePart, EngineError> {
        let groups = self.store.computer_groups()?;
        let computers = members_in(&groups, rules.iter().map(|rule| rule.computer_group));
        Ok(RulePart::computers(computers).with_rule_jobs(rules.iter().map(|rule| rule.id)))
    }

    /// The part a change of package group `group` concerns (its members, or its parent
    /// becoming `new_parent`): [`rules_part`](Self::rules_part) of every rule whose package group
    /// contains `group`, now or after the move.
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, NewRule, RulePart};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc1, pc2) = (fixture.computers[0].id, fixture.computers[1].id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let _ = engine.set_computer_group_members(office.id, &[pc1, pc2], now)?;
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// let _ = engine.set_package_group_members(tools.id, &[fixture.other.id], now)?;
    /// let rule = engine.create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now), now)?.value;
    ///
    /// let part = engine.package_group_part(tools.id, None)?;
    /// assert!(part.rule_jobs.contains(&rule.id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn package_group_part(
        &self,
        group: PackageGroupId,
        new_parent: Option<Option<PackageGroupId>>,
    ) -> Result<RulePart, EngineError> {
        // No computer: every rule and every group, without reading a computer or a job.
        let snapshot = self.store.rule_snapshot_part(&RulePart::default())?;
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
        self.rules_part(&rules)
    }

    /// The store and the options rule evaluation works with.
    fn rules(&self) -> Rules<'_> {
        Rules {
            store: self.dyn_store(),
            chunk: self.options.chunk_computers.get(),
            attempts: self.options.rule_attempts.get(),
        }
    }
}

/// The rule snapshot of `part`, or the whole one for `None`.
fn read_snapshot(store: &dyn Store, part: Option<&RulePart>) -> StoreResult<RuleSnapshot> {
    match part {
        Some(part) => store.rule_snapshot_part(part),
        None => store.rule_snapshot(),
    }
}

/// The rule world of `part`, or the whole one for `None`.
fn read_world(store: &dyn Store, part: Option<&RulePart>) -> StoreResult<RuleWorld> {
    Ok(RuleWorld::from_owned_snapshot(read_snapshot(store, part)?))
}

/// What evaluating rules works with: the store, the chunk size and the attempts per diff.
struct Rules<'a> {
    store: &'a dyn Store,
    chunk: usize,
    attempts: usize,
}

impl Rules<'_> {
    /// Evaluates each rule of `scopes` for its scope, restricted to `computers` (which must hold
    /// every computer of the scopes, and every computer where a rule of a full scope has jobs),
    /// a chunk at a time: each chunk's part of the world is read, every rule evaluated on it and
    /// its diff applied, then the chunk is dropped.
    fn evaluate_in_chunks(
        &self,
        scopes: &BTreeMap<RuleId, Scope>,
        computers: &BTreeSet<ComputerId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        let mut evaluated: BTreeMap<RuleId, Evaluated> = scopes
            .keys()
            .map(|&rule| (rule, Evaluated::new(rule)))
            .collect();
        let computers: Vec<ComputerId> = computers.iter().copied().collect();
        for chunk in computers.chunks(self.chunk.max(1)) {
            let part = RulePart::computers(chunk.iter().copied());
            let world = read_world(self.store, Some(&part))?;
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
                let done = self.apply_evaluation(Some(&part), &world, rule, &scope, now)?;
                if let Some(total) = evaluated.get_mut(&rule) {
                    total.merge(done);
                }
            }
        }
        Ok(evaluated.into_values().map(Evaluated::finish).collect())
    }

    /// Evaluates `rule` for `scope` on `world` (read from `part`) and applies the diff; a diff
    /// that loses a race is recomputed on `part` read again. An empty diff writes nothing.
    fn apply_evaluation(
        &self,
        part: Option<&RulePart>,
        world: &RuleWorld,
        rule: RuleId,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Evaluated, EngineError> {
        let mut fresh = None;
        for _ in 0..self.attempts {
            let current = fresh.as_ref().unwrap_or(world);
            let diff = current.evaluate(rule, scope, now);
            if diff.is_empty() {
                return Ok(Evaluated::from(&diff));
            }
            let evaluated = Evaluated::from(&diff);
            match self.store.apply(&diff.into_change_set()) {
                Ok(_) => return Ok(evaluated),
                Err(StoreError::Conflict { .. }) => {
                    fresh = Some(read_world(self.store, part)?);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Contended {
            operation: "rule evaluation",
            attempts: self.attempts,
        })
    }
}

/// The computers of `roots` and their subgroups.
pub(super) fn members_in(
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
