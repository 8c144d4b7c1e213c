//! Housekeeping on an interval: expiry, purge, Wake-on-LAN.

/// What the last housekeeping runs did, for the admin API.
#[derive(Debug, Default)]
pub struct HousekeepingStatus {}

impl HousekeepingStatus {
    /// What the admin API shows at `GET /api/v1/housekeeping`, as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({ "runs": 0 })
    }
}
