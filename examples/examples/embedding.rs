//! Embedding `oco-core` with its in-memory store: computers and a package are created, a
//! container is deployed with an IP-range and a time-frame constraint, and two simulated agents
//! poll and report across a simulated week. Each poll prints what the agent gets and why the rest
//! is held; at the end housekeeping runs and the container's statistics are printed.
//!
//! Run: `cargo run -p oco-examples --example embedding`

use std::collections::BTreeMap;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Europe::Berlin;
use oco_core::deploy::{deploy, ContainerSettings, DeployRequest};
use oco_core::housekeeping::{container_statistics, housekeeping};
use oco_core::model::{
    Compatibility, DeliveryPolicy, FamilyId, JobId, Name, Origin, Payload, Procedure, Schedule,
    Sha256Digest, SuccessCodes, UpgradeBehavior,
};
use oco_core::plan::plan;
use oco_core::report::{apply_report, AgentReport, ReportedState};
use oco_core::store::{JobFilter, MemoryStore, NewComputer, NewPackage, Page, Store};
use oco_core::Settings;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let settings = Settings::default();

    // The fleet and the software.
    let pc1 = store.create_computer(new_computer("pc1")?)?;
    let pc2 = store.create_computer(new_computer("pc2")?)?;
    let family = store.create_family(Name::new("name", "7-Zip")?)?;
    let package = store.create_package(seven_zip(family.id)?)?;

    // Monday 2026-11-23, 00:00 in Berlin.
    let monday = Berlin
        .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .ok_or("no such time")?
        .to_utc();

    // A container for both computers: the office network except its lab (the first matching
    // entry decides, so the exception comes first), weekday evenings in Berlin.
    let policy = DeliveryPolicy::new(Berlin)
        .with_ip_ranges("!10.66.0.0/16, 10.0.0.0/8".parse()?)
        .with_time_frames("MON-FRI 18:00-23:00".parse()?);
    assert!(
        !policy.ip_ranges.allows("10.66.1.1".parse()?),
        "the lab gets nothing"
    );
    assert!(
        policy.ip_ranges.allows("10.1.2.3".parse()?),
        "the office does"
    );
    let mut container =
        ContainerSettings::new(Name::new("name", "7-Zip roll-out")?, monday, policy);
    container.schedule = Schedule::new(monday, Some(monday + Duration::days(7)))?;
    let request = DeployRequest::new(container)
        .with_computers([pc1.id, pc2.id])
        .with_packages([package.id]);
    let changes = deploy(&request, &store.deploy_snapshot()?, monday)?;
    let applied = store.apply(&changes)?;
    let container = applied.containers[0];
    println!(
        "deployed container {container} with jobs {:?}\n",
        applied.jobs
    );

    // pc2 is in the branch office (192.168.1.20) until Wednesday, then in the office.
    let address = |hostname: &str, at: DateTime<Utc>| -> IpAddr {
        match hostname {
            "pc2" if at < monday + Duration::days(2) => [192, 168, 1, 20].into(),
            "pc2" => [10, 1, 0, 20].into(),
            _ => [10, 1, 0, 10].into(),
        }
    };

    // A poll every six hours for a week.
    for step in 0..28 {
        let now = monday + Duration::hours(6 * step);
        for computer in [&pc1, &pc2] {
            let addr = address(computer.hostname.as_str(), now);
            let snapshot = store.planner_snapshot(computer.id)?;
            let plan = plan(&snapshot, now, addr, &settings);
            if plan.deliver.is_empty() && plan.held.is_empty() {
                continue;
            }
            let local = now.with_timezone(&Berlin).format("%a %H:%M");
            println!("{local}  {} polls from {addr}", computer.hostname);
            for held in &plan.held {
                println!("    held job {}: {:?}", held.job.id, held.reason);
            }
            let delivered: Vec<JobId> = plan.deliver.iter().map(|d| d.job.id).collect();
            store.apply(&plan.changes)?;
            for job in delivered {
                println!("    runs job {job}");
                run_agent(&store, computer.id, job, now)?;
            }
        }
    }

    // After the container's end: its statistics, then housekeeping (which purges it).
    let after = monday + Duration::days(8);
    let jobs = store.list_jobs(
        &JobFilter {
            origin: Some(Origin::Container(container)),
            ..JobFilter::default()
        },
        Page::first(100),
    )?;
    let statistics = container_statistics(&store.container(container)?, &jobs, after);
    println!("\nstatus: {:?}", statistics.status);
    let counts: BTreeMap<_, _> = statistics.counts.iter().filter(|(_, n)| **n > 0).collect();
    println!("jobs by state: {counts:?}");
    if let Some(runtime) = statistics.total_runtime {
        println!("total runtime: {} hours", runtime.duration.num_hours());
    }
    let chores = housekeeping(after, &store.housekeeping_snapshot(after)?, &settings);
    store.apply(&chores.changes)?;
    println!("housekeeping a day after the end: {:?}", chores.summary);
    Ok(())
}

/// An agent that downloads, executes and succeeds, reporting each step a minute apart.
fn run_agent(
    store: &MemoryStore,
    computer: oco_core::model::ComputerId,
    job: JobId,
    start: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    let steps = [
        (ReportedState::Downloading, None, "downloading"),
        (ReportedState::Executing, None, "installing"),
        (ReportedState::Succeeded, Some(0), "done"),
    ];
    for (minute, (state, return_code, output)) in (1..).zip(steps) {
        let snapshot = store.report_snapshot(job)?;
        let report = AgentReport {
            job,
            attempt: snapshot.job.attempt,
            state,
            return_code,
            download_progress: None,
            output: Some(output.to_owned()),
        };
        let outcome = apply_report(
            &snapshot,
            computer,
            &report,
            start + Duration::minutes(minute),
        )?;
        store.apply(&outcome.changes)?;
    }
    let job = store.job(job)?;
    println!(
        "    job {} is {:?} (return code {:?})",
        job.id, job.state, job.return_code
    );
    Ok(())
}

fn new_computer(hostname: &str) -> Result<NewComputer, Box<dyn std::error::Error>> {
    Ok(NewComputer {
        hostname: Name::new("hostname", hostname)?,
        os: "Windows".into(),
        os_version: "11".into(),
        architecture: "x64".into(),
        macs: vec!["aa:bb:cc:dd:ee:01".parse()?],
    })
}

fn seven_zip(family: FamilyId) -> Result<NewPackage, Box<dyn std::error::Error>> {
    let install = Procedure::new("msiexec /i 7z2408-x64.msi /qn")
        .with_success_codes("0, 3010".parse::<SuccessCodes>()?);
    Ok(
        NewPackage::new(family, Name::new("version", "24.08")?, install)
            .with_uninstall(Procedure::new("msiexec /x 7z2408-x64.msi /qn"))
            .with_payload(Payload::new(4096, Sha256Digest([0x5a; 32])))
            .with_upgrade_behavior(UpgradeBehavior::ImplicitRemove)
            .with_compatibility(Compatibility {
                os: vec!["Windows".into()],
                ..Compatibility::default()
            }),
    )
}
