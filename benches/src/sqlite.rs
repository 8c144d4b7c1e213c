//! The fixed seed of the SQLite rows of `benches/PERFORMANCE.md`, written through the [`Store`]
//! trait, so that the same seed fills a SQLite file and a [`MemoryStore`](oco_core::store::MemoryStore).
//!
//! The full seed ([`SEED_1M`]) is 20,000 computers `lg-00001`…`lg-20000` (Windows 11 x64) and
//! 100 packages of 100 families, with exactly 1,000,000 jobs:
//!
//! - **Polled computers**: every 20th computer (`lg-00020`, `lg-00040`…, 1,000 of them, 5 %) has
//!   20 Waiting jobs in 4 containers (5 packages each, one container per 5 packages of the first
//!   20): 20,000 jobs. They have no assignments and are in no rule, so a planner snapshot of one
//!   of them holds exactly those 20 jobs.
//! - **The rule**: the computer group `office` holds the first 9,800 other computers; its rule
//!   deploys the package group `baseline` (all 100 packages, in order). Every job of the rule
//!   exists (the rule was evaluated once and its diff applied): 980,000 jobs, AlreadyInstalled
//!   where the package is assigned and Waiting otherwise.
//! - **Assignments**: each computer × package pair of the non-polled computers is assigned with
//!   probability 1/10 (fixed seed), about 190,000 in all, so about 10 % of the rule's jobs are
//!   AlreadyInstalled (the shape of the rule benchmarks in [`crate::rules`]).
//! - **The join pool**: the remaining 9,200 computers are in no group and have no jobs; the
//!   group `office/new` (a subgroup of `office`, so its members are the rule's too) starts
//!   empty, and a computer joins the rule by becoming its member.
//!
//! Policies are realistic: the short IP list, Berlin time frames that are open at
//! [`sqlite_now`] (Tuesday 10:00 in Berlin), mixed priorities, one abort-after-failed container.
//!
//! A scaled-down seed with the same shape ([`SEED_TEST`]: 2,000 computers, 100 polled, 480 rule
//! members, 50,000 jobs) is what `cargo bench -- --test` uses.
//!
//! # Examples
//!
//! ```
//! use oco_benches::sqlite::{seed, SeedCase};
//! use oco_core::store::{MemoryStore, Store};
//!
//! let case = SeedCase { computers: 200, rule_members: 40, rule_packages: 20, deploy_packages: 5 };
//! let store = MemoryStore::new();
//! let seeded = seed(&store, case).unwrap();
//! assert_eq!(seeded.polled.len(), 10);
//! assert_eq!(case.jobs(), 10 * 20 + 40 * 20);
//! let snapshot = store.planner_snapshot(seeded.polled[0]).unwrap();
//! assert_eq!(snapshot.jobs.len(), 20);
//! ```

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::deploy::{deploy, ContainerSettings, DeployRequest};
use oco_core::model::{
    Assignment, Compatibility, ComputerGroupId, ComputerId, DeliveryPolicy, JobId, Name, PackageId,
    Payload, PostAction, Priority, Procedure, RuleId, Schedule, SequenceMode, Sha256Digest,
    UpgradeBehavior, WolSettings,
};
use oco_core::rules::{RuleWorld, Scope};
use oco_core::store::{
    Change, ChangeSet, JobFilter, NewComputer, NewPackage, NewRule, Page, Store, StoreResult,
};

use crate::{SplitMix64, SEED, SHORT_IP_LIST, WORKWEEK_FRAMES, ZONE};

/// One polled computer in this many (5 %).
pub const POLLED_ONE_IN: usize = 20;

/// Containers of the polled computers' jobs.
pub const POLLED_CONTAINERS: usize = 4;

/// Packages per container of the polled computers (4 × 5 = 20 Waiting jobs each).
pub const PACKAGES_PER_CONTAINER: usize = 5;

/// Waiting jobs per polled computer.
pub const POLLED_JOBS: usize = POLLED_CONTAINERS * PACKAGES_PER_CONTAINER;

/// One assignment in this many computer × package pairs of the non-polled computers.
pub const ASSIGNED_ONE_IN: u64 = 10;

/// The size of a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedCase {
    /// Computers `lg-00001`…; one in [`POLLED_ONE_IN`] is polled.
    pub computers: usize,
    /// Non-polled computers in the rule's group (the first ones); the rest are the join pool.
    pub rule_members: usize,
    /// Packages, all in the rule's package group (at least [`POLLED_JOBS`]).
    pub rule_packages: usize,
    /// Packages of the deploy benchmark's container (the last ones), for every computer.
    pub deploy_packages: usize,
}

impl SeedCase {
    /// The polled computers.
    pub fn polled(&self) -> usize {
        self.computers / POLLED_ONE_IN
    }

    /// The jobs of the seed: the polled computers' and the rule's.
    pub fn jobs(&self) -> usize {
        self.polled() * POLLED_JOBS + self.rule_members * self.rule_packages
    }

    /// The jobs of the deploy benchmark's container.
    pub fn deploy_jobs(&self) -> usize {
        self.computers * self.deploy_packages
    }
}

/// The seed of the SQLite rows: 20,000 computers, 1,000,000 jobs; a deploy of 20,000 × 50 =
/// 1,000,000 jobs.
pub const SEED_1M: SeedCase = SeedCase {
    computers: 20_000,
    rule_members: 9_800,
    rule_packages: 100,
    deploy_packages: 50,
};

/// The same shape scaled down for `--test` runs: 2,000 computers, 50,000 jobs; a deploy of
/// 2,000 × 25 = 50,000 jobs.
pub const SEED_TEST: SeedCase = SeedCase {
    computers: 2_000,
    rule_members: 480,
    rule_packages: 100,
    deploy_packages: 25,
};

/// The instant of every fixed operation: Tuesday 2026-11-24 10:00 in Berlin.
pub fn sqlite_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// What [`seed`] created, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The case.
    pub case: SeedCase,
    /// Every computer, in hostname order (`lg-00001` first).
    pub computers: Vec<ComputerId>,
    /// The polled computers, in hostname order.
    pub polled: Vec<ComputerId>,
    /// The polled computers' Waiting jobs, by id.
    pub polled_jobs: Vec<JobId>,
    /// Every package, in the order of the rule's package group.
    pub packages: Vec<PackageId>,
    /// The rule.
    pub rule: RuleId,
    /// The rule's computer group (`office`).
    pub rule_group: ComputerGroupId,
    /// Its empty subgroup a computer joins (`office/new`).
    pub join_group: ComputerGroupId,
    /// The computers in no group and without jobs, in hostname order.
    pub join_pool: Vec<ComputerId>,
}

impl Seeded {
    /// The packages of the deploy benchmark's container.
    pub fn deploy_packages(&self) -> &[PackageId] {
        &self.packages[self.packages.len() - self.case.deploy_packages..]
    }
}

/// Writes the seed of `case` into an empty store.
///
/// Everything goes through the [`Store`] trait: computers one by one, packages, groups, the
/// assignments in one change set, the polled computers' containers as [`deploy`] builds them, and
/// the rule's jobs as its first evaluation's diff.
///
/// # Errors
///
/// Whatever the store returns.
///
/// # Panics
///
/// If the store is not empty, or the case is inconsistent (more rule members than non-polled
/// computers, fewer packages than [`POLLED_JOBS`] or [`SeedCase::deploy_packages`]).
pub fn seed(store: &dyn Store, case: SeedCase) -> StoreResult<Seeded> {
    let now = sqlite_now();
    assert!(case.rule_packages >= POLLED_JOBS && case.rule_packages >= case.deploy_packages);
    assert!(case.rule_members <= case.computers - case.polled());

    let mut computers = Vec::with_capacity(case.computers);
    for n in 1..=case.computers {
        computers.push(store.create_computer(new_computer(n))?.id);
    }
    // `lg-00020`, `lg-00040`…: computer n is polled when n is a multiple of 20.
    let is_polled = |index: usize| (index + 1).is_multiple_of(POLLED_ONE_IN);
    let pick = |polled: bool| -> Vec<ComputerId> {
        (0..computers.len())
            .filter(|&index| is_polled(index) == polled)
            .map(|index| computers[index])
            .collect()
    };
    let (polled, others) = (pick(true), pick(false));
    let (members, join_pool) = others.split_at(case.rule_members);

    let mut packages = Vec::with_capacity(case.rule_packages);
    for n in 0..case.rule_packages {
        let family = store.create_family(name(&package_name(n)))?;
        packages.push(store.create_package(package(family.id, n))?.id);
    }

    // About 10 % of the non-polled computers' pairs, as installed a month ago by hand.
    let mut rng = SplitMix64::new(SEED ^ 0x5_0173);
    let mut assignments = ChangeSet::default();
    for &computer in &others {
        for &package in &packages {
            if rng.below(ASSIGNED_ONE_IN) == 0 {
                assignments.push(Change::UpsertAssignment {
                    assignment: Assignment {
                        computer,
                        package,
                        installed_at: now - Duration::days(30),
                        job: None,
                    },
                });
            }
        }
    }
    store.apply(&assignments)?;

    // The polled computers' containers, each deploying 5 of the first 20 packages.
    let snapshot = store.deploy_snapshot()?;
    for index in 0..POLLED_CONTAINERS {
        let first = index * PACKAGES_PER_CONTAINER;
        let request = DeployRequest {
            container: container_settings(index, now - Duration::hours(2 + index as i64)),
            computers: polled.clone(),
            computer_groups: vec![],
            packages: packages[first..first + PACKAGES_PER_CONTAINER].to_vec(),
            package_groups: vec![],
            force_reinstall: false,
        };
        let changes = deploy(&request, &snapshot, now - Duration::hours(2 + index as i64))
            .expect("the fixed deploy is valid");
        store.apply(&changes)?;
    }
    let mut polled_jobs = Vec::with_capacity(polled.len() * POLLED_JOBS);
    for &computer in &polled {
        let filter = JobFilter {
            computer: Some(computer),
            ..JobFilter::default()
        };
        polled_jobs.extend(
            store
                .list_jobs(&filter, Page::first(POLLED_JOBS + 1))?
                .iter()
                .map(|job| job.id),
        );
    }
    assert_eq!(polled_jobs.len(), polled.len() * POLLED_JOBS);

    // The rule, evaluated once with its diff applied: every job it wants exists.
    let rule_group = store.create_computer_group(name("office"), None)?.id;
    store.set_computer_group_members(rule_group, members)?;
    let join_group = store
        .create_computer_group(name("office/new"), Some(rule_group))?
        .id;
    let package_group = store.create_package_group(name("baseline"), None)?.id;
    store.set_package_group_members(package_group, &packages)?;
    let rule = store
        .create_rule(NewRule {
            name: name("baseline software for the office"),
            notes: "Every office computer gets the baseline.".into(),
            enabled: true,
            computer_group: rule_group,
            package_group,
            policy: office_policy(),
            created_at: now - Duration::days(60),
        })?
        .id;
    let world = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    let diff = world.evaluate(rule, &Scope::full(), now - Duration::days(1));
    assert_eq!(diff.insert.len(), case.rule_members * case.rule_packages);
    store.apply(&diff.into_change_set())?;

    Ok(Seeded {
        case,
        computers,
        polled,
        polled_jobs,
        packages,
        rule,
        rule_group,
        join_group,
        join_pool: join_pool.to_vec(),
    })
}

/// The deploy benchmark's request: a new container of the last [`SeedCase::deploy_packages`]
/// packages for every computer (AlreadyInstalled jobs where they are assigned).
pub fn deploy_request(seeded: &Seeded) -> DeployRequest {
    DeployRequest {
        container: container_settings(POLLED_CONTAINERS, sqlite_now()),
        computers: seeded.computers.clone(),
        computer_groups: vec![],
        packages: seeded.deploy_packages().to_vec(),
        package_groups: vec![],
        force_reinstall: false,
    }
}

/// Products the packages are named after; two editions each, for 100 families.
const PRODUCTS: [&str; 50] = [
    "7-Zip",
    "Adobe Acrobat Reader",
    "Audacity",
    "Bitwarden",
    "Blender",
    "Brave",
    "Citrix Workspace",
    "CMake",
    "Cisco AnyConnect",
    "Docker Desktop",
    "Dropbox",
    "Eclipse",
    "FileZilla",
    "Firefox",
    "Foxit Reader",
    "GIMP",
    "Git",
    "Google Chrome",
    "Greenshot",
    "Inkscape",
    "IrfanView",
    "Java Runtime",
    "KeePass",
    "LibreOffice",
    "Microsoft Edge",
    "Microsoft Teams",
    "MobaXterm",
    "Node.js",
    "Notepad++",
    "OBS Studio",
    "OpenVPN",
    "Paint.NET",
    "PDF24",
    "PowerShell",
    "PuTTY",
    "Python",
    "R",
    "Slack",
    "Spotify",
    "Sumatra PDF",
    "Thunderbird",
    "TeamViewer",
    "TortoiseGit",
    "VirtualBox",
    "Visual Studio Code",
    "VLC",
    "WinMerge",
    "WinSCP",
    "Wireshark",
    "Zoom",
];

/// The family name of package `n`: a product and an edition.
pub(crate) fn package_name(n: usize) -> String {
    let edition = if n < PRODUCTS.len() { "x64" } else { "x86" };
    format!("{} ({edition})", PRODUCTS[n % PRODUCTS.len()])
}

/// Package `n` of family `family`: its version, install and uninstall commands are `n`'s.
pub(crate) fn package(family: oco_core::model::FamilyId, n: usize) -> NewPackage {
    let slug: String = package_name(n)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let version = format!("{}.{}.{}", 1 + n % 7, n % 13, 100 + n);
    let (install, codes, post_action) = if n.is_multiple_of(3) {
        (
            format!("msiexec /i \"{slug}-{version}.msi\" /qn /norestart ALLUSERS=1"),
            "0, 1641, 3010",
            if n.is_multiple_of(9) {
                PostAction::Restart
            } else {
                PostAction::None
            },
        )
    } else {
        (
            format!("{slug}-{version}-setup.exe /S /D=C:\\Program Files\\{slug}"),
            "0",
            PostAction::None,
        )
    };
    NewPackage {
        family,
        version: name(&version),
        install: Procedure {
            command: install,
            success_codes: codes.parse().expect("fixed success codes parse"),
            post_action,
        },
        uninstall: Procedure {
            command: format!("msiexec /x \"{slug}-{version}.msi\" /qn /norestart"),
            success_codes: "0, 1605, 3010".parse().expect("fixed success codes parse"),
            post_action: PostAction::None,
        },
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: UpgradeBehavior::KeepOthers,
        compatibility: Compatibility {
            os: vec!["Windows".into()],
            os_version: vec![],
            architecture: vec![],
        },
        dependencies: vec![],
    }
}

fn new_computer(n: usize) -> NewComputer {
    let low = u8::try_from(n % 256).expect("below 256");
    let high = u8::try_from(n / 256 % 256).expect("below 256");
    NewComputer {
        hostname: name(&format!("lg-{n:05}")),
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec![oco_core::model::MacAddress([
            0x52, 0x54, 0x00, 0x0c, high, low,
        ])],
    }
}

/// Container `index`'s settings: open now (Berlin office hours), the short IP list.
fn container_settings(index: usize, created: DateTime<Utc>) -> ContainerSettings {
    let mut policy = DeliveryPolicy::new(ZONE);
    policy.priority = Priority::new(i64::try_from(index % 3).expect("small") - 1).expect("-1..=1");
    policy.sequence_mode = if index == 1 {
        SequenceMode::AbortAfterFailed
    } else {
        SequenceMode::IgnoreFailed
    };
    policy.ip_ranges = SHORT_IP_LIST.parse().expect("the short list parses");
    policy.time_frames = WORKWEEK_FRAMES.parse().expect("the workweek frames parse");
    ContainerSettings {
        name: name(&format!("rollout {}", index + 1)),
        notes: String::new(),
        enabled: true,
        schedule: Schedule::new(created, Some(created + Duration::days(14)))
            .expect("end after start"),
        policy,
        wol: WolSettings::default(),
        self_service: false,
    }
}

/// The short IP list (no loopback address) and Berlin office hours: the seed rule's policy, and
/// the fleet's held-by-address containers'.
pub(crate) fn office_policy() -> DeliveryPolicy {
    let mut policy = DeliveryPolicy::new(ZONE);
    policy.ip_ranges = SHORT_IP_LIST.parse().expect("the short list parses");
    policy.time_frames = WORKWEEK_FRAMES.parse().expect("the workweek frames parse");
    policy
}

fn name(text: &str) -> Name {
    Name::new("name", text).expect("fixed names are not blank")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oco_core::model::JobState;
    use std::collections::BTreeMap;

    use oco_core::store::MemoryStore;

    /// The number of `seeded.polled_jobs` on each computer.
    fn jobs_by_computer(
        store: &dyn Store,
        seeded: &Seeded,
    ) -> StoreResult<BTreeMap<ComputerId, usize>> {
        let mut counts = BTreeMap::new();
        for &id in &seeded.polled_jobs {
            *counts.entry(store.job(id)?.computer).or_default() += 1;
        }
        Ok(counts)
    }

    const SMALL: SeedCase = SeedCase {
        computers: 400,
        rule_members: 100,
        rule_packages: 30,
        deploy_packages: 10,
    };

    #[test]
    fn the_seed_has_the_documented_shape() {
        let store = MemoryStore::new();
        let seeded = seed(&store, SMALL).unwrap();
        assert_eq!(seeded.polled.len(), 20);
        assert_eq!(seeded.join_pool.len(), 400 - 20 - 100);
        let counts = jobs_by_computer(&store, &seeded).unwrap();
        assert_eq!(counts.len(), 20);
        assert!(counts.values().all(|&n| n == POLLED_JOBS));
        for &computer in &seeded.polled {
            let snapshot = store.planner_snapshot(computer).unwrap();
            assert_eq!(snapshot.jobs.len(), POLLED_JOBS);
            assert_eq!(snapshot.origins.len(), POLLED_CONTAINERS);
            assert!(snapshot.jobs.iter().all(|j| j.state == JobState::Waiting));
        }
        let all = store
            .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
            .unwrap();
        assert_eq!(all.len(), SMALL.jobs());
        let installed = all
            .iter()
            .filter(|job| job.state == JobState::AlreadyInstalled)
            .count();
        assert!((200..=400).contains(&installed), "{installed} installed");
        // Settled: evaluating the rule again changes nothing.
        let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        assert!(world
            .evaluate(seeded.rule, &Scope::full(), sqlite_now())
            .is_empty());
    }

    #[test]
    fn the_deploy_request_makes_one_job_per_computer_and_package() {
        let store = MemoryStore::new();
        let seeded = seed(&store, SMALL).unwrap();
        let snapshot = store.deploy_snapshot().unwrap();
        let changes = deploy(&deploy_request(&seeded), &snapshot, sqlite_now()).unwrap();
        let [Change::CreateContainer { jobs, .. }] = &changes.changes[..] else {
            panic!("one container");
        };
        assert_eq!(jobs.len(), SMALL.deploy_jobs());
    }
}
