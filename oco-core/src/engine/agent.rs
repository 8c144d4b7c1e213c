//! The operations on an agent's path: poll, report, last-seen times, housekeeping.

use std::net::IpAddr;

use serde::Serialize;

use super::machine::{run, Operation, Progress, Step, Write, Written};
use super::{Engine, EngineError, Evaluated};
use crate::chrono::{DateTime, Utc};
use crate::housekeeping::{housekeeping, Effect, Summary};
use crate::model::{ComputerId, Job, JobId, JobState, SequenceMode};
use crate::plan::{plan, valid_until, HoldReason, PostActionOrder};
use crate::report::{apply_report, AgentReport, Disposition, IgnoredReport, ReportOutcome};
use crate::rules::RuleEvent;
use crate::store::{Change, ChangeSet, ReportSnapshot, Store, StoreError};
use crate::Settings;

/// What a computer gets when it polls: [`Engine::poll`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Poll {
    /// Jobs to hand out now, in delivery order.
    pub deliver: Vec<Delivered>,
    /// Every pending job not handed out, with the first reason that applies.
    pub held: Vec<HeldJob>,
    /// Until when this answer holds if nothing is written meanwhile: the next time an origin's
    /// schedule, time frames or a Wake-on-LAN window turns (`None`: never).
    pub valid_until: Option<DateTime<Utc>>,
    /// What the poll wrote (Wake-on-LAN shutdown marks settled); empty for most polls.
    pub changes: ChangeSet,
}

/// A job handed out by a [`Poll`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Delivered {
    /// The job (its Wake-on-LAN shutdown mark as written by the poll).
    pub job: Job,
    /// The origin's sequence mode.
    pub sequence_mode: SequenceMode,
    /// The one post action the agent runs after success, if any.
    pub post_action: Option<PostActionOrder>,
}

/// A pending job a [`Poll`] did not hand out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HeldJob {
    /// The job.
    pub job: Job,
    /// The first reason that applies.
    pub reason: HoldReason,
}

/// What a report did: [`Engine::report`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Reported {
    /// Whether the report was applied, or why it was ignored.
    pub disposition: Disposition,
    /// Whether the job stands Succeeded after the report (what the agent is answered): its
    /// written state, a success recorded on a deleted job, or, for an ignored report, the stored
    /// state.
    pub job_succeeded: bool,
    /// What was written: the job, the jobs a failure aborted (-8888), the assignments.
    pub changes: ChangeSet,
}

/// Rule re-evaluation a report calls for, to run after answering the agent:
/// [`Engine::follow_up`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a report's follow-up re-evaluates the rules of the computers whose assignments changed"]
pub struct FollowUp {
    /// The computers whose rules are re-evaluated (their assignments changed, or a rule's job
    /// stopped running).
    pub computers: Vec<ComputerId>,
}

impl FollowUp {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.computers.is_empty()
    }
}

/// What a housekeeping run did: [`Engine::housekeeping`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a housekeeping run's effects (Wake-on-LAN packets) are the caller's to carry out"]
#[non_exhaustive]
pub struct Housekept {
    /// Counts of what was decided and written.
    pub summary: Summary,
    /// What the caller performs now that the writes are committed (magic packets to send).
    pub effects: Vec<Effect>,
}

/// What recording last-seen times did: [`Engine::record_seen`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedSeen {
    /// How many times were written.
    pub written: usize,
    /// Computers deleted since they were seen: nothing written for them.
    pub skipped: Vec<ComputerId>,
}

/// Last-seen times that could not be written, and why: the caller keeps them for a later try.
#[derive(Debug)]
#[non_exhaustive]
pub struct SeenNotRecorded {
    /// Why.
    pub error: StoreError,
    /// The times not written.
    pub unwritten: Vec<(ComputerId, DateTime<Utc>)>,
}

impl std::fmt::Display for SeenNotRecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} last-seen time(s) not written: {}",
            self.unwritten.len(),
            self.error
        )
    }
}

impl std::error::Error for SeenNotRecorded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<S: Store> Engine<S> {
    /// What computer `computer`, polling from `address` at `now`, gets: jobs to hand out and
    /// jobs held, with why. Writes what the poll settles (Wake-on-LAN shutdown marks), with
    /// compare-and-set, deciding again when a report moved a job meanwhile.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`] for an unknown computer);
    /// [`EngineError::Contended`] after [`agent_attempts`](super::EngineOptions::agent_attempts)
    /// lost races.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, NewComputer, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let pc = engine.store().create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// let poll = engine.poll(pc.id, "10.0.0.7".parse()?, now)?;
    /// assert!(poll.deliver.is_empty() && poll.held.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(
        &self,
        computer: ComputerId,
        address: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Poll, EngineError> {
        run(self.dyn_store(), self.poll_op(computer, address, now))
    }

    /// [`poll`](Self::poll) as an [`Operation`], for a driver of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{run, Engine};
    /// use oco_core::store::{testkit, MemoryStore};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let pc = testkit::fixture(engine.store()).computers[0].id;
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let op = engine.poll_op(pc, "10.0.0.7".parse()?, now);
    /// assert!(run(engine.store(), op)?.deliver.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_op(&self, computer: ComputerId, address: IpAddr, now: DateTime<Utc>) -> PollOp {
        PollOp {
            computer,
            address,
            now,
            settings: self.options.settings,
            attempts: Attempts::new("poll", self.options.agent_attempts.get()),
            decided: None,
        }
    }

    /// Applies an agent's report on one of its jobs: the job's new state, the jobs a failure
    /// aborts in sequence mode abort-after-failed (-8888), the computer's assignments on success.
    /// Decides again from a fresh read when the job moved meanwhile. Then re-evaluates the rules
    /// of the computers whose assignments changed ([`follow_up`](Self::follow_up)), returning
    /// what that did.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownJob`] for a job that never existed; [`EngineError::ForeignJob`] for
    /// another computer's; [`EngineError::Contended`] after
    /// [`agent_attempts`](super::EngineOptions::agent_attempts) lost races; the store's. An
    /// error of the rule re-evaluation comes after the report was written: it is
    /// [`EngineError::Reevaluation`] with [`Undo::NotPossible`](super::Undo::NotPossible).
    ///
    /// # Examples
    ///
    /// A failure with -9999 (an agent error) in an abort-after-failed container fails the
    /// computer's later jobs with -8888:
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, JobState, Name, Procedure, SequenceMode};
    /// use oco_core::report::{AgentReport, ReportedState};
    /// use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let store = engine.store();
    /// let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// let family = store.create_family(Name::new("name", "Tools")?)?;
    /// let new = |v: &str| NewPackage::new(family.id, Name::new("version", v).unwrap(), Procedure::new("x"));
    /// let (a, b) = (store.create_package(new("1"))?, store.create_package(new("2"))?);
    /// let policy = DeliveryPolicy::default().with_sequence_mode(SequenceMode::AbortAfterFailed);
    /// let container = ContainerSettings::new(Name::new("name", "Tools")?, now, policy);
    /// let request = DeployRequest::new(container)
    ///     .with_computers([pc.id])
    ///     .with_packages([a.id, b.id]);
    /// let deployed = engine.deploy(&request, now)?;
    ///
    /// let first = deployed.jobs[0].id;
    /// let failure = AgentReport::new(first, 1, ReportedState::Failed).with_return_code(-9999);
    /// let (reported, _) = engine.report(pc.id, failure, now)?;
    /// assert!(!reported.job_succeeded);
    /// let second = store.job(deployed.jobs[1].id)?;
    /// assert_eq!((second.state, second.return_code), (JobState::Failed, Some(-8888)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn report(
        &self,
        reporter: ComputerId,
        report: AgentReport,
        now: DateTime<Utc>,
    ) -> Result<(Reported, Vec<Evaluated>), EngineError> {
        let (reported, follow_up) = run(self.dyn_store(), self.report_op(reporter, report, now))?;
        let evaluations = self
            .follow_up(follow_up, now)
            .map_err(|error| match error {
                EngineError::Store(source) => EngineError::Reevaluation {
                    source,
                    undo: Box::new(super::Undo::NotPossible),
                },
                other => other,
            })?;
        Ok((reported, evaluations))
    }

    /// [`report`](Self::report) as an [`Operation`], for a driver of its own: it ends with the
    /// report written and the [`FollowUp`] to run (with [`follow_up`](Self::follow_up)) after
    /// answering the agent.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::{run, Engine};
    /// use oco_core::model::{DeliveryPolicy, Name};
    /// use oco_core::report::{AgentReport, ReportedState};
    /// use oco_core::store::{testkit, MemoryStore};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let fixture = testkit::fixture(engine.store());
    /// let (pc, package) = (fixture.computers[0].id, fixture.other.id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let container = ContainerSettings::new(Name::new("name", "tool")?, now, DeliveryPolicy::default());
    /// let request = DeployRequest::new(container).with_computers([pc]).with_packages([package]);
    /// let job = engine.deploy(&request, now)?.jobs[0].id;
    ///
    /// let done = AgentReport::new(job, 1, ReportedState::Succeeded).with_return_code(0);
    /// let (reported, follow_up) = run(engine.store(), engine.report_op(pc, done, now))?;
    /// assert!(reported.job_succeeded);
    /// // The assignments changed: the computer's rules are re-evaluated, after answering.
    /// assert_eq!(follow_up.computers, [pc]);
    /// assert!(engine.follow_up(follow_up, now)?.is_empty()); // no rule
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn report_op(
        &self,
        reporter: ComputerId,
        report: AgentReport,
        now: DateTime<Utc>,
    ) -> ReportOp {
        ReportOp {
            reporter,
            report,
            now,
            attempts: Attempts::new("report", self.options.agent_attempts.get()),
            decided: None,
        }
    }

    /// Re-evaluates the rules of the computers a report named (their assignments changed).
    ///
    /// # Errors
    ///
    /// As [`reevaluate`](Self::reevaluate); the computers before the failing one were
    /// re-evaluated.
    ///
    /// # Examples
    ///
    /// See [`report_op`](Self::report_op).
    pub fn follow_up(
        &self,
        follow_up: FollowUp,
        now: DateTime<Utc>,
    ) -> Result<Vec<Evaluated>, EngineError> {
        let mut evaluations = Vec::new();
        for computer in follow_up.computers {
            let event = RuleEvent::AssignmentsChanged { computer };
            let before = self.world_for(&event)?;
            evaluations.extend(self.reevaluate(&event, &before, now)?);
        }
        Ok(evaluations)
    }

    /// Records when computers were last seen, in one write; computers deleted meanwhile are
    /// skipped.
    ///
    /// # Errors
    ///
    /// The store's, with the times not written.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let [pc1, pc2] = testkit::fixture(engine.store()).computers.map(|pc| pc.id);
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// engine.store().delete_computer(pc2, now)?;
    /// let recorded = engine.record_seen(vec![(pc1, now), (pc2, now)])?;
    /// assert_eq!((recorded.written, recorded.skipped), (1, vec![pc2]));
    /// assert_eq!(engine.store().computer(pc1)?.last_seen, Some(now));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_seen(
        &self,
        seen: Vec<(ComputerId, DateTime<Utc>)>,
    ) -> Result<RecordedSeen, SeenNotRecorded> {
        run(self.dyn_store(), self.record_seen_op(seen))
    }

    /// [`record_seen`](Self::record_seen) as an [`Operation`]: one write of every time, then,
    /// if a computer turned out deleted, one write per time.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{Engine, Operation, Step, Write};
    /// use oco_core::store::{testkit, MemoryStore};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let pc = testkit::fixture(engine.store()).computers[0].id;
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let mut op = engine.record_seen_op(vec![(pc, now)]);
    /// let Step::Write(Write::Apply(set)) = op.resume(engine.store()) else { unreachable!() };
    /// assert_eq!(set.changes.len(), 1); // the driver writes it, with other requests' writes
    /// ```
    pub fn record_seen_op(&self, seen: Vec<(ComputerId, DateTime<Utc>)>) -> RecordSeenOp {
        RecordSeenOp {
            seen,
            one_by_one: None,
            recorded: RecordedSeen::default(),
        }
    }

    /// One housekeeping run at `now`: jobs of ended containers expired, finished containers
    /// purged, old tombstones purged, Wake-on-LAN decided. Decides again when a request moved a
    /// job meanwhile. The caller sends the magic packets of the returned effects.
    ///
    /// # Errors
    ///
    /// The store's; [`EngineError::Contended`] after
    /// [`housekeeping_attempts`](super::EngineOptions::housekeeping_attempts) lost races.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{Duration, TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{DeliveryPolicy, JobState, Name, Procedure};
    /// use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let store = engine.store();
    /// let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// let family = store.create_family(Name::new("name", "Tools")?)?;
    /// let package =
    ///     store.create_package(NewPackage::new(family.id, Name::new("version", "1")?, Procedure::new("x")))?;
    /// let container = ContainerSettings::new(Name::new("name", "Today")?, now, DeliveryPolicy::default())
    ///     .with_end(now + Duration::hours(8))?;
    /// let request = DeployRequest::new(container).with_computers([pc.id]).with_packages([package.id]);
    /// let deployed = engine.deploy(&request, now)?;
    ///
    /// let housekept = engine.housekeeping(now + Duration::days(1))?;
    /// assert_eq!(housekept.summary.expired, 1);
    /// assert_eq!(store.job(deployed.jobs[0].id)?.state, JobState::Expired);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn housekeeping(&self, now: DateTime<Utc>) -> Result<Housekept, EngineError> {
        run(self.dyn_store(), self.housekeeping_op(now))
    }

    /// [`housekeeping`](Self::housekeeping) as an [`Operation`]; see [`Operation`] for a driver
    /// of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{run, Engine};
    /// use oco_core::store::MemoryStore;
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let housekept = run(engine.store(), engine.housekeeping_op(now))?;
    /// assert!(housekept.effects.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn housekeeping_op(&self, now: DateTime<Utc>) -> HousekeepingOp {
        HousekeepingOp {
            now,
            settings: self.options.settings,
            attempts: Attempts::new("housekeeping", self.options.housekeeping_attempts.get()),
            decided: None,
        }
    }
}

/// How many times an operation may still decide, and what to say when it has lost every race.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    operation: &'static str,
    left: usize,
    total: usize,
}

impl Attempts {
    fn new(operation: &'static str, total: usize) -> Self {
        Attempts {
            operation,
            left: total,
            total,
        }
    }

    /// After a lost race: resume if an attempt is left, else the operation is contended.
    fn lost<T>(&mut self) -> Progress<Result<T, EngineError>> {
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            Progress::Done(Err(EngineError::Contended {
                operation: self.operation,
                attempts: self.total,
            }))
        } else {
            Progress::Resume
        }
    }
}

/// [`Engine::poll`] as a machine: [`Engine::poll_op`].
#[derive(Debug)]
pub struct PollOp {
    computer: ComputerId,
    address: IpAddr,
    now: DateTime<Utc>,
    settings: Settings,
    attempts: Attempts,
    /// The poll decided, waiting for its write.
    decided: Option<Poll>,
}

impl Operation for PollOp {
    type Output = Result<Poll, EngineError>;

    fn resume(&mut self, store: &dyn Store) -> Step<Self::Output> {
        let snapshot = match store.planner_snapshot(self.computer) {
            Ok(snapshot) => snapshot,
            Err(error) => return Step::Done(Err(error.into())),
        };
        let decided = plan(&snapshot, self.now, self.address, &self.settings);
        let marks = |job: &Job| {
            let mut job = job.clone();
            for change in &decided.changes.changes {
                if let Change::UpdateJob { job: updated, .. } = change {
                    if updated.id == job.id {
                        job.wol_shutdown = updated.wol_shutdown;
                    }
                }
            }
            job
        };
        let poll = Poll {
            deliver: decided
                .deliver
                .iter()
                .map(|delivery| Delivered {
                    job: marks(delivery.job),
                    sequence_mode: delivery.sequence_mode,
                    post_action: delivery.post_action,
                })
                .collect(),
            held: decided
                .held
                .iter()
                .map(|held| HeldJob {
                    job: held.job.clone(),
                    reason: held.reason.clone(),
                })
                .collect(),
            valid_until: valid_until(&snapshot, self.now, self.address, &self.settings),
            changes: decided.changes.clone(),
        };
        if poll.changes.is_empty() {
            return Step::Done(Ok(poll));
        }
        let set = poll.changes.clone();
        self.decided = Some(poll);
        Step::Write(Write::Apply(set))
    }

    fn written(&mut self, written: Written) -> Progress<Self::Output> {
        match (applied(written), self.decided.take()) {
            (Ok(()), Some(poll)) => Progress::Done(Ok(poll)),
            (Err(StoreError::Conflict { .. }), _) => self.attempts.lost(),
            (Err(error), _) => Progress::Done(Err(error.into())),
            (Ok(()), None) => Progress::Resume,
        }
    }
}

/// [`Engine::report`] as a machine: [`Engine::report_op`]. It ends with the report written and
/// the [`FollowUp`] to run after answering the agent.
#[derive(Debug)]
pub struct ReportOp {
    reporter: ComputerId,
    report: AgentReport,
    now: DateTime<Utc>,
    attempts: Attempts,
    /// The report decided, waiting for its write, and the re-evaluation it calls for.
    decided: Option<(Reported, FollowUp)>,
}

impl ReportOp {
    /// The job the report is about.
    pub fn job(&self) -> JobId {
        self.report.job
    }

    /// Decides on `snapshot` (of the report's job, read by the caller, which may have read it
    /// with other things in one go), as [`resume`](Operation::resume) does after its read.
    pub fn decide(&mut self, snapshot: &ReportSnapshot) -> Step<<Self as Operation>::Output> {
        let outcome = match apply_report(snapshot, self.reporter, &self.report, self.now) {
            Ok(outcome) => outcome,
            Err(error) => return Step::Done(Err(error.into())),
        };
        let reported = Reported {
            disposition: outcome.disposition,
            job_succeeded: job_succeeded(snapshot, &outcome),
            changes: outcome.changes,
        };
        let follow_up = FollowUp {
            computers: outcome.reevaluate,
        };
        if reported.changes.is_empty() {
            return Step::Done(Ok((reported, follow_up)));
        }
        let set = reported.changes.clone();
        self.decided = Some((reported, follow_up));
        Step::Write(Write::Apply(set))
    }
}

impl Operation for ReportOp {
    type Output = Result<(Reported, FollowUp), EngineError>;

    fn resume(&mut self, store: &dyn Store) -> Step<Self::Output> {
        match store.report_snapshot(self.report.job) {
            Ok(snapshot) => self.decide(&snapshot),
            Err(StoreError::NotFound { what: "job", .. }) => {
                Step::Done(Err(EngineError::UnknownJob(self.report.job)))
            }
            Err(error) => Step::Done(Err(error.into())),
        }
    }

    fn written(&mut self, written: Written) -> Progress<Self::Output> {
        match (applied(written), self.decided.take()) {
            (Ok(()), Some(done)) => Progress::Done(Ok(done)),
            (Err(StoreError::Conflict { .. }), _) => self.attempts.lost(),
            (Err(error), _) => Progress::Done(Err(error.into())),
            (Ok(()), None) => Progress::Resume,
        }
    }
}

/// Whether the job stands Succeeded after the report: its written state, a success recorded on a
/// deleted job, or, for an ignored report, the stored state.
fn job_succeeded(snapshot: &ReportSnapshot, outcome: &ReportOutcome) -> bool {
    let written = outcome
        .changes
        .changes
        .iter()
        .find_map(|change| match change {
            Change::UpdateJob { job, .. } if job.id == snapshot.job.id => Some(job.state),
            _ => None,
        });
    match (written, outcome.disposition) {
        (Some(state), _) => state == JobState::Succeeded,
        // An accepted success on a deleted job writes assignments only.
        (None, Disposition::Applied)
        | (None, Disposition::Ignored(IgnoredReport::DeletedJobRecorded)) => true,
        (None, Disposition::Ignored(_)) => snapshot.job.state == JobState::Succeeded,
    }
}

/// [`Engine::record_seen`] as a machine: [`Engine::record_seen_op`].
#[derive(Debug)]
pub struct RecordSeenOp {
    seen: Vec<(ComputerId, DateTime<Utc>)>,
    /// After a computer turned out deleted: the index of the time written one by one now.
    one_by_one: Option<usize>,
    recorded: RecordedSeen,
}

impl RecordSeenOp {
    fn set(times: &[(ComputerId, DateTime<Utc>)]) -> ChangeSet {
        ChangeSet {
            changes: times
                .iter()
                .map(|&(computer, at)| Change::SetLastSeen { computer, at })
                .collect(),
        }
    }

    fn failed(&mut self, error: StoreError) -> Progress<<Self as Operation>::Output> {
        let from = self.one_by_one.unwrap_or(0);
        Progress::Done(Err(SeenNotRecorded {
            error,
            unwritten: self.seen.split_off(from.min(self.seen.len())),
        }))
    }
}

impl Operation for RecordSeenOp {
    type Output = Result<RecordedSeen, SeenNotRecorded>;

    fn resume(&mut self, _store: &dyn Store) -> Step<Self::Output> {
        match self.one_by_one {
            None if self.seen.is_empty() => Step::Done(Ok(std::mem::take(&mut self.recorded))),
            None => Step::Write(Write::Apply(Self::set(&self.seen))),
            Some(index) => match self.seen.get(index) {
                Some(&one) => Step::Write(Write::Apply(Self::set(&[one]))),
                None => Step::Done(Ok(std::mem::take(&mut self.recorded))),
            },
        }
    }

    fn written(&mut self, written: Written) -> Progress<Self::Output> {
        match (applied(written), self.one_by_one) {
            (Ok(()), None) => {
                self.recorded.written = self.seen.len();
                Progress::Done(Ok(std::mem::take(&mut self.recorded)))
            }
            // A computer was deleted since it was seen: write the times one by one.
            (Err(StoreError::NotFound { .. }), None) => {
                self.one_by_one = Some(0);
                Progress::Resume
            }
            (Ok(()), Some(index)) => {
                self.recorded.written += 1;
                self.one_by_one = Some(index + 1);
                Progress::Resume
            }
            (Err(StoreError::NotFound { .. }), Some(index)) => {
                if let Some(&(computer, _)) = self.seen.get(index) {
                    self.recorded.skipped.push(computer);
                }
                self.one_by_one = Some(index + 1);
                Progress::Resume
            }
            (Err(error), _) => self.failed(error),
        }
    }
}

/// [`Engine::housekeeping`] as a machine: [`Engine::housekeeping_op`].
#[derive(Debug)]
pub struct HousekeepingOp {
    now: DateTime<Utc>,
    settings: Settings,
    attempts: Attempts,
    /// The run decided, waiting for its write.
    decided: Option<Housekept>,
}

impl Operation for HousekeepingOp {
    type Output = Result<Housekept, EngineError>;

    fn resume(&mut self, store: &dyn Store) -> Step<Self::Output> {
        let snapshot = match store.housekeeping_snapshot(self.now) {
            Ok(snapshot) => snapshot,
            Err(error) => return Step::Done(Err(error.into())),
        };
        let run = housekeeping(self.now, &snapshot, &self.settings);
        let housekept = Housekept {
            summary: run.summary,
            effects: run.effects,
        };
        if run.changes.is_empty() {
            return Step::Done(Ok(housekept));
        }
        self.decided = Some(housekept);
        Step::Write(Write::Apply(run.changes))
    }

    fn written(&mut self, written: Written) -> Progress<Self::Output> {
        match (applied(written), self.decided.take()) {
            (Ok(()), Some(housekept)) => Progress::Done(Ok(housekept)),
            // A request changed a job since the snapshot: decide again from the new state.
            (Err(StoreError::Conflict { .. }), _) => self.attempts.lost(),
            (Err(error), _) => Progress::Done(Err(error.into())),
            (Ok(()), None) => Progress::Resume,
        }
    }
}

/// The result of a [`Write::Apply`]; a computer created where a change set was asked for is a
/// driver's bug, reported as a store failure.
fn applied(written: Written) -> Result<(), StoreError> {
    match written {
        Written::Applied(result) => result.map(drop),
        Written::Created(_) => Err(StoreError::Invalid {
            reason: "the driver created a computer where a change set was to be applied".into(),
        }),
    }
}
