//! `oco containers watch`: a container's progress, live, until none of its jobs is pending.
//!
//! Every interval it reads the container's statistics (`GET /containers/{id}/statistics`: the
//! counts per state); when the count of failed-like jobs (Failed, Expired, Incompatible) grows it
//! lists them (`GET /jobs?origin=container:{id}&state=…`) with their computers' host names.
//! On a terminal, stderr shows a progress bar of the jobs that ended with the counts beside
//! it, and each new failure above it; elsewhere (a pipe, a log) a line per change. The end is
//! the counts and the failures on stdout, or with `--json` one object: `{"container",
//! "statistics", "failures"}` (the container and statistics as the API gives them, the failed
//! jobs as `GET /jobs` lists them, at most [`SHOWN_FAILURES`]).
//!
//! A passing failure to reach the server (a restart, a 503 while it is busy) is retried, up to
//! [`RETRIES`] times in a row; any other error (the container deleted, a wrong token) ends the
//! watch.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::client::Error;
use crate::commands::{at, plural, Ctx};
use crate::table::Table;
use crate::{exit, note, Failure};

/// The job states, in the order they are shown.
const STATES: [&str; 8] = [
    "waiting",
    "downloading",
    "executing",
    "succeeded",
    "already-installed",
    "failed",
    "expired",
    "incompatible",
];

/// The states of a job not yet ended.
const PENDING: [&str; 3] = ["waiting", "downloading", "executing"];

/// The states that count as a failure (the watch then exits with [`exit::JOBS_FAILED`]).
const FAILED: [&str; 3] = ["failed", "expired", "incompatible"];

/// The most failures listed; the rest are counted, and `oco jobs list` shows them.
pub(crate) const SHOWN_FAILURES: usize = 100;

/// How many failed looks in a row a watch survives.
pub(crate) const RETRIES: u32 = 5;

/// Watches container `id`, looking every `interval`; the exit status.
pub(crate) fn watch(ctx: &mut Ctx<'_>, id: i64, interval: Duration) -> Result<u8, Failure> {
    let container = ctx.client.get(&format!("/containers/{id}"), &[])?;
    if container.get("enabled") == Some(&Value::Bool(false)) {
        note(&format!(
            "container {id} is disabled: its jobs are not handed out until it is enabled"
        ));
    }
    let mut progress = Progress::new(&format!("container {id} \"{}\"", at(&container, "/name")));
    let mut failures = Failures::default();
    let mut last = None;
    let mut errors = 0;
    let statistics = loop {
        let statistics = match ctx.client.get(&format!("/containers/{id}/statistics"), &[]) {
            Ok(statistics) => statistics,
            Err(error) if passing(&error) && errors < RETRIES => {
                errors += 1;
                progress.line(&format!("{error}; trying again ({errors}/{RETRIES})"));
                std::thread::sleep(interval);
                continue;
            }
            Err(error) => {
                progress.clear();
                return Err(error.into());
            }
        };
        errors = 0;
        let counts = Counts::of(&statistics);
        if last.as_ref() != Some(&counts) {
            progress.update(&counts);
            if counts.failed() > failures.seen.len() {
                for line in failures.refresh(ctx, id)? {
                    progress.line(&line);
                }
            }
            last = Some(counts.clone());
        }
        if counts.pending() == 0 {
            break statistics;
        }
        std::thread::sleep(interval);
    };
    progress.clear();
    let counts = Counts::of(&statistics);
    if counts.failed() > failures.seen.len() {
        failures.refresh(ctx, id)?;
    }
    let status = if counts.failed() > 0 {
        exit::JOBS_FAILED
    } else {
        exit::SUCCESS
    };
    if ctx.json {
        let shown: Vec<&Value> = failures.jobs.values().collect();
        crate::commands::print_json(
            ctx,
            &json!({"container": container, "statistics": statistics, "failures": shown}),
        )?;
        return Ok(status);
    }
    writeln!(
        ctx.out,
        "container {id} \"{}\" {}: {} job{}, {}",
        at(&container, "/name"),
        at(&statistics, "/status"),
        counts.total(),
        plural(counts.total()),
        counts.summary()
    )?;
    if !failures.jobs.is_empty() {
        let mut table = Table::new(["JOB", "COMPUTER", "HOSTNAME", "PACKAGE", "STATE", "RC"])
            .align_right(crate::commands::RIGHT);
        for job in failures.jobs.values() {
            table.row([
                at(job, "/id"),
                at(job, "/computer"),
                failures.hostname(job),
                at(job, "/package"),
                at(job, "/state"),
                at(job, "/return_code"),
            ]);
        }
        write!(ctx.out, "{}", table.render())?;
    }
    if counts.failed() > failures.jobs.len() {
        writeln!(
            ctx.out,
            "and {} more: oco jobs list --container {id} --state failed (or expired, incompatible)",
            counts.failed() - failures.jobs.len()
        )?;
    }
    Ok(status)
}

/// Whether a failed look may pass: the server unreachable, or busy.
fn passing(error: &Error) -> bool {
    matches!(error, Error::Transport { .. }) || matches!(error.status(), Some(502..=504))
}

/// How many jobs are in each state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn of(statistics: &Value) -> Counts {
        let counts = statistics
            .get("counts")
            .and_then(Value::as_object)
            .map(|counts| {
                counts
                    .iter()
                    .map(|(state, count)| (state.clone(), count.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        Counts(counts)
    }

    fn get(&self, state: &str) -> u64 {
        self.0.get(state).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        usize::try_from(self.0.values().sum::<u64>()).unwrap_or(usize::MAX)
    }

    fn pending(&self) -> u64 {
        PENDING.iter().map(|state| self.get(state)).sum()
    }

    fn failed(&self) -> usize {
        let failed: u64 = FAILED.iter().map(|state| self.get(state)).sum();
        usize::try_from(failed).unwrap_or(usize::MAX)
    }

    /// The non-zero counts, e.g. `succeeded 2, failed 1`; states this client does not know are
    /// shown too, after the others.
    fn summary(&self) -> String {
        let known = STATES
            .iter()
            .map(|state| (state.to_string(), self.get(state)));
        let unknown = self
            .0
            .iter()
            .filter(|(state, _)| !STATES.contains(&state.as_str()))
            .map(|(state, count)| (state.clone(), *count));
        let parts: Vec<String> = known
            .chain(unknown)
            .filter(|(_, count)| *count > 0)
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        if parts.is_empty() {
            "no jobs".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The failed-like jobs found so far, by id, and their computers' host names.
#[derive(Debug, Default)]
struct Failures {
    jobs: BTreeMap<i64, Value>,
    /// Ids of the failed jobs counted (shown or not).
    seen: BTreeSet<i64>,
    hostnames: BTreeMap<i64, String>,
}

impl Failures {
    /// Lists the container's failed-like jobs again; a line for each one not seen before.
    fn refresh(&mut self, ctx: &Ctx<'_>, container: i64) -> Result<Vec<String>, Failure> {
        let mut found = Vec::new();
        for state in FAILED {
            let query = [
                ("origin", format!("container:{container}")),
                ("state", state.to_owned()),
                ("output_chars", "0".to_owned()),
            ];
            let _end = ctx
                .client
                .list("/jobs", &query, None, SHOWN_FAILURES, &mut |items| {
                    found.extend(items);
                    Ok(())
                })?;
        }
        let mut lines = Vec::new();
        for job in found {
            let Some(id) = job.get("id").and_then(Value::as_i64) else {
                continue;
            };
            if !self.seen.insert(id) || self.jobs.len() >= SHOWN_FAILURES {
                continue;
            }
            if let Some(computer) = job.get("computer").and_then(Value::as_i64) {
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    self.hostnames.entry(computer)
                {
                    // A computer deleted since has no name to show; the id stays.
                    let name = ctx
                        .client
                        .get(&format!("/computers/{computer}"), &[])
                        .map(|computer| at(&computer, "/hostname"))
                        .unwrap_or_else(|_| "-".to_owned());
                    entry.insert(name);
                }
            }
            lines.push(format!(
                "{}: job {id} on {} (computer {}), package {}, return code {}",
                at(&job, "/state"),
                self.hostname(&job),
                at(&job, "/computer"),
                at(&job, "/package"),
                at(&job, "/return_code"),
            ));
            self.jobs.insert(id, job);
        }
        Ok(lines)
    }

    fn hostname(&self, job: &Value) -> String {
        job.get("computer")
            .and_then(Value::as_i64)
            .and_then(|computer| self.hostnames.get(&computer))
            .cloned()
            .unwrap_or_else(|| "-".to_owned())
    }
}

/// The progress shown on stderr: a bar on a terminal, a line per change elsewhere.
enum Progress {
    Bar(ProgressBar),
    Lines(String),
}

impl Progress {
    fn new(title: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(title.to_owned());
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(title.to_owned());
        Progress::Bar(bar)
    }

    fn update(&mut self, counts: &Counts) {
        let total = counts.total() as u64;
        let done = total - counts.pending().min(total);
        match self {
            Progress::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(counts.summary());
            }
            Progress::Lines(title) => note(&format!(
                "{title}: {done}/{total} ended; {}",
                counts.summary()
            )),
        }
    }

    fn line(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Lines(_) => note(text),
        }
    }

    fn clear(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_pending_and_failed_states() {
        let counts = Counts::of(&json!({"counts": {"waiting": 2, "executing": 1,
            "succeeded": 4, "failed": 1, "expired": 1, "incompatible": 1,
            "already-installed": 0, "downloading": 0}}));
        assert_eq!(counts.total(), 10);
        assert_eq!(counts.pending(), 3);
        assert_eq!(counts.failed(), 3);
        assert_eq!(
            counts.summary(),
            "waiting 2, executing 1, succeeded 4, failed 1, expired 1, incompatible 1"
        );
    }

    #[test]
    fn states_this_client_does_not_know_are_still_shown() {
        let counts = Counts::of(&json!({"counts": {"succeeded": 1, "paused": 2}}));
        assert_eq!(counts.summary(), "succeeded 1, paused 2");
        assert_eq!(Counts::of(&json!({})).summary(), "no jobs");
    }

    #[test]
    fn only_an_unreachable_or_busy_server_is_retried() {
        let transport = Error::Transport {
            url: "u".into(),
            reason: "refused".into(),
        };
        assert!(passing(&transport));
        let status = |status| Error::Status {
            status,
            url: "u".into(),
            snippet: String::new(),
        };
        assert!(passing(&status(503)));
        assert!(!passing(&status(404)));
        assert!(!passing(&status(401)));
    }
}
