//! An administrator's operations on computer groups and package groups: create, move under a
//! parent, set members, each re-evaluating the rules the change concerns.

use std::collections::BTreeSet;

use super::change::{complete_packages, refuse_new_conflicts, refused, world_and_rest};
use super::change::{Changed, PartOf};
use super::rules::members_in;
use super::{Engine, EngineError};
use crate::chrono::{DateTime, Utc};
use crate::model::{
    ComputerGroup, ComputerGroupId, ComputerId, Name, PackageGroup, PackageGroupId, PackageId,
};
use crate::rules::RuleEvent;
use crate::store::{Store, StoreError};

impl<S: Store> Engine<S> {
    /// Creates a computer group, empty, under `parent` (`None`: at the top). No rule changes.
    ///
    /// # Errors
    ///
    /// [`EngineError::Reference`] naming `parent` for an unknown parent; the store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::MemoryStore;
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let floor = engine.create_computer_group(Name::new("name", "floor 1")?, Some(office.id))?;
    /// assert_eq!(floor.parent, Some(office.id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> Result<ComputerGroup, EngineError> {
        self.store
            .create_computer_group(name, parent)
            .map_err(refused("parent"))
    }

    /// Moves computer group `id` under `parent` (`None`: to the top), and re-evaluates the rules
    /// of the computers in it and its subgroups: they join or leave the rules of its old and new
    /// ancestors.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`] for the group); [`EngineError::Reference`] naming
    /// `parent` for an unknown parent or a cycle; [`EngineError::Reevaluation`] if
    /// re-evaluating failed (the group is then moved back).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
    /// let lab = engine.create_computer_group(Name::new("name", "lab")?, None)?;
    /// engine.set_computer_group_parent(lab.id, Some(office.id), now)?;
    /// let groups = engine.store().computer_groups()?;
    /// assert!(groups.iter().any(|(g, _)| g.id == lab.id && g.parent == Some(office.id)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
        now: DateTime<Utc>,
    ) -> Result<Changed<()>, EngineError> {
        let store = &self.store;
        let groups = store.computer_groups()?;
        let old = groups
            .iter()
            .find(|(group, _)| group.id == id)
            .map(|(group, _)| group.parent)
            .ok_or_else(|| not_found("computer group", id))?;
        // The members of the moved group and its subgroups join or leave the rules of its old
        // and new ancestors; nobody else does.
        let moved = members_in(&groups, [id]);
        drop(groups);
        let event = RuleEvent::ComputerGroupsChanged {
            computers: Some(moved.into_iter().collect()),
        };
        let before = self.world_for(&event)?;
        self.change(
            PartOf::Event,
            &before,
            now,
            || {
                store
                    .set_computer_group_parent(id, parent)
                    .map_err(refused("parent"))
            },
            |()| event.clone(),
            |()| store.set_computer_group_parent(id, old),
        )
    }

    /// Makes `members` the direct members of computer group `id` (each once), and re-evaluates
    /// the rules of the computers that joined or left it.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`] for the group); [`EngineError::Reference`] naming
    /// `members` for an unknown computer; [`EngineError::Reevaluation`] if re-evaluating failed
    /// (the old members are then put back).
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
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// engine.set_package_group_members(tools.id, &[f.other.id], now)?;
    /// engine.store().create_rule(NewRule::new(Name::new("name", "tools")?, office.id, tools.id, now))?;
    ///
    /// let joined = engine.set_computer_group_members(office.id, &[f.computers[0].id], now)?;
    /// assert_eq!(joined.evaluations[0].inserted, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
        now: DateTime<Utc>,
    ) -> Result<Changed<()>, EngineError> {
        let store = &self.store;
        let old = store
            .computer_groups()?
            .into_iter()
            .find(|(group, _)| group.id == id)
            .map(|(_, members)| members)
            .ok_or_else(|| not_found("computer group", id))?;
        let was: BTreeSet<ComputerId> = old.iter().copied().collect();
        let will: BTreeSet<ComputerId> = members.iter().copied().collect();
        let event = RuleEvent::ComputerGroupsChanged {
            computers: Some(was.symmetric_difference(&will).copied().collect()),
        };
        let before = self.world_for(&event)?;
        self.change(
            PartOf::Event,
            &before,
            now,
            || {
                store
                    .set_computer_group_members(id, members)
                    .map_err(refused("members"))
            },
            |()| event.clone(),
            |()| store.set_computer_group_members(id, &old),
        )
    }

    /// Creates a package group, empty, under `parent` (`None`: at the top). No rule changes.
    ///
    /// # Errors
    ///
    /// [`EngineError::Reference`] naming `parent` for an unknown parent; the store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let base = engine.create_package_group(Name::new("name", "base")?, None)?;
    /// assert_eq!(engine.store().package_groups()?[0].0, base);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> Result<PackageGroup, EngineError> {
        self.store
            .create_package_group(name, parent)
            .map_err(refused("parent"))
    }

    /// Moves package group `id` under `parent` (`None`: to the top), and re-evaluates every
    /// rule whose package group contains it, before or after the move.
    ///
    /// Refused when the move would add conflicts between the versions rules install on some
    /// computer (two versions of one family that remove each other): nothing is written.
    ///
    /// # Errors
    ///
    /// [`EngineError::FamilyConflicts`] with the new conflicts; otherwise as
    /// [`set_computer_group_parent`](Self::set_computer_group_parent).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let base = engine.create_package_group(Name::new("name", "base")?, None)?;
    /// let extra = engine.create_package_group(Name::new("name", "extra")?, None)?;
    /// assert!(engine.set_package_group_parent(extra.id, Some(base.id), now)?.evaluations.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
        now: DateTime<Utc>,
    ) -> Result<Changed<()>, EngineError> {
        let store = &self.store;
        let old = store
            .package_groups()?
            .into_iter()
            .find(|(group, _)| group.id == id)
            .map(|(group, _)| group.parent)
            .ok_or_else(|| not_found("package group", id))?;
        let part = self.package_group_part(id, Some(parent))?;
        // The rules' jobs are read a chunk at a time as they are evaluated.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        let (before, mut after) = world_and_rest(snapshot);
        if let Some(group) = after.deploy.package_groups.iter_mut().find(|g| g.id == id) {
            group.parent = parent;
        }
        complete_packages(self.dyn_store(), &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        drop(after);
        self.change(
            PartOf::Given(part),
            &before,
            now,
            || {
                store
                    .set_package_group_parent(id, parent)
                    .map_err(refused("parent"))
            },
            |()| RuleEvent::PackageGroupsChanged,
            |()| store.set_package_group_parent(id, old),
        )
    }

    /// Makes `members` the packages of package group `id`, in order, and re-evaluates every
    /// rule whose package group contains it. Refused, with nothing written, when the change
    /// would add conflicts between the versions rules install on some computer.
    ///
    /// # Errors
    ///
    /// [`EngineError::Reference`] naming `members` for an unknown package;
    /// [`EngineError::FamilyConflicts`] with the new conflicts; otherwise as
    /// [`set_computer_group_members`](Self::set_computer_group_members).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{Engine, EngineError};
    /// use oco_core::model::Name;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let tools = engine.create_package_group(Name::new("name", "tools")?, None)?;
    /// engine.set_package_group_members(tools.id, &[f.other.id], now)?;
    /// assert_eq!(engine.store().package_groups()?[0].1, [f.other.id]);
    ///
    /// let unknown = oco_core::model::PackageId(99);
    /// let refused = engine.set_package_group_members(tools.id, &[unknown], now);
    /// assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "members"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
        now: DateTime<Utc>,
    ) -> Result<Changed<()>, EngineError> {
        let store = &self.store;
        let old = store
            .package_groups()?
            .into_iter()
            .find(|(group, _)| group.id == id)
            .map(|(_, members)| members)
            .ok_or_else(|| not_found("package group", id))?;
        let part = self.package_group_part(id, None)?;
        // As for a move.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        for &member in members {
            if !snapshot.deploy.packages.contains_key(&member) {
                store.package(member).map_err(|error| match error {
                    StoreError::NotFound { .. } => EngineError::Reference {
                        field: "members".into(),
                        source: not_found("package", member),
                    },
                    other => other.into(),
                })?;
            }
        }
        let (before, mut after) = world_and_rest(snapshot);
        after
            .deploy
            .package_group_members
            .insert(id, members.to_vec());
        complete_packages(self.dyn_store(), &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        drop(after);
        self.change(
            PartOf::Given(part),
            &before,
            now,
            || {
                store
                    .set_package_group_members(id, members)
                    .map_err(refused("members"))
            },
            |()| RuleEvent::PackageGroupsChanged,
            |()| store.set_package_group_members(id, &old),
        )
    }
}

/// [`StoreError::NotFound`] for `what` `id`.
pub(super) fn not_found(what: &'static str, id: impl std::fmt::Display) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}
