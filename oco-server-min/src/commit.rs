//! Group commit: the change sets of concurrent requests share one durable commit.
//!
//! A request hands its [`ChangeSet`] to the [`Committer`] and waits. One thread takes every set
//! waiting, applies them with [`Store::apply_many`] (one commit, each set atomic on its own) and
//! answers each request with its own result, after the commit. Under load, many hellos and reports
//! cost one commit; alone, a request waits for nothing but its own.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use oco_core::store::{Applied, ChangeSet, Store, StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::metrics::CommitMetrics;

/// At most this many change sets share one commit.
const MAX_BATCH: usize = 512;

/// How many times the thread lets the request threads run while its batch keeps growing.
const YIELD_ROUNDS: usize = 2;

/// A change set waiting for the commit, with where its result goes.
struct Pending {
    set: ChangeSet,
    reply: oneshot::Sender<StoreResult<Applied>>,
}

/// Hands change sets to the committing thread. Cheap to clone; the thread ends when every clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("set", &self.set).finish()
    }
}

impl Committer {
    /// Starts the committing thread on `store`.
    ///
    /// # Errors
    ///
    /// If the operating system refuses a new thread.
    pub fn start(store: Arc<dyn Store>) -> std::io::Result<Committer> {
        Committer::start_measured(store, None)
    }

    /// [`Committer::start`], recording each commit's batch size and duration in `metrics`.
    pub(crate) fn start_measured(
        store: Arc<dyn Store>,
        metrics: Option<CommitMetrics>,
    ) -> std::io::Result<Committer> {
        let (queue, incoming) = mpsc::channel::<Pending>();
        thread::Builder::new()
            .name("oco-commit".into())
            .spawn(move || run(store.as_ref(), &incoming, metrics.as_ref()))?;
        Ok(Committer { queue })
    }

    /// Applies `set` in the next commit and returns its result once that commit is durable.
    ///
    /// # Errors
    ///
    /// The store's error for this set ([`StoreError::Conflict`] if a precondition failed), or
    /// [`StoreError::Backend`] if the committing thread is gone.
    pub async fn commit(&self, set: ChangeSet) -> StoreResult<Applied> {
        let (reply, result) = oneshot::channel();
        self.queue
            .send(Pending { set, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

fn gone() -> StoreError {
    StoreError::Backend("the committing thread has stopped".into())
}

fn run(store: &dyn Store, incoming: &mpsc::Receiver<Pending>, metrics: Option<&CommitMetrics>) {
    // Blocks for the first set, then takes whatever else is already waiting.
    while let Ok(first) = incoming.recv() {
        // Woken by the first set, this thread may have preempted the request threads that are
        // about to send more (on a busy core it does): let them run first, so that they join
        // this commit instead of each costing a commit and two context switches of its own.
        thread::yield_now();
        let mut batch = vec![first];
        for round in 0..YIELD_ROUNDS {
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match incoming.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            if round + 1 == YIELD_ROUNDS || batch.len() == before || batch.len() == MAX_BATCH {
                break;
            }
            thread::yield_now();
        }
        let sets: Vec<ChangeSet> = batch
            .iter_mut()
            .map(|p| std::mem::take(&mut p.set))
            .collect();
        // Measured for the metrics only: no decision depends on it.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let results = store.apply_many(&sets);
        if let Some(metrics) = metrics {
            metrics.committed(sets.len(), started.elapsed().as_secs_f64());
        }
        for (pending, result) in batch.into_iter().zip(results) {
            // A request that gave up waiting (its connection closed) no longer wants the result.
            let _ = pending.reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use oco_core::model::Revision;
    use oco_core::store::{testkit, Change, MemoryStore};

    #[tokio::test]
    async fn each_request_gets_its_own_result() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pc = store.create_computer(testkit::new_computer("pc1")).unwrap();
        let committer = Committer::start(store.clone()).unwrap();
        let expect = |revision| ChangeSet {
            changes: vec![Change::ExpectAssignments {
                computer: pc.id,
                expected: Revision(revision),
            }],
        };
        let (ok, conflict) = tokio::join!(committer.commit(expect(0)), committer.commit(expect(7)));
        assert!(ok.is_ok());
        assert!(
            matches!(conflict, Err(StoreError::Conflict { .. })),
            "{conflict:?}"
        );
    }
}
