use std::fmt::{self, Write as _};
use std::ops::Range;

use ipnet::IpNet;

use super::{MAX_ENTRIES, MAX_INPUT_LEN};

/// A constraint that does not parse: what is wrong ([`ErrorKind`]) and where (a byte span of the
/// whole input).
///
/// `Display` names the mistake and the entry it is in; [`ParseError::render`] shows the input
/// with a caret line under the span.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::{ErrorKind, IpRanges};
///
/// let input = "10.0.0.0/8, 10.0.0.1/24";
/// let err = input.parse::<IpRanges>().unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::HostBitsSet { .. }));
/// assert_eq!(err.span(), 12..23);
/// assert_eq!(
///     err.to_string(),
///     "entry 2 `10.0.0.1/24`: host bits are set below the prefix length; did you mean `10.0.0.0/24`?"
/// );
/// assert_eq!(
///     err.render(input),
///     "entry 2 `10.0.0.1/24`: host bits are set below the prefix length; did you mean `10.0.0.0/24`?\n\
///      10.0.0.0/8, 10.0.0.1/24\n            ^^^^^^^^^^^"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    span: Range<usize>,
    entry: Option<EntryRef>,
}

/// The entry an error was found in: its 1-based number among the non-empty entries and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryRef {
    number: usize,
    text: String,
}

/// What is wrong with a constraint. One variant per distinct mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is longer than [`MAX_INPUT_LEN`] bytes.
    TooLong {
        /// The length of the input, in bytes.
        len: usize,
    },
    /// The input has more than [`MAX_ENTRIES`] non-empty entries; the span is the first one
    /// too many.
    TooManyEntries,
    /// The canonical form of the constraint would be longer than [`MAX_INPUT_LEN`] bytes (it can
    /// be longer than the input: `1:00` prints as `01:00`); the span is the entry at which it
    /// grows past the limit.
    CanonicalTooLong,
    /// `!` with nothing after it.
    EmptyNegation,
    /// A second `!` in one entry.
    DoubleNegation,
    /// Something follows a complete entry (the span is what follows).
    TrailingGarbage,

    /// An IP range with a prefix but no address (`/24`).
    MissingAddress,
    /// Text that is neither an IPv4 nor an IPv6 address.
    InvalidAddress,
    /// An IPv4 address with a leading zero in a part (`010.0.0.1`), which other tools read as
    /// octal.
    LeadingZeroInAddress,
    /// An IPv6 zone id (`fe80::1%eth0`): zones are local to one host and mean nothing to a server.
    ZoneId,
    /// A `/` with no prefix length after it.
    MissingPrefix,
    /// A prefix length that is not a plain decimal number (`/x`, `/+8`, `/-1`).
    InvalidPrefix,
    /// A prefix length with a leading zero (`/08`).
    LeadingZeroInPrefix,
    /// A prefix length above the family's maximum (32 for IPv4, 128 for IPv6).
    PrefixOutOfRange {
        /// The family's maximum prefix length.
        max: u8,
    },
    /// Address bits set below the prefix length (`192.168.2.3/24`); the network is the suggestion.
    HostBitsSet {
        /// The network the entry probably meant (`192.168.2.0/24`).
        network: IpNet,
    },

    /// A time-frame entry that starts with neither a day name nor a time.
    ExpectedDayOrTime,
    /// A word that is no English day name or three-letter abbreviation.
    UnknownDay,
    /// A `-` after a day with no day name after it (`MON-`).
    MissingDay,
    /// Text where a time `H:MM` or `HH:MM` belongs that is not one.
    InvalidTime,
    /// A time with seconds (`06:00:30`); windows have minute boundaries.
    SecondsNotAllowed,
    /// An hour above 23 (or 24 with minutes other than `00`).
    HourOutOfRange {
        /// The hour as written.
        hour: u8,
    },
    /// A minute above 59.
    MinuteOutOfRange {
        /// The minute as written.
        minute: u8,
    },
    /// `24:00` as the start of a window: it may only end one.
    StartAt24,
    /// A start time without `-` and an end time.
    MissingEnd,
    /// A window whose start equals its end (`12:00-12:00`), which would contain no instant.
    EmptyWindow,
}

impl ParseError {
    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte range of the mistake in the whole input (empty at the end of an entry when
    /// something is missing there).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The 1-based number of the entry with the mistake, counting non-empty entries; `None` for
    /// errors about the whole input.
    pub fn entry_number(&self) -> Option<usize> {
        self.entry.as_ref().map(|entry| entry.number)
    }

    /// The text of the entry with the mistake, trimmed; `None` for errors about the whole input.
    pub fn entry(&self) -> Option<&str> {
        self.entry.as_ref().map(|entry| entry.text.as_str())
    }

    /// Renders the message, then the input and a caret line under the span.
    ///
    /// `input` must be the text that was parsed. Long inputs are cut to a window around the span
    /// (marked with `...`); control characters (tabs too) are shown as spaces so the caret lines
    /// up.
    pub fn render(&self, input: &str) -> String {
        render_span(&self.to_string(), input, &self.span)
    }

    pub(crate) fn new(kind: ErrorKind, span: Range<usize>) -> Self {
        ParseError {
            kind,
            span,
            entry: None,
        }
    }

    pub(crate) fn in_entry(mut self, number: usize, text: &str) -> Self {
        self.entry = Some(EntryRef {
            number,
            text: text.to_owned(),
        });
        self
    }
}

/// `message`, then `input` and a caret line under `span`: long inputs are cut to a window around
/// the span (marked with `...`), and control characters (tabs too) are shown as spaces so that
/// the caret lines up.
pub(super) fn render_span(message: &str, input: &str, span: &Range<usize>) -> String {
    const CONTEXT: usize = 40;
    let start = floor_char_boundary(input, span.start.min(input.len()));
    let end = floor_char_boundary(input, span.end.clamp(start, input.len()));

    let before: Vec<char> = input[..start].chars().collect();
    let marked: Vec<char> = input[start..end].chars().collect();
    let after: Vec<char> = input[end..].chars().collect();
    let before_cut = before.len().saturating_sub(CONTEXT);
    let after_keep = after.len().min(CONTEXT);

    let mut line = String::new();
    let mut carets = String::new();
    if before_cut > 0 {
        line.push_str("...");
        carets.push_str("   ");
    }
    for &c in &before[before_cut..] {
        line.push(printable(c));
        carets.push(' ');
    }
    for &c in &marked {
        line.push(printable(c));
        carets.push('^');
    }
    if marked.is_empty() {
        carets.push('^');
    }
    line.extend(after[..after_keep].iter().map(|&c| printable(c)));
    if after_keep < after.len() {
        line.push_str("...");
    }
    format!("{message}\n{line}\n{carets}")
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(entry) = &self.entry {
            write!(f, "entry {} `", entry.number)?;
            // Control characters are escaped so the message stays on one line.
            for c in entry.text.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
            f.write_str("`: ")?;
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for ParseError {}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::TooLong { len } => write!(
                f,
                "the constraint is {len} bytes long; at most {MAX_INPUT_LEN} are allowed"
            ),
            ErrorKind::TooManyEntries => write!(
                f,
                "the constraint has more than {MAX_ENTRIES} entries; at most {MAX_ENTRIES} are allowed"
            ),
            ErrorKind::CanonicalTooLong => write!(
                f,
                "the constraint's canonical form grows past {MAX_INPUT_LEN} bytes here; \
                 at most {MAX_INPUT_LEN} are allowed"
            ),
            ErrorKind::EmptyNegation => f.write_str("`!` must be followed by what it negates"),
            ErrorKind::DoubleNegation => f.write_str("only one `!` is allowed per entry"),
            ErrorKind::TrailingGarbage => f.write_str("unexpected text after the entry"),
            ErrorKind::MissingAddress => f.write_str("an address is missing before the `/`"),
            ErrorKind::InvalidAddress => f.write_str("not an IPv4 or IPv6 address"),
            ErrorKind::LeadingZeroInAddress => f.write_str(
                "IPv4 address parts must not have leading zeros (they read as octal elsewhere)",
            ),
            ErrorKind::ZoneId => f.write_str("IPv6 zone ids (`%...`) are not allowed"),
            ErrorKind::MissingPrefix => f.write_str("a prefix length is missing after the `/`"),
            ErrorKind::InvalidPrefix => {
                f.write_str("the prefix length must be a plain decimal number")
            }
            ErrorKind::LeadingZeroInPrefix => {
                f.write_str("the prefix length must not have leading zeros")
            }
            ErrorKind::PrefixOutOfRange { max } => write!(
                f,
                "the prefix length is out of range; at most {max} for this address family"
            ),
            ErrorKind::HostBitsSet { network } => write!(
                f,
                "host bits are set below the prefix length; did you mean `{network}`?"
            ),
            ErrorKind::ExpectedDayOrTime => f.write_str(
                "expected a day (`MON`, `Monday`, `MON-FRI`) or a time range (`08:00-17:00`)",
            ),
            ErrorKind::UnknownDay => f.write_str(
                "unknown day; use `MON`..`SUN` or the full English name, e.g. `Monday`",
            ),
            ErrorKind::MissingDay => f.write_str("a day name is missing after the `-`"),
            ErrorKind::InvalidTime => f.write_str("expected a time as `H:MM` or `HH:MM`"),
            ErrorKind::SecondsNotAllowed => {
                f.write_str("times have no seconds; use `H:MM` or `HH:MM`")
            }
            ErrorKind::HourOutOfRange { hour } => write!(
                f,
                "hour {hour} is out of range; hours are 0 to 23, and `24:00` may end a window"
            ),
            ErrorKind::MinuteOutOfRange { minute } => write!(
                f,
                "minute {minute} is out of range; minutes are 00 to 59"
            ),
            ErrorKind::StartAt24 => {
                f.write_str("`24:00` may only end a window; start the next day at `00:00`")
            }
            ErrorKind::MissingEnd => f.write_str(
                "a time range needs an end: `START-END`, e.g. `08:00-17:00`",
            ),
            ErrorKind::EmptyWindow => f.write_str(
                "the window starts where it ends and would never match; \
                 use `00:00-24:00` or only the day for a whole day",
            ),
        }
    }
}

fn printable(c: char) -> char {
    if c.is_control() {
        ' '
    } else {
        c
    }
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}
