//! Admin changes re-evaluate rules incrementally, reading only the part of the world they
//! concern: for random worlds and changes, the jobs after the server's incremental re-evaluation
//! are those a full re-evaluation of every rule on the whole world gives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use admin_support::{noon, Api};
use axum::http::StatusCode;
use oco_core::engine::{Engine, EngineOptions};
use oco_core::model::{
    Assignment, Compatibility, ComputerGroupId, ComputerId, DeploymentRule, FamilyId, JobKind,
    JobSnapshot, JobState, Origin, PackageGroupId, PackageId, RuleId, UpgradeBehavior,
};
use oco_core::rules::{RuleEvent, RuleWorld, Scope};
use oco_core::store::{
    testkit, Change, ChangeSet, MemoryStore, NewComputer, NewRule, Page, RulePart, Store,
    StoreError,
};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A world to build, by indices (taken modulo what exists).
#[derive(Debug, Clone)]
struct Spec {
    /// Each computer: Linux (else Windows).
    computers: Vec<bool>,
    /// Each package: family, upgrade behaviour, a dependency on an earlier package, Windows only.
    packages: Vec<(usize, usize, Option<usize>, bool)>,
    /// Each computer group: a parent among the earlier ones, members.
    computer_groups: Vec<(Option<usize>, Vec<usize>)>,
    /// Each package group: a parent among the earlier ones, members in order.
    package_groups: Vec<(Option<usize>, Vec<usize>)>,
    /// Each rule: computer group, package group, enabled.
    rules: Vec<(usize, usize, bool)>,
    /// Installed (computer, package) pairs.
    assignments: Vec<(usize, usize)>,
}

/// An admin change, by indices.
#[derive(Debug, Clone)]
enum Event {
    ComputerMembers(usize, Vec<usize>),
    ComputerParent(usize, Option<usize>),
    PackageMembers(usize, Vec<usize>),
    PackageParent(usize, Option<usize>),
    RuleEdit(usize, usize, usize, bool),
    RuleDelete(usize),
    RuleCreate(usize, usize, bool),
}

fn spec() -> impl Strategy<Value = Spec> {
    let indices = || prop::collection::vec(0_usize..8, 0..4);
    (
        prop::collection::vec(any::<bool>(), 2..6),
        prop::collection::vec(
            (
                0_usize..3,
                0_usize..3,
                prop::option::of(0_usize..8),
                any::<bool>(),
            ),
            2..6,
        ),
        prop::collection::vec((prop::option::of(0_usize..8), indices()), 1..5),
        prop::collection::vec((prop::option::of(0_usize..8), indices()), 1..4),
        prop::collection::vec((0_usize..8, 0_usize..8, any::<bool>()), 1..4),
        prop::collection::vec((0_usize..8, 0_usize..8), 0..6),
    )
        .prop_map(
            |(computers, packages, computer_groups, package_groups, rules, assignments)| Spec {
                computers,
                packages,
                computer_groups,
                package_groups,
                rules,
                assignments,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    let indices = || prop::collection::vec(0_usize..8, 0..5);
    prop_oneof![
        (0_usize..8, indices()).prop_map(|(g, m)| Event::ComputerMembers(g, m)),
        (0_usize..8, prop::option::of(0_usize..8)).prop_map(|(g, p)| Event::ComputerParent(g, p)),
        (0_usize..8, indices()).prop_map(|(g, m)| Event::PackageMembers(g, m)),
        (0_usize..8, prop::option::of(0_usize..8)).prop_map(|(g, p)| Event::PackageParent(g, p)),
        (0_usize..8, 0_usize..8, 0_usize..8, any::<bool>())
            .prop_map(|(r, c, p, e)| Event::RuleEdit(r, c, p, e)),
        (0_usize..8).prop_map(Event::RuleDelete),
        (0_usize..8, 0_usize..8, any::<bool>()).prop_map(|(c, p, e)| Event::RuleCreate(c, p, e)),
    ]
}

/// The ids of a built world.
#[derive(Debug, Clone)]
struct Ids {
    computers: Vec<ComputerId>,
    packages: Vec<PackageId>,
    computer_groups: Vec<ComputerGroupId>,
    package_groups: Vec<PackageGroupId>,
    rules: Vec<RuleId>,
}

fn pick<T: Copy>(items: &[T], index: usize) -> T {
    items[index % items.len()]
}

fn picks<T: Copy + Ord>(items: &[T], indices: &[usize]) -> Vec<T> {
    let mut out: Vec<T> = indices.iter().map(|&i| pick(items, i)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A rule as both sides create it.
fn rule(n: usize, computer_group: ComputerGroupId, package_group: PackageGroupId) -> NewRule {
    NewRule::new(
        testkit::name(&format!("rule {n}")),
        computer_group,
        package_group,
        noon(),
    )
}

/// Builds `spec` in `store` and evaluates every rule once, as a server that was up to date.
fn build(store: &dyn Store, spec: &Spec) -> Ids {
    let computers: Vec<ComputerId> = spec
        .computers
        .iter()
        .enumerate()
        .map(|(i, &linux)| {
            store
                .create_computer(NewComputer {
                    hostname: testkit::name(&format!("pc{i}")),
                    os: if linux { "Linux" } else { "Windows" }.into(),
                    os_version: String::new(),
                    architecture: String::new(),
                    macs: vec![],
                })
                .unwrap()
                .id
        })
        .collect();
    let families: Vec<FamilyId> = (0..3)
        .map(|f| {
            store
                .create_family(testkit::name(&format!("f{f}")))
                .unwrap()
                .id
        })
        .collect();
    let mut packages: Vec<PackageId> = Vec::new();
    for (i, &(family, upgrade, dependency, windows_only)) in spec.packages.iter().enumerate() {
        let dependencies = match dependency {
            Some(d) if !packages.is_empty() => vec![pick(&packages, d)],
            _ => vec![],
        };
        let mut package = testkit::package(pick(&families, family), &format!("{i}"), dependencies);
        package.upgrade_behavior = [
            UpgradeBehavior::KeepOthers,
            UpgradeBehavior::ImplicitRemove,
            UpgradeBehavior::ExplicitUninstall,
        ][upgrade];
        package.compatibility = Compatibility {
            os: if windows_only {
                vec!["Windows".into()]
            } else {
                vec![]
            },
            ..Compatibility::default()
        };
        packages.push(store.create_package(package).unwrap().id);
    }
    let mut computer_groups: Vec<ComputerGroupId> = Vec::new();
    for (i, (parent, members)) in spec.computer_groups.iter().enumerate() {
        let parent = parent.filter(|_| i > 0).map(|p| pick(&computer_groups, p));
        let group = store
            .create_computer_group(testkit::name(&format!("cg{i}")), parent)
            .unwrap()
            .id;
        store
            .set_computer_group_members(group, &picks(&computers, members))
            .unwrap();
        computer_groups.push(group);
    }
    let mut package_groups: Vec<PackageGroupId> = Vec::new();
    for (i, (parent, members)) in spec.package_groups.iter().enumerate() {
        let parent = parent.filter(|_| i > 0).map(|p| pick(&package_groups, p));
        let group = store
            .create_package_group(testkit::name(&format!("pg{i}")), parent)
            .unwrap()
            .id;
        let mut list: Vec<PackageId> = Vec::new();
        for &m in members {
            let package = pick(&packages, m);
            if !list.contains(&package) {
                list.push(package);
            }
        }
        store.set_package_group_members(group, &list).unwrap();
        package_groups.push(group);
    }
    let mut changes = Vec::new();
    for (i, &(computer, package)) in spec.assignments.iter().enumerate() {
        changes.push(Change::UpsertAssignment {
            assignment: Assignment {
                computer: pick(&computers, computer),
                package: pick(&packages, package),
                installed_at: testkit::at(i64::try_from(i).unwrap()),
                job: None,
            },
        });
    }
    store.apply(&ChangeSet { changes }).unwrap();
    let rules: Vec<RuleId> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(n, &(cg, pg, enabled))| {
            let rule = NewRule {
                enabled,
                ..rule(n, pick(&computer_groups, cg), pick(&package_groups, pg))
            };
            store.create_rule(rule).unwrap().id
        })
        .collect();
    evaluate_fully(store, &rules);
    Ids {
        computers,
        packages,
        computer_groups,
        package_groups,
        rules,
    }
}

/// Evaluates `rules` in full on the whole world and applies each diff.
fn evaluate_fully(store: &dyn Store, rules: &[RuleId]) {
    for &rule in rules {
        let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        let diff = world.evaluate(rule, &Scope::full(), noon());
        store.apply(&diff.into_change_set()).unwrap();
    }
}

/// The change through the admin API: the status.
async fn send(api: &Api, ids: &Ids, event: &Event) -> StatusCode {
    let (status, reply): (StatusCode, Value) = match event {
        Event::ComputerMembers(g, members) => {
            let g = pick(&ids.computer_groups, *g);
            api.put(
                &format!("/computer-groups/{g}/members"),
                json!({"members": picks(&ids.computers, members)}),
            )
            .await
        }
        Event::ComputerParent(g, parent) => {
            let g = pick(&ids.computer_groups, *g);
            let parent = parent.map(|p| pick(&ids.computer_groups, p));
            api.put(
                &format!("/computer-groups/{g}/parent"),
                json!({ "parent": parent }),
            )
            .await
        }
        Event::PackageMembers(g, members) => {
            let g = pick(&ids.package_groups, *g);
            api.put(
                &format!("/package-groups/{g}/members"),
                json!({"members": package_list(&ids.packages, members)}),
            )
            .await
        }
        Event::PackageParent(g, parent) => {
            let g = pick(&ids.package_groups, *g);
            let parent = parent.map(|p| pick(&ids.package_groups, p));
            api.put(
                &format!("/package-groups/{g}/parent"),
                json!({ "parent": parent }),
            )
            .await
        }
        Event::RuleEdit(r, cg, pg, enabled) => {
            let r = pick(&ids.rules, *r);
            api.patch(
                &format!("/rules/{r}"),
                json!({
                    "computer_group": pick(&ids.computer_groups, *cg),
                    "package_group": pick(&ids.package_groups, *pg),
                    "enabled": enabled,
                }),
            )
            .await
        }
        Event::RuleDelete(r) => {
            let r = pick(&ids.rules, *r);
            api.delete(&format!("/rules/{r}")).await
        }
        Event::RuleCreate(cg, pg, enabled) => {
            api.post(
                "/rules",
                json!({
                    "name": format!("rule {}", ids.rules.len()),
                    "computer_group": pick(&ids.computer_groups, *cg),
                    "package_group": pick(&ids.package_groups, *pg),
                    "enabled": enabled,
                }),
            )
            .await
        }
    };
    // Refusals are for cycles and new family conflicts only; anything else is a failure.
    assert!(
        status.is_success() || status == StatusCode::CONFLICT || status == StatusCode::BAD_REQUEST,
        "{event:?}: {status} {reply}"
    );
    status
}

fn package_list(packages: &[PackageId], indices: &[usize]) -> Vec<PackageId> {
    let mut list: Vec<PackageId> = Vec::new();
    for &i in indices {
        let package = pick(packages, i);
        if !list.contains(&package) {
            list.push(package);
        }
    }
    list
}

/// The same change by store calls, then every rule (before and after) re-evaluated in full.
fn apply_and_evaluate_fully(store: &dyn Store, ids: &Ids, event: &Event) {
    let mut rules: Vec<RuleId> = store
        .list_rules(Page::first(usize::MAX))
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let (created, _) = apply_change(store, ids, event).unwrap();
    rules.extend(created);
    evaluate_fully(store, &rules);
}

/// The change by store calls, without re-evaluating: the rule created, if any, and the event
/// the server re-evaluates after it.
fn apply_change(
    store: &dyn Store,
    ids: &Ids,
    event: &Event,
) -> Result<(Option<RuleId>, RuleEvent), StoreError> {
    let groups = RuleEvent::ComputerGroupsChanged { computers: None };
    Ok(match event {
        Event::ComputerMembers(g, members) => {
            store.set_computer_group_members(
                pick(&ids.computer_groups, *g),
                &picks(&ids.computers, members),
            )?;
            (None, groups)
        }
        Event::ComputerParent(g, parent) => {
            store.set_computer_group_parent(
                pick(&ids.computer_groups, *g),
                parent.map(|p| pick(&ids.computer_groups, p)),
            )?;
            (None, groups)
        }
        Event::PackageMembers(g, members) => {
            store.set_package_group_members(
                pick(&ids.package_groups, *g),
                &package_list(&ids.packages, members),
            )?;
            (None, RuleEvent::PackageGroupsChanged)
        }
        Event::PackageParent(g, parent) => {
            store.set_package_group_parent(
                pick(&ids.package_groups, *g),
                parent.map(|p| pick(&ids.package_groups, p)),
            )?;
            (None, RuleEvent::PackageGroupsChanged)
        }
        Event::RuleEdit(r, cg, pg, enabled) => {
            let mut rule = store.rule(pick(&ids.rules, *r))?;
            rule.computer_group = pick(&ids.computer_groups, *cg);
            rule.package_group = pick(&ids.package_groups, *pg);
            rule.enabled = *enabled;
            store.update_rule(&rule)?;
            (None, RuleEvent::RuleChanged { rule: rule.id })
        }
        Event::RuleDelete(r) => {
            let rule = pick(&ids.rules, *r);
            store.delete_rule(rule)?;
            (None, RuleEvent::RuleChanged { rule })
        }
        Event::RuleCreate(cg, pg, enabled) => {
            let rule = NewRule {
                enabled: *enabled,
                ..rule(
                    ids.rules.len(),
                    pick(&ids.computer_groups, *cg),
                    pick(&ids.package_groups, *pg),
                )
            };
            let id = store.create_rule(rule)?.id;
            (Some(id), RuleEvent::RuleChanged { rule: id })
        }
    })
}

/// What a job is, without its id: keyed by origin, computer, package and kind.
type JobKey = (Origin, ComputerId, PackageId, JobKind);
type JobValue = (JobState, u32, bool, u32, JobSnapshot);

fn jobs(store: &dyn Store) -> BTreeMap<JobKey, JobValue> {
    store
        .list_jobs(&Default::default(), Page::first(usize::MAX))
        .unwrap()
        .into_iter()
        .map(|job| {
            (
                (job.origin, job.computer, job.package, job.kind),
                (
                    job.state,
                    job.sequence,
                    job.orphaned,
                    job.attempt,
                    job.snapshot,
                ),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// For every world and change: the jobs after the server's incremental re-evaluation equal
    /// those of a full re-evaluation of every rule, evaluating any rule again finds nothing to
    /// do, and a rule's statistics report the conflicts a full evaluation finds.
    #[test]
    fn incremental_equals_full(spec in spec(), event in event()) {
        let incremental: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let full = MemoryStore::new();
        let ids = build(incremental.as_ref(), &spec);
        let same = build(&full, &spec);
        prop_assert_eq!(&ids.rules, &same.rules);
        prop_assert_eq!(jobs(incremental.as_ref()), jobs(&full));

        let api = Api::on(incremental.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = runtime.block_on(send(&api, &ids, &event));
        if status.is_success() {
            apply_and_evaluate_fully(&full, &ids, &event);
        }
        prop_assert_eq!(jobs(incremental.as_ref()), jobs(&full), "{:?}", event);

        let world = RuleWorld::from_snapshot(&incremental.rule_snapshot().unwrap());
        for rule in incremental.list_rules(Page::first(usize::MAX)).unwrap() {
            let diff = world.evaluate(rule.id, &Scope::full(), noon());
            prop_assert!(diff.is_empty(), "{:?} left work for rule {}: {:?}", event, rule.id, diff);
            // Statistics read conflicts only where one is possible: the same as a full
            // evaluation reports.
            let (status, statistics) =
                runtime.block_on(api.get(&format!("/rules/{}/statistics", rule.id)));
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(
                &statistics["conflicts"],
                &serde_json::to_value(&diff.conflicts).unwrap(),
                "rule {}", rule.id
            );
        }
    }

    /// For every world, change and chunk size: re-evaluating after the change a few computers at
    /// a time (as the server does for a rule of many computers), and evaluating every rule in
    /// full a few computers at a time, give the jobs of one evaluation of every rule on the
    /// whole world.
    #[test]
    fn chunked_equals_whole(spec in spec(), event in event(), chunk in 1_usize..4) {
        let [chunked, per_rule, whole] = [MemoryStore::new(), MemoryStore::new(), MemoryStore::new()];
        let ids = build(&chunked, &spec);
        build(&per_rule, &spec);
        build(&whole, &spec);
        let rules_before = chunked.list_rules(Page::first(usize::MAX)).unwrap();

        // Every computer, and every job of every rule: what a rule change of the server reads.
        let part = RulePart::computers(ids.computers.iter().copied())
            .with_rule_jobs(ids.rules.iter().copied());
        let chunk = NonZeroUsize::new(chunk).unwrap();
        let engine = |store| Engine::with_options(store, EngineOptions::default().with_chunk_computers(chunk));
        let before = engine(&chunked).rule_world(Some(&part.clone().without_jobs())).unwrap();
        let Ok((created, rule_event)) = apply_change(&chunked, &ids, &event) else {
            // A change the store refuses (a group made its own ancestor).
            return Ok(());
        };
        let part = part.with_rule_jobs(created);
        engine(&chunked).reevaluate_in(&rule_event, Some(&part), &before, noon()).unwrap();

        apply_change(&per_rule, &ids, &event).unwrap();
        let mut every: BTreeMap<RuleId, DeploymentRule> =
            rules_before.into_iter().map(|rule| (rule.id, rule)).collect();
        every.extend(
            per_rule
                .list_rules(Page::first(usize::MAX))
                .unwrap()
                .into_iter()
                .map(|rule| (rule.id, rule)),
        );
        for rule in every.values() {
            engine(&per_rule).evaluate_rule(rule, noon()).unwrap();
        }

        apply_and_evaluate_fully(&whole, &ids, &event);
        prop_assert_eq!(jobs(&chunked), jobs(&whole), "re-evaluated, {:?}", event);
        prop_assert_eq!(jobs(&per_rule), jobs(&whole), "evaluated, {:?}", event);
    }
}
