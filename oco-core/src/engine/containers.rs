//! Containers: deploy, uninstall, renew, edit, enable or disable, delete, statistics; and the
//! renewal of a rule's jobs.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::Serialize;

use super::{Engine, EngineError};
use crate::chrono::{DateTime, Utc};
use crate::deploy::{
    deploy, renew_in_place, renew_into_container, uninstall, ContainerSettings, DeployRequest,
    Renewal, UninstallRequest,
};
use crate::housekeeping::{container_statistics_of, ContainerStatistics};
use crate::model::{
    Computer, ComputerId, ContainerId, Job, JobContainer, JobId, Name, Origin, Package, PackageId,
    RuleId,
};
use crate::store::{Change, ChangeSet, JobFilter, Page, Store, StoreError};

/// A container created with its jobs: [`Engine::deploy`], [`Engine::uninstall`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Deployed {
    /// The container, with its id.
    pub container: JobContainer,
    /// Its jobs, in the order created: each computer's, numbered in sequence.
    pub jobs: Vec<CreatedJob>,
}

/// A job created by a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct CreatedJob {
    /// Its id.
    pub id: JobId,
    /// The computer it is for.
    pub computer: ComputerId,
    /// The package it installs or uninstalls.
    pub package: PackageId,
    /// Its place in the computer's sequence.
    pub sequence: u32,
}

impl<S: Store> Engine<S> {
    /// Creates a container with one job per target computer and package (dependencies added,
    /// other versions uninstalled where a package asks for it; see [`deploy`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::Deploy`] when the core refuses (an unknown id, a dependency cycle,
    /// conflicting versions, no jobs); the store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, Name, Procedure};
    /// use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let store = engine.store();
    /// let pcs = [store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?.id,
    ///            store.create_computer(NewComputer::new(Name::hostname("hostname", "pc2")?))?.id];
    /// let family = store.create_family(Name::new("name", "Editor")?)?;
    /// let package =
    ///     store.create_package(NewPackage::new(family.id, Name::new("version", "1.0")?, Procedure::new("x")))?;
    /// let container = ContainerSettings::new(Name::new("name", "Editor")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(container).with_computers(pcs).with_packages([package.id]);
    /// let deployed = engine.deploy(&request, now)?;
    /// assert_eq!(deployed.jobs.len(), 2);
    /// assert_eq!(store.container(deployed.container.id)?.name.as_str(), "Editor");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deploy(
        &self,
        request: &DeployRequest,
        now: DateTime<Utc>,
    ) -> Result<Deployed, EngineError> {
        let snapshot = self.store.deploy_snapshot()?;
        let changes = deploy(request, &snapshot, now)?;
        drop(snapshot);
        self.create(changes)
    }

    /// Creates a container with one uninstall job per (computer, package) assignment named.
    ///
    /// # Errors
    ///
    /// [`EngineError::Deploy`] when the core refuses (an unknown id, a pair not assigned, no
    /// pairs); the store's.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, UninstallRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, JobKind, Name};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc, package) = (fixture.computers[0].id, fixture.other.id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let _ = engine.assign(pc, package, now)?; // installed by hand
    /// let container = ContainerSettings::new(Name::new("name", "remove")?, now, DeliveryPolicy::default());
    /// let removal = engine.uninstall(&UninstallRequest::new(container, [(pc, package)]), now)?;
    /// assert_eq!(engine.store().job(removal.jobs[0].id)?.kind, JobKind::Uninstall);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uninstall(
        &self,
        request: &UninstallRequest,
        now: DateTime<Utc>,
    ) -> Result<Deployed, EngineError> {
        let snapshot = self.store.deploy_snapshot()?;
        let changes = uninstall(request, &snapshot, now)?;
        drop(snapshot);
        self.create(changes)
    }

    /// Applies a change set that creates one container, and says what it created.
    fn create(&self, changes: ChangeSet) -> Result<Deployed, EngineError> {
        let applied = self.store.apply(&changes)?;
        let created = changes.changes.into_iter().find_map(|change| match change {
            Change::CreateContainer { container, jobs } => Some((container, jobs)),
            _ => None,
        });
        let broken = |reason: &str| StoreError::Invalid {
            reason: reason.into(),
        };
        let (Some((mut container, jobs)), Some(&id)) = (created, applied.containers.first()) else {
            return Err(broken("the store created no container for the change set").into());
        };
        if jobs.len() != applied.jobs.len() {
            return Err(broken(
                "the store assigned another number of job ids than jobs were created",
            )
            .into());
        }
        container.id = id;
        // The store assigns the ids in the order of the change set's jobs.
        let jobs = jobs
            .iter()
            .zip(&applied.jobs)
            .map(|(job, &id)| CreatedJob {
                id,
                computer: job.computer,
                package: job.package,
                sequence: job.sequence,
            })
            .collect();
        Ok(Deployed { container, jobs })
    }
}

/// What a renewal did: [`Engine::renew_container`], [`Engine::renew_rule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Renewed {
    /// The jobs renewed (into a new container: the old jobs that got a fresh copy).
    pub renewed: Vec<JobId>,
    /// Jobs left as they are because their package no longer fits their computer, or already
    /// Incompatible.
    pub incompatible: Vec<JobId>,
    /// Jobs not renewed for another reason (not failed-like, gone package or computer, …).
    pub skipped: Vec<JobId>,
    /// The new container, when renewed into one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub container: Option<ContainerId>,
}

impl<S: Store> Engine<S> {
    /// Renews the failed-like jobs of container `id` that `jobs` names (all of them for
    /// `None`): in place (attempt + 1, Waiting again), or, with `into`, as copies in a new
    /// container of that name with the old one's settings (see
    /// [`renew_in_place`]/[`renew_into_container`]).
    ///
    /// The jobs are written with compare-and-set on their revisions; when an agent's report
    /// moves one meanwhile, the jobs are read and the renewal decided again, up to
    /// [`admin_attempts`](super::EngineOptions::admin_attempts) times.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`] for the container); [`EngineError::Reference`]
    /// naming `jobs` for an id that is not one of the container's; [`EngineError::Deploy`];
    /// [`EngineError::Contended`] after the attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::report::{AgentReport, ReportedState};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let pc = f.computers[0].id;
    /// let settings = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let deployed = engine.deploy(&DeployRequest::new(settings).with_computers([pc]).with_packages([f.other.id]), now)?;
    /// let job = deployed.jobs[0].id;
    /// engine.report(pc, AgentReport::new(job, 1, ReportedState::Failed).with_return_code(1), now)?;
    ///
    /// let renewed = engine.renew_container(deployed.container.id, None, None, now)?;
    /// assert_eq!(renewed.renewed, [job]);
    /// assert_eq!(engine.store().job(job)?.attempt, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_container(
        &self,
        id: ContainerId,
        jobs: Option<&[JobId]>,
        into: Option<Name>,
        now: DateTime<Utc>,
    ) -> Result<Renewed, EngineError> {
        let container = self.store.container(id)?;
        self.renew(Origin::Container(id), jobs, |jobs, packages, computers| {
            Ok(match &into {
                Some(name) => {
                    renew_into_container(&container, jobs, packages, computers, name.clone(), now)?
                }
                None => renew_in_place(jobs, packages, computers),
            })
        })
    }

    /// Renews the failed-like jobs of rule `id` that `jobs` names (all of them for `None`) in
    /// place; retried as [`renew_container`](Self::renew_container).
    ///
    /// # Errors
    ///
    /// As [`renew_container`](Self::renew_container), for the rule.
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
    /// assert!(engine.renew_rule(rule.id, None)?.renewed.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_rule(&self, id: RuleId, jobs: Option<&[JobId]>) -> Result<Renewed, EngineError> {
        self.store.rule(id)?;
        self.renew(Origin::Rule(id), jobs, |jobs, packages, computers| {
            Ok(renew_in_place(jobs, packages, computers))
        })
    }

    /// Edits container `id`'s settings: its name, notes, whether it is enabled, schedule,
    /// policy, Wake-on-LAN choices and self-service flag. Its id, creation time and whether its
    /// Wake-on-LAN packets were sent are kept. Returns the container as written. An edit racing
    /// another edit: the last one wins.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let settings = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(settings.clone()).with_computers([f.computers[0].id]).with_packages([f.other.id]);
    /// let id = engine.deploy(&request, now)?.container.id;
    ///
    /// let renamed = settings.with_notes("for the lab");
    /// assert_eq!(engine.edit_container(id, renamed)?.notes, "for the lab");
    /// assert_eq!(engine.store().container(id)?.notes, "for the lab");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn edit_container(
        &self,
        id: ContainerId,
        settings: ContainerSettings,
    ) -> Result<JobContainer, EngineError> {
        self.update_container(id, |container| {
            container.name = settings.name;
            container.notes = settings.notes;
            container.enabled = settings.enabled;
            container.schedule = settings.schedule;
            container.policy = settings.policy;
            // Whether the packets were sent is the server's, not the administrator's.
            container.wol.wake = settings.wol.wake;
            container.wol.shutdown_after = settings.wol.shutdown_after;
            container.self_service = settings.self_service;
        })
    }

    /// Enables or disables container `id` (a disabled container's jobs are held). Returns the
    /// container as written.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let settings = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(settings).with_computers([f.computers[0].id]).with_packages([f.other.id]);
    /// let id = engine.deploy(&request, now)?.container.id;
    /// assert!(!engine.set_container_enabled(id, false)?.enabled);
    /// assert!(engine.poll(f.computers[0].id, "10.0.0.7".parse()?, now)?.deliver.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_container_enabled(
        &self,
        id: ContainerId,
        enabled: bool,
    ) -> Result<JobContainer, EngineError> {
        self.update_container(id, |container| container.enabled = enabled)
    }

    /// Deletes container `id` with its jobs; the jobs leave tombstones, so that an agent running
    /// one still gets its success recorded (housekeeping purges them later).
    ///
    /// The jobs are deleted with compare-and-set on their revisions, so that no report is lost
    /// in between; when one moves meanwhile, they are read again, up to
    /// [`admin_attempts`](super::EngineOptions::admin_attempts) times.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]); [`EngineError::Contended`] after the attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let settings = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(settings).with_computers([f.computers[0].id]).with_packages([f.other.id]);
    /// let deployed = engine.deploy(&request, now)?;
    /// engine.delete_container(deployed.container.id, now)?;
    /// assert!(engine.store().container(deployed.container.id).is_err());
    /// assert!(engine.store().job(deployed.jobs[0].id).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_container(&self, id: ContainerId, now: DateTime<Utc>) -> Result<(), EngineError> {
        self.store.container(id)?;
        let attempts = self.options.admin_attempts.get();
        for _ in 0..attempts {
            let jobs = self.chosen_jobs(Origin::Container(id), None)?;
            let set = ChangeSet {
                changes: vec![Change::DeleteContainer {
                    id,
                    jobs: jobs.iter().map(|job| (job.id, job.revision)).collect(),
                    at: now,
                }],
            };
            match self.store.apply(&set) {
                Ok(_) => return Ok(()),
                // A report moved one of its jobs meanwhile: read them again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Contended {
            operation: "container deletion",
            attempts,
        })
    }

    /// Container `id`'s statistics at `now`: where its jobs are, its runtimes.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::housekeeping::ContainerStatus;
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::store::{testkit, MemoryStore};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let f = testkit::fixture(engine.store());
    /// let settings = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(settings).with_computers([f.computers[0].id]).with_packages([f.other.id]);
    /// let id = engine.deploy(&request, now)?.container.id;
    /// assert_eq!(engine.container_statistics(id, now)?.status, ContainerStatus::Waiting);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn container_statistics(
        &self,
        id: ContainerId,
        now: DateTime<Utc>,
    ) -> Result<ContainerStatistics, EngineError> {
        let container = self.store.container(id)?;
        let summary = self.store.job_summary(Origin::Container(id))?;
        Ok(container_statistics_of(&container, &summary, now))
    }

    /// Reads the jobs of `origin` that `wanted` names and their packages and computers, lets
    /// `decide` renew them, and applies the renewal (if it writes anything); a lost race reads
    /// and decides again.
    fn renew(
        &self,
        origin: Origin,
        wanted: Option<&[JobId]>,
        decide: impl Fn(
            &[Job],
            &BTreeMap<PackageId, Package>,
            &BTreeMap<ComputerId, Computer>,
        ) -> Result<Renewal, EngineError>,
    ) -> Result<Renewed, EngineError> {
        let attempts = self.options.admin_attempts.get();
        for _ in 0..attempts {
            let jobs = self.chosen_jobs(origin, wanted)?;
            let (packages, computers) = self.renew_inputs(&jobs)?;
            let renewal = decide(&jobs, &packages, &computers)?;
            drop((jobs, packages, computers));
            let container = if renewal.changes.is_empty() {
                None
            } else {
                match self.store.apply(&renewal.changes) {
                    Ok(applied) => applied.containers.first().copied(),
                    // A report moved one of the jobs meanwhile: read them again.
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(error) => return Err(error.into()),
                }
            };
            return Ok(Renewed {
                renewed: renewal.renewed,
                incompatible: renewal.incompatible,
                skipped: renewal.skipped,
                container,
            });
        }
        Err(EngineError::Contended {
            operation: "renewal",
            attempts,
        })
    }

    /// Replaces container `id` with `edit` applied to it.
    fn update_container(
        &self,
        id: ContainerId,
        edit: impl FnOnce(&mut JobContainer),
    ) -> Result<JobContainer, EngineError> {
        let mut container = self.store.container(id)?;
        edit(&mut container);
        self.store.apply(&ChangeSet {
            changes: vec![Change::UpdateContainer {
                container: container.clone(),
            }],
        })?;
        Ok(container)
    }

    /// Every job of `origin`, by id, without its output: what is read of a container's or a
    /// rule's jobs (to delete, renew, count them) is then bounded by their number, not by what
    /// their agents printed. A renewal clears the output of the jobs it writes anyway.
    fn all_jobs(&self, origin: Origin) -> Result<Vec<Job>, EngineError> {
        const CHUNK: usize = 10_000;
        let filter = JobFilter {
            origin: Some(origin),
            ..JobFilter::default()
        };
        let mut jobs = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.list_jobs_abridged(
                &filter,
                Page {
                    after,
                    limit: CHUNK,
                },
                0,
            )?;
            let full = page.len() == CHUNK;
            after = page.last().map(|listed| listed.job.id.0);
            jobs.extend(page.into_iter().map(|listed| listed.job));
            if !full {
                return Ok(jobs);
            }
        }
    }

    /// The jobs of `origin` that `wanted` names (all when `None`); [`EngineError::Reference`]
    /// naming `jobs` for an id that is not one of them.
    fn chosen_jobs(
        &self,
        origin: Origin,
        wanted: Option<&[JobId]>,
    ) -> Result<Vec<Job>, EngineError> {
        let jobs = self.all_jobs(origin)?;
        let Some(wanted) = wanted else {
            return Ok(jobs);
        };
        if let Some(missing) = wanted.iter().find(|id| !jobs.iter().any(|j| j.id == **id)) {
            return Err(EngineError::Reference {
                field: "jobs".into(),
                source: StoreError::NotFound {
                    what: "job",
                    id: format!("{missing} of {origin}"),
                },
            });
        }
        Ok(jobs
            .into_iter()
            .filter(|j| wanted.contains(&j.id))
            .collect())
    }

    /// The current packages and computers of `jobs`, for renewing them.
    #[allow(clippy::type_complexity)]
    fn renew_inputs(
        &self,
        jobs: &[Job],
    ) -> Result<(BTreeMap<PackageId, Package>, BTreeMap<ComputerId, Computer>), EngineError> {
        let mut packages = BTreeMap::new();
        let mut computers = BTreeMap::new();
        for job in jobs {
            if let Entry::Vacant(entry) = packages.entry(job.package) {
                entry.insert(self.store.package(job.package)?);
            }
            if let Entry::Vacant(entry) = computers.entry(job.computer) {
                entry.insert(self.store.computer(job.computer)?);
            }
        }
        Ok((packages, computers))
    }
}
