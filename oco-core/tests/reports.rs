//! Agent reports through the public API: the job state machine, the return-code check, the -8888
//! cascade of abort-after-failed, assignment bookkeeping, tombstones and refusals.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oco_core::model::{
    Assignment, Job, JobId, JobKind, JobState, MessageCode, PackageId, Revision, SequenceMode,
    UpgradeBehavior,
};
use oco_core::report::{
    apply_report, AgentReport, Disposition, IgnoredReport, ReportError, ReportOutcome,
    ReportedState, UnknownState,
};
use oco_core::store::{Change, ReportSnapshot};

use fixture::*;

mod fixture {
    use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
    use oco_core::model::{
        Compatibility, ComputerId, ContainerId, FamilyId, Job, JobId, JobKind, JobState, Name,
        Origin, Package, PackageId, Procedure, Revision, SequenceMode, SuccessCodes,
        UpgradeBehavior,
    };
    use oco_core::report::{AgentReport, ReportedState};
    use oco_core::store::{Change, ReportSnapshot};

    pub(crate) const PC: ComputerId = ComputerId(3);
    pub(crate) const OTHER_PC: ComputerId = ComputerId(4);
    pub(crate) const ORIGIN: Origin = Origin::Container(ContainerId(10));
    pub(crate) const PACKAGE: PackageId = PackageId(7);
    pub(crate) const FAMILY: FamilyId = FamilyId(1);
    pub(crate) const ASSIGNMENT_REVISION: Revision = Revision(5);

    /// The fixed clock: `minutes` after 2026-11-24 12:00 UTC.
    pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    pub(crate) fn package(id: PackageId, upgrade: UpgradeBehavior, codes: &str) -> Package {
        let procedure = Procedure {
            command: "setup.exe /S".into(),
            success_codes: codes.parse::<SuccessCodes>().unwrap(),
            ..Procedure::default()
        };
        Package {
            id,
            family: FAMILY,
            version: Name::new("version", &format!("1.{}", id.0)).unwrap(),
            install: procedure.clone(),
            uninstall: procedure,
            payload: Some(oco_core::model::Payload::new(
                4096,
                oco_core::model::Sha256Digest([0x5a; 32]),
            )),
            download_for_uninstall: false,
            upgrade_behavior: upgrade,
            compatibility: Compatibility::default(),
            dependencies: vec![],
        }
    }

    /// A stored job (revision 1) installing `PACKAGE` (success codes `0, 3010`) on `PC`.
    pub(crate) fn job(id: i64, sequence: u32, state: JobState) -> Job {
        job_of(
            id,
            &package(PACKAGE, UpgradeBehavior::KeepOthers, "0, 3010"),
            JobKind::Install,
            sequence,
            state,
        )
    }

    pub(crate) fn job_of(
        id: i64,
        package: &Package,
        kind: JobKind,
        sequence: u32,
        state: JobState,
    ) -> Job {
        let mut job = Job::new(ORIGIN, PC, package, kind, sequence);
        job.id = JobId(id);
        job.state = state;
        job.revision = Revision(1);
        job
    }

    /// `job` marked Failed by the server's abort-after-failed cascade.
    pub(crate) fn aborted(mut job: Job) -> Job {
        job.state = JobState::Failed;
        job.return_code = Some(-8888);
        job.message = Some(oco_core::model::MessageCode::AbortedAfterFailed);
        job.finished = Some(at(-60));
        job
    }

    pub(crate) fn snapshot(job: Job) -> ReportSnapshot {
        ReportSnapshot {
            job,
            deleted: false,
            sequence_mode: SequenceMode::IgnoreFailed,
            origin_jobs: vec![],
            family_assignments: vec![],
            assignment_revision: ASSIGNMENT_REVISION,
        }
    }

    pub(crate) fn report(job: &Job, state: ReportedState) -> AgentReport {
        AgentReport {
            job: job.id,
            attempt: job.attempt,
            state,
            return_code: None,
            download_progress: None,
            output: None,
        }
    }

    pub(crate) fn with_code(mut report: AgentReport, code: Option<i64>) -> AgentReport {
        report.return_code = code;
        report
    }

    /// The job updates of a change set, in order.
    pub(crate) fn updated_jobs(changes: &[Change]) -> Vec<&Job> {
        changes
            .iter()
            .filter_map(|change| match change {
                Change::UpdateJob { job, .. } => Some(job),
                _ => None,
            })
            .collect()
    }

    /// What a store does with the outcome's update of `job`: the new value, revision bumped.
    pub(crate) fn stored(job: &Job, changes: &[Change]) -> Job {
        for change in changes {
            if let Change::UpdateJob { expected, job: new } = change {
                if new.id == job.id {
                    assert_eq!(
                        *expected, job.revision,
                        "computed from the snapshot's revision"
                    );
                    let mut new = new.clone();
                    new.revision = job.revision.next();
                    return new;
                }
            }
        }
        job.clone()
    }
}

fn apply(snapshot: &ReportSnapshot, report: &AgentReport, minutes: i64) -> ReportOutcome {
    apply_report(snapshot, PC, report, at(minutes)).unwrap()
}

/// Applies `report` to `job` as the server would and returns the stored job.
fn step(job: &Job, report: AgentReport, minutes: i64) -> (Job, ReportOutcome) {
    let outcome = apply(&snapshot(job.clone()), &report, minutes);
    (stored(job, &outcome.changes.changes), outcome)
}

fn ignored(outcome: &ReportOutcome, reason: IgnoredReport) {
    assert_eq!(outcome.disposition, Disposition::Ignored(reason));
    assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    assert!(outcome.reevaluate.is_empty());
}

#[test]
fn normal_lifecycle() {
    let job = job(42, 1, JobState::Waiting);

    let mut downloading = report(&job, ReportedState::Downloading);
    downloading.download_progress = Some(0);
    let (job, outcome) = step(&job, downloading, 1);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert!(outcome.reevaluate.is_empty());
    assert_eq!(job.state, JobState::Downloading);
    assert_eq!(job.download_started, Some(at(1)));
    assert_eq!(job.last_report, Some(at(1)));

    let mut unpacking = report(&job, ReportedState::Downloading);
    unpacking.download_progress = Some(101);
    let (job, _) = step(&job, unpacking, 2);
    assert_eq!(job.state, JobState::Downloading);
    assert_eq!(job.download_progress, Some(101));
    assert_eq!(job.download_started, Some(at(1)), "set once");
    assert_eq!(job.last_report, Some(at(2)));

    let (job, _) = step(&job, report(&job, ReportedState::Executing), 3);
    assert_eq!(job.state, JobState::Executing);
    assert_eq!(job.execution_started, Some(at(3)));
    assert_eq!(job.download_progress, Some(101), "kept when not reported");

    let mut output = report(&job, ReportedState::Executing);
    output.output = Some("installing…".into());
    let (job, _) = step(&job, output, 4);
    assert_eq!(job.state, JobState::Executing);
    assert_eq!(job.output, "installing…");
    assert_eq!(job.execution_started, Some(at(3)), "set once");
    assert_eq!(job.last_report, Some(at(4)));

    let mut done = with_code(report(&job, ReportedState::Succeeded), Some(3010));
    done.output = Some("installing… done".into());
    let (job, outcome) = step(&job, done, 5);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.return_code, Some(3010));
    assert_eq!(job.output, "installing… done");
    assert_eq!(job.message, None);
    assert_eq!(job.finished, Some(at(5)));
    assert_eq!(job.download_started, Some(at(1)));
    assert_eq!(job.execution_started, Some(at(3)));
    assert_eq!(job.revision, Revision(6), "five writes");
}

#[test]
fn waiting_straight_to_executing() {
    let job = job(42, 1, JobState::Waiting);
    let (job, _) = step(&job, report(&job, ReportedState::Executing), 1);
    assert_eq!(job.state, JobState::Executing);
    assert_eq!(job.download_started, None);
    assert_eq!(job.execution_started, Some(at(1)));
}

#[test]
fn same_state_repeat_is_written_to_track_liveness() {
    let mut job = job(42, 1, JobState::Executing);
    job.execution_started = Some(at(0));
    job.output = "step 1".into();
    let outcome = apply(
        &snapshot(job.clone()),
        &report(&job, ReportedState::Executing),
        9,
    );
    assert_eq!(outcome.disposition, Disposition::Applied);
    let [Change::UpdateJob { expected, job: new }] = outcome.changes.changes.as_slice() else {
        panic!("{:?}", outcome.changes)
    };
    assert_eq!(*expected, Revision(1));
    assert_eq!(new.last_report, Some(at(9)));
    assert_eq!(new.execution_started, Some(at(0)));
    assert_eq!(new.output, "step 1", "kept when not reported");
    assert_eq!(new.state, JobState::Executing);
}

#[test]
fn null_code_on_success_counts_as_zero() {
    let job = job(42, 1, JobState::Executing);
    let (job, _) = step(&job, report(&job, ReportedState::Succeeded), 1);
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.return_code, Some(0));
}

#[test]
fn rejected_code_fails_the_job_with_the_code_and_a_message() {
    let job = job(42, 1, JobState::Executing);
    let (job, outcome) = step(
        &job,
        with_code(report(&job, ReportedState::Succeeded), Some(1603)),
        1,
    );
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert!(outcome.reevaluate.is_empty(), "no assignment on failure");
    assert_eq!(outcome.changes.changes.len(), 1);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.return_code, Some(1603));
    assert_eq!(job.message, Some(MessageCode::ReturnCodeRejected));
    assert_eq!(job.finished, Some(at(1)));
}

#[test]
fn star_success_codes_accept_any_code() {
    let package = package(PACKAGE, UpgradeBehavior::KeepOthers, "*");
    let job = job_of(42, &package, JobKind::Install, 1, JobState::Executing);
    let (job, _) = step(
        &job,
        with_code(report(&job, ReportedState::Succeeded), Some(-12345)),
        1,
    );
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.return_code, Some(-12345));
}

#[test]
fn agent_error_keeps_its_code() {
    let job = job(42, 1, JobState::Downloading);
    let mut error = with_code(report(&job, ReportedState::Failed), Some(-9999));
    error.output = Some("download failed".into());
    let (job, outcome) = step(&job, error, 1);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.return_code, Some(-9999));
    assert_eq!(job.message, None);
    assert_eq!(job.output, "download failed");
    assert_eq!(job.finished, Some(at(1)));
}

#[test]
fn late_duplicate_and_out_of_order_reports_are_ignored() {
    let job = job(42, 1, JobState::Executing);
    let (done, _) = step(&job, report(&job, ReportedState::Succeeded), 1);

    // Output from the agent's second thread arriving after the final report.
    let late = apply(
        &snapshot(done.clone()),
        &report(&done, ReportedState::Executing),
        2,
    );
    ignored(
        &late,
        IgnoredReport::AlreadyFinal {
            state: JobState::Succeeded,
        },
    );

    let duplicate = apply(
        &snapshot(done.clone()),
        &with_code(report(&done, ReportedState::Succeeded), Some(3010)),
        3,
    );
    ignored(
        &duplicate,
        IgnoredReport::AlreadyFinal {
            state: JobState::Succeeded,
        },
    );

    let backward = apply(
        &snapshot(job.clone()),
        &report(&job, ReportedState::Downloading),
        4,
    );
    ignored(
        &backward,
        IgnoredReport::Backward {
            state: JobState::Executing,
        },
    );

    // A failure after an agent's failure is ignored too.
    let (failed, _) = step(&job, report(&job, ReportedState::Failed), 5);
    let again = apply(
        &snapshot(failed.clone()),
        &report(&failed, ReportedState::Succeeded),
        6,
    );
    ignored(
        &again,
        IgnoredReport::AlreadyFinal {
            state: JobState::Failed,
        },
    );
}

#[test]
fn report_for_another_attempt_is_ignored() {
    let mut renewed = job(42, 1, JobState::Waiting);
    renewed.attempt = 2;
    let mut old = report(&renewed, ReportedState::Succeeded);
    old.attempt = 1;
    ignored(
        &apply(&snapshot(renewed.clone()), &old, 1),
        IgnoredReport::EarlierAttempt { current: 2 },
    );
    let mut future = report(&renewed, ReportedState::Executing);
    future.attempt = 3;
    ignored(
        &apply(&snapshot(renewed.clone()), &future, 1),
        IgnoredReport::LaterAttempt { current: 2 },
    );
    let (renewed, outcome) = step(&renewed, report(&renewed, ReportedState::Executing), 1);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(renewed.state, JobState::Executing);
}

#[test]
fn success_after_abort_is_recorded_with_its_assignment() {
    let job = aborted(job(42, 2, JobState::Waiting));
    let mut success = with_code(report(&job, ReportedState::Succeeded), Some(0));
    success.output = Some("ok".into());
    let outcome = apply(&snapshot(job.clone()), &success, 1);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(outcome.reevaluate, vec![PC]);
    let new = stored(&job, &outcome.changes.changes);
    assert_eq!(new.state, JobState::Succeeded);
    assert_eq!(new.return_code, Some(0));
    assert_eq!(new.message, None, "the server's reason no longer applies");
    assert_eq!(new.output, "ok");
    assert_eq!(new.finished, Some(at(1)));
    assert_eq!(
        outcome.changes.changes[2],
        Change::UpsertAssignment {
            assignment: Assignment {
                computer: PC,
                package: PACKAGE,
                installed_at: at(1),
                job: Some(JobId(42)),
            }
        }
    );
}

#[test]
fn failure_after_abort_keeps_the_servers_reason() {
    let job = aborted(job(42, 2, JobState::Waiting));
    let state = JobState::Failed;
    for report in [
        with_code(report(&job, ReportedState::Failed), Some(-9999)),
        with_code(report(&job, ReportedState::Succeeded), Some(1)),
        report(&job, ReportedState::Executing),
    ] {
        ignored(
            &apply(&snapshot(job.clone()), &report, 1),
            IgnoredReport::ServerFinal { state },
        );
    }
}

#[test]
fn success_after_server_final_states_is_recorded() {
    for state in [
        JobState::Expired,
        JobState::Incompatible,
        JobState::AlreadyInstalled,
    ] {
        let mut job = job(42, 1, state);
        job.finished = Some(at(-5));
        let (new, outcome) = step(&job, report(&job, ReportedState::Succeeded), 1);
        assert_eq!(outcome.disposition, Disposition::Applied, "{state:?}");
        assert_eq!(outcome.reevaluate, vec![PC]);
        assert_eq!(new.state, JobState::Succeeded);
        assert_eq!(new.finished, Some(at(1)));
    }
}

fn cascade_snapshot(mode: SequenceMode) -> ReportSnapshot {
    let failing = job(42, 3, JobState::Executing);
    let mut other_origin = job(60, 9, JobState::Waiting);
    other_origin.origin = oco_core::model::Origin::Rule(oco_core::model::RuleId(1));
    let mut other_pc = job(61, 9, JobState::Waiting);
    other_pc.computer = OTHER_PC;
    ReportSnapshot {
        sequence_mode: mode,
        origin_jobs: vec![
            job(50, 5, JobState::Waiting),
            job(41, 1, JobState::Waiting), // lower sequence: untouched
            job(49, 4, JobState::Waiting),
            job(51, 5, JobState::Waiting), // same sequence as 50: by id
            job(52, 6, JobState::Executing), // running: untouched
            job(53, 7, JobState::Downloading),
            job(54, 8, JobState::Succeeded),
            job(55, 3, JobState::Waiting), // same sequence: untouched
            other_origin,
            other_pc,
            failing.clone(),
        ],
        ..snapshot(failing)
    }
}

#[test]
fn abort_after_failed_cascades_to_later_waiting_jobs_only() {
    let snapshot = cascade_snapshot(SequenceMode::AbortAfterFailed);
    let failure = with_code(report(&snapshot.job, ReportedState::Failed), Some(-9999));
    let outcome = apply(&snapshot, &failure, 1);

    assert_eq!(outcome.disposition, Disposition::Applied);
    assert!(outcome.reevaluate.is_empty());
    let jobs = updated_jobs(&outcome.changes.changes);
    let ids: Vec<_> = jobs.iter().map(|job| job.id.0).collect();
    assert_eq!(
        ids,
        [42, 49, 50, 51],
        "reported job first, then by (sequence, id)"
    );
    for aborted in &jobs[1..] {
        assert_eq!(aborted.state, JobState::Failed);
        assert_eq!(aborted.return_code, Some(-8888));
        assert_eq!(aborted.message, Some(MessageCode::AbortedAfterFailed));
        assert_eq!(aborted.finished, Some(at(1)));
        assert_eq!(aborted.last_report, None, "not an agent report");
        assert!(aborted.finalized_by_server());
    }
    for change in &outcome.changes.changes {
        let Change::UpdateJob { expected, .. } = change else {
            panic!("only job updates: {change:?}")
        };
        assert_eq!(*expected, Revision(1));
    }
}

#[test]
fn rejected_code_cascades_too() {
    let snapshot = cascade_snapshot(SequenceMode::AbortAfterFailed);
    let rejected = with_code(report(&snapshot.job, ReportedState::Succeeded), Some(5));
    let ids: Vec<_> = updated_jobs(&apply(&snapshot, &rejected, 1).changes.changes)
        .iter()
        .map(|job| job.id.0)
        .collect();
    assert_eq!(ids, [42, 49, 50, 51]);
}

#[test]
fn ignore_failed_does_not_cascade() {
    let snapshot = cascade_snapshot(SequenceMode::IgnoreFailed);
    let failure = with_code(report(&snapshot.job, ReportedState::Failed), Some(-9999));
    let ids: Vec<_> = updated_jobs(&apply(&snapshot, &failure, 1).changes.changes)
        .iter()
        .map(|job| job.id.0)
        .collect();
    assert_eq!(ids, [42]);
}

#[test]
fn success_does_not_cascade() {
    let snapshot = cascade_snapshot(SequenceMode::AbortAfterFailed);
    let success = report(&snapshot.job, ReportedState::Succeeded);
    let ids: Vec<_> = updated_jobs(&apply(&snapshot, &success, 1).changes.changes)
        .iter()
        .map(|job| job.id.0)
        .collect();
    assert_eq!(ids, [42]);
}

fn installed(package: i64) -> Assignment {
    Assignment {
        computer: PC,
        package: PackageId(package),
        installed_at: at(-1000),
        job: None,
    }
}

/// The changes of a successful install of `PACKAGE` with `upgrade`, with versions 9, 8 and the
/// package itself installed.
fn install_changes(kind: JobKind, upgrade: UpgradeBehavior) -> ReportOutcome {
    let package = package(PACKAGE, upgrade, "0");
    let job = job_of(42, &package, kind, 1, JobState::Executing);
    let snapshot = ReportSnapshot {
        family_assignments: vec![installed(9), installed(7), installed(8)],
        ..snapshot(job.clone())
    };
    apply(&snapshot, &report(&job, ReportedState::Succeeded), 1)
}

fn job_update_then(outcome: &ReportOutcome, assignments: &[Change]) {
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(outcome.reevaluate, vec![PC]);
    let changes = &outcome.changes.changes;
    assert_eq!(
        changes[0],
        Change::ExpectAssignments {
            computer: PC,
            expected: ASSIGNMENT_REVISION
        }
    );
    assert!(matches!(&changes[1], Change::UpdateJob { job, .. } if job.id == JobId(42)));
    assert_eq!(&changes[2..], assignments);
}

fn upsert() -> Change {
    Change::UpsertAssignment {
        assignment: Assignment {
            computer: PC,
            package: PACKAGE,
            installed_at: at(1),
            job: Some(JobId(42)),
        },
    }
}

fn delete(package: i64) -> Change {
    Change::DeleteAssignment {
        computer: PC,
        package: PackageId(package),
    }
}

#[test]
fn install_with_keep_others_upserts_only() {
    let outcome = install_changes(JobKind::Install, UpgradeBehavior::KeepOthers);
    job_update_then(&outcome, &[upsert()]);
}

#[test]
fn install_with_explicit_uninstall_upserts_only() {
    let outcome = install_changes(JobKind::Install, UpgradeBehavior::ExplicitUninstall);
    job_update_then(&outcome, &[upsert()]);
}

#[test]
fn install_with_implicit_remove_deletes_other_versions_first() {
    let outcome = install_changes(JobKind::Install, UpgradeBehavior::ImplicitRemove);
    job_update_then(&outcome, &[delete(8), delete(9), upsert()]);
}

#[test]
fn uninstall_deletes_the_assignment() {
    for upgrade in [
        UpgradeBehavior::KeepOthers,
        UpgradeBehavior::ImplicitRemove,
        UpgradeBehavior::ExplicitUninstall,
    ] {
        let outcome = install_changes(JobKind::Uninstall, upgrade);
        job_update_then(&outcome, &[delete(7)]);
    }
}

#[test]
fn tombstone_success_records_the_assignment_only() {
    let job = job(42, 1, JobState::Executing);
    let snapshot = ReportSnapshot {
        deleted: true,
        ..snapshot(job.clone())
    };
    let outcome = apply(&snapshot, &report(&job, ReportedState::Succeeded), 1);
    assert_eq!(outcome.disposition, Disposition::Applied);
    assert_eq!(outcome.reevaluate, vec![PC]);
    assert_eq!(
        outcome.changes.changes,
        [
            Change::ExpectAssignments {
                computer: PC,
                expected: ASSIGNMENT_REVISION
            },
            upsert()
        ]
    );
}

#[test]
fn tombstone_success_repeated_is_ignored() {
    let job = job(42, 1, JobState::Executing);
    let tombstone = ReportSnapshot {
        deleted: true,
        ..snapshot(job.clone())
    };
    let success = report(&job, ReportedState::Succeeded);
    let first = apply(&tombstone, &success, 1);
    assert_eq!(first.disposition, Disposition::Applied);

    // The store applied the upsert: the assignment now names the job.
    let recorded = Assignment {
        job: Some(job.id),
        ..installed(PACKAGE.0)
    };
    let after = ReportSnapshot {
        family_assignments: vec![installed(8), recorded],
        ..tombstone.clone()
    };
    ignored(
        &apply(&after, &success, 5),
        IgnoredReport::DeletedJobRecorded,
    );

    // An assignment of the package made by another job is not this job's record.
    let by_other_job = ReportSnapshot {
        family_assignments: vec![Assignment {
            job: Some(JobId(41)),
            ..installed(PACKAGE.0)
        }],
        ..tombstone
    };
    let outcome = apply(&by_other_job, &success, 5);
    assert_eq!(outcome.disposition, Disposition::Applied);
}

#[test]
fn tombstone_anything_else_is_ignored() {
    let job = job(42, 1, JobState::Executing);
    let tombstone = ReportSnapshot {
        deleted: true,
        ..snapshot(job.clone())
    };
    for report in [
        with_code(report(&job, ReportedState::Failed), Some(-9999)),
        with_code(report(&job, ReportedState::Succeeded), Some(1)),
        report(&job, ReportedState::Executing),
        report(&job, ReportedState::Downloading),
    ] {
        ignored(&apply(&tombstone, &report, 1), IgnoredReport::DeletedJob);
    }

    // The agent had finalised it before it was deleted: its bookkeeping already ran.
    let mut done = job.clone();
    done.state = JobState::Succeeded;
    let tombstone = ReportSnapshot {
        deleted: true,
        ..snapshot(done.clone())
    };
    ignored(
        &apply(&tombstone, &report(&done, ReportedState::Succeeded), 1),
        IgnoredReport::DeletedJob,
    );
}

#[test]
fn foreign_job_is_refused() {
    let job = job(42, 1, JobState::Executing);
    let error = apply_report(
        &snapshot(job.clone()),
        OTHER_PC,
        &report(&job, ReportedState::Succeeded),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        error,
        ReportError::ForeignJob {
            job: JobId(42),
            owner: PC,
            reporter: OTHER_PC
        }
    );
    assert_eq!(
        error.to_string(),
        "job 42 belongs to computer 3, not to the reporting computer 4"
    );
}

#[test]
fn report_for_another_job_than_the_snapshot_is_a_caller_error() {
    let job = job(42, 1, JobState::Executing);
    let mut wrong = report(&job, ReportedState::Succeeded);
    wrong.job = JobId(43);
    let error = apply_report(&snapshot(job), PC, &wrong, at(1)).unwrap_err();
    assert_eq!(
        error,
        ReportError::JobMismatch {
            reported: JobId(43),
            snapshot: JobId(42)
        }
    );
    assert_eq!(
        error.to_string(),
        "the report is about job 43 but the snapshot holds job 42"
    );
}

#[test]
fn wire_codes() {
    for (code, state) in [
        (1, ReportedState::Downloading),
        (2, ReportedState::Executing),
        (3, ReportedState::Succeeded),
        (-1, ReportedState::Failed),
    ] {
        assert_eq!(ReportedState::from_wire_code(code), Ok(state));
        assert_eq!(state.wire_code(), code);
    }
    for code in [0, -2, -3, -5, 4, i64::MAX] {
        assert_eq!(
            ReportedState::from_wire_code(code),
            Err(UnknownState { code })
        );
    }
    assert_eq!(
        ReportedState::from_wire_code(0).unwrap_err().to_string(),
        "unknown job state 0: an agent reports 1, 2, 3 or -1"
    );
}

#[test]
fn reports_and_outcomes_round_trip_through_serde() {
    let job = job(42, 1, JobState::Executing);
    let mut success = with_code(report(&job, ReportedState::Succeeded), Some(3010));
    success.output = Some("done".into());
    let json = serde_json::to_value(&success).unwrap();
    assert_eq!(json["state"], "succeeded");
    assert_eq!(
        serde_json::from_value::<AgentReport>(json).unwrap(),
        success
    );

    let applied = apply(&snapshot(job.clone()), &success, 1);
    let json = serde_json::to_value(&applied).unwrap();
    assert_eq!(json["disposition"], "applied");
    assert_eq!(
        serde_json::from_value::<ReportOutcome>(json).unwrap(),
        applied
    );

    for (disposition, json) in [
        (
            Disposition::Ignored(IgnoredReport::EarlierAttempt { current: 2 }),
            r#"{"ignored":{"reason":"earlier-attempt","current":2}}"#,
        ),
        (
            Disposition::Ignored(IgnoredReport::ServerFinal {
                state: JobState::AlreadyInstalled,
            }),
            r#"{"ignored":{"reason":"server-final","state":"already-installed"}}"#,
        ),
        (
            Disposition::Ignored(IgnoredReport::DeletedJobRecorded),
            r#"{"ignored":{"reason":"deleted-job-recorded"}}"#,
        ),
    ] {
        assert_eq!(serde_json::to_string(&disposition).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<Disposition>(json).unwrap(),
            disposition
        );
    }
    for state in [
        ReportedState::Downloading,
        ReportedState::Executing,
        ReportedState::Succeeded,
        ReportedState::Failed,
    ] {
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ReportedState>(&json).unwrap(), state);
    }
    assert_eq!(
        serde_json::to_string(&ReportedState::Downloading).unwrap(),
        r#""downloading""#
    );
}

#[test]
fn ignored_reasons_render_for_the_log() {
    let cases = [
        (
            IgnoredReport::EarlierAttempt { current: 2 },
            "report for an earlier attempt (the job is at attempt 2)",
        ),
        (
            IgnoredReport::LaterAttempt { current: 2 },
            "report for an attempt never handed out (the job is at attempt 2)",
        ),
        (
            IgnoredReport::Backward {
                state: JobState::Executing,
            },
            "report would move the job backward (it is executing)",
        ),
        (
            IgnoredReport::AlreadyFinal {
                state: JobState::Succeeded,
            },
            "the job was already finalised by the agent (succeeded)",
        ),
        (
            IgnoredReport::ServerFinal {
                state: JobState::AlreadyInstalled,
            },
            "the job was finalised by the server (already-installed) and the report is not a success",
        ),
        (
            IgnoredReport::DeletedJob,
            "the job was deleted and the report is not a success",
        ),
        (
            IgnoredReport::DeletedJobRecorded,
            "the job was deleted and its success is already recorded",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn timestamps_are_set_once() {
    let job = job(42, 1, JobState::Waiting);
    let (job, _) = step(&job, report(&job, ReportedState::Downloading), 1);
    let (job, _) = step(&job, report(&job, ReportedState::Downloading), 2);
    let (job, _) = step(&job, report(&job, ReportedState::Executing), 3);
    let (job, _) = step(&job, report(&job, ReportedState::Executing), 4);
    let (job, _) = step(&job, report(&job, ReportedState::Downloading), 5);
    let (job, _) = step(&job, report(&job, ReportedState::Succeeded), 6);
    let (job, _) = step(&job, report(&job, ReportedState::Succeeded), 7);
    let (job, _) = step(&job, report(&job, ReportedState::Executing), 8);
    assert_eq!(job.download_started, Some(at(1)));
    assert_eq!(job.execution_started, Some(at(3)));
    assert_eq!(job.finished, Some(at(6)));
    assert_eq!(
        job.last_report,
        Some(at(6)),
        "ignored reports are not noted"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn reported_state() -> impl Strategy<Value = ReportedState> {
        prop_oneof![
            Just(ReportedState::Downloading),
            Just(ReportedState::Executing),
            Just(ReportedState::Succeeded),
            Just(ReportedState::Failed),
        ]
    }

    fn agent_report() -> impl Strategy<Value = (ReportedState, Option<i64>, u32, Option<u8>)> {
        (
            reported_state(),
            prop_oneof![
                Just(None),
                Just(Some(0)),
                Just(Some(-9999)),
                (-5i64..5).prop_map(Some)
            ],
            0u32..4,
            proptest::option::of(0u8..=101),
        )
    }

    fn start() -> impl Strategy<Value = Job> {
        (
            prop_oneof![
                Just(JobState::Waiting),
                Just(JobState::Downloading),
                Just(JobState::Executing),
                Just(JobState::Expired),
                Just(JobState::Incompatible),
                Just(JobState::AlreadyInstalled),
                Just(JobState::Failed),
            ],
            any::<bool>(),
            1u32..3,
            prop_oneof![Just("*"), Just("0"), Just("0-1, -3")],
        )
            .prop_map(|(state, abort, attempt, codes)| {
                let package = package(PACKAGE, UpgradeBehavior::ImplicitRemove, codes);
                let mut job = job_of(42, &package, JobKind::Install, 1, state);
                job.attempt = attempt;
                if state == JobState::Failed && abort {
                    job = aborted(job);
                }
                job
            })
    }

    fn rank(state: JobState) -> u8 {
        match state {
            JobState::Waiting => 0,
            JobState::Downloading => 1,
            _ => 2,
        }
    }

    proptest! {
        #[test]
        fn reports_never_move_a_job_backwards(
            start in start(),
            reports in proptest::collection::vec(agent_report(), 1..12),
        ) {
            let mut job = start;
            for (minute, (state, code, attempt, progress)) in (1i64..).zip(reports) {
                let report = AgentReport {
                    job: job.id,
                    attempt,
                    state,
                    return_code: code,
                    download_progress: progress,
                    output: Some(format!("output {minute}")),
                };
                let outcome = apply(&snapshot(job.clone()), &report, minute);
                let next = stored(&job, &outcome.changes.changes);

                prop_assert_eq!(outcome.changes.is_empty(), outcome.disposition != Disposition::Applied);
                if job.state.is_pending() && next.state.is_pending() {
                    prop_assert!(rank(next.state) >= rank(job.state), "{:?} -> {:?}", job.state, next.state);
                }
                if job.state.is_final() && !job.finalized_by_server() {
                    prop_assert_eq!(&next, &job, "an agent's final state is final");
                }
                if job.finalized_by_server() && next != job {
                    prop_assert_eq!(next.state, JobState::Succeeded);
                }
                if next != job {
                    prop_assert_eq!(report.attempt, job.attempt);
                    prop_assert_eq!(next.last_report, Some(at(minute)));
                }
                for (before, after) in [
                    (job.download_started, next.download_started),
                    (job.execution_started, next.execution_started),
                ] {
                    if before.is_some() {
                        prop_assert_eq!(before, after, "set once");
                    }
                }
                if next.state == JobState::Succeeded && job.state != JobState::Succeeded {
                    prop_assert_eq!(&outcome.reevaluate, &vec![PC]);
                } else {
                    prop_assert!(outcome.reevaluate.is_empty());
                }
                job = next;
            }
        }
    }
}

#[test]
fn final_report_on_an_orphan_deletes_it_after_recording_the_final_state() {
    let mut orphan = job(42, 1, JobState::Executing);
    orphan.orphaned = true;
    let outcome = apply(
        &snapshot(orphan.clone()),
        &with_code(report(&orphan, ReportedState::Succeeded), Some(0)),
        30,
    );
    assert_eq!(outcome.disposition, Disposition::Applied);
    let updated = updated_jobs(&outcome.changes.changes);
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].state, JobState::Succeeded);
    let deletes: Vec<_> = outcome
        .changes
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::DeleteJob {
                id,
                expected,
                at: when,
                ..
            } => Some((*id, *expected, *when)),
            _ => None,
        })
        .collect();
    // Deleted from the revision the final update leaves behind.
    assert_eq!(deletes, [(orphan.id, orphan.revision.next(), at(30))]);
    // The success still records the installation.
    assert!(outcome
        .changes
        .changes
        .iter()
        .any(|change| matches!(change, Change::UpsertAssignment { .. })));

    // Progress on an orphan changes it as usual but does not delete it.
    let progress = apply(
        &snapshot(orphan.clone()),
        &report(&orphan, ReportedState::Executing),
        31,
    );
    assert!(!progress
        .changes
        .changes
        .iter()
        .any(|change| matches!(change, Change::DeleteJob { .. })));
}
