//! How the SQL stores encode values in columns: enums as their kebab-case text, instants as
//! nanoseconds since the Unix epoch, revisions as signed integers, constraints as canonical
//! text, lists as text; and the decoders of whole rows.
//!
//! The SQLite and PostgreSQL stores keep the same values in the same columns, so the encoding is
//! written once, here, free of any driver: a store gives its driver's row to the decoders
//! through the small [`SqlRow`] trait (typed access to a column by index) and binds the plain
//! values the encoders return. Each decoder documents the columns it reads, in order; the SQL
//! that selects them is the store's.
//!
//! Column decoders return `Result<_, String>` with a reason naming the column; the row decoders
//! wrap it into [`StoreError::Corrupt`] with the row's kind and id ([`corrupt`]).
//!
//! ```
//! use oco_core::model::JobState;
//! use oco_core::store::columns::{self, TextEnum};
//!
//! assert_eq!(JobState::AlreadyInstalled.text(), "already-installed");
//! assert_eq!(columns::parse_column::<JobState>("state", "failed"), Ok(JobState::Failed));
//! assert_eq!(
//!     columns::parse_column::<JobState>("state", "lost"),
//!     Err("state: `lost` is not a job state".to_owned())
//! );
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::thread::LocalKey;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{
    AdminToken, AgentContact, AgentCredentials, NewAdminToken, StoreError, StoreResult, TokenAccess,
};
use crate::constraint::{IpRanges, TimeFrames};
use crate::model::{
    Assignment, Compatibility, Computer, ComputerGroupId, ComputerId, ContainerId, DeliveryPolicy,
    DeploymentRule, FamilyId, InvalidField, Job, JobContainer, JobId, JobKind, JobSnapshot,
    JobState, MacAddress, MessageCode, Name, Origin, Package, PackageGroupId, PackageId, Payload,
    PostAction, Priority, Procedure, Revision, RuleId, Schedule, SequenceMode, SuccessCodes,
    TokenId, UpgradeBehavior, WolSettings, WolShutdown,
};

/// One row of a query's result, as a store's driver gives it: the value of a column by index,
/// of the type the decoder expects.
///
/// Each method reads column `index` (named `column`, for the message) as one type, and fails
/// with `"{column}: {why}"` when the stored value is not of that type (the driver says why). A
/// store implements it on a wrapper of its driver's row; the decoders of this module are
/// generic over it, so they compile to direct calls of the driver.
pub trait SqlRow {
    /// An integer the query guarantees (a row's id, a count): the driver's failure is the
    /// store's, not the row's ([`StoreError::Backend`] or what the store maps it to).
    ///
    /// # Errors
    ///
    /// The driver's, as the store reports it.
    fn key(&self, index: usize) -> StoreResult<i64>;
    /// A non-NULL integer.
    ///
    /// # Errors
    ///
    /// NULL or another type, naming `column`.
    fn int(&self, index: usize, column: &str) -> Result<i64, String>;
    /// An integer or NULL.
    ///
    /// # Errors
    ///
    /// Another type, naming `column`.
    fn opt_int(&self, index: usize, column: &str) -> Result<Option<i64>, String>;
    /// A non-NULL boolean (an integer 0 or 1 where the database has no booleans).
    ///
    /// # Errors
    ///
    /// NULL or another type, naming `column`.
    fn flag(&self, index: usize, column: &str) -> Result<bool, String>;
    /// A floating-point number or NULL.
    ///
    /// # Errors
    ///
    /// Another type, naming `column`.
    fn opt_real(&self, index: usize, column: &str) -> Result<Option<f64>, String>;
    /// A non-NULL text.
    ///
    /// # Errors
    ///
    /// NULL or another type, naming `column`.
    fn text(&self, index: usize, column: &str) -> Result<String, String>;
    /// A text or NULL.
    ///
    /// # Errors
    ///
    /// Another type, naming `column`.
    fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, String>;
}

/// A type a column is read as: the one [`SqlRow`] method that reads it.
pub trait Column: Sized {
    /// Column `index` (named `column`) of `row`.
    ///
    /// # Errors
    ///
    /// The value is not of this type, naming `column`.
    fn read<R: SqlRow + ?Sized>(row: &R, index: usize, column: &str) -> Result<Self, String>;
}

macro_rules! column_types {
    ($($t:ty => $method:ident,)*) => {$(
        impl Column for $t {
            fn read<R: SqlRow + ?Sized>(row: &R, index: usize, column: &str) -> Result<Self, String> {
                row.$method(index, column)
            }
        }
    )*};
}

column_types! {
    i64 => int,
    Option<i64> => opt_int,
    bool => flag,
    Option<f64> => opt_real,
    String => text,
    Option<String> => opt_text,
}

/// Column `index` (named `column`) of `row`, of the type the caller expects.
///
/// # Errors
///
/// The value is not of that type, naming `column`.
pub fn get<T: Column>(
    row: &(impl SqlRow + ?Sized),
    index: usize,
    column: &str,
) -> Result<T, String> {
    T::read(row, index, column)
}

/// An enum stored as text: every variant with its text, which is its serde name.
///
/// ```
/// use oco_core::model::PostAction;
/// use oco_core::store::columns::TextEnum;
///
/// assert_eq!(PostAction::ExitAgent.text(), "exit-agent");
/// assert_eq!(PostAction::parse_text("restart"), Ok(PostAction::Restart));
/// assert!(PostAction::parse_text("reboot").is_err());
/// ```
pub trait TextEnum: Sized + Copy + PartialEq + 'static {
    /// What the value is, for error messages.
    const WHAT: &'static str;
    /// Every variant with its text.
    const ALL: &'static [(Self, &'static str)];

    /// The stored text.
    fn text(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("", |(_, text)| text)
    }

    /// The value of stored text.
    ///
    /// # Errors
    ///
    /// Text of no variant, saying what was expected.
    fn parse_text(text: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == text)
            .map(|(value, _)| *value)
            .ok_or_else(|| format!("`{text}` is not a {}", Self::WHAT))
    }
}

impl TextEnum for JobKind {
    const WHAT: &'static str = "job kind";
    const ALL: &'static [(Self, &'static str)] = &[
        (JobKind::Install, "install"),
        (JobKind::Uninstall, "uninstall"),
    ];
}

impl TextEnum for JobState {
    const WHAT: &'static str = "job state";
    const ALL: &'static [(Self, &'static str)] = &[
        (JobState::Waiting, "waiting"),
        (JobState::Downloading, "downloading"),
        (JobState::Executing, "executing"),
        (JobState::Succeeded, "succeeded"),
        (JobState::Failed, "failed"),
        (JobState::Expired, "expired"),
        (JobState::Incompatible, "incompatible"),
        (JobState::AlreadyInstalled, "already-installed"),
    ];
}

impl TextEnum for TokenAccess {
    const WHAT: &'static str = "token access";
    const ALL: &'static [(Self, &'static str)] = &[
        (TokenAccess::Full, "full"),
        (TokenAccess::ReadOnly, "read-only"),
    ];
}

impl TextEnum for PostAction {
    const WHAT: &'static str = "post action";
    const ALL: &'static [(Self, &'static str)] = &[
        (PostAction::None, "none"),
        (PostAction::Restart, "restart"),
        (PostAction::Shutdown, "shutdown"),
        (PostAction::ExitAgent, "exit-agent"),
    ];
}

impl TextEnum for UpgradeBehavior {
    const WHAT: &'static str = "upgrade behavior";
    const ALL: &'static [(Self, &'static str)] = &[
        (UpgradeBehavior::KeepOthers, "keep-others"),
        (UpgradeBehavior::ImplicitRemove, "implicit-remove"),
        (UpgradeBehavior::ExplicitUninstall, "explicit-uninstall"),
    ];
}

impl TextEnum for SequenceMode {
    const WHAT: &'static str = "sequence mode";
    const ALL: &'static [(Self, &'static str)] = &[
        (SequenceMode::IgnoreFailed, "ignore-failed"),
        (SequenceMode::AbortAfterFailed, "abort-after-failed"),
    ];
}

impl TextEnum for MessageCode {
    const WHAT: &'static str = "message code";
    const ALL: &'static [(Self, &'static str)] = &[
        (MessageCode::AbortedAfterFailed, "aborted-after-failed"),
        (MessageCode::Expired, "expired"),
        (MessageCode::ExpiredStale, "expired-stale"),
        (MessageCode::ReturnCodeRejected, "return-code-rejected"),
    ];
}

/// The text of [`WolShutdown::Pending`] (its time is another column).
pub const WOL_PENDING: &str = "pending";
/// The text of [`WolShutdown::Confirmed`].
pub const WOL_CONFIRMED: &str = "confirmed";

/// An instant as stored: nanoseconds since the Unix epoch.
///
/// # Errors
///
/// [`StoreError::Invalid`] outside the years 1677 to 2262.
pub fn time(at: DateTime<Utc>) -> StoreResult<i64> {
    at.timestamp_nanos_opt().ok_or_else(|| StoreError::Invalid {
        reason: format!(
            "the instant {at} is outside what the store keeps (the years 1677 to 2262)"
        ),
    })
}

/// An optional instant as stored.
pub fn opt_time(at: Option<DateTime<Utc>>) -> StoreResult<Option<i64>> {
    at.map(time).transpose()
}

/// A stored instant.
pub fn from_time(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// A revision as stored.
pub fn revision(revision: Revision) -> StoreResult<i64> {
    i64::try_from(revision.0).map_err(|_| StoreError::Invalid {
        reason: format!("revision {revision} is beyond what the store keeps"),
    })
}

/// A stored revision.
pub fn from_revision(value: i64) -> Result<Revision, String> {
    u64::try_from(value)
        .map(Revision)
        .map_err(|_| format!("revision {value} is negative"))
}

/// MAC addresses as stored: canonical, separated by `, `.
pub fn macs(macs: &[MacAddress]) -> String {
    macs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stored MAC addresses.
pub fn parse_macs(text: &str) -> Result<Vec<MacAddress>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.parse().map_err(|e| format!("macs: {e}")))
        .collect()
}

/// A list of strings as stored: a JSON array.
pub fn strings(list: &[String]) -> String {
    // Serialising a list of strings cannot fail.
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored list of strings.
pub fn parse_strings(column: &str, text: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(text).map_err(|e| format!("{column}: not a JSON list of strings: {e}"))
}

/// Package ids as stored: separated by spaces.
pub fn ids(ids: &[PackageId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stored package ids.
pub fn parse_ids(column: &str, text: &str) -> Result<Vec<PackageId>, String> {
    text.split_whitespace()
        .map(|id| {
            id.parse()
                .map(PackageId)
                .map_err(|_| format!("{column}: `{id}` is not an id"))
        })
        .collect()
}

/// Compatibility lists as stored: three JSON arrays.
pub fn compatibility(c: &Compatibility) -> [String; 3] {
    [
        strings(&c.os),
        strings(&c.os_version),
        strings(&c.architecture),
    ]
}

/// The policy columns as stored, in the order the policy decoder reads them: `priority,
/// sequence_mode, ip_ranges, time_frames, time_zone, post_action_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyColumns {
    /// `priority`.
    pub priority: i64,
    /// `sequence_mode`.
    pub sequence_mode: &'static str,
    /// `ip_ranges`: canonical text.
    pub ip_ranges: String,
    /// `time_frames`: canonical text.
    pub time_frames: String,
    /// `time_zone`: the IANA name.
    pub time_zone: &'static str,
    /// `post_action_timeout`, in seconds.
    pub post_action_timeout: Option<i64>,
}

/// A policy as stored.
///
/// ```
/// use oco_core::model::DeliveryPolicy;
/// use oco_core::store::columns;
///
/// let stored = columns::policy(&DeliveryPolicy::default());
/// assert_eq!(stored.time_zone, "UTC");
/// ```
pub fn policy(policy: &DeliveryPolicy) -> PolicyColumns {
    PolicyColumns {
        priority: i64::from(policy.priority.get()),
        sequence_mode: policy.sequence_mode.text(),
        ip_ranges: policy.ip_ranges.to_string(),
        time_frames: policy.time_frames.to_string(),
        time_zone: policy.time_zone.name(),
        post_action_timeout: policy.post_action_timeout.map(i64::from),
    }
}

/// The policy in the six columns from `first` on, in the order of [`PolicyColumns`].
///
/// # Errors
///
/// A column that does not decode, naming it.
pub fn parse_policy<R: SqlRow + ?Sized>(row: &R, first: usize) -> Result<DeliveryPolicy, String> {
    let priority: i64 = get(row, first, "priority")?;
    let sequence_mode: String = get(row, first + 1, "sequence_mode")?;
    let ip_ranges: String = get(row, first + 2, "ip_ranges")?;
    let time_frames: String = get(row, first + 3, "time_frames")?;
    let time_zone: String = get(row, first + 4, "time_zone")?;
    let timeout: Option<i64> = get(row, first + 5, "post_action_timeout")?;
    Ok(DeliveryPolicy {
        priority: Priority::new(priority).map_err(|e| e.to_string())?,
        sequence_mode: parse_column("sequence_mode", &sequence_mode)?,
        ip_ranges: memo(&IP_RANGES, &ip_ranges, |text| {
            IpRanges::from_str(text).map_err(|e| format!("ip_ranges `{text}`: {e}"))
        })?,
        time_frames: memo(&TIME_FRAMES, &time_frames, |text| {
            TimeFrames::from_str(text).map_err(|e| format!("time_frames `{text}`: {e}"))
        })?,
        time_zone: Tz::from_str(&time_zone)
            .map_err(|_| format!("time_zone: `{time_zone}` is not an IANA time zone"))?,
        post_action_timeout: timeout
            .map(|t| {
                u32::try_from(t).map_err(|_| format!("post_action_timeout: {t} is out of range"))
            })
            .transpose()?,
    })
}

/// A text enum column's value.
pub fn parse_column<T: TextEnum>(column: &str, text: &str) -> Result<T, String> {
    T::parse_text(text).map_err(|e| format!("{column}: {e}"))
}

/// Stored success codes.
pub fn parse_codes(column: &str, text: &str) -> Result<SuccessCodes, String> {
    // Written before `*` spelled "every code" (the parser now refuses an empty list): the same
    // value, so rows stored then still read.
    if text.trim().is_empty() {
        return Ok(SuccessCodes::default());
    }
    memo(&SUCCESS_CODES, text, |text| {
        text.parse().map_err(|e| format!("{column} `{text}`: {e}"))
    })
}

/// At most this many parsed texts are kept per kind and thread (then they are all dropped).
const MEMO_CAPACITY: usize = 256;

/// Texts parsed before, with their values, per thread.
type Memo<T> = LocalKey<RefCell<HashMap<String, T>>>;

thread_local! {
    static IP_RANGES: RefCell<HashMap<String, IpRanges>> = RefCell::new(HashMap::new());
    static TIME_FRAMES: RefCell<HashMap<String, TimeFrames>> = RefCell::new(HashMap::new());
    static SUCCESS_CODES: RefCell<HashMap<String, SuccessCodes>> = RefCell::new(HashMap::new());
}

/// `parse(text)`, remembered per thread: the planner snapshot reads the same few policies and
/// success codes on every poll. A value depends on the text alone, so a remembered one is never
/// stale, whatever changed in the database; text that does not parse is not remembered.
fn memo<T: Clone + 'static>(
    cache: &'static Memo<T>,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    if let Some(found) = cache.with(|cache| cache.borrow().get(text).cloned()) {
        return Ok(found);
    }
    let value = parse(text)?;
    cache.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= MEMO_CAPACITY {
            cache.clear();
        }
        cache.insert(text.to_owned(), value.clone());
    });
    Ok(value)
}

/// A computer's credentials from the columns `agent_key, previous_agent_key, server_key,
/// last_hello, last_reply, contact_at, contact_address, agent_version`.
///
/// # Errors
///
/// A column that does not decode, or a contact with only one of its instant and address.
pub fn credentials<R: SqlRow + ?Sized>(row: &R) -> Result<AgentCredentials, String> {
    let contact_at: Option<i64> = get(row, 5, "contact_at")?;
    let contact_address: Option<String> = get(row, 6, "contact_address")?;
    let last_contact = match (contact_at, contact_address) {
        (Some(at), Some(address)) => Some(AgentContact {
            at: from_time(at),
            address: address
                .parse()
                .map_err(|_| format!("contact_address: `{address}` is not an IP address"))?,
            agent_version: get(row, 7, "agent_version")?,
        }),
        (None, None) => None,
        _ => return Err("contact_at and contact_address: only one of them is set".into()),
    };
    Ok(AgentCredentials {
        agent_key: get(row, 0, "agent_key")?,
        previous_agent_key: get(row, 1, "previous_agent_key")?,
        server_key: get(row, 2, "server_key")?,
        last_hello: get(row, 3, "last_hello")?,
        last_reply: get(row, 4, "last_reply")?,
        last_contact,
    })
}

// Rows.

/// A computer from `id, hostname, os, os_version, architecture, macs, last_seen`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the computer and the column.
pub fn computer_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<Computer> {
    let id = row.key(0)?;
    let decode = || -> Result<Computer, String> {
        Ok(Computer {
            id: ComputerId(id),
            hostname: name(row, 1, "hostname")?,
            os: get(row, 2, "os")?,
            os_version: get(row, 3, "os_version")?,
            architecture: get(row, 4, "architecture")?,
            macs: parse_macs(&get::<String>(row, 5, "macs")?)?,
            last_seen: get::<Option<i64>>(row, 6, "last_seen")?.map(from_time),
        })
    };
    decode().map_err(|reason| corrupt("computer", id, reason))
}

/// A package from `id, family_id, version, install_command, install_success_codes,
/// install_post_action, uninstall_command, uninstall_success_codes, uninstall_post_action,
/// has_payload, download_for_uninstall, upgrade_behavior, compatible_os,
/// compatible_os_versions, compatible_architectures, dependencies, payload_size,
/// payload_sha256`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the package and the column.
pub fn package_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<Package> {
    let id = row.key(0)?;
    let decode = || -> Result<Package, String> {
        // Column names as literals: a rule snapshot decodes every package of every rule.
        let procedure = |first: usize, [command, codes, post_action]: [&str; 3]| {
            Ok::<_, String>(Procedure {
                command: get(row, first, command)?,
                success_codes: parse_codes(codes, &get::<String>(row, first + 1, codes)?)?,
                post_action: parse_column(
                    post_action,
                    &get::<String>(row, first + 2, post_action)?,
                )?,
            })
        };
        Ok(Package {
            id: PackageId(id),
            family: FamilyId(get(row, 1, "family_id")?),
            version: name(row, 2, "version")?,
            install: procedure(
                3,
                [
                    "install_command",
                    "install_success_codes",
                    "install_post_action",
                ],
            )?,
            uninstall: procedure(
                6,
                [
                    "uninstall_command",
                    "uninstall_success_codes",
                    "uninstall_post_action",
                ],
            )?,
            payload: parse_payload(
                get(row, 9, "has_payload")?,
                get(row, 16, "payload_size")?,
                get(row, 17, "payload_sha256")?,
            )?,
            download_for_uninstall: get(row, 10, "download_for_uninstall")?,
            upgrade_behavior: parse_column(
                "upgrade_behavior",
                &get::<String>(row, 11, "upgrade_behavior")?,
            )?,
            compatibility: Compatibility {
                os: parse_strings("compatible_os", &get::<String>(row, 12, "compatible_os")?)?,
                os_version: parse_strings(
                    "compatible_os_versions",
                    &get::<String>(row, 13, "compatible_os_versions")?,
                )?,
                architecture: parse_strings(
                    "compatible_architectures",
                    &get::<String>(row, 14, "compatible_architectures")?,
                )?,
            },
            dependencies: parse_ids("dependencies", &get::<String>(row, 15, "dependencies")?)?,
        })
    };
    decode().map_err(|reason| corrupt("package", id, reason))
}

/// A container's schedule from `schedule_start, schedule_end` from column `first` on.
///
/// # Errors
///
/// A column that does not decode, or an end before the start, naming the column.
pub fn schedule<R: SqlRow + ?Sized>(row: &R, first: usize) -> Result<Schedule, String> {
    let start: i64 = get(row, first, "schedule_start")?;
    let end: Option<i64> = get(row, first + 1, "schedule_end")?;
    Schedule::new(from_time(start), end.map(from_time)).map_err(|e| format!("schedule_{}", e))
}

/// A container from `id, name, notes, enabled, schedule_start, schedule_end`, the six policy
/// columns, `wol_wake, wol_shutdown_after, wol_sent_at, self_service, created_at`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the container and the column.
pub fn container_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<JobContainer> {
    let id = row.key(0)?;
    let decode = || -> Result<JobContainer, String> {
        Ok(JobContainer {
            id: ContainerId(id),
            name: name(row, 1, "name")?,
            notes: get(row, 2, "notes")?,
            enabled: get(row, 3, "enabled")?,
            schedule: schedule(row, 4)?,
            policy: parse_policy(row, 6)?,
            wol: WolSettings {
                wake: get(row, 12, "wol_wake")?,
                shutdown_after: get(row, 13, "wol_shutdown_after")?,
                sent_at: get::<Option<i64>>(row, 14, "wol_sent_at")?.map(from_time),
            },
            self_service: get(row, 15, "self_service")?,
            created_at: from_time(get(row, 16, "created_at")?),
        })
    };
    decode().map_err(|reason| corrupt("container", id, reason))
}

/// A rule from `id, name, notes, enabled, computer_group_id, package_group_id`, the six policy
/// columns, `created_at`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the rule and the column.
pub fn rule_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<DeploymentRule> {
    let id = row.key(0)?;
    let decode = || -> Result<DeploymentRule, String> {
        Ok(DeploymentRule {
            id: RuleId(id),
            name: name(row, 1, "name")?,
            notes: get(row, 2, "notes")?,
            enabled: get(row, 3, "enabled")?,
            computer_group: ComputerGroupId(get(row, 4, "computer_group_id")?),
            package_group: PackageGroupId(get(row, 5, "package_group_id")?),
            policy: parse_policy(row, 6)?,
            created_at: from_time(get(row, 12, "created_at")?),
        })
    };
    decode().map_err(|reason| corrupt("rule", id, reason))
}

/// A stored job snapshot from `command, success_codes, post_action, download,
/// upgrade_behavior`.
///
/// # Errors
///
/// A column that does not decode, naming it.
pub fn job_snapshot_row<R: SqlRow + ?Sized>(row: &R) -> Result<JobSnapshot, String> {
    Ok(JobSnapshot {
        procedure: Procedure {
            command: get(row, 0, "command")?,
            success_codes: parse_codes("success_codes", &get::<String>(row, 1, "success_codes")?)?,
            post_action: parse_column("post_action", &get::<String>(row, 2, "post_action")?)?,
        },
        download: get(row, 3, "download")?,
        upgrade_behavior: parse_column(
            "upgrade_behavior",
            &get::<String>(row, 4, "upgrade_behavior")?,
        )?,
    })
}

/// A job from `id, container_id, rule_id, computer_id, package_id, kind, snapshot_id,
/// sequence, state, download_progress, return_code, output, message, download_started,
/// execution_started, finished, last_report, wol_shutdown, wol_shutdown_since, orphaned,
/// attempt, revision`; column 6 (`snapshot_id`) is the caller's, which reads the stored
/// snapshot (once per read for the jobs that share it) and passes it, decoded or why not, as
/// `snapshot`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the job and the column (or the snapshot's reason).
pub fn job_row<R: SqlRow + ?Sized>(
    row: &R,
    snapshot: Result<JobSnapshot, String>,
) -> StoreResult<Job> {
    let id = row.key(0)?;
    let decode = || -> Result<Job, String> {
        let origin = match (
            get::<Option<i64>>(row, 1, "container_id")?,
            get::<Option<i64>>(row, 2, "rule_id")?,
        ) {
            (Some(container), None) => Origin::Container(ContainerId(container)),
            (None, Some(rule)) => Origin::Rule(RuleId(rule)),
            _ => return Err("exactly one of container_id and rule_id must be set".into()),
        };
        let opt_time = |index, column| -> Result<Option<DateTime<Utc>>, String> {
            Ok(get::<Option<i64>>(row, index, column)?.map(from_time))
        };
        let wol_shutdown = match get::<Option<String>>(row, 17, "wol_shutdown")?.as_deref() {
            None => None,
            Some(WOL_CONFIRMED) => Some(WolShutdown::Confirmed),
            Some(WOL_PENDING) => Some(WolShutdown::Pending {
                since: opt_time(18, "wol_shutdown_since")?
                    .ok_or("wol_shutdown_since: missing for a pending mark")?,
            }),
            Some(other) => return Err(format!("wol_shutdown: `{other}` is not a mark")),
        };
        Ok(Job {
            id: JobId(id),
            origin,
            computer: ComputerId(get(row, 3, "computer_id")?),
            package: PackageId(get(row, 4, "package_id")?),
            kind: parse_column("kind", &get::<String>(row, 5, "kind")?)?,
            snapshot: snapshot?,
            sequence: narrow("sequence", get(row, 7, "sequence")?)?,
            state: parse_column("state", &get::<String>(row, 8, "state")?)?,
            download_progress: get::<Option<i64>>(row, 9, "download_progress")?
                .map(|p| narrow("download_progress", p))
                .transpose()?,
            return_code: get(row, 10, "return_code")?,
            output: get(row, 11, "output")?,
            message: get::<Option<String>>(row, 12, "message")?
                .map(|m| parse_column("message", &m))
                .transpose()?,
            download_started: opt_time(13, "download_started")?,
            execution_started: opt_time(14, "execution_started")?,
            finished: opt_time(15, "finished")?,
            last_report: opt_time(16, "last_report")?,
            wol_shutdown,
            orphaned: get(row, 19, "orphaned")?,
            attempt: narrow("attempt", get(row, 20, "attempt")?)?,
            revision: from_revision(get(row, 21, "revision")?)?,
        })
    };
    decode().map_err(|reason| corrupt("job", id, reason))
}

/// An assignment from `computer_id, package_id, installed_at, job_id`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the computer and the column.
pub fn assignment_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<Assignment> {
    let computer = row.key(0)?;
    let decode = || -> Result<Assignment, String> {
        Ok(Assignment {
            computer: ComputerId(computer),
            package: PackageId(get(row, 1, "package_id")?),
            installed_at: from_time(get(row, 2, "installed_at")?),
            job: get::<Option<i64>>(row, 3, "job_id")?.map(JobId),
        })
    };
    decode().map_err(|reason| corrupt("assignment of computer", computer, reason))
}

/// The columns of an admin token, as [`admin_token_row`] reads them.
pub const ADMIN_TOKEN_COLUMNS: &str = "id, name, access, digest, created_at";

/// An admin token from [`ADMIN_TOKEN_COLUMNS`].
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the token and the column.
pub fn admin_token_row<R: SqlRow + ?Sized>(row: &R) -> StoreResult<AdminToken> {
    let id = row.key(0)?;
    let decode = || -> Result<AdminToken, String> {
        let access: String = get(row, 2, "access")?;
        let digest: String = get(row, 3, "digest")?;
        Ok(AdminToken {
            id: TokenId(id),
            name: name(row, 1, "name")?,
            access: parse_column("access", &access)?,
            digest: digest
                .parse()
                .map_err(|e: InvalidField| format!("digest: {}", e.reason))?,
            created: from_time(get(row, 4, "created_at")?),
        })
    };
    decode().map_err(|reason| corrupt("admin token", id, reason))
}

/// The error for revoking `name`, the last full-access token.
pub fn last_full_token(id: TokenId, name: &str) -> StoreError {
    StoreError::Invalid {
        reason: format!(
            "token {id} ({name}) is the last full-access token; create another before revoking it"
        ),
    }
}

/// The error for a token whose name (`name_taken`) or else digest another token has.
pub fn admin_token_taken(token: &NewAdminToken, name_taken: bool) -> StoreError {
    if name_taken {
        StoreError::Duplicate {
            what: "admin token",
            key: token.name.to_string(),
        }
    } else {
        // The digest is not said: it is what a secret is recognised by.
        StoreError::Duplicate {
            what: "admin token digest",
            key: format!("of the token {}", token.name),
        }
    }
}

/// A [`Name`] from column `index`.
///
/// # Errors
///
/// A column that is not text, or text that is not a name, naming the column.
pub fn name<R: SqlRow + ?Sized>(row: &R, index: usize, column: &str) -> Result<Name, String> {
    let text: String = get(row, index, column)?;
    Name::new(column, &text).map_err(|e| e.to_string())
}

/// A stored integer as a narrower type.
pub fn narrow<T: TryFrom<i64>>(column: &str, value: i64) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{column}: {value} is out of range"))
}

/// A row of `what` with `id` that does not decode.
pub fn corrupt(what: &'static str, id: i64, reason: String) -> StoreError {
    StoreError::Corrupt {
        what,
        id: id.to_string(),
        reason,
    }
}

/// A job's origin as stored: `(container_id, rule_id)`, exactly one of them set.
pub fn origin(origin: Origin) -> (Option<i64>, Option<i64>) {
    match origin {
        Origin::Container(id) => (Some(id.0), None),
        Origin::Rule(id) => (None, Some(id.0)),
    }
}

/// A job's wake-on-LAN shutdown mark as stored: `(wol_shutdown, wol_shutdown_since)`.
///
/// # Errors
///
/// [`StoreError::Invalid`] for a pending mark's instant outside what the stores keep.
pub fn wol_shutdown(mark: Option<WolShutdown>) -> StoreResult<(Option<&'static str>, Option<i64>)> {
    Ok(match mark {
        None => (None, None),
        Some(WolShutdown::Confirmed) => (Some(WOL_CONFIRMED), None),
        Some(WolShutdown::Pending { since }) => (Some(WOL_PENDING), Some(time(since)?)),
    })
}

/// The outcome of a compare-and-set on job `id` read at `expected`, from the revision stored
/// now (`None`: the job is gone): a store asks when its conditional write changed no row.
///
/// ```
/// use oco_core::model::{JobId, Revision};
/// use oco_core::store::{columns, StoreError};
///
/// assert!(columns::job_at_revision(JobId(4), Some(2), Revision(2)).is_ok());
/// let Err(StoreError::Conflict { what }) = columns::job_at_revision(JobId(4), Some(3), Revision(2))
/// else {
///     panic!("a conflict");
/// };
/// assert_eq!(what, "job 4 is at revision 3, not 2");
/// ```
///
/// # Errors
///
/// [`StoreError::Conflict`] when the job is gone or at another revision,
/// [`StoreError::Corrupt`] when the stored revision does not decode.
pub fn job_at_revision(id: JobId, stored: Option<i64>, expected: Revision) -> StoreResult<()> {
    let stored = stored.ok_or_else(|| StoreError::Conflict {
        what: format!("job {id} no longer exists"),
    })?;
    let stored = from_revision(stored).map_err(|reason| corrupt("job", id.0, reason))?;
    if stored != expected {
        return Err(StoreError::Conflict {
            what: format!("job {id} is at revision {stored}, not {expected}"),
        });
    }
    Ok(())
}

/// The outcome of `ExpectAssignments` on `computer` at `expected`, from the assignment revision
/// stored now (`None`: the computer is gone).
///
/// # Errors
///
/// [`StoreError::NotFound`] when the computer is gone, [`StoreError::Conflict`] when its
/// assignments are at another revision.
pub fn assignments_at_revision(
    computer: ComputerId,
    stored: Option<Revision>,
    expected: Revision,
) -> StoreResult<()> {
    let stored = stored.ok_or_else(|| StoreError::NotFound {
        what: "computer",
        id: computer.to_string(),
    })?;
    if stored != expected {
        return Err(StoreError::Conflict {
            what: format!(
                "assignments of computer {computer} are at revision {stored}, not {expected}"
            ),
        });
    }
    Ok(())
}

/// A job whose origin is gone: impossible while foreign keys hold, reported rather than
/// panicked on.
pub fn missing_origin(job: &Job) -> StoreError {
    StoreError::Corrupt {
        what: "job",
        id: job.id.to_string(),
        reason: format!("its origin {} does not exist", job.origin),
    }
}

/// The `has_payload`, `payload_size` and `payload_sha256` columns of `payload`.
///
/// # Errors
///
/// A size over `i64::MAX` (the stores' integers are signed), naming the package.
pub fn payload_columns(package: &Package) -> StoreResult<(bool, Option<i64>, Option<String>)> {
    Ok(match package.payload {
        None => (false, None, None),
        Some(Payload::Unknown) => (true, None, None),
        Some(Payload::Known { size, sha256 }) => {
            let size = i64::try_from(size).map_err(|_| StoreError::Invalid {
                reason: format!(
                    "package {}: a payload of {size} bytes is larger than a store can record",
                    package.id
                ),
            })?;
            (true, Some(size), Some(sha256.to_string()))
        }
    })
}

/// A payload from its three columns: none, one of unknown size and digest (stored before they
/// were kept), or one with both.
fn parse_payload(
    has_payload: bool,
    size: Option<i64>,
    sha256: Option<String>,
) -> Result<Option<Payload>, String> {
    if !has_payload {
        return Ok(None);
    }
    match (size, sha256) {
        (None, None) => Ok(Some(Payload::Unknown)),
        (Some(size), Some(sha256)) => {
            let size =
                u64::try_from(size).map_err(|_| format!("payload_size: {size} is not a length"))?;
            let sha256 = sha256
                .parse()
                .map_err(|e: InvalidField| format!("payload_sha256: {}", e.reason))?;
            Ok(Some(Payload::new(size, sha256)))
        }
        _ => Err("payload_size and payload_sha256 are not both set or both NULL".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: TextEnum + std::fmt::Debug + serde::Serialize>() {
        let mut texts: Vec<&str> = T::ALL.iter().map(|(_, t)| *t).collect();
        for &(value, text) in T::ALL {
            assert_eq!(value.text(), text);
            assert_eq!(T::parse_text(text), Ok(value));
            // The stored text is the serde name.
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{text}\"")
            );
        }
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), T::ALL.len(), "{} texts are distinct", T::WHAT);
        assert_eq!(
            T::parse_text("garbage"),
            Err(format!("`garbage` is not a {}", T::WHAT))
        );
    }

    #[test]
    fn every_enum_round_trips_through_its_text() {
        round_trips::<JobKind>();
        round_trips::<JobState>();
        round_trips::<PostAction>();
        round_trips::<UpgradeBehavior>();
        round_trips::<SequenceMode>();
        round_trips::<MessageCode>();
        round_trips::<TokenAccess>();
        assert_eq!(<JobState as TextEnum>::ALL.len(), JobState::ALL.len());
    }

    #[test]
    fn job_state_text_is_its_display() {
        for state in JobState::ALL {
            assert_eq!(state.text(), state.to_string());
        }
        for &(code, text) in <MessageCode as TextEnum>::ALL {
            assert_eq!(code.as_str(), text);
        }
    }

    #[test]
    fn instants_round_trip_to_the_nanosecond() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(from_time(time(at).unwrap()), at);
        let far = DateTime::from_timestamp(400_000_000_000, 0).unwrap();
        let err = time(far).unwrap_err().to_string();
        assert!(err.contains("outside what the store keeps"), "{err}");
        assert_eq!(opt_time(None).unwrap(), None);
    }

    #[test]
    fn revisions_round_trip() {
        assert_eq!(
            from_revision(revision(Revision(7)).unwrap()),
            Ok(Revision(7))
        );
        assert!(revision(Revision(u64::MAX)).is_err());
        assert_eq!(from_revision(-1), Err("revision -1 is negative".to_owned()));
    }

    #[test]
    fn lists_round_trip() {
        let list: Vec<MacAddress> = vec![
            "aa:bb:cc:dd:ee:01".parse().unwrap(),
            "aa:bb:cc:dd:ee:02".parse().unwrap(),
        ];
        assert_eq!(macs(&list), "aa:bb:cc:dd:ee:01, aa:bb:cc:dd:ee:02");
        assert_eq!(parse_macs(&macs(&list)), Ok(list));
        assert_eq!(parse_macs(""), Ok(vec![]));
        assert!(parse_macs("aa:bb").unwrap_err().starts_with("macs: "));

        let strings_in = vec!["Windows".to_owned(), "a, \"quoted\"\nline".to_owned()];
        assert_eq!(parse_strings("os", &strings(&strings_in)), Ok(strings_in));
        assert!(parse_strings("os", "nope").unwrap_err().starts_with("os: "));

        let list = vec![PackageId(3), PackageId(12)];
        assert_eq!(ids(&list), "3 12");
        assert_eq!(parse_ids("dependencies", "3 12"), Ok(list));
        assert_eq!(parse_ids("dependencies", ""), Ok(vec![]));
        assert_eq!(
            parse_ids("dependencies", "3 x"),
            Err("dependencies: `x` is not an id".to_owned())
        );
    }

    #[test]
    fn success_codes_stored_empty_read_as_every_code() {
        assert_eq!(parse_codes("c", ""), Ok(SuccessCodes::default()));
        assert_eq!(parse_codes("c", "*"), Ok(SuccessCodes::default()));
        assert_eq!(parse_codes("c", "0, 3010").unwrap().to_string(), "0, 3010");
        assert!(parse_codes("c", "0, x")
            .unwrap_err()
            .starts_with("c `0, x`: "));
    }

    /// A row of plain values, for the decoders: NULL is `None`.
    enum Value {
        Int(i64),
        Text(&'static str),
        Null,
    }

    struct Values(Vec<Value>);

    impl SqlRow for Values {
        fn key(&self, index: usize) -> StoreResult<i64> {
            match self.0[index] {
                Value::Int(value) => Ok(value),
                _ => Err(StoreError::Invalid {
                    reason: format!("column {index} is no key"),
                }),
            }
        }
        fn int(&self, index: usize, column: &str) -> Result<i64, String> {
            self.opt_int(index, column)?
                .ok_or_else(|| format!("{column}: NULL"))
        }
        fn opt_int(&self, index: usize, column: &str) -> Result<Option<i64>, String> {
            match self.0[index] {
                Value::Int(value) => Ok(Some(value)),
                Value::Null => Ok(None),
                Value::Text(_) => Err(format!("{column}: text")),
            }
        }
        fn flag(&self, index: usize, column: &str) -> Result<bool, String> {
            Ok(self.int(index, column)? != 0)
        }
        fn opt_real(&self, _: usize, column: &str) -> Result<Option<f64>, String> {
            Err(format!("{column}: no reals here"))
        }
        fn text(&self, index: usize, column: &str) -> Result<String, String> {
            self.opt_text(index, column)?
                .ok_or_else(|| format!("{column}: NULL"))
        }
        fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, String> {
            match self.0[index] {
                Value::Text(text) => Ok(Some(text.to_owned())),
                Value::Null => Ok(None),
                Value::Int(_) => Err(format!("{column}: integer")),
            }
        }
    }

    #[test]
    fn policies_round_trip_through_a_row_of_values() {
        let given = crate::store::testkit::policy();
        let c = policy(&given);
        let texts: Vec<&'static str> = [c.ip_ranges, c.time_frames]
            .into_iter()
            .map(|text| &*Box::leak(text.into_boxed_str()))
            .collect();
        let row = Values(vec![
            Value::Int(c.priority),
            Value::Text(c.sequence_mode),
            Value::Text(texts[0]),
            Value::Text(texts[1]),
            Value::Text(c.time_zone),
            c.post_action_timeout.map_or(Value::Null, Value::Int),
        ]);
        assert_eq!(parse_policy(&row, 0), Ok(given));
        let wrong = Values(vec![
            Value::Int(0),
            Value::Text("ignore-all"),
            Value::Text(""),
            Value::Text(""),
            Value::Text("UTC"),
            Value::Null,
        ]);
        assert_eq!(
            parse_policy(&wrong, 0),
            Err("sequence_mode: `ignore-all` is not a sequence mode".to_owned())
        );
    }

    #[test]
    fn a_row_that_does_not_decode_names_its_kind_id_and_column() {
        let row = Values(vec![
            Value::Int(7),
            Value::Int(2),
            Value::Text("2026-01-01"),
            Value::Null,
        ]);
        let err = assignment_row(&row).unwrap_err();
        assert_eq!(
            err.to_string(),
            corrupt("assignment of computer", 7, "installed_at: text".into()).to_string()
        );
        let row = Values(vec![
            Value::Int(7),
            Value::Int(2),
            Value::Int(1_700_000_000_000_000_000),
            Value::Int(9),
        ]);
        assert_eq!(
            assignment_row(&row).unwrap(),
            Assignment {
                computer: ComputerId(7),
                package: PackageId(2),
                installed_at: from_time(1_700_000_000_000_000_000),
                job: Some(JobId(9)),
            }
        );
    }
}
