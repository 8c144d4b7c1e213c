//! [`Arbitrary`] for the constraint types (feature `arbitrary`), for structure-aware fuzzing.
//!
//! Every value generated is one the parser can produce: networks normalised as
//! [`IpEntry::new`] does, windows never empty, entries never without both days and window, and
//! lists within [`MAX_ENTRIES`] entries and a canonical form of
//! [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN) bytes. The
//! choices lean towards the edges (`/0`, host prefixes, IPv4-mapped networks, `00:00`, `24:00`,
//! windows across midnight, single days, wrapping day ranges) and towards short lists; a long
//! list is a rare choice that a few bytes reach (one entry and its variations up to the limits).
//!
//! An empty input gives the empty list, and a shorter input never fails: missing bytes read as
//! zeros, as [`Unstructured`] does.

use std::fmt;

use arbitrary::{size_hint, Arbitrary, Error, Result, Unstructured};
use chrono::Weekday;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::construct::truncate_to_limits;
use super::ip::MAPPED;
use super::time::{MINUTES_PER_DAY as DAY, WEEK};
use super::{DayRange, IpEntry, IpRanges, TimeFrame, TimeFrames, TimeWindow, MAX_ENTRIES};

impl<'a> Arbitrary<'a> for IpRanges {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let entries = arbitrary_list::<IpEntry>(u)?;
        // The list is within the limits already; a refusal would be a bug here, not a panic.
        IpRanges::from_entries(entries).map_err(|_| Error::IncorrectFormat)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        list_size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for IpEntry {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let negated = bool::arbitrary(u)?;
        let network = match u.int_in_range(0u8..=7)? {
            0 | 1 => v4(u32::arbitrary(u)?, prefix_len(u, 0, 32)?),
            // Inside 10.0.0.0/16 with long prefixes, so that entries of a list nest and overlap.
            2 => v4(
                0x0a00_0000 | u32::from(u16::arbitrary(u)?),
                prefix_len(u, 16, 32)?,
            ),
            3 | 4 => v6(u128::arbitrary(u)?, prefix_len(u, 0, 128)?),
            5 => v6(
                0x2001_0db8 << 96 | u128::from(u16::arbitrary(u)?),
                prefix_len(u, 112, 128)?,
            ),
            // IPv4-mapped IPv6, which `IpEntry::new` normalises to IPv4 (`/96` is `0.0.0.0/0`).
            6 => v6(
                MAPPED | u128::from(u32::arbitrary(u)?),
                prefix_len(u, 96, 128)?,
            ),
            // Around the IPv4-mapped block with prefixes shorter than /96: these stay IPv6.
            _ => v6(
                MAPPED | u128::from(u32::arbitrary(u)?),
                prefix_len(u, 64, 95)?,
            ),
        }?;
        Ok(IpEntry::new(network, negated))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        // Negation, family, an address of 2 to 16 bytes, a prefix length of 1 or 2.
        (1 + 1 + 2 + 1, Some(1 + 1 + 16 + 2))
    }
}

impl<'a> Arbitrary<'a> for TimeFrames {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let entries = arbitrary_list::<TimeFrame>(u)?;
        // The list is within the limits already; a refusal would be a bug here, not a panic.
        TimeFrames::from_entries(entries).map_err(|_| Error::IncorrectFormat)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        list_size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for TimeFrame {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let negated = bool::arbitrary(u)?;
        let (days, window) = match u.int_in_range(0u8..=3)? {
            0 | 1 => (
                Some(DayRange::arbitrary(u)?),
                Some(TimeWindow::arbitrary(u)?),
            ),
            2 => (None, Some(TimeWindow::arbitrary(u)?)),
            _ => (Some(DayRange::arbitrary(u)?), None),
        };
        TimeFrame::new(days, window, negated).map_err(|_| Error::IncorrectFormat)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        let days = DayRange::size_hint(depth);
        let window = TimeWindow::size_hint(depth);
        size_hint::and(
            (2, Some(2)),
            size_hint::or_all(&[size_hint::and(days, window), days, window]),
        )
    }
}

impl<'a> Arbitrary<'a> for DayRange {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let first = weekday(u)?;
        // A single day a quarter of the time; otherwise any day, so a quarter of the ranges wrap
        // over the weekend (`FRI-MON`).
        let last = if u.ratio(1u8, 4)? { first } else { weekday(u)? };
        Ok(DayRange::new(first, last))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (2, Some(3))
    }
}

impl<'a> Arbitrary<'a> for TimeWindow {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let start = match u.int_in_range(0u8..=7)? {
            0 => 0,
            1..=3 => 60 * u16::from(u.int_in_range(0u8..=23)?),
            _ => u.int_in_range(0..=DAY - 1)?,
        };
        let end = match u.int_in_range(0u8..=7)? {
            // `24:00`.
            0 => DAY,
            // `00:00`, which crosses midnight.
            1 if start != 0 => 0,
            2 | 3 => match 60 * u16::from(u.int_in_range(0u8..=24)?) {
                hour if hour == start => DAY,
                hour => hour,
            },
            // Any end but the start, 00:00 to 24:00.
            _ => match u.int_in_range(0..=DAY - 1)? {
                end if end >= start => end + 1,
                end => end,
            },
        };
        TimeWindow::new(start, end).map_err(|_| Error::IncorrectFormat)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        // Per end, a choice and up to two bytes of minutes.
        (2, Some(6))
    }
}

/// An entry of a list, with the variations a long list is made of.
trait ListEntry: for<'a> Arbitrary<'a> + fmt::Display {
    /// The `index`th variation of `self`; `pattern` says which variations are negated.
    fn variation(&self, index: usize, pattern: u8) -> Self;
}

impl ListEntry for IpEntry {
    /// The `index`th network of the same size after this one (wrapping in its family).
    fn variation(&self, index: usize, pattern: u8) -> Self {
        let negated = self.is_negated() ^ flips(index, pattern);
        let network = self.network();
        let host_bits = u32::from(network.max_prefix_len() - network.prefix_len());
        let step = u128::try_from(index)
            .ok()
            .and_then(|index| index.checked_shl(host_bits))
            .unwrap_or(0);
        let varied = match network {
            IpNet::V4(net) => {
                // Truncation intended: the step wraps within IPv4.
                #[allow(clippy::cast_possible_truncation)]
                let step = step as u32;
                v4(
                    u32::from(net.network()).wrapping_add(step),
                    net.prefix_len(),
                )
            }
            IpNet::V6(net) => v6(
                u128::from(net.network()).wrapping_add(step),
                net.prefix_len(),
            ),
        };
        // An IPv6 variation may land in the mapped block; `new` normalises it.
        IpEntry::new(varied.unwrap_or(network), negated)
    }
}

impl ListEntry for TimeFrame {
    /// The window moved `index` minutes later and the days `index` days later.
    fn variation(&self, index: usize, pattern: u8) -> Self {
        let negated = self.is_negated() ^ flips(index, pattern);
        let shift = u16::try_from(index % usize::from(DAY)).unwrap_or(0);
        let days = self.days().map(|days| {
            let turn = |day: Weekday| WEEK[(day.num_days_from_monday() as usize + index) % 7];
            DayRange::new(turn(days.first()), turn(days.last()))
        });
        let window = self.window().map(|window| {
            let start = (window.start_minute() + shift) % DAY;
            let end = (window.end_minute() + shift) % DAY;
            // Moving `00:00-24:00` makes start and end equal; keep such a window.
            TimeWindow::new(start, end).unwrap_or(window)
        });
        TimeFrame::new(days, window, negated).unwrap_or(*self)
    }
}

/// Whether the `index`th variation flips the negation, by the bits of `pattern`.
fn flips(index: usize, pattern: u8) -> bool {
    pattern >> (index % 8) & 1 == 1
}

/// Lists up to [`SHORT_LIST`] entries three times out of four; otherwise as many entries as the
/// input has bytes for, or (one time in sixteen) a long list of variations of one entry, up to
/// exactly [`MAX_ENTRIES`] half of those times. Cut to the limits either way.
fn arbitrary_list<T: ListEntry>(u: &mut Unstructured<'_>) -> Result<Vec<T>> {
    const SHORT_LIST: usize = 8;
    let mut entries = Vec::new();
    match u.int_in_range(0u8..=15)? {
        0..=11 => {
            let len = u.arbitrary_len::<T>()?.min(SHORT_LIST);
            for _ in 0..len {
                entries.push(T::arbitrary(u)?);
            }
        }
        12..=14 => {
            let len = u.arbitrary_len::<T>()?.min(MAX_ENTRIES);
            for _ in 0..len {
                entries.push(T::arbitrary(u)?);
            }
        }
        _ => {
            let len = if bool::arbitrary(u)? {
                MAX_ENTRIES
            } else {
                u.int_in_range(0..=MAX_ENTRIES)?
            };
            let seed = T::arbitrary(u)?;
            let pattern = u8::arbitrary(u)?;
            entries.extend((0..len).map(|index| seed.variation(index, pattern)));
        }
    }
    truncate_to_limits(&mut entries);
    Ok(entries)
}

/// One byte of shape at least; no upper bound (a list may take the whole input).
fn list_size_hint(_depth: usize) -> (usize, Option<usize>) {
    (1, None)
}

/// A prefix length in `min..=max`: `min` one time in eight, `max` (a host, or the longest of a
/// nested family) two times in eight, any in the range otherwise.
fn prefix_len(u: &mut Unstructured<'_>, min: u8, max: u8) -> Result<u8> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => min,
        1 | 2 => max,
        _ => u.int_in_range(min..=max)?,
    })
}

fn weekday(u: &mut Unstructured<'_>) -> Result<Weekday> {
    Ok(WEEK[usize::from(u.int_in_range(0u8..=6)?)])
}

fn v4(bits: u32, len: u8) -> Result<IpNet> {
    Ipv4Net::new(bits.into(), len)
        .map(IpNet::V4)
        .map_err(|_| Error::IncorrectFormat)
}

fn v6(bits: u128, len: u8) -> Result<IpNet> {
    Ipv6Net::new(bits.into(), len)
        .map(IpNet::V6)
        .map_err(|_| Error::IncorrectFormat)
}
