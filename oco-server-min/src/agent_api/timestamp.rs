//! `result.timestamp`: each agent's replies strictly increase, across restarts and whichever
//! server process answers.
//!
//! A reply to a computer's agent gets [`next_reply`]`(now, last)`, where `last` is the computer's
//! [`AgentCredentials::last_reply`](oco_core::store::AgentCredentials::last_reply). The new value
//! is written, compare-and-set with the rest of the computer's credentials, in the commit that
//! precedes the reply, so a reply is never sent before its timestamp is durable, and two
//! replies to one agent (two processes, or a hello racing a report) cannot get the same value:
//! the second commit conflicts and is computed again.
//!
//! The agent compares replies only with the last one it accepted, so nothing needs to increase
//! across agents: a timestamp is the wall clock unless that agent's last reply is ahead of it.
//!
//! Every timestamp is a whole number of microseconds whose last digit is not 0, so its shortest
//! decimal form (what `serde_json` writes and what the agent writes back to its timestamp file)
//! always has exactly six decimals. The agent rewrites that file without truncating it: a shorter
//! form would leave digits of the previous one behind, and a fresh agent process would read a
//! larger value than the server sent and refuse the next replies.

use oco_core::chrono::{DateTime, Utc};

/// The timestamp of the next reply to an agent whose last reply was `last`, at `now`: the first
/// microsecond at or after `max(now, last + 1 µs)` whose last digit is not 0.
pub(crate) fn next_reply(now: DateTime<Utc>, last: Option<f64>) -> f64 {
    let after_last = last.map_or(i64::MIN, |last| micros(last).saturating_add(1));
    let mut micros = now.timestamp_micros().max(after_last);
    if micros % 10 == 0 {
        micros += 1;
    }
    // Exact: timestamps of this era are far below 2^53 microseconds.
    #[allow(clippy::cast_precision_loss)]
    let seconds = micros as f64 / 1e6;
    seconds
}

/// Seconds since the epoch, with fractions.
pub(crate) fn epoch_seconds(at: DateTime<Utc>) -> f64 {
    // Exact: f64 holds microseconds exactly for the next few centuries.
    #[allow(clippy::cast_precision_loss)]
    let seconds = at.timestamp_micros() as f64 / 1e6;
    seconds
}

/// A stored timestamp in whole microseconds (saturating: a corrupt value cannot overflow).
fn micros(seconds: f64) -> i64 {
    // `as` saturates, and NaN becomes 0; stored timestamps are finite and in range.
    #[allow(clippy::cast_possible_truncation)]
    let micros = (seconds * 1e6).round() as i64;
    micros
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

    use oco_core::chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    /// What the agent writes to its timestamp file: Python's `str(float)`, the shortest form
    /// that reads back as the same float, which is also what `serde_json` writes.
    fn agent_text(timestamp: f64) -> String {
        serde_json::to_string(&timestamp).unwrap()
    }

    #[test]
    fn the_wall_clock_unless_the_last_reply_is_ahead() {
        let now = Utc.timestamp_opt(1_764_849_600, 123_456_000).unwrap();
        assert_eq!(next_reply(now, None), 1_764_849_600.123_456);
        assert_eq!(
            next_reply(now, Some(1_764_849_000.5)),
            1_764_849_600.123_456
        );
        assert_eq!(
            next_reply(now, Some(1_764_849_600.123_456)),
            1_764_849_600.123_457
        );
        assert_eq!(
            next_reply(now, Some(1_764_849_700.000_008)),
            1_764_849_700.000_009
        );
        // A last digit of 0 is skipped.
        assert_eq!(
            next_reply(now, Some(1_764_849_700.000_009)),
            1_764_849_700.000_011
        );
        let round = Utc.timestamp_opt(1_764_849_600, 0).unwrap();
        assert_eq!(next_reply(round, None), 1_764_849_600.000_001);
        assert_eq!(agent_text(next_reply(round, None)), "1764849600.000001");
    }

    proptest! {
        /// For all clocks and last replies: the next reply is greater than the last one, at
        /// least the clock, and written with exactly six decimals.
        #[test]
        fn replies_increase_and_keep_one_width(
            now_micros in 1_000_000_000_000_000_i64..4_000_000_000_000_000,
            last_micros in proptest::option::of(1_000_000_000_000_000_i64..4_000_000_000_000_000),
        ) {
            let now = DateTime::from_timestamp_micros(now_micros).unwrap();
            #[allow(clippy::cast_precision_loss)]
            let last = last_micros.map(|m| m as f64 / 1e6);
            let next = next_reply(now, last);
            prop_assert!(last.is_none_or(|last| next > last));
            prop_assert!(next >= epoch_seconds(now));
            let text = agent_text(next);
            prop_assert_eq!(text.len(), 17, "{}", text);
            prop_assert_eq!(text.find('.'), Some(10), "{}", text);
            prop_assert_eq!(text.parse::<f64>().unwrap(), next);
        }
    }
}
