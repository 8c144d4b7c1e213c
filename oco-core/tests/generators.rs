//! The generators for downstream tests: `Arbitrary` (feature `arbitrary`), the strategies of
//! `oco_core::constraint::strategy` (feature `proptest`), and the constructors they build on.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::mem::discriminant;
use std::str::FromStr;

use arbitrary::{Arbitrary, Unstructured};
use oco_core::chrono::Weekday;
use oco_core::constraint::{
    strategy, BuildError, DayRange, ErrorKind, IpEntry, IpRanges, ParseError, TimeFrame,
    TimeFrames, TimeWindow, MAX_ENTRIES, MAX_INPUT_LEN,
};
use oco_core::ipnet::IpNet;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Parses `text`, failing the property with the rendered error.
fn parse<T: FromStr<Err = ParseError>>(text: &str) -> Result<T, TestCaseError> {
    text.parse()
        .map_err(|err: ParseError| TestCaseError::fail(err.render(text)))
}

/// `value` prints as a text within the limits that parses back to it and prints identically.
fn check_round_trip<T>(value: &T, entries: usize) -> Result<(), TestCaseError>
where
    T: FromStr<Err = ParseError> + Display + Debug + PartialEq,
{
    let text = value.to_string();
    prop_assert!(entries <= MAX_ENTRIES, "{} entries", entries);
    prop_assert!(text.len() <= MAX_INPUT_LEN, "{} bytes", text.len());
    let reparsed: T = parse(&text)?;
    prop_assert_eq!(&reparsed, value);
    prop_assert_eq!(reparsed.to_string(), text);
    Ok(())
}

/// An entry as the parser produces it: normalised, IPv4-mapped networks as IPv4.
fn check_ip_entry(entry: &IpEntry) -> Result<(), TestCaseError> {
    prop_assert_eq!(IpEntry::new(entry.network(), entry.is_negated()), *entry);
    if let IpNet::V6(net) = entry.network() {
        prop_assert!(
            net.prefix_len() < 96 || net.network().to_ipv4_mapped().is_none(),
            "{} is IPv4-mapped",
            net
        );
    }
    Ok(())
}

/// A frame as the parser produces it: days or a window, a window never empty.
fn check_time_frame(frame: &TimeFrame) -> Result<(), TestCaseError> {
    prop_assert!(frame.days().is_some() || frame.window().is_some());
    if let Some(window) = frame.window() {
        check_time_window(&window)?;
    }
    Ok(())
}

fn check_time_window(window: &TimeWindow) -> Result<(), TestCaseError> {
    prop_assert!(window.start_minute() < 1440);
    prop_assert!(window.end_minute() <= 1440);
    prop_assert_ne!(window.start_minute(), window.end_minute());
    Ok(())
}

fn check_ip_ranges(ranges: &IpRanges) -> Result<(), TestCaseError> {
    check_round_trip(ranges, ranges.entries().len())?;
    prop_assert_eq!(
        &IpRanges::from_entries(ranges.entries().iter().copied()).unwrap(),
        ranges
    );
    for entry in ranges.entries() {
        check_ip_entry(entry)?;
    }
    Ok(())
}

fn check_time_frames(frames: &TimeFrames) -> Result<(), TestCaseError> {
    check_round_trip(frames, frames.entries().len())?;
    prop_assert_eq!(
        &TimeFrames::from_entries(frames.entries().iter().copied()).unwrap(),
        frames
    );
    for frame in frames.entries() {
        check_time_frame(frame)?;
    }
    Ok(())
}

/// `count` values of `strategy`, the same on every run.
fn sample<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Input for `Arbitrary`: mostly short, sometimes long enough for long lists.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => proptest::collection::vec(any::<u8>(), 0..8192),
    ]
}

proptest! {
    #[test]
    fn arbitrary_ip_ranges_are_valid_and_round_trip(bytes in bytes()) {
        let ranges = IpRanges::arbitrary(&mut Unstructured::new(&bytes));
        let ranges = ranges.map_err(|err| TestCaseError::fail(err.to_string()))?;
        check_ip_ranges(&ranges)?;
        let rest = IpRanges::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        check_ip_ranges(&rest)?;
    }

    #[test]
    fn arbitrary_time_frames_are_valid_and_round_trip(bytes in bytes()) {
        let frames = TimeFrames::arbitrary(&mut Unstructured::new(&bytes));
        let frames = frames.map_err(|err| TestCaseError::fail(err.to_string()))?;
        check_time_frames(&frames)?;
        let rest = TimeFrames::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        check_time_frames(&rest)?;
    }

    /// The entry types on their own, read one after the other until the input runs out (and
    /// then from nothing, which reads as zeros).
    #[test]
    fn arbitrary_entries_are_valid(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut u = Unstructured::new(&bytes);
        for _ in 0..64 {
            check_ip_entry(&IpEntry::arbitrary(&mut u).unwrap())?;
            check_time_frame(&TimeFrame::arbitrary(&mut u).unwrap())?;
            check_time_window(&TimeWindow::arbitrary(&mut u).unwrap())?;
            let days = DayRange::arbitrary(&mut u).unwrap();
            prop_assert_eq!(DayRange::new(days.first(), days.last()), days);
        }
    }

    #[test]
    fn strategy_values_are_valid_and_round_trip(
        ranges in strategy::ip_ranges(),
        frames in strategy::time_frames(),
    ) {
        check_ip_ranges(&ranges)?;
        check_time_frames(&frames)?;
    }

    #[test]
    fn canonical_text_parses_to_the_value_and_prints_back(
        (ranges, ip_text) in strategy::ip_ranges_canonical(),
        (frames, time_text) in strategy::time_frames_canonical(),
    ) {
        prop_assert_eq!(&parse::<IpRanges>(&ip_text)?, &ranges);
        prop_assert_eq!(ranges.to_string(), ip_text);
        prop_assert_eq!(&parse::<TimeFrames>(&time_text)?, &frames);
        prop_assert_eq!(frames.to_string(), time_text);
    }

    #[test]
    fn ip_spellings_parse_to_their_value((ranges, text) in strategy::ip_ranges_spelled()) {
        prop_assert_ne!(&text, &ranges.to_string());
        prop_assert_eq!(parse::<IpRanges>(&text)?, ranges);
    }

    #[test]
    fn time_spellings_parse_to_their_value((frames, text) in strategy::time_frames_spelled()) {
        prop_assert_ne!(&text, &frames.to_string());
        prop_assert_eq!(parse::<TimeFrames>(&text)?, frames);
    }

    #[test]
    fn ip_near_misses_fail_with_their_kind(miss in strategy::ip_ranges_near_miss()) {
        match miss.text.parse::<IpRanges>() {
            Ok(ranges) => prop_assert!(false, "{:?} parsed as `{}`", miss.text, ranges),
            Err(err) => prop_assert_eq!(err.kind(), &miss.kind, "{}", err.render(&miss.text)),
        }
    }

    #[test]
    fn time_near_misses_fail_with_their_kind(miss in strategy::time_frames_near_miss()) {
        match miss.text.parse::<TimeFrames>() {
            Ok(frames) => prop_assert!(false, "{:?} parsed as `{}`", miss.text, frames),
            Err(err) => prop_assert_eq!(err.kind(), &miss.kind, "{}", err.render(&miss.text)),
        }
    }

    #[test]
    fn compiled_ip_matcher_agrees_on_the_probes(
        (ranges, addrs) in strategy::ip_ranges_with_addrs(),
    ) {
        let matcher = ranges.compile();
        for addr in addrs {
            prop_assert_eq!(matcher.allows(addr), ranges.allows(addr), "{} for `{}`", addr, ranges);
        }
    }

    #[test]
    fn compiled_week_matcher_agrees_on_the_probes(
        (frames, times) in strategy::time_frames_with_times(),
    ) {
        let matcher = frames.compile();
        for time in times {
            let (compiled, plain) = (matcher.allows_local(time), frames.allows_local(time));
            prop_assert_eq!(compiled, plain, "{} for `{}`", time, frames);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn long_strategy_lists_stay_within_the_limits(
        ranges in strategy::ip_ranges_with_len(MAX_ENTRIES - 8..=MAX_ENTRIES + 8),
        frames in strategy::time_frames_with_len(MAX_ENTRIES - 8..=MAX_ENTRIES + 8),
    ) {
        check_ip_ranges(&ranges)?;
        check_time_frames(&frames)?;
        // Cut at the entry limit or close to the length limit, never far below both.
        let longest_entry = "!ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127, ".len();
        for (entries, len) in [
            (ranges.entries().len(), ranges.to_string().len()),
            (frames.entries().len(), frames.to_string().len()),
        ] {
            prop_assert!(entries >= MAX_ENTRIES - 8 || len + longest_entry > MAX_INPUT_LEN);
        }
    }
}

/// Random inputs reach every case the `Arbitrary` impls promise, the limits included.
#[test]
fn arbitrary_covers_the_edges_and_reaches_the_limits() {
    let mut ip_seen = BTreeSet::new();
    let mut time_seen = BTreeSet::new();
    for bytes in sample(proptest::collection::vec(any::<u8>(), 0..96), 4000) {
        let ranges = IpRanges::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let len = ranges.to_string().len();
        if ranges.entries().len() == MAX_ENTRIES {
            ip_seen.insert("MAX_ENTRIES entries");
        }
        if len > MAX_INPUT_LEN - 64 {
            ip_seen.insert("canonical form near MAX_INPUT_LEN");
        }
        if ranges.entries().is_empty() {
            ip_seen.insert("empty");
        }
        for entry in ranges.entries() {
            let net = entry.network();
            ip_seen.insert(match (net, net.prefix_len()) {
                (IpNet::V4(_), 0) => "0.0.0.0/0",
                (IpNet::V4(_), 32) => "IPv4 host",
                (IpNet::V4(_), _) => "IPv4 network",
                (IpNet::V6(_), 0) => "::/0",
                (IpNet::V6(_), 128) => "IPv6 host",
                (IpNet::V6(_), _) => "IPv6 network",
            });
            if entry.is_negated() {
                ip_seen.insert("negated");
            }
        }

        let frames = TimeFrames::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let len = frames.to_string().len();
        if frames.entries().len() == MAX_ENTRIES {
            time_seen.insert("MAX_ENTRIES entries");
        }
        if len > MAX_INPUT_LEN - 64 {
            time_seen.insert("canonical form near MAX_INPUT_LEN");
        }
        for frame in frames.entries() {
            if frame.is_negated() {
                time_seen.insert("negated");
            }
            match (frame.days(), frame.window()) {
                (None, Some(_)) => time_seen.insert("window without days"),
                (Some(_), None) => time_seen.insert("days without window"),
                _ => time_seen.insert("days and window"),
            };
            if let Some(days) = frame.days() {
                time_seen.insert(
                    match days
                        .first()
                        .num_days_from_monday()
                        .cmp(&days.last().num_days_from_monday())
                    {
                        std::cmp::Ordering::Less => "day range",
                        std::cmp::Ordering::Equal => "single day",
                        std::cmp::Ordering::Greater => "wrapping day range",
                    },
                );
            }
            if let Some(window) = frame.window() {
                if window.crosses_midnight() {
                    time_seen.insert("across midnight");
                }
                if window.end_minute() == 1440 {
                    time_seen.insert("ends at 24:00");
                }
                if window.start_minute() == 0 {
                    time_seen.insert("starts at 00:00");
                }
            }
        }
    }
    let ip_expected = [
        "0.0.0.0/0",
        "::/0",
        "IPv4 host",
        "IPv4 network",
        "IPv6 host",
        "IPv6 network",
        "MAX_ENTRIES entries",
        "canonical form near MAX_INPUT_LEN",
        "empty",
        "negated",
    ];
    assert_eq!(ip_seen, BTreeSet::from(ip_expected));
    let time_expected = [
        "MAX_ENTRIES entries",
        "across midnight",
        "canonical form near MAX_INPUT_LEN",
        "day range",
        "days and window",
        "days without window",
        "ends at 24:00",
        "negated",
        "single day",
        "starts at 00:00",
        "window without days",
        "wrapping day range",
    ];
    assert_eq!(time_seen, BTreeSet::from(time_expected));
}

/// The IPv4-mapped family of `IpEntry::arbitrary` goes through `IpEntry::new`, so it comes out
/// as IPv4. (The bytes follow the impl's reading order: not negated, family 6, the address
/// little-endian, prefix choice 1, the longest.)
#[test]
fn arbitrary_ip_entries_include_normalised_mapped_networks() {
    // Negation 0, family 6 (IPv4-mapped), address 10.1.2.3 (little-endian), prefix "max" (/128).
    let bytes = [0u8, 6, 3, 2, 1, 10, 1];
    let entry = IpEntry::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
    assert_eq!(entry.network(), "10.1.2.3/32".parse::<IpNet>().unwrap());
}

#[test]
fn near_misses_cover_every_error_kind_of_their_language() {
    let common = [
        ErrorKind::TooLong { len: 0 },
        ErrorKind::TooManyEntries,
        ErrorKind::CanonicalTooLong,
        ErrorKind::EmptyNegation,
        ErrorKind::DoubleNegation,
        ErrorKind::TrailingGarbage,
    ];
    let ip_only = [
        ErrorKind::MissingAddress,
        ErrorKind::InvalidAddress,
        ErrorKind::LeadingZeroInAddress,
        ErrorKind::ZoneId,
        ErrorKind::MissingPrefix,
        ErrorKind::InvalidPrefix,
        ErrorKind::LeadingZeroInPrefix,
        ErrorKind::PrefixOutOfRange { max: 0 },
        ErrorKind::HostBitsSet {
            network: IpNet::default(),
        },
    ];
    let time_only = [
        ErrorKind::ExpectedDayOrTime,
        ErrorKind::UnknownDay,
        ErrorKind::MissingDay,
        ErrorKind::InvalidTime,
        ErrorKind::SecondsNotAllowed,
        ErrorKind::HourOutOfRange { hour: 0 },
        ErrorKind::MinuteOutOfRange { minute: 0 },
        ErrorKind::StartAt24,
        ErrorKind::MissingEnd,
        ErrorKind::EmptyWindow,
    ];
    let kinds = |kinds: &[ErrorKind]| -> Vec<String> {
        let mut names: Vec<String> = kinds.iter().map(kind_name).collect();
        names.sort();
        names.dedup();
        names
    };
    let ip_seen: Vec<ErrorKind> = sample(strategy::ip_ranges_near_miss(), 3000)
        .into_iter()
        .map(|miss| miss.kind)
        .collect();
    let time_seen: Vec<ErrorKind> = sample(strategy::time_frames_near_miss(), 3000)
        .into_iter()
        .map(|miss| miss.kind)
        .collect();
    assert_eq!(
        kinds(&ip_seen),
        kinds(&[&common[..], &ip_only[..]].concat())
    );
    assert_eq!(
        kinds(&time_seen),
        kinds(&[&common[..], &time_only[..]].concat())
    );
    // Distinct discriminants: the names above are the variants' names.
    assert_eq!(
        common
            .iter()
            .chain(&ip_only)
            .chain(&time_only)
            .map(discriminant)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        common.len() + ip_only.len() + time_only.len()
    );
}

/// The variant's name, without its data.
fn kind_name(kind: &ErrorKind) -> String {
    let debug = format!("{kind:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn from_entries_enforces_the_text_limits() {
    let host = IpEntry::new("10.0.0.1/32".parse().unwrap(), false);
    assert_eq!(
        IpRanges::from_entries(vec![host; MAX_ENTRIES])
            .unwrap()
            .entries()
            .len(),
        MAX_ENTRIES
    );
    assert_eq!(
        IpRanges::from_entries(vec![host; MAX_ENTRIES + 1]),
        Err(BuildError::TooManyEntries {
            count: MAX_ENTRIES + 1
        })
    );
    // 15 bytes each and 2 between: 3,855 entries print as 65,533 bytes, 3,856 as 65,550.
    let wide = IpEntry::new("255.255.255.255/32".parse().unwrap(), false);
    let fits = IpRanges::from_entries(vec![wide; 3855]).unwrap();
    assert_eq!(fits.to_string().len(), 65_533);
    assert_eq!(parse::<IpRanges>(&fits.to_string()).unwrap(), fits);
    assert_eq!(
        IpRanges::from_entries(vec![wide; 3856]),
        Err(BuildError::CanonicalTooLong { len: 65_550 })
    );

    let frame = TimeFrame::new(
        Some(DayRange::new(Weekday::Mon, Weekday::Fri)),
        Some(TimeWindow::new(8 * 60, 17 * 60).unwrap()),
        true,
    )
    .unwrap();
    // `!MON-FRI 08:00-17:00` is 20 bytes: 2,978 entries print as 65,514, 2,979 as 65,536, 2,980
    // as 65,558.
    assert_eq!(
        TimeFrames::from_entries(vec![frame; 2979])
            .unwrap()
            .to_string()
            .len(),
        MAX_INPUT_LEN
    );
    assert_eq!(
        TimeFrames::from_entries(vec![frame; 2980]),
        Err(BuildError::CanonicalTooLong { len: 65_558 })
    );
    assert_eq!(
        TimeFrames::from_entries(vec![frame; MAX_ENTRIES + 1]),
        Err(BuildError::TooManyEntries {
            count: MAX_ENTRIES + 1
        })
    );
    assert_eq!(TimeFrames::from_entries([]), Ok(TimeFrames::default()));
}

#[test]
fn window_and_frame_constructors_refuse_what_the_parser_refuses() {
    assert_eq!(
        TimeWindow::new(1440, 0),
        Err(BuildError::StartOutOfRange { minute: 1440 })
    );
    assert_eq!(
        TimeWindow::new(0, 1441),
        Err(BuildError::EndOutOfRange { minute: 1441 })
    );
    assert_eq!(
        TimeWindow::new(0, 0),
        Err(BuildError::EmptyWindow { minute: 0 })
    );
    let midnight = TimeWindow::new(22 * 60, 0).unwrap();
    assert!(midnight.crosses_midnight());
    assert_eq!(midnight.to_string(), "22:00-00:00");
    let whole_day = TimeWindow::new(0, 1440).unwrap();
    assert_eq!(whole_day.to_string(), "00:00-24:00");
    assert_eq!(
        TimeFrame::new(None, Some(whole_day), false)
            .unwrap()
            .to_string(),
        "00:00-24:00"
    );
    assert_eq!(
        TimeFrame::new(None, None, false),
        Err(BuildError::EmptyFrame)
    );

    let wrap = DayRange::new(Weekday::Sat, Weekday::Tue);
    assert_eq!((wrap.first(), wrap.last()), (Weekday::Sat, Weekday::Tue));
    let frame = TimeFrame::new(Some(wrap), None, true).unwrap();
    assert_eq!(frame.to_string(), "!SAT-TUE");
    assert_eq!(parse::<TimeFrames>("!SAT-TUE").unwrap().entries(), &[frame]);
}

#[test]
fn build_error_messages() {
    let cases = [
        (
            BuildError::TooManyEntries { count: 4097 },
            "the list has 4097 entries; at most 4096 are allowed",
        ),
        (
            BuildError::CanonicalTooLong { len: 65_548 },
            "the list's canonical form is 65548 bytes long; at most 65536 are allowed",
        ),
        (
            BuildError::StartOutOfRange { minute: 1440 },
            "a window starts at minute 0 to 1439 of the day (00:00 to 23:59), not at 1440",
        ),
        (
            BuildError::EndOutOfRange { minute: 1441 },
            "a window ends at minute 0 to 1440 of the day (00:00 to 24:00), not at 1441",
        ),
        (
            BuildError::EmptyWindow { minute: 485 },
            "the window starts where it ends (08:05) and would never match; \
             leave the window out for a whole day",
        ),
        (
            BuildError::EmptyFrame,
            "a time frame needs days, a window or both; it has neither",
        ),
    ];
    for (err, message) in cases {
        assert_eq!(err.to_string(), message);
    }
}
