//! The planner through the public API, with a fixed clock.

// Test fixtures panic on bad values by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeDelta, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::model::*;
use oco_core::plan::{plan, valid_until, HoldReason, PostActionOrder};
use oco_core::store::{Change, FailedJob, OriginInfo, PlannerSnapshot};
use oco_core::Settings;
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    // Tuesday 2026-11-24 12:00 UTC.
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn addr() -> IpAddr {
    "10.1.2.3".parse().unwrap()
}

fn package(id: i64, post_action: PostAction) -> Package {
    Package {
        id: PackageId(id),
        family: FamilyId(id),
        version: Name::new("version", "1.0").unwrap(),
        install: Procedure {
            command: format!("install {id}"),
            success_codes: SuccessCodes::zero(),
            post_action,
        },
        uninstall: Procedure::default(),
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: UpgradeBehavior::KeepOthers,
        compatibility: Compatibility::default(),
        dependencies: vec![],
    }
}

fn container(id: i64) -> Origin {
    Origin::Container(ContainerId(id))
}

fn rule(id: i64) -> Origin {
    Origin::Rule(RuleId(id))
}

fn policy(priority: i64) -> DeliveryPolicy {
    let mut policy = DeliveryPolicy::new(Tz::UTC);
    policy.priority = Priority::new(priority).unwrap();
    policy
}

fn info(origin: Origin, policy: DeliveryPolicy, created_minutes_ago: i64) -> OriginInfo {
    let created_at = now() - Duration::minutes(created_minutes_ago);
    OriginInfo {
        enabled: true,
        created_at,
        schedule: matches!(origin, Origin::Container(_))
            .then(|| Schedule::new(created_at, None).unwrap()),
        policy: Ok(policy),
        failed: vec![],
    }
}

#[derive(Debug, Clone)]
struct World {
    snapshot: PlannerSnapshot,
    next_job: i64,
}

impl World {
    fn new() -> Self {
        World {
            snapshot: PlannerSnapshot {
                computer: Computer {
                    id: ComputerId(1),
                    hostname: Name::new("hostname", "pc1").unwrap(),
                    os: String::new(),
                    os_version: String::new(),
                    architecture: String::new(),
                    macs: vec![],
                    last_seen: None,
                },
                jobs: vec![],
                origins: BTreeMap::new(),
            },
            next_job: 100,
        }
    }

    fn origin(&mut self, origin: Origin, info: OriginInfo) -> &mut Self {
        self.snapshot.origins.insert(origin, info);
        self
    }

    fn job(&mut self, origin: Origin, sequence: u32, state: JobState) -> JobId {
        self.job_with(origin, sequence, state, PostAction::None)
    }

    fn job_with(
        &mut self,
        origin: Origin,
        sequence: u32,
        state: JobState,
        post: PostAction,
    ) -> JobId {
        self.next_job += 1;
        let mut job = Job::new(
            origin,
            ComputerId(1),
            &package(self.next_job, post),
            JobKind::Install,
            sequence,
        );
        job.id = JobId(self.next_job);
        job.state = state;
        job.revision = Revision(1);
        self.snapshot.jobs.push(job);
        job_id(self.next_job)
    }

    fn info_mut(&mut self, origin: Origin) -> &mut OriginInfo {
        self.snapshot.origins.get_mut(&origin).unwrap()
    }
}

fn job_id(id: i64) -> JobId {
    JobId(id)
}

fn delivered(world: &World, at: DateTime<Utc>) -> Vec<JobId> {
    plan(&world.snapshot, at, addr(), &Settings::default())
        .deliver
        .iter()
        .map(|delivery| delivery.job.id)
        .collect()
}

fn holds(world: &World, at: DateTime<Utc>) -> Vec<(JobId, HoldReason)> {
    plan(&world.snapshot, at, addr(), &Settings::default())
        .held
        .into_iter()
        .map(|held| (held.job.id, held.reason))
        .collect()
}

#[test]
fn origins_form_blocks_ordered_by_priority_then_age_then_kind_then_id() {
    let mut world = World::new();
    world
        .origin(container(1), info(container(1), policy(0), 10))
        .origin(container(2), info(container(2), policy(0), 20))
        .origin(rule(1), info(rule(1), policy(5), 1))
        .origin(container(3), info(container(3), policy(0), 10))
        .origin(rule(2), info(rule(2), policy(0), 10));
    // Jobs inserted in a scrambled order.
    let c1_b = world.job(container(1), 2, JobState::Waiting);
    let c2_a = world.job(container(2), 1, JobState::Waiting);
    let r1_a = world.job(rule(1), 1, JobState::Waiting);
    let c1_a = world.job(container(1), 1, JobState::Waiting);
    let r2_a = world.job(rule(2), 1, JobState::Waiting);
    let c3_a = world.job(container(3), 1, JobState::Waiting);
    let c2_b = world.job(container(2), 2, JobState::Waiting);

    assert_eq!(
        delivered(&world, now()),
        // Priority 5 first; then the oldest origin (container 2, 20 minutes); then the three
        // created 10 minutes ago: containers before rules, then by id. Never interleaved.
        [r1_a, c2_a, c2_b, c1_a, c1_b, c3_a, r2_a]
    );
}

#[test]
fn running_jobs_are_handed_out_again() {
    let mut world = World::new();
    world.origin(container(1), info(container(1), policy(0), 10));
    let downloading = world.job(container(1), 1, JobState::Downloading);
    let executing = world.job(container(1), 2, JobState::Executing);
    let finished = world.job(container(1), 3, JobState::Succeeded);
    assert_eq!(delivered(&world, now()), [downloading, executing]);
    assert!(holds(&world, now()).iter().all(|(id, _)| *id != finished));
}

#[test]
fn every_hold_reason() {
    let mut world = World::new();
    // Corrupt policy.
    world.origin(container(1), info(container(1), policy(0), 10));
    world.info_mut(container(1)).policy =
        Err("ip_ranges: entry 1 `x`: not an IPv4 or IPv6 address".into());
    let corrupt = world.job(container(1), 1, JobState::Waiting);
    // Disabled.
    world.origin(container(2), info(container(2), policy(0), 10));
    world.info_mut(container(2)).enabled = false;
    let disabled = world.job(container(2), 1, JobState::Waiting);
    // Not started.
    world.origin(container(3), info(container(3), policy(0), 10));
    let starts_at = now() + Duration::hours(2);
    world.info_mut(container(3)).schedule = Some(Schedule::new(starts_at, None).unwrap());
    let not_started = world.job(container(3), 1, JobState::Waiting);
    // Ended: a Waiting job is held, an Executing one is handed out to finish.
    world.origin(container(4), info(container(4), policy(0), 100));
    world.info_mut(container(4)).schedule =
        Some(Schedule::new(now() - Duration::hours(2), Some(now() - Duration::hours(1))).unwrap());
    let ended = world.job(container(4), 1, JobState::Waiting);
    let finishing = world.job(container(4), 2, JobState::Executing);
    // IP denied.
    let mut ip = policy(0);
    ip.ip_ranges = "192.168.0.0/16".parse().unwrap();
    world.origin(container(5), info(container(5), ip, 10));
    let ip_denied = world.job(container(5), 1, JobState::Waiting);
    // Outside time frames: Tuesday 12:00 UTC is 13:00 in Berlin; the window opens at 18:00.
    let mut frames = policy(0);
    frames.time_frames = "MON-FRI 18:00-22:00".parse().unwrap();
    frames.time_zone = "Europe/Berlin".parse().unwrap();
    world.origin(rule(1), info(rule(1), frames, 10));
    let outside = world.job(rule(1), 1, JobState::Waiting);
    // Blocked by sequence.
    let mut abort = policy(0);
    abort.sequence_mode = SequenceMode::AbortAfterFailed;
    world.origin(rule(2), info(rule(2), abort, 10));
    world.info_mut(rule(2)).failed = vec![
        FailedJob {
            id: JobId(7),
            sequence: 2,
        },
        FailedJob {
            id: JobId(6),
            sequence: 3,
        },
    ];
    let before_failure = world.job(rule(2), 1, JobState::Waiting);
    let blocked = world.job(rule(2), 4, JobState::Waiting);

    assert_eq!(delivered(&world, now()), [finishing, before_failure]);
    let mut held = holds(&world, now());
    held.sort_by_key(|(id, _)| *id);
    assert_eq!(
        held,
        [
            (
                corrupt,
                HoldReason::Corrupt {
                    detail: "ip_ranges: entry 1 `x`: not an IPv4 or IPv6 address".into()
                }
            ),
            (disabled, HoldReason::Disabled),
            (not_started, HoldReason::NotStarted { starts_at }),
            (ended, HoldReason::Ended),
            (ip_denied, HoldReason::IpDenied),
            (
                outside,
                HoldReason::OutsideTimeFrames {
                    next_open: Some(Utc.with_ymd_and_hms(2026, 11, 24, 17, 0, 0).unwrap())
                }
            ),
            (
                blocked,
                HoldReason::BlockedBySequence {
                    failed_job: JobId(7)
                }
            ),
        ]
    );
}

#[test]
fn the_first_applicable_reason_wins() {
    let mut world = World::new();
    let mut everything = policy(0);
    everything.ip_ranges = "192.168.0.0/16".parse().unwrap();
    everything.time_frames = "!00:00-24:00".parse().unwrap();
    world.origin(container(1), info(container(1), everything.clone(), 10));
    world.info_mut(container(1)).enabled = false;
    let disabled = world.job(container(1), 1, JobState::Waiting);
    world.origin(container(2), info(container(2), everything, 10));
    let ip_first = world.job(container(2), 1, JobState::Waiting);
    let held = holds(&world, now());
    assert_eq!(
        held,
        [
            (disabled, HoldReason::Disabled),
            (ip_first, HoldReason::IpDenied)
        ]
    );
}

#[test]
fn a_running_job_after_the_end_still_obeys_the_address_rules() {
    let mut world = World::new();
    let mut ip = policy(0);
    ip.ip_ranges = "192.168.0.0/16".parse().unwrap();
    world.origin(container(1), info(container(1), ip, 100));
    world.info_mut(container(1)).schedule =
        Some(Schedule::new(now() - Duration::hours(2), Some(now() - Duration::hours(1))).unwrap());
    let running = world.job(container(1), 1, JobState::Downloading);
    assert_eq!(holds(&world, now()), [(running, HoldReason::IpDenied)]);
}

#[test]
fn abort_after_failed_blocks_only_this_computers_later_jobs() {
    // The snapshot is one computer's: another computer's failure is not in it at all, so its
    // jobs are delivered. Here the failure at sequence 2 blocks 3 but not 1.
    let mut world = World::new();
    let mut abort = policy(0);
    abort.sequence_mode = SequenceMode::AbortAfterFailed;
    world.origin(container(1), info(container(1), abort.clone(), 10));
    world.info_mut(container(1)).failed = vec![FailedJob {
        id: JobId(50),
        sequence: 2,
    }];
    let first = world.job(container(1), 1, JobState::Waiting);
    let third = world.job(container(1), 3, JobState::Waiting);
    assert_eq!(delivered(&world, now()), [first]);
    assert_eq!(
        holds(&world, now()),
        [(
            third,
            HoldReason::BlockedBySequence {
                failed_job: JobId(50)
            }
        )]
    );

    let mut other_computer = World::new();
    other_computer.origin(container(1), info(container(1), abort, 10));
    let job = other_computer.job(container(1), 3, JobState::Waiting);
    assert_eq!(delivered(&other_computer, now()), [job]);
}

#[test]
fn post_actions_follow_the_policy() {
    let mut world = World::new();
    let mut restart = policy(0);
    restart.post_action_timeout = Some(10);
    world.origin(container(1), info(container(1), restart, 10));
    world.job_with(container(1), 1, JobState::Waiting, PostAction::Restart);
    world.job_with(container(1), 2, JobState::Waiting, PostAction::None);
    let mut disabled = policy(0);
    disabled.post_action_timeout = None;
    world.origin(container(2), info(container(2), disabled, 5));
    world.job_with(container(2), 1, JobState::Waiting, PostAction::Shutdown);

    let plan = plan(&world.snapshot, now(), addr(), &Settings::default());
    let actions: Vec<_> = plan.deliver.iter().map(|d| d.post_action).collect();
    assert_eq!(
        actions,
        [
            Some(PostActionOrder {
                action: PostAction::Restart,
                timeout_minutes: 10
            }),
            None,
            None
        ]
    );
}

#[test]
fn wol_shutdown_is_confirmed_inside_the_window_and_cleared_after_it() {
    let mut world = World::new();
    world.origin(container(1), info(container(1), policy(0), 10));
    let job = world.job_with(container(1), 1, JobState::Waiting, PostAction::ExitAgent);
    let since = now() - Duration::seconds(200);
    world.snapshot.jobs[0].wol_shutdown = Some(WolShutdown::Pending { since });

    // Polled 200 s after the wake packets: woken by them.
    let woken = plan(&world.snapshot, now(), addr(), &Settings::default());
    assert_eq!(
        woken.deliver[0].post_action,
        Some(PostActionOrder {
            action: PostAction::Shutdown,
            timeout_minutes: 5
        })
    );
    let [Change::UpdateJob {
        expected,
        job: updated,
    }] = woken.changes.changes.as_slice()
    else {
        panic!("one job update expected: {:?}", woken.changes);
    };
    assert_eq!((*expected, updated.id), (Revision(1), job));
    assert_eq!(updated.wol_shutdown, Some(WolShutdown::Confirmed));

    // First poll 400 s after: someone switched it on by hand.
    let later = now() + Duration::seconds(200);
    let by_hand = plan(&world.snapshot, later, addr(), &Settings::default());
    assert_eq!(
        by_hand.deliver[0].post_action,
        Some(PostActionOrder {
            action: PostAction::ExitAgent,
            timeout_minutes: 5
        })
    );
    let [Change::UpdateJob { job: cleared, .. }] = by_hand.changes.changes.as_slice() else {
        panic!("one job update expected");
    };
    assert_eq!(cleared.wol_shutdown, None);

    // Once confirmed, later polls keep the shutdown and write nothing.
    world.snapshot.jobs[0].wol_shutdown = Some(WolShutdown::Confirmed);
    let confirmed = plan(&world.snapshot, later, addr(), &Settings::default());
    assert_eq!(
        confirmed.deliver[0].post_action.map(|p| p.action),
        Some(PostAction::Shutdown)
    );
    assert!(confirmed.changes.is_empty());
}

#[test]
fn a_wol_shutdown_window_too_long_to_represent_never_ends() {
    let mut world = World::new();
    world.origin(container(1), info(container(1), policy(0), 10));
    world.job_with(container(1), 1, JobState::Waiting, PostAction::ExitAgent);
    let since = now() - Duration::seconds(200);
    world.snapshot.jobs[0].wol_shutdown = Some(WolShutdown::Pending { since });
    let settings = Settings {
        wol_shutdown_expiry: TimeDelta::MAX,
        ..Settings::default()
    };

    // `since + TimeDelta::MAX` overflows: the window has not ended.
    let woken = plan(&world.snapshot, now(), addr(), &settings);
    assert_eq!(
        woken.deliver[0].post_action.map(|p| p.action),
        Some(PostAction::Shutdown)
    );

    // A window ending before the first representable time has ended.
    let settings = Settings {
        wol_shutdown_expiry: TimeDelta::MIN,
        ..Settings::default()
    };
    let by_hand = plan(&world.snapshot, now(), addr(), &settings);
    assert_eq!(
        by_hand.deliver[0].post_action.map(|p| p.action),
        Some(PostAction::ExitAgent)
    );
}

#[test]
fn a_job_whose_origin_is_missing_is_held_as_corrupt() {
    let mut world = World::new();
    let orphan = world.job(container(9), 1, JobState::Waiting);
    let held = holds(&world, now());
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, orphan);
    assert!(matches!(held[0].1, HoldReason::Corrupt { .. }));
}

fn arbitrary_world() -> impl Strategy<Value = World> {
    let origin = prop_oneof![(1i64..4).prop_map(container), (1i64..4).prop_map(rule)];
    let origin_spec = (origin, -2i64..3, 0i64..3, any::<bool>(), any::<bool>());
    let job_spec = (
        0usize..6,
        1u32..5,
        prop_oneof![
            Just(JobState::Waiting),
            Just(JobState::Downloading),
            Just(JobState::Executing),
            Just(JobState::Failed)
        ],
    );
    (
        proptest::collection::vec(origin_spec, 1..6),
        proptest::collection::vec(job_spec, 0..30),
    )
        .prop_map(|(origins, jobs)| {
            let mut world = World::new();
            let mut keys = Vec::new();
            for (origin, priority, age, enabled, abort) in origins {
                let mut p = policy(priority);
                if abort {
                    p.sequence_mode = SequenceMode::AbortAfterFailed;
                }
                let mut i = info(origin, p, age);
                i.enabled = enabled;
                world.origin(origin, i);
                keys.push(origin);
            }
            for (which, sequence, state) in jobs {
                let origin = keys[which % keys.len()];
                let id = world.job(origin, sequence, state);
                if state == JobState::Failed {
                    world
                        .info_mut(origin)
                        .failed
                        .push(FailedJob { id, sequence });
                }
            }
            world
        })
}

proptest! {
    /// The plan does not depend on the order of the snapshot's jobs, and is sorted by the
    /// documented key.
    #[test]
    fn plan_is_deterministic_and_sorted(world in arbitrary_world(), seed in any::<usize>()) {
        let first = plan(&world.snapshot, now(), addr(), &Settings::default());
        let mut shuffled = world.snapshot.clone();
        let len = shuffled.jobs.len();
        if len > 1 {
            for i in 0..len {
                let j = seed.wrapping_mul(31).wrapping_add(i * 7) % len;
                shuffled.jobs.swap(i, j);
            }
        }
        let second = plan(&shuffled, now(), addr(), &Settings::default());
        prop_assert_eq!(&first, &second);

        let key = |job: &Job| {
            let info = &world.snapshot.origins[&job.origin];
            let priority = info.policy.as_ref().map(|p| p.priority.get()).unwrap_or(i8::MIN);
            (std::cmp::Reverse(priority), info.created_at, job.origin, job.sequence, job.id)
        };
        let keys: Vec<_> = first.deliver.iter().map(|d| key(d.job)).collect();
        prop_assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        // Every pending job is either delivered or held, once.
        let pending = world.snapshot.jobs.iter().filter(|j| j.state.is_pending()).count();
        prop_assert_eq!(first.deliver.len() + first.held.len(), pending);
    }
}

/// A world whose origins have schedules, time frames (in two zones), IP ranges and Wake-on-LAN
/// marks around `now()`: every way a plan can change with time.
fn timed_world() -> impl Strategy<Value = World> {
    let frames = prop_oneof![
        Just(""),
        Just("MON-FRI 08:00-17:00"),
        Just("11:59-12:01"),
        Just("!TUE 12:00-12:30, TUE"),
        Just("SAT"),
        Just("12:00-12:01, !12:00-12:01"),
    ];
    let ranges = prop_oneof![Just(""), Just("10.0.0.0/8"), Just("192.168.0.0/16")];
    let zone = prop_oneof![Just(Tz::UTC), Just(oco_core::chrono_tz::Europe::Berlin)];
    // Minutes from now(), or none.
    let moment = proptest::option::of(-120i64..2 * 1440);
    let origin_spec = (frames, ranges, zone, moment.clone(), moment, any::<bool>());
    let wol = proptest::option::of(-600i64..600);
    (
        proptest::collection::vec(origin_spec, 1..4),
        proptest::collection::vec((0usize..4, wol), 0..8),
    )
        .prop_map(|(origins, jobs)| {
            let mut world = World::new();
            for (index, (frames, ranges, zone, start, end, enabled)) in
                origins.iter().cloned().enumerate()
            {
                let origin = container(index as i64 + 1);
                let mut p = policy(0);
                p.time_frames = frames.parse().unwrap();
                p.ip_ranges = ranges.parse().unwrap();
                p.time_zone = zone;
                let mut i = info(origin, p, 10);
                i.enabled = enabled;
                let start =
                    start.map_or(now() - Duration::days(1), |m| now() + Duration::minutes(m));
                let end = end.map(|m| start + Duration::minutes(m.abs() + 1));
                i.schedule = Some(Schedule::new(start, end).unwrap());
                world.origin(origin, i);
            }
            for (which, wol) in jobs {
                let origin = container((which % origins.len()) as i64 + 1);
                world.job(origin, 1, JobState::Waiting);
                if let Some(seconds) = wol {
                    let since = now() + Duration::seconds(seconds);
                    world.snapshot.jobs.last_mut().unwrap().wol_shutdown =
                        Some(WolShutdown::Pending { since });
                }
            }
            world
        })
}

proptest! {
    /// For every instant from `now` until `valid_until`, the plan is the one at `now`; and the
    /// instant it names is a real change for the worlds where one is forced.
    #[test]
    fn a_plan_holds_until_valid_until(
        world in timed_world(),
        offsets in proptest::collection::vec(0i64..3 * 86_400, 8),
        lan in any::<bool>(),
    ) {
        let addr: IpAddr = if lan { "10.1.2.3" } else { "172.16.0.1" }.parse().unwrap();
        let settings = Settings::default();
        let first = plan(&world.snapshot, now(), addr, &settings);
        let until = valid_until(&world.snapshot, now(), addr, &settings);
        if let Some(until) = until {
            prop_assert!(until > now());
        }
        let before_until = until.map(|until| until - TimeDelta::nanoseconds(1));
        let probes = offsets
            .iter()
            .map(|&seconds| now() + Duration::seconds(seconds))
            .chain(before_until)
            .filter(|&at| until.is_none_or(|until| at < until));
        for at in probes {
            prop_assert_eq!(&plan(&world.snapshot, at, addr, &settings), &first, "at {}", at);
        }
    }
}

#[test]
fn valid_until_names_each_kind_of_edge() {
    let settings = Settings::default();
    let edge = |world: &World| valid_until(&world.snapshot, now(), addr(), &settings);

    let mut world = World::new();
    world.origin(container(1), info(container(1), policy(0), 10));
    world.job(container(1), 1, JobState::Waiting);
    assert_eq!(
        edge(&world),
        None,
        "no constraint, no end: the plan never changes"
    );

    let starts = now() + Duration::minutes(30);
    world.info_mut(container(1)).schedule = Some(Schedule::new(starts, None).unwrap());
    assert_eq!(edge(&world), Some(starts));

    let ends = now() + Duration::minutes(90);
    world.info_mut(container(1)).schedule =
        Some(Schedule::new(now() - Duration::days(1), Some(ends)).unwrap());
    assert_eq!(edge(&world), Some(ends));

    let mut frames = policy(0);
    frames.time_frames = "TUE 08:00-12:45".parse().unwrap();
    world.info_mut(container(1)).policy = Ok(frames.clone());
    let closes = now() + Duration::minutes(45);
    assert_eq!(
        edge(&world),
        Some(closes),
        "the frame closes before the end"
    );

    frames.ip_ranges = "192.168.0.0/16".parse().unwrap();
    world.info_mut(container(1)).policy = Ok(frames);
    assert_eq!(
        edge(&world),
        Some(ends),
        "a denied address makes the frames moot"
    );

    world.info_mut(container(1)).enabled = false;
    assert_eq!(edge(&world), None, "disabled until the origin changes");

    world.info_mut(container(1)).enabled = true;
    world.info_mut(container(1)).policy = Ok(policy(0));
    world.info_mut(container(1)).schedule = None;
    let since = now() - Duration::seconds(100);
    world.snapshot.jobs[0].wol_shutdown = Some(WolShutdown::Pending { since });
    assert_eq!(
        edge(&world),
        Some(since + settings.wol_shutdown_expiry + TimeDelta::nanoseconds(1))
    );
}
