//! The planner's fixed inputs (one computer, 50 pending jobs over 10 origins: 5 containers and 5
//! rules) and the naive baseline it is measured against.

use std::collections::BTreeMap;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::model::{
    Compatibility, Computer, ComputerId, ContainerId, DeliveryPolicy, FamilyId, Job, JobId,
    JobKind, Name, Origin, Package, PackageId, Payload, Priority, Procedure, Revision, RuleId,
    Schedule, SequenceMode, Sha256Digest, SuccessCodes, UpgradeBehavior,
};
use oco_core::store::{OriginInfo, PlannerSnapshot};

use crate::{SHORT_IP_LIST, ZONE};

/// Jobs per origin in the fixed planner inputs.
pub const JOBS_PER_ORIGIN: u32 = 5;

/// The instant of the fixed planner polls: Tuesday 2026-11-24 10:00 in Berlin.
pub fn planner_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// The polling agent's address, allowed by [`SHORT_IP_LIST`].
pub fn planner_addr() -> IpAddr {
    "192.168.2.77".parse().unwrap()
}

/// One computer with 50 pending jobs over 10 origins (5 containers, 5 rules) of mixed
/// priorities, every origin with the short IP list and Berlin time frames. With `held_origins`
/// = 5, half the origins have time frames that are closed at [`planner_now`] (so the planner
/// computes `next_open` once for each of them).
pub fn planner_snapshot(held_origins: usize) -> PlannerSnapshot {
    let now = planner_now();
    let computer = Computer {
        id: ComputerId(1),
        hostname: Name::new("hostname", "lg-00001").unwrap(),
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec![],
        last_seen: Some(now),
    };
    let mut origins = BTreeMap::new();
    let mut jobs = Vec::new();
    for index in 0..10i64 {
        let origin = if index % 2 == 0 {
            Origin::Container(ContainerId(index + 1))
        } else {
            Origin::Rule(RuleId(index + 1))
        };
        let mut policy = DeliveryPolicy::new(ZONE);
        policy.priority = Priority::new(index % 3 - 1).unwrap();
        policy.sequence_mode = SequenceMode::AbortAfterFailed;
        policy.ip_ranges = SHORT_IP_LIST.parse().unwrap();
        let held = usize::try_from(index).unwrap() < held_origins;
        policy.time_frames = if held {
            "SAT-SUN, MON-FRI 18:00-06:00".parse().unwrap()
        } else {
            "MON-FRI 08:00-17:00, !WED 12:00-13:00, SAT"
                .parse()
                .unwrap()
        };
        let created_at = now - Duration::hours(index * 7 % 5 + 1);
        origins.insert(
            origin,
            OriginInfo {
                enabled: true,
                created_at,
                schedule: matches!(origin, Origin::Container(_))
                    .then(|| Schedule::new(created_at, Some(now + Duration::days(7))).unwrap()),
                policy: Ok(policy),
                failed: vec![],
            },
        );
        for sequence in 1..=JOBS_PER_ORIGIN {
            let id = index * 100 + i64::from(sequence);
            let mut job = Job::new(
                origin,
                computer.id,
                &package(id),
                JobKind::Install,
                sequence,
            );
            job.id = JobId(id);
            job.revision = Revision(1);
            jobs.push(job);
        }
    }
    // Scrambled, as a store might return them.
    jobs.reverse();
    jobs.swap(3, 40);
    jobs.swap(11, 27);
    PlannerSnapshot {
        computer,
        jobs,
        origins,
    }
}

fn package(id: i64) -> Package {
    Package {
        id: PackageId(id),
        family: FamilyId(id),
        version: Name::new("version", "1.0").unwrap(),
        install: Procedure {
            command: format!("msiexec /i package-{id}.msi /qn"),
            success_codes: SuccessCodes::zero(),
            post_action: Default::default(),
        },
        uninstall: Procedure::default(),
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: UpgradeBehavior::KeepOthers,
        compatibility: Compatibility::default(),
        dependencies: vec![],
    }
}

/// The naive planner: checks every condition for every job (looking its origin up each time,
/// `next_open` for every held job), then sorts all candidates with a comparator that looks the
/// origins up again. Returns the ids of the jobs to hand out, in delivery order.
pub fn naive_plan(snapshot: &PlannerSnapshot, now: DateTime<Utc>, addr: IpAddr) -> Vec<JobId> {
    let mut candidates: Vec<&Job> = snapshot
        .jobs
        .iter()
        .filter(|job| {
            let info = &snapshot.origins[&job.origin];
            let Ok(policy) = &info.policy else {
                return false;
            };
            let started = info.schedule.is_none_or(|s| s.start() <= now);
            let ended = info.schedule.is_some_and(|s| s.has_ended(now)) && !job.state.is_running();
            let in_time = policy.time_frames.allows_at(now, policy.time_zone);
            if !in_time {
                std::hint::black_box(policy.time_frames.next_open(now, policy.time_zone));
            }
            let blocked = policy.sequence_mode == SequenceMode::AbortAfterFailed
                && info
                    .failed
                    .iter()
                    .any(|failed| failed.sequence < job.sequence);
            job.state.is_pending()
                && info.enabled
                && started
                && !ended
                && policy.ip_ranges.allows(addr)
                && in_time
                && !blocked
        })
        .collect();
    candidates.sort_by(|a, b| {
        let key = |job: &Job| {
            let info = &snapshot.origins[&job.origin];
            let priority = info.policy.as_ref().map_or(i8::MIN, |p| p.priority.get());
            (
                std::cmp::Reverse(priority),
                info.created_at,
                job.origin,
                job.sequence,
                job.id,
            )
        };
        key(a).cmp(&key(b))
    });
    candidates.into_iter().map(|job| job.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oco_core::plan::{plan, HoldReason};
    use oco_core::Settings;

    #[test]
    fn naive_and_real_planner_agree_on_the_fixed_inputs() {
        for held in [0, 5] {
            let snapshot = planner_snapshot(held);
            let real = plan(
                &snapshot,
                planner_now(),
                planner_addr(),
                &Settings::default(),
            );
            let ids: Vec<JobId> = real.deliver.iter().map(|d| d.job.id).collect();
            assert_eq!(ids, naive_plan(&snapshot, planner_now(), planner_addr()));
            assert_eq!(ids.len(), 50 - held * 5);
            assert_eq!(real.held.len(), held * 5);
            assert!(real.held.iter().all(|h| matches!(
                h.reason,
                HoldReason::OutsideTimeFrames { next_open: Some(_) }
            )));
        }
    }
}
