//! Embedding `oco-core` with its in-memory store, through the engine: computers and a package
//! are created, a container is deployed with an IP-range and a time-frame constraint, and two
//! simulated agents poll and report across a simulated week. Each poll prints what the agent gets
//! and why the rest is held; at the end housekeeping runs and the container's statistics are
//! printed. Every operation is one engine call; the engine reads, decides, writes with
//! compare-and-set and re-evaluates rules, and `now` is always an argument.
//!
//! Run: `cargo run -p oco-examples --example embedding`

use std::collections::BTreeMap;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::chrono_tz::Europe::Berlin;
use oco_core::deploy::{ContainerSettings, DeployRequest};
use oco_core::engine::Engine;
use oco_core::model::{
    Compatibility, ComputerId, DeliveryPolicy, FamilyId, JobId, Name, Payload, Procedure,
    Sha256Digest, SuccessCodes, UpgradeBehavior,
};
use oco_core::report::{AgentReport, ReportedState};
use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(MemoryStore::new());

    // Monday 2026-11-23, 00:00 in Berlin.
    let monday = Berlin
        .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .ok_or("no such time")?
        .to_utc();

    // The fleet and the software.
    let pc1 = engine.create_computer(new_computer("pc1")?, monday)?.value;
    let pc2 = engine.create_computer(new_computer("pc2")?, monday)?.value;
    let family = engine.create_family(Name::new("name", "7-Zip")?)?;
    let package = engine.create_package(seven_zip(family.id)?)?;

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
    let container = ContainerSettings::new(Name::new("name", "7-Zip roll-out")?, monday, policy)
        .with_end(monday + Duration::days(7))?;
    let request = DeployRequest::new(container)
        .with_computers([pc1.id, pc2.id])
        .with_packages([package.id]);
    let deployed = engine.deploy(&request, monday)?;
    let container = deployed.container.id;
    let jobs: Vec<JobId> = deployed.jobs.iter().map(|job| job.id).collect();
    println!("deployed container {container} with jobs {jobs:?}\n");

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
            let poll = engine.poll(computer.id, addr, now)?;
            if poll.deliver.is_empty() && poll.held.is_empty() {
                continue;
            }
            let local = now.with_timezone(&Berlin).format("%a %H:%M");
            println!("{local}  {} polls from {addr}", computer.hostname);
            for held in &poll.held {
                println!("    held job {}: {:?}", held.job.id, held.reason);
            }
            for delivered in &poll.deliver {
                println!("    runs job {}", delivered.job.id);
                run_agent(&engine, computer.id, &delivered.job, now)?;
            }
        }
    }

    // After the container's end: its statistics, then housekeeping (which purges it).
    let after = monday + Duration::days(8);
    let statistics = engine.container_statistics(container, after)?;
    println!("\nstatus: {:?}", statistics.status);
    let counts: BTreeMap<_, _> = statistics.counts.iter().filter(|(_, n)| **n > 0).collect();
    println!("jobs by state: {counts:?}");
    if let Some(runtime) = statistics.total_runtime {
        println!("total runtime: {} hours", runtime.duration.num_hours());
    }
    let chores = engine.housekeeping(after)?;
    println!("housekeeping a day after the end: {:?}", chores.summary);
    Ok(())
}

/// An agent that downloads, executes and succeeds, reporting each step a minute apart.
fn run_agent(
    engine: &Engine<MemoryStore>,
    computer: ComputerId,
    job: &oco_core::model::Job,
    start: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    let steps = [
        (ReportedState::Downloading, None, "downloading"),
        (ReportedState::Executing, None, "installing"),
        (ReportedState::Succeeded, Some(0), "done"),
    ];
    for (minute, (state, return_code, output)) in (1..).zip(steps) {
        let mut report = AgentReport::new(job.id, job.attempt, state).with_output(output);
        report.return_code = return_code;
        let _ = engine.report(computer, report, start + Duration::minutes(minute))?;
    }
    let job = engine.store().job(job.id)?;
    println!(
        "    job {} is {:?} (return code {:?})",
        job.id, job.state, job.return_code
    );
    Ok(())
}

fn new_computer(hostname: &str) -> Result<NewComputer, Box<dyn std::error::Error>> {
    Ok(NewComputer::new(Name::hostname("hostname", hostname)?)
        .with_os("Windows", "11")
        .with_architecture("x64")
        .with_macs(vec!["aa:bb:cc:dd:ee:01".parse()?]))
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
