//! The constraint lint against brute force: on small lists, every finding is checked at one
//! address (or minute) of every stretch on which no entry begins or ends, through the public
//! evaluation (`allows`, `allows_local`) of the list and of the list without each entry.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oco_core::chrono::{Duration, NaiveDate, NaiveDateTime};
use oco_core::constraint::{Finding, FindingKind, IpEntry, IpRanges, TimeFrame, TimeFrames};
use oco_core::ipnet::IpNet;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The checks, for both languages.

/// A constraint language as the checks see it, through its public API.
trait Language {
    type List: std::fmt::Display + std::fmt::Debug;
    type Entry: Copy + std::fmt::Display;
    type Point: Copy + std::fmt::Debug;
    fn entries(list: &Self::List) -> &[Self::Entry];
    /// The list of these entries, through their text.
    fn list(entries: &[Self::Entry]) -> Self::List;
    fn negated(entry: &Self::Entry) -> bool;
    /// Whether the entry covers the point, whatever its verdict.
    fn covers(entry: &Self::Entry, point: Self::Point) -> bool;
    fn allows(list: &Self::List, point: Self::Point) -> bool;
    fn lint(list: &Self::List) -> Vec<Finding>;
    /// One point of every stretch on which the list's verdicts (and its sublists') are constant.
    fn points(list: &Self::List) -> Vec<Self::Point>;
}

fn first_match<L: Language>(entries: &[L::Entry], point: L::Point) -> Option<usize> {
    entries.iter().position(|entry| L::covers(entry, point))
}

/// The lint's findings equal those computed by brute force.
fn findings_are_those_of_brute_force<L: Language>(list: &L::List) -> Result<(), TestCaseError> {
    let entries = L::entries(list);
    let points = L::points(list);
    let want = expected(
        entries.len(),
        &|i| L::negated(&entries[i]),
        &points,
        &|p| first_match::<L>(entries, p),
        &|i, p| L::covers(&entries[i], p),
        &|p| L::allows(list, p),
        &|i, p| L::allows(&L::list(&without(entries, i)), p),
    );
    prop_assert_eq!(kinds(&L::lint(list)), want, "`{}`", list);
    Ok(())
}

/// A shadowed entry's removal changes no verdict unless it is the only plain entry (whose
/// removal leaves negations, which allow what nothing matches); and moving it where the finding
/// says makes it apply and changes what the list means.
fn shadowed_entries_and_their_reordering<L: Language>(list: &L::List) -> Result<(), TestCaseError> {
    let entries = L::entries(list);
    let points = L::points(list);
    for finding in L::lint(list) {
        let FindingKind::Shadowed { move_before, .. } = finding.kind() else {
            continue;
        };
        let entry = finding.entry_number().unwrap() - 1;
        let rest = L::list(&without(entries, entry));
        let changes = points
            .iter()
            .any(|&p| L::allows(list, p) != L::allows(&rest, p));
        let only_plain =
            !L::negated(&entries[entry]) && entries.iter().filter(|e| !L::negated(e)).count() == 1;
        prop_assert!(
            !changes || only_plain,
            "`{}`: removing entry {}",
            list,
            entry + 1
        );
        if let Some(before) = move_before {
            let mut moved = without(entries, entry);
            moved.insert(before - 1, entries[entry]);
            let moved = L::list(&moved);
            let still = L::lint(&moved).iter().any(|f| {
                f.entry_number() == Some(*before)
                    && matches!(f.kind(), FindingKind::Shadowed { .. })
            });
            prop_assert!(!still, "`{}` still shadows the moved entry", moved);
            prop_assert!(points
                .iter()
                .any(|&p| L::allows(list, p) != L::allows(&moved, p)));
            if let Some(suggestion) = finding.suggestion() {
                prop_assert_eq!(suggestion, moved.to_string());
            }
        }
    }
    Ok(())
}

/// The entries' text joined, parsed.
fn joined<E: std::fmt::Display, T: std::str::FromStr>(entries: &[E]) -> T
where
    T::Err: std::fmt::Debug,
{
    entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// IP ranges.

/// Entries drawn from a small pool of nested and overlapping networks of both families, so that
/// shadowing and redundancy are common.
fn ip_entry() -> impl Strategy<Value = String> {
    let network = prop_oneof![
        (0u32..256, 24u8..=32).prop_map(|(host, len)| {
            let addr = u32::from(Ipv4Addr::new(10, 1, 2, 0)) | host;
            let net = oco_core::ipnet::Ipv4Net::new(addr.into(), len)
                .unwrap()
                .trunc();
            net.to_string()
        }),
        prop::sample::select(vec![
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.1.2.3",
            "192.168.0.0/16",
            "128.0.0.0/1",
            "::/0",
            "2001:db8::/32",
            "2001:db8::/64",
            "2001:db8::1",
            "::fffe:0:0/95",
            "::/64",
            "8000::/1",
        ])
        .prop_map(str::to_owned),
    ];
    (any::<bool>(), network).prop_map(
        |(negated, net)| {
            if negated {
                format!("!{net}")
            } else {
                net
            }
        },
    )
}

fn ip_list() -> impl Strategy<Value = IpRanges> {
    prop::collection::vec(ip_entry(), 0..7).prop_map(|entries| entries.join(", ").parse().unwrap())
}

fn without<T: Clone>(entries: &[T], removed: usize) -> Vec<T> {
    let mut rest = entries.to_vec();
    rest.remove(removed);
    rest
}

/// One address in every stretch of the space on which the list's verdicts (and those of any of
/// its sublists) are constant: each stretch begins at 0, at an entry's first address or just
/// after an entry's last one. IPv6 addresses in the IPv4-mapped block are skipped (they are
/// checked as IPv4), but the stretch after it is not.
fn ip_points(ranges: &IpRanges) -> Vec<IpAddr> {
    let mapped = (0xffff_u128 << 32)..=((0xffff_u128 << 32) | 0xffff_ffff);
    let mut v4: BTreeSet<u32> = BTreeSet::from([0]);
    let mut v6: BTreeSet<u128> = BTreeSet::from([0, mapped.end() + 1]);
    for entry in ranges.entries() {
        match entry.network() {
            IpNet::V4(net) => {
                v4.insert(net.network().into());
                v4.extend(u32::from(net.broadcast()).checked_add(1));
            }
            IpNet::V6(net) => {
                v6.insert(net.network().into());
                v6.extend(u128::from(net.broadcast()).checked_add(1));
            }
        }
    }
    v4.into_iter()
        .map(|a| IpAddr::V4(a.into()))
        .chain(
            v6.into_iter()
                .filter(|a| !mapped.contains(a))
                .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        )
        .collect()
}

struct Ip;

impl Language for Ip {
    type List = IpRanges;
    type Entry = IpEntry;
    type Point = IpAddr;
    fn entries(list: &IpRanges) -> &[IpEntry] {
        list.entries()
    }
    fn list(entries: &[IpEntry]) -> IpRanges {
        joined(entries)
    }
    fn negated(entry: &IpEntry) -> bool {
        entry.is_negated()
    }
    fn covers(entry: &IpEntry, addr: IpAddr) -> bool {
        // IPv4-mapped addresses are checked as IPv4.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        entry.network().contains(&addr)
    }
    fn allows(list: &IpRanges, addr: IpAddr) -> bool {
        list.allows(addr)
    }
    fn lint(list: &IpRanges) -> Vec<Finding> {
        list.lint()
    }
    fn points(list: &IpRanges) -> Vec<IpAddr> {
        ip_points(list)
    }
}

fn kinds(findings: &[Finding]) -> Vec<(Option<usize>, FindingKind)> {
    findings
        .iter()
        .map(|f| (f.entry_number(), f.kind().clone()))
        .collect()
}

/// What the lint must report, computed by brute force over `points`.
fn expected<P: Copy>(
    len: usize,
    negated: &dyn Fn(usize) -> bool,
    points: &[P],
    first_match: &dyn Fn(P) -> Option<usize>,
    inside: &dyn Fn(usize, P) -> bool,
    allows: &dyn Fn(P) -> bool,
    allows_without: &dyn Fn(usize, P) -> bool,
) -> Vec<(Option<usize>, FindingKind)> {
    let mut found = Vec::new();
    if len == 0 {
        return found;
    }
    for entry in 0..len {
        let applies = points.iter().any(|&p| first_match(p) == Some(entry));
        if !applies {
            let by: BTreeSet<usize> = points
                .iter()
                .filter(|&&p| inside(entry, p))
                .filter_map(|&p| first_match(p))
                .collect();
            let before = by
                .iter()
                .any(|&cause| negated(cause) != negated(entry))
                .then(|| by.first().copied())
                .flatten();
            found.push((
                Some(entry + 1),
                FindingKind::Shadowed {
                    by: by.iter().map(|cause| cause + 1).collect(),
                    move_before: before.map(|b| b + 1),
                },
            ));
        } else if points
            .iter()
            .all(|&p| allows(p) == allows_without(entry, p))
        {
            found.push((Some(entry + 1), FindingKind::Redundant));
        }
    }
    if points.iter().all(|&p| allows(p)) {
        found.push((None, FindingKind::AllowsEverything));
    } else if points.iter().all(|&p| !allows(p)) {
        found.push((None, FindingKind::DeniesEverything));
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ip_findings_are_those_of_brute_force(ranges in ip_list()) {
        findings_are_those_of_brute_force::<Ip>(&ranges)?;
    }

    #[test]
    fn ip_shadowed_entries_and_their_reordering(ranges in ip_list()) {
        shadowed_entries_and_their_reordering::<Ip>(&ranges)?;
    }

    #[test]
    fn ip_spans_point_at_the_entries(ranges in ip_list(), blank in "[ \t]{0,2}") {
        let canonical = ranges.to_string();
        let spaced = canonical.replace(", ", &format!("{blank},{blank},"));
        let (parsed, findings) = IpRanges::parse_linted(&spaced).unwrap();
        prop_assert_eq!(&parsed, &ranges);
        prop_assert_eq!(kinds(&findings), kinds(&ranges.lint()));
        for (linted, canonical_finding) in findings.iter().zip(ranges.lint()) {
            match linted.entry_number() {
                Some(number) => {
                    let text = ranges.entries()[number - 1].to_string();
                    prop_assert_eq!(&spaced[linted.span()], text.as_str());
                    prop_assert_eq!(&canonical[canonical_finding.span()], text.as_str());
                }
                None => {
                    prop_assert_eq!(linted.span(), 0..spaced.len());
                    prop_assert_eq!(canonical_finding.span(), 0..canonical.len());
                }
            }
            prop_assert!(linted.render(&spaced).starts_with(&linted.to_string()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time frames.

fn time_entry() -> impl Strategy<Value = String> {
    let days = prop::sample::select(vec![
        "", "MON", "SAT", "SUN", "MON-FRI", "FRI-MON", "SAT-SUN",
    ]);
    let time = prop::sample::select(vec![0u16, 6, 8, 12, 13, 17, 22, 24]);
    let window = prop_oneof![
        Just(None),
        (time.clone(), time).prop_filter_map("empty window", |(start, end)| {
            (start != end && start != 24).then(|| Some(format!("{start}:00-{end}:00")))
        }),
    ];
    (any::<bool>(), days, window).prop_filter_map("empty entry", |(negated, days, window)| {
        let body = match (days, window) {
            ("", None) => return None,
            (days, None) => days.to_owned(),
            ("", Some(window)) => window,
            (days, Some(window)) => format!("{days} {window}"),
        };
        Some(if negated { format!("!{body}") } else { body })
    })
}

fn time_list() -> impl Strategy<Value = TimeFrames> {
    prop::collection::vec(time_entry(), 0..6)
        .prop_map(|entries| entries.join(", ").parse().unwrap())
}

/// One instant (a local time on the week of Monday 2026-11-23) in every stretch of minutes on
/// which no window begins or ends.
fn time_points(frames: &TimeFrames) -> Vec<NaiveDateTime> {
    let monday = NaiveDate::from_ymd_opt(2026, 11, 23)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut minutes: BTreeSet<i64> = BTreeSet::new();
    for day in 0..7 {
        minutes.insert(day * 1440);
        for entry in frames.entries() {
            if let Some(window) = entry.window() {
                for minute in [window.start_minute(), window.end_minute()] {
                    minutes.insert((day * 1440 + i64::from(minute)) % (7 * 1440));
                }
            }
        }
    }
    minutes
        .into_iter()
        .map(|minute| monday + Duration::minutes(minute))
        .collect()
}

struct Time;

impl Language for Time {
    type List = TimeFrames;
    type Entry = TimeFrame;
    type Point = NaiveDateTime;
    fn entries(list: &TimeFrames) -> &[TimeFrame] {
        list.entries()
    }
    fn list(entries: &[TimeFrame]) -> TimeFrames {
        joined(entries)
    }
    fn negated(entry: &TimeFrame) -> bool {
        entry.is_negated()
    }
    fn covers(entry: &TimeFrame, at: NaiveDateTime) -> bool {
        // The entry alone, without its `!`, allows exactly what it covers.
        let text = entry.to_string();
        let plain: TimeFrames = text.trim_start_matches('!').parse().unwrap();
        plain.allows_local(at)
    }
    fn allows(list: &TimeFrames, at: NaiveDateTime) -> bool {
        list.allows_local(at)
    }
    fn lint(list: &TimeFrames) -> Vec<Finding> {
        list.lint()
    }
    fn points(list: &TimeFrames) -> Vec<NaiveDateTime> {
        time_points(list)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn time_findings_are_those_of_brute_force(frames in time_list()) {
        findings_are_those_of_brute_force::<Time>(&frames)?;
    }

    #[test]
    fn time_shadowed_entries_and_their_reordering(frames in time_list()) {
        shadowed_entries_and_their_reordering::<Time>(&frames)?;
    }

    #[test]
    fn time_spans_point_at_the_entries(frames in time_list()) {
        let canonical = frames.to_string();
        let spaced = format!(" ,{}\t", canonical.replace(", ", " ,\t"));
        let (parsed, findings) = TimeFrames::parse_linted(&spaced).unwrap();
        prop_assert_eq!(&parsed, &frames);
        prop_assert_eq!(kinds(&findings), kinds(&frames.lint()));
        for finding in &findings {
            if let Some(number) = finding.entry_number() {
                prop_assert_eq!(&spaced[finding.span()], frames.entries()[number - 1].to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

#[test]
fn messages_name_the_entries_and_the_reordering() {
    let lint = |text: &str| -> Vec<String> {
        IpRanges::parse_linted(text)
            .unwrap()
            .1
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        lint("10.0.0.0/8, !10.66.0.0/16"),
        ["entry 2 `!10.66.0.0/16` never applies: entry 1 `10.0.0.0/8` already allows all of it; \
          did you mean `!10.66.0.0/16, 10.0.0.0/8`?"]
    );
    assert_eq!(
        lint("10.0.0.0/9, 10.128.0.0/9, 10.0.0.0/8"),
        [
            "entry 1 `10.0.0.0/9` is redundant: removing it changes no verdict",
            "entry 2 `10.128.0.0/9` is redundant: removing it changes no verdict",
            "entry 3 `10.0.0.0/8` never applies: entries 1 `10.0.0.0/9` and 2 `10.128.0.0/9` \
             already allow all of it"
        ]
    );
    assert_eq!(
        lint("10.0.0.0/10, !10.64.0.0/10, 10.128.0.0/10, 10.192.0.0/10, !10.0.0.0/8"),
        [
            "entry 2 `!10.64.0.0/10` is redundant: removing it changes no verdict",
            "entry 5 `!10.0.0.0/8` never applies: entries 1 `10.0.0.0/10`, 2 `!10.64.0.0/10`, \
             3 `10.128.0.0/10` and 1 more already decide all of it; did you mean \
             `!10.0.0.0/8, 10.0.0.0/10, !10.64.0.0/10, 10.128.0.0/10, 10.192.0.0/10`?"
        ]
    );
    assert_eq!(
        lint("0.0.0.0/0, ::/0"),
        ["the list allows every address, as no constraint would"]
    );
    assert_eq!(
        lint("!0.0.0.0/0, ::1"),
        ["entry 1 `!0.0.0.0/0` is redundant: removing it changes no verdict"]
    );
    assert_eq!(
        lint("!0.0.0.0/0, !::/0, 10.0.0.1"),
        [
            "entry 2 `!::/0` is redundant: removing it changes no verdict",
            "entry 3 `10.0.0.1` never applies: entry 1 `!0.0.0.0/0` already denies all of it; \
             did you mean `10.0.0.1, !0.0.0.0/0, !::/0`?",
            "the list denies every address: no agent can receive a job under it"
        ]
    );
    let frames = TimeFrames::parse_linted("SAT, !SAT 11:00-13:00, !SUN")
        .unwrap()
        .1;
    assert_eq!(
        frames.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "entry 2 `!SAT 11:00-13:00` never applies: entry 1 `SAT` already allows all of it; \
             did you mean `!SAT 11:00-13:00, SAT, !SUN`?",
            "entry 3 `!SUN` is redundant: removing it changes no verdict"
        ]
    );
    assert_eq!(
        TimeFrames::parse_linted("!MON-SUN, 08:00-09:00")
            .unwrap()
            .1
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "entry 2 `08:00-09:00` never applies: entry 1 `!MON-SUN` already denies all of it; \
             did you mean `08:00-09:00, !MON-SUN`?",
            "the list denies every time of the week: a job under it is never handed out"
        ]
    );
}

#[test]
fn a_long_reordering_names_the_entry_to_move_before() {
    let mut text: Vec<String> = (0..20).map(|i| format!("10.{i}.0.0/16")).collect();
    text.insert(0, "10.0.0.0/8".into());
    text.push("!10.99.0.0/16".into());
    let findings = IpRanges::parse_linted(&text.join(", ")).unwrap().1;
    let shadowed = findings
        .iter()
        .find(|f| f.entry_number() == Some(22))
        .unwrap();
    assert_eq!(shadowed.suggestion(), None);
    assert_eq!(
        shadowed.to_string(),
        "entry 22 `!10.99.0.0/16` never applies: entry 1 `10.0.0.0/8` already allows all of it; \
         did you mean to put it before entry 1?"
    );
}

#[test]
fn lists_beyond_the_text_limits_are_linted_in_code() {
    use oco_core::constraint::lint_ip_entries;
    let mut entries: Vec<IpEntry> = (0..10_000u32)
        .map(|i| {
            let net = oco_core::ipnet::Ipv4Net::new((0x0a00_0000 + (i << 8)).into(), 24).unwrap();
            IpEntry::new(net.into(), true)
        })
        .collect();
    entries.push(IpEntry::new("0.0.0.0/0".parse().unwrap(), false));
    entries.push(IpEntry::new("10.0.1.0/24".parse().unwrap(), false));
    let findings = lint_ip_entries(&entries);
    assert_eq!(
        kinds(&findings),
        [(
            Some(10_002),
            FindingKind::Shadowed {
                by: vec![2],
                move_before: Some(2)
            }
        )]
    );
}
