//! Jobs: one package to install or uninstall on one computer, from a container or a rule.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ComputerId, ContainerId, JobId, Package, PackageId, Procedure, Revision, RuleId,
    UpgradeBehavior,
};

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Assigned by the store; unique across containers and rules.
    pub id: JobId,
    /// The container or rule it belongs to.
    pub origin: Origin,
    /// The computer it runs on.
    pub computer: ComputerId,
    /// The package it installs or uninstalls.
    pub package: PackageId,
    /// Install or uninstall.
    pub kind: JobKind,
    /// What the agent runs, copied from the package when the job was created (or renewed).
    pub snapshot: JobSnapshot,
    /// Order among this computer's jobs of this origin, from 1.
    pub sequence: u32,
    /// Where the job is in its life.
    pub state: JobState,
    /// Download progress in percent as the agent reports it (101 = unpacking).
    pub download_progress: Option<u8>,
    /// The return code of the final report (-9999 agent error, -8888 aborted by sequence mode).
    pub return_code: Option<i64>,
    /// The agent's output.
    pub output: String,
    /// Why the server finalised or changed the job, if it did.
    pub message: Option<MessageCode>,
    /// The first Downloading report.
    pub download_started: Option<DateTime<Utc>>,
    /// The first Executing report.
    pub execution_started: Option<DateTime<Utc>>,
    /// When the job reached a final state.
    pub finished: Option<DateTime<Utc>>,
    /// When the last accepted agent report on the job arrived (for expiring running jobs that
    /// went silent).
    pub last_report: Option<DateTime<Utc>>,
    /// Wake-on-LAN shutdown mark (see the housekeeping docs).
    pub wol_shutdown: Option<WolShutdown>,
    /// 1, plus one at each renew; reports for earlier attempts are ignored.
    pub attempt: u32,
    /// Bumped by the store at every change; the compare-and-set key.
    pub revision: Revision,
}

impl Job {
    /// A new Waiting job of `kind` for `package` on `computer`, snapshotting the package's
    /// procedure; the store assigns `id` and `revision` when it inserts the job.
    pub fn new(
        origin: Origin,
        computer: ComputerId,
        package: &Package,
        kind: JobKind,
        sequence: u32,
    ) -> Self {
        Job {
            id: JobId(0),
            origin,
            computer,
            package: package.id,
            kind,
            snapshot: JobSnapshot::of(package, kind),
            sequence,
            state: JobState::Waiting,
            download_progress: None,
            return_code: None,
            output: String::new(),
            message: None,
            download_started: None,
            execution_started: None,
            finished: None,
            last_report: None,
            wol_shutdown: None,
            attempt: 1,
            revision: Revision::default(),
        }
    }

    /// Whether the job was finalised by the server (aborted by sequence mode, expired, or created
    /// or marked Incompatible/AlreadyInstalled) rather than by an agent report.
    pub fn finalized_by_server(&self) -> bool {
        match self.state {
            JobState::Expired | JobState::Incompatible | JobState::AlreadyInstalled => true,
            JobState::Failed => self.message == Some(MessageCode::AbortedAfterFailed),
            JobState::Waiting
            | JobState::Downloading
            | JobState::Executing
            | JobState::Succeeded => false,
        }
    }

    /// The wire id the agent sees and echoes: the id on the first attempt, `"<id>.<attempt>"`
    /// after a renew.
    pub fn wire_id(&self) -> String {
        if self.attempt <= 1 {
            self.id.to_string()
        } else {
            format!("{}.{}", self.id, self.attempt)
        }
    }
}

/// The container or rule a job belongs to. Containers order before rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "id")]
pub enum Origin {
    /// A job container.
    Container(ContainerId),
    /// A deployment rule.
    Rule(RuleId),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Container(id) => write!(f, "container {id}"),
            Origin::Rule(id) => write!(f, "rule {id}"),
        }
    }
}

/// Install or uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Install the package.
    Install,
    /// Uninstall the package.
    Uninstall,
}

/// What the agent runs, copied from the package when the job is created or renewed, so that
/// editing a package does not change jobs already handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSnapshot {
    /// The install or uninstall procedure, by the job's kind.
    pub procedure: Procedure,
    /// Whether the agent downloads the payload first.
    pub download: bool,
    /// The package's upgrade behaviour.
    pub upgrade_behavior: UpgradeBehavior,
}

impl JobSnapshot {
    /// The snapshot of `package` for a job of `kind`.
    pub fn of(package: &Package, kind: JobKind) -> Self {
        let (procedure, download) = match kind {
            JobKind::Install => (&package.install, package.has_payload),
            JobKind::Uninstall => (
                &package.uninstall,
                package.has_payload && package.download_for_uninstall,
            ),
        };
        JobSnapshot {
            procedure: procedure.clone(),
            download,
            upgrade_behavior: package.upgrade_behavior,
        }
    }
}

/// The states of a job, with OCO's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Pending, not started (0).
    Waiting,
    /// The agent reported download start or progress (1).
    Downloading,
    /// The agent reported execution start or output (2).
    Executing,
    /// Final: the return code was accepted (3).
    Succeeded,
    /// Final: rejected return code, agent error (-9999) or aborted by sequence mode (-8888) (-1).
    Failed,
    /// Final: the container ended before the job started (-2).
    Expired,
    /// Final: the package is not compatible with the computer (-3).
    Incompatible,
    /// Final: nothing to do, the package is installed (-5).
    AlreadyInstalled,
}

impl JobState {
    /// Every state, in wire-code order of the table in the docs.
    pub const ALL: [JobState; 8] = [
        JobState::Waiting,
        JobState::Downloading,
        JobState::Executing,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Expired,
        JobState::Incompatible,
        JobState::AlreadyInstalled,
    ];

    /// OCO's numeric code.
    pub fn wire_code(self) -> i8 {
        match self {
            JobState::Waiting => 0,
            JobState::Downloading => 1,
            JobState::Executing => 2,
            JobState::Succeeded => 3,
            JobState::Failed => -1,
            JobState::Expired => -2,
            JobState::Incompatible => -3,
            JobState::AlreadyInstalled => -5,
        }
    }

    /// The state with OCO's numeric code `code`, if any.
    pub fn from_wire_code(code: i64) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| i64::from(state.wire_code()) == code)
    }

    /// Waiting, Downloading or Executing.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            JobState::Waiting | JobState::Downloading | JobState::Executing
        )
    }

    /// Downloading or Executing: the agent has begun.
    pub fn is_running(self) -> bool {
        matches!(self, JobState::Downloading | JobState::Executing)
    }

    /// Not pending.
    pub fn is_final(self) -> bool {
        !self.is_pending()
    }

    /// Failed or Expired: what an administrator may renew.
    pub fn is_failed_like(self) -> bool {
        matches!(self, JobState::Failed | JobState::Expired)
    }
}

/// Why the server changed a job: a code, rendered to text where it is displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageCode {
    /// An earlier job of the computer in the origin failed (sequence mode abort-after-failed).
    AbortedAfterFailed,
    /// The container ended before the job started.
    Expired,
    /// The container ended and the running job had no report for too long.
    ExpiredStale,
    /// The agent reported success with a return code the package does not accept.
    ReturnCodeRejected,
}

impl MessageCode {
    /// The code as text, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageCode::AbortedAfterFailed => "aborted-after-failed",
            MessageCode::Expired => "expired",
            MessageCode::ExpiredStale => "expired-stale",
            MessageCode::ReturnCodeRejected => "return-code-rejected",
        }
    }
}

/// Wake-on-LAN shutdown mark on a computer's last pending job of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mark")]
pub enum WolShutdown {
    /// Set when the wake packets were sent to an offline computer; confirmed by a poll within
    /// the expiry window, cleared by a later first poll (someone switched the computer on).
    Pending {
        /// When the wake packets were sent.
        since: DateTime<Utc>,
    },
    /// The computer came up through Wake-on-LAN: the job carries a shutdown.
    Confirmed,
}
