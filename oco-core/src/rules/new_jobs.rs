//! The jobs a rule evaluation wants created, in compact form.

use serde::{Deserialize, Serialize};

use crate::model::{ComputerId, JobKind, JobState, PackageId};

/// A job a rule evaluation wants created. The store takes its snapshot from the package as it
/// writes it ([`NewJob::to_job`](super::NewJob::to_job)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The computer.
    pub computer: ComputerId,
    /// The package.
    pub package: PackageId,
    /// Install or uninstall.
    pub kind: JobKind,
    /// Its sequence among the computer's jobs of the rule.
    pub sequence: u32,
    /// Waiting, or Incompatible or AlreadyInstalled (finalised by the server).
    pub state: JobState,
}

/// A [`NewJob`] without its computer: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    package: PackageId,
    sequence: u32,
    kind: JobKind,
    state: JobState,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

/// New jobs in the order they were pushed, stored by computer: each computer once, then
/// 16 bytes a job, so that the ten million jobs of a first evaluation of 50,000 computers × 200
/// packages take 160 MB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<NewJob>", into = "Vec<NewJob>")]
pub struct NewJobs {
    /// Each run of jobs on one computer: the computer and the index of the run's first entry.
    runs: Vec<(ComputerId, usize)>,
    entries: Vec<Entry>,
}

impl NewJobs {
    /// No jobs.
    pub fn new() -> Self {
        NewJobs::default()
    }

    /// The number of jobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no jobs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room for `additional` more jobs.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// Appends `job`.
    pub fn push(&mut self, job: NewJob) {
        if self.runs.last().is_none_or(|&(c, _)| c != job.computer) {
            self.runs.push((job.computer, self.entries.len()));
        }
        self.entries.push(Entry {
            package: job.package,
            sequence: job.sequence,
            kind: job.kind,
            state: job.state,
        });
    }

    /// The jobs, in the order they were pushed.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            jobs: self,
            run: 0,
            next: 0,
        }
    }
}

impl From<Vec<NewJob>> for NewJobs {
    fn from(jobs: Vec<NewJob>) -> Self {
        jobs.into_iter().collect()
    }
}

impl From<NewJobs> for Vec<NewJob> {
    fn from(jobs: NewJobs) -> Self {
        jobs.iter().collect()
    }
}

impl FromIterator<NewJob> for NewJobs {
    fn from_iter<I: IntoIterator<Item = NewJob>>(iter: I) -> Self {
        let mut jobs = NewJobs::new();
        jobs.extend(iter);
        jobs
    }
}

impl Extend<NewJob> for NewJobs {
    fn extend<I: IntoIterator<Item = NewJob>>(&mut self, iter: I) {
        for job in iter {
            self.push(job);
        }
    }
}

impl<'a> IntoIterator for &'a NewJobs {
    type Item = NewJob;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The jobs of a [`NewJobs`], in the order they were pushed.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    jobs: &'a NewJobs,
    /// The run of the next job.
    run: usize,
    /// The index of the next job.
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = NewJob;

    fn next(&mut self) -> Option<NewJob> {
        let entry = *self.jobs.entries.get(self.next)?;
        // Runs are never empty: the next job is in this run or starts the next one.
        while self
            .jobs
            .runs
            .get(self.run + 1)
            .is_some_and(|&(_, start)| start <= self.next)
        {
            self.run += 1;
        }
        let (computer, _) = self.jobs.runs[self.run];
        self.next += 1;
        Some(NewJob {
            computer,
            package: entry.package,
            kind: entry.kind,
            sequence: entry.sequence,
            state: entry.state,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.jobs.entries.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(computer: i64, package: i64, sequence: u32) -> NewJob {
        NewJob {
            computer: ComputerId(computer),
            package: PackageId(package),
            kind: JobKind::Install,
            sequence,
            state: JobState::Waiting,
        }
    }

    #[test]
    fn jobs_come_back_in_push_order_with_their_computers() {
        // Computer 1 appears in two runs: order is kept, not grouped.
        let pushed = vec![job(1, 10, 1), job(1, 11, 2), job(2, 10, 1), job(1, 12, 3)];
        let jobs: NewJobs = pushed.iter().copied().collect();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs.runs.len(), 3);
        assert_eq!(jobs.iter().len(), 4);
        assert_eq!(jobs.iter().collect::<Vec<_>>(), pushed);
        assert!(NewJobs::new().iter().next().is_none());
    }

    #[test]
    fn serde_is_the_list_of_jobs() {
        let jobs: NewJobs = vec![job(1, 10, 1), job(2, 10, 1)].into();
        let text = serde_json::to_string(&jobs).unwrap();
        assert!(text.starts_with(r#"[{"computer":1,"package":10"#), "{text}");
        assert_eq!(serde_json::from_str::<NewJobs>(&text).unwrap(), jobs);
    }
}
