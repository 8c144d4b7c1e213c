//! Tunable durations of the planner and housekeeping, with the documented defaults.

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// Durations the planner and housekeeping decide by. `Settings::default()` has the documented
/// defaults. serde writes each as seconds ([`crate::serde_seconds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// A running job of an ended container with no report for this long expires (24 h).
    #[serde(with = "crate::serde_seconds")]
    pub stale_running_after: Duration,
    /// A finished container whose status is `succeeded` is purged this long after its last job
    /// finished (4 h).
    #[serde(with = "crate::serde_seconds")]
    pub purge_succeeded_after: Duration,
    /// A finished container whose status is `failed` is purged this long after its last job
    /// finished (2 days).
    #[serde(with = "crate::serde_seconds")]
    pub purge_failed_after: Duration,
    /// A computer not seen for this long is offline, for Wake-on-LAN shutdown marks (125 s).
    #[serde(with = "crate::serde_seconds")]
    pub offline_after: Duration,
    /// A first poll this long after the wake packets means someone switched the computer on by
    /// hand: no shutdown (300 s).
    #[serde(with = "crate::serde_seconds")]
    pub wol_shutdown_expiry: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stale_running_after: Duration::hours(24),
            purge_succeeded_after: Duration::hours(4),
            purge_failed_after: Duration::days(2),
            offline_after: Duration::seconds(125),
            wol_shutdown_expiry: Duration::seconds(300),
        }
    }
}
