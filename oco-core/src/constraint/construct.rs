//! Constraints built in code rather than parsed: the error of their constructors and the list
//! limits they share with the parser.

use std::fmt::{self, Write as _};

use super::list::LengthCounter;
use super::{MAX_ENTRIES, MAX_INPUT_LEN};

/// Why a constraint value built in code (not parsed) was refused.
///
/// The constructors ([`IpRanges::from_entries`](super::IpRanges::from_entries),
/// [`TimeFrames::from_entries`](super::TimeFrames::from_entries),
/// [`TimeFrame::new`](super::TimeFrame::new), [`TimeWindow::new`](super::TimeWindow::new)) accept
/// exactly the values the parser can produce, so every value prints as text that parses back to
/// it.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::{BuildError, TimeWindow};
///
/// let err = TimeWindow::new(720, 720).unwrap_err();
/// assert_eq!(err, BuildError::EmptyWindow { minute: 720 });
/// assert_eq!(
///     err.to_string(),
///     "the window starts where it ends (12:00) and would never match; \
///      leave the window out for a whole day"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The list has more than [`MAX_ENTRIES`] entries.
    TooManyEntries {
        /// The number of entries given.
        count: usize,
    },
    /// The list's canonical form (its `Display`) is longer than [`MAX_INPUT_LEN`] bytes, so it
    /// could not be parsed back.
    CanonicalTooLong {
        /// The length of the canonical form, in bytes.
        len: usize,
    },
    /// A window start that is not a minute of the day, `0..=1439`.
    StartOutOfRange {
        /// The start given, in minutes from midnight.
        minute: u16,
    },
    /// A window end that is neither a minute of the day nor the end of the day, `0..=1440`.
    EndOutOfRange {
        /// The end given, in minutes from midnight.
        minute: u16,
    },
    /// A window whose start equals its end, which would contain no instant.
    EmptyWindow {
        /// The start (and end), in minutes from midnight.
        minute: u16,
    },
    /// A time frame with neither days nor a window.
    EmptyFrame,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::TooManyEntries { count } => write!(
                f,
                "the list has {count} entries; at most {MAX_ENTRIES} are allowed"
            ),
            BuildError::CanonicalTooLong { len } => write!(
                f,
                "the list's canonical form is {len} bytes long; at most {MAX_INPUT_LEN} are allowed"
            ),
            BuildError::StartOutOfRange { minute } => write!(
                f,
                "a window starts at minute 0 to 1439 of the day (00:00 to 23:59), not at {minute}"
            ),
            BuildError::EndOutOfRange { minute } => write!(
                f,
                "a window ends at minute 0 to 1440 of the day (00:00 to 24:00), not at {minute}"
            ),
            BuildError::EmptyWindow { minute } => write!(
                f,
                "the window starts where it ends ({:02}:{:02}) and would never match; \
                 leave the window out for a whole day",
                minute / 60,
                minute % 60
            ),
            BuildError::EmptyFrame => {
                f.write_str("a time frame needs days, a window or both; it has neither")
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Checks `entries` against the limits a parsed list obeys: at most [`MAX_ENTRIES`] entries and
/// a canonical form (entries joined by `", "`) of at most [`MAX_INPUT_LEN`] bytes.
pub(super) fn check_list_limits<T: fmt::Display>(entries: &[T]) -> Result<(), BuildError> {
    if entries.len() > MAX_ENTRIES {
        return Err(BuildError::TooManyEntries {
            count: entries.len(),
        });
    }
    let len = canonical_len(entries);
    if len > MAX_INPUT_LEN {
        return Err(BuildError::CanonicalTooLong { len });
    }
    Ok(())
}

/// The length in bytes of the canonical form of a list of `entries`.
fn canonical_len<T: fmt::Display>(entries: &[T]) -> usize {
    let separators = entries.len().saturating_sub(1) * ", ".len();
    separators + entries.iter().map(display_len).sum::<usize>()
}

/// The length in bytes of `value`'s `Display`, without allocating it.
fn display_len(value: &impl fmt::Display) -> usize {
    let mut counter = LengthCounter(0);
    // Writing into a counter cannot fail.
    let _ = write!(counter, "{value}");
    counter.0
}

/// Shortens `entries` to the longest prefix within the list limits: at most [`MAX_ENTRIES`]
/// entries and a canonical form of at most [`MAX_INPUT_LEN`] bytes.
#[cfg(any(feature = "arbitrary", feature = "proptest"))]
pub(super) fn truncate_to_limits<T: fmt::Display>(entries: &mut Vec<T>) {
    entries.truncate(MAX_ENTRIES);
    let mut len = 0;
    for (i, entry) in entries.iter().enumerate() {
        len += display_len(entry) + if i == 0 { 0 } else { ", ".len() };
        if len > MAX_INPUT_LEN {
            entries.truncate(i);
            return;
        }
    }
}
