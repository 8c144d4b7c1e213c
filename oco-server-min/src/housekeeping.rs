//! Housekeeping on an interval: expiry, purge, Wake-on-LAN.

/// What the last housekeeping runs did, for the admin API.
#[derive(Debug, Default)]
pub struct HousekeepingStatus {}
