//! Housekeeping on an interval: expiry, purge, Wake-on-LAN.
//!
//! A run reads the clock once and runs the engine's housekeeping
//! ([`Engine::housekeeping_op`](oco_core::engine::Engine::housekeeping_op): the snapshot, the
//! core's decision, decided again when a request moved a job meanwhile), its change set committed
//! through the group committer, and then performs the effects: a UDP magic packet per MAC
//! address to every configured target ([`send_magic_packets`]). Packets are sent only after the
//! commit that marks the container's packets as sent, so a container is never woken twice, even
//! across restarts; a packet that fails to leave is logged and not retried.
//!
//! With several processes on one database, only the one that [`Lead`]s runs it.
//!
//! [`HousekeepingStatus`] keeps what the last runs did for the admin API.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oco_core::chrono::{DateTime, Utc};
use oco_core::engine::EngineError;
use oco_core::housekeeping::{Effect, Summary};
use oco_core::model::MacAddress;
use oco_core::store::StoreError;
use serde::Serialize;
use tokio::sync::watch;

use crate::drive::{drive, Reads};
use crate::AppState;

/// What the last housekeeping runs did, for the admin API. Shared by the task and the handlers.
#[derive(Debug, Default)]
pub struct HousekeepingStatus {
    inner: Mutex<StatusSnapshot>,
}

/// What [`HousekeepingStatus::snapshot`] returns: serializable as the admin API's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = HousekeepingStatus)]
pub struct StatusSnapshot {
    /// Runs since the server started, failed ones included.
    pub runs: u64,
    /// When the last run started (its `now`).
    #[schema(required = true)]
    pub last_run: Option<DateTime<Utc>>,
    /// What the last successful run did.
    #[schema(required = true)]
    pub last_summary: Option<Summary>,
    /// The most recent failure, kept after later successes (compare its time with `last_run`).
    #[schema(required = true)]
    pub last_error: Option<RunError>,
}

/// A failed run, or wake packets that could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunError {
    /// The run's time.
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub message: String,
}

/// How the housekeeping task runs.
#[derive(Clone)]
pub struct HousekeepingOptions {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Where magic packets go (broadcast addresses, port 9 usually).
    pub wol_targets: Vec<SocketAddr>,
    /// With several processes on one database: who runs housekeeping. `None`: this process
    /// alone.
    pub lead: Option<Arc<dyn Lead>>,
}

impl fmt::Debug for HousekeepingOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HousekeepingOptions")
            .field("interval", &self.interval)
            .field("wol_targets", &self.wol_targets)
            .field("shared", &self.lead.is_some())
            .finish()
    }
}

/// Who among several server processes runs housekeeping: one at a time, so that a machine is
/// woken once and a purge is not done twice.
pub trait Lead: Send + Sync + 'static {
    /// Whether this process leads now: confirms the lead if it holds it, takes it if it is free.
    /// Blocks (the server calls it from a blocking thread).
    ///
    /// # Errors
    ///
    /// The store's: then this process does not know, and skips the run.
    fn lead(&self) -> Result<bool, StoreError>;
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// Reading the snapshot or committing the changes failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The run kept losing compare-and-set races with requests; nothing was written (the next
    /// run tries again).
    #[error("{0}")]
    Contended(EngineError),
    /// The store call's thread panicked or was cancelled.
    #[error("the store call did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<EngineError> for HousekeepingError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => HousekeepingError::Store(error),
            other => HousekeepingError::Contended(other),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The core's counts.
    pub summary: Summary,
    /// Magic packets sent (one per MAC address and target).
    pub packets_sent: usize,
    /// Packets that could not be sent, with why.
    pub packet_errors: Vec<String>,
}

impl HousekeepingStatus {
    /// A copy of the status.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.lock().clone()
    }

    /// Records a run at `at` that did what `report` says.
    pub fn record_success(&self, at: DateTime<Utc>, report: &RunReport) {
        let mut status = self.lock();
        status.runs += 1;
        status.last_run = Some(at);
        status.last_summary = Some(report.summary);
        if !report.packet_errors.is_empty() {
            status.last_error = Some(RunError {
                at,
                message: format!(
                    "{} wake packet(s) not sent: {}",
                    report.packet_errors.len(),
                    report.packet_errors.join("; ")
                ),
            });
        }
    }

    /// Records a run at `at` that failed with `message`.
    pub fn record_error(&self, at: DateTime<Utc>, message: String) {
        let mut status = self.lock();
        status.runs += 1;
        status.last_run = Some(at);
        status.last_error = Some(RunError { at, message });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusSnapshot> {
        // Every update leaves the status whole, so a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One housekeeping run at the state's clock time, sending magic packets to `wol_targets`.
/// Records the outcome in [`AppState::housekeeping`] and logs it.
///
/// # Errors
///
/// If the store fails, or the change set keeps losing races with requests (`Conflict`); nothing
/// is then changed and no packet sent.
pub async fn run_once(
    state: &AppState,
    wol_targets: &[SocketAddr],
) -> Result<RunReport, HousekeepingError> {
    let now = state.clock().now();
    let result = decide_and_apply(state, now, wol_targets).await;
    match &result {
        Ok(report) => {
            let Summary {
                expired,
                expired_stale,
                purged,
                wakes,
                shutdown_marks,
                tombstones_purged,
            } = report.summary;
            tracing::info!(
                expired,
                expired_stale,
                purged,
                wakes,
                shutdown_marks,
                tombstones_purged,
                packets_sent = report.packets_sent,
                "housekeeping run"
            );
            for error in &report.packet_errors {
                tracing::warn!("wake packet not sent: {error}");
            }
            state.housekeeping().record_success(now, report);
            state
                .metrics()
                .housekeeping(Ok((&report.summary, report.packets_sent)));
        }
        Err(error) => {
            tracing::error!("housekeeping run failed: {error}");
            state.housekeeping().record_error(now, error.to_string());
            state.metrics().housekeeping(Err(()));
        }
    }
    result
}

/// Runs housekeeping every `options.interval` (the first run at once) until `stop` turns true or
/// its sender is dropped. A run in progress finishes first.
pub async fn run_periodically(
    state: AppState,
    options: HousekeepingOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(options.interval);
    // After a slow run, wait a whole interval rather than catching up with a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticks.tick() => {
                if !leads(options.lead.as_ref()).await {
                    continue;
                }
                // Failures are recorded and logged by the run; the next run tries again.
                let _ = run_once(&state, &options.wol_targets).await;
            }
        }
    }
}

/// Whether this process is to run housekeeping now.
async fn leads(lead: Option<&Arc<dyn Lead>>) -> bool {
    let Some(lead) = lead.cloned() else {
        return true;
    };
    match tokio::task::spawn_blocking(move || lead.lead()).await {
        Ok(Ok(leads)) => {
            if !leads {
                tracing::debug!("another process runs housekeeping");
            }
            leads
        }
        Ok(Err(error)) => {
            tracing::warn!(
                "cannot tell whether this process leads housekeeping: {error}; run skipped"
            );
            false
        }
        Err(error) => {
            tracing::error!("the housekeeping lead check did not finish: {error}; run skipped");
            false
        }
    }
}

/// Sends the magic packet of each of `macs` to each of `targets` (broadcast allowed), from one
/// socket per address family. Returns how many packets were sent and the errors of those that
/// were not.
pub fn send_magic_packets(macs: &[MacAddress], targets: &[SocketAddr]) -> (usize, Vec<String>) {
    let mut sent = 0;
    let mut errors = Vec::new();
    let mut v4: Option<std::io::Result<UdpSocket>> = None;
    let mut v6: Option<std::io::Result<UdpSocket>> = None;
    for target in targets {
        let socket = if target.is_ipv4() {
            v4.get_or_insert_with(|| open_socket("0.0.0.0:0"))
        } else {
            v6.get_or_insert_with(|| open_socket("[::]:0"))
        };
        let socket = match socket {
            Ok(socket) => socket,
            Err(error) => {
                errors.push(format!("to {target}: no socket: {error}"));
                continue;
            }
        };
        for mac in macs {
            match socket.send_to(&mac.magic_packet(), target) {
                Ok(_) => sent += 1,
                Err(error) => errors.push(format!("{mac} to {target}: {error}")),
            }
        }
    }
    (sent, errors)
}

async fn decide_and_apply(
    state: &AppState,
    now: DateTime<Utc>,
    wol_targets: &[SocketAddr],
) -> Result<RunReport, HousekeepingError> {
    let op = state.engine().housekeeping_op(now);
    let run = drive(state, Reads::Blocking, op).await??;
    let macs: Vec<MacAddress> = run
        .effects
        .iter()
        .flat_map(|effect| match effect {
            Effect::Wake { macs, .. } => macs.iter().copied(),
        })
        .collect();
    let (packets_sent, packet_errors) = if macs.is_empty() {
        (0, Vec::new())
    } else {
        let targets = wol_targets.to_vec();
        tokio::task::spawn_blocking(move || send_magic_packets(&macs, &targets)).await?
    };
    Ok(RunReport {
        summary: run.summary,
        packets_sent,
        packet_errors,
    })
}

fn open_socket(bind: &str) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(bind)?;
    socket.set_broadcast(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_go_to_every_target_and_failures_are_listed() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let target = receiver.local_addr().unwrap();
        let macs: Vec<MacAddress> = vec![
            "01:02:03:04:05:06".parse().unwrap(),
            "0a:0b:0c:0d:0e:0f".parse().unwrap(),
        ];
        let (sent, errors) = send_magic_packets(&macs, &[target]);
        assert_eq!((sent, errors), (2, vec![]));
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut buf = [0u8; 200];
            let (len, _) = receiver.recv_from(&mut buf).unwrap();
            got.push(buf[..len].to_vec());
        }
        got.sort();
        let mut expected: Vec<Vec<u8>> = macs.iter().map(|m| m.magic_packet().to_vec()).collect();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_status_keeps_the_last_summary_and_the_last_error() {
        let status = HousekeepingStatus::default();
        let t = |s| oco_core::chrono::TimeZone::timestamp_opt(&Utc, s, 0).unwrap();
        assert_eq!(status.snapshot(), StatusSnapshot::default());
        status.record_error(t(10), "store: disk full".into());
        let report = RunReport {
            summary: Summary {
                purged: 2,
                ..Summary::default()
            },
            packets_sent: 0,
            packet_errors: vec![],
        };
        status.record_success(t(70), &report);
        let snapshot = status.snapshot();
        assert_eq!(snapshot.runs, 2);
        assert_eq!(snapshot.last_run, Some(t(70)));
        assert_eq!(snapshot.last_summary.map(|s| s.purged), Some(2));
        assert_eq!(
            snapshot.last_error,
            Some(RunError {
                at: t(10),
                message: "store: disk full".into()
            })
        );
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["last_summary"]["purged"], 2);
        assert_eq!(json["runs"], 2);
    }
}
