//! Peak extra memory of one full rule evaluation on the fixed 10,000 × 100 world
//! (`benches/PERFORMANCE.md`: the process's maximum RSS minus the RSS after building the input).
//!
//! Builds the input, prints its RSS, resets the kernel's peak-RSS mark (`/proc/self/clear_refs`,
//! so that transient peaks while building do not count), evaluates once with the diff kept
//! alive, and prints the peak and the difference. The case is `first` (no jobs yet, the default)
//! or `steady` (all jobs exist, 1 % of computers changed groups). Linux only.
//!
//! Run: `cargo run --release -p oco-benches --bin rules_memory [first|steady]`, or under
//! `/usr/bin/time -v` for the kernel's own maximum RSS (which includes building the input).

use std::hint::black_box;

use oco_benches::rules::{first_world, rules_now, steady_world, CASE_10K_X_100, RULE};
use oco_core::rules::Scope;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    let case = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "first".to_owned());
    let world = match case.as_str() {
        "first" => first_world(CASE_10K_X_100),
        "steady" => steady_world(CASE_10K_X_100),
        other => return Err(format!("unknown case {other:?}: first or steady").into()),
    };
    let jobs = world.jobs(RULE).len();
    let built = status()?;
    println!("case: {case}, 10,000 × 100, {jobs} existing jobs");
    println!(
        "after building the input: VmRSS {} MiB (peak while building {} MiB)",
        mib(built.rss),
        mib(built.hwm)
    );

    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status()?;
    if reset {
        println!("peak mark reset: VmHWM {} MiB", mib(base.hwm));
    } else {
        println!("could not reset the peak mark: the peak below includes building");
    }

    let diff = world.evaluate(RULE, &Scope::full(), rules_now());
    let after = status()?;
    println!(
        "diff: {} inserts, {} updates, {} deletes",
        diff.insert.len(),
        diff.update.len(),
        diff.delete.len()
    );
    println!(
        "after evaluating (diff alive): VmRSS {} MiB, VmHWM {} MiB",
        mib(after.rss),
        mib(after.hwm)
    );
    println!(
        "peak extra memory: {} MiB (VmHWM − VmRSS after building); diff held: {} MiB",
        mib(after.hwm.saturating_sub(built.rss)),
        mib(after.rss.saturating_sub(built.rss))
    );
    black_box(&diff);
    Ok(())
}

/// Resident set sizes, in KiB.
struct Status {
    rss: u64,
    hwm: u64,
}

fn status() -> Result<Status> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        let kib = line.trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok(Status {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}
