//! serde for [`chrono::Duration`] as a number of seconds, the one spelling of durations in every
//! serialised form of this crate's types (and the server's API, in and out).
//!
//! chrono's own serde writes a duration as its internal `[seconds, nanoseconds]` pair, which no
//! client should have to know. Here a whole number of seconds is a JSON integer (`30`), anything
//! else a fraction with up to nine decimals (`0.030129522`); both forms are read back, integers
//! and fractions alike. Use it with `#[serde(with = "oco_core::serde_seconds")]`, or
//! [`option`] for an `Option<Duration>`.
//!
//! # Examples
//!
//! ```
//! use oco_core::chrono::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Timeout {
//!     #[serde(with = "oco_core::serde_seconds")]
//!     after: Duration,
//! }
//!
//! let timeout = Timeout { after: Duration::milliseconds(1500) };
//! assert_eq!(serde_json::to_string(&timeout)?, r#"{"after":1.5}"#);
//! assert_eq!(serde_json::from_str::<Timeout>(r#"{"after":1.5}"#)?, timeout);
//! assert_eq!(serde_json::from_str::<Timeout>(r#"{"after":2}"#)?.after, Duration::seconds(2));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use chrono::Duration;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Writes `duration` as seconds: an integer when whole, else a fraction.
///
/// # Errors
///
/// The serializer's.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    let (seconds, nanos) = (duration.num_seconds(), duration.subsec_nanos());
    if nanos == 0 {
        serializer.serialize_i64(seconds)
    } else {
        // Exact to the nanosecond for spans below 2^22 s, about 48 days (an f64 has 53 bits);
        // longer ones lose nanoseconds, which no statistic that long needs.
        #[allow(clippy::cast_precision_loss)]
        let value = seconds as f64 + f64::from(nanos) / 1e9;
        serializer.serialize_f64(value)
    }
}

/// Reads seconds, an integer or a fraction (rounded to the nanosecond).
///
/// # Errors
///
/// A value that is not a finite number, or outside chrono's range (about ±292 million years).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(SecondsVisitor)
}

/// The same for an `Option<Duration>` (`null` is `None`).
pub mod option {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `null` or seconds as [`super::serialize`] does.
    ///
    /// # Errors
    ///
    /// The serializer's.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` or seconds as [`super::deserialize`] does.
    ///
    /// # Errors
    ///
    /// As [`super::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Seconds(#[serde(with = "super")] Duration);
        Ok(Option::<Seconds>::deserialize(deserializer)?.map(|Seconds(duration)| duration))
    }
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds")
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        Duration::try_seconds(seconds)
            .ok_or_else(|| E::custom(format!("{seconds} seconds is out of range")))
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        i64::try_from(seconds)
            .map_err(|_| E::custom(format!("{seconds} seconds is out of range")))
            .and_then(|seconds| self.visit_i64(seconds))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        let out_of_range = || E::custom(format!("{seconds} seconds is out of range"));
        // chrono's limit is i64::MAX milliseconds; checking against it in f64 first makes the
        // casts below exact truncations of values that fit.
        let limit = 9.2e15;
        if !seconds.is_finite() || seconds.abs() >= limit {
            return Err(out_of_range());
        }
        let whole = seconds.trunc();
        #[allow(clippy::cast_possible_truncation)] // |whole| < 9.2e15 < i64::MAX, checked above
        let whole_seconds = whole as i64;
        #[allow(clippy::cast_possible_truncation)] // |fraction| < 1, so |nanos| <= 1e9
        let nanos = ((seconds - whole) * 1e9).round() as i64;
        debug_assert!(nanos.abs() <= NANOS_PER_SECOND);
        Duration::try_seconds(whole_seconds)
            .and_then(|duration| duration.checked_add(&Duration::nanoseconds(nanos)))
            .ok_or_else(out_of_range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        d: Duration,
        #[serde(with = "super::option")]
        o: Option<Duration>,
    }

    fn json(d: Duration, o: Option<Duration>) -> String {
        serde_json::to_string(&Holder { d, o }).unwrap()
    }

    #[test]
    fn seconds_in_and_out() {
        assert_eq!(json(Duration::seconds(30), None), r#"{"d":30,"o":null}"#);
        assert_eq!(
            json(Duration::nanoseconds(30_129_522), Some(Duration::hours(1))),
            r#"{"d":0.030129522,"o":3600}"#
        );
        assert_eq!(
            json(Duration::milliseconds(-1500), None),
            r#"{"d":-1.5,"o":null}"#
        );
        let read = |text: &str| serde_json::from_str::<Holder>(text).map_err(|e| e.to_string());
        assert_eq!(
            read(r#"{"d":0.25,"o":7}"#),
            Ok(Holder {
                d: Duration::milliseconds(250),
                o: Some(Duration::seconds(7))
            })
        );
        assert!(read(r#"{"d":[0,30129522],"o":null}"#)
            .unwrap_err()
            .contains("expected a number of seconds"));
        assert!(read(r#"{"d":"30","o":null}"#).is_err());
        assert!(read(r#"{"d":1e300,"o":null}"#)
            .unwrap_err()
            .contains("out of range"));
        assert!(read(r#"{"d":18446744073709551615,"o":null}"#)
            .unwrap_err()
            .contains("out of range"));
    }

    proptest! {
        /// Spans up to 40 days keep every nanosecond through JSON.
        #[test]
        fn round_trip(nanos in -3_456_000_000_000_000_i64..3_456_000_000_000_000) {
            let d = Duration::nanoseconds(nanos);
            let back: Holder = serde_json::from_str(&json(d, Some(d))).unwrap();
            prop_assert_eq!(back, Holder { d, o: Some(d) });
        }
    }
}
