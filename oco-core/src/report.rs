//! Agent reports: the job state machine and what a report changes.
//!
//! An agent's `update_job_state` becomes an [`AgentReport`]; [`apply_report`] decides, from a
//! [`ReportSnapshot`] read in one consistent state, what the report changes and returns it as a
//! [`ReportOutcome`]: the [`ChangeSet`] to apply, whether the report was applied or ignored (and
//! why), and the computers whose assignments changed. Nothing is written here.
//!
//! The state machine is enforced: progress reports only move a pending job forward, a final
//! report finalises a pending job once, a late success on a job the server finalised is recorded,
//! and everything else is ignored (and still answered normally by the server).
//!
//! # Examples
//!
//! ```
//! use oco_core::report::{apply_report, AgentReport, Disposition, ReportedState};
//! # use oco_core::chrono::{TimeZone, Utc};
//! # use oco_core::model::*;
//! # use oco_core::store::{Change, ReportSnapshot};
//! # let name = |v: &str| Name::new("version", v).unwrap();
//! # let package = Package {
//! #     id: PackageId(7), family: FamilyId(1), version: name("1.0"),
//! #     install: Procedure::default(), uninstall: Procedure::default(),
//! #     payload: None, download_for_uninstall: false,
//! #     upgrade_behavior: UpgradeBehavior::KeepOthers, compatibility: Compatibility::default(),
//! #     dependencies: vec![],
//! # };
//! # let mut job = Job::new(Origin::Container(ContainerId(1)), ComputerId(3), &package, JobKind::Install, 1);
//! # job.id = JobId(42);
//! # job.revision = Revision(1);
//! # let snapshot = ReportSnapshot {
//! #     job, deleted: false, sequence_mode: SequenceMode::IgnoreFailed, origin_jobs: vec![],
//! #     family_assignments: vec![], assignment_revision: Revision(5),
//! # };
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
//! let state = ReportedState::from_wire_code(3)?;
//! let report = AgentReport {
//!     job: JobId(42), attempt: 1, state, return_code: Some(0),
//!     download_progress: None, output: Some("done".into()),
//! };
//! let outcome = apply_report(&snapshot, ComputerId(3), &report, now)?;
//! assert_eq!(outcome.disposition, Disposition::Applied);
//! assert_eq!(outcome.reevaluate, vec![ComputerId(3)]);
//! assert!(matches!(&outcome.changes.changes[1], Change::UpdateJob { job, .. } if job.state == JobState::Succeeded));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Assignment, ComputerId, Job, JobId, JobKind, JobState, MessageCode, Origin, SequenceMode,
    ServerFinal, UpgradeBehavior,
};
use crate::store::{Change, ChangeSet, ReportSnapshot};

/// What an agent's `update_job_state` says about one job.
///
/// The server parses the wire id `"<id>.<attempt>"` into `job` and `attempt` (attempt 1 when the
/// id has no suffix) and the state code with [`ReportedState::from_wire_code`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The reported job.
    pub job: JobId,
    /// The attempt of the job the agent was handed.
    pub attempt: u32,
    /// The state the agent reports.
    pub state: ReportedState,
    /// The return code, on final reports (`None` on a success counts as 0).
    pub return_code: Option<i64>,
    /// Download progress in percent (101 = unpacking), if reported.
    pub download_progress: Option<u8>,
    /// The job's output so far, if reported; it replaces the stored output.
    pub output: Option<String>,
}

impl AgentReport {
    /// A report of `state` for `attempt` of `job`, with no return code, progress or output; the
    /// `with_*` methods add them.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::model::JobId;
    /// use oco_core::report::{AgentReport, ReportedState};
    ///
    /// let failed = AgentReport::new(JobId(7), 1, ReportedState::Failed)
    ///     .with_return_code(1603)
    ///     .with_output("MSI error 1603");
    /// assert_eq!(failed.return_code, Some(1603));
    /// assert_eq!(failed.download_progress, None);
    /// ```
    pub fn new(job: JobId, attempt: u32, state: ReportedState) -> Self {
        AgentReport {
            job,
            attempt,
            state,
            return_code: None,
            download_progress: None,
            output: None,
        }
    }

    /// The report with this return code.
    #[must_use]
    pub fn with_return_code(self, code: i64) -> Self {
        AgentReport {
            return_code: Some(code),
            ..self
        }
    }

    /// The report with this download progress, in percent (101: unpacking).
    #[must_use]
    pub fn with_download_progress(self, percent: u8) -> Self {
        AgentReport {
            download_progress: Some(percent),
            ..self
        }
    }

    /// The report with this output, which replaces the stored output.
    #[must_use]
    pub fn with_output(self, output: impl Into<String>) -> Self {
        AgentReport {
            output: Some(output.into()),
            ..self
        }
    }
}

/// The states an agent may report, with OCO's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportedState {
    /// Download started or progressed (1).
    Downloading,
    /// Execution started or produced output (2).
    Executing,
    /// Finished; the server checks the return code (3).
    Succeeded,
    /// Failed, e.g. an agent error with return code -9999 (-1).
    Failed,
}

impl ReportedState {
    /// The reported state with OCO's wire code `code`: 1, 2, 3 or -1.
    ///
    /// # Errors
    ///
    /// [`UnknownState`] for any other code, 0 (Waiting) and the server-only final states
    /// included; the server answers 400.
    pub fn from_wire_code(code: i64) -> Result<ReportedState, UnknownState> {
        match code {
            1 => Ok(ReportedState::Downloading),
            2 => Ok(ReportedState::Executing),
            3 => Ok(ReportedState::Succeeded),
            -1 => Ok(ReportedState::Failed),
            _ => Err(UnknownState { code }),
        }
    }

    /// OCO's wire code.
    pub fn wire_code(self) -> i64 {
        match self {
            ReportedState::Downloading => 1,
            ReportedState::Executing => 2,
            ReportedState::Succeeded => 3,
            ReportedState::Failed => -1,
        }
    }
}

/// A state code an agent may not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownState {
    /// The code received.
    pub code: i64,
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown job state {}: an agent reports 1, 2, 3 or -1",
            self.code
        )
    }
}

impl std::error::Error for UnknownState {}

/// A report that must be refused rather than answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportError {
    /// The job belongs to another computer; the server answers 401.
    ForeignJob {
        /// The reported job.
        job: JobId,
        /// The computer the job belongs to.
        owner: ComputerId,
        /// The computer that reported.
        reporter: ComputerId,
    },
    /// The snapshot is of another job than the report names: a caller bug.
    JobMismatch {
        /// The job the report names.
        reported: JobId,
        /// The job in the snapshot.
        snapshot: JobId,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::ForeignJob {
                job,
                owner,
                reporter,
            } => write!(
                f,
                "job {job} belongs to computer {owner}, not to the reporting computer {reporter}"
            ),
            ReportError::JobMismatch { reported, snapshot } => write!(
                f,
                "the report is about job {reported} but the snapshot holds job {snapshot}"
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// What a report changes.
///
/// `changes` is ordered: an [`Change::ExpectAssignments`] precondition first when the
/// assignments change, then the reported job's [`Change::UpdateJob`], then jobs aborted by
/// sequence mode in `(sequence, id)` order, then the assignment writes (deletes by package id,
/// then the upsert). Every `UpdateJob` expects the revision in the snapshot. An ignored report has
/// no changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use = "a report's outcome holds the writes it decided; apply its `changes`"]
pub struct ReportOutcome {
    /// The writes to apply atomically.
    pub changes: ChangeSet,
    /// Whether the report was applied, or why not.
    pub disposition: Disposition,
    /// Computers for which rules must be re-evaluated after the change set is applied (with
    /// [`RuleEvent::AssignmentsChanged`](crate::rules::RuleEvent::AssignmentsChanged)): the job's
    /// computer when its assignments changed, or when a rule's job stopped running (changes
    /// left alone while it ran catch up). Empty or the job's computer.
    pub reevaluate: Vec<ComputerId>,
}

/// Whether a report was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// The report changed the job or the assignments (see [`ReportOutcome::changes`]).
    Applied,
    /// The state machine ignored the report; it is answered normally and may be logged.
    Ignored(IgnoredReport),
}

/// Why a report was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum IgnoredReport {
    /// The report is for an earlier attempt of a renewed job.
    EarlierAttempt {
        /// The job's attempt.
        current: u32,
    },
    /// The report is for an attempt later than the job's: one never handed out.
    LaterAttempt {
        /// The job's attempt.
        current: u32,
    },
    /// A progress report that would move the pending job backward (Downloading on Executing).
    Backward {
        /// The job's state.
        state: JobState,
    },
    /// The job was finalised by an earlier agent report.
    AlreadyFinal {
        /// The job's state.
        state: JobState,
    },
    /// A report other than an accepted success on a job the server finalised, which keeps the
    /// server's reason.
    ServerFinal {
        /// The job's state.
        state: JobState,
    },
    /// A report other than an accepted success on a deleted job (a tombstone).
    DeletedJob,
    /// An accepted success on a deleted job whose assignment already records it (the assignment
    /// of the job's package names the job): a repeated report.
    DeletedJobRecorded,
}

impl fmt::Display for IgnoredReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoredReport::EarlierAttempt { current } => {
                write!(
                    f,
                    "report for an earlier attempt (the job is at attempt {current})"
                )
            }
            IgnoredReport::LaterAttempt { current } => write!(
                f,
                "report for an attempt never handed out (the job is at attempt {current})"
            ),
            IgnoredReport::Backward { state } => {
                write!(f, "report would move the job backward (it is {state})")
            }
            IgnoredReport::AlreadyFinal { state } => {
                write!(f, "the job was already finalised by the agent ({state})")
            }
            IgnoredReport::ServerFinal { state } => write!(
                f,
                "the job was finalised by the server ({state}) and the report is not a success"
            ),
            IgnoredReport::DeletedJob => {
                f.write_str("the job was deleted and the report is not a success")
            }
            IgnoredReport::DeletedJobRecorded => {
                f.write_str("the job was deleted and its success is already recorded")
            }
        }
    }
}

/// Decides what `report`, sent by computer `reporter` at `now`, changes.
///
/// The rules, in order:
/// - a report for another attempt than the job's is ignored (earlier: a renewed job; later: an
///   attempt never handed out, so nothing the agent could have run);
/// - on a tombstone (`snapshot.deleted`), an accepted success runs assignment bookkeeping only
///   (the job is not written); anything else, and any report when the tombstone was already
///   finalised by an agent, is ignored ([`IgnoredReport::DeletedJob`]). A success is also ignored
///   when `snapshot.family_assignments` already holds the assignment (computer, package) with
///   `job == Some(job id)` ([`IgnoredReport::DeletedJobRecorded`]): a tombstone is never written,
///   so the assignment is the only trace of an earlier success, and a repeated report must not
///   move `installed_at` or run the implicit removal again. The remaining edge: once an
///   uninstall (or another version's implicit removal) has removed that assignment, a repeated
///   success on the tombstone finds no trace and adds the assignment again;
/// - a Downloading/Executing report moves a pending job forward; a same-state repeat updates
///   progress, output and `last_report` (and is written even if progress and output did not
///   change, so `last_report` tracks the agent's liveness); a backward report is ignored;
/// - a final report finalises a pending job (`finished = now`) after the return-code check (a
///   success with a code the procedure does not accept becomes Failed with
///   [`MessageCode::ReturnCodeRejected`]; a null code on success counts as, and is stored as, 0);
/// - an accepted success on a job the server finalised is recorded (state, code, output,
///   `finished`, and the server's message cleared); anything else on it is ignored;
/// - any report on a job an agent finalised is ignored;
/// - when the job becomes Failed in an abort-after-failed origin, the computer's Waiting jobs of
///   the origin with a higher sequence fail with -8888;
/// - when the job becomes Succeeded, the assignments are updated and `reevaluate` names the
///   computer.
///
/// Every accepted report sets `last_report = Some(now)`; `download_started` and
/// `execution_started` are set by the first report of their state and never overwritten.
///
/// # Errors
///
/// [`ReportError::JobMismatch`] if `report.job` is not the snapshot's job;
/// [`ReportError::ForeignJob`] if the job belongs to another computer than `reporter`.
pub fn apply_report(
    snapshot: &ReportSnapshot,
    reporter: ComputerId,
    report: &AgentReport,
    now: DateTime<Utc>,
) -> Result<ReportOutcome, ReportError> {
    let job = &snapshot.job;
    if report.job != job.id {
        return Err(ReportError::JobMismatch {
            reported: report.job,
            snapshot: job.id,
        });
    }
    if job.computer != reporter {
        return Err(ReportError::ForeignJob {
            job: job.id,
            owner: job.computer,
            reporter,
        });
    }
    if report.attempt < job.attempt {
        return Ok(ReportOutcome::ignored(IgnoredReport::EarlierAttempt {
            current: job.attempt,
        }));
    }
    if report.attempt > job.attempt {
        return Ok(ReportOutcome::ignored(IgnoredReport::LaterAttempt {
            current: job.attempt,
        }));
    }

    if snapshot.deleted {
        return Ok(tombstone(snapshot, report, now));
    }
    if job.state.is_pending() {
        return Ok(match progress_state(report.state) {
            Some(state) => progress(job, state, report, now),
            None => finalise(snapshot, report, now),
        });
    }
    if !job.finalized_by_server() {
        return Ok(ReportOutcome::ignored(IgnoredReport::AlreadyFinal {
            state: job.state,
        }));
    }
    match verdict(job, report) {
        Verdict {
            state: JobState::Succeeded,
            return_code,
            ..
        } => {
            let mut new = job.clone();
            new.state = JobState::Succeeded;
            new.return_code = return_code;
            // The server's reason no longer describes the job: the agent finalised it.
            new.message = None;
            new.finished = Some(now);
            take_details(&mut new, report, now);
            Ok(assemble(
                now,
                snapshot,
                Some(new),
                Vec::new(),
                assignments(snapshot, now),
            ))
        }
        _ => Ok(ReportOutcome::ignored(IgnoredReport::ServerFinal {
            state: job.state,
        })),
    }
}

impl ReportOutcome {
    fn ignored(reason: IgnoredReport) -> Self {
        ReportOutcome {
            changes: ChangeSet::default(),
            disposition: Disposition::Ignored(reason),
            reevaluate: Vec::new(),
        }
    }
}

/// The final state a final report amounts to after the return-code check.
struct Verdict {
    state: JobState,
    return_code: Option<i64>,
    message: Option<MessageCode>,
}

fn verdict(job: &Job, report: &AgentReport) -> Verdict {
    match report.state {
        ReportedState::Succeeded => {
            let code = report.return_code.unwrap_or(0);
            if job.snapshot.procedure.success_codes.accepts(code) {
                Verdict {
                    state: JobState::Succeeded,
                    return_code: Some(code),
                    message: None,
                }
            } else {
                Verdict {
                    state: JobState::Failed,
                    return_code: Some(code),
                    message: Some(MessageCode::ReturnCodeRejected),
                }
            }
        }
        ReportedState::Failed | ReportedState::Downloading | ReportedState::Executing => Verdict {
            state: JobState::Failed,
            return_code: report.return_code,
            message: None,
        },
    }
}

/// The pending state a progress report names, or `None` for a final report.
fn progress_state(state: ReportedState) -> Option<JobState> {
    match state {
        ReportedState::Downloading => Some(JobState::Downloading),
        ReportedState::Executing => Some(JobState::Executing),
        ReportedState::Succeeded | ReportedState::Failed => None,
    }
}

/// Order of the pending states; a report never lowers it.
fn pending_rank(state: JobState) -> u8 {
    match state {
        JobState::Downloading => 1,
        JobState::Executing => 2,
        _ => 0,
    }
}

fn progress(job: &Job, state: JobState, report: &AgentReport, now: DateTime<Utc>) -> ReportOutcome {
    if pending_rank(state) < pending_rank(job.state) {
        return ReportOutcome::ignored(IgnoredReport::Backward { state: job.state });
    }
    let mut new = job.clone();
    new.state = state;
    let started = match state {
        JobState::Downloading => &mut new.download_started,
        _ => &mut new.execution_started,
    };
    started.get_or_insert(now);
    take_details(&mut new, report, now);
    ReportOutcome {
        changes: ChangeSet {
            changes: vec![update(job, new)],
        },
        disposition: Disposition::Applied,
        reevaluate: Vec::new(),
    }
}

fn finalise(snapshot: &ReportSnapshot, report: &AgentReport, now: DateTime<Utc>) -> ReportOutcome {
    let job = &snapshot.job;
    let verdict = verdict(job, report);
    let mut new = job.clone();
    new.state = verdict.state;
    new.return_code = verdict.return_code;
    new.message = verdict.message;
    new.finished = Some(now);
    take_details(&mut new, report, now);
    match verdict.state {
        JobState::Succeeded => assemble(
            now,
            snapshot,
            Some(new),
            Vec::new(),
            assignments(snapshot, now),
        ),
        _ => assemble(now, snapshot, Some(new), cascade(snapshot, now), Vec::new()),
    }
}

fn tombstone(snapshot: &ReportSnapshot, report: &AgentReport, now: DateTime<Utc>) -> ReportOutcome {
    let job = &snapshot.job;
    // A tombstone an agent had finalised already ran (or refused) its bookkeeping; running it
    // again could re-add an assignment removed since.
    let agent_final = job.state.is_final() && !job.finalized_by_server();
    if agent_final || verdict(job, report).state != JobState::Succeeded {
        return ReportOutcome::ignored(IgnoredReport::DeletedJob);
    }
    // The tombstone is never written, so its assignment is the only sign that this success was
    // already recorded.
    let recorded = snapshot.family_assignments.iter().any(|assignment| {
        assignment.computer == job.computer
            && assignment.package == job.package
            && assignment.job == Some(job.id)
    });
    if recorded {
        return ReportOutcome::ignored(IgnoredReport::DeletedJobRecorded);
    }
    assemble(now, snapshot, None, Vec::new(), assignments(snapshot, now))
}

/// Copies progress and output from the report, when given, and notes the report.
fn take_details(job: &mut Job, report: &AgentReport, now: DateTime<Utc>) {
    if let Some(progress) = report.download_progress {
        job.download_progress = Some(progress);
    }
    if let Some(output) = &report.output {
        job.output.clone_from(output);
    }
    job.last_report = Some(now);
}

fn update(old: &Job, new: Job) -> Change {
    Change::UpdateJob {
        expected: old.revision,
        job: new,
    }
}

/// The -8888 cascade of abort-after-failed, in `(sequence, id)` order; empty in other modes.
fn cascade(snapshot: &ReportSnapshot, now: DateTime<Utc>) -> Vec<Change> {
    if snapshot.sequence_mode != SequenceMode::AbortAfterFailed {
        return Vec::new();
    }
    let failed = &snapshot.job;
    let mut aborted: Vec<&Job> = snapshot
        .origin_jobs
        .iter()
        .filter(|other| {
            other.id != failed.id
                && other.computer == failed.computer
                && other.origin == failed.origin
                && other.state == JobState::Waiting
                && other.sequence > failed.sequence
        })
        .collect();
    aborted.sort_by_key(|other| (other.sequence, other.id));
    aborted
        .into_iter()
        .map(|other| {
            let mut new = other.clone();
            new.finalize_by_server(ServerFinal::AbortedAfterFailed, now);
            update(other, new)
        })
        .collect()
}

/// The assignment writes of a success: deletes (by package id), then the upsert.
fn assignments(snapshot: &ReportSnapshot, now: DateTime<Utc>) -> Vec<Change> {
    let job = &snapshot.job;
    match job.kind {
        JobKind::Install => {
            let mut changes = Vec::new();
            if job.snapshot.upgrade_behavior == UpgradeBehavior::ImplicitRemove {
                let mut others: Vec<_> = snapshot
                    .family_assignments
                    .iter()
                    .filter(|a| a.computer == job.computer && a.package != job.package)
                    .map(|a| a.package)
                    .collect();
                others.sort();
                others.dedup();
                changes.extend(others.into_iter().map(|package| Change::DeleteAssignment {
                    computer: job.computer,
                    package,
                }));
            }
            changes.push(Change::UpsertAssignment {
                assignment: Assignment {
                    computer: job.computer,
                    package: job.package,
                    installed_at: now,
                    job: Some(job.id),
                },
            });
            changes
        }
        JobKind::Uninstall => vec![Change::DeleteAssignment {
            computer: job.computer,
            package: job.package,
        }],
    }
}

/// Puts an applied outcome together in the documented order.
fn assemble(
    now: DateTime<Utc>,
    snapshot: &ReportSnapshot,
    new: Option<Job>,
    cascade: Vec<Change>,
    assignments: Vec<Change>,
) -> ReportOutcome {
    let computer = snapshot.job.computer;
    let mut changes = Vec::with_capacity(2 + cascade.len() + assignments.len());
    let mut reevaluate = Vec::new();
    if !assignments.is_empty() {
        changes.push(Change::ExpectAssignments {
            computer,
            expected: snapshot.assignment_revision,
        });
        reevaluate.push(computer);
    }
    if let Some(new) = &new {
        // A rule job that stops running may be behind its rule (a sequence or compatibility
        // change while it ran was left alone): re-evaluate the computer.
        let rule_job_done = matches!(snapshot.job.origin, Origin::Rule(_))
            && snapshot.job.state.is_running()
            && new.state.is_final();
        if rule_job_done && !reevaluate.contains(&computer) {
            reevaluate.push(computer);
        }
    }
    if let Some(new) = new {
        // A rule no longer wants an orphaned job: at its final report it goes, leaving its final
        // state in the tombstone.
        let delete = (snapshot.job.orphaned && new.state.is_final()).then(|| Change::DeleteJob {
            id: snapshot.job.id,
            computer: snapshot.job.computer,
            expected: snapshot.job.revision.next(),
            at: now,
        });
        changes.push(update(&snapshot.job, new));
        changes.extend(delete);
    }
    changes.extend(cascade);
    changes.extend(assignments);
    ReportOutcome {
        changes: ChangeSet { changes },
        disposition: Disposition::Applied,
        reevaluate,
    }
}
