//! The delivery policy as requests give it: constraints as text, parsed with their positions.

use oco_core::chrono_tz::Tz;
use oco_core::constraint::{IpRanges, TimeFrames};
use oco_core::model::{DeliveryPolicy, Priority, SequenceMode};
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// A delivery policy in a request. Absent fields take the defaults of a new policy; an absent
/// `time_zone` is the server's default zone (or, on an edit, the zone the policy had).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyInput {
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    sequence_mode: SequenceMode,
    #[serde(default)]
    ip_ranges: String,
    #[serde(default)]
    time_frames: String,
    #[serde(default)]
    time_zone: Option<Tz>,
    /// Absent: 5 minutes; `null`: post actions disabled.
    #[serde(default = "default_timeout")]
    post_action_timeout: Option<u32>,
}

fn default_timeout() -> Option<u32> {
    Some(5)
}

impl PolicyInput {
    /// The policy, in `zone` unless the input names one; errors name `field.<name>`.
    ///
    /// # Errors
    ///
    /// 400 for a priority out of range or a constraint that does not parse (with its position).
    pub(crate) fn into_policy(self, zone: Tz, field: &str) -> Result<DeliveryPolicy, ApiError> {
        let priority = Priority::new(self.priority).map_err(|e| ApiError::from(e.within(field)))?;
        let ip_ranges: IpRanges = self.ip_ranges.parse().map_err(|error| {
            ApiError::constraint(format!("{field}.ip_ranges"), &self.ip_ranges, &error)
        })?;
        let time_frames: TimeFrames = self.time_frames.parse().map_err(|error| {
            ApiError::constraint(format!("{field}.time_frames"), &self.time_frames, &error)
        })?;
        Ok(DeliveryPolicy {
            priority,
            sequence_mode: self.sequence_mode,
            ip_ranges,
            time_frames,
            time_zone: self.time_zone.unwrap_or(zone),
            post_action_timeout: self.post_action_timeout,
        })
    }
}

/// For optional fields that may be set to `null`: absent is `None`, `null` is `Some(None)`.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}
