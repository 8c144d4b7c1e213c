//! A rule's existing jobs, indexed for evaluation.
//!
//! Evaluation matches every desired job against the existing ones, a million of them for a rule of
//! 10,000 computers × 100 packages. Reading whole jobs (about 240 bytes each, with the procedure
//! on the heap to compare against the package's) makes that pass as slow as memory. So each job
//! also has a 24-byte [`Key`] holding what the merge table decides on, and the job's snapshot is
//! named by a number: snapshots are interned per world, so "the snapshot is current" is one
//! integer comparison. Whole jobs are read only for the few that change.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::ops::Range;

use crate::model::{ComputerId, Job, JobKind, JobSnapshot, JobState, Package, PackageId};

/// The distinct job snapshots of a world, each named by a number.
///
/// Hashed with std's SipHash under fixed keys: the core reads no random source, and the table is
/// never exposed to untrusted keys' timing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshots {
    ids: HashMap<JobSnapshot, u32, BuildHasherDefault<DefaultHasher>>,
}

impl Snapshots {
    /// The number of `snapshot`, given a new one if it is the first of its kind.
    fn intern(&mut self, snapshot: &JobSnapshot) -> u32 {
        if let Some(&id) = self.ids.get(snapshot) {
            return id;
        }
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.insert(snapshot.clone(), id);
        id
    }

    /// The number of the snapshot a job of `kind` would take from `package` now, if an existing
    /// job has it (if none has, no existing job is current).
    pub(crate) fn current(&self, package: &Package, kind: JobKind) -> Option<u32> {
        self.ids.get(&JobSnapshot::of(package, kind)).copied()
    }
}

/// What evaluation reads of one existing job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) package: PackageId,
    pub(crate) sequence: u32,
    /// The job's snapshot, by its number in the world's [`Snapshots`].
    pub(crate) snapshot: u32,
    pub(crate) kind: JobKind,
    pub(crate) state: JobState,
    pub(crate) orphaned: bool,
}

// The module's point: a key is a tenth of a job.
const _: () = assert!(std::mem::size_of::<Key>() == 24);

/// A rule's existing jobs, sorted by (computer, package, kind, id), with a compact key per job
/// for evaluation. Built by [`RuleWorld::set_jobs`](super::RuleWorld::set_jobs).
#[derive(Debug, Clone, Default)]
pub struct RuleJobs {
    jobs: Vec<Job>,
    /// `keys[i]` is what evaluation reads of `jobs[i]`.
    keys: Vec<Key>,
    /// Each computer that has jobs, with the index of its first job, by computer.
    computers: Vec<(ComputerId, usize)>,
}

impl RuleJobs {
    /// No jobs.
    pub(crate) const EMPTY: RuleJobs = RuleJobs {
        jobs: Vec::new(),
        keys: Vec::new(),
        computers: Vec::new(),
    };

    /// Indexes `jobs`, interning their snapshots in `snapshots`.
    pub(crate) fn new(mut jobs: Vec<Job>, snapshots: &mut Snapshots) -> Self {
        jobs.sort_unstable_by_key(|job| (job.computer, job.package, job.kind, job.id));
        let keys = jobs
            .iter()
            .map(|job| Key {
                package: job.package,
                sequence: job.sequence,
                snapshot: snapshots.intern(&job.snapshot),
                kind: job.kind,
                state: job.state,
                orphaned: job.orphaned,
            })
            .collect();
        let mut computers: Vec<(ComputerId, usize)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if computers.last().is_none_or(|&(c, _)| c != job.computer) {
                computers.push((job.computer, i));
            }
        }
        RuleJobs {
            jobs,
            keys,
            computers,
        }
    }

    /// The number of jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the rule has no jobs.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Every job, by (computer, package, kind, id).
    pub fn all(&self) -> &[Job] {
        &self.jobs
    }

    /// The jobs on `computer`, by (package, kind, id).
    pub fn on(&self, computer: ComputerId) -> &[Job] {
        &self.jobs[self.range(computer)]
    }

    /// The computers that have jobs, by id.
    pub fn computers(&self) -> impl Iterator<Item = ComputerId> + '_ {
        self.computers.iter().map(|&(computer, _)| computer)
    }

    /// Whether a job is of `package`.
    pub(crate) fn has_package(&self, package: PackageId) -> bool {
        self.keys.iter().any(|key| key.package == package)
    }

    /// The jobs on `computer` with their keys.
    pub(crate) fn keyed_on(&self, computer: ComputerId) -> (&[Job], &[Key]) {
        let range = self.range(computer);
        (&self.jobs[range.clone()], &self.keys[range])
    }

    fn range(&self, computer: ComputerId) -> Range<usize> {
        match self.computers.binary_search_by_key(&computer, |&(c, _)| c) {
            Ok(i) => {
                let end = self
                    .computers
                    .get(i + 1)
                    .map_or(self.jobs.len(), |&(_, start)| start);
                self.computers[i].1..end
            }
            Err(_) => 0..0,
        }
    }
}
