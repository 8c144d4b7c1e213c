use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AgentCredentials, ServerState};
use crate::model::{
    Assignment, ComputerId, ContainerId, Job, JobContainer, JobId, PackageId, Revision, RuleId,
};

/// Writes the core decided on, applied by a store atomically: all of them or none.
///
/// Every update or delete of a job names the revision it was computed from; a change set that
/// depends on a computer's assignments names that computer's assignment revision. If any
/// precondition fails, nothing is written and the store returns
/// [`StoreError::Conflict`](super::StoreError::Conflict).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[must_use = "a change set writes nothing until a store applies it"]
pub struct ChangeSet {
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Appends a change.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Appends all changes of `other`.
    pub fn extend(&mut self, other: ChangeSet) {
        self.changes.extend(other.changes);
    }
}

/// One write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
#[must_use = "a change writes nothing until a store applies it"]
pub enum Change {
    /// Creates a container and its jobs; the store assigns the ids, sets each job's origin to the
    /// new container and its revision to 1.
    CreateContainer {
        /// The container (its id is ignored).
        container: JobContainer,
        /// Its jobs (ids and origins ignored).
        jobs: Vec<Job>,
    },
    /// Replaces a container's fields (edit, enable, Wake-on-LAN sent). Its jobs are untouched.
    UpdateContainer {
        /// The container as it should be.
        container: JobContainer,
    },
    /// Deletes a container and its jobs (an administrator's delete, or housekeeping's purge), if
    /// its jobs are still exactly `jobs` at those revisions (a job renewed or added since the
    /// decision is a conflict).
    ///
    /// Each job leaves a tombstone dated `at`, as [`Change::DeleteJob`] does: an agent may have
    /// been handed a job and still run it, and its late success must still record the
    /// installation. Tombstones of the container's earlier deleted jobs are kept too; only
    /// [`Change::PurgeTombstones`] forgets tombstones.
    DeleteContainer {
        /// Which.
        id: ContainerId,
        /// Every job of the container with the revision it was read at.
        jobs: Vec<(JobId, Revision)>,
        /// When it was deleted (the tombstones' age, for purging them).
        at: DateTime<Utc>,
    },
    /// Records that a container's wake packets were sent at `at`; a conflict if they already were
    /// (two housekeeping runs racing). Unlike `UpdateContainer` it cannot undo an edit made since.
    MarkWolSent {
        /// Which.
        container: ContainerId,
        /// When the packets were sent.
        at: DateTime<Utc>,
    },
    /// Inserts a job into an existing origin; the store assigns the id and sets revision 1.
    InsertJob {
        /// The job (its id is ignored).
        job: Job,
    },
    /// Inserts a rule's new jobs from their compact form, taking each job's snapshot from its
    /// package as it writes it (as [`NewJob::to_job`](crate::rules::NewJob::to_job) does); ids
    /// assigned by the store, revision 1.
    InsertRuleJobs {
        /// The rule.
        rule: RuleId,
        /// When the evaluation ran (the finish time of Incompatible and AlreadyInstalled jobs).
        at: DateTime<Utc>,
        /// The jobs.
        jobs: crate::rules::NewJobs,
    },
    /// Replaces a job, if its stored revision is still `expected`; the store bumps the revision.
    UpdateJob {
        /// The revision the change was computed from.
        expected: Revision,
        /// The job as it should be.
        job: Job,
    },
    /// Deletes a job, if its stored revision is still `expected`, keeping a tombstone so that a
    /// late success report still records the installation.
    DeleteJob {
        /// Which.
        id: JobId,
        /// Its computer (a job never moves, so this is the job's own; a store refuses a
        /// deletion that names another computer). Told so that whoever watches writes, a
        /// cache say, knows which computer changed without reading the job.
        computer: ComputerId,
        /// The revision the change was computed from.
        expected: Revision,
        /// When it was deleted (the tombstone's age, for purging it).
        at: DateTime<Utc>,
    },
    /// Forgets the tombstones of jobs deleted before `deleted_before` (housekeeping); the only
    /// change that removes tombstones (deleting an origin or a computer keeps them).
    PurgeTombstones {
        /// The cut-off.
        deleted_before: DateTime<Utc>,
    },
    /// Records that a package is installed on a computer (replacing an existing record), and bumps
    /// the computer's assignment revision.
    UpsertAssignment {
        /// The record.
        assignment: Assignment,
    },
    /// Removes the record that a package is installed on a computer (if any), and bumps the
    /// computer's assignment revision.
    DeleteAssignment {
        /// The computer.
        computer: ComputerId,
        /// The package.
        package: PackageId,
    },
    /// Replaces a computer's agent credentials, if they are still `expected` (two hellos of one
    /// computer racing, or a key change since they were read, is a conflict): how the server
    /// makes a hello's timestamp and keys durable in a group commit.
    SetCredentials {
        /// The computer.
        computer: ComputerId,
        /// The credentials the change was computed from.
        expected: AgentCredentials,
        /// The credentials as they should be.
        credentials: AgentCredentials,
    },
    /// Records that the computer's agent was seen at `at`; an earlier time than the stored one
    /// is ignored (the server coalesces these and may flush them out of order).
    SetLastSeen {
        /// The computer.
        computer: ComputerId,
        /// When its agent was seen.
        at: DateTime<Utc>,
    },
    /// Replaces the server-wide state.
    SetServerState {
        /// The state as it should be.
        state: ServerState,
    },
    /// A precondition only: the computer's assignment revision must still be `expected`.
    ExpectAssignments {
        /// The computer.
        computer: ComputerId,
        /// The assignment revision the change set was computed from.
        expected: Revision,
    },
}

/// What a store did with a change set: the ids it assigned, in the order of the changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Ids of created containers.
    pub containers: Vec<ContainerId>,
    /// Ids of inserted jobs, those of created containers included.
    pub jobs: Vec<JobId>,
}
