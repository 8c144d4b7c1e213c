//! An administrator's operations through the engine's public API, on the in-memory store: each
//! operation's outcome, the undo and repair after a failed re-evaluation, the retry of a lost
//! race, and the refusals that write nothing.

// Test fixtures panic on bad values by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use oco_core::chrono::{DateTime, TimeZone, Utc};
use oco_core::deploy::{ContainerSettings, DeployRequest};
use oco_core::engine::{Engine, EngineError, EngineOptions, Undo};
use oco_core::model::{
    ComputerGroupId, ComputerId, DeliveryPolicy, JobState, Name, PackageGroupId, PackageId,
    Procedure, Revision, UpgradeBehavior,
};
use oco_core::rules::Conflict;
use oco_core::store::testkit::dump;
use oco_core::store::{
    AgentCredentials, Change, ChangeSet, FailingStore, JobFilter, MemoryStore, NewComputer,
    NewPackage, NewRule, Page, Store, StoreResult,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

/// What [`world`] made.
struct World {
    pcs: [ComputerId; 2],
    office: ComputerGroupId,
    tools: PackageGroupId,
    /// `editor` 1 and 2, which remove each other's versions.
    editor: [PackageId; 2],
    /// `viewer`, another family, in `tools`.
    viewer: PackageId,
    /// `notes`, a third family, in no group.
    notes: PackageId,
}

/// Two computers, `pc1` in group `office`; a rule `tools` giving `office` the packages of
/// `tools` (`editor` 1 and `viewer`), evaluated.
fn world(store: &dyn Store) -> World {
    let engine = Engine::new(store);
    let pcs = ["pc1", "pc2"].map(|host| {
        let computer = NewComputer::new(Name::hostname("hostname", host).unwrap());
        store.create_computer(computer).unwrap().id
    });
    let family = store.create_family(name("editor")).unwrap();
    let editor = ["1", "2"].map(|version| {
        let package = NewPackage::new(family.id, name(version), Procedure::new("setup"))
            .with_upgrade_behavior(UpgradeBehavior::ImplicitRemove);
        store.create_package(package).unwrap().id
    });
    let other = store.create_family(name("viewer")).unwrap();
    let viewer = store
        .create_package(NewPackage::new(other.id, name("1"), Procedure::new("x")))
        .unwrap()
        .id;
    let notes = store.create_family(name("notes")).unwrap();
    let notes = store
        .create_package(NewPackage::new(notes.id, name("1"), Procedure::new("x")))
        .unwrap()
        .id;
    let office = store.create_computer_group(name("office"), None).unwrap();
    store
        .set_computer_group_members(office.id, &[pcs[0]])
        .unwrap();
    let tools = store.create_package_group(name("tools"), None).unwrap();
    store
        .set_package_group_members(tools.id, &[editor[0], viewer])
        .unwrap();
    let rule = store
        .create_rule(NewRule::new(name("tools"), office.id, tools.id, now()))
        .unwrap();
    engine.evaluate_rule(&rule, now()).unwrap();
    World {
        pcs,
        office: office.id,
        tools: tools.id,
        editor,
        viewer,
        notes,
    }
}

/// The jobs of `computer`, as (package, state).
fn jobs_of(store: &dyn Store, computer: ComputerId) -> Vec<(PackageId, JobState)> {
    let filter = JobFilter {
        computer: Some(computer),
        ..JobFilter::default()
    };
    store
        .list_jobs(&filter, Page::first(100))
        .unwrap()
        .into_iter()
        .map(|job| (job.package, job.state))
        .collect()
}

#[test]
fn computers_are_created_updated_and_deleted_with_their_rules_evaluated() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    assert_eq!(jobs_of(engine.store(), w.pcs[0]).len(), 2);

    let created = engine
        .create_computer(
            NewComputer::new(Name::hostname("hostname", "pc3").unwrap()),
            now(),
        )
        .unwrap();
    assert!(created.evaluations.is_empty(), "in no group: no rule");
    assert_eq!(
        engine.store().computer(created.value.id).unwrap(),
        created.value
    );

    let mut pc = engine.store().computer(w.pcs[0]).unwrap();
    pc.architecture = "arm64".into();
    let updated = engine.update_computer(pc.clone(), now()).unwrap();
    assert_eq!(updated.value, pc);
    assert_eq!(updated.evaluations.len(), 1, "the office's rule");
    assert_eq!(
        engine.store().computer(pc.id).unwrap().architecture,
        "arm64"
    );

    // A container job pending on pc1, besides the rule's.
    let container = ContainerSettings::new(name("viewer"), now(), DeliveryPolicy::default());
    let deployed = engine
        .deploy(
            &DeployRequest::new(container)
                .with_computers([w.pcs[1]])
                .with_packages([w.viewer]),
            now(),
        )
        .unwrap();
    let deleted = engine.delete_computer(w.pcs[1], now()).unwrap();
    assert_eq!(deleted.unfinished_jobs, [deployed.jobs[0].id]);
    assert!(engine.store().computer(w.pcs[1]).is_err());
    let deleted = engine.delete_computer(w.pcs[0], now()).unwrap();
    assert_eq!(deleted.unfinished_jobs.len(), 2, "the rule's two jobs");
    assert_eq!(deleted.evaluations.len(), 1);
    assert!(matches!(
        engine.delete_computer(w.pcs[0], now()),
        Err(EngineError::Store(_))
    ));
}

#[test]
fn an_agent_reset_forgets_its_key_and_replay_guard() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let keyed = AgentCredentials {
        agent_key: Some("agent-key".into()),
        server_key: Some("server-key".into()),
        last_hello: Some(1_700_000_000.5),
        ..AgentCredentials::default()
    };
    engine.store().set_credentials(w.pcs[0], &keyed).unwrap();
    let reset = engine.reset_agent(w.pcs[0]).unwrap();
    assert_eq!(reset.agent_key, None);
    assert_eq!(reset.previous_agent_key.as_deref(), Some("agent-key"));
    assert_eq!(reset.server_key.as_deref(), Some("server-key"));
    assert_eq!(reset.last_hello, None);
    assert_eq!(engine.store().credentials(w.pcs[0]).unwrap(), reset);
    assert!(engine.reset_agent(ComputerId(99)).is_err());
}

#[test]
fn an_assignment_set_and_removed_by_hand_re_evaluates_the_computers_rules() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let assigned = engine.assign(w.pcs[0], w.viewer, now()).unwrap();
    assert_eq!(assigned.value.package, w.viewer);
    assert_eq!(assigned.value.job, None);
    assert_eq!(assigned.evaluations.len(), 1);
    assert_eq!(assigned.evaluations[0].updated, 1);
    assert_eq!(
        jobs_of(engine.store(), w.pcs[0]),
        [
            (w.editor[0], JobState::Waiting),
            (w.viewer, JobState::AlreadyInstalled)
        ],
        "the rule's viewer job has nothing left to do"
    );

    let removed = engine.unassign(w.pcs[0], w.viewer, now()).unwrap();
    assert_eq!(removed.value, assigned.value);
    assert_eq!(removed.evaluations[0].updated, 1);
    assert_eq!(
        jobs_of(engine.store(), w.pcs[0]),
        [
            (w.editor[0], JobState::Waiting),
            (w.viewer, JobState::Waiting)
        ],
        "needed again"
    );
    assert!(engine.store().assignments(w.pcs[0]).unwrap().0.is_empty());

    assert!(matches!(
        engine.unassign(w.pcs[0], w.viewer, now()),
        Err(EngineError::NotAssigned { computer, package }) if computer == w.pcs[0] && package == w.viewer
    ));
    assert!(matches!(
        engine.assign(w.pcs[0], PackageId(99), now()),
        Err(EngineError::Store(_))
    ));
}

#[test]
fn group_members_and_parents_move_computers_in_and_out_of_rules() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let joined = engine
        .set_computer_group_members(w.office, &[w.pcs[0], w.pcs[1], w.pcs[1]], now())
        .unwrap();
    assert_eq!(joined.evaluations[0].inserted, 2);
    assert_eq!(jobs_of(engine.store(), w.pcs[1]).len(), 2);
    let groups = engine.store().computer_groups().unwrap();
    assert_eq!(groups[0].1, [w.pcs[0], w.pcs[1]], "each once");

    // The office moves under a new group: nobody's rules change.
    let site = engine.create_computer_group(name("site"), None).unwrap();
    let moved = engine
        .set_computer_group_parent(w.office, Some(site.id), now())
        .unwrap();
    assert!(moved
        .evaluations
        .iter()
        .all(|e| e.inserted + e.deleted == 0));
    // A cycle is refused, naming the parent.
    let refused = engine.set_computer_group_parent(site.id, Some(w.office), now());
    assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "parent"));
    let refused = engine.set_computer_group_members(w.office, &[ComputerId(99)], now());
    assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "members"));

    let left = engine
        .set_computer_group_members(w.office, &[], now())
        .unwrap();
    assert_eq!(left.evaluations[0].deleted, 4);
    assert!(jobs_of(engine.store(), w.pcs[1]).is_empty());

    // A package group emptied retires the rule's jobs; moving it is no change of packages.
    let base = engine.create_package_group(name("base"), None).unwrap();
    engine
        .set_computer_group_members(w.office, &[w.pcs[0]], now())
        .unwrap();
    engine
        .set_package_group_parent(w.tools, Some(base.id), now())
        .unwrap();
    let emptied = engine
        .set_package_group_members(w.tools, &[], now())
        .unwrap();
    assert_eq!(emptied.evaluations[0].deleted, 2);
    assert!(matches!(
        engine.set_package_group_members(PackageGroupId(99), &[], now()),
        Err(EngineError::Store(_))
    ));
}

#[test]
fn a_package_group_change_that_adds_a_family_conflict_is_refused_and_writes_nothing() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let before = dump(engine.store());
    let refused =
        engine.set_package_group_members(w.tools, &[w.editor[0], w.editor[1], w.viewer], now());
    let Err(EngineError::FamilyConflicts(conflicts)) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert!(matches!(
        &conflicts[..],
        [Conflict::FamilyVersions { computer, packages, .. }]
            if *computer == w.pcs[0] && *packages == w.editor.to_vec()
    ));
    assert_eq!(dump(engine.store()), before, "nothing written");

    // Moving a group holding editor 2 under the rule's group is refused alike.
    let more = engine.create_package_group(name("more"), None).unwrap();
    engine
        .set_package_group_members(more.id, &[w.editor[1]], now())
        .unwrap();
    let before = dump(engine.store());
    let refused = engine.set_package_group_parent(more.id, Some(w.tools), now());
    assert!(matches!(refused, Err(EngineError::FamilyConflicts(_))));
    assert_eq!(dump(engine.store()), before);
}

#[test]
fn packages_are_created_and_updated_with_their_references_checked() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let family = engine.create_family(name("runtime")).unwrap();
    let refused = engine.create_package(NewPackage::new(
        oco_core::model::FamilyId(99),
        name("1"),
        Procedure::new("x"),
    ));
    assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "family"));
    let runtime = engine
        .create_package(
            NewPackage::new(family.id, name("1"), Procedure::new("x"))
                .with_dependencies(vec![w.viewer]),
        )
        .unwrap();

    // The viewer may not depend on what depends on it, nor on itself, nor move family.
    let mut viewer = engine.store().package(w.viewer).unwrap();
    viewer.dependencies = vec![runtime.id];
    let refused = engine.update_package(viewer.clone(), now());
    assert!(
        matches!(refused, Err(EngineError::DependencyCycle(_))),
        "{refused:?}"
    );
    viewer.dependencies = vec![w.viewer];
    let refused = engine.update_package(viewer.clone(), now());
    assert!(matches!(refused, Err(EngineError::Invalid(error)) if error.field == "dependencies"));
    viewer.dependencies = Vec::new();
    viewer.family = family.id;
    let refused = engine.update_package(viewer, now());
    assert!(matches!(refused, Err(EngineError::Invalid(error)) if error.field == "family"));

    // An edit reaches the rule's job; the payload is set_payload's, not update_package's.
    let mut viewer = engine.store().package(w.viewer).unwrap();
    viewer.install.command = "viewer.exe /S".into();
    viewer.payload = Some(oco_core::model::Payload::new(
        1,
        oco_core::model::Sha256Digest([1; 32]),
    ));
    let updated = engine.update_package(viewer, now()).unwrap();
    assert_eq!(updated.value.payload, None);
    assert_eq!(updated.evaluations.len(), 1);
    assert_eq!(updated.evaluations[0].updated, 1);

    let payload = oco_core::model::Payload::new(10, oco_core::model::Sha256Digest([2; 32]));
    let first = engine.set_payload(w.viewer, Some(payload), now()).unwrap();
    assert_eq!(first.evaluations.len(), 1, "the jobs now download");
    let digest = oco_core::model::Payload::new(11, oco_core::model::Sha256Digest([3; 32]));
    let second = engine.set_payload(w.viewer, Some(digest), now()).unwrap();
    assert!(
        second.evaluations.is_empty(),
        "a new digest is the package's alone"
    );
    assert_eq!(
        engine.store().package(w.viewer).unwrap().payload,
        Some(digest)
    );
}

#[test]
fn rules_are_created_edited_disabled_evaluated_and_deleted() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let everyone = engine
        .create_computer_group(name("everyone"), None)
        .unwrap();
    engine
        .set_computer_group_members(everyone.id, &w.pcs, now())
        .unwrap();
    let notes = engine.create_package_group(name("notes"), None).unwrap();
    engine
        .set_package_group_members(notes.id, &[w.notes], now())
        .unwrap();

    let refused = engine.create_rule(
        NewRule::new(name("bad"), ComputerGroupId(99), notes.id, now()),
        now(),
    );
    assert!(
        matches!(refused, Err(EngineError::Reference { field, .. }) if field == "computer_group")
    );
    let rule = engine
        .create_rule(
            NewRule::new(name("notes"), everyone.id, notes.id, now()),
            now(),
        )
        .unwrap();
    let of = |evaluations: &[oco_core::engine::Evaluated], rule| {
        evaluations.iter().find(|e| e.rule == rule).unwrap().clone()
    };
    assert_eq!(of(&rule.evaluations, rule.value.id).inserted, 2);
    let rule = rule.value;

    let disabled = engine.set_rule_enabled(rule.id, false, now()).unwrap();
    assert!(!disabled.value.enabled);
    assert!(!engine.store().rule(rule.id).unwrap().enabled);
    let mut narrowed = disabled.value.clone();
    narrowed.enabled = true;
    narrowed.computer_group = w.office;
    let edited = engine.update_rule(narrowed.clone(), now()).unwrap();
    assert_eq!(edited.value, narrowed);
    assert_eq!(
        of(&edited.evaluations, rule.id).deleted,
        1,
        "pc2 left the rule"
    );

    let statistics = engine.rule_statistics(rule.id, now()).unwrap();
    assert!(statistics.conflicts.is_empty());
    assert_eq!(engine.evaluate_rule(&narrowed, now()).unwrap().inserted, 0);

    let evaluations = engine.delete_rule(rule.id, now()).unwrap();
    assert_eq!(of(&evaluations, rule.id).deleted, 1);
    assert!(engine.store().rule(rule.id).is_err());
    assert!(matches!(
        engine.delete_rule(rule.id, now()),
        Err(EngineError::Store(_))
    ));
}

#[test]
fn a_rule_that_adds_a_family_conflict_is_refused_as_rule_0_and_writes_nothing() {
    let engine = Engine::new(MemoryStore::new());
    let w = world(engine.store());
    let newer = engine.create_package_group(name("newer"), None).unwrap();
    engine
        .set_package_group_members(newer.id, &[w.editor[1]], now())
        .unwrap();
    let before = dump(engine.store());
    let refused = engine.create_rule(
        NewRule::new(name("newer"), w.office, newer.id, now()),
        now(),
    );
    let Err(EngineError::FamilyConflicts(conflicts)) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert!(matches!(
        &conflicts[..],
        [Conflict::FamilyVersions { rules, .. }] if rules.contains(&oco_core::model::RuleId(0))
    ));
    assert_eq!(dump(engine.store()), before, "nothing written");

    // Created disabled it is harmless, and its statistics name the conflict enabling would add.
    let disabled = engine
        .create_rule(
            NewRule::new(name("newer"), w.office, newer.id, now()).disabled(),
            now(),
        )
        .unwrap()
        .value;
    let statistics = engine.rule_statistics(disabled.id, now()).unwrap();
    assert_eq!(statistics.conflicts.len(), 1);
    let before = dump(engine.store());
    assert!(matches!(
        engine.set_rule_enabled(disabled.id, true, now()),
        Err(EngineError::FamilyConflicts(_))
    ));
    assert_eq!(dump(engine.store()), before);
}

/// A change through an engine over a failing store.
type AdminChange = fn(&Engine<&FailingStore<MemoryStore>>, &World) -> Result<(), EngineError>;

/// The store's contents, but for the computers' assignment revisions: an undone assignment
/// change leaves the assignments as they were under a new revision.
fn contents(store: &dyn Store) -> oco_core::store::testkit::Dump {
    let mut dump = dump(store);
    for (_, _, _, revision) in &mut dump.computers {
        *revision = Revision(0);
    }
    dump
}

/// Runs `change` on the world behind a store failing its `n`-th call, for every `n` until the
/// change makes fewer calls; returns, for each run whose re-evaluation failed, the error's
/// undo and whether the store was then as before.
fn each_failure(
    mode: fn(MemoryStore, u64) -> FailingStore<MemoryStore>,
    change: AdminChange,
) -> Vec<(Undo, bool)> {
    let mut reevaluations = Vec::new();
    for n in 1.. {
        let store = MemoryStore::new();
        let w = world(&store);
        let before = contents(&store);
        let failing = mode(store, n);
        let engine = Engine::new(&failing);
        let result = change(&engine, &w);
        if failing.calls() < n {
            result.unwrap();
            return reevaluations;
        }
        match result {
            Err(EngineError::Reevaluation { undo, .. }) => {
                reevaluations.push((*undo, contents(failing.inner()) == before));
            }
            Err(_) => assert_eq!(contents(failing.inner()), before, "call {n} failed"),
            Ok(()) => panic!("call {n} failed, and the change succeeded"),
        }
    }
    unreachable!()
}

#[test]
fn a_failed_re_evaluation_undoes_the_write_and_repairs_the_rules() {
    let changes: [(&str, AdminChange); 6] = [
        ("members", |engine, w| {
            engine
                .set_computer_group_members(w.office, &[w.pcs[1]], now())
                .map(drop)
        }),
        ("assignment", |engine, w| {
            engine.assign(w.pcs[0], w.viewer, now()).map(drop)
        }),
        ("package group", |engine, w| {
            engine
                .set_package_group_members(w.tools, &[w.viewer], now())
                .map(drop)
        }),
        ("rule", |engine, w| {
            let rule = NewRule::new(name("again"), w.office, w.tools, now());
            engine.create_rule(rule, now()).map(drop)
        }),
        ("package", |engine, w| {
            let mut viewer = engine.store().inner().package(w.viewer).unwrap();
            viewer.install.command = "viewer.exe /S".into();
            engine.update_package(viewer, now()).map(drop)
        }),
        ("computer", |engine, w| {
            // Read past the failing store: only the engine's calls count.
            let mut pc = engine.store().inner().computer(w.pcs[0]).unwrap();
            pc.os = "Linux".into();
            engine.update_computer(pc, now()).map(drop)
        }),
    ];
    for (what, change) in changes {
        let undone = each_failure(FailingStore::fail_nth, change);
        assert!(!undone.is_empty(), "{what}: no failed re-evaluation");
        for (undo, restored) in undone {
            assert!(
                matches!(undo, Undo::Undone { repair: Ok(_) }),
                "{what}: {undo:?}"
            );
            assert!(restored, "{what}: the store changed");
        }
    }
}

#[test]
fn a_failed_undo_leaves_the_write_and_says_so() {
    let failed = each_failure(FailingStore::fail_from, |engine, w| {
        engine
            .set_computer_group_members(w.office, &[w.pcs[1]], now())
            .map(drop)
    });
    assert!(!failed.is_empty());
    for (undo, restored) in failed {
        assert!(matches!(undo, Undo::Failed(_)), "{undo:?}");
        assert!(!restored, "the write stands");
    }
}

/// A [`MemoryStore`] where `report` (an agent's report, say) writes just before each of the
/// next `races` writes that `contested` picks: each of those loses its race.
struct Racing {
    inner: MemoryStore,
    races: AtomicUsize,
    contested: fn(&ChangeSet) -> bool,
    report: Box<dyn Fn(&MemoryStore) + Send + Sync>,
    applies: AtomicUsize,
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for Racing {
    fn apply(&self, changes: &ChangeSet) -> StoreResult<oco_core::store::Applied> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        if (self.contested)(changes)
            && self
                .races
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            (self.report)(&self.inner);
        }
        self.inner.apply(changes)
    }

    forward! {
        create_computer(c: NewComputer) -> StoreResult<oco_core::model::Computer>;
        update_computer(c: &oco_core::model::Computer) -> StoreResult<()>;
        delete_computer(id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<oco_core::model::JobId>>;
        computer(id: ComputerId) -> StoreResult<oco_core::model::Computer>;
        computer_by_hostname(h: &str) -> StoreResult<Option<oco_core::model::Computer>>;
        list_computers(p: Page) -> StoreResult<Vec<oco_core::model::Computer>>;
        set_last_seen(id: ComputerId, at: DateTime<Utc>) -> StoreResult<()>;
        credentials(id: ComputerId) -> StoreResult<AgentCredentials>;
        set_credentials(id: ComputerId, c: &AgentCredentials) -> StoreResult<()>;
        server_state() -> StoreResult<oco_core::store::ServerState>;
        set_server_state(s: &oco_core::store::ServerState) -> StoreResult<()>;
        create_admin_token(t: oco_core::store::NewAdminToken) -> StoreResult<oco_core::store::AdminToken>;
        list_admin_tokens(p: Page) -> StoreResult<Vec<oco_core::store::AdminToken>>;
        admin_token_by_digest(d: &oco_core::model::Sha256Digest) -> StoreResult<Option<oco_core::store::AdminToken>>;
        delete_admin_token(id: oco_core::model::TokenId) -> StoreResult<()>;
        create_family(n: Name) -> StoreResult<oco_core::model::PackageFamily>;
        family(id: oco_core::model::FamilyId) -> StoreResult<oco_core::model::PackageFamily>;
        list_families(p: Page) -> StoreResult<Vec<oco_core::model::PackageFamily>>;
        create_package(p: NewPackage) -> StoreResult<oco_core::model::Package>;
        update_package(p: &oco_core::model::Package) -> StoreResult<()>;
        package(id: PackageId) -> StoreResult<oco_core::model::Package>;
        list_packages(p: Page) -> StoreResult<Vec<oco_core::model::Package>>;
        create_computer_group(n: Name, p: Option<ComputerGroupId>) -> StoreResult<oco_core::model::ComputerGroup>;
        set_computer_group_parent(id: ComputerGroupId, p: Option<ComputerGroupId>) -> StoreResult<()>;
        set_computer_group_members(id: ComputerGroupId, m: &[ComputerId]) -> StoreResult<()>;
        computer_groups() -> StoreResult<Vec<(oco_core::model::ComputerGroup, Vec<ComputerId>)>>;
        create_package_group(n: Name, p: Option<PackageGroupId>) -> StoreResult<oco_core::model::PackageGroup>;
        set_package_group_parent(id: PackageGroupId, p: Option<PackageGroupId>) -> StoreResult<()>;
        set_package_group_members(id: PackageGroupId, m: &[PackageId]) -> StoreResult<()>;
        package_groups() -> StoreResult<Vec<(oco_core::model::PackageGroup, Vec<PackageId>)>>;
        assignments(c: ComputerId) -> StoreResult<(Vec<oco_core::model::Assignment>, Revision)>;
        container(id: oco_core::model::ContainerId) -> StoreResult<oco_core::model::JobContainer>;
        list_containers(p: Page) -> StoreResult<Vec<oco_core::model::JobContainer>>;
        create_rule(r: NewRule) -> StoreResult<oco_core::model::DeploymentRule>;
        update_rule(r: &oco_core::model::DeploymentRule) -> StoreResult<()>;
        rule(id: oco_core::model::RuleId) -> StoreResult<oco_core::model::DeploymentRule>;
        list_rules(p: Page) -> StoreResult<Vec<oco_core::model::DeploymentRule>>;
        job(id: oco_core::model::JobId) -> StoreResult<oco_core::model::Job>;
        list_jobs(f: &JobFilter, p: Page) -> StoreResult<Vec<oco_core::model::Job>>;
        planner_snapshot(c: ComputerId) -> StoreResult<oco_core::store::PlannerSnapshot>;
        report_snapshot(j: oco_core::model::JobId) -> StoreResult<oco_core::store::ReportSnapshot>;
        deploy_snapshot() -> StoreResult<oco_core::store::DeploySnapshot>;
        rule_snapshot() -> StoreResult<oco_core::store::RuleSnapshot>;
        rule_snapshot_part(p: &oco_core::store::RulePart) -> StoreResult<oco_core::store::RuleSnapshot>;
        delete_rule(id: oco_core::model::RuleId) -> StoreResult<()>;
        housekeeping_snapshot(now: DateTime<Utc>) -> StoreResult<oco_core::store::HousekeepingSnapshot>;
        apply_many(s: &[ChangeSet]) -> Vec<StoreResult<oco_core::store::Applied>>;
    }
}

/// An engine over a [`Racing`] store on the [`world`], whose assignment writes lose `races`
/// races to a report that records `notes` on `pc1`.
fn racing(races: usize, options: EngineOptions) -> (Engine<Racing>, World) {
    let inner = MemoryStore::new();
    let w = world(&inner);
    let (computer, package) = (w.pcs[0], w.notes);
    let store = Racing {
        inner,
        races: AtomicUsize::new(races),
        contested: |set| matches!(set.changes.first(), Some(Change::ExpectAssignments { .. })),
        report: Box::new(move |store| {
            let assignment = oco_core::model::Assignment {
                computer,
                package,
                installed_at: now(),
                job: None,
            };
            let report = ChangeSet {
                changes: vec![Change::UpsertAssignment { assignment }],
            };
            store.apply(&report).unwrap();
        }),
        applies: AtomicUsize::new(0),
    };
    (Engine::with_options(store, options), w)
}

/// An engine over a [`Racing`] store on the [`world`] plus a container of one job on `pc2`,
/// failed; the container's job writes (renewals, deletion) lose `races` races to a report that
/// moves the job (its revision) without changing its state. Returns the job too.
fn racing_container(
    races: usize,
) -> (
    Engine<Racing>,
    oco_core::model::ContainerId,
    oco_core::model::JobId,
) {
    let inner = MemoryStore::new();
    let w = world(&inner);
    let engine = Engine::new(&inner);
    let container = ContainerSettings::new(name("viewer"), now(), DeliveryPolicy::default());
    let deployed = engine
        .deploy(
            &DeployRequest::new(container)
                .with_computers([w.pcs[1]])
                .with_packages([w.viewer]),
            now(),
        )
        .unwrap();
    let job = deployed.jobs[0].id;
    let failure =
        oco_core::report::AgentReport::new(job, 1, oco_core::report::ReportedState::Failed)
            .with_return_code(1);
    engine.report(w.pcs[1], failure, now()).unwrap();
    let store = Racing {
        inner,
        races: AtomicUsize::new(races),
        contested: |set| {
            matches!(
                set.changes.first(),
                Some(Change::UpdateJob { .. } | Change::DeleteContainer { .. })
            )
        },
        report: Box::new(move |store| {
            let stored = store.job(job).unwrap();
            let moved = ChangeSet {
                changes: vec![Change::UpdateJob {
                    expected: stored.revision,
                    job: stored,
                }],
            };
            store.apply(&moved).unwrap();
        }),
        applies: AtomicUsize::new(0),
    };
    (Engine::new(store), deployed.container.id, job)
}

#[test]
fn a_renewal_and_a_container_deletion_that_lose_a_race_are_decided_again() {
    let (engine, container, job) = racing_container(1);
    let renewed = engine
        .renew_container(container, Some(&[job]), None, now())
        .unwrap();
    assert_eq!(renewed.renewed, [job]);
    assert_eq!(renewed.container, None);
    let stored = engine.store().job(job).unwrap();
    assert_eq!((stored.state, stored.attempt), (JobState::Waiting, 2));
    assert_eq!(
        engine.store().applies.load(Ordering::SeqCst),
        2,
        "lost, then won"
    );

    let (engine, container, job) = racing_container(2);
    engine.delete_container(container, now()).unwrap();
    assert!(engine.store().container(container).is_err());
    assert!(engine.store().job(job).is_err());
    assert_eq!(engine.store().applies.load(Ordering::SeqCst), 3);

    let (engine, container, _) = racing_container(usize::MAX);
    assert!(matches!(
        engine.delete_container(container, now()),
        Err(EngineError::Contended {
            operation: "container deletion",
            attempts: 8
        })
    ));
    assert!(
        engine.store().container(container).is_ok(),
        "nothing deleted"
    );
}

#[test]
fn containers_are_renewed_into_a_new_one_edited_disabled_and_counted() {
    let (engine, container, job) = racing_container(0);
    let refused =
        engine.renew_container(container, Some(&[oco_core::model::JobId(999)]), None, now());
    assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "jobs"));
    let renewed = engine
        .renew_container(container, None, Some(name("viewer again")), now())
        .unwrap();
    assert_eq!(renewed.renewed, [job]);
    let copy = renewed.container.unwrap();
    assert_eq!(
        engine.store().container(copy).unwrap().name.as_str(),
        "viewer again"
    );

    let settings = ContainerSettings::new(name("renamed"), now(), DeliveryPolicy::default())
        .with_notes("notes");
    let edited = engine.edit_container(container, settings).unwrap();
    assert_eq!(edited.name.as_str(), "renamed");
    assert_eq!(edited.id, container);
    assert_eq!(engine.store().container(container).unwrap(), edited);
    assert!(!engine.set_container_enabled(copy, false).unwrap().enabled);
    let statistics = engine.container_statistics(container, now()).unwrap();
    assert_eq!(
        statistics.status,
        oco_core::housekeeping::ContainerStatus::Failed
    );
}

#[test]
fn an_assignment_that_loses_a_race_is_decided_again_on_a_fresh_read() {
    let (engine, w) = racing(1, EngineOptions::default());
    let assigned = engine.assign(w.pcs[0], w.viewer, now()).unwrap();
    let store = engine.store();
    let (assignments, _) = store.assignments(w.pcs[0]).unwrap();
    let mut packages: Vec<PackageId> = assignments.iter().map(|a| a.package).collect();
    packages.sort();
    assert_eq!(packages, [w.viewer, w.notes], "ours and the report's");
    // The viewer job has nothing left to do.
    assert_eq!(assigned.evaluations[0].updated, 1);
    assert_eq!(
        jobs_of(store, w.pcs[0]),
        [
            (w.editor[0], JobState::Waiting),
            (w.viewer, JobState::AlreadyInstalled)
        ]
    );
    // The lost write, the won write, the rule's diff.
    assert_eq!(store.applies.load(Ordering::SeqCst), 3);
}

#[test]
fn an_assignment_that_keeps_losing_is_contended_and_writes_nothing_of_its_own() {
    let attempts = NonZeroUsize::new(3).unwrap();
    let (engine, w) = racing(usize::MAX, EngineOptions::default().with_attempts(attempts));
    let viewer = ChangeSet {
        changes: vec![Change::UpsertAssignment {
            assignment: oco_core::model::Assignment {
                computer: w.pcs[0],
                package: w.viewer,
                installed_at: now(),
                job: None,
            },
        }],
    };
    engine.store().inner.apply(&viewer).unwrap();
    let before = jobs_of(engine.store(), w.pcs[0]);
    let result = engine.unassign(w.pcs[0], w.viewer, now());
    assert!(
        matches!(
            result,
            Err(EngineError::Contended {
                operation: "unassignment",
                attempts: 3
            })
        ),
        "{result:?}"
    );
    let (assignments, _) = engine.store().assignments(w.pcs[0]).unwrap();
    let mut packages: Vec<PackageId> = assignments.iter().map(|a| a.package).collect();
    packages.sort();
    assert_eq!(packages, [w.viewer, w.notes], "the viewer not removed");
    assert_eq!(
        jobs_of(engine.store(), w.pcs[0]),
        before,
        "no rule evaluated"
    );
    assert_eq!(engine.store().applies.load(Ordering::SeqCst), 3);
}
