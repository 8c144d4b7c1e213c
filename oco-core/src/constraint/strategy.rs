//! [proptest](mod@proptest) strategies for the constraint languages (feature `proptest`), for
//! property tests of code that stores, transforms or evaluates constraints.
//!
//! - **Values**: [`ip_ranges`], [`time_frames`] and their parts, always something the parser can
//!   produce, leaning towards the edges (`/0`, host prefixes, IPv4-mapped networks, windows
//!   across midnight, `24:00`, wrapping day ranges, single days, days without a window and a
//!   window without days). [`ip_ranges_with_len`] and [`time_frames_with_len`] take longer lists
//!   (cut to the limits, [`MAX_ENTRIES`] entries and a canonical form of [`MAX_INPUT_LEN`] bytes).
//! - **Inputs to evaluate them on**: [`ip_ranges_with_addrs`] and [`time_frames_with_times`] pair a
//!   list with addresses or local times that mostly fall on its entries' edges, where a random
//!   one rarely lands.
//! - **Text**: [`ip_ranges_canonical`] and [`time_frames_canonical`] pair a value with its
//!   canonical form; [`ip_ranges_spelled`] and [`time_frames_spelled`] with another spelling of it
//!   that parses to the same value (white space and tabs, empty entries, letter case, full day
//!   names, `H:MM`, uncompressed IPv6, `::ffff:a.b.c.d`, explicit host prefixes...).
//! - **Mistakes**: [`ip_ranges_near_miss`] and [`time_frames_near_miss`] give texts that are one
//!   mistake away from a valid list, each with the [`ErrorKind`] the parser reports ([`NearMiss`]),
//!   covering every kind of each language.
//!
//! # Examples
//!
//! A downstream explanation of a verdict ("which entry decided?"), checked against
//! [`IpRanges::allows`] for lists and addresses drawn from the strategies:
//!
//! ```
//! use std::net::IpAddr;
//!
//! use oco_core::constraint::{strategy, IpEntry, IpRanges};
//! use proptest::prelude::*;
//!
//! /// The entry that decides for `addr`, if one contains it (the code under test).
//! fn deciding_entry(ranges: &IpRanges, addr: IpAddr) -> Option<&IpEntry> {
//!     let addr = match addr {
//!         IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
//!         IpAddr::V4(_) => addr,
//!     };
//!     ranges.entries().iter().find(|entry| entry.network().contains(&addr))
//! }
//!
//! proptest! {
//!     // In a test file, with #[test] here.
//!     fn deciding_entry_gives_the_verdict((ranges, addrs) in strategy::ip_ranges_with_addrs()) {
//!         for addr in addrs {
//!             let expected = match deciding_entry(&ranges, addr) {
//!                 Some(entry) => !entry.is_negated(),
//!                 None => ranges.entries().iter().all(IpEntry::is_negated),
//!             };
//!             prop_assert_eq!(expected, ranges.allows(addr), "{} for `{}`", addr, ranges);
//!         }
//!     }
//! }
//! # deciding_entry_gives_the_verdict();
//! ```
//!
//! Parsing stays strict in a downstream form that accepts constraint text:
//!
//! ```
//! use oco_core::constraint::{strategy, IpRanges, TimeFrames};
//! use proptest::prelude::*;
//!
//! proptest! {
//!     fn near_misses_are_refused_with_their_kind(miss in strategy::ip_ranges_near_miss()) {
//!         let err = miss.text.parse::<IpRanges>().unwrap_err();
//!         prop_assert_eq!(err.kind(), &miss.kind);
//!     }
//!
//!     fn spellings_mean_their_value((frames, text) in strategy::time_frames_spelled()) {
//!         prop_assert_eq!(text.parse::<TimeFrames>()?, frames);
//!     }
//! }
//! # near_misses_are_refused_with_their_kind();
//! # spellings_mean_their_value();
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Weekday};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::{vec, SizeRange};
use proptest::prelude::*;
use proptest::sample::select;

use super::construct::truncate_to_limits;
use super::ip::MAPPED;
use super::time::{MINUTES_PER_DAY as DAY, WEEK};
use super::{
    DayRange, ErrorKind, IpEntry, IpRanges, TimeFrame, TimeFrames, TimeWindow, MAX_ENTRIES,
    MAX_INPUT_LEN,
};

/// A text one mistake away from a valid constraint, and the error kind the parser reports for
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    /// The text to parse.
    pub text: String,
    /// The kind of [`ParseError`](super::ParseError) that parsing `text` must report.
    pub kind: ErrorKind,
}

/// The number of entries of the lists of [`ip_ranges`], [`time_frames`] and the text
/// strategies: short lists, as administrators write them and as shrinking likes them.
const SHORT: std::ops::Range<usize> = 0..8;

// ---------------------------------------------------------------------------------------------
// IP ranges: values
// ---------------------------------------------------------------------------------------------

/// Lists of up to 7 [`ip_entry`] entries.
pub fn ip_ranges() -> impl Strategy<Value = IpRanges> {
    ip_ranges_with_len(SHORT)
}

/// Lists of [`ip_entry`] entries, as many as `len` says, cut to the limits: `ip_ranges_with_len(
/// 0..=MAX_ENTRIES)` reaches [`MAX_ENTRIES`] entries and canonical forms near
/// [`MAX_INPUT_LEN`] bytes.
pub fn ip_ranges_with_len(len: impl Into<SizeRange>) -> impl Strategy<Value = IpRanges> {
    vec(ip_entry(), len).prop_filter_map("within the limits", |mut entries| {
        truncate_to_limits(&mut entries);
        IpRanges::from_entries(entries).ok()
    })
}

/// One entry of either family, negated or not: anywhere, nested in small blocks (so that the
/// entries of a list overlap), IPv4-mapped (normalised to IPv4), or IPv6 around the mapped block;
/// prefixes lean to `/0` and to host prefixes.
pub fn ip_entry() -> impl Strategy<Value = IpEntry> {
    (any::<bool>(), ip_network()).prop_map(|(negated, network)| IpEntry::new(network, negated))
}

/// Addresses of both families: anywhere, IPv4-mapped IPv6, and the edges of the address space.
pub fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<u32>().prop_map(|bits| IpAddr::V4(bits.into())),
        3 => any::<u128>().prop_map(|bits| IpAddr::V6(bits.into())),
        2 => any::<u32>().prop_map(|bits| IpAddr::V6(Ipv4Addr::from(bits).to_ipv6_mapped())),
        1 => select(vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::from(u128::MAX)),
            IpAddr::V6(Ipv6Addr::from(MAPPED - 1)),
            IpAddr::V6(Ipv6Addr::from(MAPPED + (1 << 32))),
        ]),
    ]
}

/// A list from [`ip_ranges`] and 1 to 15 addresses, most of them on its entries: inside, at the
/// first and last address, just outside, or the IPv4-mapped form of one of those.
pub fn ip_ranges_with_addrs() -> impl Strategy<Value = (IpRanges, Vec<IpAddr>)> {
    let probe = (0u8..8, any::<usize>(), any::<u128>(), ip_addr());
    (ip_ranges(), vec(probe, 1..16)).prop_map(|(ranges, probes)| {
        let addrs = probes
            .into_iter()
            .map(|(kind, index, bits, random)| ip_probe(&ranges, kind, index, bits, random))
            .collect();
        (ranges, addrs)
    })
}

// ---------------------------------------------------------------------------------------------
// IP ranges: text
// ---------------------------------------------------------------------------------------------

/// A list from [`ip_ranges`] and its canonical form.
pub fn ip_ranges_canonical() -> impl Strategy<Value = (IpRanges, String)> {
    ip_ranges().prop_map(|ranges| {
        let text = ranges.to_string();
        (ranges, text)
    })
}

/// A list from [`ip_ranges`] and a spelling of it other than the canonical one, which parses to
/// the same value: blanks (spaces and tabs) around entries, after `!` and around `/`; empty
/// entries and leading or trailing commas; IPv4 as `::ffff:a.b.c.d`, `::FFFF:xxxx:xxxx` or fully
/// written IPv4-mapped IPv6 (with the prefix length plus 96); IPv6 in upper case, uncompressed,
/// zero-padded or with its last 32 bits as a dotted quad; hosts with an explicit `/32` or `/128`.
pub fn ip_ranges_spelled() -> impl Strategy<Value = (IpRanges, String)> {
    (vec((ip_entry(), ip_style()), SHORT), list_style()).prop_filter_map(
        "within the limits",
        |(entries, list)| {
            let text = list.join(entries.iter().map(|(entry, style)| spell_ip(entry, style)));
            let ranges =
                IpRanges::from_entries(entries.into_iter().map(|(entry, _)| entry)).ok()?;
            Some((ranges, text))
        },
    )
}

/// A list text with one mistake, and the kind the parser reports: a bad entry (after up to two
/// valid ones) for every entry-level kind, or a list over the limits (`TooLong`,
/// `TooManyEntries`, `CanonicalTooLong`), which are texts of about 64 KiB.
///
/// The mistakes: `!` alone, `!!`, text after an entry, `/24` without an address, invalid
/// addresses, leading zeros (`010.0.0.1`, `/08`), zone ids, `/` without a length, a length that
/// is no number or above the family's maximum, and host bits set (with the network the parser
/// suggests).
pub fn ip_ranges_near_miss() -> impl Strategy<Value = NearMiss> {
    prop_oneof![
        30 => (vec(ip_entry(), 0..3), ip_entry_miss(), vec(ip_entry(), 0..2)).prop_map(
            |(before, miss, after)| embed(&before, miss, &after)
        ),
        1 => ip_ranges().prop_flat_map(|ranges| too_long(ranges.to_string())),
        1 => ip_too_many_entries(),
        1 => ip_canonical_too_long(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Time frames: values
// ---------------------------------------------------------------------------------------------

/// Lists of up to 7 [`time_frame`] entries.
pub fn time_frames() -> impl Strategy<Value = TimeFrames> {
    time_frames_with_len(SHORT)
}

/// Lists of [`time_frame`] entries, as many as `len` says, cut to the limits:
/// `time_frames_with_len(0..=MAX_ENTRIES)` reaches [`MAX_ENTRIES`] entries and canonical forms
/// near [`MAX_INPUT_LEN`] bytes.
pub fn time_frames_with_len(len: impl Into<SizeRange>) -> impl Strategy<Value = TimeFrames> {
    vec(time_frame(), len).prop_filter_map("within the limits", |mut entries| {
        truncate_to_limits(&mut entries);
        TimeFrames::from_entries(entries).ok()
    })
}

/// One entry, negated or not: days and a window (half the time), a window alone, or days alone.
pub fn time_frame() -> impl Strategy<Value = TimeFrame> {
    let shape = prop_oneof![
        2 => (day_range(), time_window()).prop_map(|(days, window)| (Some(days), Some(window))),
        1 => time_window().prop_map(|window| (None, Some(window))),
        1 => day_range().prop_map(|days| (Some(days), None)),
    ];
    (shape, any::<bool>()).prop_filter_map("days or a window", |((days, window), negated)| {
        TimeFrame::new(days, window, negated).ok()
    })
}

/// A single day (a quarter of the time) or a range of days, which wraps over the weekend about
/// half of the time (`FRI-MON`).
pub fn day_range() -> impl Strategy<Value = DayRange> {
    (weekday(), prop::option::weighted(0.75, weekday()))
        .prop_map(|(first, last)| DayRange::new(first, last.unwrap_or(first)))
}

/// A window, never empty: starts lean to `00:00` and whole hours, ends to `24:00`, `00:00`
/// (crossing midnight) and whole hours; about half of the windows cross midnight.
pub fn time_window() -> impl Strategy<Value = TimeWindow> {
    let start = prop_oneof![
        1 => Just(0u16),
        2 => (0u16..24).prop_map(|hour| hour * 60),
        4 => 0u16..DAY,
    ];
    let end = prop_oneof![
        1 => Just(DAY),
        1 => Just(0u16),
        2 => (0u16..=24).prop_map(|hour| hour * 60),
        4 => 0u16..=DAY,
    ];
    (start, end).prop_filter_map("a window is never empty", |(start, end)| {
        TimeWindow::new(start, end).ok()
    })
}

/// A local time in the fortnight from Monday 2026-11-23, at a whole minute or a minute's last
/// second half of the time.
pub fn local_datetime() -> impl Strategy<Value = NaiveDateTime> {
    let second = prop_oneof![Just(0u32), Just(59u32), 0u32..60];
    (0..FORTNIGHT_MINUTES, second)
        .prop_filter_map("in range", |(minute, second)| local(minute, second, 0))
}

/// A list from [`time_frames`] and 1 to 15 local times, most of them at its windows' starts and
/// ends (or a second before), on days near its day ranges; the rest from [`local_datetime`].
pub fn time_frames_with_times() -> impl Strategy<Value = (TimeFrames, Vec<NaiveDateTime>)> {
    let probe = (
        0u8..4,
        any::<usize>(),
        0u32..14,
        any::<bool>(),
        local_datetime(),
    );
    (time_frames(), vec(probe, 1..16)).prop_map(|(frames, probes)| {
        let times = probes
            .into_iter()
            .map(|(kind, index, day, before, random)| {
                time_probe(&frames, kind, index, day, before).unwrap_or(random)
            })
            .collect();
        (frames, times)
    })
}

// ---------------------------------------------------------------------------------------------
// Time frames: text
// ---------------------------------------------------------------------------------------------

/// A list from [`time_frames`] and its canonical form.
pub fn time_frames_canonical() -> impl Strategy<Value = (TimeFrames, String)> {
    time_frames().prop_map(|frames| {
        let text = frames.to_string();
        (frames, text)
    })
}

/// A list from [`time_frames`] and a spelling of it other than the canonical one, which parses
/// to the same value: blanks around entries, after `!`, around `-` and between days and window
/// (or none: `MON08:00-17:00`); empty entries and leading or trailing commas; days in lower or
/// mixed case and as full names (`Monday-Friday`), a single day as `MON-MON`; times as `H:MM`.
pub fn time_frames_spelled() -> impl Strategy<Value = (TimeFrames, String)> {
    (vec((time_frame(), time_style()), SHORT), list_style()).prop_filter_map(
        "within the limits",
        |(entries, list)| {
            let text = list.join(
                entries
                    .iter()
                    .map(|(frame, style)| spell_time(frame, style)),
            );
            let frames =
                TimeFrames::from_entries(entries.into_iter().map(|(frame, _)| frame)).ok()?;
            Some((frames, text))
        },
    )
}

/// A list text with one mistake, and the kind the parser reports: a bad entry (after up to two
/// valid ones) for every entry-level kind, or a list over the limits (`TooLong`,
/// `TooManyEntries`, `CanonicalTooLong`), which are texts of about 64 KiB.
///
/// The mistakes: `!` alone, `!!`, text after an entry or after a start time, an entry starting
/// with neither a day nor a time, unknown day names (`Tues`), `MON-` without a day, malformed
/// times (`8-9:00`, `08.00`, `123:00`), seconds, hours above 23 (`25:00`, `24:30`), minutes
/// above 59, `24:00` as a start, a start without an end, and empty windows (`8:00-08:00`).
pub fn time_frames_near_miss() -> impl Strategy<Value = NearMiss> {
    prop_oneof![
        30 => (vec(time_frame(), 0..3), time_frame_miss(), vec(time_frame(), 0..2)).prop_map(
            |(before, miss, after)| embed(&before, miss, &after)
        ),
        1 => time_frames().prop_flat_map(|frames| too_long(frames.to_string())),
        1 => time_too_many_entries(),
        1 => time_canonical_too_long(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers: values
// ---------------------------------------------------------------------------------------------

const FORTNIGHT_MINUTES: u32 = 14 * 24 * 60;
const FULL_DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn ip_network() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        3 => (any::<u32>(), prefix_len(0, 32))
            .prop_filter_map("valid", |(bits, len)| v4(bits, len)),
        // Inside 10.0.0.0/16, so that entries nest and overlap.
        2 => (any::<u16>(), prefix_len(16, 32))
            .prop_filter_map("valid", |(bits, len)| v4(0x0a00_0000 | u32::from(bits), len)),
        3 => (any::<u128>(), prefix_len(0, 128))
            .prop_filter_map("valid", |(bits, len)| v6(bits, len)),
        1 => (any::<u16>(), prefix_len(112, 128))
            .prop_filter_map("valid", |(bits, len)| v6(0x2001_0db8 << 96 | u128::from(bits), len)),
        // IPv4-mapped, which `IpEntry::new` normalises to IPv4.
        2 => (any::<u32>(), prefix_len(96, 128))
            .prop_filter_map("valid", |(bits, len)| v6(MAPPED | u128::from(bits), len)),
        // Around the mapped block, shorter than /96: stays IPv6.
        1 => (any::<u32>(), prefix_len(64, 95))
            .prop_filter_map("valid", |(bits, len)| v6(MAPPED | u128::from(bits), len)),
    ]
}

fn prefix_len(min: u8, max: u8) -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(min), 2 => Just(max), 5 => min..=max]
}

fn v4(bits: u32, len: u8) -> Option<IpNet> {
    Ipv4Net::new(bits.into(), len).ok().map(IpNet::V4)
}

fn v6(bits: u128, len: u8) -> Option<IpNet> {
    Ipv6Net::new(bits.into(), len).ok().map(IpNet::V6)
}

/// An address for a probe of `kind` on the entry `index` (modulo the list's length): 0 inside
/// with host bits from `bits`, 1 the first address, 2 the last, 3 the one after the last, 4 the
/// one before the first, 5 the IPv4-mapped form of an address inside; otherwise `random`.
fn ip_probe(ranges: &IpRanges, kind: u8, index: usize, bits: u128, random: IpAddr) -> IpAddr {
    let entries = ranges.entries();
    if entries.is_empty() || kind > 5 {
        return random;
    }
    let network = entries[index % entries.len()].network();
    let (first, last) = match network {
        IpNet::V4(net) => (
            u128::from(u32::from(net.network())),
            u128::from(u32::from(net.broadcast())),
        ),
        IpNet::V6(net) => (u128::from(net.network()), u128::from(net.broadcast())),
    };
    let inside = first | (bits & (last - first));
    let bits = match kind {
        0 | 5 => inside,
        1 => first,
        2 => last,
        3 => last.wrapping_add(1),
        _ => first.wrapping_sub(1),
    };
    match network {
        IpNet::V4(_) => {
            // Truncation intended: wrapping within IPv4.
            #[allow(clippy::cast_possible_truncation)]
            let v4 = Ipv4Addr::from(bits as u32);
            if kind == 5 {
                IpAddr::V6(v4.to_ipv6_mapped())
            } else {
                IpAddr::V4(v4)
            }
        }
        IpNet::V6(_) => IpAddr::V6(bits.into()),
    }
}

fn weekday() -> impl Strategy<Value = Weekday> {
    select(WEEK.to_vec())
}

/// The local time `minute` minutes and `second` seconds, less one second when `before`, after
/// Monday 2026-11-23 00:00.
fn local(minute: u32, second: u32, before: u32) -> Option<NaiveDateTime> {
    let monday = NaiveDate::from_ymd_opt(2026, 11, 23)?.and_hms_opt(0, 0, 0)?;
    let seconds = i64::from(minute) * 60 + i64::from(second) - i64::from(before);
    monday.checked_add_signed(TimeDelta::seconds(seconds))
}

/// A time for a probe of `kind` on the entry `index` (modulo the list's length), on the `day`th
/// day of the fortnight: 0 its window's start, 1 its window's end (or midnight without a window),
/// 2 the start on its first day; one second earlier when `before`. `None` for other kinds and
/// for the empty list.
fn time_probe(
    frames: &TimeFrames,
    kind: u8,
    index: usize,
    day: u32,
    before: bool,
) -> Option<NaiveDateTime> {
    let entries = frames.entries();
    let entry = entries.get(index % entries.len().max(1))?;
    let window = entry.window();
    let (day, minute) = match kind {
        0 => (day, window.map_or(0, |w| w.start_minute())),
        1 => (day, window.map_or(0, |w| w.end_minute())),
        2 => {
            let first = entry
                .days()
                .map_or(0, |days| days.first().num_days_from_monday());
            (
                first + 7 * (day % 2),
                window.map_or(0, |w| w.start_minute()),
            )
        }
        _ => return None,
    };
    local(
        day * u32::from(DAY) + u32::from(minute),
        0,
        u32::from(before),
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers: spellings
// ---------------------------------------------------------------------------------------------

/// Blanks the languages ignore around entries and tokens.
const BLANKS: [&str; 5] = ["", " ", "\t", "  ", " \t "];
/// Separators between two entries (with empty entries among them).
const SEPARATORS: [&str; 6] = [",", ", ", " ,", ",,", ", ,\t", "\t,"];
/// Texts before the first entry, and (never empty, so that a spelling is never the canonical
/// form) after the last.
const HEADS: [&str; 5] = ["", " ", ",", " ,\t", "\t"];
const TAILS: [&str; 5] = [" ", ",", ", ", "\t,", ",,"];

/// How the entries of a list are put together.
#[derive(Debug, Clone)]
struct ListStyle {
    head: usize,
    tail: usize,
    /// Per gap between entries, cycled: an index into [`SEPARATORS`].
    separators: Vec<usize>,
    /// Per entry, cycled: indices into [`BLANKS`] before and after it.
    around: Vec<(usize, usize)>,
}

impl ListStyle {
    fn join(&self, entries: impl Iterator<Item = String>) -> String {
        let mut text = HEADS[self.head].to_owned();
        for (i, entry) in entries.enumerate() {
            if i > 0 {
                text.push_str(SEPARATORS[self.separators[i % self.separators.len()]]);
            }
            let (before, after) = self.around[i % self.around.len()];
            text.push_str(BLANKS[before]);
            text.push_str(&entry);
            text.push_str(BLANKS[after]);
        }
        text.push_str(TAILS[self.tail]);
        text
    }
}

fn list_style() -> impl Strategy<Value = ListStyle> {
    (
        0..HEADS.len(),
        0..TAILS.len(),
        vec(0..SEPARATORS.len(), 1..4),
        vec((0..BLANKS.len(), 0..BLANKS.len()), 1..4),
    )
        .prop_map(|(head, tail, separators, around)| ListStyle {
            head,
            tail,
            separators,
            around,
        })
}

/// How one IP entry is spelled; each field indexes a list of spellings, 0 the canonical one.
#[derive(Debug, Clone)]
struct IpStyle {
    /// Blanks after `!`.
    bang: usize,
    /// The address form.
    form: u8,
    /// For a host: no prefix, an explicit one, or one with blanks; for a network: blanks.
    prefix: u8,
    /// Blanks before and after `/`.
    slash: (usize, usize),
}

fn ip_style() -> impl Strategy<Value = IpStyle> {
    (
        0..BLANKS.len(),
        0u8..5,
        0u8..3,
        (0..BLANKS.len(), 0..BLANKS.len()),
    )
        .prop_map(|(bang, form, prefix, slash)| IpStyle {
            bang,
            form,
            prefix,
            slash,
        })
}

fn spell_ip(entry: &IpEntry, style: &IpStyle) -> String {
    let mut text = String::new();
    if entry.is_negated() {
        text.push('!');
        text.push_str(BLANKS[style.bang]);
    }
    let network = entry.network();
    let (address, len, max) = match network {
        IpNet::V4(net) => {
            let addr = net.network();
            let [a, b, c, d] = addr.octets();
            let (high, low) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            let mapped_len = net.prefix_len() + 96;
            match style.form {
                0 => (addr.to_string(), net.prefix_len(), 32),
                1 => (format!("::ffff:{addr}"), mapped_len, 128),
                2 => (format!("::FFFF:{high:X}:{low:X}"), mapped_len, 128),
                3 => (format!("0:0:0:0:0:ffff:{addr}"), mapped_len, 128),
                _ => (
                    format!("0000:0000:0000:0000:0000:FFFF:{high:04X}:{low:04X}"),
                    mapped_len,
                    128,
                ),
            }
        }
        IpNet::V6(net) => {
            let addr = net.network();
            let groups = addr.segments();
            let joined = |width: usize, upper: bool| {
                let mut out = String::new();
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        out.push(':');
                    }
                    // Writing into a String cannot fail.
                    let _ = if upper {
                        write!(out, "{group:0width$X}")
                    } else {
                        write!(out, "{group:0width$x}")
                    };
                }
                out
            };
            let address = match style.form {
                0 => addr.to_string(),
                1 => addr.to_string().to_uppercase(),
                2 => joined(1, false),
                3 => joined(4, true),
                _ => {
                    let [.., a, b, c, d] = addr.octets();
                    let head: Vec<String> = groups[..6].iter().map(|g| format!("{g:x}")).collect();
                    format!("{}:{a}.{b}.{c}.{d}", head.join(":"))
                }
            };
            (address, net.prefix_len(), 128)
        }
    };
    text.push_str(&address);
    let (before, after) = (BLANKS[style.slash.0], BLANKS[style.slash.1]);
    match (len == max, style.prefix) {
        (true, 0) => {}
        (true, 1) => {
            let _ = write!(text, "/{len}");
        }
        _ => {
            let _ = write!(text, "{before}/{after}{len}");
        }
    }
    text
}

/// How one time frame is spelled; each field indexes a list of spellings, 0 the canonical one.
#[derive(Debug, Clone)]
struct TimeStyle {
    /// Blanks after `!`.
    bang: usize,
    /// Day name forms of the first and last day.
    names: (u8, u8),
    /// A single day written as a range of itself (`MON-MON`).
    single_as_range: bool,
    /// Blanks around the `-` of a day range.
    day_dash: (usize, usize),
    /// Between days and window: a space, nothing, or other blanks.
    gap: u8,
    /// `H:MM` for hours below 10, at the start and the end.
    short_hours: (bool, bool),
    /// Blanks around the `-` of a window.
    time_dash: (usize, usize),
}

fn time_style() -> impl Strategy<Value = TimeStyle> {
    (
        0..BLANKS.len(),
        (0u8..7, 0u8..7),
        any::<bool>(),
        (0..BLANKS.len(), 0..BLANKS.len()),
        0u8..4,
        any::<(bool, bool)>(),
        (0..BLANKS.len(), 0..BLANKS.len()),
    )
        .prop_map(
            |(bang, names, single_as_range, day_dash, gap, short_hours, time_dash)| TimeStyle {
                bang,
                names,
                single_as_range,
                day_dash,
                gap,
                short_hours,
                time_dash,
            },
        )
}

fn spell_time(frame: &TimeFrame, style: &TimeStyle) -> String {
    let mut text = String::new();
    if frame.is_negated() {
        text.push('!');
        text.push_str(BLANKS[style.bang]);
    }
    if let Some(days) = frame.days() {
        text.push_str(&day_name(days.first(), style.names.0));
        if days.first() != days.last() || style.single_as_range {
            text.push_str(BLANKS[style.day_dash.0]);
            text.push('-');
            text.push_str(BLANKS[style.day_dash.1]);
            text.push_str(&day_name(days.last(), style.names.1));
        }
        if frame.window().is_some() {
            text.push_str(["", " ", "\t", "  "][usize::from(style.gap % 4)]);
        }
    }
    if let Some(window) = frame.window() {
        text.push_str(&time(window.start_minute(), style.short_hours.0));
        text.push_str(BLANKS[style.time_dash.0]);
        text.push('-');
        text.push_str(BLANKS[style.time_dash.1]);
        text.push_str(&time(window.end_minute(), style.short_hours.1));
    }
    text
}

/// `day` as `MON`, `mon`, `Mon`, `MONDAY`, `monday`, `Monday` or `mOnDaY`.
fn day_name(day: Weekday, form: u8) -> String {
    let full = FULL_DAY_NAMES[day.num_days_from_monday() as usize];
    let short = &full[..3];
    match form {
        0 => short.to_uppercase(),
        1 => short.to_lowercase(),
        2 => short.to_owned(),
        3 => full.to_uppercase(),
        4 => full.to_lowercase(),
        5 => full.to_owned(),
        _ => full
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect(),
    }
}

/// `minute` of the day as `HH:MM`, or as `H:MM` for hours below 10 when `short`.
fn time(minute: u16, short: bool) -> String {
    if short {
        format!("{}:{:02}", minute / 60, minute % 60)
    } else {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: near misses
// ---------------------------------------------------------------------------------------------

/// The canonical entries `before`, the mistaken entry, and the canonical entries `after`.
fn embed<T: std::fmt::Display>(before: &[T], miss: NearMiss, after: &[T]) -> NearMiss {
    let mut parts: Vec<String> = before.iter().map(T::to_string).collect();
    parts.push(miss.text);
    parts.extend(after.iter().map(T::to_string));
    NearMiss {
        text: parts.join(", "),
        kind: miss.kind,
    }
}

fn miss(text: String, kind: ErrorKind) -> NearMiss {
    NearMiss { text, kind }
}

/// `valid` followed by blanks to a length just over [`MAX_INPUT_LEN`].
fn too_long(valid: String) -> impl Strategy<Value = NearMiss> {
    (1usize..=64, select(vec![' ', '\t', ','])).prop_map(move |(over, filler)| {
        let mut text = valid.clone();
        while text.len() < MAX_INPUT_LEN + over {
            text.push(filler);
        }
        let len = text.len();
        miss(text, ErrorKind::TooLong { len })
    })
}

/// An entry-level mistake that may take a `!` in front, and optionally gets one.
fn negatable(
    strategy: impl Strategy<Value = NearMiss> + 'static,
) -> impl Strategy<Value = NearMiss> {
    (strategy, prop::option::of(0..BLANKS.len())).prop_map(|(miss, bang)| match bang {
        Some(blanks) => NearMiss {
            text: format!("!{}{}", BLANKS[blanks], miss.text),
            kind: miss.kind,
        },
        None => miss,
    })
}

fn empty_negation() -> impl Strategy<Value = NearMiss> {
    select(vec!["!", "! ", "!\t"]).prop_map(|text| miss(text.to_owned(), ErrorKind::EmptyNegation))
}

/// `!!entry`, `! !entry`, ...: `entry` is the canonical text of a plain entry.
fn double_negation(entry: String, blanks: usize) -> NearMiss {
    miss(
        format!("!{}!{entry}", BLANKS[blanks]),
        ErrorKind::DoubleNegation,
    )
}

/// Words after an entry and a blank that no entry continues with.
const GARBAGE: [&str; 5] = ["x", "junk", "!", "#1", "?"];

fn ip_entry_miss() -> impl Strategy<Value = NearMiss> {
    let plain = || ip_network().prop_map(|network| IpEntry::new(network, false));
    let v4_network = (any::<u32>(), prefix_len(0, 32)).prop_filter_map("valid", |(b, l)| v4(b, l));
    prop_oneof![
        empty_negation(),
        (plain(), 0..BLANKS.len())
            .prop_map(|(entry, blanks)| double_negation(entry.to_string(), blanks)),
        negatable(
            (plain(), 1..BLANKS.len(), select(GARBAGE.to_vec())).prop_map(
                |(entry, blanks, garbage)| miss(
                    format!("{entry}{}{garbage}", BLANKS[blanks]),
                    ErrorKind::TrailingGarbage
                )
            )
        ),
        negatable((0u8..=128, 0..BLANKS.len()).prop_map(|(len, blanks)| miss(
            format!("/{}{len}", BLANKS[blanks]),
            ErrorKind::MissingAddress
        ))),
        negatable(ip_invalid_address()),
        negatable(ip_leading_zero_in_address()),
        negatable(
            (
                ip_addr(),
                select(vec!["", "eth0", "1", "en0", "wlan0", "lo"]),
                prop::option::of(0u8..=32)
            )
                .prop_map(|(addr, zone, len)| {
                    let prefix = len.map(|len| format!("/{len}")).unwrap_or_default();
                    miss(format!("{addr}%{zone}{prefix}"), ErrorKind::ZoneId)
                })
        ),
        negatable((plain(), 0..BLANKS.len()).prop_map(|(entry, blanks)| miss(
            format!("{}{}/", entry.network().addr(), BLANKS[blanks]),
            ErrorKind::MissingPrefix
        ))),
        negatable(
            (
                plain(),
                select(vec!["x", "+8", "-1", "8a", "1.5", "0x10", "8/8", "٣"])
            )
                .prop_map(|(entry, prefix)| miss(
                    format!("{}/{prefix}", entry.network().addr()),
                    ErrorKind::InvalidPrefix
                ))
        ),
        negatable(plain().prop_map(|entry| {
            let network = entry.network();
            miss(
                format!("{}/0{}", network.addr(), network.prefix_len()),
                ErrorKind::LeadingZeroInPrefix,
            )
        })),
        negatable(
            (prop_oneof![v4_network, ip_network()], 1u16..=870).prop_map(|(network, over)| {
                // The address as parsed: a mapped IPv6 one keeps the IPv6 maximum.
                let max = network.max_prefix_len();
                miss(
                    format!("{}/{}", network.addr(), u16::from(max) + over),
                    ErrorKind::PrefixOutOfRange { max },
                )
            })
        ),
        negatable(ip_host_bits_set()),
    ]
}

/// Addresses that are neither IPv4 nor IPv6 (and have no leading zeros or `%`).
fn ip_invalid_address() -> impl Strategy<Value = NearMiss> {
    let address = prop_oneof![
        // Three or five parts.
        any::<[u8; 3]>().prop_map(|[a, b, c]| format!("{a}.{b}.{c}")),
        any::<[u8; 5]>().prop_map(|[a, b, c, d, e]| format!("{a}.{b}.{c}.{d}.{e}")),
        // A part above 255.
        (any::<[u8; 4]>(), 0usize..4, 256u16..=999).prop_map(|(octets, i, big)| {
            let parts: Vec<String> = octets
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    if i == j {
                        big.to_string()
                    } else {
                        o.to_string()
                    }
                })
                .collect();
            parts.join(".")
        }),
        // Nine IPv6 groups, or a letter that is no hex digit.
        any::<[u16; 9]>().prop_map(|groups| {
            groups
                .iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        any::<u128>().prop_map(|bits| format!("{}g", Ipv6Addr::from(bits))),
        select(vec![
            "localhost",
            "host.example",
            "x",
            "1.2.3.4.",
            ":::",
            "1::2::3"
        ])
        .prop_map(str::to_owned),
    ];
    (address, prop::option::of(0u8..=32)).prop_map(|(address, len)| {
        let prefix = len.map(|len| format!("/{len}")).unwrap_or_default();
        miss(format!("{address}{prefix}"), ErrorKind::InvalidAddress)
    })
}

/// A dotted quad with one part below 100 written with a leading zero (`010.0.0.1`, `1.00.2.3`).
fn ip_leading_zero_in_address() -> impl Strategy<Value = NearMiss> {
    (
        any::<[u8; 4]>(),
        0usize..4,
        0u8..100,
        prop::option::of(0u8..=32),
    )
        .prop_map(|(octets, i, small, len)| {
            let parts: Vec<String> = octets
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    if i == j {
                        format!("0{small}")
                    } else {
                        o.to_string()
                    }
                })
                .collect();
            let prefix = len.map(|len| format!("/{len}")).unwrap_or_default();
            miss(
                format!("{}{prefix}", parts.join(".")),
                ErrorKind::LeadingZeroInAddress,
            )
        })
}

/// An address with bits set below its prefix length, and the network the parser suggests:
/// IPv4, IPv6, and IPv4-mapped IPv6 (suggested as IPv4 from `/96` on, as IPv6 below).
fn ip_host_bits_set() -> impl Strategy<Value = NearMiss> {
    prop_oneof![
        (any::<u32>(), 0u8..32).prop_map(|(bits, len)| {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let addr = Ipv4Addr::from(bits | 1 | (bits & host));
            let network = IpNet::V4(Ipv4Net::new(addr, len).unwrap_or_default().trunc());
            miss(format!("{addr}/{len}"), ErrorKind::HostBitsSet { network })
        }),
        (any::<u128>(), 0u8..128).prop_map(|(bits, len)| {
            // Outside the mapped block, which is IPv4 to the parser.
            let bits = if bits & !0xffff_ffff == MAPPED {
                bits ^ 1 << 127
            } else {
                bits
            };
            let addr = Ipv6Addr::from(bits | 1);
            let network = IpNet::V6(Ipv6Net::new(addr, len).unwrap_or_default().trunc());
            miss(format!("{addr}/{len}"), ErrorKind::HostBitsSet { network })
        }),
        (any::<u32>(), 96u8..128).prop_map(|(bits, len)| {
            let v4 = Ipv4Addr::from(bits | 1);
            let network = IpNet::V4(Ipv4Net::new(v4, len - 96).unwrap_or_default().trunc());
            miss(
                format!("::ffff:{v4}/{len}"),
                ErrorKind::HostBitsSet { network },
            )
        }),
        (any::<u32>(), 0u8..96).prop_map(|(bits, len)| {
            let addr = Ipv4Addr::from(bits).to_ipv6_mapped();
            let network = IpNet::V6(Ipv6Net::new(addr, len).unwrap_or_default().trunc());
            miss(
                format!("::ffff:{}/{len}", Ipv4Addr::from(bits)),
                ErrorKind::HostBitsSet { network },
            )
        }),
    ]
}

/// Just over [`MAX_ENTRIES`] short IPv4 hosts, well under [`MAX_INPUT_LEN`] bytes.
fn ip_too_many_entries() -> impl Strategy<Value = NearMiss> {
    vec(any::<[u8; 4]>(), MAX_ENTRIES + 1..=MAX_ENTRIES + 8).prop_map(|hosts| {
        let entries: Vec<String> = hosts
            .iter()
            .map(|[a, b, c, d]| format!("{}.{}.{}.{}", a % 10, b % 10, c % 10, d % 10))
            .collect();
        miss(entries.join(","), ErrorKind::TooManyEntries)
    })
}

/// 3,856 to 4,096 hosts of 15 characters without blanks: the input fits in
/// [`MAX_INPUT_LEN`] bytes (16 per entry), the canonical form (17 per entry, `", "` between
/// them) does not.
fn ip_canonical_too_long() -> impl Strategy<Value = NearMiss> {
    vec(any::<[u8; 4]>(), 3856..=MAX_ENTRIES).prop_map(|hosts| {
        let wide = |octet: u8| 100 + octet % 156;
        let entries: Vec<String> = hosts
            .iter()
            .map(|&[a, b, c, d]| format!("{}.{}.{}.{}", wide(a), wide(b), wide(c), wide(d)))
            .collect();
        miss(entries.join(","), ErrorKind::CanonicalTooLong)
    })
}

fn time_frame_miss() -> impl Strategy<Value = NearMiss> {
    let plain = || {
        time_frame().prop_filter_map("valid", |frame| {
            TimeFrame::new(frame.days(), frame.window(), false).ok()
        })
    };
    let days = || prop::option::of(day_range().prop_map(|days| format!("{days} ")));
    let hm = || (0u16..DAY).prop_map(|minute| time(minute, false));
    prop_oneof![
        empty_negation(),
        (plain(), 0..BLANKS.len())
            .prop_map(|(frame, blanks)| double_negation(frame.to_string(), blanks)),
        negatable(
            (plain(), 1..BLANKS.len(), select(GARBAGE.to_vec())).prop_map(
                |(frame, blanks, garbage)| miss(
                    format!("{frame}{}{garbage}", BLANKS[blanks]),
                    ErrorKind::TrailingGarbage
                )
            )
        ),
        negatable((days(), hm(), hm()).prop_map(|(days, start, other)| miss(
            format!("{}{start} {other}", days.unwrap_or_default()),
            ErrorKind::TrailingGarbage
        ))),
        negatable(
            (
                select(vec!["*", "-", ".", "#", ":", "é", "@", "+"]),
                prop::option::of(plain())
            )
                .prop_map(|(lead, rest)| miss(
                    format!(
                        "{lead}{}",
                        rest.map(|frame| frame.to_string()).unwrap_or_default()
                    ),
                    ErrorKind::ExpectedDayOrTime
                ))
        ),
        negatable(time_unknown_day()),
        negatable(
            (weekday(), 0..BLANKS.len(), prop::option::of(time_window())).prop_map(
                |(day, blanks, window)| miss(
                    format!(
                        "{}-{}{}",
                        DayRange::new(day, day),
                        BLANKS[blanks],
                        window.map(|w| w.to_string()).unwrap_or_default()
                    ),
                    ErrorKind::MissingDay
                )
            )
        ),
        negatable(time_invalid_time()),
        negatable(time_out_of_range()),
        negatable((days(), hm(), 0u8..60, hm(), any::<bool>()).prop_map(
            |(days, start, seconds, end, at_end)| {
                let window = if at_end {
                    format!("{start}-{end}:{seconds:02}")
                } else {
                    format!("{start}:{seconds:02}-{end}")
                };
                miss(
                    format!("{}{window}", days.unwrap_or_default()),
                    ErrorKind::SecondsNotAllowed,
                )
            }
        )),
        negatable(
            (days(), prop::option::of(hm())).prop_map(|(days, end)| miss(
                format!(
                    "{}24:00{}",
                    days.unwrap_or_default(),
                    end.map(|end| format!("-{end}")).unwrap_or_default()
                ),
                ErrorKind::StartAt24
            ))
        ),
        negatable(
            (days(), hm(), select(vec!["", "-", " - ", "\t-"])).prop_map(|(days, start, dash)| {
                miss(
                    format!("{}{start}{dash}", days.unwrap_or_default()),
                    ErrorKind::MissingEnd,
                )
            })
        ),
        negatable(
            (days(), 0u16..DAY, any::<(bool, bool)>()).prop_map(|(days, minute, short)| miss(
                format!(
                    "{}{}-{}",
                    days.unwrap_or_default(),
                    time(minute, short.0),
                    time(minute, short.1)
                ),
                ErrorKind::EmptyWindow
            ))
        ),
    ]
}

/// Words that are no day name, alone, before a window, or ending a day range.
fn time_unknown_day() -> impl Strategy<Value = NearMiss> {
    let word = select(vec![
        "Mo", "Tues", "Thur", "Weds", "Mondays", "FRIDAYS", "Sonntag", "x", "Noon",
    ]);
    (word, 0u8..3, weekday(), time_window()).prop_map(|(word, place, day, window)| {
        let day = DayRange::new(day, day);
        let text = match place {
            0 => word.to_owned(),
            1 => format!("{word} {window}"),
            _ => format!("{day}-{word} {window}"),
        };
        miss(text, ErrorKind::UnknownDay)
    })
}

/// A window with a malformed time: no minutes, one minute digit, three hour or minute digits,
/// a letter after the minutes, a `.` for the `:`, or no time after the `-`.
fn time_invalid_time() -> impl Strategy<Value = NearMiss> {
    (0u8..7, 0u16..24, 0u16..60, time_window(), any::<bool>()).prop_map(
        |(form, hour, minute, window, at_end)| {
            let bad = match form {
                0 => format!("{hour}"),
                1 => format!("{hour}:{}", minute % 10),
                2 => format!("1{hour:02}:{minute:02}"),
                3 => format!("{hour:02}:{minute:02}0"),
                4 => format!("{hour:02}:{minute:02}a"),
                5 => format!("{hour:02}.{minute:02}"),
                _ => "x".to_owned(),
            };
            let text = window.to_string();
            let (start, end) = text.split_once('-').unwrap_or((&text, ""));
            // `x` at the start would be read as a day name.
            let text = if at_end || form == 6 {
                format!("{start}-{bad}")
            } else {
                format!("{bad}-{end}")
            };
            miss(text, ErrorKind::InvalidTime)
        },
    )
}

/// Hours above 23 (24 with minutes but `24:00`, or 25 to 99) and minutes above 59, at the start
/// or the end of a window.
fn time_out_of_range() -> impl Strategy<Value = NearMiss> {
    let hour = prop_oneof![
        (1u8..60).prop_map(|minute| (24u8, minute)),
        (25u8..=99, 0u8..60).prop_map(|(hour, minute)| (hour, minute)),
    ]
    .prop_map(|(hour, minute)| {
        (
            format!("{hour}:{minute:02}"),
            ErrorKind::HourOutOfRange { hour },
        )
    });
    let minute = (0u8..=99, 60u8..=99).prop_map(|(hour, minute)| {
        (
            format!("{hour}:{minute}"),
            ErrorKind::MinuteOutOfRange { minute },
        )
    });
    (
        prop_oneof![hour, minute],
        (0u16..DAY).prop_map(|m| time(m, false)),
        any::<bool>(),
    )
        .prop_map(|((bad, kind), other, at_end)| {
            let text = if at_end {
                format!("{other}-{bad}")
            } else {
                format!("{bad}-{other}")
            };
            miss(text, kind)
        })
}

/// Just over [`MAX_ENTRIES`] days, well under [`MAX_INPUT_LEN`] bytes.
fn time_too_many_entries() -> impl Strategy<Value = NearMiss> {
    vec(weekday(), MAX_ENTRIES + 1..=MAX_ENTRIES + 8).prop_map(|days| {
        let entries: Vec<String> = days
            .iter()
            .map(|&day| DayRange::new(day, day).to_string())
            .collect();
        miss(entries.join(","), ErrorKind::TooManyEntries)
    })
}

/// 3,856 to 4,096 entries like `MON1:00-2:00` (12 characters), which print as
/// `MON 01:00-02:00` (15): the input fits in [`MAX_INPUT_LEN`] bytes, the canonical form does
/// not.
fn time_canonical_too_long() -> impl Strategy<Value = NearMiss> {
    vec(
        (weekday(), 0u8..10, 1u8..10, 0u8..60, 0u8..60),
        3856..=MAX_ENTRIES,
    )
    .prop_map(|entries| {
        let entries: Vec<String> = entries
            .iter()
            .map(|&(day, start, length, m1, m2)| {
                let end = (start + length) % 10;
                format!("{}{start}:{m1:02}-{end}:{m2:02}", DayRange::new(day, day))
            })
            .collect();
        miss(entries.join(","), ErrorKind::CanonicalTooLong)
    })
}
