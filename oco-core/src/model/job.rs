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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub download_progress: Option<u8>,
    /// The return code of the final report (-9999 agent error, -8888 aborted by sequence mode).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub return_code: Option<i64>,
    /// The agent's output.
    pub output: String,
    /// Why the server finalised or changed the job, if it did.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub message: Option<MessageCode>,
    /// The first Downloading report.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub download_started: Option<DateTime<Utc>>,
    /// The first Executing report.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub execution_started: Option<DateTime<Utc>>,
    /// When the job reached a final state.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finished: Option<DateTime<Utc>>,
    /// When the last accepted agent report on the job arrived (for expiring running jobs that
    /// went silent).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_report: Option<DateTime<Utc>>,
    /// Wake-on-LAN shutdown mark (see the housekeeping docs).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub wol_shutdown: Option<WolShutdown>,
    /// A rule no longer wants this running job: it is deleted when its final report arrives.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub orphaned: bool,
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
            orphaned: false,
            attempt: 1,
            revision: Revision::default(),
        }
    }

    /// Finalises the job as the server does, without an agent report: sets the state and
    /// message of `how`, `finished = Some(now)`, and return code -8888 for an abort. The agent's
    /// output is kept. Afterwards [`finalized_by_server`](Job::finalized_by_server) is true, so a
    /// late success report is still recorded.
    pub fn finalize_by_server(&mut self, how: ServerFinal, now: DateTime<Utc>) {
        let (state, message) = how.state_and_message();
        self.state = state;
        self.message = message;
        if how == ServerFinal::AbortedAfterFailed {
            self.return_code = Some(-8888);
        }
        self.finished = Some(now);
    }

    /// Whether the job was finalised by the server (aborted by sequence mode, expired, or created
    /// or marked Incompatible/AlreadyInstalled) rather than by an agent report.
    pub fn finalized_by_server(&self) -> bool {
        is_server_final(self.state, self.message)
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

/// Whether a job in `state` with `message` was finalised by the server.
fn is_server_final(state: JobState, message: Option<MessageCode>) -> bool {
    match state {
        JobState::Expired | JobState::Incompatible | JobState::AlreadyInstalled => true,
        JobState::Failed => message == Some(MessageCode::AbortedAfterFailed),
        JobState::Waiting | JobState::Downloading | JobState::Executing | JobState::Succeeded => {
            false
        }
    }
}

/// The container or rule a job belongs to. Containers order before rules.
///
/// Its text is `container:<id>` or `rule:<id>`: `Display` prints it, `FromStr` reads it (spaces
/// around either part allowed), and serde uses it, so a job's `origin` in a JSON body is spelt
/// as the `?origin=` filter that finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A job container.
    Container(ContainerId),
    /// A deployment rule.
    Rule(RuleId),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Container(id) => write!(f, "container:{id}"),
            Origin::Rule(id) => write!(f, "rule:{id}"),
        }
    }
}

impl std::str::FromStr for Origin {
    type Err = super::InvalidField;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            super::InvalidField::new(
                "origin",
                format!("`{text}` is not an origin: `container:<id>` or `rule:<id>`"),
            )
        };
        let (kind, id) = text.split_once(':').ok_or_else(invalid)?;
        let id: i64 = id.trim().parse().map_err(|_| invalid())?;
        match kind.trim() {
            "container" => Ok(Origin::Container(ContainerId(id))),
            "rule" => Ok(Origin::Rule(RuleId(id))),
            _ => Err(invalid()),
        }
    }
}

crate::text_serde::serde_as_text!(Origin);

/// The ways the server finalises a job without an agent report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerFinal {
    /// Failed with -8888: an earlier job of the computer in the origin failed (sequence mode).
    AbortedAfterFailed,
    /// Expired: the container ended before the job started.
    Expired,
    /// Expired: the container ended and the running job had no report for too long.
    ExpiredStale,
    /// Incompatible: the package does not fit the computer.
    Incompatible,
    /// AlreadyInstalled: nothing to do.
    AlreadyInstalled,
}

impl ServerFinal {
    /// The state and message a job finalised this way has.
    pub fn state_and_message(self) -> (JobState, Option<MessageCode>) {
        match self {
            ServerFinal::AbortedAfterFailed => {
                (JobState::Failed, Some(MessageCode::AbortedAfterFailed))
            }
            ServerFinal::Expired => (JobState::Expired, Some(MessageCode::Expired)),
            ServerFinal::ExpiredStale => (JobState::Expired, Some(MessageCode::ExpiredStale)),
            ServerFinal::Incompatible => (JobState::Incompatible, None),
            ServerFinal::AlreadyInstalled => (JobState::AlreadyInstalled, None),
        }
    }
}

/// Install or uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Install the package.
    Install,
    /// Uninstall the package.
    Uninstall,
}

/// What the agent runs, copied from the package when the job is created or renewed, so that
/// editing a package does not change jobs already handed out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        let (procedure, download) = Self::source(package, kind);
        JobSnapshot {
            procedure: procedure.clone(),
            download,
            upgrade_behavior: package.upgrade_behavior,
        }
    }

    /// Whether this is what [`JobSnapshot::of`] would take from `package` now (without copying
    /// anything).
    pub fn is_current(&self, package: &Package, kind: JobKind) -> bool {
        let (procedure, download) = Self::source(package, kind);
        self.procedure == *procedure
            && self.download == download
            && self.upgrade_behavior == package.upgrade_behavior
    }

    /// The procedure and download flag of `package` for a job of `kind`.
    fn source(package: &Package, kind: JobKind) -> (&Procedure, bool) {
        match kind {
            JobKind::Install => (&package.install, package.has_payload()),
            JobKind::Uninstall => (
                &package.uninstall,
                package.has_payload() && package.download_for_uninstall,
            ),
        }
    }
}

/// The states of a job, with OCO's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl fmt::Display for JobState {
    /// The state's name in kebab-case, as serde writes it (`"already-installed"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Waiting => "waiting",
            JobState::Downloading => "downloading",
            JobState::Executing => "executing",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
            JobState::Incompatible => "incompatible",
            JobState::AlreadyInstalled => "already-installed",
        })
    }
}

/// Why the server changed a job: a code, rendered to text where it is displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl fmt::Display for MessageCode {
    /// The code as [`as_str`](MessageCode::as_str) gives it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wake-on-LAN shutdown mark on a computer's last pending job of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{Compatibility, FamilyId, Name, PackageId, Procedure, UpgradeBehavior};

    #[test]
    fn origins_are_one_text_everywhere() {
        let cases = [
            (Origin::Container(ContainerId(1)), "container:1"),
            (Origin::Rule(RuleId(42)), "rule:42"),
        ];
        for (origin, text) in cases {
            assert_eq!(origin.to_string(), text);
            assert_eq!(text.parse::<Origin>().unwrap(), origin);
            assert_eq!(serde_json::to_value(origin).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<Origin>(text.into()).unwrap(),
                origin
            );
        }
        assert_eq!(
            " rule : 7 ".parse::<Origin>().unwrap(),
            Origin::Rule(RuleId(7))
        );
        for bad in [
            "container",
            "container:",
            "box:1",
            "rule:x",
            "container 1",
            "",
        ] {
            let err = bad.parse::<Origin>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("origin: `{bad}` is not an origin: `container:<id>` or `rule:<id>`")
            );
        }
        let old_form = serde_json::json!({"kind": "container", "id": 1});
        assert!(serde_json::from_value::<Origin>(old_form).is_err());
    }

    fn waiting_job() -> Job {
        let package = Package {
            id: PackageId(7),
            family: FamilyId(1),
            version: Name::new("version", "1.0").unwrap(),
            install: Procedure::default(),
            uninstall: Procedure::default(),
            payload: None,
            download_for_uninstall: false,
            upgrade_behavior: UpgradeBehavior::KeepOthers,
            compatibility: Compatibility::default(),
            dependencies: vec![],
        };
        Job::new(
            Origin::Container(ContainerId(1)),
            ComputerId(3),
            &package,
            JobKind::Install,
            1,
        )
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn every_server_finalisation_is_recognised_as_one() {
        for how in [
            ServerFinal::AbortedAfterFailed,
            ServerFinal::Expired,
            ServerFinal::ExpiredStale,
            ServerFinal::Incompatible,
            ServerFinal::AlreadyInstalled,
        ] {
            let mut job = waiting_job();
            job.output = "kept".into();
            job.finalize_by_server(how, now());
            assert_eq!((job.state, job.message), how.state_and_message());
            assert_eq!(job.finished, Some(now()), "{how:?}");
            assert_eq!(job.output, "kept", "{how:?}");
            assert!(job.finalized_by_server(), "{how:?}");
        }
    }

    #[test]
    fn an_abort_fails_with_minus_8888() {
        let mut job = waiting_job();
        job.finalize_by_server(ServerFinal::AbortedAfterFailed, now());
        assert_eq!(job.return_code, Some(-8888));
        assert_eq!(job.state, JobState::Failed);
    }

    #[test]
    fn an_agent_failure_is_not_a_server_finalisation() {
        let mut job = waiting_job();
        job.state = JobState::Failed;
        job.message = Some(MessageCode::ReturnCodeRejected);
        assert!(!job.finalized_by_server());
        job.message = None;
        assert!(!job.finalized_by_server());
    }

    #[test]
    fn job_state_display_is_the_serde_name() {
        for state in JobState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
        assert_eq!(JobState::AlreadyInstalled.to_string(), "already-installed");
    }

    #[test]
    fn message_code_display_is_as_str_and_the_serde_name() {
        for code in [
            MessageCode::AbortedAfterFailed,
            MessageCode::Expired,
            MessageCode::ExpiredStale,
            MessageCode::ReturnCodeRejected,
        ] {
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
    }
}
