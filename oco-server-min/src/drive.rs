//! The server's driver of engine operations ([`Operation`]): reads on the request's thread or a
//! blocking one, writes through the group committer.
//!
//! An operation reads and decides when resumed and hands each write back; here a write is a
//! change set for the [`Committer`](crate::commit::Committer), which shares one durable commit
//! among concurrent requests, so a worker thread never waits for a commit, and many requests'
//! writes cost one.

use std::sync::atomic::{AtomicUsize, Ordering};

use oco_core::engine::{Operation, Progress, Step, Write, Written};
use oco_core::store::StoreError;
use tokio::task::JoinError;

use crate::AppState;

/// Where an operation's reads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// On the request's async worker while fewer than [`INLINE_READS`] reads run there, else on
    /// a blocking thread: the short reads of an agent's request. A read takes tens of
    /// microseconds; handing it to a pool thread and back costs as much CPU again in context
    /// switches.
    Inline,
    /// On a blocking thread: reads that may be long (a housekeeping snapshot).
    Blocking,
}

/// At most this many store reads run inline on the async workers at once; more wait on the
/// blocking pool. Bounds how many workers a slow read can hold up.
const INLINE_READS: usize = 2;

/// One of the [`INLINE_READS`] slots, given back when dropped.
struct InlineSlot<'a>(&'a AtomicUsize);

impl<'a> InlineSlot<'a> {
    fn take(reads: &'a AtomicUsize) -> Option<Self> {
        if reads.fetch_add(1, Ordering::Acquire) < INLINE_READS {
            Some(InlineSlot(reads))
        } else {
            reads.fetch_sub(1, Ordering::Release);
            None
        }
    }
}

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Runs `op` to its end: each resume as `reads` says, each write through the group committer
/// (a computer to create on a blocking thread).
///
/// # Errors
///
/// If a blocking thread panicked: the operation is lost.
pub(crate) async fn drive<O>(
    state: &AppState,
    reads: Reads,
    mut op: O,
) -> Result<O::Output, JoinError>
where
    O: Operation + Send + 'static,
    O::Output: Send + 'static,
{
    loop {
        let inline = match reads {
            Reads::Inline if state.options().inline_reads => {
                InlineSlot::take(&state.agent().inline_reads)
            }
            Reads::Inline => None,
            Reads::Blocking => None,
        };
        let (back, step) = match inline {
            Some(_slot) => {
                let step = op.resume(state.store().as_ref());
                (op, step)
            }
            None => {
                let store = state.store().clone();
                tokio::task::spawn_blocking(move || {
                    let step = op.resume(store.as_ref());
                    (op, step)
                })
                .await?
            }
        };
        op = back;
        let written = match step {
            Step::Done(output) => return Ok(output),
            Step::Write(Write::Apply(set)) => Written::Applied(state.committer().commit(set).await),
            Step::Write(Write::CreateComputer(computer)) => {
                let store = state.store().clone();
                Written::Created(
                    tokio::task::spawn_blocking(move || store.create_computer(computer))
                        .await
                        .unwrap_or_else(|error| Err(StoreError::Backend(Box::new(error)))),
                )
            }
        };
        if let Progress::Done(output) = op.written(written) {
            return Ok(output);
        }
    }
}
