//! Rule evaluation's fixed inputs (one rule, N computers in one group, M packages of distinct
//! families, 10 % of computer × package pairs assigned) and the naive hash-set diff it is measured
//! against.
//!
//! The worlds are built directly as [`RuleWorld`]s, with no store: the benchmark measures
//! evaluation in memory, not loading.
//!
//! # Examples
//!
//! ```
//! use oco_benches::rules::{first_world, hashset_diff, rules_now, RuleCase, RULE};
//! use oco_core::rules::Scope;
//!
//! let case = RuleCase { computers: 200, packages: 10 };
//! let world = first_world(case);
//! let diff = world.evaluate(RULE, &Scope::full(), rules_now());
//! let naive = hashset_diff(&world, RULE, rules_now());
//! assert_eq!(diff.insert.len(), 2_000);
//! assert_eq!(naive.insert.len(), diff.insert.len());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use oco_core::chrono::{DateTime, TimeZone, Utc};
use oco_core::model::{
    Assignment, Compatibility, Computer, ComputerGroupId, ComputerId, DeliveryPolicy,
    DeploymentRule, FamilyId, Job, JobId, JobKind, JobState, Name, Origin, Package, PackageGroupId,
    PackageId, Payload, Procedure, Revision, RuleId, ServerFinal, Sha256Digest, SuccessCodes,
    UpgradeBehavior,
};
use oco_core::rules::{ResolvedRule, RuleDiff, RuleWorld};

use crate::{SplitMix64, SEED, ZONE};

/// The one rule of the fixed worlds.
pub const RULE: RuleId = RuleId(1);

/// One assignment in this many computer × package pairs.
pub const ASSIGNED_ONE_IN: u64 = 10;

/// One computer in this many changes groups in the steady-state case (1 %).
pub const CHANGED_ONE_IN: usize = 100;

/// The size of a fixed rule world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCase {
    /// Computers in the rule's group.
    pub computers: usize,
    /// Packages in the rule's package group.
    pub packages: usize,
}

/// 10,000 computers × 100 packages.
pub const CASE_10K_X_100: RuleCase = RuleCase {
    computers: 10_000,
    packages: 100,
};

/// 50,000 computers × 200 packages.
pub const CASE_50K_X_200: RuleCase = RuleCase {
    computers: 50_000,
    packages: 200,
};

/// The instant of every fixed evaluation: Tuesday 2026-11-24 10:00 in Berlin.
pub fn rules_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// The world before any evaluation: no jobs yet.
///
/// Computers `lg-00001`… (ids 1…) are `case.computers` members of the rule's group, plus
/// `case.computers / 100` more (after them in hostname order) that are not members yet, for the
/// steady-state and join cases. Packages 1…`case.packages` each have their own family, keep
/// other versions, and are compatible with every computer. Each computer × package pair is
/// assigned with probability 1/10 (fixed seed), so about 10 % of the desired jobs are
/// AlreadyInstalled and the rest Waiting.
pub fn first_world(case: RuleCase) -> RuleWorld {
    let mut rng = SplitMix64::new(SEED ^ 0x3_2B1E);
    let total = case.computers + case.computers / CHANGED_ONE_IN;
    let computers: BTreeMap<ComputerId, Computer> =
        (1..=total).map(|n| (computer_id(n), computer(n))).collect();
    let packages: BTreeMap<PackageId, Package> = (1..=case.packages)
        .map(|n| {
            let package = package(n);
            (package.id, package)
        })
        .collect();
    let assignments = computers
        .keys()
        .map(|&computer| {
            let list: Vec<Assignment> = packages
                .keys()
                .filter(|_| rng.below(ASSIGNED_ONE_IN) == 0)
                .map(|&package| Assignment {
                    computer,
                    package,
                    installed_at: rules_now() - oco_core::chrono::Duration::days(30),
                    job: None,
                })
                .collect();
            (computer, (list, Revision(1)))
        })
        .collect();
    let rule = ResolvedRule {
        rule: DeploymentRule {
            id: RULE,
            name: Name::new("name", "baseline software").unwrap(),
            notes: String::new(),
            enabled: true,
            computer_group: ComputerGroupId(1),
            package_group: PackageGroupId(1),
            policy: DeliveryPolicy::new(ZONE),
            created_at: rules_now() - oco_core::chrono::Duration::days(60),
        },
        computers: (1..=case.computers).map(computer_id).collect(),
        packages: packages.keys().copied().collect(),
    };
    let mut world = RuleWorld::default();
    world.rules = BTreeMap::from([(RULE, rule)]);
    world.computers = computers;
    world.packages = packages;
    world.assignments = assignments;
    world
}

/// `world` after its first evaluation was applied: every desired job exists (ids from 1,
/// revision 1) and the rule is unchanged.
pub fn settled_world(case: RuleCase) -> RuleWorld {
    let mut world = first_world(case);
    let diff = world.evaluate(RULE, &oco_core::rules::Scope::full(), rules_now());
    apply_inserts(&mut world, diff);
    world
}

/// The steady-state world: [`settled_world`], then 1 % of the computers changed groups: every
/// 100th member left the rule's group and as many new computers joined it.
pub fn steady_world(case: RuleCase) -> RuleWorld {
    let mut world = settled_world(case);
    let resolved = world.rules.get_mut(&RULE).unwrap();
    let mut members: Vec<ComputerId> = (1..=case.computers)
        .filter(|n| n % CHANGED_ONE_IN != 0)
        .map(computer_id)
        .collect();
    let joined = case.computers + 1..=case.computers + case.computers / CHANGED_ONE_IN;
    members.extend(joined.map(computer_id));
    resolved.computers = members;
    world
}

/// The join case: [`settled_world`] (before) and the same world in which one more computer
/// (the first non-member, `lg-10001` for 10,000 computers) joined the rule's group (after).
pub fn join_one_worlds(case: RuleCase) -> (RuleWorld, RuleWorld) {
    let before = settled_world(case);
    let mut after = before.clone();
    let resolved = after.rules.get_mut(&RULE).unwrap();
    // Hostnames are zero-padded, so the new computer sorts last.
    resolved.computers.push(computer_id(case.computers + 1));
    (before, after)
}

/// Applies a diff's inserts the way a store would: ids from the next free one, revision 1.
///
/// # Panics
///
/// If the diff updates, deletes or orphans anything (the fixed first evaluations only insert).
pub fn apply_inserts(world: &mut RuleWorld, diff: RuleDiff) {
    assert!(diff.update.is_empty() && diff.delete.is_empty() && diff.orphan.is_empty());
    let (rule, at) = (diff.rule, diff.at);
    let mut jobs: Vec<Job> = world
        .rules
        .keys()
        .flat_map(|&rule| world.jobs(rule).all())
        .cloned()
        .collect();
    let mut next = jobs.iter().map(|job| job.id.0).max().unwrap_or(0);
    for new in &diff.insert {
        let mut job = new.to_job(rule, &world.packages[&new.package], at);
        next += 1;
        job.id = JobId(next);
        job.revision = Revision(1);
        jobs.push(job);
    }
    world.set_jobs(jobs);
}

/// What the naive baseline decided.
#[derive(Debug, Clone, PartialEq)]
pub struct NaiveDiff {
    /// New jobs, by (computer, package, kind).
    pub insert: Vec<Job>,
    /// Changed jobs (state or sequence), by id.
    pub update: Vec<Job>,
    /// Jobs no longer desired, by id.
    pub delete: Vec<(JobId, Revision)>,
}

/// The baseline for full evaluation: a hash-set diff.
///
/// Builds a `HashMap` of the desired (computer, package, kind) keys with their state and
/// sequence, and a `HashMap` of the existing jobs by key, then takes the set differences:
/// desired and not existing → insert (a new job, finalised as AlreadyInstalled or Incompatible
/// when so desired); existing and not desired → delete; both, with another state or sequence →
/// update. Running jobs are left alone. It knows no upgrade behaviour, conflicts, snapshot
/// refresh or merge-table subtleties: on the fixed worlds (keep-others packages, nothing
/// running) it finds what [`RuleWorld::evaluate`] finds. Results are sorted, as `evaluate`'s are.
///
/// # Panics
///
/// If `rule` or one of its computers or packages is not in `world`.
pub fn hashset_diff(world: &RuleWorld, rule: RuleId, now: DateTime<Utc>) -> NaiveDiff {
    type Key = (ComputerId, PackageId, JobKind);
    let resolved = &world.rules[&rule];
    let mut desired: HashMap<Key, (JobState, u32)> = HashMap::new();
    for &computer_id in &resolved.computers {
        let computer = &world.computers[&computer_id];
        let assigned: HashSet<PackageId> = world
            .assignments
            .get(&computer_id)
            .map(|(list, _)| list.iter().map(|a| a.package).collect())
            .unwrap_or_default();
        for (sequence, id) in (1..).zip(&resolved.packages) {
            let state = if !world.packages[id].compatibility.allows(computer) {
                JobState::Incompatible
            } else if assigned.contains(id) {
                JobState::AlreadyInstalled
            } else {
                JobState::Waiting
            };
            desired.insert((computer_id, *id, JobKind::Install), (state, sequence));
        }
    }
    let existing: HashMap<Key, &Job> = world
        .jobs(rule)
        .all()
        .iter()
        .map(|job| ((job.computer, job.package, job.kind), job))
        .collect();

    let mut diff = NaiveDiff {
        insert: Vec::new(),
        update: Vec::new(),
        delete: Vec::new(),
    };
    for (key, &(state, sequence)) in &desired {
        match existing.get(key) {
            None => {
                let (computer, package, kind) = *key;
                let mut job = Job::new(
                    Origin::Rule(rule),
                    computer,
                    &world.packages[&package],
                    kind,
                    sequence,
                );
                match state {
                    JobState::Incompatible => {
                        job.finalize_by_server(ServerFinal::Incompatible, now)
                    }
                    JobState::AlreadyInstalled => {
                        job.finalize_by_server(ServerFinal::AlreadyInstalled, now);
                    }
                    _ => {}
                }
                diff.insert.push(job);
            }
            Some(job) if job.state.is_running() => {}
            Some(job) if job.state != state || job.sequence != sequence => {
                let mut next = (*job).clone();
                next.sequence = sequence;
                match state {
                    JobState::Incompatible => {
                        next.finalize_by_server(ServerFinal::Incompatible, now);
                    }
                    JobState::AlreadyInstalled => {
                        next.finalize_by_server(ServerFinal::AlreadyInstalled, now);
                    }
                    _ => next.state = state,
                }
                diff.update.push(next);
            }
            Some(_) => {}
        }
    }
    for (key, job) in &existing {
        if !desired.contains_key(key) && !job.state.is_running() {
            diff.delete.push((job.id, job.revision));
        }
    }
    diff.insert
        .sort_unstable_by_key(|job| (job.computer, job.package, job.kind));
    diff.update.sort_unstable_by_key(|job| job.id);
    diff.delete.sort_unstable();
    diff
}

/// The id of the `n`th computer (from 1).
/// The id of generated computer number `n` (`lg-0000n`).
pub fn computer_id(n: usize) -> ComputerId {
    ComputerId(i64::try_from(n).unwrap())
}

fn computer(n: usize) -> Computer {
    Computer {
        id: computer_id(n),
        hostname: Name::new("hostname", &format!("lg-{n:05}")).unwrap(),
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec![],
        last_seen: None,
    }
}

fn package(n: usize) -> Package {
    let id = i64::try_from(n).unwrap();
    Package {
        id: PackageId(id),
        family: FamilyId(id),
        version: Name::new("version", "1.0").unwrap(),
        install: Procedure {
            command: format!("msiexec /i package-{id}.msi /qn"),
            success_codes: SuccessCodes::zero(),
            post_action: Default::default(),
        },
        uninstall: Procedure {
            command: format!("msiexec /x package-{id}.msi /qn"),
            success_codes: SuccessCodes::zero(),
            post_action: Default::default(),
        },
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: UpgradeBehavior::KeepOthers,
        compatibility: Compatibility::default(),
        dependencies: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oco_core::rules::{scopes_for, RuleEvent, Scope};

    /// The fixed shapes, scaled down so that the tests run fast unoptimised; the benchmarks
    /// check the same agreement on the full-size worlds in every iteration.
    const SMALL: RuleCase = RuleCase {
        computers: 1_000,
        packages: 20,
    };

    fn counts(diff: &RuleDiff) -> (usize, usize, usize, usize) {
        (
            diff.insert.len(),
            diff.update.len(),
            diff.delete.len(),
            diff.orphan.len(),
        )
    }

    /// The diff's compact inserts as the jobs a store would write.
    fn full_jobs(world: &RuleWorld, diff: &RuleDiff) -> Vec<Job> {
        diff.insert
            .iter()
            .map(|new| new.to_job(diff.rule, &world.packages[&new.package], diff.at))
            .collect()
    }

    #[test]
    fn first_evaluation_inserts_every_pair_and_the_baseline_agrees() {
        let world = first_world(SMALL);
        let diff = world.evaluate(RULE, &Scope::full(), rules_now());
        assert_eq!(counts(&diff), (20_000, 0, 0, 0));
        assert!(diff.conflicts.is_empty());
        let installed = diff
            .insert
            .iter()
            .filter(|job| job.state == JobState::AlreadyInstalled)
            .count();
        assert!((1_600..=2_400).contains(&installed), "{installed} assigned");
        let naive = hashset_diff(&world, RULE, rules_now());
        assert_eq!(
            naive.insert,
            full_jobs(&world, &diff),
            "same jobs, same order"
        );
        assert!(naive.update.is_empty() && naive.delete.is_empty());
    }

    #[test]
    fn a_settled_world_evaluates_to_an_empty_diff() {
        let world = settled_world(SMALL);
        assert!(world.evaluate(RULE, &Scope::full(), rules_now()).is_empty());
        let naive = hashset_diff(&world, RULE, rules_now());
        assert_eq!((naive.insert.len(), naive.update.len()), (0, 0));
        assert!(naive.delete.is_empty());
    }

    #[test]
    fn steady_state_replaces_one_percent_and_the_baseline_agrees() {
        let world = steady_world(SMALL);
        let diff = world.evaluate(RULE, &Scope::full(), rules_now());
        assert_eq!(counts(&diff), (10 * 20, 0, 10 * 20, 0));
        let naive = hashset_diff(&world, RULE, rules_now());
        assert_eq!(naive.insert, full_jobs(&world, &diff));
        let deleted: Vec<_> = diff.delete.iter().map(|d| (d.id, d.expected)).collect();
        assert_eq!(naive.delete, deleted);
        assert!(naive.update.is_empty());
    }

    #[test]
    fn one_joining_computer_is_evaluated_alone_and_matches_the_full_evaluation() {
        let (before, after) = join_one_worlds(SMALL);
        let joined = computer_id(SMALL.computers + 1);
        // Told which computer joined, and comparing the worlds: the same scope.
        let told = RuleEvent::ComputerGroupsChanged {
            computers: Some(vec![joined]),
        };
        let compared = RuleEvent::ComputerGroupsChanged { computers: None };
        let scopes = scopes_for(&told, &before, &after);
        assert_eq!(scopes, BTreeMap::from([(RULE, Scope::computers([joined]))]));
        assert_eq!(scopes_for(&compared, &before, &after), scopes);
        let incremental = after.evaluate(RULE, &scopes[&RULE], rules_now());
        let full = after.evaluate(RULE, &Scope::full(), rules_now());
        assert_eq!(incremental.insert.len(), 20);
        assert!(incremental.insert.iter().all(|job| job.computer == joined));
        assert_eq!(incremental.insert, full.insert);
        assert!(full.update.is_empty() && full.delete.is_empty());
    }
}
