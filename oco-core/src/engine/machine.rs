//! Operations as machines: the engine decides, the driver writes.

use crate::model::Computer;
use crate::store::{Applied, ChangeSet, NewComputer, Store, StoreResult};

/// An operation as a machine that reads and decides when resumed and hands each write to its
/// driver.
///
/// The driver calls [`resume`](Operation::resume) with the store to read from. The operation
/// reads (never writes), decides with the core, and either finishes ([`Step::Done`]) or asks for
/// a write ([`Step::Write`]). The driver performs that write on the same store, or on a decorator
/// of it that commits to the same data (batching it with other operations' writes, for example),
/// and gives the result to [`written`](Operation::written), which either finishes
/// ([`Progress::Done`]) or asks to be resumed (a lost compare-and-set race: read and decide
/// again). A driver may append changes of its own to a [`Write::Apply`] (they then commit
/// atomically with the operation's) and must pass the result on unchanged.
///
/// [`run`] is the synchronous driver.
///
/// # Examples
///
/// A driver that counts the writes it performs:
///
/// ```
/// use oco_core::chrono::{TimeZone, Utc};
/// use oco_core::engine::{Engine, Operation, Progress, Step, Write, Written};
/// use oco_core::store::{MemoryStore, Store};
///
/// fn drive<O: Operation>(store: &dyn Store, mut op: O) -> (O::Output, usize) {
///     let mut writes = 0;
///     loop {
///         let write = match op.resume(store) {
///             Step::Done(output) => return (output, writes),
///             Step::Write(write) => write,
///         };
///         writes += 1;
///         let written = match write {
///             Write::Apply(set) => Written::Applied(store.apply(&set)),
///             Write::CreateComputer(computer) => Written::Created(store.create_computer(computer)),
///         };
///         if let Progress::Done(output) = op.written(written) {
///             return (output, writes);
///         }
///     }
/// }
///
/// let engine = Engine::new(MemoryStore::new());
/// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
/// let (housekept, writes) = drive(engine.store(), engine.housekeeping_op(now));
/// assert_eq!((housekept?.effects.len(), writes), (0, 0)); // nothing to do in an empty store
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Operation {
    /// What the operation ends with.
    type Output;

    /// Reads what the operation needs from `store` (never writing), decides, and says what to do
    /// next. After [`Step::Write`], call [`written`](Operation::written) before resuming.
    fn resume(&mut self, store: &dyn Store) -> Step<Self::Output>;

    /// The result of the write the last [`Step::Write`] asked for.
    fn written(&mut self, written: Written) -> Progress<Self::Output>;
}

/// What an [`Operation`] asks of its driver after reading and deciding.
#[derive(Debug)]
#[must_use = "a step is either the operation's output or a write the driver must perform"]
pub enum Step<T> {
    /// Perform this write, then call [`Operation::written`] with its result.
    Write(Write),
    /// The operation is over.
    Done(T),
}

/// A write an [`Operation`] asks its driver to perform.
#[derive(Debug)]
#[must_use = "an operation's write happens only when the driver performs it"]
pub enum Write {
    /// [`Store::apply`] this change set (owned, so a driver can batch it without a copy).
    Apply(ChangeSet),
    /// [`Store::create_computer`] (an agent registering itself).
    CreateComputer(NewComputer),
}

/// The result of a [`Write`], for [`Operation::written`].
#[derive(Debug)]
pub enum Written {
    /// The result of [`Write::Apply`].
    Applied(StoreResult<Applied>),
    /// The result of [`Write::CreateComputer`].
    Created(StoreResult<Computer>),
}

/// What an [`Operation`] does after a write.
#[derive(Debug)]
#[must_use = "the operation either ended or must be resumed"]
pub enum Progress<T> {
    /// Call [`Operation::resume`] again (a lost race, or more to do).
    Resume,
    /// The operation is over: the write was its last step.
    Done(T),
}

/// Runs `op` to its end on `store`: each write applied to `store` directly.
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
/// assert_eq!(housekept.summary.purged, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<O: Operation>(store: &dyn Store, mut op: O) -> O::Output {
    loop {
        let write = match op.resume(store) {
            Step::Done(output) => return output,
            Step::Write(write) => write,
        };
        let written = match write {
            Write::Apply(set) => Written::Applied(store.apply(&set)),
            Write::CreateComputer(computer) => Written::Created(store.create_computer(computer)),
        };
        if let Progress::Done(output) = op.written(written) {
            return output;
        }
    }
}
