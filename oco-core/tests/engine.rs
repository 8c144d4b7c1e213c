//! The engine through its public API, on the in-memory store: each operation's outcome, its
//! retries after a lost race, and its bound on them.

// Test fixtures panic on bad values by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::deploy::{ContainerSettings, DeployRequest, UninstallRequest};
use oco_core::engine::{
    run, Engine, EngineError, EngineOptions, Operation, Progress, Step, Write, Written,
};
use oco_core::housekeeping::Effect;
use oco_core::model::{
    ComputerId, DeliveryPolicy, JobState, MacAddress, Name, PackageId, Procedure, SequenceMode,
    WolSettings,
};
use oco_core::plan::HoldReason;
use oco_core::report::{AgentReport, Disposition, ReportedState};
use oco_core::store::{MemoryStore, NewComputer, NewPackage, NewRule, Store, StoreError};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

fn name(text: &str) -> Name {
    Name::new("name", text).unwrap()
}

/// An engine with two computers and two packages of one family (`runtime` and `editor`).
fn world(options: EngineOptions) -> (Engine<MemoryStore>, [ComputerId; 2], [PackageId; 2]) {
    let engine = Engine::with_options(MemoryStore::new(), options);
    let store = engine.store();
    let mac: MacAddress = "02:00:00:00:00:01".parse().unwrap();
    let pcs = ["pc1", "pc2"].map(|host| {
        let computer =
            NewComputer::new(Name::hostname("hostname", host).unwrap()).with_macs(vec![mac]);
        store.create_computer(computer).unwrap().id
    });
    let family = store.create_family(name("tools")).unwrap();
    let packages = ["runtime", "editor"].map(|version| {
        let package = NewPackage::new(family.id, name(version), Procedure::new("setup"));
        store.create_package(package).unwrap().id
    });
    (engine, pcs, packages)
}

fn abort_after_failed(title: &str) -> ContainerSettings {
    let policy = DeliveryPolicy::default().with_sequence_mode(SequenceMode::AbortAfterFailed);
    ContainerSettings::new(name(title), now(), policy)
}

fn addr() -> std::net::IpAddr {
    "10.0.0.7".parse().unwrap()
}

#[test]
fn a_deploy_is_polled_in_sequence_and_a_failure_aborts_the_rest_of_that_computer_only() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let request = DeployRequest::new(abort_after_failed("both"))
        .with_computers(pcs)
        .with_packages(packages);
    let deployed = engine.deploy(&request, now()).unwrap();
    assert_eq!(deployed.jobs.len(), 4);
    assert_eq!(
        engine.store().container(deployed.container.id).unwrap(),
        deployed.container
    );

    let poll = engine.poll(pcs[0], addr(), now()).unwrap();
    let sequences: Vec<u32> = poll.deliver.iter().map(|d| d.job.sequence).collect();
    assert_eq!(sequences, [1, 2]);
    assert!(poll.held.is_empty() && poll.changes.is_empty());

    let first = &poll.deliver[0].job;
    let failure =
        AgentReport::new(first.id, first.attempt, ReportedState::Failed).with_return_code(-9999);
    let (reported, evaluations) = engine.report(pcs[0], failure, now()).unwrap();
    assert_eq!(reported.disposition, Disposition::Applied);
    assert!(!reported.job_succeeded);
    assert!(evaluations.is_empty());
    // The failed job and its aborted successor, written together.
    assert_eq!(reported.changes.changes.len(), 2);
    let second = engine.store().job(poll.deliver[1].job.id).unwrap();
    assert_eq!(
        (second.state, second.return_code),
        (JobState::Failed, Some(-8888))
    );

    assert!(engine
        .poll(pcs[0], addr(), now())
        .unwrap()
        .deliver
        .is_empty());
    assert_eq!(engine.poll(pcs[1], addr(), now()).unwrap().deliver.len(), 2);
}

#[test]
fn a_poll_says_why_jobs_are_held() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let later = ContainerSettings::new(
        name("later"),
        now() + Duration::hours(2),
        DeliveryPolicy::default(),
    );
    engine
        .deploy(
            &DeployRequest::new(later)
                .with_computers([pcs[0]])
                .with_packages([packages[0]]),
            now(),
        )
        .unwrap();
    let poll = engine.poll(pcs[0], addr(), now()).unwrap();
    assert!(poll.deliver.is_empty());
    assert_eq!(poll.held.len(), 1);
    assert_eq!(
        poll.held[0].reason,
        HoldReason::NotStarted {
            starts_at: now() + Duration::hours(2)
        }
    );
    assert_eq!(poll.valid_until, Some(now() + Duration::hours(2)));
    assert!(matches!(
        engine.poll(ComputerId(999), addr(), now()),
        Err(EngineError::Store(StoreError::NotFound {
            what: "computer",
            ..
        }))
    ));
}

#[test]
fn a_report_that_loses_a_race_is_decided_again_on_what_won() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let request = DeployRequest::new(abort_after_failed("race"))
        .with_computers([pcs[0]])
        .with_packages([packages[0]]);
    let job = engine.deploy(&request, now()).unwrap().jobs[0].id;

    // The success is decided on the Waiting job…
    let success = AgentReport::new(job, 1, ReportedState::Succeeded).with_return_code(0);
    let mut op = engine.report_op(pcs[0], success, now());
    let Step::Write(Write::Apply(set)) = op.resume(engine.store()) else {
        panic!("a success on a waiting job writes");
    };
    // …but a progress report lands first, so its compare-and-set fails.
    let progress = AgentReport::new(job, 1, ReportedState::Downloading);
    engine.report(pcs[0], progress, now()).unwrap();
    let written = Written::Applied(engine.store().apply(&set));
    assert!(matches!(
        written,
        Written::Applied(Err(StoreError::Conflict { .. }))
    ));
    assert!(matches!(op.written(written), Progress::Resume));

    // Resumed, it reads the Downloading job and succeeds on it.
    let (reported, follow_up) = run(engine.store(), op).unwrap();
    assert!(reported.job_succeeded);
    assert_eq!(follow_up.computers, [pcs[0]]);
    let stored = engine.store().job(job).unwrap();
    assert_eq!(stored.state, JobState::Succeeded);
    assert!(
        stored.download_started.is_some(),
        "the progress report is kept"
    );
}

#[test]
fn an_operation_that_loses_every_race_is_contended_and_writes_nothing() {
    let options = EngineOptions::default().with_attempts(NonZeroUsize::new(2).unwrap());
    let (engine, pcs, packages) = world(options);
    let request = DeployRequest::new(abort_after_failed("contended"))
        .with_computers([pcs[0]])
        .with_packages([packages[0]]);
    let job = engine.deploy(&request, now()).unwrap().jobs[0].id;
    let report = AgentReport::new(job, 1, ReportedState::Failed).with_return_code(1);
    let mut op = engine.report_op(pcs[0], report, now());
    let lost = || {
        Written::Applied(Err(StoreError::Conflict {
            what: "job revision".into(),
        }))
    };
    for round in 1..=2 {
        assert!(matches!(op.resume(engine.store()), Step::Write(_)));
        match op.written(lost()) {
            Progress::Resume => assert_eq!(round, 1),
            Progress::Done(Err(EngineError::Contended {
                operation,
                attempts,
            })) => {
                assert_eq!((round, operation, attempts), (2, "report", 2));
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert_eq!(engine.store().job(job).unwrap().state, JobState::Waiting);
}

#[test]
fn reports_on_unknown_or_foreign_jobs_are_refused() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let request = DeployRequest::new(abort_after_failed("mine"))
        .with_computers([pcs[0]])
        .with_packages([packages[0]]);
    let job = engine.deploy(&request, now()).unwrap().jobs[0].id;
    let report = AgentReport::new(job, 1, ReportedState::Downloading);
    assert!(matches!(
        engine.report(pcs[1], report.clone(), now()),
        Err(EngineError::ForeignJob { job: j, owner, reporter }) if j == job && owner == pcs[0] && reporter == pcs[1]
    ));
    let unknown = AgentReport::new(oco_core::model::JobId(12345), 1, ReportedState::Downloading);
    assert!(matches!(
        engine.report(pcs[0], unknown, now()),
        Err(EngineError::UnknownJob(oco_core::model::JobId(12345)))
    ));
    assert_eq!(engine.store().job(job).unwrap().state, JobState::Waiting);
}

#[test]
fn a_success_reevaluates_the_rules_of_its_computer() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let store = engine.store();
    let office = store.create_computer_group(name("office"), None).unwrap();
    store
        .set_computer_group_members(office.id, &[pcs[0]])
        .unwrap();
    let editors = store.create_package_group(name("editors"), None).unwrap();
    store
        .set_package_group_members(editors.id, &[packages[1]])
        .unwrap();
    let rule = store
        .create_rule(NewRule::new(
            name("editor everywhere"),
            office.id,
            editors.id,
            now(),
        ))
        .unwrap();
    let evaluated = engine.evaluate_rule(&rule, now()).unwrap();
    assert_eq!(evaluated.inserted, 1);

    let request = DeployRequest::new(abort_after_failed("runtime"))
        .with_computers([pcs[0]])
        .with_packages([packages[0]]);
    let job = engine.deploy(&request, now()).unwrap().jobs[0].id;
    let success = AgentReport::new(job, 1, ReportedState::Succeeded).with_return_code(0);
    let (reported, evaluations) = engine.report(pcs[0], success, now()).unwrap();
    assert!(reported.job_succeeded);
    let rules: Vec<_> = evaluations.iter().map(|e| e.rule).collect();
    assert_eq!(rules, [rule.id]);
}

#[test]
fn housekeeping_expires_wakes_and_purges() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let container = ContainerSettings::new(name("tonight"), now(), DeliveryPolicy::default())
        .with_end(now() + Duration::hours(8))
        .unwrap()
        .with_wol(WolSettings {
            wake: true,
            ..WolSettings::default()
        });
    let request = DeployRequest::new(container)
        .with_computers(pcs)
        .with_packages([packages[0]]);
    let deployed = engine.deploy(&request, now()).unwrap();

    let woken = engine.housekeeping(now()).unwrap();
    assert_eq!(woken.summary.wakes, 1);
    let [Effect::Wake { container, macs }] = woken.effects.as_slice() else {
        panic!("one wake: {:?}", woken.effects);
    };
    assert_eq!((*container, macs.len()), (deployed.container.id, 1));
    assert!(
        engine.housekeeping(now()).unwrap().effects.is_empty(),
        "sent once"
    );

    let expired = engine.housekeeping(now() + Duration::days(1)).unwrap();
    assert_eq!(expired.summary.expired, 2);
    let purged = engine.housekeeping(now() + Duration::days(4)).unwrap();
    assert_eq!(purged.summary.purged, 1);
    assert!(engine.store().container(deployed.container.id).is_err());
}

#[test]
fn last_seen_times_skip_deleted_computers_and_keep_the_rest() {
    let (engine, pcs, _) = world(EngineOptions::default());
    engine.store().delete_computer(pcs[1], now()).unwrap();
    let seen = vec![(pcs[0], now()), (pcs[1], now())];
    let recorded = engine.record_seen(seen).unwrap();
    assert_eq!((recorded.written, recorded.skipped), (1, vec![pcs[1]]));
    assert_eq!(
        engine.store().computer(pcs[0]).unwrap().last_seen,
        Some(now())
    );
    assert_eq!(engine.record_seen(Vec::new()).unwrap().written, 0);
}

#[test]
fn an_uninstall_creates_one_job_per_assignment_named() {
    let (engine, pcs, packages) = world(EngineOptions::default());
    let request = DeployRequest::new(abort_after_failed("install"))
        .with_computers([pcs[0]])
        .with_packages([packages[0]]);
    let job = engine.deploy(&request, now()).unwrap().jobs[0].id;
    let success = AgentReport::new(job, 1, ReportedState::Succeeded).with_return_code(0);
    let _ = engine.report(pcs[0], success, now()).unwrap();

    let container = ContainerSettings::new(name("remove"), now(), DeliveryPolicy::default());
    let removal = UninstallRequest::new(container.clone(), vec![(pcs[0], packages[0])]);
    let deployed = engine.uninstall(&removal, now()).unwrap();
    assert_eq!(deployed.jobs.len(), 1);
    assert_eq!(
        (deployed.jobs[0].computer, deployed.jobs[0].package),
        (pcs[0], packages[0])
    );

    let not_assigned = UninstallRequest::new(container, vec![(pcs[1], packages[0])]);
    assert!(matches!(
        engine.uninstall(&not_assigned, now()),
        Err(EngineError::Deploy(_))
    ));
}
