//! What an engine operation can fail with.

use std::fmt;

use crate::deploy::DeployError;
use crate::model::{ComputerId, DependencyCycle, InvalidField, JobId, PackageId, RuleId};
use crate::report::ReportError;
use crate::rules::Conflict;
use crate::store::StoreError;

use super::Evaluated;

/// Why an [`Engine`](super::Engine) operation did not happen, or happened only in part.
///
/// Every variant but [`Reevaluation`](EngineError::Reevaluation) means that nothing was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed or refused (an unknown id, a duplicate name, a backend failure, …).
    Store(StoreError),
    /// A reference in the request names nothing, or the store refused it; `field` says which
    /// (`"family"`, `"dependencies[2]"`, `"computer_group"`, `"members"`, `"parent"`, …).
    Reference {
        /// The request's field.
        field: String,
        /// Why.
        source: StoreError,
    },
    /// A value breaks a rule of the model (a package moving to another family, …).
    Invalid(InvalidField),
    /// The core refused to create jobs.
    Deploy(DeployError),
    /// A package would depend on itself, through its dependencies.
    DependencyCycle(DependencyCycle),
    /// The change would add conflicts between the versions deployment rules install on some
    /// computers (a rule being created appears as rule 0).
    FamilyConflicts(Vec<Conflict>),
    /// An assignment to remove does not exist.
    NotAssigned {
        /// The computer.
        computer: ComputerId,
        /// The package.
        package: PackageId,
    },
    /// The rule is being deleted: it can no longer be changed or evaluated.
    RuleBeingDeleted(RuleId),
    /// A report names a job that does not exist and never did (no tombstone either).
    UnknownJob(JobId),
    /// A report names a job of another computer than the one reporting.
    ForeignJob {
        /// The job.
        job: JobId,
        /// The computer it belongs to.
        owner: ComputerId,
        /// The computer that reported.
        reporter: ComputerId,
    },
    /// The operation lost the compare-and-set race on every one of its attempts: the data it
    /// decided on kept changing under it. Nothing was written; trying again later may succeed.
    Contended {
        /// The operation (`"report"`, `"housekeeping"`, …).
        operation: &'static str,
        /// How many times it was decided and lost.
        attempts: usize,
    },
    /// The write succeeded, but re-evaluating the deployment rules it concerns failed; `undo`
    /// says what became of the write.
    Reevaluation {
        /// Why the re-evaluation failed.
        source: StoreError,
        /// What became of the write.
        undo: Box<Undo>,
    },
}

/// What became of a write whose rule re-evaluation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Undo {
    /// The write was undone; the rules it had already re-evaluated were repaired (evaluated in
    /// full again) with this result.
    Undone {
        /// The repair's evaluations, or why it failed.
        repair: Result<Vec<Evaluated>, StoreError>,
    },
    /// Undoing the write failed too: it stands, and its rules are re-evaluated only by the next
    /// change that concerns them.
    Failed(StoreError),
    /// The write cannot be undone (a deletion): it stands.
    NotPossible,
}

impl EngineError {
    /// The store's error underneath, if this is one (a [`Reevaluation`](Self::Reevaluation)'s
    /// source included).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            EngineError::Store(error)
            | EngineError::Reference { source: error, .. }
            | EngineError::Reevaluation { source: error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        EngineError::Store(error)
    }
}

impl From<DeployError> for EngineError {
    fn from(error: DeployError) -> Self {
        EngineError::Deploy(error)
    }
}

impl From<InvalidField> for EngineError {
    fn from(error: InvalidField) -> Self {
        EngineError::Invalid(error)
    }
}

impl From<DependencyCycle> for EngineError {
    fn from(error: DependencyCycle) -> Self {
        EngineError::DependencyCycle(error)
    }
}

impl From<ReportError> for EngineError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::ForeignJob {
                job,
                owner,
                reporter,
            } => EngineError::ForeignJob {
                job,
                owner,
                reporter,
            },
            // The engine reads the snapshot of the job the report names: a store that answers
            // with another job is broken.
            ReportError::JobMismatch { .. } => EngineError::Store(StoreError::Invalid {
                reason: error.to_string(),
            }),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Store(error) => error.fmt(f),
            EngineError::Reference { field, source } => write!(f, "{field}: {source}"),
            EngineError::Invalid(error) => error.fmt(f),
            EngineError::Deploy(error) => error.fmt(f),
            EngineError::DependencyCycle(cycle) => cycle.fmt(f),
            EngineError::FamilyConflicts(conflicts) => write!(
                f,
                "the change would add {} conflict(s) between package versions",
                conflicts.len()
            ),
            EngineError::NotAssigned { computer, package } => {
                write!(
                    f,
                    "computer {computer} has no assignment of package {package}"
                )
            }
            EngineError::RuleBeingDeleted(rule) => write!(f, "rule {rule} is being deleted"),
            EngineError::UnknownJob(job) => write!(f, "unknown job {job}"),
            EngineError::ForeignJob {
                job,
                owner,
                reporter,
            } => write!(
                f,
                "job {job} belongs to computer {owner}, not to the reporting computer {reporter}"
            ),
            EngineError::Contended {
                operation,
                attempts,
            } => write!(
                f,
                "{operation} lost {attempts} compare-and-set races in a row; nothing was written"
            ),
            EngineError::Reevaluation { source, undo } => {
                write!(f, "re-evaluating rules after the change failed: {source}; ")?;
                match undo.as_ref() {
                    Undo::Undone { repair: Ok(_) } => f.write_str("the change was undone"),
                    Undo::Undone { repair: Err(error) } => write!(
                        f,
                        "the change was undone, but repairing its rules failed: {error}"
                    ),
                    Undo::Failed(error) => write!(f, "undoing the change failed: {error}"),
                    Undo::NotPossible => f.write_str("the change stands"),
                }
            }
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Store(error)
            | EngineError::Reference { source: error, .. }
            | EngineError::Reevaluation { source: error, .. } => Some(error),
            EngineError::Deploy(error) => Some(error),
            _ => None,
        }
    }
}
