//! Containers: deploy and uninstall.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::chrono::{DateTime, Utc};
use crate::deploy::{deploy, uninstall, DeployRequest, UninstallRequest};
use crate::model::{ComputerId, JobContainer, JobId, PackageId};
use crate::store::{Change, ChangeSet, Store, StoreError};

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
