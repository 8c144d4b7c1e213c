//! `result.timestamp`: strictly increasing over the server's whole life, restarts included.
//!
//! Each reply gets `max(now, last + ε)` with ε = 1 µs: above the spacing of `f64` values near
//! today's epoch seconds (about 0.24 µs), so each step is a distinct, larger value, and small
//! enough that 10,000 replies a second move the timestamps 10 ms a second ahead of the clock at
//! most (they fall back to the clock when the load drops).
//!
//! Restarts: before a timestamp is sent, a *reservation* at least as large is durable in the
//! store (`ServerState::last_response_timestamp`). A reservation reaches [`RESERVE`] seconds
//! beyond the timestamps issued when it is written; it is renewed in the background once half
//! of it is used, and a reply that would pass it waits for the renewal. After a restart the
//! first timestamp continues from `max(now, stored reservation)`, so it is greater than any
//! timestamp sent before, at the price of running at most [`RESERVE`] seconds ahead of the
//! clock for a while after a restart.

use std::sync::Mutex;

use oco_core::chrono::{DateTime, Utc};
use oco_core::store::{Change, ChangeSet, StoreError};

use crate::AppState;

/// The step between two timestamps issued within the same microsecond.
pub(crate) const EPSILON: f64 = 1e-6;

/// How far (seconds) a reservation reaches beyond the timestamps issued when it is written.
pub(crate) const RESERVE: f64 = 10.0;

/// The timestamps issued and reserved so far.
#[derive(Debug)]
pub(crate) struct ResponseClock {
    issued: Mutex<Issued>,
    /// Serialises reservations, so that concurrent requests past the reservation share one write.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy)]
struct Issued {
    /// The last timestamp issued (`-inf` before the first).
    last: f64,
    /// The durable reservation; `None` until the stored one has been read.
    reserved: Option<f64>,
    /// Whether a background renewal is under way.
    renewing: bool,
}

impl Default for ResponseClock {
    fn default() -> Self {
        ResponseClock {
            issued: Mutex::new(Issued {
                last: f64::NEG_INFINITY,
                reserved: None,
                renewing: false,
            }),
            renewing: tokio::sync::Mutex::new(()),
        }
    }
}

/// Seconds since the epoch, with fractions.
pub(crate) fn epoch_seconds(at: DateTime<Utc>) -> f64 {
    // Lossless enough: f64 holds microseconds exactly for the next few centuries.
    at.timestamp_micros() as f64 / 1e6
}

impl ResponseClock {
    /// The next reply timestamp at `now`, greater than every timestamp issued before (in this
    /// process and, through the store, in earlier ones).
    ///
    /// # Errors
    ///
    /// The store's, when a reservation had to be written first and could not be.
    pub(crate) async fn next(
        &self,
        state: &AppState,
        now: DateTime<Utc>,
    ) -> Result<f64, StoreError> {
        let now = epoch_seconds(now);
        loop {
            let (issued, renew) = {
                let mut guard = self.lock();
                let candidate = f64::max(now, guard.last + EPSILON);
                match guard.reserved {
                    Some(reserved) if candidate <= reserved => {
                        guard.last = candidate;
                        let renew = !guard.renewing && candidate > reserved - RESERVE / 2.0;
                        guard.renewing |= renew;
                        (Some(candidate), renew)
                    }
                    _ => (None, false),
                }
            };
            if renew {
                let state = state.clone();
                tokio::spawn(async move {
                    let clock = &state.agent().timestamps;
                    if let Err(error) = clock.reserve(&state, now).await {
                        tracing::warn!(%error, "renewing the reply timestamp reservation failed");
                    }
                    clock.lock().renewing = false;
                });
            }
            if let Some(issued) = issued {
                return Ok(issued);
            }
            self.reserve(state, now).await?;
        }
    }

    /// Makes sure the durable reservation reaches [`RESERVE`] seconds beyond `max(now, last)`,
    /// unless more than half of that is already reserved. Reads the stored reservation first if
    /// it has not been read yet.
    ///
    /// # Errors
    ///
    /// The store's.
    pub(crate) async fn reserve(&self, state: &AppState, now: f64) -> Result<(), StoreError> {
        let _one_at_a_time = self.renewing.lock().await;
        let snapshot = *self.lock();
        let base = f64::max(now, snapshot.last);
        if snapshot
            .reserved
            .is_some_and(|reserved| reserved >= base + RESERVE / 2.0)
        {
            return Ok(());
        }
        let store = state.store().clone();
        let mut server_state = super::blocking(move || store.server_state()).await?;
        let stored = server_state
            .last_response_timestamp
            .unwrap_or(f64::NEG_INFINITY);
        let base = f64::max(base, stored);
        let target = base + RESERVE;
        server_state.last_response_timestamp = Some(target);
        let mut set = ChangeSet::default();
        set.push(Change::SetServerState {
            state: server_state,
        });
        state.committer().commit(set).await?;
        let mut guard = self.lock();
        // Everything issued before a restart is at most the stored reservation.
        guard.last = f64::max(guard.last, stored);
        guard.reserved = Some(guard.reserved.map_or(target, |r| f64::max(r, target)));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Issued> {
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
