//! The orchestration layer: one call per user-level operation, over any [`Store`].
//!
//! The core's other modules decide ([`plan`](crate::plan), [`report`](crate::report),
//! [`deploy`](crate::deploy), [`rules`](crate::rules), [`housekeeping`](crate::housekeeping))
//! and the store persists. An [`Engine`] joins them the way every caller needs: it reads what an
//! operation needs, decides with the core, applies the change set with its compare-and-set
//! preconditions, reads and decides again when it loses a race (a bounded number of times, then
//! [`EngineError::Contended`]), and re-evaluates the deployment rules the change concerns, reading
//! only the part of the world that can change. Each operation returns a typed outcome: what was
//! written, what was held and why, conflicts found, effects for the caller to carry out.
//!
//! Like the rest of the core, the engine reads no clock and does no I/O of its own: `now` is an
//! argument, and every read and write goes through the [`Store`] it was given. On a
//! [`MemoryStore`](crate::store::MemoryStore) the whole system runs in memory, deterministically.
//!
//! # Operations as machines
//!
//! The operations on an agent's path (poll, report, housekeeping, last-seen times) are also
//! available as [`Operation`]s: values that read and decide when resumed, and hand each write to
//! their driver ([`Step::Write`]). [`run`] drives one synchronously; a server drives them its own
//! way (reads on the request's thread, writes batched with other requests' into one commit)
//! without the engine knowing about threads or async runtimes. The engine's plain methods, such as
//! [`Engine::report`], are [`run`] over the engine's own store.
//!
//! # Examples
//!
//! ```
//! use oco_core::chrono::{TimeZone, Utc};
//! use oco_core::deploy::{ContainerSettings, DeployRequest};
//! use oco_core::engine::Engine;
//! use oco_core::model::{DeliveryPolicy, Name, Procedure};
//! use oco_core::report::{AgentReport, ReportedState};
//! use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
//!
//! let engine = Engine::new(MemoryStore::new());
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
//! let store = engine.store();
//! let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
//! let family = store.create_family(Name::new("name", "Editor")?)?;
//! let package = store.create_package(NewPackage::new(
//!     family.id,
//!     Name::new("version", "1.0")?,
//!     Procedure::new("setup.exe /S"),
//! ))?;
//!
//! let container = ContainerSettings::new(Name::new("name", "Editor 1.0")?, now, DeliveryPolicy::default());
//! let request = DeployRequest::new(container)
//!     .with_computers([pc.id])
//!     .with_packages([package.id]);
//! let deployed = engine.deploy(&request, now)?;
//! assert_eq!(deployed.jobs.len(), 1);
//!
//! let poll = engine.poll(pc.id, "10.0.0.7".parse()?, now)?;
//! assert_eq!(poll.deliver.len(), 1);
//! let job = &poll.deliver[0].job;
//!
//! let report = AgentReport::new(job.id, job.attempt, ReportedState::Succeeded).with_return_code(0);
//! let (reported, _evaluations) = engine.report(pc.id, report, now)?;
//! assert!(reported.job_succeeded);
//! assert!(engine.poll(pc.id, "10.0.0.7".parse()?, now)?.deliver.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent;
mod change;
mod computers;
mod containers;
mod error;
mod groups;
mod machine;
mod packages;
mod rule_admin;
mod rules;

use std::num::NonZeroUsize;

use crate::store::Store;
use crate::Settings;

pub use agent::{
    Delivered, FollowUp, HeldJob, HousekeepingOp, Housekept, Poll, PollOp, RecordSeenOp,
    RecordedSeen, ReportOp, Reported, SeenNotRecorded,
};
pub use change::Changed;
pub use computers::ComputerDeleted;
pub use containers::{CreatedJob, Deployed, Renewed};
pub use error::{EngineError, Undo};
pub use machine::{run, Operation, Progress, Step, Write, Written};
pub use rule_admin::RuleStatistics;
pub use rules::Evaluated;

/// The orchestration layer over store `S`: see the [module documentation](self).
///
/// `S` is any [`Store`]: a store value, a reference to one, an `Arc<dyn Store>`. Every method
/// takes `&self`, so one engine serves many threads when its store does.
#[derive(Debug, Clone)]
pub struct Engine<S> {
    store: S,
    options: EngineOptions,
}

impl<S: Store> Engine<S> {
    /// An engine over `store` with [`EngineOptions::default`].
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::store::{MemoryStore, Page, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// assert!(engine.store().list_rules(Page::first(10))?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(store: S) -> Self {
        Engine::with_options(store, EngineOptions::default())
    }

    /// An engine over `store` with `options`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    ///
    /// use oco_core::engine::{Engine, EngineOptions};
    /// use oco_core::store::MemoryStore;
    ///
    /// let options = EngineOptions::default().with_chunk_computers(NonZeroUsize::new(100).unwrap());
    /// let engine = Engine::with_options(MemoryStore::new(), options);
    /// assert_eq!(engine.options().chunk_computers.get(), 100);
    /// ```
    pub fn with_options(store: S, options: EngineOptions) -> Self {
        Engine { store, options }
    }

    /// The store: reads pass straight through it.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The options the engine was made with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The engine's store as the trait object the operations read through.
    fn dyn_store(&self) -> &dyn Store {
        &self.store
    }
}

/// How an [`Engine`] decides and how hard it retries. The defaults are the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// The core's timing settings (expiry, purge, Wake-on-LAN windows).
    pub settings: Settings,
    /// How many times an agent's report or last-seen write is decided before a lost race is
    /// [`EngineError::Contended`] (8).
    pub agent_attempts: NonZeroUsize,
    /// The same for an administrator's write with a precondition (8): assignments, renewals,
    /// container deletion, an agent's key reset.
    pub admin_attempts: NonZeroUsize,
    /// The same for one rule's diff on one chunk of computers (5).
    pub rule_attempts: NonZeroUsize,
    /// The same for a housekeeping run (3).
    pub housekeeping_attempts: NonZeroUsize,
    /// How many computers a re-evaluation over many computers reads and evaluates at a time
    /// (1,000). A chunk holds every rule's jobs on its computers; at 50 jobs a computer, some
    /// 50,000 jobs, a few tens of MiB, however many jobs a rule has.
    pub chunk_computers: NonZeroUsize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            settings: Settings::default(),
            agent_attempts: nonzero(8),
            admin_attempts: nonzero(8),
            rule_attempts: nonzero(5),
            housekeeping_attempts: nonzero(3),
            chunk_computers: nonzero(1_000),
        }
    }
}

impl EngineOptions {
    /// These options with the core's `settings`.
    #[must_use]
    pub fn with_settings(self, settings: Settings) -> Self {
        EngineOptions { settings, ..self }
    }

    /// These options with `chunk` computers a chunk of a re-evaluation.
    #[must_use]
    pub fn with_chunk_computers(self, chunk: NonZeroUsize) -> Self {
        EngineOptions {
            chunk_computers: chunk,
            ..self
        }
    }

    /// These options with `attempts` for every kind of write (agent, admin, rule, housekeeping).
    #[must_use]
    pub fn with_attempts(self, attempts: NonZeroUsize) -> Self {
        EngineOptions {
            agent_attempts: attempts,
            admin_attempts: attempts,
            rule_attempts: attempts,
            housekeeping_attempts: attempts,
            ..self
        }
    }
}

/// `n`, which the callers give as a non-zero literal.
const fn nonzero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}
