//! Creating jobs through the public API: deploy (targets, groups, dependencies, sequences,
//! upgrade behaviours), uninstall and renew, with a fixed clock.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono;
use oco_core::chrono_tz::UTC;
use oco_core::deploy::{
    deploy, renew_in_place, renew_into_container, uninstall, ContainerSettings, DeployError,
    DeployRequest, Entity, Renewal, UninstallRequest,
};
use oco_core::model::{
    Assignment, Compatibility, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId,
    DeliveryPolicy, FamilyId, Job, JobContainer, JobId, JobKind, JobState, MessageCode, Name,
    Origin, Package, PackageGroup, PackageGroupId, PackageId, Payload, Procedure, Revision,
    Schedule, SequenceMode, Sha256Digest, UpgradeBehavior, WolSettings, WolShutdown,
};
use oco_core::store::{Change, ChangeSet, DeploySnapshot};
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

fn computer(id: i64, hostname: &str, os: &str) -> Computer {
    Computer {
        id: ComputerId(id),
        hostname: name(hostname),
        os: os.into(),
        os_version: String::new(),
        architecture: "x64".into(),
        macs: vec![],
        last_seen: None,
    }
}

fn package(
    id: i64,
    family: i64,
    behavior: UpgradeBehavior,
    dependencies: &[i64],
    os: &[&str],
) -> Package {
    Package {
        id: PackageId(id),
        family: FamilyId(family),
        version: name(&format!("v{id}")),
        install: Procedure {
            command: format!("install {id}"),
            ..Procedure::default()
        },
        uninstall: Procedure {
            command: format!("uninstall {id}"),
            ..Procedure::default()
        },
        payload: Some(Payload::new(4096, Sha256Digest([0x5a; 32]))),
        download_for_uninstall: false,
        upgrade_behavior: behavior,
        compatibility: Compatibility {
            os: os.iter().map(|s| s.to_string()).collect(),
            ..Compatibility::default()
        },
        dependencies: dependencies.iter().copied().map(PackageId).collect(),
    }
}

fn assignment(computer: i64, package: i64, days_ago: i64) -> Assignment {
    Assignment {
        computer: ComputerId(computer),
        package: PackageId(package),
        installed_at: now() - Duration::days(days_ago),
        job: None,
    }
}

/// Computers 1 pc-b, 2 PC-A, 4 pc-c (Windows) and 3 linux1 (Linux).
///
/// Families and packages: App 1 (101 keep, 102 explicit-uninstall, 103 implicit-remove,
/// 104 keep), Runtime 2 (201 needs Lib 301; 202), Lib 3 (301), Tool 4 (401, Windows only),
/// Suite 5 (501 needs 201 and 401), a cycle 601 -> 602 -> 603 -> 601 and 701 needing an unknown
/// 999.
///
/// Computer groups: 10 [1] > 11 [2, 3] > 12 [1, 4]. Package groups: 20 "base" [301, 401] with
/// subgroups 21 "b-child" [202, 301] and 22 "a-child" [104].
///
/// Assignments: computer 1 has 101 (10 days) and 103 (20 days); computer 2 has 102 (5 days) and
/// 101 (6 days); computer 4 has 202 and 301.
fn fixture() -> DeploySnapshot {
    use UpgradeBehavior::*;
    let computers = [
        computer(1, "pc-b", "Windows"),
        computer(2, "PC-A", "Windows"),
        computer(3, "linux1", "Linux"),
        computer(4, "pc-c", "Windows"),
    ];
    let packages = [
        package(101, 1, KeepOthers, &[], &[]),
        package(102, 1, ExplicitUninstall, &[], &[]),
        package(103, 1, ImplicitRemove, &[], &[]),
        package(104, 1, KeepOthers, &[], &[]),
        package(201, 2, KeepOthers, &[301], &[]),
        package(202, 2, KeepOthers, &[], &[]),
        package(301, 3, KeepOthers, &[], &[]),
        package(401, 4, KeepOthers, &[], &["Windows"]),
        package(501, 5, KeepOthers, &[201, 401], &[]),
        package(601, 6, KeepOthers, &[602], &[]),
        package(602, 6, KeepOthers, &[603], &[]),
        package(603, 6, KeepOthers, &[601], &[]),
        package(701, 7, KeepOthers, &[999], &[]),
    ];
    let computer_group = |id, parent: Option<i64>| ComputerGroup {
        id: ComputerGroupId(id),
        name: name(&format!("group {id}")),
        parent: parent.map(ComputerGroupId),
    };
    let package_group = |id, group_name: &str, parent: Option<i64>| PackageGroup {
        id: PackageGroupId(id),
        name: name(group_name),
        parent: parent.map(PackageGroupId),
    };
    let cids = |ids: &[i64]| ids.iter().copied().map(ComputerId).collect::<Vec<_>>();
    let pids = |ids: &[i64]| ids.iter().copied().map(PackageId).collect::<Vec<_>>();
    DeploySnapshot {
        computers: computers.into_iter().map(|c| (c.id, c)).collect(),
        computer_groups: vec![
            computer_group(10, None),
            computer_group(11, Some(10)),
            computer_group(12, Some(11)),
        ],
        computer_group_members: BTreeMap::from([
            (ComputerGroupId(10), cids(&[1])),
            (ComputerGroupId(11), cids(&[2, 3])),
            (ComputerGroupId(12), cids(&[1, 4])),
        ]),
        packages: packages.into_iter().map(|p| (p.id, p)).collect(),
        package_groups: vec![
            package_group(20, "base", None),
            package_group(21, "b-child", Some(20)),
            package_group(22, "a-child", Some(20)),
        ],
        package_group_members: BTreeMap::from([
            (PackageGroupId(20), pids(&[301, 401])),
            (PackageGroupId(21), pids(&[202, 301])),
            (PackageGroupId(22), pids(&[104])),
        ]),
        assignments: BTreeMap::from([
            (
                ComputerId(1),
                vec![assignment(1, 103, 20), assignment(1, 101, 10)],
            ),
            (
                ComputerId(2),
                vec![assignment(2, 101, 6), assignment(2, 102, 5)],
            ),
            (
                ComputerId(4),
                vec![assignment(4, 202, 3), assignment(4, 301, 3)],
            ),
        ]),
    }
}

fn request(computers: &[i64], packages: &[i64]) -> DeployRequest {
    DeployRequest {
        container: ContainerSettings {
            name: name("Roll-out"),
            notes: "notes".into(),
            enabled: true,
            schedule: Schedule::new(now(), Some(now() + Duration::days(7))).unwrap(),
            policy: DeliveryPolicy::new(UTC),
            wol: WolSettings {
                wake: true,
                shutdown_after: false,
                sent_at: Some(now()),
            },
            self_service: false,
        },
        computers: computers.iter().copied().map(ComputerId).collect(),
        computer_groups: vec![],
        packages: packages.iter().copied().map(PackageId).collect(),
        package_groups: vec![],
        force_reinstall: false,
    }
}

/// The one created container and its jobs.
fn created(changes: &ChangeSet) -> (&JobContainer, &[Job]) {
    match changes.changes.as_slice() {
        [Change::CreateContainer { container, jobs }] => (container, jobs),
        other => panic!("expected one CreateContainer, got {other:?}"),
    }
}

/// (computer, package, kind, state, sequence) of each job.
type Row = (i64, i64, JobKind, JobState, u32);

fn rows(jobs: &[Job]) -> Vec<Row> {
    jobs.iter()
        .map(|j| (j.computer.0, j.package.0, j.kind, j.state, j.sequence))
        .collect()
}

fn deployed(request: &DeployRequest) -> Vec<Row> {
    let changes = deploy(request, &fixture(), now()).unwrap();
    rows(created(&changes).1)
}

use JobKind::{Install, Uninstall};
use JobState::{AlreadyInstalled, Incompatible, Waiting};

#[test]
fn container_and_jobs_carry_placeholders_and_the_request() {
    let changes = deploy(&request(&[2], &[104]), &fixture(), now()).unwrap();
    let (container, jobs) = created(&changes);
    assert_eq!(container.id, ContainerId(0));
    assert_eq!(container.name, name("Roll-out"));
    assert_eq!(container.notes, "notes");
    assert_eq!(container.created_at, now());
    assert_eq!(
        container.wol.sent_at, None,
        "a new container has sent nothing"
    );
    assert!(container.wol.wake);
    let job = &jobs[0];
    assert_eq!(job.id, JobId(0));
    assert_eq!(job.origin, Origin::Container(ContainerId(0)));
    assert_eq!(job.snapshot.procedure.command, "install 104");
    assert!(job.snapshot.download);
    assert_eq!((job.attempt, job.finished), (1, None));
}

#[test]
fn targets_are_explicit_computers_then_group_members_by_hostname_each_once() {
    let mut req = request(&[4], &[104]);
    req.computer_groups = vec![ComputerGroupId(10)];
    // Group 10 with subgroups: computers 1, 2, 3, 4; by hostname linux1, PC-A, pc-b, pc-c.
    let targets: Vec<i64> = deployed(&req).iter().map(|row| row.0).collect();
    assert_eq!(targets, [4, 3, 2, 1]);

    req.computers = vec![];
    req.computer_groups = vec![ComputerGroupId(12), ComputerGroupId(11)];
    let targets: Vec<i64> = deployed(&req).iter().map(|row| row.0).collect();
    assert_eq!(
        targets,
        [1, 4, 3, 2],
        "group 12 (pc-b, pc-c), then 11's new ones"
    );
}

#[test]
fn package_group_order_is_own_members_then_subgroups_by_name() {
    let mut req = request(&[2], &[]);
    req.package_groups = vec![PackageGroupId(20)];
    let packages: Vec<i64> = deployed(&req).iter().map(|row| row.1).collect();
    // base: 301, 401; a-child: 104; b-child: 202 (301 already there).
    assert_eq!(packages, [301, 401, 104, 202]);

    req.packages = vec![PackageId(202)];
    let packages: Vec<i64> = deployed(&req).iter().map(|row| row.1).collect();
    assert_eq!(
        packages,
        [202, 301, 401, 104],
        "explicit packages come first"
    );
}

#[test]
fn dependencies_come_first_transitively_each_once() {
    assert_eq!(
        deployed(&request(&[2], &[501])),
        [
            (2, 301, Install, Waiting, 1),
            (2, 201, Install, Waiting, 2),
            (2, 401, Install, Waiting, 3),
            (2, 501, Install, Waiting, 4),
        ]
    );
    let packages: Vec<i64> = deployed(&request(&[2], &[401, 501, 301]))
        .iter()
        .map(|row| row.1)
        .collect();
    assert_eq!(packages, [401, 301, 201, 501]);
}

#[test]
fn dependency_cycle_is_an_error_naming_the_cycle() {
    let err = deploy(&request(&[2], &[601]), &fixture(), now()).unwrap_err();
    assert_eq!(
        err,
        DeployError::DependencyCycle {
            cycle: vec![
                PackageId(601),
                PackageId(602),
                PackageId(603),
                PackageId(601)
            ]
        }
    );
    assert_eq!(
        err.to_string(),
        "packages depend on each other in a cycle: 601 -> 602 -> 603 -> 601"
    );
    let err = deploy(&request(&[2], &[602]), &fixture(), now()).unwrap_err();
    assert_eq!(
        err,
        DeployError::DependencyCycle {
            cycle: vec![
                PackageId(602),
                PackageId(603),
                PackageId(601),
                PackageId(602)
            ]
        }
    );
}

#[test]
fn every_job_takes_a_sequence_number_incompatible_and_already_installed_included() {
    let jobs = deploy(&request(&[3, 1], &[401, 101]), &fixture(), now()).unwrap();
    let (_, jobs) = created(&jobs);
    assert_eq!(
        rows(jobs),
        [
            (3, 401, Install, Incompatible, 1),
            (3, 101, Install, Waiting, 2),
            (1, 401, Install, Waiting, 1),
            (1, 101, Install, AlreadyInstalled, 2),
        ]
    );
    assert_eq!(jobs[0].finished, Some(now()));
    assert_eq!(jobs[3].finished, Some(now()));
    assert_eq!(jobs[1].finished, None);
}

#[test]
fn explicit_uninstall_removes_other_versions_oldest_first_then_installs() {
    assert_eq!(
        deployed(&request(&[1], &[102])),
        [
            (1, 103, Uninstall, Waiting, 1),
            (1, 101, Uninstall, Waiting, 2),
            (1, 102, Install, Waiting, 3),
        ]
    );
    let changes = deploy(&request(&[1], &[102]), &fixture(), now()).unwrap();
    let (_, jobs) = created(&changes);
    assert_eq!(jobs[0].snapshot.procedure.command, "uninstall 103");
    assert!(
        !jobs[0].snapshot.download,
        "103 does not download for uninstall"
    );

    // Equal installation times: by package id.
    let mut snapshot = fixture();
    snapshot.assignments.insert(
        ComputerId(3),
        vec![assignment(3, 104, 1), assignment(3, 101, 1)],
    );
    let changes = deploy(&request(&[3], &[102]), &snapshot, now()).unwrap();
    assert_eq!(
        rows(created(&changes).1),
        [
            (3, 101, Uninstall, Waiting, 1),
            (3, 104, Uninstall, Waiting, 2),
            (3, 102, Install, Waiting, 3),
        ]
    );
}

#[test]
fn already_installed_explicit_uninstall_package_gets_no_uninstall_jobs() {
    assert_eq!(
        deployed(&request(&[2], &[102])),
        [(2, 102, Install, AlreadyInstalled, 1)]
    );
}

#[test]
fn auto_added_dependency_installed_in_any_version_gets_no_job() {
    // Computer 4 has Runtime 202 and Lib 301: Suite's dependency 201 is another Runtime version.
    assert_eq!(
        deployed(&request(&[4], &[501])),
        [(4, 401, Install, Waiting, 1), (4, 501, Install, Waiting, 2),]
    );
    // Requested explicitly, the same packages do get jobs (dependencies still first).
    assert_eq!(
        deployed(&request(&[4], &[201, 301, 501])),
        [
            (4, 301, Install, AlreadyInstalled, 1),
            (4, 201, Install, Waiting, 2),
            (4, 401, Install, Waiting, 3),
            (4, 501, Install, Waiting, 4),
        ]
    );
}

#[test]
fn an_incompatible_auto_added_dependency_gets_an_incompatible_job_even_if_installed() {
    // Linux computer 3 has Tool 401 (Windows only), an auto-added dependency of Suite 501: the
    // spec checks incompatibility first for every package.
    let mut snapshot = fixture();
    snapshot
        .assignments
        .insert(ComputerId(3), vec![assignment(3, 401, 1)]);
    let changes = deploy(&request(&[3], &[501]), &snapshot, now()).unwrap();
    assert_eq!(
        rows(created(&changes).1),
        [
            (3, 301, Install, Waiting, 1),
            (3, 201, Install, Waiting, 2),
            (3, 401, Install, Incompatible, 3),
            (3, 501, Install, Waiting, 4),
        ]
    );
}

#[test]
fn force_reinstall_installs_again_without_uninstalling_the_same_version() {
    let mut req = request(&[1], &[101]);
    req.force_reinstall = true;
    assert_eq!(deployed(&req), [(1, 101, Install, Waiting, 1)]);

    let mut req = request(&[2], &[102]);
    req.force_reinstall = true;
    assert_eq!(
        deployed(&req),
        [
            (2, 101, Uninstall, Waiting, 1),
            (2, 102, Install, Waiting, 2),
        ]
    );
}

#[test]
fn two_versions_of_a_family_with_a_removing_behaviour_conflict() {
    let err = deploy(&request(&[2], &[101, 104, 103]), &fixture(), now()).unwrap_err();
    assert_eq!(
        err,
        DeployError::ConflictingVersions {
            family: FamilyId(1),
            packages: vec![PackageId(101), PackageId(104), PackageId(103)],
        }
    );
    assert_eq!(
        err.to_string(),
        "packages 101, 104, 103 are versions of package family 1 and one of them removes the \
         other versions when installed; deploy only one of them"
    );
    // Versions that keep each other are fine.
    assert_eq!(deployed(&request(&[3], &[101, 104])).len(), 2);
}

#[test]
fn unknown_ids_are_errors_naming_them() {
    let cases: Vec<(DeployRequest, Entity, i64, &str)> = vec![
        (
            request(&[99], &[101]),
            Entity::Computer,
            99,
            "unknown computer 99",
        ),
        (
            request(&[1], &[97]),
            Entity::Package,
            97,
            "unknown package 97",
        ),
        (
            request(&[1], &[701]),
            Entity::Package,
            999,
            "unknown package 999",
        ),
        (
            DeployRequest {
                computer_groups: vec![ComputerGroupId(98)],
                ..request(&[1], &[101])
            },
            Entity::ComputerGroup,
            98,
            "unknown computer group 98",
        ),
        (
            DeployRequest {
                package_groups: vec![PackageGroupId(96)],
                ..request(&[1], &[101])
            },
            Entity::PackageGroup,
            96,
            "unknown package group 96",
        ),
    ];
    for (req, what, id, message) in cases {
        let err = deploy(&req, &fixture(), now()).unwrap_err();
        assert_eq!(err, DeployError::Unknown { what, id });
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn nothing_to_do_is_an_error_not_an_empty_container() {
    for req in [request(&[], &[101]), request(&[1], &[])] {
        let err = deploy(&req, &fixture(), now()).unwrap_err();
        assert_eq!(err, DeployError::NoJobs);
        assert_eq!(
            err.to_string(),
            "no jobs to create: no target computers, no packages, or nothing to renew"
        );
    }
}

fn uninstall_request(pairs: &[(i64, i64)]) -> UninstallRequest {
    UninstallRequest {
        container: ContainerSettings {
            name: name("Remove"),
            notes: String::new(),
            enabled: true,
            schedule: Schedule::new(now(), None).unwrap(),
            policy: DeliveryPolicy::new(UTC),
            wol: WolSettings::default(),
            self_service: true,
        },
        assignments: pairs
            .iter()
            .map(|&(c, p)| (ComputerId(c), PackageId(p)))
            .collect(),
    }
}

#[test]
fn uninstall_numbers_each_computers_jobs_in_the_given_order() {
    let changes = uninstall(
        &uninstall_request(&[(1, 101), (2, 102), (1, 103), (4, 301)]),
        &fixture(),
        now(),
    )
    .unwrap();
    let (container, jobs) = created(&changes);
    assert!(container.self_service);
    assert_eq!(
        rows(jobs),
        [
            (1, 101, Uninstall, Waiting, 1),
            (2, 102, Uninstall, Waiting, 1),
            (1, 103, Uninstall, Waiting, 2),
            (4, 301, Uninstall, Waiting, 1),
        ]
    );
    assert_eq!(jobs[0].snapshot.procedure.command, "uninstall 101");
}

#[test]
fn deploy_and_uninstall_build_the_same_container_from_the_same_settings() {
    let settings = request(&[1], &[104]).container;
    let deployed = deploy(&request(&[1], &[104]), &fixture(), now()).unwrap();
    let removed = uninstall(
        &UninstallRequest {
            container: settings.clone(),
            assignments: vec![(ComputerId(1), PackageId(101))],
        },
        &fixture(),
        now(),
    )
    .unwrap();
    let (container, _) = created(&deployed);
    assert_eq!(container, created(&removed).0);
    assert_eq!(
        *container,
        JobContainer {
            id: ContainerId(0),
            name: settings.name,
            notes: settings.notes,
            enabled: settings.enabled,
            schedule: settings.schedule,
            policy: settings.policy,
            wol: WolSettings {
                sent_at: None,
                ..settings.wol
            },
            self_service: settings.self_service,
            created_at: now(),
        }
    );
}

#[test]
fn uninstall_errors_name_what_is_wrong() {
    let err = uninstall(&uninstall_request(&[(1, 102)]), &fixture(), now()).unwrap_err();
    assert_eq!(
        err,
        DeployError::NotAssigned {
            computer: ComputerId(1),
            package: PackageId(102)
        }
    );
    assert_eq!(
        err.to_string(),
        "package 102 is not installed on computer 1 (no assignment), so it cannot be uninstalled"
    );
    let err = uninstall(&uninstall_request(&[(99, 101)]), &fixture(), now()).unwrap_err();
    assert_eq!(err.to_string(), "unknown computer 99");
    let err = uninstall(&uninstall_request(&[(1, 97)]), &fixture(), now()).unwrap_err();
    assert_eq!(err.to_string(), "unknown package 97");
    let err = uninstall(&uninstall_request(&[]), &fixture(), now()).unwrap_err();
    assert_eq!(err, DeployError::NoJobs);
}

/// A finished job of container 7 with report data filled in.
fn old_job(id: i64, computer: i64, package: i64, state: JobState, sequence: u32) -> Job {
    let snapshot = fixture();
    let mut job = Job::new(
        Origin::Container(ContainerId(7)),
        ComputerId(computer),
        &snapshot.packages[&PackageId(package)],
        Install,
        sequence,
    );
    job.id = JobId(id);
    job.state = state;
    job.return_code = Some(1603);
    job.output = "installer said no".into();
    job.message = Some(MessageCode::ReturnCodeRejected);
    job.download_progress = Some(100);
    job.download_started = Some(now() - Duration::hours(3));
    job.execution_started = Some(now() - Duration::hours(2));
    job.finished = Some(now() - Duration::hours(1));
    job.last_report = Some(now() - Duration::hours(1));
    job.wol_shutdown = Some(WolShutdown::Confirmed);
    job.revision = Revision(4);
    job
}

#[test]
fn renew_in_place_resets_the_job_and_retakes_the_snapshot() {
    let snapshot = fixture();
    let mut packages = snapshot.packages.clone();
    packages.get_mut(&PackageId(101)).unwrap().install.command = "install 101 /quiet".into();
    let jobs = [
        old_job(1, 2, 101, JobState::Failed, 1),
        old_job(2, 2, 104, JobState::Expired, 2),
        old_job(3, 2, 301, JobState::Succeeded, 3),
        old_job(4, 3, 401, JobState::Failed, 1),
        old_job(5, 1, 301, JobState::Incompatible, 1),
    ];
    let renewal = renew_in_place(&jobs, &packages, &snapshot.computers);
    assert_eq!(renewal.renewed, [JobId(1), JobId(2)]);
    assert_eq!(
        renewal.incompatible,
        [JobId(4), JobId(5)],
        "4: Tool is Windows only; 5: stays Incompatible"
    );
    assert_eq!(renewal.skipped, [JobId(3)]);

    let [Change::UpdateJob { expected, job }, Change::UpdateJob { .. }] =
        renewal.changes.changes.as_slice()
    else {
        panic!("expected two updates, got {:?}", renewal.changes);
    };
    assert_eq!(*expected, Revision(4));
    let mut want = jobs[0].clone();
    want.state = Waiting;
    want.return_code = None;
    want.output = String::new();
    want.message = None;
    want.download_progress = None;
    want.download_started = None;
    want.execution_started = None;
    want.finished = None;
    want.last_report = None;
    want.wol_shutdown = None;
    want.attempt = 2;
    want.snapshot.procedure.command = "install 101 /quiet".into();
    assert_eq!(*job, want);
    assert_eq!(job.wire_id(), "1.2");
}

fn old_container(end: Option<DateTime<Utc>>) -> JobContainer {
    let mut policy = DeliveryPolicy::new(UTC);
    policy.sequence_mode = SequenceMode::AbortAfterFailed;
    JobContainer {
        id: ContainerId(7),
        name: name("Old"),
        notes: "old notes".into(),
        enabled: true,
        schedule: Schedule::new(now() - Duration::days(2), end).unwrap(),
        policy,
        wol: WolSettings {
            wake: true,
            shutdown_after: true,
            sent_at: Some(now() - Duration::days(2)),
        },
        self_service: false,
        created_at: now() - Duration::days(3),
    }
}

#[test]
fn renew_into_container_copies_the_policy_and_renumbers_per_computer() {
    let snapshot = fixture();
    let mut other_origin = old_job(6, 1, 104, JobState::Failed, 9);
    other_origin.origin = Origin::Container(ContainerId(8));
    let jobs = [
        old_job(1, 2, 101, JobState::Failed, 3),
        old_job(2, 2, 104, JobState::Expired, 1),
        old_job(3, 1, 301, JobState::Failed, 2),
        old_job(4, 1, 104, JobState::Succeeded, 1),
        old_job(5, 3, 401, JobState::Expired, 1),
        other_origin,
        old_job(7, 1, 301, JobState::Incompatible, 4),
    ];
    let old = old_container(Some(now() + Duration::days(1)));
    let renewal = renew_into_container(
        &old,
        &jobs,
        &snapshot.packages,
        &snapshot.computers,
        name("Old (renewed)"),
        now(),
    )
    .unwrap();
    assert_eq!(renewal.renewed, [JobId(3), JobId(2), JobId(1)]);
    assert_eq!(renewal.incompatible, [JobId(5), JobId(7)]);
    assert_eq!(renewal.skipped, [JobId(4), JobId(6)]);

    let (container, new_jobs) = created(&renewal.changes);
    assert_eq!(container.id, ContainerId(0));
    assert_eq!(container.name, name("Old (renewed)"));
    assert_eq!(container.policy, old.policy);
    assert_eq!(container.schedule.start(), now());
    assert_eq!(container.schedule.end(), old.schedule.end());
    assert_eq!(container.wol.sent_at, None);
    assert!(container.wol.wake && container.wol.shutdown_after);
    assert_eq!(container.created_at, now());
    assert_eq!(
        rows(new_jobs),
        [
            (1, 301, Install, Waiting, 1),
            (2, 104, Install, Waiting, 1),
            (2, 101, Install, Waiting, 2),
        ]
    );
    assert!(new_jobs
        .iter()
        .all(|j| j.attempt == 1 && j.output.is_empty() && j.return_code.is_none()));

    // An end already passed is not copied.
    let old = old_container(Some(now() - Duration::hours(1)));
    let renewal = renew_into_container(
        &old,
        &jobs,
        &snapshot.packages,
        &snapshot.computers,
        name("Again"),
        now(),
    )
    .unwrap();
    assert_eq!(created(&renewal.changes).0.schedule.end(), None);

    // Nothing failed-like: no container.
    let err = renew_into_container(
        &old,
        &jobs[3..4],
        &snapshot.packages,
        &snapshot.computers,
        name("Nothing"),
        now(),
    )
    .unwrap_err();
    assert_eq!(err, DeployError::NoJobs);
}

#[test]
fn requests_and_renewals_round_trip_through_serde() {
    let deploy_request = request(&[1, 2], &[101]);
    let json = serde_json::to_string(&deploy_request).unwrap();
    assert_eq!(
        serde_json::from_str::<DeployRequest>(&json).unwrap(),
        deploy_request
    );

    let remove = uninstall_request(&[(1, 101), (2, 102)]);
    let json = serde_json::to_string(&remove).unwrap();
    assert_eq!(
        serde_json::from_str::<UninstallRequest>(&json).unwrap(),
        remove
    );

    let snapshot = fixture();
    let jobs = [
        old_job(1, 2, 101, JobState::Failed, 1),
        old_job(4, 3, 401, JobState::Failed, 1),
    ];
    let renewal = renew_in_place(&jobs, &snapshot.packages, &snapshot.computers);
    let json = serde_json::to_string(&renewal).unwrap();
    assert_eq!(serde_json::from_str::<Renewal>(&json).unwrap(), renewal);

    assert_eq!(
        serde_json::to_string(&Entity::ComputerGroup).unwrap(),
        r#""computer-group""#
    );
    assert_eq!(
        serde_json::from_str::<Entity>(r#""package-group""#).unwrap(),
        Entity::PackageGroup
    );
}

proptest! {
    #[test]
    fn sequence_numbers_per_computer_are_one_to_n(
        computers in proptest::sample::subsequence(vec![1i64, 2, 3, 4], 1..=4).prop_shuffle(),
        packages in proptest::sample::subsequence(vec![101i64, 102, 104, 201, 202, 301, 401, 501], 1..=8).prop_shuffle(),
        installed in proptest::collection::vec(proptest::bool::ANY, 4 * 8),
        force in proptest::bool::ANY,
    ) {
        // 102 removes other versions: keep it only when no other App version is requested.
        let app_versions = packages.iter().filter(|&&p| p / 100 == 1).count();
        let packages: Vec<i64> = packages
            .into_iter()
            .filter(|&p| p != 102 || app_versions == 1)
            .collect();
        prop_assume!(!packages.is_empty());
        let mut snapshot = fixture();
        let all = [101i64, 102, 103, 104, 201, 202, 301, 401];
        for (row, computer) in (1..=4i64).enumerate() {
            let assignments = all
                .iter()
                .enumerate()
                .filter(|&(i, _)| installed[row * 8 + i])
                .map(|(i, &p)| assignment(computer, p, i as i64))
                .collect();
            snapshot.assignments.insert(ComputerId(computer), assignments);
        }
        let mut req = request(&computers, &packages);
        req.force_reinstall = force;
        let changes = deploy(&req, &snapshot, now()).unwrap();
        let (_, jobs) = created(&changes);
        let mut per_computer: BTreeMap<ComputerId, Vec<u32>> = BTreeMap::new();
        for job in jobs {
            per_computer.entry(job.computer).or_default().push(job.sequence);
        }
        for sequences in per_computer.values() {
            let expected: Vec<u32> = (1..=u32::try_from(sequences.len()).unwrap()).collect();
            prop_assert_eq!(sequences, &expected);
        }
        // Explicitly requested packages always get a job, so every target has some.
        prop_assert_eq!(per_computer.len(), computers.len());
    }
}
