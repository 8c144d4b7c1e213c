//! `result.timestamp`: each agent's replies strictly increase, across restarts and whichever
//! server process answers.
//!
//! Each computer's credentials hold a *reservation*,
//! [`AgentCredentials::last_reply`](oco_core::store::AgentCredentials::last_reply): a value at
//! least as large as every reply sent to its agent, durable before any reply it covers is sent.
//! A reply gets [`next_reply`]`(now, …)`, above the reservation or above the last reply this
//! process sent under its own reservation. When a reply would pass the reservation, the request
//! writes a new one, [`RESERVE_MICROS`] beyond the reply, compare-and-set with the rest of the
//! credentials in the commit that precedes the reply: two processes (or a hello racing a report)
//! cannot both extend it, the loser reads again and replies above the winner's reservation. A
//! reply under a reservation this process wrote, and nobody replaced since, needs no write
//! ([`Replies`]): an agent's progress reports right after its hello cost no extra write.
//!
//! After a restart, the first reply is `max(now, reservation + 1 µs)`: at most [`RESERVE_MICROS`] ahead
//! of the wall clock. The agent compares replies only with the last one it accepted, so nothing
//! needs to increase across agents.
//!
//! Every timestamp is a whole number of microseconds whose last digit is not 0, so its shortest
//! decimal form (what `serde_json` writes and what the agent writes back to its timestamp file)
//! always has exactly six decimals. The agent rewrites that file without truncating it: a shorter
//! form would leave digits of the previous one behind, and a fresh agent process would read a
//! larger value than the server sent and refuse the next replies.

use std::collections::HashMap;
use std::sync::Mutex;

use oco_core::chrono::{DateTime, Utc};
use oco_core::model::ComputerId;

/// The timestamp of the next reply to an agent whose last reply was `last`, at `now`: the first
/// microsecond at or after `max(now, last + 1 µs)` whose last digit is not 0.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::timestamp::next_reply;
/// use oco_core::chrono::{TimeZone, Utc};
///
/// let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
/// // The wall clock, moved off a last digit of 0 so that six decimals are written.
/// assert_eq!(next_reply(now, None), 1_700_000_000.000_001);
/// // Above the last reply when that is ahead of the clock.
/// assert_eq!(next_reply(now, Some(1_700_000_005.25)), 1_700_000_005.250_001);
/// ```
pub fn next_reply(now: DateTime<Utc>, last: Option<f64>) -> f64 {
    let after_last = last.map_or(i64::MIN, |last| micros(last).saturating_add(1));
    let mut micros = now.timestamp_micros().max(after_last);
    if micros % 10 == 0 {
        micros += 1;
    }
    seconds(micros)
}

/// Whole microseconds as seconds: exact (the nearest `f64`) for timestamps of this era, far
/// below 2^53 microseconds.
fn seconds(micros: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let seconds = micros as f64 / 1e6;
    seconds
}

/// How far (microseconds: half a second) a reservation reaches beyond the reply that wrote it: the
/// most a first reply after a restart can be ahead of the wall clock.
pub const RESERVE_MICROS: i64 = 500_000;

/// Computers whose reservation this process remembers before it forgets those that have passed
/// (and, if that is not enough, all of them: a forgotten reservation only costs a write).
const REMEMBERED: usize = 10_000;

/// What the next reply to an agent needs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub enum NextReply {
    /// Send this timestamp; the stored reservation already covers it.
    Covered(f64),
    /// Store `reserve` as the computer's reservation, then send `reply`.
    Reserve {
        /// The timestamp to send.
        reply: f64,
        /// The new reservation.
        reserve: f64,
    },
}

/// The reservations this process wrote and the last reply it sent under each, per computer.
///
/// It remembers at most 10,000 computers; past that it forgets the reservations that have
/// passed, and if that is not enough, all of them (a forgotten reservation costs only a write).
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::timestamp::{NextReply, Replies};
/// use oco_core::chrono::{TimeZone, Utc};
/// use oco_core::model::ComputerId;
///
/// let replies = Replies::default();
/// let pc = ComputerId(1);
/// let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
/// // Nothing stored by this process yet: the reply needs a new reservation, written first.
/// let NextReply::Reserve { reply, reserve } = replies.next(pc, now, None) else {
///     unreachable!("a reservation is needed");
/// };
/// replies.stored(pc, reply, reserve, now);
/// // The next reply is under that reservation: no write.
/// assert_eq!(
///     replies.next(pc, now, Some(reserve)),
///     NextReply::Covered(1_700_000_000.000_002)
/// );
/// ```
#[derive(Debug, Default)]
pub struct Replies {
    reserved: Mutex<HashMap<ComputerId, Reserved>>,
}

#[derive(Debug, Clone, Copy)]
struct Reserved {
    /// The reservation this process stored.
    until: f64,
    /// The last reply this process sent under it.
    sent: f64,
}

impl Replies {
    /// The next reply to `computer`'s agent at `now`, whose stored reservation is `stored` (as
    /// read by this request). `Covered` only when `stored` is the reservation this process wrote
    /// last; the value is then taken (a later call gets a larger one).
    pub fn next(&self, computer: ComputerId, now: DateTime<Utc>, stored: Option<f64>) -> NextReply {
        let mut reserved = self.lock();
        if let Some(mine) = reserved.get_mut(&computer) {
            if Some(mine.until) == stored {
                let reply = next_reply(now, Some(mine.sent));
                if reply <= mine.until {
                    mine.sent = reply;
                    return NextReply::Covered(reply);
                }
            }
        }
        let (reply, reserve) = Self::reserve(now, stored);
        NextReply::Reserve { reply, reserve }
    }

    /// A reply above `stored` and a new reservation beyond it (`(reply, reserve)`), whatever this
    /// process remembers: what a request that writes the credentials anyway (a hello) takes.
    pub fn reserve(now: DateTime<Utc>, stored: Option<f64>) -> (f64, f64) {
        let reply = next_reply(now, stored);
        (reply, seconds(micros(reply) + RESERVE_MICROS))
    }

    /// Notes that `reserve` is now `computer`'s stored reservation and `reply` was sent under it.
    pub fn stored(&self, computer: ComputerId, reply: f64, reserve: f64, now: DateTime<Utc>) {
        let mut reserved = self.lock();
        if reserved.len() >= REMEMBERED && !reserved.contains_key(&computer) {
            let now = epoch_seconds(now);
            reserved.retain(|_, mine| mine.until > now);
            if reserved.len() >= REMEMBERED {
                reserved.clear();
            }
        }
        reserved.insert(
            computer,
            Reserved {
                until: reserve,
                sent: reply,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ComputerId, Reserved>> {
        self.reserved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Seconds since the epoch, with fractions: `at` as the agent's timestamps count.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::timestamp::epoch_seconds;
/// use oco_core::chrono::{TimeZone, Utc};
///
/// let at = Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap();
/// assert_eq!(epoch_seconds(at), 1_700_000_000.5);
/// ```
pub fn epoch_seconds(at: DateTime<Utc>) -> f64 {
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

    #[test]
    fn replies_under_this_process_reservation_need_no_write() {
        let replies = Replies::default();
        let pc = ComputerId(1);
        let now = Utc.timestamp_opt(1_764_849_600, 0).unwrap();
        let NextReply::Reserve { reply, reserve } = replies.next(pc, now, None) else {
            panic!("nothing stored yet: a reservation is needed");
        };
        assert_eq!(
            (reply, reserve),
            (1_764_849_600.000_001, 1_764_849_600.500_001)
        );
        // Until stored, nothing is covered.
        assert!(matches!(
            replies.next(pc, now, None),
            NextReply::Reserve { .. }
        ));
        replies.stored(pc, reply, reserve, now);
        let covered = |at: DateTime<Utc>, stored| match replies.next(pc, at, stored) {
            NextReply::Covered(t) => Some(t),
            NextReply::Reserve { .. } => None,
        };
        assert_eq!(covered(now, Some(reserve)), Some(1_764_849_600.000_002));
        assert_eq!(covered(now, Some(reserve)), Some(1_764_849_600.000_003));
        let later = now + oco_core::chrono::Duration::milliseconds(300);
        assert_eq!(covered(later, Some(reserve)), Some(1_764_849_600.300_001));
        // Past the reservation, or another process's reservation stored: write again.
        let past = now + oco_core::chrono::Duration::milliseconds(600);
        assert_eq!(covered(past, Some(reserve)), None);
        let theirs = 1_764_849_601.500_001;
        assert_eq!(covered(later, Some(theirs)), None);
        assert_eq!(
            replies.next(pc, later, Some(theirs)),
            NextReply::Reserve {
                reply: 1_764_849_601.500_002,
                reserve: 1_764_849_602.000_002,
            }
        );
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
