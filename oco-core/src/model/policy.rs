//! The delivery policy that job containers and deployment rules share.

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};

use super::InvalidField;
use crate::constraint::{IpRanges, TimeFrames};

/// How, when and where an origin's jobs are delivered. Containers and rules have the same policy
/// (OCO gives rules none of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryPolicy {
    /// Higher first.
    pub priority: Priority,
    /// What a failed job means for the computer's later jobs of the origin.
    pub sequence_mode: SequenceMode,
    /// Agent addresses the jobs may be delivered to.
    pub ip_ranges: IpRanges,
    /// Local times at which the jobs may be delivered.
    pub time_frames: TimeFrames,
    /// The zone `time_frames` are read in. Always explicit: a policy created without one gets
    /// the server's default zone.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: Tz,
    /// Minutes the agent waits before a restart or shutdown post action; `None` disables post
    /// actions altogether.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub post_action_timeout: Option<u32>,
}

impl DeliveryPolicy {
    /// A policy with priority 0, failures ignored, no constraints, post actions after 5 minutes,
    /// in `time_zone`; the `with_*` methods change one field each.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono_tz::Europe::Berlin;
    /// use oco_core::model::{DeliveryPolicy, Priority, SequenceMode};
    ///
    /// let evenings = DeliveryPolicy::new(Berlin)
    ///     .with_priority(Priority::new(10)?)
    ///     .with_sequence_mode(SequenceMode::AbortAfterFailed)
    ///     .with_ip_ranges("!10.66.0.0/16, 10.0.0.0/8".parse()?)
    ///     .with_time_frames("MON-FRI 18:00-06:00, SAT-SUN".parse()?);
    /// assert_eq!(evenings.priority.get(), 10);
    /// assert_eq!(evenings.post_action_timeout, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(time_zone: Tz) -> Self {
        DeliveryPolicy {
            priority: Priority::default(),
            sequence_mode: SequenceMode::IgnoreFailed,
            ip_ranges: IpRanges::default(),
            time_frames: TimeFrames::default(),
            time_zone,
            post_action_timeout: Some(5),
        }
    }

    /// The policy with its time frames read in `time_zone`.
    #[must_use]
    pub fn with_time_zone(self, time_zone: Tz) -> Self {
        DeliveryPolicy { time_zone, ..self }
    }

    /// The policy with this priority.
    #[must_use]
    pub fn with_priority(self, priority: Priority) -> Self {
        DeliveryPolicy { priority, ..self }
    }

    /// The policy with this sequence mode.
    #[must_use]
    pub fn with_sequence_mode(self, sequence_mode: SequenceMode) -> Self {
        DeliveryPolicy {
            sequence_mode,
            ..self
        }
    }

    /// The policy with these agent IP ranges.
    #[must_use]
    pub fn with_ip_ranges(self, ip_ranges: IpRanges) -> Self {
        DeliveryPolicy { ip_ranges, ..self }
    }

    /// The policy with these time frames (read in its zone).
    #[must_use]
    pub fn with_time_frames(self, time_frames: TimeFrames) -> Self {
        DeliveryPolicy {
            time_frames,
            ..self
        }
    }

    /// The policy with this post-action timeout in minutes (`None`: no post actions).
    #[must_use]
    pub fn with_post_action_timeout(self, minutes: Option<u32>) -> Self {
        DeliveryPolicy {
            post_action_timeout: minutes,
            ..self
        }
    }
}

impl Default for DeliveryPolicy {
    /// [`DeliveryPolicy::new`] in UTC, the server's default zone unless configured.
    fn default() -> Self {
        DeliveryPolicy::new(Tz::UTC)
    }
}

/// What a failed job means for the computer's later jobs of the same origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SequenceMode {
    /// Later jobs run anyway.
    #[default]
    IgnoreFailed,
    /// Later Waiting jobs of the same computer in the same origin fail with -8888.
    AbortAfterFailed,
}

/// A delivery priority, `-100..=100`; higher is delivered first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Priority(i8);

impl Priority {
    /// The lowest priority.
    pub const MIN: i8 = -100;
    /// The highest priority.
    pub const MAX: i8 = 100;

    /// Validates a priority.
    ///
    /// # Errors
    ///
    /// When `value` is outside `-100..=100`.
    pub fn new(value: i64) -> Result<Self, InvalidField> {
        match i8::try_from(value) {
            Ok(value) if (Self::MIN..=Self::MAX).contains(&value) => Ok(Priority(value)),
            _ => Err(InvalidField::new(
                "priority",
                format!(
                    "must be between {} and {}, got {value}",
                    Self::MIN,
                    Self::MAX
                ),
            )),
        }
    }

    /// The priority as a number.
    pub fn get(self) -> i8 {
        self.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Priority::new(i64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}
