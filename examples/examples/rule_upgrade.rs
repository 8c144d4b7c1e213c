//! Rolling out an upgrade with a deployment rule, the safe way and the unsafe way, on the
//! in-memory store.
//!
//! Safe: the rule's package group holds Firefox 1; simulated agents poll (`plan`) and report
//! (`apply_report`) until both computers have it. Then the group's v1 is replaced by Firefox 2,
//! whose upgrade behaviour is implicit-remove: the rule's v1 jobs go, v2 jobs come, and each
//! successful v2 install removes the v1 assignment. Every report that changes assignments names
//! the computers to re-evaluate (`outcome.reevaluate`); the rule is re-evaluated for them through
//! `scopes_for` with `RuleEvent::AssignmentsChanged`, and settles (an empty diff).
//!
//! Unsafe: v1 and v2 both in the group. In OCO, v2's install removes v1, the rule reinstalls v1,
//! and so on forever. Here `RuleWorld::conflicts` lists the `Conflict::FamilyVersions` before
//! the rule is enabled (the server answers 409), and evaluation creates no Firefox job on the
//! computers concerned and reports the conflict instead.
//!
//! Run: `cargo run -p oco-examples --example rule_upgrade`

use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Europe::Berlin;
use oco_core::model::{
    Compatibility, Computer, ComputerGroupId, ComputerId, DeliveryPolicy, DeploymentRule, FamilyId,
    JobId, Name, PackageGroupId, PackageId, Payload, Procedure, Sha256Digest, UpgradeBehavior,
};
use oco_core::plan::plan;
use oco_core::report::{apply_report, AgentReport, ReportedState};
use oco_core::rules::{scopes_for, RuleDiff, RuleEvent, RuleWorld, Scope};
use oco_core::store::{MemoryStore, NewComputer, NewPackage, NewRule, Store};
use oco_core::Settings;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 24, 8, 0, 0)
        .single()
        .ok_or("no such time")?;
    println!("== The safe way: replace v1 by v2 in the package group ==\n");
    safe_upgrade(start)?;
    println!("\n== The unsafe way: v1 and v2 in one package group ==\n");
    unsafe_upgrade(start)?;
    Ok(())
}

fn safe_upgrade(start: DateTime<Utc>) -> Result<()> {
    let store = MemoryStore::new();
    let fleet = Fleet::new(&store)?;
    let computers = store.create_computer_group(Name::new("name", "office")?, None)?;
    store.set_computer_group_members(computers.id, &[fleet.pc1.id, fleet.pc2.id])?;
    let packages = store.create_package_group(Name::new("name", "browser")?, None)?;
    store.set_package_group_members(packages.id, &[fleet.v1])?;
    let before = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    let rule = store.create_rule(rule(computers.id, packages.id, true, start)?)?;

    // Rule created: evaluated fully.
    let mut now = start;
    println!(
        "{}  rule \"{}\" created with [Firefox 1]",
        clock(now),
        rule.name
    );
    let event = RuleEvent::RuleChanged { rule: rule.id };
    evaluate(&store, &fleet, &event, Some(before), now)?;
    poll_until_quiet(&store, &fleet, &mut now)?;

    // The upgrade: v1 leaves the group, v2 joins.
    now += Duration::hours(1);
    let before = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    store.set_package_group_members(packages.id, &[fleet.v2])?;
    println!(
        "\n{}  package group now [Firefox 2] (implicit-remove)",
        clock(now)
    );
    evaluate(
        &store,
        &fleet,
        &RuleEvent::PackageGroupsChanged,
        Some(before),
        now,
    )?;
    poll_until_quiet(&store, &fleet, &mut now)?;

    for pc in [&fleet.pc1, &fleet.pc2] {
        let (assignments, _) = store.assignments(pc.id)?;
        let installed: Vec<&str> = assignments.iter().map(|a| fleet.label(a.package)).collect();
        println!("{} has {installed:?}", pc.hostname);
    }
    Ok(())
}

fn unsafe_upgrade(start: DateTime<Utc>) -> Result<()> {
    let store = MemoryStore::new();
    let fleet = Fleet::new(&store)?;
    let computers = store.create_computer_group(Name::new("name", "office")?, None)?;
    store.set_computer_group_members(computers.id, &[fleet.pc1.id, fleet.pc2.id])?;
    let packages = store.create_package_group(Name::new("name", "browser")?, None)?;
    store.set_package_group_members(packages.id, &[fleet.v1, fleet.v2])?;
    // Created disabled: a disabled rule claims nothing, so it conflicts with nothing yet.
    let rule = store.create_rule(rule(computers.id, packages.id, false, start)?)?;
    println!(
        "rule \"{}\" created disabled with [Firefox 1, Firefox 2]",
        rule.name
    );

    // Enabling it: the server checks the world as it would be after the change.
    let mut world = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    println!("conflicts now: {:?}", world.conflicts());
    if let Some(resolved) = world.rules.get_mut(&rule.id) {
        resolved.rule.enabled = true;
    }
    let conflicts = world.conflicts();
    println!("conflicts once enabled (the server refuses to enable it, HTTP 409):");
    for conflict in &conflicts {
        println!("    {conflict:?}");
    }

    // Enabled anyway, as if the conflict had arisen later (a computer joining a second group,
    // say): no Firefox job on either computer, the conflict in the diff instead, and the agents
    // get nothing to uninstall and reinstall.
    let mut now = start + Duration::hours(1);
    let before = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    store.update_rule(&DeploymentRule {
        enabled: true,
        ..rule.clone()
    })?;
    println!("\n{}  rule enabled anyway", clock(now));
    let event = RuleEvent::RuleChanged { rule: rule.id };
    evaluate(&store, &fleet, &event, Some(before), now)?;
    poll_until_quiet(&store, &fleet, &mut now)?;
    Ok(())
}

/// Re-evaluates the rules that `event` concerns, given the world before the change (`None`: the
/// same as after, for events that name their computer), and applies the diffs.
fn evaluate(
    store: &MemoryStore,
    fleet: &Fleet,
    event: &RuleEvent,
    before: Option<RuleWorld>,
    now: DateTime<Utc>,
) -> Result<()> {
    let after = RuleWorld::from_snapshot(&store.rule_snapshot()?);
    let before = before.unwrap_or_else(|| after.clone());
    for (rule, scope) in scopes_for(event, &before, &after) {
        let diff = after.evaluate(rule, &scope, now);
        println!(
            "    re-evaluate rule {rule} for {}:",
            describe(&scope, store)
        );
        print_diff(&diff, fleet);
        store.apply(&diff.into_change_set())?;
    }
    Ok(())
}

/// Every computer polls every ten minutes, runs what it gets (download, execute, success) and
/// reports; a report that changes assignments re-evaluates the rules for that computer. Stops
/// when a round hands out nothing.
fn poll_until_quiet(store: &MemoryStore, fleet: &Fleet, now: &mut DateTime<Utc>) -> Result<()> {
    let settings = Settings::default();
    loop {
        *now += Duration::minutes(10);
        let mut delivered_any = false;
        for pc in [&fleet.pc1, &fleet.pc2] {
            let snapshot = store.planner_snapshot(pc.id)?;
            let plan = plan(&snapshot, *now, fleet.addr, &settings);
            let delivered: Vec<(JobId, String)> = plan
                .deliver
                .iter()
                .map(|d| {
                    let label = format!("{:?} {}", d.job.kind, fleet.label(d.job.package));
                    (d.job.id, label)
                })
                .collect();
            store.apply(&plan.changes)?;
            for (job, label) in delivered {
                delivered_any = true;
                println!(
                    "{}  {} polls: job {job} ({label})",
                    clock(*now),
                    pc.hostname
                );
                run_agent(store, fleet, pc.id, job, *now)?;
            }
        }
        if !delivered_any {
            println!("{}  nothing more to hand out", clock(*now));
            return Ok(());
        }
    }
}

/// An agent that downloads, executes and succeeds, a minute per step; after the final report,
/// the rules are re-evaluated for the computers whose assignments changed.
fn run_agent(
    store: &MemoryStore,
    fleet: &Fleet,
    computer: ComputerId,
    job: JobId,
    start: DateTime<Utc>,
) -> Result<()> {
    let steps = [
        (ReportedState::Downloading, None),
        (ReportedState::Executing, None),
        (ReportedState::Succeeded, Some(0)),
    ];
    for (minute, (state, return_code)) in (1..).zip(steps) {
        let now = start + Duration::minutes(minute);
        let snapshot = store.report_snapshot(job)?;
        let report = AgentReport {
            job,
            attempt: snapshot.job.attempt,
            state,
            return_code,
            download_progress: None,
            output: None,
        };
        let before = RuleWorld::from_snapshot(&store.rule_snapshot()?);
        let outcome = apply_report(&snapshot, computer, &report, now)?;
        store.apply(&outcome.changes)?;
        if state == ReportedState::Succeeded {
            let (assignments, _) = store.assignments(computer)?;
            let installed: Vec<&str> = assignments.iter().map(|a| fleet.label(a.package)).collect();
            println!(
                "{}      reports success; assignments {installed:?}",
                clock(now)
            );
        }
        for &computer in &outcome.reevaluate {
            let event = RuleEvent::AssignmentsChanged { computer };
            evaluate(store, fleet, &event, Some(before.clone()), now)?;
        }
    }
    Ok(())
}

/// Two Windows computers, Firefox 1 (keep others) and Firefox 2 (implicit-remove), and the
/// agents' address.
struct Fleet {
    pc1: Computer,
    pc2: Computer,
    v1: PackageId,
    v2: PackageId,
    addr: IpAddr,
}

impl Fleet {
    fn new(store: &MemoryStore) -> Result<Fleet> {
        let pc1 = store.create_computer(new_computer("pc1")?)?;
        let pc2 = store.create_computer(new_computer("pc2")?)?;
        let family = store.create_family(Name::new("name", "Firefox")?)?;
        let v1 = store.create_package(firefox(family.id, "1", UpgradeBehavior::KeepOthers)?)?;
        let v2 = store.create_package(firefox(family.id, "2", UpgradeBehavior::ImplicitRemove)?)?;
        Ok(Fleet {
            pc1,
            pc2,
            v1: v1.id,
            v2: v2.id,
            addr: [10, 1, 0, 10].into(),
        })
    }

    fn label(&self, package: PackageId) -> &'static str {
        if package == self.v1 {
            "Firefox 1"
        } else if package == self.v2 {
            "Firefox 2"
        } else {
            "another package"
        }
    }

    fn hostname(&self, computer: ComputerId) -> &str {
        if computer == self.pc1.id {
            self.pc1.hostname.as_str()
        } else if computer == self.pc2.id {
            self.pc2.hostname.as_str()
        } else {
            "another computer"
        }
    }
}

fn print_diff(diff: &RuleDiff, fleet: &Fleet) {
    if diff.is_empty() && diff.conflicts.is_empty() {
        println!("        nothing to change");
    }
    for job in &diff.insert {
        println!(
            "        insert {:?} {} on {} ({:?}, sequence {})",
            job.kind,
            fleet.label(job.package),
            fleet.hostname(job.computer),
            job.state,
            job.sequence
        );
    }
    for update in &diff.update {
        let job = &update.job;
        println!(
            "        update job {} ({:?} {} on {}) to {:?}",
            job.id,
            job.kind,
            fleet.label(job.package),
            fleet.hostname(job.computer),
            job.state
        );
    }
    for deletion in &diff.delete {
        println!(
            "        delete job {} of {}",
            deletion.id,
            fleet.hostname(deletion.computer)
        );
    }
    for orphan in &diff.orphan {
        println!("        orphan job {}", orphan.job.id);
    }
    for conflict in &diff.conflicts {
        println!("        conflict {conflict:?}");
    }
}

fn describe(scope: &Scope, store: &MemoryStore) -> String {
    match &scope.computers {
        None => "every computer".to_owned(),
        Some(computers) => computers
            .iter()
            .map(|&id| {
                store
                    .computer(id)
                    .map_or_else(|_| id.to_string(), |c| c.hostname.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn clock(now: DateTime<Utc>) -> String {
    now.with_timezone(&Berlin).format("%H:%M").to_string()
}

fn rule(
    computer_group: ComputerGroupId,
    package_group: PackageGroupId,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<NewRule> {
    let rule = NewRule::new(
        Name::new("name", "browser for the office")?,
        computer_group,
        package_group,
        now,
    )
    .with_policy(DeliveryPolicy::new(Berlin));
    Ok(if enabled { rule } else { rule.disabled() })
}

fn new_computer(hostname: &str) -> Result<NewComputer> {
    Ok(NewComputer {
        hostname: Name::new("hostname", hostname)?,
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec![],
    })
}

fn firefox(family: FamilyId, version: &str, upgrade: UpgradeBehavior) -> Result<NewPackage> {
    let install = Procedure::new(format!("\"Firefox Setup {version}.exe\" /S"));
    let uninstall =
        Procedure::new("\"C:\\Program Files\\Mozilla Firefox\\uninstall\\helper.exe\" /S");
    Ok(
        NewPackage::new(family, Name::new("version", version)?, install)
            .with_uninstall(uninstall)
            .with_payload(Payload::new(4096, Sha256Digest([0x5a; 32])))
            .with_upgrade_behavior(upgrade)
            .with_compatibility(Compatibility {
                os: vec!["Windows".into()],
                ..Compatibility::default()
            }),
    )
}
