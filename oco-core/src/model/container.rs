//! Job containers: a set of jobs deployed together, with a schedule and a delivery policy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::{ContainerId, DeliveryPolicy, InvalidField, Name};

/// A job container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobContainer {
    /// Assigned by the store.
    pub id: ContainerId,
    /// Not blank.
    pub name: Name,
    /// Free text.
    pub notes: String,
    /// A disabled container's jobs are held.
    pub enabled: bool,
    /// When its jobs may start, and until when.
    pub schedule: Schedule,
    /// How its jobs are delivered.
    pub policy: DeliveryPolicy,
    /// Wake-on-LAN.
    pub wol: WolSettings,
    /// Created from the self-service portal.
    pub self_service: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A start instant and an optional end after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    start: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    end: Option<DateTime<Utc>>,
}

impl Schedule {
    /// A schedule from `start`, ending at `end` if given.
    ///
    /// # Errors
    ///
    /// When `end` is not after `start` (field `end`).
    pub fn new(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Result<Self, InvalidField> {
        match end {
            Some(end) if end <= start => Err(InvalidField::new(
                "end",
                format!("must be after the start {start}, got {end}"),
            )),
            _ => Ok(Schedule { start, end }),
        }
    }

    /// A schedule from `start` with no end.
    pub fn starting(start: DateTime<Utc>) -> Self {
        Schedule { start, end: None }
    }

    /// When jobs may start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// When the container ends (jobs not yet started expire), if ever.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    /// Whether the container has ended at `now`.
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        self.end.is_some_and(|end| now >= end)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            start: DateTime<Utc>,
            end: Option<DateTime<Utc>>,
        }
        let raw = Raw::deserialize(deserializer)?;
        Schedule::new(raw.start, raw.end).map_err(serde::de::Error::custom)
    }
}

/// Wake-on-LAN settings of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WolSettings {
    /// Wake the target computers when the container starts.
    pub wake: bool,
    /// Shut computers that were woken down after their last job.
    pub shutdown_after: bool,
    /// When the wake packets were sent; `None` until then.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sent_at: Option<DateTime<Utc>>,
}
