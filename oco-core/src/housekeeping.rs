//! Housekeeping: expiry, purge, Wake-on-LAN; and container statistics.
//!
//! [`housekeeping`] is what the server runs on a timer: it reads a [`HousekeepingSnapshot`] and
//! `now`, and returns one [`ChangeSet`] to apply atomically plus the [`Effect`]s to perform (wake
//! packets to send). It performs nothing itself.
//!
//! [`container_statistics`] (and [`statistics`], the same over any set of jobs) computes the
//! status, runtimes and per-state counts shown for a container, and the status purge decides by.
//!
//! # Examples
//!
//! ```
//! use oco_core::chrono::{TimeZone, Utc};
//! use oco_core::housekeeping::housekeeping;
//! use oco_core::store::HousekeepingSnapshot;
//! use oco_core::Settings;
//!
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
//! let run = housekeeping(now, &HousekeepingSnapshot::default(), &Settings::default());
//! assert!(run.changes.is_empty() && run.effects.is_empty());
//! assert_eq!(run.summary.purged, 0);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Computer, ComputerId, ContainerId, Job, JobContainer, JobState, MacAddress, PostAction,
    ServerFinal, WolShutdown,
};
use crate::store::{Change, ChangeSet, ContainerJobs, HousekeepingSnapshot};
use crate::Settings;

/// What one housekeeping run decided.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a housekeeping run's writes and effects happen only when applied and carried out"]
pub struct Housekeeping {
    /// The writes, to apply atomically. Ordered by container id; within a container, job updates
    /// by job id, then the container's own update or deletion. A job appears at most once.
    pub changes: ChangeSet,
    /// What the caller performs after applying `changes`, ordered by container id.
    pub effects: Vec<Effect>,
    /// Counts of what was decided, for the server's log line.
    pub summary: Summary,
}

/// Something the caller does on the core's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum Effect {
    /// Send [`MacAddress::magic_packet`] for each address (as a broadcast datagram).
    Wake {
        /// The container whose start this is for.
        container: ContainerId,
        /// The addresses, each once, sorted; never empty.
        macs: Vec<MacAddress>,
    },
}

/// Counts of one housekeeping run's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Waiting jobs of ended containers that became Expired.
    pub expired: usize,
    /// Running jobs of ended containers, silent for too long, that became Expired.
    pub expired_stale: usize,
    /// Containers deleted.
    pub purged: usize,
    /// [`Effect::Wake`]s returned.
    pub wakes: usize,
    /// Jobs given a Wake-on-LAN shutdown mark.
    pub shutdown_marks: usize,
    /// Whether tombstones of deleted jobs older than [`tombstone_lifetime`] were purged.
    pub tombstones_purged: bool,
}

/// Decides expiry, purge and Wake-on-LAN for the containers in `snapshot` at `now`.
///
/// Containers are handled in id order, and each one's jobs in id order, whatever the order of
/// the snapshot; the result depends on nothing else than the arguments.
///
/// - **Expiry**, for a container that has ended ([`Schedule::has_ended`]): each Waiting job
///   becomes Expired with [`MessageCode::Expired`] and `finished = now`. A Downloading or
///   Executing job is left to finish unless `now >= max(end, last_report) +
///   settings.stale_running_after` (a job never reported counts from the end); then it becomes
///   Expired with [`MessageCode::ExpiredStale`], `finished = now`, its output kept. Disabled
///   containers expire too.
/// - **Purge**: a container without pending jobs *in the snapshot* is deleted when
///   `now - last finished > purge_succeeded_after` (status succeeded) or `purge_failed_after`
///   (status failed), the status as in [`statistics`]. Without any finish time the age counts
///   from `max(start, created_at)`. A container whose jobs expire in this run is not purged in
///   the same run: their `finished` is `now`, so a later run purges it. Its jobs leave
///   tombstones dated `now` ([`Change::DeleteContainer`]).
/// - **Wake-on-LAN**, for an enabled container with `wol.wake`, `wol.sent_at == None` and
///   `start <= now`: the computers with pending jobs in it (after this run's expiry) are woken by
///   one [`Effect::Wake`] with all their MACs, each once. Computers missing from
///   `snapshot.computers` or without MACs cannot be woken. The container is marked sent
///   (`wol.sent_at = Some(now)`) even if there was nothing to wake, so it is not tried again.
///   With `wol.shutdown_after`, each woken computer that is offline (`last_seen` is `None` or
///   at least `settings.offline_after` ago) gets [`WolShutdown::Pending`] `{ since: now }` on
///   its last pending job in the container in delivery order (highest sequence, then highest
///   id), if that job's post action is none or exit-agent (a restart or shutdown is left alone).
/// - **Tombstones**: when `snapshot.oldest_tombstone` is older than `now -`
///   [`tombstone_lifetime`], one [`Change::PurgeTombstones`] with that cut-off, last in the set.
///
/// Every job change is a [`Change::UpdateJob`] naming the job's revision in the snapshot; only
/// pending jobs are changed, each at most once.
///
/// [`Schedule::has_ended`]: crate::model::Schedule::has_ended
/// [`MessageCode::Expired`]: crate::model::MessageCode::Expired
/// [`MessageCode::ExpiredStale`]: crate::model::MessageCode::ExpiredStale
pub fn housekeeping(
    now: DateTime<Utc>,
    snapshot: &HousekeepingSnapshot,
    settings: &Settings,
) -> Housekeeping {
    let mut run = Housekeeping {
        changes: ChangeSet::default(),
        effects: Vec::new(),
        summary: Summary::default(),
    };
    let mut containers: Vec<&ContainerJobs> = snapshot.containers.iter().collect();
    containers.sort_by_key(|entry| entry.container.id);
    for entry in containers {
        housekeep_container(now, entry, &snapshot.computers, settings, &mut run);
    }
    let cutoff = now.checked_sub_signed(tombstone_lifetime(settings));
    if let (Some(oldest), Some(cutoff)) = (snapshot.oldest_tombstone, cutoff) {
        if oldest < cutoff {
            run.changes.push(Change::PurgeTombstones {
                deleted_before: cutoff,
            });
            run.summary.tombstones_purged = true;
        }
    }
    run
}

/// How long a tombstone of a deleted job is kept: the longest of `stale_running_after` and the
/// two purge ages. Housekeeping purges tombstones deleted more than this long ago.
///
/// A tombstone lets a late report on a deleted job record the installation. A job may have been
/// running when it was deleted (with its container, rule or computer, or by rule evaluation), and
/// a running job is given `stale_running_after` of silence before it is given up on; a
/// tombstone is dated at the deletion, which is no earlier than the job's last report, so it lives
/// at least as long as the job itself would have been waited for. The purge ages count too: a
/// report on a job of a container is expected no later than its purge.
pub fn tombstone_lifetime(settings: &Settings) -> Duration {
    settings
        .stale_running_after
        .max(settings.purge_succeeded_after)
        .max(settings.purge_failed_after)
}

/// Statistics of a container's jobs at `now`; see [`statistics`].
pub fn container_statistics(
    container: &JobContainer,
    jobs: &[Job],
    now: DateTime<Utc>,
) -> ContainerStatistics {
    container_statistics_of(container, &JobSummary::of(jobs), now)
}

/// Statistics of a container at `now` from the summary of its jobs; see [`statistics`].
pub fn container_statistics_of(
    container: &JobContainer,
    summary: &JobSummary,
    now: DateTime<Utc>,
) -> ContainerStatistics {
    statistics_of(
        summary,
        Some(container.schedule.start()),
        container.created_at,
        now,
    )
}

/// Statistics of a set of jobs (a container's, or a rule's with `start = None`) at `now`.
///
/// The jobs may come in any order. Runtimes are measured from `max(start, created_at)`.
/// - `status`: see [`ContainerStatus`]; without a `start` it is never `Scheduled`.
/// - `total_runtime`: while jobs are pending, up to `now` and `running`; otherwise up to the
///   last `finished`. `None` while `Scheduled`, and when nothing is pending and no job has a
///   finish time (an empty container, or only Incompatible/AlreadyInstalled jobs created
///   without one). Negative spans (jobs finalised before the start) count as zero.
/// - `effective_runtime`: among the jobs that started executing (`execution_started` set), the
///   last `finished` minus the first `execution_started`; `None` if no job started or none of
///   those finished. Jobs that never started do not void it (as they do in OCO).
/// - `counts`: every [`JobState`] is a key, with 0 where no job is in it.
pub fn statistics(
    jobs: &[Job],
    start: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ContainerStatistics {
    statistics_of(&JobSummary::of(jobs), start, created_at, now)
}

/// [`statistics`] from the summary of the jobs rather than the jobs: what a store computes with
/// an aggregate query ([`Store::job_summary`](crate::store::Store::job_summary)).
pub fn statistics_of(
    summary: &JobSummary,
    start: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ContainerStatistics {
    let mut counts: BTreeMap<JobState, usize> =
        JobState::ALL.into_iter().map(|state| (state, 0)).collect();
    for (&state, &count) in &summary.counts {
        *counts.entry(state).or_default() += count;
    }
    let some_in = |states: &[JobState]| {
        states
            .iter()
            .any(|state| counts.get(state).is_some_and(|&n| n > 0))
    };
    let pending = some_in(&[
        JobState::Waiting,
        JobState::Downloading,
        JobState::Executing,
    ]);
    let status = if pending {
        if start.is_some_and(|start| start > now) {
            ContainerStatus::Scheduled
        } else {
            ContainerStatus::Waiting
        }
    } else if some_in(&[JobState::Failed, JobState::Expired, JobState::Incompatible]) {
        ContainerStatus::Failed
    } else {
        ContainerStatus::Succeeded
    };

    let since = runtime_origin(start, created_at);
    let total_runtime = match status {
        ContainerStatus::Scheduled => None,
        ContainerStatus::Waiting => Some(Runtime {
            duration: non_negative(now - since),
            running: true,
        }),
        ContainerStatus::Failed | ContainerStatus::Succeeded => {
            summary.last_finished.map(|finished| Runtime {
                duration: non_negative(finished - since),
                running: false,
            })
        }
    };
    let effective_runtime = summary
        .first_execution_started
        .zip(summary.last_started_finished)
        .map(|(first, last)| non_negative(last - first));

    ContainerStatistics {
        status,
        total_runtime,
        effective_runtime,
        counts,
    }
}

/// What [`statistics`] reads of a set of jobs: how many are in each state, and three instants.
/// A store computes it with one aggregate query instead of loading the jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// How many jobs are in each state (a state without jobs may be absent or 0).
    pub counts: BTreeMap<JobState, usize>,
    /// The latest `finished` of any job.
    pub last_finished: Option<DateTime<Utc>>,
    /// The earliest `execution_started`.
    pub first_execution_started: Option<DateTime<Utc>>,
    /// The latest `finished` among the jobs with an `execution_started`.
    pub last_started_finished: Option<DateTime<Utc>>,
}

impl JobSummary {
    /// The summary of `jobs`, in any order.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::housekeeping::JobSummary;
    ///
    /// let summary = JobSummary::of(&[]);
    /// assert!(summary.counts.is_empty() && summary.last_finished.is_none());
    /// ```
    pub fn of(jobs: &[Job]) -> Self {
        let mut summary = JobSummary::default();
        for job in jobs {
            summary.add(job);
        }
        summary
    }

    /// Counts one more job.
    pub fn add(&mut self, job: &Job) {
        *self.counts.entry(job.state).or_default() += 1;
        self.last_finished = self.last_finished.max(job.finished);
        if let Some(started) = job.execution_started {
            self.first_execution_started = Some(
                self.first_execution_started
                    .map_or(started, |first| first.min(started)),
            );
            self.last_started_finished = self.last_started_finished.max(job.finished);
        }
    }

    /// The same summary without states of no job, as two summaries of the same jobs compare.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        self.counts.retain(|_, count| *count > 0);
        self
    }
}

/// A container's (or rule's) progress, as [`statistics`] computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerStatistics {
    /// Where the jobs are, taken together.
    pub status: ContainerStatus,
    /// From the start to the last finish, or to now while running.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub total_runtime: Option<Runtime>,
    /// From the first execution start to the last finish of the jobs that started (seconds in
    /// serde, [`crate::serde_seconds`]).
    #[serde(with = "crate::serde_seconds::option")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<f64>, minimum = 0, required = true)
    )]
    pub effective_runtime: Option<Duration>,
    /// How many jobs are in each state; every state is present.
    pub counts: BTreeMap<JobState, usize>,
}

/// The status of a container, from its jobs; the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ContainerStatus {
    /// Jobs are pending and the start is in the future.
    Scheduled,
    /// Jobs are pending.
    Waiting,
    /// A job is Failed, Expired or Incompatible.
    Failed,
    /// Otherwise: every job succeeded or was already installed, or there are no jobs.
    Succeeded,
}

/// A duration, and whether it is still growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Runtime {
    /// How long, never negative (seconds in serde, [`crate::serde_seconds`]).
    #[serde(with = "crate::serde_seconds")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64, minimum = 0))]
    pub duration: Duration,
    /// Jobs are still pending: measured up to `now` (OCO prints `~`).
    pub running: bool,
}

fn housekeep_container(
    now: DateTime<Utc>,
    entry: &ContainerJobs,
    computers: &BTreeMap<ComputerId, Computer>,
    settings: &Settings,
    run: &mut Housekeeping,
) {
    let container = &entry.container;
    let mut jobs: Vec<&Job> = entry.jobs.iter().collect();
    jobs.sort_by_key(|job| job.id);

    if purge_due(now, container, &entry.jobs, settings) {
        run.changes.push(Change::DeleteContainer {
            id: container.id,
            jobs: jobs.iter().map(|job| (job.id, job.revision)).collect(),
            at: now,
        });
        run.summary.purged += 1;
        return;
    }

    // Jobs changed in this run, by their index in `jobs` (so id order), as they should be.
    let mut updated: BTreeMap<usize, Job> = BTreeMap::new();

    if let Some(end) = container
        .schedule
        .end()
        .filter(|_| container.schedule.has_ended(now))
    {
        for (index, job) in jobs.iter().enumerate() {
            let how = match job.state {
                JobState::Waiting => ServerFinal::Expired,
                JobState::Downloading | JobState::Executing
                    if is_stale(job, end, now, settings) =>
                {
                    ServerFinal::ExpiredStale
                }
                _ => continue,
            };
            let mut expired = (*job).clone();
            expired.finalize_by_server(how, now);
            match how {
                ServerFinal::ExpiredStale => run.summary.expired_stale += 1,
                _ => run.summary.expired += 1,
            }
            updated.insert(index, expired);
        }
    }

    let wol = container.wol;
    let wake_due =
        wol.wake && wol.sent_at.is_none() && container.enabled && container.schedule.start() <= now;
    if wake_due {
        // Each computer with pending jobs, with the index of its last one in delivery order.
        let mut last_pending: BTreeMap<ComputerId, usize> = BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            let state = updated.get(&index).map_or(job.state, |job| job.state);
            if !state.is_pending() {
                continue;
            }
            last_pending
                .entry(job.computer)
                .and_modify(|last| {
                    let current = jobs[*last];
                    if (job.sequence, job.id) > (current.sequence, current.id) {
                        *last = index;
                    }
                })
                .or_insert(index);
        }
        let woken: Vec<(&Computer, usize)> = last_pending
            .iter()
            .filter_map(|(id, &index)| computers.get(id).map(|computer| (computer, index)))
            .filter(|(computer, _)| !computer.macs.is_empty())
            .collect();
        let macs: BTreeSet<MacAddress> = woken
            .iter()
            .flat_map(|(computer, _)| computer.macs.iter().copied())
            .collect();
        if !macs.is_empty() {
            run.effects.push(Effect::Wake {
                container: container.id,
                macs: macs.into_iter().collect(),
            });
            run.summary.wakes += 1;
        }
        if wol.shutdown_after {
            for (computer, index) in woken {
                let offline = computer
                    .last_seen
                    .is_none_or(|seen| now - seen >= settings.offline_after);
                let post_action = jobs[index].snapshot.procedure.post_action;
                let may_shut_down = matches!(post_action, PostAction::None | PostAction::ExitAgent);
                if offline && may_shut_down {
                    let job = updated.entry(index).or_insert_with(|| jobs[index].clone());
                    job.wol_shutdown = Some(WolShutdown::Pending { since: now });
                    run.summary.shutdown_marks += 1;
                }
            }
        }
    }

    for (index, job) in updated {
        run.changes.push(Change::UpdateJob {
            expected: jobs[index].revision,
            job,
        });
    }
    if wake_due {
        run.changes.push(Change::MarkWolSent {
            container: container.id,
            at: now,
        });
    }
}

/// Whether a container is finished (in the snapshot) and old enough to be deleted.
fn purge_due(
    now: DateTime<Utc>,
    container: &JobContainer,
    jobs: &[Job],
    settings: &Settings,
) -> bool {
    let statistics = container_statistics(container, jobs, now);
    let keep_for = match statistics.status {
        ContainerStatus::Scheduled | ContainerStatus::Waiting => return false,
        ContainerStatus::Succeeded => settings.purge_succeeded_after,
        ContainerStatus::Failed => settings.purge_failed_after,
    };
    let finished = jobs
        .iter()
        .filter_map(|job| job.finished)
        .max()
        .unwrap_or_else(|| runtime_origin(Some(container.schedule.start()), container.created_at));
    now - finished > keep_for
}

/// Whether a running job of a container that ended at `end` has been silent too long at `now`.
fn is_stale(job: &Job, end: DateTime<Utc>, now: DateTime<Utc>, settings: &Settings) -> bool {
    let silent_since = job.last_report.map_or(end, |report| report.max(end));
    // Past the representable range means never.
    silent_since
        .checked_add_signed(settings.stale_running_after)
        .is_some_and(|stale_at| now >= stale_at)
}

fn runtime_origin(start: Option<DateTime<Utc>>, created_at: DateTime<Utc>) -> DateTime<Utc> {
    start.map_or(created_at, |start| start.max(created_at))
}

fn non_negative(duration: Duration) -> Duration {
    duration.max(Duration::zero())
}
