//! The planner: what an agent gets when it polls.
//!
//! [`plan`] takes one computer's [`PlannerSnapshot`], `now` and the agent's address, and returns
//! the jobs to hand out in delivery order, every pending job that is held with the reason, and the
//! few writes the poll implies (Wake-on-LAN shutdown marks). It never fails: an origin whose policy
//! could not be read holds its jobs with [`HoldReason::Corrupt`] and the others are delivered as
//! usual.
//!
//! # Examples
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use oco_core::chrono::{TimeZone, Utc};
//! # use oco_core::model::*;
//! # use oco_core::store::{OriginInfo, PlannerSnapshot};
//! # use oco_core::plan::{plan, HoldReason};
//! # use oco_core::Settings;
//! # let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
//! # let computer = Computer { id: ComputerId(1), hostname: Name::new("hostname", "pc1")?, os: String::new(),
//! #     os_version: String::new(), architecture: String::new(), macs: vec![], last_seen: None };
//! # let package = Package { id: PackageId(7), family: FamilyId(1), version: Name::new("version", "1.0")?,
//! #     install: Procedure::default(), uninstall: Procedure::default(), payload: None,
//! #     download_for_uninstall: false, upgrade_behavior: UpgradeBehavior::KeepOthers,
//! #     compatibility: Compatibility::default(), dependencies: vec![] };
//! let mut policy = DeliveryPolicy::new(oco_core::chrono_tz::Tz::UTC);
//! policy.ip_ranges = "10.0.0.0/8".parse()?;
//! let origin = Origin::Container(ContainerId(3));
//! let mut job = Job::new(origin, computer.id, &package, JobKind::Install, 1);
//! job.id = JobId(42);
//! let snapshot = PlannerSnapshot {
//!     computer,
//!     jobs: vec![job],
//!     origins: BTreeMap::from([(origin, OriginInfo {
//!         enabled: true,
//!         created_at: now,
//!         schedule: Some(Schedule::new(now, None)?),
//!         policy: Ok(policy),
//!         failed: vec![],
//!     })]),
//! };
//!
//! let inside = plan(&snapshot, now, "10.1.2.3".parse()?, &Settings::default());
//! assert_eq!(inside.deliver.len(), 1);
//!
//! let outside = plan(&snapshot, now, "192.168.1.1".parse()?, &Settings::default());
//! assert!(outside.deliver.is_empty());
//! assert_eq!(outside.held[0].reason, HoldReason::IpDenied);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Reverse;
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::model::{DeliveryPolicy, Job, JobId, Origin, PostAction, SequenceMode, WolShutdown};
use crate::store::{Change, ChangeSet, OriginInfo, PlannerSnapshot};
use crate::Settings;

/// What a poll decides: jobs to hand out, jobs held, and the writes the poll implies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use = "a plan decides what to hand out and what to write; dropping it loses its changes"]
pub struct Plan<'a> {
    /// Jobs to hand out now, in delivery order: by `(priority desc, origin created_at asc,
    /// origin kind (container before rule), origin id asc, sequence asc, job id asc)`, so that an
    /// origin's jobs form one block.
    pub deliver: Vec<Delivery<'a>>,
    /// Every pending job not handed out, with the first reason that applies, in the same order
    /// (origins whose policy is corrupt, and so have no priority, last).
    pub held: Vec<Held<'a>>,
    /// Writes to apply with the poll's own: Wake-on-LAN shutdown marks confirmed or cleared.
    pub changes: ChangeSet,
}

/// A job handed out, with what the agent needs beyond the job itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery<'a> {
    /// The job: id and attempt, origin, package, download flag, procedure.
    pub job: &'a Job,
    /// The origin's sequence mode.
    pub sequence_mode: SequenceMode,
    /// The one post action the agent runs after success, if any.
    pub post_action: Option<PostActionOrder>,
}

/// A post action with the minutes the agent waits before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PostActionOrder {
    /// Restart, shutdown or exit the agent.
    pub action: PostAction,
    /// Minutes to wait first.
    pub timeout_minutes: u32,
}

/// A pending job not handed out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held<'a> {
    /// The job.
    pub job: &'a Job,
    /// The first reason that applies, in the order of [`HoldReason`]'s variants.
    pub reason: HoldReason,
}

/// Why a pending job is not handed out. When several apply, the first in this order is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum HoldReason {
    /// The origin's stored policy could not be read.
    Corrupt {
        /// Why it could not be read.
        detail: String,
    },
    /// The origin is disabled.
    Disabled,
    /// The container has not started yet.
    NotStarted {
        /// When it starts.
        starts_at: DateTime<Utc>,
    },
    /// The container has ended and the job had not begun.
    Ended,
    /// The origin's IP ranges do not allow the agent's address.
    IpDenied,
    /// The origin's time frames do not allow `now`.
    OutsideTimeFrames {
        /// When they next allow, if ever.
        #[cfg_attr(feature = "openapi", schema(required = true))]
        next_open: Option<DateTime<Utc>>,
    },
    /// Sequence mode abort-after-failed: a job of this computer with a lower sequence in the
    /// same origin has failed.
    BlockedBySequence {
        /// That job (the one with the lowest sequence).
        failed_job: JobId,
    },
}

/// Decides what the agent of `snapshot.computer`, polling from `addr` at `now`, gets.
///
/// A job is handed out when its origin is enabled; for containers, `start <= now` and the
/// container has not ended (or the job is Downloading or Executing: a job the agent began is
/// handed out again, even after the end, so it can finish); the origin's IP ranges allow `addr`
/// and its time frames allow `now` in the policy's zone; and, in sequence mode abort-after-failed,
/// no job of this computer with a lower sequence in the same origin has failed. Running jobs are
/// handed out again (the agent protocol is at-least-once).
///
/// Wake-on-LAN shutdown marks are settled for every pending job that has one: a poll within
/// `settings.wol_shutdown_expiry` of the wake packets confirms that the computer came up through
/// Wake-on-LAN (the job carries a shutdown); a first poll after that window means someone switched
/// it on by hand (the mark is cleared and the job carries its own post action). A window too long
/// to represent never ends.
pub fn plan<'a>(
    snapshot: &'a PlannerSnapshot,
    now: DateTime<Utc>,
    addr: IpAddr,
    settings: &Settings,
) -> Plan<'a> {
    let gates: Vec<(Origin, OriginGate<'_>)> = snapshot
        .origins
        .iter()
        .map(|(&origin, info)| (origin, OriginGate::new(info, now, addr)))
        .collect();
    let gate_of = |origin: Origin| {
        gates
            .binary_search_by(|(candidate, _)| candidate.cmp(&origin))
            .ok()
            .map(|index| &gates[index].1)
    };

    let mut changes = ChangeSet::default();
    let mut deliver = Vec::new();
    let mut held = Vec::new();
    for job in snapshot.jobs.iter().filter(|job| job.state.is_pending()) {
        let shutdown = settle_wol_mark(job, now, settings, &mut changes);
        let Some(gate) = gate_of(job.origin) else {
            held.push((
                Key::unknown(job),
                Held {
                    job,
                    reason: HoldReason::Corrupt {
                        detail: format!("{} is missing from the snapshot", job.origin),
                    },
                },
            ));
            continue;
        };
        match gate.check(job) {
            Ok(policy) => deliver.push((
                Key::new(gate, job),
                Delivery {
                    job,
                    sequence_mode: policy.sequence_mode,
                    post_action: post_action(job, policy, shutdown),
                },
            )),
            Err(reason) => held.push((Key::new(gate, job), Held { job, reason })),
        }
    }
    deliver.sort_unstable_by_key(|(key, _)| *key);
    held.sort_unstable_by_key(|(key, _)| *key);
    Plan {
        deliver: deliver.into_iter().map(|(_, delivery)| delivery).collect(),
        held: held.into_iter().map(|(_, held)| held).collect(),
        changes,
    }
}

/// The first instant after `now` at which [`plan`] may decide differently for `snapshot` and
/// `addr`; `None` if it decides the same at every later instant. At every instant `t` in
/// `now..until`, `plan(snapshot, t, addr, settings)` equals `plan(snapshot, now, addr, settings)`:
/// the same deliveries, holds (with the same reasons) and writes. So a caller may keep a plan and
/// hand it out again until then, as long as the snapshot and the address stay the same.
///
/// The instants where a decision may change: a container's start (while not started) and end,
/// the edges of an origin's time frames (while its address and schedule let them matter), and
/// the end of a Wake-on-LAN shutdown window.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use oco_core::chrono::{TimeZone, Utc};
/// # use oco_core::model::*;
/// # use oco_core::store::{OriginInfo, PlannerSnapshot};
/// # use oco_core::plan::{plan, valid_until};
/// # use oco_core::Settings;
/// # let computer = Computer { id: ComputerId(1), hostname: Name::new("hostname", "pc1")?, os: String::new(),
/// #     os_version: String::new(), architecture: String::new(), macs: vec![], last_seen: None };
/// # let package = Package { id: PackageId(7), family: FamilyId(1), version: Name::new("version", "1.0")?,
/// #     install: Procedure::default(), uninstall: Procedure::default(), payload: None,
/// #     download_for_uninstall: false, upgrade_behavior: UpgradeBehavior::KeepOthers,
/// #     compatibility: Compatibility::default(), dependencies: vec![] };
/// // Tuesday noon; the container's jobs may be delivered on weekdays from 8:00 to 17:00 UTC.
/// let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
/// let mut policy = DeliveryPolicy::new(oco_core::chrono_tz::Tz::UTC);
/// policy.time_frames = "MON-FRI 08:00-17:00".parse()?;
/// let origin = Origin::Container(ContainerId(3));
/// let mut job = Job::new(origin, computer.id, &package, JobKind::Install, 1);
/// job.id = JobId(42);
/// let snapshot = PlannerSnapshot {
///     computer,
///     jobs: vec![job],
///     origins: BTreeMap::from([(origin, OriginInfo {
///         enabled: true,
///         created_at: now,
///         schedule: Some(Schedule::new(now, None)?),
///         policy: Ok(policy),
///         failed: vec![],
///     })]),
/// };
/// let addr = "10.1.2.3".parse()?;
/// let settings = Settings::default();
/// let closes = Utc.with_ymd_and_hms(2026, 11, 24, 17, 0, 0).unwrap();
/// assert_eq!(valid_until(&snapshot, now, addr, &settings), Some(closes));
/// assert_eq!(plan(&snapshot, now, addr, &settings).deliver.len(), 1);
/// assert!(plan(&snapshot, closes, addr, &settings).deliver.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn valid_until(
    snapshot: &PlannerSnapshot,
    now: DateTime<Utc>,
    addr: IpAddr,
    settings: &Settings,
) -> Option<DateTime<Utc>> {
    let origins = snapshot
        .origins
        .values()
        .filter_map(|info| OriginGate::new(info, now, addr).changes_after(now));
    let wol_windows = snapshot
        .jobs
        .iter()
        .filter(|job| job.state.is_pending())
        .filter_map(|job| match job.wol_shutdown {
            // Woken while `now <= since + expiry`: the verdict turns a nanosecond after.
            Some(WolShutdown::Pending { since }) => since
                .checked_add_signed(settings.wol_shutdown_expiry)?
                .checked_add_signed(TimeDelta::nanoseconds(1))
                .filter(|&turns| turns > now),
            _ => None,
        });
    origins.chain(wol_windows).min()
}

/// The delivery order key of a job: `(priority desc, origin created_at asc, origin kind, origin
/// id, sequence, job id)`; origins without a readable policy sort after all others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    priority: Reverse<Option<i8>>,
    created_at: Option<DateTime<Utc>>,
    origin: Origin,
    sequence: u32,
    job: JobId,
}

impl Key {
    fn new(gate: &OriginGate<'_>, job: &Job) -> Self {
        Key {
            priority: Reverse(gate.policy.map(|policy| policy.priority.get())),
            created_at: Some(gate.info.created_at),
            origin: job.origin,
            sequence: job.sequence,
            job: job.id,
        }
    }

    fn unknown(job: &Job) -> Self {
        Key {
            priority: Reverse(None),
            created_at: None,
            origin: job.origin,
            sequence: job.sequence,
            job: job.id,
        }
    }
}

/// What an origin decides for all its jobs, computed once per poll and origin.
struct OriginGate<'a> {
    info: &'a OriginInfo,
    policy: Option<&'a DeliveryPolicy>,
    /// Corrupt, Disabled or NotStarted, if one applies.
    hold: Option<HoldReason>,
    /// Whether the container has ended (which holds only jobs that have not begun).
    ended: bool,
    /// IpDenied or OutsideTimeFrames, if one applies.
    constraint: Option<HoldReason>,
}

impl<'a> OriginGate<'a> {
    fn new(info: &'a OriginInfo, now: DateTime<Utc>, addr: IpAddr) -> Self {
        let policy = info.policy.as_ref().ok();
        let ended = info
            .schedule
            .is_some_and(|schedule| schedule.has_ended(now));
        let hold = match &info.policy {
            Err(detail) => Some(HoldReason::Corrupt {
                detail: detail.clone(),
            }),
            Ok(_) if !info.enabled => Some(HoldReason::Disabled),
            Ok(_) => match info.schedule {
                Some(schedule) if now < schedule.start() => Some(HoldReason::NotStarted {
                    starts_at: schedule.start(),
                }),
                _ => None,
            },
        };
        let constraint = match policy {
            Some(policy) if hold.is_none() => Self::constraints(policy, now, addr),
            _ => None,
        };
        OriginGate {
            info,
            policy,
            hold,
            ended,
            constraint,
        }
    }

    fn constraints(
        policy: &DeliveryPolicy,
        now: DateTime<Utc>,
        addr: IpAddr,
    ) -> Option<HoldReason> {
        if !policy.ip_ranges.allows(addr) {
            return Some(HoldReason::IpDenied);
        }
        if !policy.time_frames.allows_at(now, policy.time_zone) {
            return Some(HoldReason::OutsideTimeFrames {
                next_open: policy.time_frames.next_open(now, policy.time_zone),
            });
        }
        None
    }

    /// The first instant after `now` at which this origin's gate may decide differently, if any.
    fn changes_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.hold {
            Some(HoldReason::NotStarted { starts_at }) => return Some(*starts_at),
            // Corrupt and Disabled hold until the origin itself changes.
            Some(_) => return None,
            None => {}
        }
        let end = self
            .info
            .schedule
            .and_then(|schedule| schedule.end())
            .filter(|&end| end > now);
        let edge = match (self.policy, &self.constraint) {
            // The address never changes for the caller's purpose: an origin that denies it
            // holds at every instant.
            (_, Some(HoldReason::IpDenied)) | (None, _) => None,
            (Some(policy), _) if policy.time_frames.is_unconstrained() => None,
            (Some(policy), constraint) => {
                let matcher = policy.time_frames.compile();
                if constraint.is_some() {
                    matcher.next_open(now, policy.time_zone)
                } else {
                    matcher.next_closed(now, policy.time_zone)
                }
            }
        };
        [end, edge]
            .into_iter()
            .flatten()
            .filter(|&at| at > now)
            .min()
    }

    /// The origin's policy if `job` is handed out, else the first reason it is held.
    fn check(&self, job: &Job) -> Result<&'a DeliveryPolicy, HoldReason> {
        if let Some(reason) = &self.hold {
            return Err(reason.clone());
        }
        let Some(policy) = self.policy else {
            // Invariant: without a policy, `hold` is `Corrupt`.
            return Err(HoldReason::Corrupt {
                detail: String::new(),
            });
        };
        if self.ended && !job.state.is_running() {
            return Err(HoldReason::Ended);
        }
        if let Some(reason) = &self.constraint {
            return Err(reason.clone());
        }
        if policy.sequence_mode == SequenceMode::AbortAfterFailed {
            if let Some(failed) = self
                .info
                .failed
                .iter()
                .filter(|failed| failed.sequence < job.sequence)
                .min_by_key(|failed| (failed.sequence, failed.id))
            {
                return Err(HoldReason::BlockedBySequence {
                    failed_job: failed.id,
                });
            }
        }
        Ok(policy)
    }
}

/// Settles the job's Wake-on-LAN shutdown mark at this poll, recording the write; returns whether
/// the job carries a shutdown.
fn settle_wol_mark(
    job: &Job,
    now: DateTime<Utc>,
    settings: &Settings,
    changes: &mut ChangeSet,
) -> bool {
    match job.wol_shutdown {
        None => false,
        Some(WolShutdown::Confirmed) => true,
        Some(WolShutdown::Pending { since }) => {
            let expiry = settings.wol_shutdown_expiry;
            // A window ending past the last representable time has not ended (one starting
            // before the first has).
            let woken = match since.checked_add_signed(expiry) {
                Some(end) => now <= end,
                None => expiry > TimeDelta::zero(),
            };
            let mut updated = job.clone();
            updated.wol_shutdown = woken.then_some(WolShutdown::Confirmed);
            changes.push(Change::UpdateJob {
                expected: job.revision,
                job: updated,
            });
            woken
        }
    }
}

/// The post action a delivered job carries: a shutdown for a computer woken by Wake-on-LAN, else
/// the job's own, none when the policy disables post actions.
fn post_action(job: &Job, policy: &DeliveryPolicy, wol_shutdown: bool) -> Option<PostActionOrder> {
    if wol_shutdown {
        return Some(PostActionOrder {
            action: PostAction::Shutdown,
            timeout_minutes: policy.post_action_timeout.unwrap_or(0),
        });
    }
    let timeout_minutes = policy.post_action_timeout?;
    match job.snapshot.procedure.post_action {
        PostAction::None => None,
        action => Some(PostActionOrder {
            action,
            timeout_minutes,
        }),
    }
}
