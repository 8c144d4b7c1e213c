//! An administrator's operations on computers: create, update, delete, reset an agent, and set
//! or remove assignments by hand.

use serde::Serialize;

use super::change::{Changed, PartOf};
use super::{Engine, EngineError, Evaluated};
use crate::chrono::{DateTime, Utc};
use crate::model::{Assignment, Computer, ComputerId, JobId, PackageId};
use crate::rules::{RuleEvent, RuleWorld};
use crate::store::{AgentCredentials, Change, ChangeSet, NewComputer, Store, StoreError};

/// What deleting a computer did: [`Engine::delete_computer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ComputerDeleted {
    /// The computer's jobs that were pending (Waiting, Downloading or Executing) when it was
    /// deleted: an agent may have been handed them, and their outcome will not be recorded.
    /// Their tombstones stay until housekeeping purges them.
    pub unfinished_jobs: Vec<JobId>,
    /// What re-evaluating the rules that had the computer did (other computers' claims
    /// settled).
    pub evaluations: Vec<Evaluated>,
}

impl<S: Store> Engine<S> {
    /// Creates a computer and evaluates the rules that concern it (none until it joins a
    /// computer group).
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::Duplicate`] for a hostname taken);
    /// [`EngineError::Reevaluation`] if re-evaluating failed (the computer is then deleted
    /// again).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, NewComputer, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let created = engine.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?), now)?;
    /// assert!(created.evaluations.is_empty());
    /// assert_eq!(engine.store().computer(created.value.id)?.hostname.as_str(), "pc1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_computer(
        &self,
        computer: NewComputer,
        now: DateTime<Utc>,
    ) -> Result<Changed<Computer>, EngineError> {
        let store = &self.store;
        // A new computer is in no group yet, so no rule had it before.
        self.change(
            PartOf::Event,
            &RuleWorld::default(),
            now,
            || Ok(store.create_computer(computer)?),
            |computer| RuleEvent::ComputerChanged {
                computer: computer.id,
            },
            // A computer just created has no jobs: nothing to keep.
            |computer| store.delete_computer(computer.id, now).map(drop),
        )
    }

    /// Replaces the stored computer of `computer.id` with `computer` (its platform decides
    /// which of its rules' packages fit) and re-evaluates its rules.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`], [`StoreError::Duplicate`] for a hostname taken);
    /// [`EngineError::Reevaluation`] if re-evaluating failed (the old computer is then put
    /// back).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let mut pc = testkit::fixture(engine.store()).computers[0].clone();
    /// pc.os_version = "12".into();
    /// engine.update_computer(pc.clone(), now)?;
    /// assert_eq!(engine.store().computer(pc.id)?.os_version, "12");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_computer(
        &self,
        computer: Computer,
        now: DateTime<Utc>,
    ) -> Result<Changed<Computer>, EngineError> {
        let store = &self.store;
        let old = store.computer(computer.id)?;
        let event = RuleEvent::ComputerChanged {
            computer: computer.id,
        };
        let before = self.world_for(&event)?;
        self.change(
            PartOf::Event,
            &before,
            now,
            || Ok(store.update_computer(&computer)?),
            |()| event.clone(),
            |()| store.update_computer(&old),
        )
        .map(|changed| Changed {
            value: computer,
            evaluations: changed.evaluations,
        })
    }

    /// Deletes a computer with its jobs and assignments (pending jobs leave tombstones) and
    /// re-evaluates the rules that had it, which settles other computers' claims.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]); [`EngineError::Reevaluation`] with
    /// [`Undo::NotPossible`](super::Undo::NotPossible) if re-evaluating failed: the computer
    /// stays deleted, and the next change of those rules evaluates them again.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let pc = testkit::fixture(engine.store()).computers[0].id;
    /// let deleted = engine.delete_computer(pc, now)?;
    /// assert!(deleted.unfinished_jobs.is_empty());
    /// assert!(engine.store().computer(pc).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_computer(
        &self,
        id: ComputerId,
        now: DateTime<Utc>,
    ) -> Result<ComputerDeleted, EngineError> {
        self.store.computer(id)?;
        let event = RuleEvent::ComputerDeleted { computer: id };
        let before = self.world_for(&event)?;
        let unfinished_jobs = self.store.delete_computer(id, now)?;
        // The store deleted the computer's jobs with it; this settles the other rules' claims.
        let evaluations = self.reevaluate_after(&event, event.part().as_ref(), &before, now)?;
        Ok(ComputerDeleted {
            unfinished_jobs,
            evaluations,
        })
    }

    /// Resets a computer's agent to first contact
    /// ([`AgentCredentials::reset_to_first_contact`]): for an agent locked out by a bad
    /// timestamp, or reinstalled with the global key. Returns the credentials written.
    ///
    /// The credentials are written with a compare-and-set; when a hello or report of the agent
    /// changes them meanwhile, they are read and reset again, up to
    /// [`admin_attempts`](super::EngineOptions::admin_attempts) times.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]); [`EngineError::Contended`] after the attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let pc = testkit::fixture(engine.store()).computers[0].id;
    /// let reset = engine.reset_agent(pc)?;
    /// assert!(reset.agent_key.is_none() && reset.last_hello.is_none());
    /// assert_eq!(engine.store().credentials(pc)?, reset);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_agent(&self, id: ComputerId) -> Result<AgentCredentials, EngineError> {
        let attempts = self.options.admin_attempts.get();
        for _ in 0..attempts {
            let credentials = self.store.credentials(id)?;
            let reset = credentials.reset_to_first_contact();
            let set = ChangeSet {
                changes: vec![Change::SetCredentials {
                    computer: id,
                    expected: credentials,
                    credentials: reset.clone(),
                }],
            };
            match self.store.apply(&set) {
                Ok(_) => return Ok(reset),
                // A hello or report of the agent changed them meanwhile: read them again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Contended {
            operation: "agent reset",
            attempts,
        })
    }

    /// Records by hand that `package` is installed on `computer` (now, by no job), and
    /// re-evaluates the computer's rules. Returns the assignment.
    ///
    /// The assignments are written with a compare-and-set on their revision; when an agent's
    /// report changes them meanwhile, they are read and written again, up to
    /// [`admin_attempts`](super::EngineOptions::admin_attempts) times.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`] for the computer or the package);
    /// [`EngineError::Contended`] after the attempts; [`EngineError::Reevaluation`] if
    /// re-evaluating failed (the assignments are then put back).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let (pc, package) = (f.computers[0].id, f.other.id);
    /// let assigned = engine.assign(pc, package, now)?;
    /// assert_eq!(assigned.value.installed_at, now);
    /// assert_eq!(engine.store().assignments(pc)?.0, [assigned.value]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn assign(
        &self,
        computer: ComputerId,
        package: PackageId,
        now: DateTime<Utc>,
    ) -> Result<Changed<Assignment>, EngineError> {
        self.store.computer(computer)?;
        self.store.package(package)?;
        let assignment = Assignment {
            computer,
            package,
            installed_at: now,
            job: None,
        };
        self.change_assignments("assignment", computer, now, |assignments| {
            let previous = assignments.into_iter().find(|a| a.package == package);
            Ok((
                Change::UpsertAssignment {
                    assignment: assignment.clone(),
                },
                restore(computer, package, previous),
                assignment.clone(),
            ))
        })
    }

    /// Removes the record that `package` is installed on `computer`, and re-evaluates the
    /// computer's rules. Returns the assignment removed. Retried as [`assign`](Self::assign).
    ///
    /// # Errors
    ///
    /// [`EngineError::NotAssigned`]; otherwise as [`assign`](Self::assign).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{Engine, EngineError};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let (pc, package) = (f.computers[0].id, f.other.id);
    /// engine.assign(pc, package, now)?;
    /// assert_eq!(engine.unassign(pc, package, now)?.value.package, package);
    /// assert!(engine.store().assignments(pc)?.0.is_empty());
    /// assert!(matches!(engine.unassign(pc, package, now), Err(EngineError::NotAssigned { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unassign(
        &self,
        computer: ComputerId,
        package: PackageId,
        now: DateTime<Utc>,
    ) -> Result<Changed<Assignment>, EngineError> {
        self.store.computer(computer)?;
        self.change_assignments("unassignment", computer, now, |assignments| {
            let previous = assignments
                .into_iter()
                .find(|a| a.package == package)
                .ok_or(EngineError::NotAssigned { computer, package })?;
            Ok((
                Change::DeleteAssignment { computer, package },
                restore(computer, package, Some(previous.clone())),
                previous,
            ))
        })
    }

    /// Reads `computer`'s assignments, lets `decide` say what to change (the change, the change
    /// set that undoes it, and what to return), and writes the change with a compare-and-set on
    /// the assignments' revision, re-evaluating the computer's rules; a lost race reads and
    /// decides again.
    fn change_assignments<T>(
        &self,
        operation: &'static str,
        computer: ComputerId,
        now: DateTime<Utc>,
        decide: impl Fn(Vec<Assignment>) -> Result<(Change, ChangeSet, T), EngineError>,
    ) -> Result<Changed<T>, EngineError> {
        let store = &self.store;
        let event = RuleEvent::AssignmentsChanged { computer };
        let attempts = self.options.admin_attempts.get();
        for _ in 0..attempts {
            let (assignments, revision) = store.assignments(computer)?;
            let (change, undo, value) = decide(assignments)?;
            let before = self.world_for(&event)?;
            let set = ChangeSet {
                changes: vec![
                    Change::ExpectAssignments {
                        computer,
                        expected: revision,
                    },
                    change,
                ],
            };
            let changed = self.change(
                PartOf::Event,
                &before,
                now,
                || Ok(store.apply(&set)?),
                |_| event.clone(),
                |_| store.apply(&undo).map(drop),
            );
            match changed {
                // An agent's report changed the assignments since they were read.
                Err(EngineError::Store(StoreError::Conflict { .. })) => continue,
                result => {
                    return result.map(|changed| Changed {
                        value,
                        evaluations: changed.evaluations,
                    })
                }
            }
        }
        Err(EngineError::Contended {
            operation,
            attempts,
        })
    }
}

/// The change set that puts `previous` back (or removes the record if there was none).
fn restore(computer: ComputerId, package: PackageId, previous: Option<Assignment>) -> ChangeSet {
    ChangeSet {
        changes: vec![match previous {
            Some(assignment) => Change::UpsertAssignment { assignment },
            None => Change::DeleteAssignment { computer, package },
        }],
    }
}
