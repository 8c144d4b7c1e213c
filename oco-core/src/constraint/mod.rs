//! The two constraint languages of a delivery policy: agent IP ranges and time frames.
//!
//! Both are comma-separated lists typed by an administrator into one field. They are parsed once,
//! when saved, into typed values ([`IpRanges`], [`TimeFrames`]); evaluation works on those values
//! and cannot fail. Parse errors carry a kind and a byte span ([`ParseError`]) and can render the
//! input with a caret under the mistake.
//!
//! Shared rules of both languages:
//!
//! - Entries are separated by `,`; ASCII spaces and tabs around entries and tokens are ignored;
//!   empty entries are ignored.
//! - An entry may start with `!` (negation). `!` alone and `!!` are errors.
//! - The empty list is *no constraint*: everything is allowed.
//! - The **first entry that matches decides**: a plain entry allows, a negated one denies.
//! - When no entry matches, the verdict is *deny*, unless every entry is a negation; then it is
//!   *allow* (`!10.0.0.0/8` means "everything except 10/8"). OCO denies in that case too, which
//!   makes a list of negations useless; this crate deliberately differs.
//! - `Display` prints the canonical form, which `FromStr` accepts: `parse(display(x)) == x`.
//!   serde uses that string.
//! - Input is limited to [`MAX_INPUT_LEN`] bytes and [`MAX_ENTRIES`] entries, its canonical form
//!   to [`MAX_INPUT_LEN`] bytes.
//!
//! # Grammar
//!
//! The [`grammar`] module has both languages as a grammar, with an example of every production,
//! every error with its message, OCO's own examples and the deliberate differences from OCO.
//!
//! # Lint
//!
//! A list that parses can still not mean what it says: under first match, `10.0.0.0/8,
//! !10.66.0.0/16` gives the lab every job, since the negation never applies.
//! [`IpRanges::lint`], [`TimeFrames::lint`] and their `parse_linted` report such entries (never
//! applies, with the reordering that makes it apply; redundant) and lists that allow or deny
//! everything, as [`Finding`]s rendered like parse errors. They are exact: see [`Finding`].
//!
//! # Examples
//!
//! ```
//! use oco_core::constraint::{IpRanges, TimeFrames};
//! use oco_core::chrono::{NaiveDate, TimeZone};
//! use oco_core::chrono_tz::Europe::Berlin;
//!
//! let ranges: IpRanges = "10.2.0.0/16, !192.168.2.3, 192.168.2.0/24".parse()?;
//! assert!(ranges.allows("192.168.2.4".parse()?));
//! assert!(!ranges.allows("192.168.2.3".parse()?));
//!
//! let frames: TimeFrames = "Monday-Friday 8:00-17:00".parse()?;
//! assert_eq!(frames.to_string(), "MON-FRI 08:00-17:00");
//! // Wednesday 2026-11-25, 16:59:59 in Berlin.
//! let wednesday = Berlin.with_ymd_and_hms(2026, 11, 25, 16, 59, 59).unwrap().to_utc();
//! assert!(frames.allows_at(wednesday, Berlin));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod grammar;
#[cfg(feature = "proptest")]
pub mod strategy;
#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "arbitrary")]
mod arbitrary_impls;
mod construct;
mod error;
mod ip;
mod lint;
mod list;
mod time;

pub use construct::BuildError;
pub use error::{ErrorKind, ParseError};
pub use ip::{IpEntry, IpMatcher, IpRanges};
pub use lint::{lint_ip_entries, Finding, FindingKind};
pub use time::{DayRange, TimeFrame, TimeFrames, TimeWindow, WeekMatcher};

/// The longest constraint text accepted, in bytes (64 KiB).
pub const MAX_INPUT_LEN: usize = 64 * 1024;

/// The most (non-empty) entries one constraint may have.
pub const MAX_ENTRIES: usize = 4096;
