//! The conformance suite every [`Store`] adapter must pass (feature `testkit`).
//!
//! An adapter runs it in a few lines of test code:
//!
//! ```
//! use oco_core::store::{testkit, MemoryStore, Store};
//!
//! testkit::run_conformance(&|| Box::new(MemoryStore::new()) as Box<dyn Store>);
//! ```
//!
//! Each check takes a fresh store from `make`, and panics with a message naming the check and
//! what differed. The checks are public, so an adapter may also run them one by one (one test
//! each, for clearer reports).
//!
//! Where the trait leaves a choice open, the suite does not pin it: ids are compared for order
//! and uniqueness, not reuse (a failed change set may consume ids, as PostgreSQL sequences do),
//! and housekeeping is only required to contain containers that may need something.
//!
//! Beside it, [`run_races`] runs the compare-and-set races ([`RACES`]): threads sharing one store
//! apply change sets built from the same reading at once, and exactly one of them wins.

// A test suite reports a failure by panicking: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};

mod races;
pub use races::{
    assignment_writes_from_the_same_revision_have_exactly_one_winner,
    credentials_from_the_same_reading_have_exactly_one_winner,
    delete_and_update_of_one_job_race_to_one_winner,
    revoking_the_last_two_full_tokens_at_once_keeps_one, run_races,
    update_job_from_the_same_revision_has_exactly_one_winner, RACES,
};

use super::{
    AgentCredentials, Change, ChangeSet, JobFilter, ListedJob, NewAdminToken, NewComputer,
    NewPackage, NewRule, OriginInfo, Page, ServerState, Store, StoreError, StoreResult,
    TokenAccess,
};
use crate::model::{
    Assignment, Compatibility, Computer, ComputerGroup, ComputerId, ContainerId, DeliveryPolicy,
    DeploymentRule, FamilyId, Job, JobContainer, JobId, JobKind, JobState, MessageCode, Name,
    Origin, Package, PackageFamily, PackageGroup, PackageId, Payload, PostAction, Priority,
    Procedure, Revision, RuleId, Schedule, SequenceMode, Sha256Digest, UpgradeBehavior,
    WolSettings, WolShutdown,
};

/// Makes a fresh, empty store for one check.
pub type MakeStore<'a> = &'a dyn Fn() -> Box<dyn Store>;

/// One conformance check.
pub type Check = fn(MakeStore<'_>);

/// Every check, by name, in the order [`run_conformance`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("listings_abridge_outputs", listings_abridge_outputs),
    ("computers_round_trip", computers_round_trip),
    (
        "hostnames_are_unique_ignoring_case",
        hostnames_are_unique_ignoring_case,
    ),
    ("credentials_round_trip", credentials_round_trip),
    ("agent_state_in_change_sets", agent_state_in_change_sets),
    (
        "delete_container_is_compare_and_set",
        delete_container_is_compare_and_set,
    ),
    ("mark_wol_sent_once", mark_wol_sent_once),
    ("tombstones_are_purged_by_age", tombstones_are_purged_by_age),
    (
        "rule_snapshot_and_delete_rule",
        rule_snapshot_and_delete_rule,
    ),
    (
        "update_job_keeps_its_identity",
        update_job_keeps_its_identity,
    ),
    ("server_state_round_trip", server_state_round_trip),
    ("admin_tokens", admin_tokens),
    ("families_and_packages", families_and_packages),
    ("computer_groups", computer_groups),
    ("package_groups", package_groups),
    ("rules_round_trip", rules_round_trip),
    (
        "containers_and_jobs_round_trip",
        containers_and_jobs_round_trip,
    ),
    (
        "ids_are_sequential_and_unique",
        ids_are_sequential_and_unique,
    ),
    (
        "update_job_is_compare_and_set",
        update_job_is_compare_and_set,
    ),
    (
        "same_job_updated_twice_in_one_set",
        same_job_updated_twice_in_one_set,
    ),
    ("delete_job_keeps_a_tombstone", delete_job_keeps_a_tombstone),
    (
        "failing_change_set_changes_nothing",
        failing_change_set_changes_nothing,
    ),
    ("assignment_revisions", assignment_revisions),
    ("apply_many_isolates_failures", apply_many_isolates_failures),
    (
        "hellos_in_one_batch_have_their_own_results",
        hellos_in_one_batch_have_their_own_results,
    ),
    ("invalid_references", invalid_references),
    ("paging", paging),
    ("assignments_oldest_first", assignments_oldest_first),
    ("planner_snapshot_contents", planner_snapshot_contents),
    ("report_snapshot_contents", report_snapshot_contents),
    ("deploy_snapshot_contents", deploy_snapshot_contents),
    (
        "housekeeping_snapshot_contents",
        housekeeping_snapshot_contents,
    ),
    (
        "housekeeping_snapshot_has_what_may_need_something",
        housekeeping_snapshot_has_what_may_need_something,
    ),
    (
        "delete_container_removes_its_jobs",
        delete_container_removes_its_jobs,
    ),
    (
        "delete_computer_removes_what_is_its",
        delete_computer_removes_what_is_its,
    ),
    (
        "delete_container_keeps_tombstones",
        delete_container_keeps_tombstones,
    ),
    (
        "delete_computer_keeps_tombstones",
        delete_computer_keeps_tombstones,
    ),
    (
        "removed_rule_keeps_tombstones",
        removed_rule_keeps_tombstones,
    ),
    (
        "rule_snapshot_for_evaluates_as_the_full_one",
        rule_snapshot_for_evaluates_as_the_full_one,
    ),
    (
        "rule_snapshot_part_evaluates_as_the_full_one",
        rule_snapshot_part_evaluates_as_the_full_one,
    ),
    ("job_summary_matches_the_jobs", job_summary_matches_the_jobs),
    (
        "last_seen_includes_the_last_contact",
        last_seen_includes_the_last_contact,
    ),
    (
        "rule_job_computers_are_those_of_its_jobs",
        rule_job_computers_are_those_of_its_jobs,
    ),
];

/// Runs every check in [`CHECKS`], each on a fresh store from `make`.
///
/// # Panics
///
/// At the first check that fails, naming it.
pub fn run_conformance(make: MakeStore<'_>) {
    run_checks("store conformance check", CHECKS, make);
}

/// Runs `checks` in order, each on a fresh store from `make`; the first to fail panics with
/// `kind`, its name and its message.
fn run_checks(kind: &str, checks: &[(&str, Check)], make: MakeStore<'_>) {
    for (name, check) in checks {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(make)));
        if let Err(payload) = result {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{kind} `{name}` failed: {message}");
        }
    }
}

// Fixtures.

/// An instant `seconds` after a fixed base (2023-11-14T22:13:20Z).
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

/// A [`Name`] (panics when blank).
pub fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

/// Computers made with [`new_computer`], one per hostname, in order; their ids.
///
/// # Panics
///
/// If the store refuses one.
pub fn create_computers(
    store: &dyn Store,
    hostnames: impl IntoIterator<Item = String>,
) -> Vec<ComputerId> {
    hostnames
        .into_iter()
        .map(|hostname| store.create_computer(new_computer(&hostname)).unwrap().id)
        .collect()
}

/// A computer to create, with two MAC addresses.
pub fn new_computer(hostname: &str) -> NewComputer {
    NewComputer {
        hostname: name(hostname),
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x86_64".into(),
        macs: vec![
            "aa:bb:cc:dd:ee:01".parse().unwrap(),
            "aa:bb:cc:dd:ee:02".parse().unwrap(),
        ],
    }
}

/// A policy with every field away from its default, constraints included.
pub fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        priority: Priority::new(-42).unwrap(),
        sequence_mode: SequenceMode::AbortAfterFailed,
        ip_ranges: "!10.66.0.0/16, 10.0.0.0/8, 2001:db8::/32".parse().unwrap(),
        time_frames: "MON-FRI 18:00-06:00, SAT-SUN".parse().unwrap(),
        time_zone: chrono_tz::Tz::Europe__Berlin,
        post_action_timeout: None,
    }
}

/// A package of `family` with every field away from its default.
pub fn package(family: FamilyId, version: &str, dependencies: Vec<PackageId>) -> NewPackage {
    NewPackage {
        family,
        version: name(version),
        install: Procedure {
            command: format!("msiexec /i app-{version}.msi /qn"),
            success_codes: "0, 3010, -5--1".parse().unwrap(),
            post_action: PostAction::Restart,
        },
        uninstall: Procedure {
            command: "msiexec /x app.msi /qn".into(),
            success_codes: "0-3".parse().unwrap(),
            post_action: PostAction::ExitAgent,
        },
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: true,
        upgrade_behavior: UpgradeBehavior::ExplicitUninstall,
        compatibility: Compatibility {
            os: vec!["Windows".into(), "Linux".into()],
            os_version: vec!["11".into()],
            architecture: vec!["x86_64".into()],
        },
        dependencies,
    }
}

/// A container with every field away from its default.
pub fn container(title: &str) -> JobContainer {
    JobContainer {
        id: ContainerId(0),
        name: name(title),
        notes: format!("notes of {title}"),
        enabled: true,
        schedule: Schedule::new(at(0), Some(at(86_400))).unwrap(),
        policy: policy(),
        wol: WolSettings {
            wake: true,
            shutdown_after: true,
            sent_at: Some(at(5)),
        },
        self_service: true,
        created_at: at(-60),
    }
}

/// A Waiting install job (id and revision are the store's to assign).
pub fn job(origin: Origin, computer: ComputerId, package: &Package, sequence: u32) -> Job {
    Job::new(origin, computer, package, JobKind::Install, sequence)
}

/// A rule on `computer_group` and `package_group`.
pub fn rule(
    title: &str,
    computer_group: crate::model::ComputerGroupId,
    package_group: crate::model::PackageGroupId,
) -> NewRule {
    NewRule {
        name: name(title),
        notes: "rule notes".into(),
        enabled: false,
        computer_group,
        package_group,
        policy: policy(),
        created_at: at(-30),
    }
}

/// A small world: two computers, one family with two versions, one other family with one.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `pc1` and `pc2`.
    pub computers: [Computer; 2],
    /// Family `app`.
    pub family: PackageFamily,
    /// Versions 1.0 and 2.0 of `app`.
    pub packages: [Package; 2],
    /// A package of another family (`tool` 1.0).
    pub other: Package,
}

/// Creates the [`Fixture`] in `store`.
pub fn fixture(store: &dyn Store) -> Fixture {
    let pc1 = store.create_computer(new_computer("pc1")).unwrap();
    let pc2 = store.create_computer(new_computer("pc2")).unwrap();
    let family = store.create_family(name("app")).unwrap();
    let v1 = store
        .create_package(package(family.id, "1.0", vec![]))
        .unwrap();
    let v2 = store
        .create_package(package(family.id, "2.0", vec![v1.id]))
        .unwrap();
    let tool = store.create_family(name("tool")).unwrap();
    let other = store
        .create_package(package(tool.id, "1.0", vec![]))
        .unwrap();
    Fixture {
        computers: [pc1, pc2],
        family,
        packages: [v1, v2],
        other,
    }
}

/// Applies a change set of `changes`, panicking on an error.
pub fn apply(store: &dyn Store, changes: Vec<Change>) -> super::Applied {
    store
        .apply(&ChangeSet { changes })
        .unwrap_or_else(|e| panic!("apply failed: {e}"))
}

/// Creates a container with `jobs` and returns its id and the jobs' ids.
pub fn create_container(
    store: &dyn Store,
    title: &str,
    jobs: Vec<Job>,
) -> (ContainerId, Vec<JobId>) {
    let applied = apply(
        store,
        vec![Change::CreateContainer {
            container: container(title),
            jobs,
        }],
    );
    (applied.containers[0], applied.jobs)
}

/// Everything a store holds that the trait can read, for comparing states.
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    /// Computers with their credentials, assignments and assignment revision.
    pub computers: Vec<(Computer, AgentCredentials, Vec<Assignment>, Revision)>,
    /// Package families.
    pub families: Vec<PackageFamily>,
    /// Packages.
    pub packages: Vec<Package>,
    /// Computer groups with members.
    pub computer_groups: Vec<(ComputerGroup, Vec<ComputerId>)>,
    /// Package groups with members.
    pub package_groups: Vec<(PackageGroup, Vec<PackageId>)>,
    /// Containers.
    pub containers: Vec<JobContainer>,
    /// Rules.
    pub rules: Vec<DeploymentRule>,
    /// Jobs.
    pub jobs: Vec<Job>,
}

/// Reads everything from `store` through its listing methods.
pub fn dump(store: &dyn Store) -> Dump {
    let all = Page::first(usize::MAX);
    Dump {
        computers: store
            .list_computers(all)
            .unwrap()
            .into_iter()
            .map(|c| {
                let credentials = store.credentials(c.id).unwrap();
                let (assignments, revision) = store.assignments(c.id).unwrap();
                (c, credentials, assignments, revision)
            })
            .collect(),
        families: store.list_families(all).unwrap(),
        packages: store.list_packages(all).unwrap(),
        computer_groups: store.computer_groups().unwrap(),
        package_groups: store.package_groups().unwrap(),
        containers: store.list_containers(all).unwrap(),
        rules: store.list_rules(all).unwrap(),
        jobs: store.list_jobs(&JobFilter::default(), all).unwrap(),
    }
}

/// Panics unless `result` is the error `expected` names (`"NotFound"`, `"Conflict"`,
/// `"Duplicate"`, `"Invalid"`).
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected: &str,
    context: &str,
) {
    let kind = match &result {
        Err(StoreError::NotFound { .. }) => "NotFound",
        Err(StoreError::Conflict { .. }) => "Conflict",
        Err(StoreError::Duplicate { .. }) => "Duplicate",
        Err(StoreError::Invalid { .. }) => "Invalid",
        Err(StoreError::Corrupt { .. }) => "Corrupt",
        Err(StoreError::Backend(_)) => "Backend",
        Ok(_) => "Ok",
    };
    assert_eq!(kind, expected, "{context}: got {result:?}");
}

// The checks.

/// Computers: every field survives create, update and reload; lookup by hostname ignores case.
pub fn computers_round_trip(make: MakeStore<'_>) {
    let store = make();
    let created = store.create_computer(new_computer("PC-One")).unwrap();
    assert_eq!(created.hostname.as_str(), "PC-One");
    assert_eq!(created.macs, new_computer("x").macs);
    assert_eq!(created.last_seen, None);
    assert_eq!(store.computer(created.id).unwrap(), created);
    for variant in ["pc-one", "PC-ONE", "Pc-OnE"] {
        assert_eq!(
            store.computer_by_hostname(variant).unwrap().as_ref(),
            Some(&created),
            "lookup by {variant}"
        );
    }
    assert_eq!(store.computer_by_hostname("pc-two").unwrap(), None);

    let mut changed = created.clone();
    changed.hostname = name("pc-renamed");
    changed.os = "Linux".into();
    changed.os_version = "6.1".into();
    changed.architecture = "aarch64".into();
    changed.macs = vec!["01:02:03:04:05:06".parse().unwrap()];
    changed.last_seen = Some(at(1));
    store.update_computer(&changed).unwrap();
    assert_eq!(store.computer(created.id).unwrap(), changed);

    store.set_last_seen(created.id, at(99)).unwrap();
    assert_eq!(store.computer(created.id).unwrap().last_seen, Some(at(99)));

    let missing = ComputerId(created.id.0 + 100);
    assert_err(
        store.computer(missing),
        "NotFound",
        "computer of a missing id",
    );
    assert_err(
        store.set_last_seen(missing, at(0)),
        "NotFound",
        "set_last_seen of a missing id",
    );
    let mut ghost = changed.clone();
    ghost.id = missing;
    ghost.hostname = name("ghost");
    assert_err(
        store.update_computer(&ghost),
        "NotFound",
        "update of a missing computer",
    );
}

/// Hostnames are unique compared case-insensitively, on create and on update.
pub fn hostnames_are_unique_ignoring_case(make: MakeStore<'_>) {
    let store = make();
    let first = store.create_computer(new_computer("PC1")).unwrap();
    assert_err(
        store.create_computer(new_computer("pc1")),
        "Duplicate",
        "same hostname in another case",
    );
    let second = store.create_computer(new_computer("pc2")).unwrap();
    let mut renamed = second.clone();
    renamed.hostname = name("Pc1");
    assert_err(
        store.update_computer(&renamed),
        "Duplicate",
        "rename onto a taken hostname",
    );
    let mut recased = first.clone();
    recased.hostname = name("pc1");
    store.update_computer(&recased).unwrap();
    assert_eq!(store.computer(first.id).unwrap().hostname.as_str(), "pc1");
    assert_eq!(store.list_computers(Page::first(10)).unwrap().len(), 2);
}

/// The server-wide state is all `None` at first and round-trips.
pub fn server_state_round_trip(make: MakeStore<'_>) {
    let store = make();
    assert_eq!(store.server_state().unwrap(), ServerState::default());
    let state = ServerState {
        admin_token_hash: Some("sha256:0123abcd".into()),
    };
    store.set_server_state(&state).unwrap();
    assert_eq!(store.server_state().unwrap(), state);
    let later = ServerState {
        admin_token_hash: Some("sha256:4567cdef".into()),
    };
    store.set_server_state(&later).unwrap();
    assert_eq!(store.server_state().unwrap(), later);
}

/// Admin tokens round-trip, are found by digest, keep names and digests unique, page by id and
/// are revoked one by one.
pub fn admin_tokens(make: MakeStore<'_>) {
    let store = make();
    let new = |name_: &str, access, byte: u8| NewAdminToken {
        name: name(name_),
        access,
        digest: crate::model::Sha256Digest([byte; 32]),
        created: at(i64::from(byte)),
    };
    assert_eq!(store.list_admin_tokens(Page::first(10)).unwrap(), vec![]);
    let admin = store
        .create_admin_token(new("admin", TokenAccess::Full, 1))
        .unwrap();
    assert_eq!(admin, new("admin", TokenAccess::Full, 1).with_id(admin.id));
    let grafana = store
        .create_admin_token(new("grafana", TokenAccess::ReadOnly, 2))
        .unwrap();
    assert!(
        grafana.id > admin.id,
        "ids grow: {admin:?} then {grafana:?}"
    );
    assert_eq!(grafana.access, TokenAccess::ReadOnly);
    assert_eq!(grafana.created, at(2));

    let same_name = store.create_admin_token(new("admin", TokenAccess::ReadOnly, 3));
    assert!(
        matches!(same_name, Err(StoreError::Duplicate { .. })),
        "a taken name: {same_name:?}"
    );
    let same_digest = store.create_admin_token(new("other", TokenAccess::Full, 2));
    assert!(
        matches!(same_digest, Err(StoreError::Duplicate { .. })),
        "a taken digest: {same_digest:?}"
    );

    let digest = |byte| crate::model::Sha256Digest([byte; 32]);
    assert_eq!(
        store.admin_token_by_digest(&digest(2)).unwrap(),
        Some(grafana.clone())
    );
    assert_eq!(store.admin_token_by_digest(&digest(9)).unwrap(), None);
    assert_eq!(
        store.list_admin_tokens(Page::first(10)).unwrap(),
        vec![admin.clone(), grafana.clone()]
    );
    assert_eq!(
        store
            .list_admin_tokens(Page {
                after: Some(admin.id.0),
                limit: 10
            })
            .unwrap(),
        vec![grafana.clone()]
    );
    assert_eq!(
        store.list_admin_tokens(Page::first(1)).unwrap(),
        vec![admin.clone()]
    );

    // The last full-access token stays.
    let last = store.delete_admin_token(admin.id);
    assert!(
        matches!(&last, Err(StoreError::Invalid { reason }) if reason.contains("last full-access")),
        "{last:?}"
    );
    let second = store
        .create_admin_token(new("second", TokenAccess::Full, 4))
        .unwrap();
    store.delete_admin_token(admin.id).unwrap();
    assert_eq!(store.admin_token_by_digest(&digest(1)).unwrap(), None);
    assert!(matches!(
        store.delete_admin_token(second.id),
        Err(StoreError::Invalid { .. })
    ));
    // A read-only token goes whatever is left.
    store.delete_admin_token(grafana.id).unwrap();
    let grafana = store
        .create_admin_token(new("grafana", TokenAccess::ReadOnly, 2))
        .unwrap();
    assert!(matches!(
        store.delete_admin_token(admin.id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.list_admin_tokens(Page::first(10)).unwrap(),
        vec![second, grafana]
    );
    // A revoked token's name and digest are free again.
    let again = store
        .create_admin_token(new("admin", TokenAccess::Full, 1))
        .unwrap();
    assert_ne!(again.id, admin.id);
}

/// Credentials are all `None` at first and round-trip.
pub fn credentials_round_trip(make: MakeStore<'_>) {
    let store = make();
    let pc = store.create_computer(new_computer("pc1")).unwrap();
    assert_eq!(
        store.credentials(pc.id).unwrap(),
        AgentCredentials::default()
    );
    let credentials = AgentCredentials {
        agent_key: Some("new key".into()),
        previous_agent_key: Some("old key".into()),
        server_key: Some("server key".into()),
        last_hello: Some(1_700_000_123.25),
        last_reply: Some(1_700_000_124.000_001),
        last_contact: Some(crate::store::AgentContact {
            at: at(3),
            address: "2001:db8::7".parse().unwrap(),
            agent_version: Some("1.2.0".into()),
        }),
    };
    store.set_credentials(pc.id, &credentials).unwrap();
    assert_eq!(store.credentials(pc.id).unwrap(), credentials);
    let unversioned = AgentCredentials {
        last_contact: Some(crate::store::AgentContact {
            at: at(4),
            address: "10.1.2.3".parse().unwrap(),
            agent_version: None,
        }),
        ..credentials.reset_to_first_contact()
    };
    store.set_credentials(pc.id, &unversioned).unwrap();
    assert_eq!(store.credentials(pc.id).unwrap(), unversioned);
    let missing = ComputerId(pc.id.0 + 100);
    assert_err(
        store.credentials(missing),
        "NotFound",
        "credentials of a missing computer",
    );
    assert_err(
        store.set_credentials(missing, &credentials),
        "NotFound",
        "set_credentials of a missing computer",
    );
}

/// Credentials, last-seen times and the server state written in change sets: credentials are
/// compare-and-set, a last-seen time never moves back, and a failing change leaves the rest of
/// the set unwritten.
pub fn agent_state_in_change_sets(make: MakeStore<'_>) {
    let store = make();
    let pc = store.create_computer(new_computer("pc1")).unwrap();
    let hello = |last_hello: f64| AgentCredentials {
        agent_key: Some("agent".into()),
        previous_agent_key: None,
        server_key: Some("server".into()),
        last_hello: Some(last_hello),
        last_reply: Some(last_hello + 0.5),
        last_contact: None,
    };
    let state = ServerState {
        admin_token_hash: Some("hash".into()),
    };
    apply(
        store.as_ref(),
        vec![
            Change::SetCredentials {
                computer: pc.id,
                expected: AgentCredentials::default(),
                credentials: hello(1_700_000_000.5),
            },
            Change::SetLastSeen {
                computer: pc.id,
                at: at(10),
            },
            Change::SetServerState {
                state: state.clone(),
            },
        ],
    );
    assert_eq!(store.credentials(pc.id).unwrap(), hello(1_700_000_000.5));
    assert_eq!(store.computer(pc.id).unwrap().last_seen, Some(at(10)));
    assert_eq!(store.server_state().unwrap(), state);

    // A second hello computed from the credentials before the first: a conflict, and the
    // last-seen time and server state of its set are not written.
    let stale = store.apply(&ChangeSet {
        changes: vec![
            Change::SetLastSeen {
                computer: pc.id,
                at: at(20),
            },
            Change::SetServerState {
                state: ServerState::default(),
            },
            Change::SetCredentials {
                computer: pc.id,
                expected: AgentCredentials::default(),
                credentials: hello(1_700_000_000.75),
            },
        ],
    });
    assert_err(stale, "Conflict", "credentials changed since read");
    assert_eq!(store.credentials(pc.id).unwrap(), hello(1_700_000_000.5));
    assert_eq!(store.computer(pc.id).unwrap().last_seen, Some(at(10)));
    assert_eq!(store.server_state().unwrap(), state);

    // An earlier last-seen time (flushed out of order) leaves the later one.
    apply(
        store.as_ref(),
        vec![Change::SetLastSeen {
            computer: pc.id,
            at: at(5),
        }],
    );
    assert_eq!(store.computer(pc.id).unwrap().last_seen, Some(at(10)));

    // A flush: many computers' times in one set, a computer twice (the later time stays), and
    // an earlier time than the stored one ignored.
    let others = create_computers(store.as_ref(), (2..6).map(|i| format!("pc{i}")));
    let seen = |computer, seconds| Change::SetLastSeen {
        computer,
        at: at(seconds),
    };
    let mut flush: Vec<Change> = others
        .iter()
        .zip(40..)
        .map(|(&computer, seconds)| seen(computer, seconds))
        .collect();
    flush.extend([seen(others[0], 45), seen(others[0], 44), seen(pc.id, 5)]);
    apply(store.as_ref(), flush.clone());
    let stored: Vec<_> = others
        .iter()
        .map(|&id| store.computer(id).unwrap().last_seen)
        .collect();
    assert_eq!(
        stored,
        vec![Some(at(45)), Some(at(41)), Some(at(42)), Some(at(43))]
    );
    assert_eq!(store.computer(pc.id).unwrap().last_seen, Some(at(10)));
    // One computer of the flush missing: NotFound, and none of its times written.
    let missing = ComputerId(others[3].0 + 100);
    flush = vec![seen(others[1], 60), seen(missing, 60), seen(others[2], 60)];
    assert_err(
        store.apply(&ChangeSet { changes: flush }),
        "NotFound",
        "a flush naming a missing computer",
    );
    assert_eq!(store.computer(others[1]).unwrap().last_seen, Some(at(41)));

    let missing = ComputerId(pc.id.0 + 100);
    for change in [
        Change::SetLastSeen {
            computer: missing,
            at: at(30),
        },
        Change::SetCredentials {
            computer: missing,
            expected: AgentCredentials::default(),
            credentials: hello(1.0),
        },
    ] {
        assert_err(
            store.apply(&ChangeSet {
                changes: vec![change],
            }),
            "NotFound",
            "agent state of a missing computer",
        );
    }
}

/// A computer's last-seen time is the later of the time last recorded for it and its
/// credentials' last contact, in every read of the computer; replacing the credentials with an
/// earlier contact or none (a key reset) does not move it back.
pub fn last_seen_includes_the_last_contact(make: MakeStore<'_>) {
    let store = make();
    let pc = store.create_computer(new_computer("pc1")).unwrap();
    let contacted = |seconds: Option<i64>| AgentCredentials {
        agent_key: Some("agent".into()),
        last_contact: seconds.map(|seconds| crate::store::AgentContact {
            at: at(seconds),
            address: "10.0.0.1".parse().unwrap(),
            agent_version: None,
        }),
        ..AgentCredentials::default()
    };
    let seen = |context: &str| {
        let computer = store.computer(pc.id).unwrap();
        assert_eq!(
            store.computer_by_hostname("PC1").unwrap().as_ref(),
            Some(&computer),
            "{context}: by hostname"
        );
        assert_eq!(
            store.list_computers(Page::first(10)).unwrap(),
            vec![computer.clone()],
            "{context}: listed"
        );
        assert_eq!(
            store.planner_snapshot(pc.id).unwrap().computer,
            computer,
            "{context}: planner snapshot"
        );
        assert_eq!(
            store.deploy_snapshot().unwrap().computers.get(&pc.id),
            Some(&computer),
            "{context}: deploy snapshot"
        );
        computer.last_seen
    };
    assert_eq!(seen("new"), None);

    // A hello's write: the contact is the last-seen time.
    apply(
        store.as_ref(),
        vec![Change::SetCredentials {
            computer: pc.id,
            expected: AgentCredentials::default(),
            credentials: contacted(Some(20)),
        }],
    );
    assert_eq!(seen("after a contact"), Some(at(20)));
    // An earlier recorded time leaves the contact; a later one wins.
    store.set_last_seen(pc.id, at(10)).unwrap();
    assert_eq!(seen("recorded before the contact"), Some(at(20)));
    apply(
        store.as_ref(),
        vec![Change::SetLastSeen {
            computer: pc.id,
            at: at(30),
        }],
    );
    assert_eq!(seen("recorded after the contact"), Some(at(30)));
    // A later contact, by the setter.
    store.set_credentials(pc.id, &contacted(Some(40))).unwrap();
    assert_eq!(seen("a later contact"), Some(at(40)));
    // A key reset clears the contact; the time it held stays.
    store.set_credentials(pc.id, &contacted(None)).unwrap();
    assert_eq!(store.credentials(pc.id).unwrap(), contacted(None));
    assert_eq!(seen("contact cleared by the setter"), Some(at(40)));
    apply(
        store.as_ref(),
        vec![Change::SetCredentials {
            computer: pc.id,
            expected: contacted(None),
            credentials: contacted(Some(50)),
        }],
    );
    apply(
        store.as_ref(),
        vec![Change::SetCredentials {
            computer: pc.id,
            expected: contacted(Some(50)),
            credentials: contacted(Some(45)),
        }],
    );
    assert_eq!(seen("an earlier contact in a change set"), Some(at(50)));
}

/// Families and packages: every field round-trips; names and versions are unique; references
/// are checked.
pub fn families_and_packages(make: MakeStore<'_>) {
    let store = make();
    let family = store.create_family(name("app")).unwrap();
    assert_eq!(family.name.as_str(), "app");
    assert_eq!(store.family(family.id).unwrap(), family);
    assert_err(
        store.create_family(name("app")),
        "Duplicate",
        "same family name",
    );
    assert_err(
        store.family(FamilyId(family.id.0 + 100)),
        "NotFound",
        "missing family",
    );

    let v1 = store
        .create_package(package(family.id, "1.0", vec![]))
        .unwrap();
    let expected = package(family.id, "1.0", vec![]).with_id(v1.id);
    assert_eq!(v1, expected);
    assert_eq!(store.package(v1.id).unwrap(), expected);
    let v2 = store
        .create_package(package(family.id, "2.0", vec![v1.id]))
        .unwrap();
    assert_eq!(store.package(v2.id).unwrap().dependencies, vec![v1.id]);
    assert_err(
        store.create_package(package(family.id, "1.0", vec![])),
        "Duplicate",
        "same version in the family",
    );
    assert_err(
        store.create_package(package(FamilyId(family.id.0 + 100), "1.0", vec![])),
        "Invalid",
        "package of an unknown family",
    );
    assert_err(
        store.create_package(package(family.id, "3.0", vec![PackageId(v2.id.0 + 100)])),
        "Invalid",
        "package with an unknown dependency",
    );

    let mut edited = v1.clone();
    edited.install.command = "setup.exe /S".into();
    edited.install.success_codes = "*".parse().unwrap();
    edited.install.post_action = PostAction::None;
    edited.payload = None;
    edited.download_for_uninstall = false;
    edited.upgrade_behavior = UpgradeBehavior::ImplicitRemove;
    edited.compatibility = Compatibility::default();
    store.update_package(&edited).unwrap();
    assert_eq!(store.package(v1.id).unwrap(), edited);
    // A payload's size and digest are kept as given, and so is a payload stored before the
    // stores kept them.
    for payload in [
        Payload::new(u64::try_from(i64::MAX).unwrap(), Sha256Digest([0xff; 32])),
        Payload::new(0, Sha256Digest([0; 32])),
        Payload::Unknown,
    ] {
        let mut with = edited.clone();
        with.payload = Some(payload);
        store.update_package(&with).unwrap();
        assert_eq!(store.package(v1.id).unwrap(), with);
    }
    store.update_package(&edited).unwrap();
    assert_eq!(store.package(v1.id).unwrap(), edited);
    let mut clash = v2.clone();
    clash.version = name("1.0");
    assert_err(
        store.update_package(&clash),
        "Duplicate",
        "version onto a taken one",
    );
    let mut ghost = v1.clone();
    ghost.id = PackageId(v2.id.0 + 100);
    assert_err(
        store.update_package(&ghost),
        "NotFound",
        "update of a missing package",
    );
    assert_err(store.package(ghost.id), "NotFound", "missing package");

    // v2 depends on v1: v1 may not depend on v2, nor on itself; both stores say why the same way.
    let reason = |result: StoreResult<()>| match result {
        Err(StoreError::Invalid { reason }) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let mut circular = edited.clone();
    circular.dependencies = vec![v2.id];
    assert_eq!(
        reason(store.update_package(&circular)),
        format!(
            "dependency cycle: package {} → {} → {}",
            v1.id, v2.id, v1.id
        )
    );
    circular.dependencies = vec![v1.id];
    assert_eq!(
        reason(store.update_package(&circular)),
        "a package cannot depend on itself"
    );
    assert_eq!(store.package(v1.id).unwrap(), edited, "nothing written");

    let all = store.list_packages(Page::first(10)).unwrap();
    assert_eq!(all, vec![edited, v2]);
    assert_eq!(store.list_families(Page::first(10)).unwrap(), vec![family]);
}

/// Computer groups: parents, cycles refused, members replaced.
pub fn computer_groups(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let top = store.create_computer_group(name("top"), None).unwrap();
    let mid = store
        .create_computer_group(name("mid"), Some(top.id))
        .unwrap();
    let low = store
        .create_computer_group(name("low"), Some(mid.id))
        .unwrap();
    assert_eq!(mid.parent, Some(top.id));
    let missing = crate::model::ComputerGroupId(low.id.0 + 100);
    assert_err(
        store.create_computer_group(name("x"), Some(missing)),
        "Invalid",
        "unknown parent",
    );
    assert_err(
        store.set_computer_group_parent(top.id, Some(low.id)),
        "Invalid",
        "a cycle through a grandchild",
    );
    assert_err(
        store.set_computer_group_parent(top.id, Some(top.id)),
        "Invalid",
        "a group its own parent",
    );
    assert_err(
        store.set_computer_group_parent(missing, None),
        "NotFound",
        "moving a missing group",
    );
    store
        .set_computer_group_parent(low.id, Some(top.id))
        .unwrap();
    store.set_computer_group_parent(mid.id, None).unwrap();

    let [pc1, pc2] = &f.computers;
    store
        .set_computer_group_members(top.id, &[pc2.id, pc1.id])
        .unwrap();
    store.set_computer_group_members(mid.id, &[pc1.id]).unwrap();
    store.set_computer_group_members(mid.id, &[pc2.id]).unwrap();
    assert_err(
        store.set_computer_group_members(top.id, &[ComputerId(pc2.id.0 + 100)]),
        "Invalid",
        "unknown member",
    );
    assert_err(
        store.set_computer_group_members(missing, &[]),
        "NotFound",
        "members of a missing group",
    );
    let groups = store.computer_groups().unwrap();
    let mut top_members = groups[0].1.clone();
    top_members.sort();
    assert_eq!(
        groups.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(),
        vec![
            top.clone(),
            ComputerGroup {
                parent: None,
                ..mid.clone()
            },
            ComputerGroup {
                parent: Some(top.id),
                ..low.clone()
            },
        ]
    );
    assert_eq!(top_members, vec![pc1.id, pc2.id]);
    assert_eq!(groups[1].1, vec![pc2.id], "members are replaced");
    assert!(groups[2].1.is_empty());
}

/// Package groups: parents, cycles refused, members replaced and kept in order.
pub fn package_groups(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let top = store.create_package_group(name("top"), None).unwrap();
    let low = store
        .create_package_group(name("low"), Some(top.id))
        .unwrap();
    let missing = crate::model::PackageGroupId(low.id.0 + 100);
    assert_err(
        store.create_package_group(name("x"), Some(missing)),
        "Invalid",
        "unknown parent",
    );
    assert_err(
        store.set_package_group_parent(top.id, Some(low.id)),
        "Invalid",
        "a cycle",
    );
    assert_err(
        store.set_package_group_parent(missing, None),
        "NotFound",
        "moving a missing group",
    );
    let order = [f.other.id, f.packages[1].id, f.packages[0].id];
    store.set_package_group_members(top.id, &order).unwrap();
    assert_err(
        store.set_package_group_members(top.id, &[PackageId(f.other.id.0 + 100)]),
        "Invalid",
        "unknown member",
    );
    assert_err(
        store.set_package_group_members(missing, &[]),
        "NotFound",
        "members of a missing group",
    );
    let groups = store.package_groups().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0],
        (top.clone(), order.to_vec()),
        "members keep their order"
    );
    assert_eq!(groups[1], (low.clone(), vec![]));
    store
        .set_package_group_members(top.id, &[f.packages[0].id])
        .unwrap();
    store.set_package_group_parent(low.id, None).unwrap();
    let groups = store.package_groups().unwrap();
    assert_eq!(groups[0].1, vec![f.packages[0].id]);
    assert_eq!(groups[1].0.parent, None);
}

/// Rules: every field (the policy's constraints included) round-trips; groups are checked.
pub fn rules_round_trip(make: MakeStore<'_>) {
    let store = make();
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let created = store.create_rule(rule("r", cg.id, pg.id)).unwrap();
    let expected = rule("r", cg.id, pg.id).with_id(created.id);
    assert_eq!(created, expected);
    assert_eq!(store.rule(created.id).unwrap(), expected);
    assert_eq!(
        store.rule(created.id).unwrap().policy.ip_ranges.to_string(),
        policy().ip_ranges.to_string()
    );
    assert_err(
        store.create_rule(rule(
            "bad",
            crate::model::ComputerGroupId(cg.id.0 + 100),
            pg.id,
        )),
        "Invalid",
        "unknown computer group",
    );
    assert_err(
        store.create_rule(rule(
            "bad",
            cg.id,
            crate::model::PackageGroupId(pg.id.0 + 100),
        )),
        "Invalid",
        "unknown package group",
    );
    let mut edited = created.clone();
    edited.name = name("renamed");
    edited.notes = String::new();
    edited.enabled = true;
    edited.policy = DeliveryPolicy::new(chrono_tz::Tz::America__New_York);
    store.update_rule(&edited).unwrap();
    assert_eq!(store.rule(created.id).unwrap(), edited);
    let mut ghost = edited.clone();
    ghost.id = RuleId(created.id.0 + 100);
    assert_err(
        store.update_rule(&ghost),
        "NotFound",
        "update of a missing rule",
    );
    assert_err(store.rule(ghost.id), "NotFound", "missing rule");
    assert_eq!(store.list_rules(Page::first(10)).unwrap(), vec![edited]);
}

/// Containers and jobs: every field round-trips through create, update and reload.
pub fn containers_and_jobs_round_trip(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pc = f.computers[0].id;
    let mut given = job(Origin::Rule(RuleId(77)), pc, &f.packages[0], 1);
    given.id = JobId(555);
    given.revision = Revision(9);
    let (cid, jobs) = create_container(store.as_ref(), "c", vec![given.clone()]);
    let mut expected_container = container("c");
    expected_container.id = cid;
    assert_eq!(store.container(cid).unwrap(), expected_container);
    assert_eq!(jobs.len(), 1);
    let stored = store.job(jobs[0]).unwrap();
    let mut expected = given.clone();
    expected.id = jobs[0];
    expected.origin = Origin::Container(cid);
    expected.revision = Revision(1);
    assert_eq!(stored, expected, "origin and revision are the store's");

    let mut edited = stored.clone();
    edited.snapshot = crate::model::JobSnapshot::of(&f.packages[0], JobKind::Uninstall);
    edited.sequence = 4;
    edited.state = JobState::Failed;
    edited.download_progress = Some(101);
    edited.return_code = Some(-8888);
    edited.output = "line one\nline two ✓".into();
    edited.message = Some(MessageCode::AbortedAfterFailed);
    edited.download_started = Some(at(10));
    edited.execution_started = Some(at(20));
    edited.finished = Some(at(30));
    edited.last_report = Some(at(25));
    edited.wol_shutdown = Some(WolShutdown::Pending { since: at(3) });
    edited.attempt = 3;
    edited.revision = Revision(1000);
    apply(
        store.as_ref(),
        vec![Change::UpdateJob {
            expected: Revision(1),
            job: edited.clone(),
        }],
    );
    edited.revision = Revision(2);
    assert_eq!(
        store.job(jobs[0]).unwrap(),
        edited,
        "every job field round-trips"
    );
    let mut confirmed = edited.clone();
    confirmed.wol_shutdown = Some(WolShutdown::Confirmed);
    apply(
        store.as_ref(),
        vec![Change::UpdateJob {
            expected: Revision(2),
            job: confirmed.clone(),
        }],
    );
    confirmed.revision = Revision(3);
    assert_eq!(store.job(jobs[0]).unwrap(), confirmed);

    let mut changed = expected_container.clone();
    changed.name = name("renamed");
    changed.notes = String::new();
    changed.enabled = false;
    changed.schedule = Schedule::new(at(100), None).unwrap();
    changed.policy = DeliveryPolicy::new(chrono_tz::Tz::UTC);
    changed.wol = WolSettings::default();
    changed.self_service = false;
    apply(
        store.as_ref(),
        vec![Change::UpdateContainer {
            container: changed.clone(),
        }],
    );
    assert_eq!(store.container(cid).unwrap(), changed);
    assert_eq!(
        store.job(jobs[0]).unwrap(),
        confirmed,
        "updating a container leaves its jobs"
    );
    assert_err(
        store.container(ContainerId(cid.0 + 100)),
        "NotFound",
        "missing container",
    );
    assert_err(store.job(JobId(jobs[0].0 + 100)), "NotFound", "missing job");
}

/// Ids increase per kind, and job ids are unique across containers and rules.
pub fn ids_are_sequential_and_unique(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    assert!(f.computers[0].id < f.computers[1].id);
    assert!(f.packages[0].id < f.packages[1].id && f.packages[1].id < f.other.id);
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let r = store.create_rule(rule("r", cg.id, pg.id)).unwrap();
    let pc = f.computers[0].id;
    let (c1, j1) = create_container(
        store.as_ref(),
        "c1",
        vec![
            job(Origin::Container(ContainerId(0)), pc, &f.packages[0], 1),
            job(Origin::Container(ContainerId(0)), pc, &f.packages[1], 2),
        ],
    );
    let rule_job = apply(
        store.as_ref(),
        vec![Change::InsertJob {
            job: job(Origin::Rule(r.id), pc, &f.other, 1),
        }],
    )
    .jobs;
    let (c2, j2) = create_container(
        store.as_ref(),
        "c2",
        vec![job(Origin::Container(ContainerId(0)), pc, &f.other, 1)],
    );
    assert!(c1 < c2);
    let all: Vec<JobId> = [j1, rule_job, j2].concat();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "job ids increase across containers and rules: {all:?}"
    );
    let listed: Vec<JobId> = store
        .list_jobs(&JobFilter::default(), Page::first(10))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, all);
}

/// Two updates computed from the same revision: the second is a conflict.
pub fn update_job_is_compare_and_set(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let (_, jobs) = create_container(
        store.as_ref(),
        "c",
        vec![job(
            Origin::Container(ContainerId(0)),
            f.computers[0].id,
            &f.packages[0],
            1,
        )],
    );
    let read = store.job(jobs[0]).unwrap();
    let mut first = read.clone();
    first.state = JobState::Downloading;
    let mut second = read.clone();
    second.state = JobState::Executing;
    apply(
        store.as_ref(),
        vec![Change::UpdateJob {
            expected: read.revision,
            job: first.clone(),
        }],
    );
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::UpdateJob {
                expected: read.revision,
                job: second,
            }],
        }),
        "Conflict",
        "second update from the same revision",
    );
    let stored = store.job(jobs[0]).unwrap();
    assert_eq!(stored.state, JobState::Downloading);
    assert_eq!(stored.revision, read.revision.next());
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::DeleteJob {
                id: jobs[0],
                computer: read.computer,
                expected: read.revision,
                at: at(40),
            }],
        }),
        "Conflict",
        "delete from a stale revision",
    );
    assert_eq!(store.job(jobs[0]).unwrap(), stored);
}

/// A change set may update a job twice, the second expecting the revision after the first.
pub fn same_job_updated_twice_in_one_set(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let (_, jobs) = create_container(
        store.as_ref(),
        "c",
        vec![job(
            Origin::Container(ContainerId(0)),
            f.computers[0].id,
            &f.packages[0],
            1,
        )],
    );
    let read = store.job(jobs[0]).unwrap();
    let mut first = read.clone();
    first.state = JobState::Downloading;
    let mut second = read.clone();
    second.state = JobState::Succeeded;
    apply(
        store.as_ref(),
        vec![
            Change::UpdateJob {
                expected: Revision(1),
                job: first,
            },
            Change::UpdateJob {
                expected: Revision(2),
                job: second,
            },
        ],
    );
    let stored = store.job(jobs[0]).unwrap();
    assert_eq!(
        (stored.state, stored.revision),
        (JobState::Succeeded, Revision(3))
    );
}

/// A deleted job is gone from the listings, but a report on it still finds its tombstone.
pub fn delete_job_keeps_a_tombstone(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let r = store.create_rule(rule("r", cg.id, pg.id)).unwrap();
    let pc = f.computers[0].id;
    let ids = apply(
        store.as_ref(),
        vec![
            Change::InsertJob {
                job: job(Origin::Rule(r.id), pc, &f.packages[0], 1),
            },
            Change::InsertJob {
                job: job(Origin::Rule(r.id), pc, &f.packages[1], 2),
            },
        ],
    )
    .jobs;
    let doomed = store.job(ids[0]).unwrap();
    apply(
        store.as_ref(),
        vec![Change::DeleteJob {
            id: ids[0],
            computer: pc,
            expected: Revision(1),
            at: at(40),
        }],
    );
    assert_err(store.job(ids[0]), "NotFound", "a deleted job");
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), Page::first(10))
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        vec![ids[1]]
    );
    let report = store.report_snapshot(ids[0]).unwrap();
    assert!(report.deleted, "a tombstone is marked deleted");
    assert_eq!(report.job, doomed);
    assert_eq!(report.sequence_mode, SequenceMode::AbortAfterFailed);
    assert_eq!(
        report.origin_jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert!(!store.report_snapshot(ids[1]).unwrap().deleted);
    assert_err(
        store.report_snapshot(JobId(ids[1].0 + 100)),
        "NotFound",
        "report on a job that never existed",
    );
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::DeleteJob {
                id: ids[0],
                computer: pc,
                expected: Revision(1),
                at: at(40),
            }],
        }),
        "Conflict",
        "deleting a deleted job",
    );
}

/// A change set whose last precondition fails changes nothing, not even what it created first.
pub fn failing_change_set_changes_nothing(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pc = f.computers[0].id;
    let (cid, jobs) = create_container(
        store.as_ref(),
        "c",
        vec![job(
            Origin::Container(ContainerId(0)),
            pc,
            &f.packages[0],
            1,
        )],
    );
    let before = dump(store.as_ref());
    let mut updated = store.job(jobs[0]).unwrap();
    updated.state = JobState::Succeeded;
    let failing = ChangeSet {
        changes: vec![
            Change::CreateContainer {
                container: container("new"),
                jobs: vec![job(
                    Origin::Container(ContainerId(0)),
                    pc,
                    &f.packages[1],
                    1,
                )],
            },
            Change::InsertJob {
                job: job(Origin::Container(cid), pc, &f.other, 2),
            },
            Change::UpdateJob {
                expected: Revision(1),
                job: updated,
            },
            Change::UpsertAssignment {
                assignment: Assignment {
                    computer: pc,
                    package: f.packages[0].id,
                    installed_at: at(1),
                    job: Some(jobs[0]),
                },
            },
            Change::ExpectAssignments {
                computer: pc,
                expected: Revision(0),
            },
            Change::UpdateJob {
                expected: Revision(7),
                job: store.job(jobs[0]).unwrap(),
            },
        ],
    };
    assert_err(
        store.apply(&failing),
        "Conflict",
        "the last precondition fails",
    );
    assert_eq!(
        dump(store.as_ref()),
        before,
        "a failed change set changed something"
    );
    assert!(!store.report_snapshot(jobs[0]).unwrap().deleted);
    // The store still works, and what the failed set created does not exist.
    let (next, _) = create_container(store.as_ref(), "after", vec![]);
    assert!(next > cid);
    assert_eq!(store.list_containers(Page::first(10)).unwrap().len(), 2);
}

/// Assignment revisions start at 0 and move at every assignment change; ExpectAssignments
/// checks them.
pub fn assignment_revisions(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    assert_eq!(store.assignments(pc1).unwrap(), (vec![], Revision(0)));
    let assignment = Assignment {
        computer: pc1,
        package: f.packages[0].id,
        installed_at: at(10),
        job: None,
    };
    apply(
        store.as_ref(),
        vec![
            Change::ExpectAssignments {
                computer: pc1,
                expected: Revision(0),
            },
            Change::UpsertAssignment {
                assignment: assignment.clone(),
            },
        ],
    );
    assert_eq!(
        store.assignments(pc1).unwrap(),
        (vec![assignment.clone()], Revision(1))
    );
    assert_eq!(
        store.assignments(pc2).unwrap().1,
        Revision(0),
        "per computer"
    );
    let stale = ChangeSet {
        changes: vec![
            Change::DeleteAssignment {
                computer: pc1,
                package: f.packages[0].id,
            },
            Change::ExpectAssignments {
                computer: pc1,
                expected: Revision(0),
            },
        ],
    };
    assert_err(
        store.apply(&stale),
        "Conflict",
        "a stale assignment revision",
    );
    assert_eq!(
        store.assignments(pc1).unwrap(),
        (vec![assignment.clone()], Revision(1))
    );
    // Replacing bumps; deleting a missing record does not.
    let replaced = Assignment {
        installed_at: at(20),
        ..assignment.clone()
    };
    apply(
        store.as_ref(),
        vec![Change::UpsertAssignment {
            assignment: replaced.clone(),
        }],
    );
    apply(
        store.as_ref(),
        vec![Change::DeleteAssignment {
            computer: pc1,
            package: f.other.id,
        }],
    );
    assert_eq!(
        store.assignments(pc1).unwrap(),
        (vec![replaced], Revision(2))
    );
    apply(
        store.as_ref(),
        vec![Change::DeleteAssignment {
            computer: pc1,
            package: f.packages[0].id,
        }],
    );
    assert_eq!(store.assignments(pc1).unwrap(), (vec![], Revision(3)));
    assert_err(
        store.assignments(ComputerId(pc2.0 + 100)),
        "NotFound",
        "assignments of a missing computer",
    );
}

/// In `apply_many` a failing set changes nothing and the others are applied.
pub fn apply_many_isolates_failures(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pc = f.computers[0].id;
    let (cid, jobs) = create_container(
        store.as_ref(),
        "c",
        vec![job(
            Origin::Container(ContainerId(0)),
            pc,
            &f.packages[0],
            1,
        )],
    );
    let read = store.job(jobs[0]).unwrap();
    let mut running = read.clone();
    running.state = JobState::Executing;
    let mut other = read.clone();
    other.state = JobState::Failed;
    let sets = [
        ChangeSet {
            changes: vec![Change::UpdateJob {
                expected: Revision(1),
                job: running,
            }],
        },
        ChangeSet {
            changes: vec![
                Change::InsertJob {
                    job: job(Origin::Container(cid), pc, &f.other, 2),
                },
                Change::UpdateJob {
                    expected: Revision(1),
                    job: other,
                },
            ],
        },
        ChangeSet {
            changes: vec![Change::UpsertAssignment {
                assignment: Assignment {
                    computer: pc,
                    package: f.packages[1].id,
                    installed_at: at(0),
                    job: None,
                },
            }],
        },
    ];
    let results = store.apply_many(&sets);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "first set: {:?}", results[0]);
    assert_err(
        results.into_iter().nth(1).unwrap(),
        "Conflict",
        "the second set conflicts with the first",
    );
    let stored = store.job(jobs[0]).unwrap();
    assert_eq!(
        (stored.state, stored.revision),
        (JobState::Executing, Revision(2))
    );
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), Page::first(10))
            .unwrap()
            .len(),
        1,
        "the failed set's insert is not there"
    );
    assert_eq!(
        store.assignments(pc).unwrap().0.len(),
        1,
        "third set applied"
    );
    assert!(store.apply_many(&[]).is_empty());
}

/// A batch of hellos (`apply_many` of sets holding one `SetCredentials` each, as the server's
/// group commit makes them): each set's result is its own and the same as applied alone, one
/// after the other, whatever the others' are: written as expected, a conflict, a first write,
/// a missing computer, two sets of one computer (the second expecting the first's write), and a
/// set writing more than the credentials.
pub fn hellos_in_one_batch_have_their_own_results(make: MakeStore<'_>) {
    let store = make();
    let pcs = create_computers(store.as_ref(), (0..6).map(|i| format!("pc{i}")));
    let hello = |computer: usize, seconds: i64| AgentCredentials {
        agent_key: Some(format!("agent {computer}")),
        previous_agent_key: (seconds.rem_euclid(2) == 0).then(|| "previous".to_string()),
        server_key: Some(format!("server {computer}")),
        last_hello: Some(1_700_000_000.0 + seconds as f64 + 0.25),
        last_reply: Some(1_700_000_000.0 + seconds as f64 + 0.5),
        last_contact: Some(crate::store::AgentContact {
            at: at(seconds),
            address: format!("10.0.0.{computer}").parse().unwrap(),
            agent_version: computer.is_multiple_of(2).then(|| "1.1".to_string()),
        }),
    };
    let set =
        |computer: usize, expected: AgentCredentials, credentials: AgentCredentials| ChangeSet {
            changes: vec![Change::SetCredentials {
                computer: pcs[computer],
                expected,
                credentials,
            }],
        };
    for computer in 0..4 {
        store
            .apply(&set(
                computer,
                AgentCredentials::default(),
                hello(computer, 1),
            ))
            .unwrap();
    }
    let missing = ComputerId(pcs[5].0 + 100);
    let mut sets = vec![
        set(0, hello(0, 1), hello(0, 2)),
        set(1, hello(1, 1), hello(1, 2)),
        // Computed from credentials older than the stored ones.
        set(2, AgentCredentials::default(), hello(2, 2)),
        // pc4's first hello.
        set(4, AgentCredentials::default(), hello(4, 2)),
        ChangeSet {
            changes: vec![Change::SetCredentials {
                computer: missing,
                expected: AgentCredentials::default(),
                credentials: hello(9, 2),
            }],
        },
        // Two hellos of pc3, the second computed from the first's write.
        set(3, hello(3, 1), hello(3, 2)),
        set(3, hello(3, 2), hello(3, 3)),
    ];
    sets.push(ChangeSet {
        changes: vec![
            Change::SetCredentials {
                computer: pcs[5],
                expected: AgentCredentials::default(),
                credentials: hello(5, 2),
            },
            Change::SetLastSeen {
                computer: pcs[5],
                at: at(7),
            },
        ],
    });
    let results = store.apply_many(&sets);
    assert_eq!(results.len(), sets.len());
    let kinds: Vec<&str> = results
        .iter()
        .map(|result| match result {
            Ok(_) => "Ok",
            Err(StoreError::Conflict { .. }) => "Conflict",
            Err(StoreError::NotFound { .. }) => "NotFound",
            Err(_) => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["Ok", "Ok", "Conflict", "Ok", "NotFound", "Ok", "Ok", "Ok"]
    );
    let stored: Vec<AgentCredentials> = pcs
        .iter()
        .map(|&pc| store.credentials(pc).unwrap())
        .collect();
    assert_eq!(
        stored,
        vec![
            hello(0, 2),
            hello(1, 2),
            hello(2, 1),
            hello(3, 3),
            hello(4, 2),
            hello(5, 2)
        ]
    );
    assert_eq!(store.computer(pcs[5]).unwrap().last_seen, Some(at(7)));
    assert_err(store.credentials(missing), "NotFound", "no such computer");

    // The same batch again: every set was computed from credentials no longer stored (or its
    // computer is missing), so nothing is written.
    let again = store.apply_many(&sets);
    assert!(again.iter().all(|result| result.is_err()), "{again:?}");
    let unchanged: Vec<AgentCredentials> = pcs
        .iter()
        .map(|&pc| store.credentials(pc).unwrap())
        .collect();
    assert_eq!(unchanged, stored);
}

/// Unknown targets are NotFound, unknown references Invalid; nothing is written.
pub fn invalid_references(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pc = f.computers[0].id;
    let (cid, jobs) = create_container(
        store.as_ref(),
        "c",
        vec![job(
            Origin::Container(ContainerId(0)),
            pc,
            &f.packages[0],
            1,
        )],
    );
    let before = dump(store.as_ref());
    let ghost_pc = ComputerId(f.computers[1].id.0 + 100);
    let ghost_pkg = PackageId(f.other.id.0 + 100);
    let mut ghost_job = store.job(jobs[0]).unwrap();
    ghost_job.id = JobId(jobs[0].0 + 100);
    let mut ghost_container = container("ghost");
    ghost_container.id = ContainerId(cid.0 + 100);
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "InsertJob on an unknown computer",
            Change::InsertJob {
                job: job(Origin::Container(cid), ghost_pc, &f.other, 2),
            },
            "Invalid",
        ),
        (
            "InsertJob of an unknown package",
            Change::InsertJob {
                job: Job {
                    package: ghost_pkg,
                    ..job(Origin::Container(cid), pc, &f.other, 2)
                },
            },
            "Invalid",
        ),
        (
            "InsertJob into an unknown container",
            Change::InsertJob {
                job: job(Origin::Container(ghost_container.id), pc, &f.other, 2),
            },
            "Invalid",
        ),
        (
            "InsertJob into an unknown rule",
            Change::InsertJob {
                job: job(Origin::Rule(RuleId(99)), pc, &f.other, 2),
            },
            "Invalid",
        ),
        (
            "CreateContainer with a job on an unknown computer",
            Change::CreateContainer {
                container: container("x"),
                jobs: vec![job(Origin::Container(cid), ghost_pc, &f.other, 1)],
            },
            "Invalid",
        ),
        (
            "UpdateJob of a missing job (deleted since it was read: reload)",
            Change::UpdateJob {
                expected: Revision(1),
                job: ghost_job.clone(),
            },
            "Conflict",
        ),
        (
            "DeleteJob of a missing job",
            Change::DeleteJob {
                id: ghost_job.id,
                computer: ghost_job.computer,
                expected: Revision(1),
                at: at(40),
            },
            "Conflict",
        ),
        (
            "UpdateContainer of a missing container",
            Change::UpdateContainer {
                container: ghost_container.clone(),
            },
            "NotFound",
        ),
        (
            "DeleteContainer of a missing container",
            Change::DeleteContainer {
                id: ghost_container.id,
                jobs: vec![],
                at: at(0),
            },
            "NotFound",
        ),
        (
            "DeleteJob naming a computer other than the job's",
            Change::DeleteJob {
                id: jobs[0],
                computer: f.computers[1].id,
                expected: Revision(1),
                at: at(40),
            },
            "Invalid",
        ),
        (
            "UpsertAssignment on an unknown computer",
            Change::UpsertAssignment {
                assignment: Assignment {
                    computer: ghost_pc,
                    package: f.other.id,
                    installed_at: at(0),
                    job: None,
                },
            },
            "Invalid",
        ),
        (
            "UpsertAssignment of an unknown package",
            Change::UpsertAssignment {
                assignment: Assignment {
                    computer: pc,
                    package: ghost_pkg,
                    installed_at: at(0),
                    job: None,
                },
            },
            "Invalid",
        ),
    ];
    for (context, change, expected) in cases {
        let set = ChangeSet {
            changes: vec![
                Change::InsertJob {
                    job: job(Origin::Container(cid), pc, &f.packages[1], 3),
                },
                change,
            ],
        };
        assert_err(store.apply(&set), expected, context);
        assert_eq!(dump(store.as_ref()), before, "{context} changed something");
    }
    // ExpectAssignments of a missing computer: any error, nothing written.
    let set = ChangeSet {
        changes: vec![Change::ExpectAssignments {
            computer: ghost_pc,
            expected: Revision(0),
        }],
    };
    assert!(
        store.apply(&set).is_err(),
        "ExpectAssignments of a missing computer"
    );
    assert_eq!(dump(store.as_ref()), before);
}

/// Lists come by id, in pages of `limit` after `after`.
/// A listing cuts each job's output to the characters asked for, says whether it did, and lists
/// the same jobs as [`Store::list_jobs`]; the stored output stays whole.
pub fn listings_abridge_outputs(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let outputs = [
        String::new(),
        "short".to_owned(),
        "x".repeat(8),
        "é".repeat(9),
        format!("{}\n{}", "ü".repeat(50_000), "tail"),
    ];
    let jobs = outputs
        .iter()
        .map(|output| {
            let mut j = job(
                Origin::Container(ContainerId(0)),
                f.computers[0].id,
                &f.packages[0],
                1,
            );
            j.output = output.clone();
            j
        })
        .collect();
    let (_, ids) = create_container(store.as_ref(), "c", jobs);
    for (filter, page) in [
        (JobFilter::default(), Page::first(100)),
        (JobFilter::default(), Page::first(2)),
        (
            JobFilter::default(),
            Page {
                after: Some(ids[1].0),
                limit: 100,
            },
        ),
        (
            JobFilter {
                computer: Some(f.computers[1].id),
                ..JobFilter::default()
            },
            Page::first(100),
        ),
    ] {
        for chars in [0, 1, 8, 100] {
            let expected: Vec<ListedJob> = store
                .list_jobs(&filter, page)
                .unwrap()
                .into_iter()
                .map(|job| ListedJob::abridge(job, chars))
                .collect();
            let listed = store.list_jobs_abridged(&filter, page, chars).unwrap();
            assert_eq!(listed, expected, "{filter:?} {page:?}, {chars} characters");
        }
    }
    let listed = store
        .list_jobs_abridged(&JobFilter::default(), Page::first(100), 8)
        .unwrap();
    let cut: Vec<(String, bool)> = listed
        .iter()
        .map(|listed| (listed.job.output.clone(), listed.output_truncated))
        .collect();
    assert_eq!(
        cut,
        [
            (String::new(), false),
            ("short".to_owned(), false),
            ("x".repeat(8), false),
            ("é".repeat(8), true),
            ("ü".repeat(8), true),
        ]
    );
    assert_eq!(
        store.job(ids[4]).unwrap().output,
        outputs[4],
        "stored whole"
    );
}

/// Pages of computers and of jobs, with filters.
pub fn paging(make: MakeStore<'_>) {
    let store = make();
    let ids = create_computers(store.as_ref(), (0..5).map(|i| format!("pc{i}")));
    let page = |after: Option<i64>, limit| -> Vec<ComputerId> {
        store
            .list_computers(Page { after, limit })
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(page(None, 2), ids[..2]);
    assert_eq!(page(Some(ids[1].0), 2), ids[2..4]);
    assert_eq!(page(Some(ids[3].0), 2), ids[4..]);
    assert_eq!(page(Some(ids[4].0), 2), vec![]);
    assert_eq!(page(None, 0), vec![]);
    assert_eq!(page(None, 100), ids);
    assert_eq!(page(Some(ids[0].0 - 1), 100), ids);

    // Jobs: filters and pages together.
    let family = store.create_family(name("f")).unwrap();
    let p1 = store
        .create_package(package(family.id, "1", vec![]))
        .unwrap();
    let p2 = store
        .create_package(package(family.id, "2", vec![]))
        .unwrap();
    let mut jobs = Vec::new();
    for (i, pc) in ids.iter().enumerate() {
        for p in [&p1, &p2] {
            let mut j = job(Origin::Container(ContainerId(0)), *pc, p, 1);
            if i % 2 == 0 {
                j.state = JobState::Succeeded;
            }
            jobs.push(j);
        }
    }
    let (cid, job_ids) = create_container(store.as_ref(), "c", jobs);
    let (_, other_ids) = create_container(
        store.as_ref(),
        "d",
        vec![job(Origin::Container(ContainerId(0)), ids[0], &p1, 1)],
    );
    let listed = |filter: &JobFilter, page: Page| -> Vec<JobId> {
        store
            .list_jobs(filter, page)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    let by_p1 = JobFilter {
        package: Some(p1.id),
        ..JobFilter::default()
    };
    let p1_jobs: Vec<JobId> = job_ids
        .iter()
        .step_by(2)
        .copied()
        .chain(other_ids.iter().copied())
        .collect();
    assert_eq!(listed(&by_p1, Page::first(100)), p1_jobs);
    assert_eq!(listed(&by_p1, Page::first(2)), p1_jobs[..2]);
    assert_eq!(
        listed(
            &by_p1,
            Page {
                after: Some(p1_jobs[1].0),
                limit: 3
            }
        ),
        p1_jobs[2..5]
    );
    let filter = JobFilter {
        origin: Some(Origin::Container(cid)),
        computer: Some(ids[1]),
        package: Some(p2.id),
        state: Some(JobState::Waiting),
    };
    assert_eq!(listed(&filter, Page::first(100)), vec![job_ids[3]]);
    let succeeded = JobFilter {
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    };
    assert_eq!(listed(&succeeded, Page::first(100)).len(), 6);
    let on_pc0 = JobFilter {
        computer: Some(ids[0]),
        ..JobFilter::default()
    };
    assert_eq!(
        listed(&on_pc0, Page::first(100)),
        vec![job_ids[0], job_ids[1], other_ids[0]]
    );

    // The other lists page the same way.
    let families: Vec<FamilyId> = (0..3)
        .map(|i| store.create_family(name(&format!("g{i}"))).unwrap().id)
        .collect();
    let families_page = store
        .list_families(Page {
            after: Some(families[0].0),
            limit: 2,
        })
        .unwrap();
    assert_eq!(
        families_page.iter().map(|f| f.id).collect::<Vec<_>>(),
        families[1..]
    );
    let packages = store
        .list_packages(Page {
            after: Some(p1.id.0),
            limit: 5,
        })
        .unwrap();
    assert_eq!(packages, vec![p2.clone()]);
    let containers = store.list_containers(Page::first(1)).unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].id, cid);
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let r1 = store.create_rule(rule("r1", cg.id, pg.id)).unwrap();
    let r2 = store.create_rule(rule("r2", cg.id, pg.id)).unwrap();
    assert_eq!(
        store
            .list_rules(Page {
                after: Some(r1.id.0),
                limit: 5
            })
            .unwrap(),
        vec![r2]
    );
}

/// A computer's assignments come oldest first, then by package id.
pub fn assignments_oldest_first(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pc = f.computers[0].id;
    let record = |package: PackageId, seconds| Assignment {
        computer: pc,
        package,
        installed_at: at(seconds),
        job: None,
    };
    let a = record(f.other.id, 5);
    let b = record(f.packages[1].id, 10);
    let c = record(f.packages[0].id, 10);
    apply(
        store.as_ref(),
        vec![
            Change::UpsertAssignment {
                assignment: b.clone(),
            },
            Change::UpsertAssignment {
                assignment: a.clone(),
            },
            Change::UpsertAssignment {
                assignment: c.clone(),
            },
        ],
    );
    let (list, revision) = store.assignments(pc).unwrap();
    assert_eq!(list, vec![a, c, b]);
    assert_eq!(revision, Revision(3));
}

struct World {
    f: Fixture,
    container: ContainerId,
    rule: RuleId,
    /// pc1: Failed 3, Waiting 4, Succeeded 2, Failed 1; pc2: Failed 1, Waiting 2.
    container_jobs: Vec<JobId>,
    rule_jobs: Vec<JobId>,
}

fn world(store: &dyn Store) -> World {
    let f = fixture(store);
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let r = store.create_rule(rule("r", cg.id, pg.id)).unwrap();
    let with = |mut j: Job, state| {
        j.state = state;
        j
    };
    let c0 = Origin::Container(ContainerId(0));
    let (cid, container_jobs) = create_container(
        store,
        "c",
        vec![
            with(job(c0, pc1, &f.packages[0], 3), JobState::Failed),
            with(job(c0, pc1, &f.packages[1], 4), JobState::Waiting),
            with(job(c0, pc1, &f.other, 2), JobState::Succeeded),
            with(job(c0, pc1, &f.other, 1), JobState::Failed),
            with(job(c0, pc2, &f.packages[0], 1), JobState::Failed),
            with(job(c0, pc2, &f.packages[1], 2), JobState::Waiting),
        ],
    );
    let rule_jobs = apply(
        store,
        vec![
            Change::InsertJob {
                job: with(
                    job(Origin::Rule(r.id), pc1, &f.other, 1),
                    JobState::Downloading,
                ),
            },
            Change::InsertJob {
                job: with(
                    job(Origin::Rule(r.id), pc1, &f.packages[0], 2),
                    JobState::Executing,
                ),
            },
            Change::InsertJob {
                job: with(job(Origin::Rule(r.id), pc2, &f.other, 1), JobState::Expired),
            },
        ],
    )
    .jobs;
    World {
        f,
        container: cid,
        rule: r.id,
        container_jobs,
        rule_jobs,
    }
}

/// The planner snapshot has the computer, its pending jobs only, and per origin its fields and
/// this computer's Failed jobs by sequence.
pub fn planner_snapshot_contents(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let pc1 = &w.f.computers[0];
    let snapshot = store.planner_snapshot(pc1.id).unwrap();
    assert_eq!(&snapshot.computer, pc1);
    let mut jobs: Vec<JobId> = snapshot.jobs.iter().map(|j| j.id).collect();
    jobs.sort();
    assert_eq!(
        jobs,
        vec![w.container_jobs[1], w.rule_jobs[0], w.rule_jobs[1]]
    );
    for j in &snapshot.jobs {
        assert_eq!(j, &store.job(j.id).unwrap());
    }
    let c = store.container(w.container).unwrap();
    let r = store.rule(w.rule).unwrap();
    let expected: BTreeMap<Origin, OriginInfo> = [
        (
            Origin::Container(w.container),
            OriginInfo {
                enabled: c.enabled,
                created_at: c.created_at,
                schedule: Some(c.schedule),
                policy: Ok(c.policy.clone()),
                failed: vec![
                    super::FailedJob {
                        id: w.container_jobs[3],
                        sequence: 1,
                    },
                    super::FailedJob {
                        id: w.container_jobs[0],
                        sequence: 3,
                    },
                ],
            },
        ),
        (
            Origin::Rule(w.rule),
            OriginInfo {
                enabled: r.enabled,
                created_at: r.created_at,
                schedule: None,
                policy: Ok(r.policy.clone()),
                failed: vec![],
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(snapshot.origins, expected);

    // pc2 has one pending job, in the container; its own Failed job only.
    let snapshot = store.planner_snapshot(w.f.computers[1].id).unwrap();
    assert_eq!(
        snapshot.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![w.container_jobs[5]]
    );
    assert_eq!(snapshot.origins.len(), 1);
    assert_eq!(
        snapshot.origins[&Origin::Container(w.container)].failed,
        vec![super::FailedJob {
            id: w.container_jobs[4],
            sequence: 1
        }]
    );
    // A computer without pending jobs: empty.
    let pc3 = store.create_computer(new_computer("pc3")).unwrap();
    let snapshot = store.planner_snapshot(pc3.id).unwrap();
    assert!(snapshot.jobs.is_empty() && snapshot.origins.is_empty());
    // The hello snapshot equals its three reads, for any hostname's spelling.
    for hostname in ["pc1", "PC2", " pc3 ", "nobody"] {
        let expected = store.computer_by_hostname(hostname).unwrap().map(|c| {
            let credentials = store.credentials(c.id).unwrap();
            let snapshot = store.planner_snapshot(c.id).unwrap();
            (c, credentials, snapshot)
        });
        assert_eq!(
            store.hello_snapshot(hostname).unwrap(),
            expected,
            "hello snapshot of {hostname:?}"
        );
    }
    // The agent lookup equals its reads too: with stored credentials (pc2), without (pc3), with
    // pending jobs (pc1, pc2) and without (pc3).
    let keyed = AgentCredentials {
        agent_key: Some("agent key".into()),
        server_key: Some("server key".into()),
        last_hello: Some(1_700_000_000.25),
        last_contact: Some(super::AgentContact {
            at: at(30),
            address: "10.1.2.3".parse().unwrap(),
            agent_version: Some("1.2.0".into()),
        }),
        ..AgentCredentials::default()
    };
    store.set_credentials(w.f.computers[1].id, &keyed).unwrap();
    for hostname in ["pc1", "PC2", " pc3 ", "nobody"] {
        let expected = store.computer_by_hostname(hostname).unwrap().map(|c| {
            let snapshot = store.planner_snapshot(c.id).unwrap();
            super::AgentLookup {
                computer: c.id,
                credentials: store.credentials(c.id).unwrap(),
                pending_jobs: !snapshot.jobs.is_empty(),
            }
        });
        assert_eq!(
            store.agent_lookup(hostname).unwrap(),
            expected,
            "agent lookup of {hostname:?}"
        );
    }
    let lookup = store.agent_lookup("pc2").unwrap().unwrap();
    assert!(lookup.pending_jobs && lookup.credentials == keyed);
    assert!(!store.agent_lookup("pc3").unwrap().unwrap().pending_jobs);
    assert_err(
        store.planner_snapshot(ComputerId(pc3.id.0 + 100)),
        "NotFound",
        "planner snapshot of a missing computer",
    );
}

/// The report snapshot has the job, the computer's other jobs of the origin, and its
/// assignments in the job's family with the revision.
pub fn report_snapshot_contents(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let [pc1, pc2] = [w.f.computers[0].id, w.f.computers[1].id];
    let record = |computer, package: PackageId, seconds| Assignment {
        computer,
        package,
        installed_at: at(seconds),
        job: None,
    };
    let newer = record(pc1, w.f.packages[0].id, 20);
    let older = record(pc1, w.f.packages[1].id, 10);
    apply(
        store.as_ref(),
        vec![
            Change::UpsertAssignment {
                assignment: newer.clone(),
            },
            Change::UpsertAssignment {
                assignment: older.clone(),
            },
            Change::UpsertAssignment {
                assignment: record(pc1, w.f.other.id, 0),
            },
            Change::UpsertAssignment {
                assignment: record(pc2, w.f.packages[0].id, 0),
            },
        ],
    );
    let reported = w.container_jobs[1];
    let snapshot = store.report_snapshot(reported).unwrap();
    assert_eq!(snapshot.job, store.job(reported).unwrap());
    assert!(!snapshot.deleted);
    assert_eq!(snapshot.sequence_mode, SequenceMode::AbortAfterFailed);
    let mut others: Vec<JobId> = snapshot.origin_jobs.iter().map(|j| j.id).collect();
    others.sort();
    assert_eq!(
        others,
        vec![
            w.container_jobs[0],
            w.container_jobs[2],
            w.container_jobs[3]
        ]
    );
    assert_eq!(snapshot.family_assignments, vec![older, newer]);
    assert_eq!(snapshot.assignment_revision, Revision(3));

    let mut changed = store.rule(w.rule).unwrap();
    changed.policy.sequence_mode = SequenceMode::IgnoreFailed;
    store.update_rule(&changed).unwrap();
    let snapshot = store.report_snapshot(w.rule_jobs[2]).unwrap();
    assert_eq!(snapshot.sequence_mode, SequenceMode::IgnoreFailed);
    assert!(
        snapshot.origin_jobs.is_empty(),
        "pc2 has no other rule jobs"
    );
    assert!(snapshot.family_assignments.is_empty());
    assert_eq!(snapshot.assignment_revision, Revision(1));
}

/// The deploy snapshot has every computer, package, group with members, and assignments.
pub fn deploy_snapshot_contents(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let cg = store.create_computer_group(name("cg"), None).unwrap();
    let sub = store
        .create_computer_group(name("sub"), Some(cg.id))
        .unwrap();
    store.set_computer_group_members(sub.id, &[pc2]).unwrap();
    let pg = store.create_package_group(name("pg"), None).unwrap();
    let members = [f.other.id, f.packages[0].id];
    store.set_package_group_members(pg.id, &members).unwrap();
    let late = Assignment {
        computer: pc1,
        package: f.packages[0].id,
        installed_at: at(9),
        job: None,
    };
    let early = Assignment {
        package: f.other.id,
        installed_at: at(1),
        ..late.clone()
    };
    apply(
        store.as_ref(),
        vec![
            Change::UpsertAssignment {
                assignment: late.clone(),
            },
            Change::UpsertAssignment {
                assignment: early.clone(),
            },
        ],
    );
    let s = store.deploy_snapshot().unwrap();
    assert_eq!(
        s.computers.values().cloned().collect::<Vec<_>>(),
        f.computers.to_vec()
    );
    assert_eq!(s.computer_groups, vec![cg.clone(), sub.clone()]);
    assert_eq!(s.computer_group_members.get(&sub.id), Some(&vec![pc2]));
    assert!(s
        .computer_group_members
        .get(&cg.id)
        .is_none_or(|m| m.is_empty()));
    assert_eq!(
        s.packages.values().cloned().collect::<Vec<_>>(),
        vec![
            f.packages[0].clone(),
            f.packages[1].clone(),
            f.other.clone()
        ]
    );
    assert_eq!(s.package_groups, vec![pg.clone()]);
    assert_eq!(s.package_group_members.get(&pg.id), Some(&members.to_vec()));
    assert_eq!(s.assignments.get(&pc1), Some(&vec![early, late]));
    assert!(s.assignments.get(&pc2).is_none_or(|a| a.is_empty()));
}

/// Housekeeping at `now` sees every container with pending jobs that has ended by then or whose
/// wake packets are due, with all its jobs.
pub fn housekeeping_snapshot_has_what_may_need_something(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let pending = || {
        vec![job(
            Origin::Container(ContainerId(0)),
            f.computers[0].id,
            &f.packages[0],
            1,
        )]
    };
    let create = |container: JobContainer| {
        apply(
            store.as_ref(),
            vec![Change::CreateContainer {
                container,
                jobs: pending(),
            }],
        )
        .containers[0]
    };
    // Ends at at(86_400) (see `container`), wake packets already sent.
    let ending = create(container("ending"));
    let mut waking = container("waking");
    waking.schedule = Schedule::new(at(100), None).unwrap();
    waking.wol.sent_at = None;
    let waking = create(waking);

    let has = |now, id| {
        let snapshot = store.housekeeping_snapshot(now).unwrap();
        snapshot
            .containers
            .iter()
            .find(|c| c.container.id == id)
            .map(|c| c.jobs.len())
    };
    assert_eq!(has(at(86_400), ending), Some(1), "ended at now");
    assert_eq!(has(at(90_000), ending), Some(1), "ended before now");
    assert_eq!(has(at(100), waking), Some(1), "wake packets due at now");
    assert_eq!(has(at(200), waking), Some(1), "wake packets overdue");
}

/// Housekeeping sees a container whose jobs are all final, with all its jobs and their
/// computers.
pub fn housekeeping_snapshot_contents(make: MakeStore<'_>) {
    let store = make();
    let f = fixture(store.as_ref());
    let done = |pc, p: &Package, state| {
        let mut j = job(Origin::Container(ContainerId(0)), pc, p, 1);
        j.state = state;
        j
    };
    let (cid, jobs) = create_container(
        store.as_ref(),
        "finished",
        vec![
            done(f.computers[0].id, &f.packages[0], JobState::Succeeded),
            done(f.computers[1].id, &f.packages[0], JobState::Failed),
        ],
    );
    let s = store.housekeeping_snapshot(at(0)).unwrap();
    let entry = s
        .containers
        .iter()
        .find(|c| c.container.id == cid)
        .expect("a container without pending jobs is in the housekeeping snapshot");
    assert_eq!(entry.container, store.container(cid).unwrap());
    let mut ids: Vec<JobId> = entry.jobs.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, jobs);
    for pc in &f.computers {
        assert_eq!(s.computers.get(&pc.id), Some(pc));
    }
    for c in &s.containers {
        for j in &c.jobs {
            assert!(
                s.computers.contains_key(&j.computer),
                "computer of job {}",
                j.id
            );
            assert_eq!(j.origin, Origin::Container(c.container.id));
        }
    }
}

/// Deleting a container is compare-and-set on its jobs: a job changed or added since they were
/// read makes it a conflict that deletes nothing.
pub fn delete_container_is_compare_and_set(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let read: Vec<(JobId, Revision)> = w
        .container_jobs
        .iter()
        .map(|id| (*id, store.job(*id).unwrap().revision))
        .collect();
    let mut renewed = store.job(w.container_jobs[0]).unwrap();
    renewed.attempt += 1;
    apply(
        store.as_ref(),
        vec![Change::UpdateJob {
            expected: renewed.revision,
            job: renewed,
        }],
    );
    let before = dump(store.as_ref());
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::DeleteContainer {
                id: w.container,
                jobs: read.clone(),
                at: at(0),
            }],
        }),
        "Conflict",
        "deleting a container whose job changed since it was read",
    );
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::DeleteContainer {
                id: w.container,
                jobs: read[1..].to_vec(),
                at: at(0),
            }],
        }),
        "Conflict",
        "deleting a container naming only some of its jobs",
    );
    assert_eq!(
        dump(store.as_ref()),
        before,
        "a conflicting delete changes nothing"
    );
}

/// Marking wake packets sent sets the time once; a second mark is a conflict.
pub fn mark_wol_sent_once(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let mut unsent = store.container(w.container).unwrap();
    unsent.wol.sent_at = None;
    apply(
        store.as_ref(),
        vec![Change::UpdateContainer { container: unsent }],
    );
    apply(
        store.as_ref(),
        vec![Change::MarkWolSent {
            container: w.container,
            at: at(5),
        }],
    );
    assert_eq!(
        store.container(w.container).unwrap().wol.sent_at,
        Some(at(5))
    );
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::MarkWolSent {
                container: w.container,
                at: at(6),
            }],
        }),
        "Conflict",
        "marking wake packets sent twice",
    );
    assert_eq!(
        store.container(w.container).unwrap().wol.sent_at,
        Some(at(5))
    );
}

/// A job update cannot move a job to another origin, computer, package or kind.
pub fn update_job_keeps_its_identity(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let job = store.job(w.container_jobs[0]).unwrap();
    let mut moved = job.clone();
    moved.kind = match job.kind {
        crate::model::JobKind::Install => crate::model::JobKind::Uninstall,
        crate::model::JobKind::Uninstall => crate::model::JobKind::Install,
    };
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::UpdateJob {
                expected: job.revision,
                job: moved,
            }],
        }),
        "Invalid",
        "changing a job's kind",
    );
    assert_eq!(store.job(job.id).unwrap(), job);
}

/// Tombstones are dated, reported to housekeeping by their oldest date, and purged by a cut-off.
pub fn tombstones_are_purged_by_age(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        None
    );
    let [first, second] = [w.rule_jobs[0], w.rule_jobs[1]];
    for (id, minute) in [(first, 40), (second, 50)] {
        let revision = store.job(id).unwrap().revision;
        apply(
            store.as_ref(),
            vec![Change::DeleteJob {
                id,
                computer: store.job(id).unwrap().computer,
                expected: revision,
                at: at(minute),
            }],
        );
    }
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        Some(at(40))
    );
    apply(
        store.as_ref(),
        vec![Change::PurgeTombstones {
            deleted_before: at(45),
        }],
    );
    assert_err(
        store.report_snapshot(first),
        "NotFound",
        "a purged tombstone",
    );
    assert!(store.report_snapshot(second).unwrap().deleted);
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        Some(at(50))
    );
}

/// Rules: the snapshot has every rule and rule job; a second job with the same (rule, computer,
/// package, kind) is a duplicate; a deleted rule leaves rule snapshots at once and goes with its
/// last job.
pub fn rule_snapshot_and_delete_rule(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let snapshot = store.rule_snapshot().unwrap();
    assert_eq!(snapshot.rules.len(), 1);
    let mut ids: Vec<JobId> = snapshot.jobs.iter().map(|j| j.id).collect();
    ids.sort();
    let mut expected = w.rule_jobs.clone();
    expected.sort();
    assert_eq!(ids, expected, "the rule snapshot has every rule job");
    assert!(snapshot
        .jobs
        .iter()
        .all(|j| j.origin == Origin::Rule(w.rule)));

    let twin = store.job(w.rule_jobs[0]).unwrap();
    assert_err(
        store.apply(&ChangeSet {
            changes: vec![Change::InsertJob { job: twin }],
        }),
        "Duplicate",
        "a second job with the same rule, computer, package and kind",
    );
    // Deleting a rule with jobs hides it from rule evaluation and listings at once; it goes
    // with its last job.
    store.delete_rule(w.rule).unwrap();
    assert!(store.rule_snapshot().unwrap().rules.is_empty());
    assert!(store.list_rules(Page::first(10)).unwrap().is_empty());
    for id in &w.rule_jobs {
        assert_eq!(
            store.rule(w.rule).unwrap().id,
            w.rule,
            "kept while it has jobs"
        );
        let revision = store.job(*id).unwrap().revision;
        apply(
            store.as_ref(),
            vec![Change::DeleteJob {
                id: *id,
                computer: store.job(*id).unwrap().computer,
                expected: revision,
                at: at(60),
            }],
        );
    }
    assert_err(
        store.rule(w.rule),
        "NotFound",
        "a deleted rule after its last job",
    );
    assert_err(
        store.delete_rule(w.rule),
        "NotFound",
        "deleting a deleted rule",
    );
}

/// Deleting a container deletes its jobs and leaves other origins' jobs.
pub fn delete_container_removes_its_jobs(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let jobs = w
        .container_jobs
        .iter()
        .map(|id| (*id, store.job(*id).unwrap().revision))
        .collect();
    apply(
        store.as_ref(),
        vec![Change::DeleteContainer {
            id: w.container,
            jobs,
            at: at(0),
        }],
    );
    assert_err(
        store.container(w.container),
        "NotFound",
        "a deleted container",
    );
    for id in &w.container_jobs {
        assert_err(store.job(*id), "NotFound", "a job of a deleted container");
    }
    let left: Vec<JobId> = store
        .list_jobs(&JobFilter::default(), Page::first(100))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, w.rule_jobs);
    assert!(store
        .housekeeping_snapshot(at(0))
        .unwrap()
        .containers
        .iter()
        .all(|c| c.container.id != w.container));
    assert!(store.list_containers(Page::first(10)).unwrap().is_empty());
}

/// Deleting a computer deletes its jobs, assignments, memberships and credentials.
pub fn delete_computer_removes_what_is_its(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let [pc1, pc2] = [w.f.computers[0].id, w.f.computers[1].id];
    let cg = store.create_computer_group(name("all"), None).unwrap();
    store
        .set_computer_group_members(cg.id, &[pc1, pc2])
        .unwrap();
    store
        .set_credentials(
            pc1,
            &AgentCredentials {
                agent_key: Some("k".into()),
                ..AgentCredentials::default()
            },
        )
        .unwrap();
    let assignment = |computer| Assignment {
        computer,
        package: w.f.other.id,
        installed_at: at(0),
        job: None,
    };
    apply(
        store.as_ref(),
        vec![
            Change::UpsertAssignment {
                assignment: assignment(pc1),
            },
            Change::UpsertAssignment {
                assignment: assignment(pc2),
            },
        ],
    );
    let pc2_jobs = store
        .list_jobs(
            &JobFilter {
                computer: Some(pc2),
                ..JobFilter::default()
            },
            Page::first(100),
        )
        .unwrap();
    store.delete_computer(pc1, at(0)).unwrap();
    assert_err(store.computer(pc1), "NotFound", "a deleted computer");
    assert_err(
        store.credentials(pc1),
        "NotFound",
        "credentials of a deleted computer",
    );
    assert_err(
        store.assignments(pc1),
        "NotFound",
        "assignments of a deleted computer",
    );
    assert_err(
        store.delete_computer(pc1, at(0)),
        "NotFound",
        "deleting it again",
    );
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), Page::first(100))
            .unwrap(),
        pc2_jobs,
        "only the other computer's jobs are left"
    );
    let groups = store.computer_groups().unwrap();
    let all = groups.iter().find(|(g, _)| g.id == cg.id).unwrap();
    assert_eq!(all.1, vec![pc2]);
    assert_eq!(store.assignments(pc2).unwrap().0, vec![assignment(pc2)]);
    assert!(!store
        .deploy_snapshot()
        .unwrap()
        .computers
        .contains_key(&pc1));
    assert!(store.computer_by_hostname("PC1").unwrap().is_none());
    store.create_computer(new_computer("pc1")).unwrap();
}

/// The tombstone a deleted job left, as a report reads it: `job` as it was, marked deleted,
/// readable although its origin (and maybe its computer) is gone.
fn assert_tombstone(store: &dyn Store, job: &Job, context: &str) {
    let report = store
        .report_snapshot(job.id)
        .unwrap_or_else(|error| panic!("{context}: no tombstone of job {}: {error}", job.id));
    assert!(report.deleted, "{context}: job {} is a tombstone", job.id);
    assert_eq!(&report.job, job, "{context}: the tombstone keeps the job");
    assert_eq!(
        report.sequence_mode,
        SequenceMode::IgnoreFailed,
        "{context}: the mode of a missing origin"
    );
    assert!(
        report.origin_jobs.is_empty(),
        "{context}: a missing origin has no jobs"
    );
    assert_err(store.job(job.id), "NotFound", context);
}

/// Deleting a container turns each of its jobs into a tombstone dated by the deletion and keeps
/// its earlier tombstones: a report still finds them although the container is gone, nothing
/// lists or plans them, and only a purge by age forgets them.
pub fn delete_container_keeps_tombstones(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let jobs: Vec<Job> = w
        .container_jobs
        .iter()
        .map(|id| store.job(*id).unwrap())
        .collect();
    // One job was deleted earlier (by hand), the others go with the container.
    apply(
        store.as_ref(),
        vec![Change::DeleteJob {
            id: jobs[0].id,
            computer: jobs[0].computer,
            expected: jobs[0].revision,
            at: at(30),
        }],
    );
    apply(
        store.as_ref(),
        vec![Change::DeleteContainer {
            id: w.container,
            jobs: jobs[1..].iter().map(|j| (j.id, j.revision)).collect(),
            at: at(60),
        }],
    );
    for job in &jobs {
        assert_tombstone(store.as_ref(), job, "a job of a deleted container");
    }
    let listed: Vec<JobId> = store
        .list_jobs(&JobFilter::default(), Page::first(100))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, w.rule_jobs, "tombstones are not listed");
    for pc in &w.f.computers {
        let planned = store.planner_snapshot(pc.id).unwrap();
        assert!(
            planned
                .jobs
                .iter()
                .all(|j| !w.container_jobs.contains(&j.id)),
            "tombstones are not planned"
        );
    }
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        Some(at(30))
    );
    // The purge cut-off is exclusive: deleted before it.
    apply(
        store.as_ref(),
        vec![Change::PurgeTombstones {
            deleted_before: at(60),
        }],
    );
    assert_err(
        store.report_snapshot(jobs[0].id),
        "NotFound",
        "a tombstone older than the cut-off",
    );
    for job in &jobs[1..] {
        assert_tombstone(store.as_ref(), job, "a tombstone at the cut-off");
    }
    apply(
        store.as_ref(),
        vec![Change::PurgeTombstones {
            deleted_before: at(61),
        }],
    );
    for job in &jobs {
        assert_err(
            store.report_snapshot(job.id),
            "NotFound",
            "a purged tombstone",
        );
    }
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        None
    );
}

/// Deleting a computer turns each of its jobs into a tombstone dated by the deletion, keeps its
/// earlier tombstones, removes a rule being deleted with its last job, and returns the ids of the
/// jobs that were pending.
pub fn delete_computer_keeps_tombstones(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let pc1 = w.f.computers[0].id;
    let mine = JobFilter {
        computer: Some(pc1),
        ..JobFilter::default()
    };
    let jobs = store.list_jobs(&mine, Page::first(100)).unwrap();
    let others: Vec<Job> = store
        .list_jobs(&JobFilter::default(), Page::first(100))
        .unwrap()
        .into_iter()
        .filter(|j| j.computer != pc1)
        .collect();
    // pc1's Succeeded container job was deleted earlier.
    let earlier = jobs
        .iter()
        .find(|j| j.state == JobState::Succeeded)
        .unwrap();
    apply(
        store.as_ref(),
        vec![Change::DeleteJob {
            id: earlier.id,
            computer: earlier.computer,
            expected: earlier.revision,
            at: at(30),
        }],
    );
    let unfinished = store.delete_computer(pc1, at(60)).unwrap();
    let mut pending: Vec<JobId> = jobs
        .iter()
        .filter(|j| j.state.is_pending())
        .map(|j| j.id)
        .collect();
    pending.sort();
    assert_eq!(
        unfinished, pending,
        "the pending jobs (Waiting, Downloading, Executing), by id"
    );
    assert_eq!(pending.len(), 3);
    for job in &jobs {
        let report = store.report_snapshot(job.id).unwrap();
        assert!(report.deleted, "job {} of a deleted computer", job.id);
        assert_eq!(&report.job, job);
        assert!(
            report.family_assignments.is_empty(),
            "a deleted computer has no assignments"
        );
    }
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), Page::first(100))
            .unwrap(),
        others
    );
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        Some(at(30))
    );
    apply(
        store.as_ref(),
        vec![Change::PurgeTombstones {
            deleted_before: at(61),
        }],
    );
    for job in &jobs {
        assert_err(
            store.report_snapshot(job.id),
            "NotFound",
            "a purged tombstone",
        );
    }

    // A rule being deleted goes with its last job, which a computer's deletion may take.
    let pc2 = w.f.computers[1].id;
    store.delete_rule(w.rule).unwrap();
    assert_eq!(store.rule(w.rule).unwrap().id, w.rule, "pc2 has its job");
    let last = store.job(w.rule_jobs[2]).unwrap();
    assert_eq!(
        store.delete_computer(pc2, at(70)).unwrap(),
        w.container_jobs[5..].to_vec()
    );
    assert_err(store.rule(w.rule), "NotFound", "a rule without jobs left");
    assert_tombstone(store.as_ref(), &last, "the last job of a removed rule");
}

/// A rule deleted while it had jobs is removed with its last job, and the tombstones of its jobs
/// stay until a purge: a late report on one still finds it.
pub fn removed_rule_keeps_tombstones(make: MakeStore<'_>) {
    let store = make();
    let w = world(store.as_ref());
    let jobs: Vec<Job> = w
        .rule_jobs
        .iter()
        .map(|id| store.job(*id).unwrap())
        .collect();
    store.delete_rule(w.rule).unwrap();
    for (job, seconds) in jobs.iter().zip([10, 20, 30]) {
        apply(
            store.as_ref(),
            vec![Change::DeleteJob {
                id: job.id,
                computer: job.computer,
                expected: job.revision,
                at: at(seconds),
            }],
        );
    }
    assert_err(store.rule(w.rule), "NotFound", "a rule without jobs left");
    for job in &jobs {
        assert_tombstone(store.as_ref(), job, "a job of a removed rule");
    }
    assert_eq!(
        store.housekeeping_snapshot(at(0)).unwrap().oldest_tombstone,
        Some(at(10))
    );
}

/// Rules evaluated and applied, then changed under them (for the checks of partial rule
/// snapshots): `a` (enabled, on `all` and its subgroup: pc1, pc3, pc4; v2 and `tool`) has lost
/// pc2 to pc4 and keeps its jobs on pc2; `b` (enabled, on pc2 and pc3, v1) conflicts with `a` where both
/// have a computer; `c` was deleted with its jobs in place; pc1 was given `tool`.
struct ChangedRules {
    computers: [ComputerId; 4],
    rules: [RuleId; 3],
}

fn changed_rules(store: &dyn Store) -> ChangedRules {
    use crate::rules::{RuleWorld, Scope};

    let f = fixture(store);
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let pc3 = store.create_computer(new_computer("pc3")).unwrap().id;
    let pc4 = store.create_computer(new_computer("pc4")).unwrap().id;
    let all = store.create_computer_group(name("all"), None).unwrap();
    let sub = store
        .create_computer_group(name("sub"), Some(all.id))
        .unwrap();
    let some = store.create_computer_group(name("some"), None).unwrap();
    store
        .set_computer_group_members(all.id, &[pc1, pc2])
        .unwrap();
    store.set_computer_group_members(sub.id, &[pc3]).unwrap();
    store
        .set_computer_group_members(some.id, &[pc2, pc3])
        .unwrap();
    // v2 depends on v1; both remove other versions, so rules wanting both conflict.
    let [v1, v2] = [f.packages[0].id, f.packages[1].id];
    let newest = store.create_package_group(name("newest"), None).unwrap();
    let extra = store
        .create_package_group(name("extra"), Some(newest.id))
        .unwrap();
    store.set_package_group_members(newest.id, &[v2]).unwrap();
    store
        .set_package_group_members(extra.id, &[f.other.id])
        .unwrap();
    let oldest = store.create_package_group(name("oldest"), None).unwrap();
    store.set_package_group_members(oldest.id, &[v1]).unwrap();
    let enabled = |title: &str, cg, pg| NewRule {
        enabled: true,
        ..rule(title, cg, pg)
    };
    let a = store
        .create_rule(enabled("a", all.id, newest.id))
        .unwrap()
        .id;
    let b = store
        .create_rule(enabled("b", some.id, oldest.id))
        .unwrap()
        .id;
    let c = store
        .create_rule(enabled("c", some.id, extra.id))
        .unwrap()
        .id;
    apply(
        store,
        vec![Change::UpsertAssignment {
            assignment: Assignment {
                computer: pc3,
                package: v1,
                installed_at: at(1),
                job: None,
            },
        }],
    );
    // Every rule evaluated and applied, then the world changes under them.
    for rule in [a, b, c] {
        let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        let diff = world.evaluate(rule, &Scope::full(), at(10));
        store.apply(&diff.into_change_set()).unwrap();
    }
    assert!(
        !store.rule_snapshot().unwrap().jobs.is_empty(),
        "the rules have jobs"
    );
    store
        .set_computer_group_members(all.id, &[pc1, pc4])
        .unwrap();
    store.delete_rule(c).unwrap();
    apply(
        store,
        vec![Change::UpsertAssignment {
            assignment: Assignment {
                computer: pc1,
                package: f.other.id,
                installed_at: at(2),
                job: None,
            },
        }],
    );

    ChangedRules {
        computers: [pc1, pc2, pc3, pc4],
        rules: [a, b, c],
    }
}

/// A rule snapshot restricted to some computers has only what concerns them, and evaluating any
/// rule for those computers on it gives the same diff as on the full snapshot (other rules'
/// claims, assignments, dependencies and the jobs of a rule being deleted included).
pub fn rule_snapshot_for_evaluates_as_the_full_one(make: MakeStore<'_>) {
    use crate::rules::{RuleWorld, Scope};

    let store = make();
    let ChangedRules {
        computers: [pc1, pc2, pc3, pc4],
        rules: [a, b, c],
    } = changed_rules(store.as_ref());
    for computers in [
        vec![pc1],
        vec![pc2],
        vec![pc3],
        vec![pc4],
        vec![pc1, pc3, pc4],
        vec![],
    ] {
        let scoped = store.rule_snapshot_for(&computers).unwrap();
        assert!(
            scoped
                .deploy
                .computers
                .keys()
                .all(|id| computers.contains(id)),
            "only the computers asked for: {computers:?}"
        );
        assert!(scoped
            .jobs
            .iter()
            .all(|job| computers.contains(&job.computer)));
        assert!(scoped
            .deploy
            .computer_group_members
            .values()
            .flatten()
            .all(|id| computers.contains(id)));
        assert_eq!(scoped.rules, store.rule_snapshot().unwrap().rules);
        let full = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        let scoped = RuleWorld::from_snapshot(&scoped);
        let scope = Scope::computers(computers.iter().copied());
        let mut changed = false;
        for rule in [a, b, c] {
            let expected = full.evaluate(rule, &scope, at(20));
            changed |= !expected.is_empty();
            assert_eq!(
                scoped.evaluate(rule, &scope, at(20)),
                expected,
                "rule {rule} on {computers:?}"
            );
        }
        assert_eq!(
            changed,
            !computers.is_empty(),
            "the check evaluates something on {computers:?}"
        );
    }
}

/// [`Store::rule_snapshot_part`]: only the computers and jobs asked for, every rule, and
/// evaluations equal to those on the full snapshot: a rule of `rule_jobs` in full (its jobs on
/// computers that left it are read too), and conflicts without jobs.
pub fn rule_snapshot_part_evaluates_as_the_full_one(make: MakeStore<'_>) {
    use super::RulePart;
    use crate::rules::{RuleWorld, Scope};

    let store = make();
    let ChangedRules {
        computers: [pc1, pc2, pc3, pc4],
        rules: [a, b, c],
    } = changed_rules(store.as_ref());
    let full_snapshot = store.rule_snapshot().unwrap();
    let full = RuleWorld::from_snapshot(&full_snapshot);
    assert!(
        full_snapshot
            .jobs
            .iter()
            .any(|job| job.origin == Origin::Rule(a) && job.computer == pc2),
        "rule a has jobs on pc2, which left it"
    );

    let parts = [
        // A rule edited or evaluated in full: its members and all its jobs.
        (
            RulePart::computers([pc1, pc3, pc4]).with_rule_jobs([a]),
            vec![a],
        ),
        (RulePart::computers([pc2, pc3]).with_rule_jobs([b]), vec![b]),
        (
            RulePart::computers([pc1, pc2, pc3, pc4]).with_rule_jobs([a, b, c]),
            vec![a, b, c],
        ),
        // A deleted rule is retired wherever its jobs are.
        (RulePart::computers([]).with_rule_jobs([c]), vec![c]),
        (RulePart::computers([pc3]), vec![]),
        (RulePart::default(), vec![]),
    ];
    for (part, in_full) in parts {
        let snapshot = store.rule_snapshot_part(&part).unwrap();
        assert_eq!(snapshot.rules, full_snapshot.rules, "every rule, {part:?}");
        assert!(
            snapshot
                .deploy
                .computers
                .keys()
                .all(|id| part.computers.contains(id)),
            "only the computers asked for: {part:?}"
        );
        let mut expected: Vec<JobId> = full_snapshot
            .jobs
            .iter()
            .filter(|job| part.has_job(job))
            .map(|job| job.id)
            .collect();
        let mut read: Vec<JobId> = snapshot.jobs.iter().map(|job| job.id).collect();
        expected.sort_unstable();
        read.sort_unstable();
        assert_eq!(read, expected, "the jobs of {part:?}, each once");
        let world = RuleWorld::from_snapshot(&snapshot);
        for rule in in_full {
            assert_eq!(
                world.evaluate(rule, &Scope::full(), at(20)),
                full.evaluate(rule, &Scope::full(), at(20)),
                "rule {rule} in full on {part:?}"
            );
        }
        let scope = Scope::computers(part.computers.iter().copied());
        for rule in [a, b, c] {
            assert_eq!(
                world.evaluate(rule, &scope, at(20)),
                full.evaluate(rule, &scope, at(20)),
                "rule {rule} on the computers of {part:?}"
            );
        }

        let jobless = store
            .rule_snapshot_part(&part.clone().without_jobs())
            .unwrap();
        assert!(jobless.jobs.is_empty(), "no job without jobs: {part:?}");
        let jobless = RuleWorld::from_snapshot(&jobless);
        for rule in [a, b, c] {
            assert_eq!(
                jobless.conflicts_of(rule, &scope),
                full.evaluate(rule, &scope, at(20)).conflicts,
                "conflicts of rule {rule} on {part:?}"
            );
        }
    }
    let jobless = RuleWorld::from_snapshot(
        &store
            .rule_snapshot_part(&RulePart::computers([pc1, pc2, pc3, pc4]).without_jobs())
            .unwrap(),
    );
    assert!(
        !jobless.conflicts_of(a, &Scope::full()).is_empty(),
        "the check sees a conflict"
    );
}

/// [`Store::rule_job_computers`]: the computers of the rule's jobs in the full snapshot, each
/// once, those that left the rule included; none for a rule without jobs or unknown.
pub fn rule_job_computers_are_those_of_its_jobs(make: MakeStore<'_>) {
    let store = make();
    let ChangedRules { rules, .. } = changed_rules(store.as_ref());
    let full = store.rule_snapshot().unwrap();
    let mut with_jobs = 0;
    for rule in rules.into_iter().chain([RuleId(9_999)]) {
        let expected: BTreeSet<ComputerId> = full
            .jobs
            .iter()
            .filter(|job| job.origin == Origin::Rule(rule))
            .map(|job| job.computer)
            .collect();
        with_jobs += usize::from(expected.len() > 1);
        assert_eq!(
            store.rule_job_computers(rule).unwrap(),
            expected,
            "the computers of rule {rule}'s jobs"
        );
    }
    assert!(with_jobs > 0, "a rule has jobs on several computers");
}

/// [`Store::job_summary`] equals [`JobSummary::of`](crate::housekeeping::JobSummary::of) the
/// origin's jobs, for a container and a rule with jobs in several states and instants, and is
/// empty for an origin without jobs.
pub fn job_summary_matches_the_jobs(make: MakeStore<'_>) {
    use crate::housekeeping::{statistics, statistics_of, JobSummary};

    let store = make();
    let f = fixture(store.as_ref());
    let [pc1, pc2] = [f.computers[0].id, f.computers[1].id];
    let group = store.create_computer_group(name("all"), None).unwrap();
    store
        .set_computer_group_members(group.id, &[pc1, pc2])
        .unwrap();
    let packages = store.create_package_group(name("all"), None).unwrap();
    store
        .set_package_group_members(packages.id, &[f.packages[0].id, f.other.id])
        .unwrap();
    let with_jobs = store
        .create_rule(rule("r", group.id, packages.id))
        .unwrap()
        .id;
    let empty = store
        .create_rule(rule("empty", group.id, packages.id))
        .unwrap()
        .id;
    let mut jobs = Vec::new();
    for (sequence, (computer, package)) in (1..).zip([
        (pc1, &f.packages[0]),
        (pc1, &f.other),
        (pc2, &f.packages[0]),
        (pc2, &f.other),
    ]) {
        jobs.push(job(Origin::Rule(with_jobs), computer, package, sequence));
    }
    let applied = apply(
        store.as_ref(),
        jobs.into_iter()
            .map(|job| Change::InsertJob { job })
            .collect(),
    );
    let (container, container_jobs) = create_container(
        store.as_ref(),
        "c",
        vec![
            job(Origin::Container(ContainerId(0)), pc1, &f.other, 1),
            job(Origin::Container(ContainerId(0)), pc2, &f.other, 1),
            job(Origin::Container(ContainerId(0)), pc2, &f.packages[1], 2),
        ],
    );
    // States and instants: succeeded after running, failed without an execution start, still
    // executing, and one left waiting.
    let finish = |id: JobId, state: JobState, started: Option<i64>, finished: Option<i64>| {
        let mut job = store.job(id).unwrap();
        let expected = job.revision;
        job.state = state;
        job.execution_started = started.map(at);
        job.finished = finished.map(at);
        apply(store.as_ref(), vec![Change::UpdateJob { expected, job }]);
    };
    finish(applied.jobs[0], JobState::Succeeded, Some(10), Some(40));
    finish(applied.jobs[1], JobState::Failed, None, Some(50));
    finish(applied.jobs[2], JobState::Executing, Some(5), None);
    finish(container_jobs[0], JobState::Succeeded, Some(20), Some(30));
    finish(container_jobs[1], JobState::Expired, None, Some(60));
    finish(container_jobs[2], JobState::Succeeded, Some(25), Some(35));

    for origin in [
        Origin::Rule(with_jobs),
        Origin::Container(container),
        Origin::Rule(empty),
        Origin::Container(ContainerId(999)),
    ] {
        let filter = JobFilter {
            origin: Some(origin),
            ..JobFilter::default()
        };
        let jobs = store.list_jobs(&filter, Page::first(usize::MAX)).unwrap();
        let summary = store.job_summary(origin).unwrap();
        assert_eq!(
            summary.clone().normalized(),
            JobSummary::of(&jobs).normalized(),
            "the summary of {origin:?}"
        );
        assert_eq!(
            statistics_of(&summary, Some(at(0)), at(-10), at(100)),
            statistics(&jobs, Some(at(0)), at(-10), at(100)),
            "the statistics of {origin:?}"
        );
    }
    // A rule job deleted and one moved to another state leave the summary as their jobs say.
    let gone = store.job(applied.jobs[0]).unwrap();
    apply(
        store.as_ref(),
        vec![Change::DeleteJob {
            id: gone.id,
            computer: gone.computer,
            expected: gone.revision,
            at: at(60),
        }],
    );
    let filter = JobFilter {
        origin: Some(Origin::Rule(with_jobs)),
        ..JobFilter::default()
    };
    let jobs = store.list_jobs(&filter, Page::first(usize::MAX)).unwrap();
    assert_eq!(
        store
            .job_summary(Origin::Rule(with_jobs))
            .unwrap()
            .normalized(),
        JobSummary::of(&jobs).normalized(),
        "after a deletion"
    );
    finish(applied.jobs[1], JobState::Expired, None, Some(55));
    let jobs = store.list_jobs(&filter, Page::first(usize::MAX)).unwrap();
    let summary = store.job_summary(Origin::Rule(with_jobs)).unwrap();
    assert_eq!(
        summary.clone().normalized(),
        JobSummary::of(&jobs).normalized(),
        "after a state change"
    );
    assert_eq!(
        summary.counts.get(&JobState::Failed).copied().unwrap_or(0),
        0
    );
    assert_eq!(summary.counts.get(&JobState::Expired), Some(&1));
    let summary = store.job_summary(Origin::Rule(with_jobs)).unwrap();
    assert_eq!(summary.first_execution_started, Some(at(5)));
    assert_eq!(summary.last_finished, Some(at(55)));
    assert_eq!(summary.last_started_finished, None);
    assert_eq!(summary.counts.get(&JobState::Waiting), Some(&1));
    assert!(store
        .job_summary(Origin::Rule(empty))
        .unwrap()
        .normalized()
        .counts
        .is_empty());
}
