//! The delivery policy as requests give it: constraints as text, parsed with their positions.

use oco_core::chrono_tz::Tz;
use oco_core::constraint::{Finding, FindingKind, IpRanges, TimeFrames};
use oco_core::model::{DeliveryPolicy, Priority, SequenceMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Position};
use super::patch::null_is_default;

/// A delivery policy in a request, and its editable form. Absent or `null` fields take the
/// defaults of a new policy; an absent or `null` `time_zone` is the server's default zone.
/// `post_action_timeout` absent is 5 minutes, `null` disables post actions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeliveryPolicyInput)]
pub(crate) struct PolicyInput {
    /// Higher is delivered first; absent or `null`: 0.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable, minimum = -100, maximum = 100)]
    priority: i64,
    /// What a failed job means for the computer's later jobs of the origin; absent or `null`:
    /// `ignore-failed`.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    sequence_mode: SequenceMode,
    /// Agent addresses the jobs may be delivered to (`!10.66.0.0/16, 10.0.0.0/8`); absent,
    /// `null` or empty: every address.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable, example = "10.0.0.0/8")]
    ip_ranges: String,
    /// Local times at which the jobs may be delivered (`MON-FRI 18:00-06:00`); absent, `null`
    /// or empty: always.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable, example = "MON-FRI 18:00-06:00")]
    time_frames: String,
    /// The IANA zone `time_frames` are read in; absent or `null`: the server's `--time-zone`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "Europe/Berlin")]
    time_zone: Option<Tz>,
    /// Minutes the agent waits before a restart or shutdown post action. Absent: 5 minutes;
    /// `null`: post actions disabled.
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
    /// The policy, in `zone` unless the input names one, and what the constraint lint found in
    /// it; errors and warnings name `field.<name>`.
    ///
    /// # Errors
    ///
    /// 400 for a priority out of range or a constraint that does not parse (with its position).
    pub(crate) fn into_policy(
        self,
        zone: Tz,
        field: &str,
    ) -> Result<(DeliveryPolicy, Vec<Warning>), ApiError> {
        let priority = Priority::new(self.priority).map_err(|e| ApiError::from(e.within(field)))?;
        let ip_field = format!("{field}.ip_ranges");
        let (ip_ranges, ip_findings) = IpRanges::parse_linted(&self.ip_ranges)
            .map_err(|error| ApiError::constraint(ip_field.clone(), &self.ip_ranges, &error))?;
        let time_field = format!("{field}.time_frames");
        let (time_frames, time_findings) = TimeFrames::parse_linted(&self.time_frames)
            .map_err(|error| ApiError::constraint(time_field.clone(), &self.time_frames, &error))?;
        let warnings = ip_findings
            .iter()
            .map(|finding| Warning::new(&ip_field, &self.ip_ranges, finding))
            .chain(
                time_findings
                    .iter()
                    .map(|finding| Warning::new(&time_field, &self.time_frames, finding)),
            )
            .collect();
        let policy = DeliveryPolicy {
            priority,
            sequence_mode: self.sequence_mode,
            ip_ranges,
            time_frames,
            time_zone: self.time_zone.unwrap_or(zone),
            post_action_timeout: self.post_action_timeout,
        };
        Ok((policy, warnings))
    }
}

/// The policy `input` describes, or a new one in `zone` when there is none (left out or `null`),
/// with the lint's warnings.
///
/// # Errors
///
/// As [`PolicyInput::into_policy`].
pub(crate) fn policy_or_default(
    input: Option<PolicyInput>,
    zone: Tz,
    field: &str,
) -> Result<(DeliveryPolicy, Vec<Warning>), ApiError> {
    match input {
        Some(policy) => policy.into_policy(zone, field),
        None => Ok((DeliveryPolicy::new(zone), Vec::new())),
    }
}

/// A finding of the constraint lint, returned beside a container or rule that was saved: the
/// write happened, but the constraint cannot mean what it says (see
/// [`oco_core::constraint::Finding`]). Shaped as the errors of a constraint that does not parse.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Warning {
    /// The field, e.g. `policy.ip_ranges`.
    field: String,
    /// `shadowed`, `redundant`, `allows-everything` or `denies-everything`.
    kind: &'static str,
    /// What the finding is, for a person.
    message: String,
    /// The 1-based number of the entry concerned; absent for a finding about the whole list.
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<usize>,
    /// The entry's (or the whole text's) byte span in the field's text.
    position: Position,
    /// The message, the text and a caret line under the span.
    rendered: String,
}

impl Warning {
    /// The warning for `finding` in `field`, whose text is `text`.
    pub(crate) fn new(field: &str, text: &str, finding: &Finding) -> Warning {
        let span = finding.span();
        Warning {
            field: field.to_owned(),
            kind: match finding.kind() {
                FindingKind::Shadowed { .. } => "shadowed",
                FindingKind::Redundant => "redundant",
                FindingKind::AllowsEverything => "allows-everything",
                FindingKind::DeniesEverything => "denies-everything",
                // A kind added to the lint later.
                _ => "lint",
            },
            message: finding.to_string(),
            entry: finding.entry_number(),
            position: Position {
                start: span.start,
                end: span.end,
            },
            rendered: finding.render(text),
        }
    }
}
