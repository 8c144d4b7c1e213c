//! The delivery policy as requests give it: constraints as text, parsed with their positions.

use oco_core::chrono_tz::Tz;
use oco_core::constraint::{IpRanges, TimeFrames};
use oco_core::model::{DeliveryPolicy, Priority, SequenceMode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::patch::null_is_default;

/// A delivery policy in a request, and its editable form. Absent or `null` fields take the
/// defaults of a new policy; an absent or `null` `time_zone` is the server's default zone.
/// `post_action_timeout` absent is 5 minutes, `null` disables post actions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyInput {
    #[serde(default, deserialize_with = "null_is_default")]
    priority: i64,
    #[serde(default, deserialize_with = "null_is_default")]
    sequence_mode: SequenceMode,
    #[serde(default, deserialize_with = "null_is_default")]
    ip_ranges: String,
    #[serde(default, deserialize_with = "null_is_default")]
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

impl From<&DeliveryPolicy> for PolicyInput {
    fn from(policy: &DeliveryPolicy) -> Self {
        PolicyInput {
            priority: i64::from(policy.priority.get()),
            sequence_mode: policy.sequence_mode,
            ip_ranges: policy.ip_ranges.to_string(),
            time_frames: policy.time_frames.to_string(),
            time_zone: Some(policy.time_zone),
            post_action_timeout: policy.post_action_timeout,
        }
    }
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

/// The policy `input` describes, or a new one in `zone` when there is none (left out or `null`).
///
/// # Errors
///
/// As [`PolicyInput::into_policy`].
pub(crate) fn policy_or_default(
    input: Option<PolicyInput>,
    zone: Tz,
    field: &str,
) -> Result<DeliveryPolicy, ApiError> {
    match input {
        Some(policy) => policy.into_policy(zone, field),
        None => Ok(DeliveryPolicy::new(zone)),
    }
}
