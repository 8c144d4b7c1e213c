//! The server's driver of engine operations ([`Operation`]): reads on the request's thread or a
//! blocking one, writes through the group committer.
//!
//! An operation reads and decides when resumed and hands each write back; here a write is a
//! change set for the [`Committer`](crate::commit::Committer), which shares one durable commit
//! among concurrent requests, so a worker thread never waits for a commit, and many requests'
//! writes cost one.

use oco_core::engine::{Operation, Progress, Step, Write, Written};
use oco_core::store::StoreError;
use tokio::task::JoinError;

use crate::AppState;

/// Where an operation's reads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// On a blocking thread: reads that may be long (a housekeeping snapshot).
    Blocking,
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
        let (back, step) = match reads {
            Reads::Blocking => {
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
