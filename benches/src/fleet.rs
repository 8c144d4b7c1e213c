//! The fleet seed of the server rows of `benches/PERFORMANCE.md`: every computer of a large fleet
//! polls in turn, so the working set of a run is the whole fleet, and most computers have
//! nothing to receive, as in real fleets.
//!
//! A fleet of `N` computers and `M` jobs ([`FleetCase`]) is computers `fl-0000001`…
//! ([`fleet_hostname`]), Windows 11 x64, each keyed as the polled computers of
//! [`crate::sqlite`] are ([`seeded_credentials`]: no key exchange during a run). Each computer's
//! class follows from its number `n` alone ([`Class::of`], `n mod 40`), so that any prefix of the
//! fleet, and any run that takes every computer in number order, has the same mix:
//!
//! | `n mod 40` | class | share | jobs |
//! |---|---|---|---|
//! | 0, 20 | [`Class::Deliverable`] | 5 % | 20 Waiting jobs in 4 containers of 5 packages, open to loopback agents at any time: a hello hands out all 20 |
//! | 1–9 | [`Class::HeldByAddress`] | 22.5 % | held: their containers' IP list (the short list) names no loopback address |
//! | 21–29 | [`Class::HeldByTime`] | 22.5 % | held: their containers' time frame is one hour a week, [`HOLD_DELAY_HOURS`] after seeding ([`hold_window`]) |
//! | others | [`Class::Idle`] | 50 % | none |
//!
//! The held computers share the jobs the deliverable ones leave over evenly
//! ([`FleetCase::held_jobs`]: at 200,000 computers and 10M jobs, 108 or 109 each; at 1M and 20M,
//! 42 or 43), Waiting jobs of packages `0, 1, …` in one container per chunk, hold and count. The
//! planner hands out none of them; a hello that plans (the computer's first poll of a server
//! process, or one whose outlook the hello cache does not hold) reads all of them.
//!
//! [`seed_fleet`] writes the fleet a chunk of [`CHUNK`] computers at a time: the computers
//! (created one by one), then one [`Store::apply_many`] with their credentials and the containers
//! [`deploy`] builds for them, so that memory stays bounded whatever the fleet's size.
//!
//! # Examples
//!
//! ```
//! use oco_benches::fleet::{seed_fleet, Class, FleetCase};
//! use oco_benches::sqlite::sqlite_now;
//! use oco_core::store::{MemoryStore, Store};
//!
//! let case = FleetCase { computers: 80, jobs: 4 * 20 + 36 * 3 };
//! assert_eq!(case.count(Class::Deliverable), 4);
//! assert_eq!(case.held_jobs().unwrap(), (3, 0));
//! let store = MemoryStore::new();
//! let seeded = seed_fleet(&store, case, sqlite_now(), |_, _| {}).unwrap();
//! assert_eq!(seeded.jobs, case.jobs);
//! let pc = store.computer_by_hostname("fl-0000020").unwrap().unwrap();
//! assert_eq!(store.planner_snapshot(pc.id).unwrap().jobs.len(), 20);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use oco_core::chrono::{DateTime, Duration, Timelike, Utc};
use oco_core::constraint::TimeFrames;
use oco_core::deploy::{deploy, ContainerSettings, DeployRequest};
use oco_core::model::{
    ComputerId, DeliveryPolicy, MacAddress, Name, PackageId, Priority, Schedule, SequenceMode,
    WolSettings,
};
use oco_core::store::{AgentCredentials, Change, ChangeSet, DeploySnapshot, NewComputer, Store};

use crate::agent::{seeded_credentials, Result};
use crate::sqlite::{package, package_name};
use crate::{SHORT_IP_LIST, ZONE};

/// Classes repeat every this many computer numbers.
pub const CLASS_CYCLE: usize = 40;

/// The jobs a hello of a deliverable computer hands out.
pub const DELIVERABLE_JOBS: usize = 20;

/// Containers of a deliverable computer's jobs (of 5 packages each).
pub const DELIVERABLE_CONTAINERS: usize = 4;

/// Computers written per commit (a multiple of [`CLASS_CYCLE`]).
pub const CHUNK: usize = 2_000;

/// At most this many jobs per held computer (the fleet's packages).
pub const MAX_HELD_JOBS: usize = 1_000;

/// Hours from the seeding time to the held-by-time containers' weekly hour.
pub const HOLD_DELAY_HOURS: i64 = 84;

/// What a computer of the fleet has to receive, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 20 Waiting jobs a hello hands out.
    Deliverable,
    /// Jobs held by their containers' IP list.
    HeldByAddress,
    /// Jobs held by their containers' time frame.
    HeldByTime,
    /// No jobs.
    Idle,
}

impl Class {
    /// Every class, in the order of the table above.
    pub const ALL: [Class; 4] = [
        Class::Deliverable,
        Class::HeldByAddress,
        Class::HeldByTime,
        Class::Idle,
    ];

    /// The class of computer number `n` (`fl-0000020` is 20).
    pub fn of(n: usize) -> Class {
        match n % CLASS_CYCLE {
            0 | 20 => Class::Deliverable,
            1..=9 => Class::HeldByAddress,
            21..=29 => Class::HeldByTime,
            _ => Class::Idle,
        }
    }

    /// Whether its jobs are held.
    pub fn is_held(self) -> bool {
        matches!(self, Class::HeldByAddress | Class::HeldByTime)
    }

    /// How many jobs a hello of such a computer hands out.
    pub fn handed_out(self) -> usize {
        match self {
            Class::Deliverable => DELIVERABLE_JOBS,
            _ => 0,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Deliverable => "deliverable",
            Class::HeldByAddress => "held by address",
            Class::HeldByTime => "held by time",
            Class::Idle => "none",
        })
    }
}

/// The hostname of fleet computer `n` (`fl-0000001` is the first).
pub fn fleet_hostname(n: usize) -> String {
    format!("fl-{n:07}")
}

/// The number of the fleet computer named `hostname`, if it is one ([`fleet_hostname`]'s
/// inverse).
pub fn fleet_number(hostname: &str) -> Option<usize> {
    let digits = hostname.strip_prefix("fl-")?;
    if digits.len() < 7
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 7 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// The size of a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetCase {
    /// Computers `fl-0000001`…
    pub computers: usize,
    /// Jobs in all: 20 per deliverable computer, the rest shared by the held ones.
    pub jobs: usize,
}

impl FleetCase {
    /// The computers of `class`.
    pub fn count(&self, class: Class) -> usize {
        let per_cycle = (1..=CLASS_CYCLE).filter(|&n| Class::of(n) == class).count();
        let full = self.computers / CLASS_CYCLE;
        let rest = (full * CLASS_CYCLE + 1..=self.computers)
            .filter(|&n| Class::of(n) == class)
            .count();
        full * per_cycle + rest
    }

    /// The held computers (both kinds).
    pub fn held(&self) -> usize {
        self.count(Class::HeldByAddress) + self.count(Class::HeldByTime)
    }

    /// The jobs of each held computer, `(each, extra)`: every held computer has `each` jobs, and
    /// the first `extra` of them (by number) one more.
    ///
    /// # Errors
    ///
    /// When the jobs do not fit the fleet: fewer than 20 per deliverable computer, jobs left over
    /// without held computers, or more than [`MAX_HELD_JOBS`] per held computer.
    pub fn held_jobs(&self) -> Result<(usize, usize), String> {
        let deliverable = self.count(Class::Deliverable) * DELIVERABLE_JOBS;
        let rest = self.jobs.checked_sub(deliverable).ok_or_else(|| {
            format!(
                "{} jobs are too few for {} computers: their {} deliverable computers alone \
                 have {deliverable}",
                self.jobs,
                self.computers,
                self.count(Class::Deliverable)
            )
        })?;
        let held = self.held();
        if held == 0 {
            return if rest == 0 {
                Ok((0, 0))
            } else {
                Err(format!(
                    "{} computers have no held computers to take the {rest} jobs left over",
                    self.computers
                ))
            };
        }
        let (each, extra) = (rest / held, rest % held);
        if each + usize::from(extra > 0) > MAX_HELD_JOBS {
            return Err(format!(
                "{} jobs on {held} held computers are more than {MAX_HELD_JOBS} each",
                rest
            ));
        }
        Ok((each, extra))
    }

    /// The packages the fleet needs: the deliverable computers' 20, or as many as the most jobs
    /// of a held computer.
    ///
    /// # Errors
    ///
    /// As [`FleetCase::held_jobs`].
    pub fn packages(&self) -> Result<usize, String> {
        let (each, extra) = self.held_jobs()?;
        Ok(DELIVERABLE_JOBS.max(each + usize::from(extra > 0)))
    }
}

/// The held-by-time containers' time frame for a fleet seeded at `seeded_at`: the one hour a
/// week (UTC) that starts at the whole hour [`HOLD_DELAY_HOURS`] after `seeded_at`. It is closed
/// for at least 83 hours after seeding, and for all but one hour of every week.
pub fn hold_window(seeded_at: DateTime<Utc>) -> TimeFrames {
    let opens = seeded_at + Duration::hours(HOLD_DELAY_HOURS);
    let hour = opens.hour();
    let day = opens.format("%a").to_string().to_uppercase();
    format!("{day} {hour:02}:00-{:02}:00", hour + 1)
        .parse()
        .expect("a day and a whole hour parse")
}

/// What [`seed_fleet`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSeeded {
    /// The case.
    pub case: FleetCase,
    /// Jobs written.
    pub jobs: usize,
    /// Containers written.
    pub containers: usize,
    /// Packages written.
    pub packages: usize,
    /// The held-by-time containers' time frame (UTC).
    pub hold_window: TimeFrames,
}

/// Writes the fleet of `case` into an empty store, seeded at `now` (every container's
/// schedule starts an hour before, and the held-by-time window follows from it). Calls
/// `progress(computers, jobs)` after each chunk.
///
/// # Errors
///
/// A case whose jobs do not fit ([`FleetCase::held_jobs`]), or whatever the store returns.
pub fn seed_fleet(
    store: &dyn Store,
    case: FleetCase,
    now: DateTime<Utc>,
    mut progress: impl FnMut(usize, usize),
) -> Result<FleetSeeded> {
    let (each, extra) = case.held_jobs()?;
    let package_count = case.packages()?;
    let window = hold_window(now);

    let mut packages = BTreeMap::new();
    let mut package_ids = Vec::with_capacity(package_count);
    for n in 0..package_count {
        let family = store.create_family(name(&fleet_package_name(n)))?;
        let created = store.create_package(package(family.id, n))?;
        package_ids.push(created.id);
        packages.insert(created.id, created);
    }
    let mut snapshot = DeploySnapshot {
        packages,
        ..DeploySnapshot::default()
    };

    let (mut jobs, mut containers, mut held_seen) = (0, 0, 0);
    let mut first = 1;
    while first <= case.computers {
        let last = (first + CHUNK - 1).min(case.computers);
        snapshot.computers.clear();
        let mut keys = ChangeSet::default();
        let mut deliverable = Vec::new();
        let mut held: BTreeMap<(Class, usize), Vec<ComputerId>> = BTreeMap::new();
        for n in first..=last {
            let computer = store.create_computer(new_fleet_computer(n))?;
            keys.push(Change::SetCredentials {
                computer: computer.id,
                expected: AgentCredentials::default(),
                credentials: seeded_credentials(computer.hostname.as_str()),
            });
            match Class::of(n) {
                Class::Deliverable => deliverable.push(computer.id),
                class if class.is_held() => {
                    let count = each + usize::from(held_seen < extra);
                    held_seen += 1;
                    if count > 0 {
                        held.entry((class, count)).or_default().push(computer.id);
                    }
                }
                _ => {}
            }
            snapshot.computers.insert(computer.id, computer);
        }

        let mut sets = vec![keys];
        let chunk = first / CHUNK + 1;
        if !deliverable.is_empty() {
            let per = DELIVERABLE_JOBS / DELIVERABLE_CONTAINERS;
            for index in 0..DELIVERABLE_CONTAINERS {
                let settings = container(
                    &format!("fleet {chunk}: rollout {}", index + 1),
                    open_policy(index),
                    now,
                );
                let packages = &package_ids[index * per..(index + 1) * per];
                sets.push(deploy_set(
                    settings,
                    &deliverable,
                    packages,
                    &snapshot,
                    now,
                )?);
            }
        }
        for ((class, count), computers) in &held {
            let (label, policy) = match class {
                Class::HeldByAddress => ("held by address", crate::sqlite::office_policy()),
                _ => ("held by time", time_held_policy(&window)),
            };
            let settings = container(
                &format!("fleet {chunk}: {label}, {count} packages"),
                policy,
                now,
            );
            let packages = &package_ids[..*count];
            sets.push(deploy_set(settings, computers, packages, &snapshot, now)?);
        }
        for applied in store.apply_many(&sets) {
            let applied = applied?;
            jobs += applied.jobs.len();
            containers += applied.containers.len();
        }
        progress(last, jobs);
        first = last + 1;
    }
    if jobs != case.jobs {
        return Err(format!("wrote {jobs} jobs instead of {}", case.jobs).into());
    }
    Ok(FleetSeeded {
        case,
        jobs,
        containers,
        packages: package_count,
        hold_window: window,
    })
}

/// The container of `packages` for `computers` that [`deploy`] builds, as a change set.
fn deploy_set(
    settings: ContainerSettings,
    computers: &[ComputerId],
    packages: &[PackageId],
    snapshot: &DeploySnapshot,
    now: DateTime<Utc>,
) -> Result<ChangeSet> {
    let request = DeployRequest {
        container: settings,
        computers: computers.to_vec(),
        computer_groups: vec![],
        packages: packages.to_vec(),
        package_groups: vec![],
        force_reinstall: false,
    };
    Ok(deploy(&request, snapshot, now)?)
}

/// The family name of fleet package `n`: [`package_name`]'s, numbered past the first 100
/// (which are all distinct).
fn fleet_package_name(n: usize) -> String {
    if n < 100 {
        package_name(n)
    } else {
        format!("{} {}", package_name(n % 100), n / 100 + 1)
    }
}

/// The install command of fleet package `n`, as the jobs of its containers carry it.
pub fn install_command(n: usize) -> String {
    package(oco_core::model::FamilyId(0), n).install.command
}

fn new_fleet_computer(n: usize) -> NewComputer {
    let [_, high, middle, low] = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    NewComputer {
        hostname: name(&fleet_hostname(n)),
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec![MacAddress([0x52, 0x54, 0x01, high, middle, low])],
    }
}

/// A container of the fleet, started an hour before `now`, without end.
fn container(label: &str, policy: DeliveryPolicy, now: DateTime<Utc>) -> ContainerSettings {
    ContainerSettings {
        name: name(label),
        notes: String::new(),
        enabled: true,
        schedule: Schedule::new(now - Duration::hours(1), None).expect("no end"),
        policy,
        wol: WolSettings::default(),
        self_service: false,
    }
}

/// The deliverable computers' containers' policy: the short IP list plus loopback, any time,
/// mixed priorities, the second container abort-after-failed.
fn open_policy(index: usize) -> DeliveryPolicy {
    let mut policy = DeliveryPolicy::new(ZONE);
    policy.priority = Priority::new(i64::try_from(index % 3).expect("small") - 1).expect("-1..=1");
    policy.sequence_mode = if index == 1 {
        SequenceMode::AbortAfterFailed
    } else {
        SequenceMode::IgnoreFailed
    };
    policy.ip_ranges = format!("{SHORT_IP_LIST}, 127.0.0.0/8, ::1")
        .parse()
        .expect("the short list and loopback parse");
    policy
}

/// Held by time: open to loopback agents, but only in `window` (UTC).
fn time_held_policy(window: &TimeFrames) -> DeliveryPolicy {
    let mut policy = DeliveryPolicy::new(oco_core::chrono_tz::UTC);
    policy.ip_ranges = format!("{SHORT_IP_LIST}, 127.0.0.0/8, ::1")
        .parse()
        .expect("the short list and loopback parse");
    policy.time_frames = window.clone();
    policy
}

fn name(text: &str) -> Name {
    Name::new("name", text).expect("fixed names are not blank")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::sqlite_now;
    use oco_core::model::JobState;
    use oco_core::plan::plan;
    use oco_core::store::MemoryStore;
    use oco_core::Settings;

    #[test]
    fn classes_repeat_every_40_computers_in_the_stated_shares() {
        let case = FleetCase {
            computers: 200_000,
            jobs: 10_000_000,
        };
        assert_eq!(case.count(Class::Deliverable), 10_000);
        assert_eq!(case.count(Class::HeldByAddress), 45_000);
        assert_eq!(case.count(Class::HeldByTime), 45_000);
        assert_eq!(case.count(Class::Idle), 100_000);
        assert_eq!(case.held_jobs().unwrap(), (108, 80_000));
        assert_eq!(case.packages().unwrap(), 109);
        let big = FleetCase {
            computers: 1_000_000,
            jobs: 20_000_000,
        };
        assert_eq!(big.held_jobs().unwrap(), (42, 100_000));
        // Any prefix of 40 keeps the mix; counts add up for odd sizes too.
        for computers in [0, 1, 20, 39, 40, 41, 79, 1_234] {
            let case = FleetCase { computers, jobs: 0 };
            let sum: usize = Class::ALL.iter().map(|&c| case.count(c)).sum();
            assert_eq!(sum, computers);
            let counted = (1..=computers)
                .filter(|&n| Class::of(n) == Class::Deliverable)
                .count();
            assert_eq!(case.count(Class::Deliverable), counted);
        }
        assert_eq!(Class::of(20), Class::Deliverable);
        assert_eq!(Class::of(40), Class::Deliverable);
        assert_eq!(Class::of(1), Class::HeldByAddress);
        assert_eq!(Class::of(21), Class::HeldByTime);
        assert_eq!(Class::of(10), Class::Idle);
    }

    #[test]
    fn cases_that_do_not_fit_are_refused_with_a_reason() {
        let few = FleetCase {
            computers: 40,
            jobs: 39,
        };
        assert!(few.held_jobs().unwrap_err().contains("too few"));
        let alone = FleetCase {
            computers: 0,
            jobs: 25,
        };
        assert!(alone.held_jobs().unwrap_err().contains("no held"));
        let many = FleetCase {
            computers: 40,
            jobs: 40 + 18 * 1_001,
        };
        assert!(many.held_jobs().unwrap_err().contains("more than"));
    }

    #[test]
    fn hostnames_and_numbers_round_trip() {
        for n in [1, 20, 9_999_999, 12_345_678] {
            assert_eq!(fleet_number(&fleet_hostname(n)), Some(n));
        }
        assert_eq!(fleet_hostname(20), "fl-0000020");
        for bad in [
            "lg-00020",
            "fl-20",
            "fl-00000x1",
            "fl-0000000",
            "fl-00000001",
            "fl-",
        ] {
            assert_eq!(fleet_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_hold_window_is_closed_for_83_hours_after_seeding() {
        let zone = oco_core::chrono_tz::UTC;
        for start in [
            sqlite_now(),
            sqlite_now() + Duration::minutes(59),
            sqlite_now() + Duration::days(3) + Duration::minutes(17),
        ] {
            let window = hold_window(start);
            for minute in 0..83 * 60 {
                assert!(!window.allows_at(start + Duration::minutes(minute), zone));
            }
            assert!(window.allows_at(start + Duration::hours(HOLD_DELAY_HOURS), zone));
        }
        // Friday 21:xx is three and a half days after Tuesday 09:xx.
        assert_eq!(hold_window(sqlite_now()).to_string(), "FRI 21:00-22:00");
    }

    #[test]
    fn the_fleet_hands_out_jobs_to_deliverable_computers_only() {
        let case = FleetCase {
            computers: 4_040,
            jobs: 202 * 20 + 1_818 * 5 + 7,
        };
        let store = MemoryStore::new();
        let now = sqlite_now();
        let mut chunks = Vec::new();
        let seeded = seed_fleet(&store, case, now, |computers, _| chunks.push(computers)).unwrap();
        assert_eq!(chunks, [2_000, 4_000, 4_040]);
        assert_eq!(seeded.jobs, case.jobs);
        assert_eq!(seeded.packages, 20);
        let agent: std::net::IpAddr = "127.0.1.7".parse().unwrap();
        let mut held_jobs = Vec::new();
        for n in [1, 7, 8, 9, 20, 21, 29, 30, 40, 4_021, 4_040] {
            let hostname = fleet_hostname(n);
            let (computer, credentials, snapshot) =
                store.hello_snapshot(&hostname).unwrap().unwrap();
            assert_eq!(credentials, seeded_credentials(&hostname));
            assert!(snapshot.jobs.iter().all(|j| j.state == JobState::Waiting));
            let planned = plan(
                &snapshot,
                now + Duration::hours(2),
                agent,
                &Settings::default(),
            );
            let class = Class::of(n);
            assert_eq!(planned.deliver.len(), class.handed_out(), "{hostname}");
            match class {
                Class::Deliverable => assert_eq!(snapshot.jobs.len(), 20),
                Class::Idle => assert!(snapshot.jobs.is_empty()),
                _ => held_jobs.push(snapshot.jobs.len()),
            }
            assert_eq!(computer.hostname.as_str(), hostname);
        }
        // The first 7 held computers (1 to 7) have 6 jobs, the others 5.
        assert_eq!(held_jobs, [6, 6, 5, 5, 5, 5, 5]);
    }
}
