//! Housekeeping through the public API: expiry, purge, Wake-on-LAN with shutdown marks, and
//! container statistics, with a fixed clock.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::housekeeping::{
    container_statistics, housekeeping, statistics, tombstone_lifetime, ContainerStatus, Effect,
    Housekeeping, Runtime,
};
use oco_core::model::{
    Compatibility, Computer, ComputerId, ContainerId, DeliveryPolicy, FamilyId, Job, JobContainer,
    JobId, JobKind, JobState, MacAddress, MessageCode, Name, Origin, Package, PackageId, Payload,
    PostAction, Procedure, Revision, Schedule, Sha256Digest, UpgradeBehavior, WolSettings,
    WolShutdown,
};
use oco_core::store::{Change, ContainerJobs, HousekeepingSnapshot};
use oco_core::Settings;
use proptest::prelude::*;

// ---- fixtures ----------------------------------------------------------------------------------

/// The fixed clock: 2026-11-24 00:00 UTC plus `hours`.
fn t(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + Duration::hours(hours)
}

fn secs(seconds: i64) -> Duration {
    Duration::seconds(seconds)
}

fn package(post_action: PostAction) -> Package {
    let procedure = Procedure {
        command: "setup.exe /S".to_owned(),
        success_codes: Default::default(),
        post_action,
    };
    Package {
        id: PackageId(1),
        family: FamilyId(1),
        version: Name::new("version", "1.0").unwrap(),
        install: procedure.clone(),
        uninstall: procedure,
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: UpgradeBehavior::KeepOthers,
        compatibility: Compatibility::default(),
        dependencies: Vec::new(),
    }
}

/// An enabled container created at t(0), starting at `start`, ending at `end`, without WOL.
fn container(id: i64, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> JobContainer {
    JobContainer {
        id: ContainerId(id),
        name: Name::new("name", &format!("container {id}")).unwrap(),
        notes: String::new(),
        enabled: true,
        schedule: Schedule::new(start, end).unwrap(),
        policy: DeliveryPolicy::new(Tz::UTC),
        wol: WolSettings::default(),
        self_service: false,
        created_at: t(0),
    }
}

fn wol_container(id: i64, shutdown_after: bool) -> JobContainer {
    let mut container = container(id, t(1), None);
    container.wol = WolSettings {
        wake: true,
        shutdown_after,
        sent_at: None,
    };
    container
}

/// A job of `container` on `computer` in `state`, sequence 1, revision `id + 100`.
fn job(id: i64, container: i64, computer: i64, state: JobState) -> Job {
    let mut job = Job::new(
        Origin::Container(ContainerId(container)),
        ComputerId(computer),
        &package(PostAction::None),
        JobKind::Install,
        1,
    );
    job.id = JobId(id);
    job.state = state;
    job.revision = Revision(u64::try_from(id).unwrap() + 100);
    job
}

fn finished_job(id: i64, container: i64, state: JobState, finished: DateTime<Utc>) -> Job {
    let mut job = job(id, container, 1, state);
    job.finished = Some(finished);
    job
}

fn mac(text: &str) -> MacAddress {
    text.parse().unwrap()
}

fn computer(id: i64, macs: &[&str], last_seen: Option<DateTime<Utc>>) -> Computer {
    Computer {
        id: ComputerId(id),
        hostname: Name::new("hostname", &format!("pc{id}")).unwrap(),
        os: "Windows".to_owned(),
        os_version: "11".to_owned(),
        architecture: "x64".to_owned(),
        macs: macs.iter().map(|text| mac(text)).collect(),
        last_seen,
    }
}

fn snapshot(
    containers: Vec<(JobContainer, Vec<Job>)>,
    computers: Vec<Computer>,
) -> HousekeepingSnapshot {
    HousekeepingSnapshot {
        containers: containers
            .into_iter()
            .map(|(container, jobs)| ContainerJobs { container, jobs })
            .collect(),
        computers: computers.into_iter().map(|c| (c.id, c)).collect(),
        oldest_tombstone: None,
    }
}

fn run(now: DateTime<Utc>, snapshot: &HousekeepingSnapshot) -> Housekeeping {
    housekeeping(now, snapshot, &Settings::default())
}

/// The jobs the run updates, with the revision each update expects.
fn updated_jobs(run: &Housekeeping) -> Vec<(Revision, &Job)> {
    run.changes
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::UpdateJob { expected, job } => Some((*expected, job)),
            _ => None,
        })
        .collect()
}

fn deleted_containers(run: &Housekeeping) -> Vec<ContainerId> {
    run.changes
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::DeleteContainer { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Containers whose wake packets the run marks as sent, with the time.
fn marked_sent(run: &Housekeeping) -> Vec<(ContainerId, DateTime<Utc>)> {
    run.changes
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::MarkWolSent { container, at } => Some((*container, *at)),
            _ => None,
        })
        .collect()
}

// ---- expiry ------------------------------------------------------------------------------------

#[test]
fn waiting_jobs_expire_when_the_container_ends_and_not_before() {
    let end = t(10);
    let snapshot = snapshot(
        vec![(
            container(1, t(1), Some(end)),
            vec![
                job(2, 1, 1, JobState::Waiting),
                finished_job(3, 1, JobState::Succeeded, t(5)),
                finished_job(4, 1, JobState::Failed, t(6)),
                job(5, 1, 2, JobState::Waiting),
            ],
        )],
        vec![],
    );

    let before = run(end - secs(1), &snapshot);
    let at_end = run(end, &snapshot);

    assert!(before.changes.is_empty());
    let updated = updated_jobs(&at_end);
    assert_eq!(
        updated.iter().map(|(_, job)| job.id).collect::<Vec<_>>(),
        [JobId(2), JobId(5)]
    );
    for (expected, job) in updated {
        assert_eq!(expected, Revision(u64::try_from(job.id.0).unwrap() + 100));
        assert_eq!(job.state, JobState::Expired);
        assert_eq!(job.finished, Some(end));
        assert_eq!(job.message, Some(MessageCode::Expired));
    }
    assert_eq!(at_end.summary.expired, 2);
    assert_eq!(at_end.summary.expired_stale, 0);
    assert!(deleted_containers(&at_end).is_empty());
}

#[test]
fn running_jobs_are_left_to_finish_after_the_end() {
    let end = t(10);
    let mut downloading = job(2, 1, 1, JobState::Downloading);
    downloading.last_report = Some(end + Duration::hours(1));
    let mut executing = job(3, 1, 2, JobState::Executing);
    executing.last_report = Some(end - Duration::hours(1));
    let snapshot = snapshot(
        vec![(container(1, t(1), Some(end)), vec![downloading, executing])],
        vec![],
    );

    let after = run(end + Duration::hours(2), &snapshot);

    assert!(after.changes.is_empty());
    assert_eq!(after.summary, Default::default());
}

#[test]
fn a_running_job_silent_for_24_hours_after_the_end_expires_as_stale() {
    let end = t(10);
    let mut reported_after_end = job(2, 1, 1, JobState::Executing);
    reported_after_end.last_report = Some(end + Duration::hours(3));
    reported_after_end.output = "half way".to_owned();
    reported_after_end.execution_started = Some(end - Duration::hours(1));
    let mut never_reported = job(3, 1, 2, JobState::Downloading);
    never_reported.last_report = None;
    let snapshot = snapshot(
        vec![(
            container(1, t(1), Some(end)),
            vec![reported_after_end.clone(), never_reported],
        )],
        vec![],
    );

    let at_23h = run(end + Duration::hours(23), &snapshot);
    let at_24h = run(end + Duration::hours(24), &snapshot);
    let at_27h = run(end + Duration::hours(27), &snapshot);

    assert!(at_23h.changes.is_empty());
    // Silence counts from the end for the job never reported, from its report for the other.
    let ids = |run: &Housekeeping| {
        updated_jobs(run)
            .iter()
            .map(|(_, job)| job.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&at_24h), [JobId(3)]);
    assert_eq!(ids(&at_27h), [JobId(2), JobId(3)]);
    let (expected, stale) = updated_jobs(&at_27h)[0];
    assert_eq!(expected, reported_after_end.revision);
    assert_eq!(stale.state, JobState::Expired);
    assert_eq!(stale.message, Some(MessageCode::ExpiredStale));
    assert_eq!(stale.finished, Some(end + Duration::hours(27)));
    assert_eq!(stale.output, "half way");
    assert_eq!(
        stale.execution_started,
        reported_after_end.execution_started
    );
    assert_eq!(at_27h.summary.expired_stale, 2);
    assert_eq!(at_27h.summary.expired, 0);
}

#[test]
fn a_container_without_end_never_expires() {
    let snapshot = snapshot(
        vec![(
            container(1, t(1), None),
            vec![job(2, 1, 1, JobState::Waiting)],
        )],
        vec![],
    );

    assert!(run(t(24 * 365), &snapshot).changes.is_empty());
}

// ---- purge -------------------------------------------------------------------------------------

#[test]
fn a_succeeded_container_is_purged_more_than_4_hours_after_its_last_job() {
    let snapshot = snapshot(
        vec![(
            container(1, t(1), None),
            vec![
                finished_job(2, 1, JobState::Succeeded, t(3)),
                finished_job(3, 1, JobState::AlreadyInstalled, t(5)),
            ],
        )],
        vec![],
    );

    let just_before = run(t(9) - secs(1), &snapshot);
    let exactly = run(t(9), &snapshot);
    let just_after = run(t(9) + secs(1), &snapshot);

    assert!(just_before.changes.is_empty());
    assert!(exactly.changes.is_empty());
    let [Change::DeleteContainer { id, jobs, at }] = just_after.changes.changes.as_slice() else {
        panic!("one container deletion expected: {:?}", just_after.changes);
    };
    assert_eq!(*id, ContainerId(1));
    // Its jobs' tombstones are dated by the run.
    assert_eq!(*at, t(9) + secs(1));
    // The deletion names every job of the container at the revision read.
    let expected: Vec<_> = snapshot.containers[0]
        .jobs
        .iter()
        .map(|j| (j.id, j.revision))
        .collect();
    assert_eq!(jobs, &expected);
    assert_eq!(just_after.summary.purged, 1);
}

#[test]
fn a_failed_container_is_purged_more_than_2_days_after_its_last_job() {
    let last = t(5);
    let snapshot = snapshot(
        vec![(
            container(1, t(1), None),
            vec![
                finished_job(2, 1, JobState::Succeeded, last),
                finished_job(3, 1, JobState::Failed, t(4)),
            ],
        )],
        vec![],
    );

    let after_4h = run(last + Duration::hours(5), &snapshot);
    let just_before = run(last + Duration::days(2) - secs(1), &snapshot);
    let just_after = run(last + Duration::days(2) + secs(1), &snapshot);

    assert!(after_4h.changes.is_empty());
    assert!(just_before.changes.is_empty());
    assert_eq!(deleted_containers(&just_after), [ContainerId(1)]);
}

#[test]
fn without_finish_times_the_purge_age_counts_from_the_later_of_start_and_creation() {
    // An empty container created after its start: succeeded, counted from creation.
    let mut empty = container(1, t(1), None);
    empty.created_at = t(2);
    // Only an Incompatible job without a finish time, starting after creation: failed, counted
    // from the start.
    let incompatible = container(2, t(10), None);
    let snapshot = snapshot(
        vec![
            (empty, vec![]),
            (incompatible, vec![job(3, 2, 1, JobState::Incompatible)]),
        ],
        vec![],
    );

    let empty_kept = run(t(6), &snapshot);
    let empty_purged = run(t(6) + secs(1), &snapshot);
    let both_kept_until = run(t(10) + Duration::days(2), &snapshot);
    let both_purged = run(t(10) + Duration::days(2) + secs(1), &snapshot);

    assert!(empty_kept.changes.is_empty());
    assert_eq!(deleted_containers(&empty_purged), [ContainerId(1)]);
    assert_eq!(deleted_containers(&both_kept_until), [ContainerId(1)]);
    assert_eq!(
        deleted_containers(&both_purged),
        [ContainerId(1), ContainerId(2)]
    );
}

#[test]
fn a_container_with_pending_jobs_is_never_purged() {
    let snapshot = snapshot(
        vec![(
            container(1, t(1), None),
            vec![
                finished_job(2, 1, JobState::Succeeded, t(2)),
                job(3, 1, 2, JobState::Executing),
            ],
        )],
        vec![],
    );

    assert!(run(t(24 * 30), &snapshot).changes.is_empty());
}

#[test]
fn a_container_expiring_now_is_purged_by_a_later_run() {
    let settings = Settings {
        purge_failed_after: Duration::zero(),
        ..Settings::default()
    };
    let snapshot = snapshot(
        vec![(
            container(1, t(1), Some(t(2))),
            vec![job(2, 1, 1, JobState::Waiting)],
        )],
        vec![],
    );

    let now = housekeeping(t(3), &snapshot, &settings);

    assert!(deleted_containers(&now).is_empty());
    assert_eq!(now.summary.expired, 1);
}

// ---- Wake-on-LAN -------------------------------------------------------------------------------

#[test]
fn one_wake_effect_with_each_mac_once_for_computers_with_pending_jobs() {
    let snapshot = snapshot(
        vec![(
            wol_container(1, false),
            vec![
                job(2, 1, 1, JobState::Waiting),
                job(3, 1, 1, JobState::Waiting),
                job(4, 1, 2, JobState::Executing),
                finished_job(5, 1, JobState::Succeeded, t(1)),
                job(6, 1, 4, JobState::Waiting),
            ],
        )],
        vec![
            computer(1, &["00:00:00:00:00:09", "00:00:00:00:00:01"], None),
            // Shares an address with computer 1 (a docking station moved between them).
            computer(2, &["00:00:00:00:00:01", "00:00:00:00:00:05"], Some(t(0))),
            // Only a finished job: not woken.
            computer(3, &["00:00:00:00:00:03"], None),
            // No MAC address: cannot be woken.
            computer(4, &[], None),
        ],
    );

    let now = t(2);
    let woken = run(now, &snapshot);

    assert_eq!(
        woken.effects,
        [Effect::Wake {
            container: ContainerId(1),
            macs: vec![
                mac("00:00:00:00:00:01"),
                mac("00:00:00:00:00:05"),
                mac("00:00:00:00:00:09"),
            ],
        }]
    );
    assert_eq!(
        woken.changes.changes,
        [Change::MarkWolSent {
            container: ContainerId(1),
            at: now
        }]
    );
    assert_eq!(woken.summary.wakes, 1);
    assert_eq!(woken.summary.shutdown_marks, 0);
}

#[test]
fn no_wake_for_disabled_or_not_yet_started_or_already_sent_containers() {
    let mut disabled = wol_container(1, false);
    disabled.enabled = false;
    let mut later = wol_container(2, false);
    later.schedule = Schedule::new(t(5), None).unwrap();
    let mut sent = wol_container(3, false);
    sent.wol.sent_at = Some(t(1));
    let jobs = |container: i64| vec![job(10 + container, container, 1, JobState::Waiting)];
    let snapshot = snapshot(
        vec![(disabled, jobs(1)), (later, jobs(2)), (sent, jobs(3))],
        vec![computer(1, &["00:00:00:00:00:01"], None)],
    );

    let before_start = run(t(5) - secs(1), &snapshot);
    let at_start = run(t(5), &snapshot);

    assert!(before_start.changes.is_empty());
    assert!(before_start.effects.is_empty());
    assert_eq!(
        at_start.effects,
        [Effect::Wake {
            container: ContainerId(2),
            macs: vec![mac("00:00:00:00:00:01")],
        }]
    );
    assert_eq!(marked_sent(&at_start), [(ContainerId(2), t(5))]);
}

#[test]
fn a_container_with_nothing_to_wake_is_still_marked_sent() {
    let snapshot = snapshot(
        vec![(
            wol_container(1, true),
            vec![job(2, 1, 1, JobState::Waiting)],
        )],
        vec![computer(1, &[], None)],
    );

    let woken = run(t(2), &snapshot);

    assert!(woken.effects.is_empty());
    assert!(updated_jobs(&woken).is_empty());
    assert_eq!(marked_sent(&woken), [(ContainerId(1), t(2))]);
    assert_eq!(woken.summary.wakes, 0);
}

#[test]
fn offline_computers_get_a_shutdown_mark_on_their_last_pending_job_in_delivery_order() {
    let now = t(2);
    let with_sequence = |id: i64, computer: i64, sequence: u32, state: JobState| {
        let mut job = job(id, 1, computer, state);
        job.sequence = sequence;
        job
    };
    let snapshot = snapshot(
        vec![(
            wol_container(1, true),
            vec![
                // Computer 1, never seen: the highest sequence wins over the highest id.
                with_sequence(20, 1, 3, JobState::Waiting),
                with_sequence(21, 1, 1, JobState::Waiting),
                // Same sequence: the higher id is later.
                with_sequence(22, 1, 3, JobState::Waiting),
                // A finished job later in the sequence does not count.
                with_sequence(23, 1, 4, JobState::Succeeded),
                // Computer 2, seen exactly `offline_after` ago: offline.
                with_sequence(30, 2, 1, JobState::Executing),
                // Computer 3, seen a second less than that: online, no mark.
                with_sequence(40, 3, 1, JobState::Waiting),
            ],
        )],
        vec![
            computer(1, &["00:00:00:00:00:01"], None),
            computer(2, &["00:00:00:00:00:02"], Some(now - secs(125))),
            computer(3, &["00:00:00:00:00:03"], Some(now - secs(124))),
        ],
    );

    let woken = run(now, &snapshot);

    let marked: Vec<(JobId, Option<WolShutdown>)> = updated_jobs(&woken)
        .iter()
        .map(|(_, job)| (job.id, job.wol_shutdown))
        .collect();
    let pending = Some(WolShutdown::Pending { since: now });
    assert_eq!(marked, [(JobId(22), pending), (JobId(30), pending)]);
    for (expected, job) in updated_jobs(&woken) {
        assert_eq!(expected, Revision(u64::try_from(job.id.0).unwrap() + 100));
        assert!(job.state.is_pending());
    }
    assert_eq!(woken.summary.shutdown_marks, 2);
    assert_eq!(
        woken.effects,
        [Effect::Wake {
            container: ContainerId(1),
            macs: vec![
                mac("00:00:00:00:00:01"),
                mac("00:00:00:00:00:02"),
                mac("00:00:00:00:00:03"),
            ],
        }]
    );
    // Job updates come before the container's update.
    assert!(matches!(
        woken.changes.changes.last(),
        Some(Change::MarkWolSent { .. })
    ));
}

#[test]
fn a_restart_post_action_is_left_alone_and_exit_agent_is_marked() {
    let with_post_action = |id: i64, computer: i64, post_action: PostAction| {
        let mut job = job(id, 1, computer, JobState::Waiting);
        job.snapshot.procedure.post_action = post_action;
        job
    };
    let snapshot = snapshot(
        vec![(
            wol_container(1, true),
            vec![
                with_post_action(2, 1, PostAction::Restart),
                with_post_action(3, 2, PostAction::ExitAgent),
                with_post_action(4, 3, PostAction::Shutdown),
            ],
        )],
        vec![
            computer(1, &["00:00:00:00:00:01"], None),
            computer(2, &["00:00:00:00:00:02"], None),
            computer(3, &["00:00:00:00:00:03"], None),
        ],
    );

    let woken = run(t(2), &snapshot);

    let marked: Vec<JobId> = updated_jobs(&woken).iter().map(|(_, j)| j.id).collect();
    assert_eq!(marked, [JobId(3)]);
    assert_eq!(
        updated_jobs(&woken)[0].1.snapshot.procedure.post_action,
        PostAction::ExitAgent
    );
}

#[test]
fn a_container_ending_before_its_wake_wakes_only_computers_with_running_jobs() {
    let mut container = wol_container(1, false);
    container.schedule = Schedule::new(t(1), Some(t(2))).unwrap();
    let snapshot = snapshot(
        vec![(
            container,
            vec![
                job(2, 1, 1, JobState::Waiting),
                job(3, 1, 2, JobState::Executing),
            ],
        )],
        vec![
            computer(1, &["00:00:00:00:00:01"], None),
            computer(2, &["00:00:00:00:00:02"], None),
        ],
    );

    let woken = run(t(3), &snapshot);

    assert_eq!(woken.summary.expired, 1);
    assert_eq!(
        woken.effects,
        [Effect::Wake {
            container: ContainerId(1),
            macs: vec![mac("00:00:00:00:00:02")],
        }]
    );
}

#[test]
fn changes_come_in_container_then_job_order_whatever_the_snapshot_order() {
    let end = t(2);
    let snapshot = snapshot(
        vec![
            (
                container(7, t(1), Some(end)),
                vec![
                    job(9, 7, 1, JobState::Waiting),
                    job(8, 7, 1, JobState::Waiting),
                ],
            ),
            (
                container(3, t(1), None),
                vec![finished_job(1, 3, JobState::Succeeded, t(1))],
            ),
            (
                container(5, t(1), Some(end)),
                vec![job(6, 5, 1, JobState::Waiting)],
            ),
        ],
        vec![],
    );

    let later = run(t(6), &snapshot);

    let order: Vec<String> = later
        .changes
        .changes
        .iter()
        .map(|change| match change {
            Change::DeleteContainer { id, .. } => format!("delete {id}"),
            Change::UpdateJob { job, .. } => format!("job {}", job.id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, ["delete 3", "job 6", "job 8", "job 9"]);
}

// ---- statistics --------------------------------------------------------------------------------

#[test]
fn status_scheduled_waiting_failed_succeeded() {
    let future = container(1, t(10), None);
    let started = container(1, t(1), None);
    let now = t(5);
    let status =
        |container: &JobContainer, jobs: &[Job]| container_statistics(container, jobs, now).status;
    let done = |state| finished_job(2, 1, state, t(2));

    assert_eq!(
        status(&future, &[job(1, 1, 1, JobState::Waiting)]),
        ContainerStatus::Scheduled
    );
    assert_eq!(
        status(
            &started,
            &[job(1, 1, 1, JobState::Waiting), done(JobState::Failed)]
        ),
        ContainerStatus::Waiting
    );
    for state in [JobState::Failed, JobState::Expired, JobState::Incompatible] {
        assert_eq!(
            status(&started, &[done(JobState::Succeeded), done(state)]),
            ContainerStatus::Failed,
            "{state:?}"
        );
    }
    assert_eq!(status(&started, &[]), ContainerStatus::Succeeded);
    assert_eq!(
        status(&future, &[done(JobState::AlreadyInstalled)]),
        ContainerStatus::Succeeded
    );
    assert_eq!(
        status(
            &started,
            &[done(JobState::Succeeded), done(JobState::AlreadyInstalled)]
        ),
        ContainerStatus::Succeeded
    );
    // Without a start (a rule's jobs), never scheduled.
    assert_eq!(
        statistics(&[job(1, 1, 1, JobState::Waiting)], None, t(10), now).status,
        ContainerStatus::Waiting
    );
    assert_eq!(
        serde_json::to_string(&ContainerStatus::Scheduled).unwrap(),
        "\"scheduled\""
    );
    assert_eq!(
        serde_json::to_string(&ContainerStatus::Succeeded).unwrap(),
        "\"succeeded\""
    );
}

#[test]
fn total_runtime_runs_until_now_while_pending_and_stops_at_the_last_finish() {
    let mut container = container(1, t(1), None);
    container.created_at = t(2);
    let first = finished_job(2, 1, JobState::Succeeded, t(4));
    let last = finished_job(3, 1, JobState::Failed, t(7));

    let running = container_statistics(
        &container,
        &[first.clone(), job(4, 1, 1, JobState::Executing)],
        t(9),
    );
    let finished = container_statistics(&container, &[last, first], t(9));
    let scheduled = container_statistics(
        &self::container(1, t(10), None),
        &[job(4, 1, 1, JobState::Waiting)],
        t(9),
    );

    // Measured from the later of start and creation.
    assert_eq!(
        running.total_runtime,
        Some(Runtime {
            duration: Duration::hours(7),
            running: true
        })
    );
    assert_eq!(
        finished.total_runtime,
        Some(Runtime {
            duration: Duration::hours(5),
            running: false
        })
    );
    assert_eq!(scheduled.total_runtime, None);
    assert_eq!(
        container_statistics(&container, &[], t(9)).total_runtime,
        None
    );
}

#[test]
fn effective_runtime_spans_the_jobs_that_started() {
    let container = container(1, t(1), None);
    let ran = |id: i64, started: i64, finished: Option<i64>| {
        let mut job = job(id, 1, 1, JobState::Succeeded);
        job.execution_started = Some(t(started));
        job.finished = finished.map(t);
        job
    };
    let never_started = finished_job(9, 1, JobState::Expired, t(20));

    let stats = container_statistics(
        &container,
        &[
            ran(2, 3, Some(5)),
            ran(3, 2, Some(6)),
            never_started.clone(),
        ],
        t(30),
    );
    let none_started = container_statistics(&container, &[never_started], t(30));
    let none_finished = container_statistics(&container, &[ran(2, 3, None)], t(30));

    assert_eq!(stats.effective_runtime, Some(Duration::hours(4)));
    assert_eq!(none_started.effective_runtime, None);
    assert_eq!(none_finished.effective_runtime, None);
}

#[test]
fn counts_have_every_state() {
    let container = container(1, t(1), None);
    let jobs = [
        job(1, 1, 1, JobState::Waiting),
        job(2, 1, 1, JobState::Waiting),
        job(3, 1, 1, JobState::Executing),
        finished_job(4, 1, JobState::Succeeded, t(2)),
    ];

    let counts = container_statistics(&container, &jobs, t(3)).counts;

    let expected: BTreeMap<JobState, usize> = JobState::ALL
        .into_iter()
        .map(|state| {
            let n = match state {
                JobState::Waiting => 2,
                JobState::Executing | JobState::Succeeded => 1,
                _ => 0,
            };
            (state, n)
        })
        .collect();
    assert_eq!(counts, expected);
}

// ---- properties --------------------------------------------------------------------------------

fn any_state() -> impl Strategy<Value = JobState> {
    proptest::sample::select(JobState::ALL.to_vec())
}

fn any_post_action() -> impl Strategy<Value = PostAction> {
    proptest::sample::select(vec![
        PostAction::None,
        PostAction::Restart,
        PostAction::Shutdown,
        PostAction::ExitAgent,
    ])
}

fn any_hour() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    proptest::option::of((0i64..120).prop_map(t))
}

prop_compose! {
    fn any_job(container: i64)(
        id in 1i64..40,
        computer in 1i64..5,
        state in any_state(),
        sequence in 1u32..5,
        post_action in any_post_action(),
        execution_started in any_hour(),
        finished in any_hour(),
        last_report in any_hour(),
    ) -> Job {
        let mut job = job(id + container * 100, container, computer, state);
        job.sequence = sequence;
        job.snapshot.procedure.post_action = post_action;
        job.execution_started = execution_started;
        job.finished = finished;
        job.last_report = last_report;
        job
    }
}

prop_compose! {
    fn any_container(id: i64)(
        start in 0i64..60,
        length in proptest::option::of(1i64..60),
        enabled in any::<bool>(),
        wake in any::<bool>(),
        shutdown_after in any::<bool>(),
        sent in any::<bool>(),
        jobs in proptest::collection::vec(any_job(id), 0..6),
    ) -> (JobContainer, Vec<Job>) {
        let mut container = container(id, t(start), length.map(|hours| t(start + hours)));
        container.enabled = enabled;
        container.wol = WolSettings { wake, shutdown_after, sent_at: sent.then(|| t(start)) };
        // Job ids are unique.
        let mut seen = std::collections::BTreeSet::new();
        let jobs = jobs.into_iter().filter(|job| seen.insert(job.id)).collect();
        (container, jobs)
    }
}

fn any_snapshot() -> impl Strategy<Value = HousekeepingSnapshot> {
    let containers = (
        any_container(1),
        any_container(2),
        any_container(3),
        0usize..=3,
    )
        .prop_map(|(a, b, c, n)| {
            let mut all = vec![a, b, c];
            all.truncate(n);
            all
        });
    let computers = proptest::collection::vec((0u8..4, any_hour()), 4).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(index, (mac_byte, last_seen))| {
                let id = i64::try_from(index).unwrap() + 1;
                let macs = if mac_byte == 0 {
                    Vec::new()
                } else {
                    vec![MacAddress([0, 0, 0, 0, 0, mac_byte])]
                };
                Computer {
                    macs,
                    ..computer(id, &[], last_seen)
                }
            })
            .collect::<Vec<_>>()
    });
    (containers, computers).prop_map(|(containers, computers)| snapshot(containers, computers))
}

proptest! {
    #[test]
    fn housekeeping_is_deterministic_and_touches_only_pending_jobs(
        snapshot in any_snapshot(),
        now in (0i64..200).prop_map(t),
    ) {
        let settings = Settings::default();
        let first = housekeeping(now, &snapshot, &settings);
        let again = housekeeping(now, &snapshot, &settings);
        let mut reversed = snapshot.clone();
        reversed.containers.reverse();
        for entry in &mut reversed.containers {
            entry.jobs.reverse();
        }
        let from_reversed = housekeeping(now, &reversed, &settings);

        prop_assert_eq!(&first, &again);
        prop_assert_eq!(&first, &from_reversed);

        let originals: BTreeMap<JobId, &Job> = snapshot
            .containers
            .iter()
            .flat_map(|entry| &entry.jobs)
            .map(|job| (job.id, job))
            .collect();
        let mut updated = std::collections::BTreeSet::new();
        for (expected, job) in updated_jobs(&first) {
            prop_assert!(updated.insert(job.id), "job {} updated twice", job.id);
            let original = originals[&job.id];
            prop_assert!(original.state.is_pending(), "final job {} changed", job.id);
            prop_assert_eq!(expected, original.revision);
            prop_assert!(job.state == original.state || job.state == JobState::Expired);
            let mut unchanged = job.clone();
            unchanged.state = original.state;
            unchanged.finished = original.finished;
            unchanged.message = original.message;
            unchanged.wol_shutdown = original.wol_shutdown;
            prop_assert_eq!(&unchanged, original);
        }
        for effect in &first.effects {
            let Effect::Wake { macs, .. } = effect;
            prop_assert!(!macs.is_empty());
            prop_assert!(macs.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
}

#[test]
fn tombstones_live_as_long_as_a_running_job_is_waited_for() {
    // A site that waits five days for silent running jobs, longer than any purge age.
    let settings = Settings {
        stale_running_after: Duration::days(5),
        ..Settings::default()
    };
    assert_eq!(tombstone_lifetime(&settings), Duration::days(5));
    let mut snapshot = snapshot(vec![], vec![]);
    let now = t(0) + Duration::days(10);
    snapshot.oldest_tombstone = Some(now - Duration::days(3));
    let young = housekeeping(now, &snapshot, &settings);
    assert!(young.changes.is_empty(), "{:?}", young.changes);
    assert!(!young.summary.tombstones_purged);

    snapshot.oldest_tombstone = Some(now - Duration::days(5) - secs(1));
    let old = housekeeping(now, &snapshot, &settings);
    assert_eq!(
        old.changes.changes,
        [Change::PurgeTombstones {
            deleted_before: now - Duration::days(5)
        }]
    );
}

proptest! {
    /// For all settings, a tombstone is kept at least as long as each of the stale-running
    /// expiry and the purge ages, and purged once it is older than all three.
    #[test]
    fn tombstones_outlive_the_stale_expiry_and_the_purge_ages(
        stale in 0i64..10_000_000,
        succeeded in 0i64..10_000_000,
        failed in 0i64..10_000_000,
        age in 0i64..20_000_000,
    ) {
        let settings = Settings {
            stale_running_after: Duration::seconds(stale),
            purge_succeeded_after: Duration::seconds(succeeded),
            purge_failed_after: Duration::seconds(failed),
            ..Settings::default()
        };
        let now = t(0) + Duration::days(365);
        let mut snapshot = snapshot(vec![], vec![]);
        snapshot.oldest_tombstone = Some(now - Duration::seconds(age));
        let run = housekeeping(now, &snapshot, &settings);
        let longest = stale.max(succeeded).max(failed);
        let expected: Vec<Change> = if age > longest {
            vec![Change::PurgeTombstones {
                deleted_before: now - Duration::seconds(longest),
            }]
        } else {
            vec![]
        };
        prop_assert_eq!(&run.changes.changes, &expected);
        prop_assert_eq!(run.summary.tombstones_purged, age > longest);
    }
}

#[test]
fn tombstones_older_than_the_longest_purge_age_are_purged() {
    let mut snapshot = snapshot(vec![], vec![]);
    let now = t(0) + Duration::days(10);
    snapshot.oldest_tombstone = Some(now - Duration::days(2) + secs(1));
    let young = run(now, &snapshot);
    assert!(young.changes.is_empty(), "{:?}", young.changes);
    assert!(!young.summary.tombstones_purged);

    snapshot.oldest_tombstone = Some(now - Duration::days(2) - secs(1));
    let old = run(now, &snapshot);
    assert_eq!(
        old.changes.changes,
        [Change::PurgeTombstones {
            deleted_before: now - Duration::days(2)
        }]
    );
    assert!(old.summary.tombstones_purged);
}
