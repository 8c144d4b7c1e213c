//! Time frames through the public API: wall-clock evaluation, zones and DST, `next_open`,
//! canonical form, errors and their messages.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oco_core::chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::constraint::{ErrorKind, ParseError, TimeFrames, MAX_ENTRIES};

fn frames(text: &str) -> TimeFrames {
    text.parse()
        .unwrap_or_else(|err: ParseError| panic!("{}", err.render(text)))
}

/// A local time in the week of Monday 2026-11-23, e.g. `("Sat", "23:59:30")`.
fn local(day: &str, time: &str) -> NaiveDateTime {
    let date = match day {
        "Mon" => 23,
        "Tue" => 24,
        "Wed" => 25,
        "Thu" => 26,
        "Fri" => 27,
        "Sat" => 28,
        "Sun" => 29,
        _ => panic!("unknown test day {day}"),
    };
    let time = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_owned()
    };
    NaiveDateTime::parse_from_str(&format!("2026-11-{date} {time}"), "%Y-%m-%d %H:%M:%S").unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

const DOC: &str = "6:00-7:00, FRI 18:00-23:00, !SAT 11:00-13:00, SAT";

/// (constraint, day, local time, allowed)
const EVALUATION: &[(&str, &str, &str, bool)] = &[
    // The spec's normative examples.
    (DOC, "Sat", "12:00", false),
    (DOC, "Sat", "23:59:30", true),
    (DOC, "Mon", "07:00:00", false),
    ("FRI 22:00-02:00", "Sat", "01:59", true),
    ("MON-FRI 08:00-17:00", "Wed", "16:59:59", true),
    ("FRI-SUN 22:00-02:00", "Mon", "01:00", true),
    // More of the documentation's list.
    (DOC, "Mon", "06:00:00", true),
    (DOC, "Mon", "06:59:59", true),
    (DOC, "Mon", "05:59:59", false),
    (DOC, "Fri", "18:00", true),
    (DOC, "Fri", "22:59:59", true),
    (DOC, "Fri", "23:00", false),
    (DOC, "Sat", "10:59:59", true),
    (DOC, "Sat", "11:00", false),
    (DOC, "Sat", "12:59:59", false),
    (DOC, "Sat", "13:00", true),
    (DOC, "Sat", "06:30", true),
    (DOC, "Sun", "06:30", true),
    (DOC, "Sun", "12:00", false),
    // Windows crossing midnight belong to the day they start.
    ("FRI 22:00-02:00", "Sat", "02:00", false),
    ("FRI 22:00-02:00", "Fri", "22:00", true),
    ("FRI 22:00-02:00", "Fri", "21:59:59", false),
    ("FRI 22:00-02:00", "Fri", "01:00", false),
    ("FRI 22:00-02:00", "Sun", "01:00", false),
    ("FRI-SUN 22:00-02:00", "Mon", "02:00", false),
    ("FRI-SUN 22:00-02:00", "Fri", "01:00", false),
    ("FRI-SUN 22:00-02:00", "Sat", "01:00", true),
    ("FRI-SUN 22:00-02:00", "Thu", "23:00", false),
    ("FRI-SUN 22:00-02:00", "Sun", "23:00", true),
    ("SUN 23:00-01:00", "Mon", "00:30", true),
    ("SUN 23:00-01:00", "Sun", "00:30", false),
    ("22:00-06:00", "Mon", "23:00", true),
    ("22:00-06:00", "Mon", "05:59:59", true),
    ("22:00-06:00", "Mon", "06:00", false),
    ("22:00-06:00", "Mon", "21:59:59", false),
    ("22:00-00:00", "Mon", "23:59:59", true),
    ("22:00-00:00", "Tue", "00:00", false),
    // Half-open windows, `24:00`, whole days.
    ("MON-FRI 08:00-17:00", "Wed", "17:00", false),
    ("MON-FRI 08:00-17:00", "Mon", "08:00", true),
    ("MON-FRI 08:00-17:00", "Sat", "10:00", false),
    ("SAT 0:00-23:59", "Sat", "23:59:00", false),
    ("SAT 0:00-23:59", "Sat", "23:58:59", true),
    ("SAT 0:00-23:59", "Sat", "00:00", true),
    ("SAT 0:00-24:00", "Sat", "23:59:59", true),
    ("SAT 0:00-24:00", "Sun", "00:00", false),
    ("SAT", "Sat", "23:59:59", true),
    ("SAT", "Fri", "23:59:59", false),
    ("WED 12:00-12:01", "Wed", "12:00:59", true),
    ("WED 12:00-12:01", "Wed", "12:01:00", false),
    ("00:00-24:00", "Thu", "13:37", true),
    // Day ranges, wrapping and single.
    ("FRI-MON", "Sat", "10:00", true),
    ("FRI-MON", "Sun", "10:00", true),
    ("FRI-MON", "Mon", "10:00", true),
    ("FRI-MON", "Fri", "00:00", true),
    ("FRI-MON", "Tue", "10:00", false),
    ("FRI-MON", "Thu", "23:59:59", false),
    ("MON-MON", "Mon", "10:00", true),
    ("MON-MON", "Tue", "10:00", false),
    ("monday-FRIDAY 8:00-17:00", "Thu", "10:00", true),
    ("MON11:00-13:00", "Mon", "12:00", true),
    ("MON11:00-13:00", "Tue", "12:00", false),
    // Negations and first match.
    ("!SAT-SUN", "Sat", "10:00", false),
    ("!SAT-SUN", "Mon", "10:00", true),
    ("!12:00-13:00", "Mon", "12:30", false),
    ("!12:00-13:00", "Mon", "13:00", true),
    ("!MON 08:00-09:00, MON-FRI", "Mon", "08:30", false),
    ("!MON 08:00-09:00, MON-FRI", "Mon", "09:00", true),
    ("!MON 08:00-09:00, MON-FRI", "Sat", "09:00", false),
    ("MON-FRI, !MON 08:00-09:00", "Mon", "08:30", true),
    ("!SAT, SAT", "Sat", "10:00", false),
    // No constraint.
    ("", "Sun", "03:00", true),
    (" ,, ", "Sun", "03:00", true),
];

#[test]
fn evaluation_table() {
    assert!(EVALUATION.len() >= 60);
    for &(list, day, time, expected) in EVALUATION {
        let parsed = frames(list);
        let at = local(day, time);
        assert_eq!(
            parsed.allows_local(at),
            expected,
            "`{list}` at {day} {time}"
        );
        assert_eq!(
            parsed.compile().allows_local(at),
            expected,
            "compiled `{list}` at {day} {time}"
        );
    }
}

/// (constraint, zone, instant, allowed): DST transitions in several zones.
const ZONED: &[(&str, &str, &str, bool)] = &[
    // Berlin, spring forward on 2026-03-29 at 01:00Z (02:00 CET -> 03:00 CEST): 02:xx never occurs.
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-03-29T00:59:59Z",
        false,
    ),
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-03-29T01:00:00Z",
        false,
    ),
    (
        "SUN 01:00-02:00",
        "Europe/Berlin",
        "2026-03-29T00:59:59Z",
        true,
    ),
    (
        "SUN 03:00-04:00",
        "Europe/Berlin",
        "2026-03-29T01:00:00Z",
        true,
    ),
    // Berlin, fall back on 2026-10-25 at 01:00Z (03:00 CEST -> 02:00 CET): 02:xx occurs twice.
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-10-25T00:00:00Z",
        true,
    ),
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-10-25T00:59:59Z",
        true,
    ),
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-10-25T01:30:00Z",
        true,
    ),
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-10-25T02:00:00Z",
        false,
    ),
    (
        "SUN 01:00-02:00",
        "Europe/Berlin",
        "2026-10-25T00:30:00Z",
        false,
    ),
    // Berlin in winter and summer: the same wall clock is a different UTC hour.
    (
        "MON-FRI 08:00-17:00",
        "Europe/Berlin",
        "2026-01-14T07:00:00Z",
        true,
    ),
    (
        "MON-FRI 08:00-17:00",
        "Europe/Berlin",
        "2026-01-14T06:59:59Z",
        false,
    ),
    (
        "MON-FRI 08:00-17:00",
        "Europe/Berlin",
        "2026-07-15T06:00:00Z",
        true,
    ),
    (
        "MON-FRI 08:00-17:00",
        "Europe/Berlin",
        "2026-07-15T05:59:59Z",
        false,
    ),
    // New York, fall back on 2026-11-01 at 06:00Z (02:00 EDT -> 01:00 EST).
    (
        "SUN 01:00-02:00",
        "America/New_York",
        "2026-11-01T05:30:00Z",
        true,
    ),
    (
        "SUN 01:00-02:00",
        "America/New_York",
        "2026-11-01T06:30:00Z",
        true,
    ),
    (
        "SUN 01:00-02:00",
        "America/New_York",
        "2026-11-01T07:00:00Z",
        false,
    ),
    (
        "SUN 01:00-02:00",
        "America/New_York",
        "2026-11-01T04:59:59Z",
        false,
    ),
    // New York, spring forward on 2026-03-08 at 07:00Z (02:00 EST -> 03:00 EDT).
    (
        "02:00-03:00",
        "America/New_York",
        "2026-03-08T06:59:59Z",
        false,
    ),
    (
        "02:00-03:00",
        "America/New_York",
        "2026-03-08T07:00:00Z",
        false,
    ),
    (
        "01:00-02:00",
        "America/New_York",
        "2026-03-08T06:59:59Z",
        true,
    ),
    // Lord Howe shifts by 30 minutes: 02:00 LHDT -> 01:30 LHST on 2026-04-05 at 15:00Z (Apr 4).
    (
        "SUN 01:45-02:00",
        "Australia/Lord_Howe",
        "2026-04-04T14:50:00Z",
        true,
    ),
    (
        "SUN 01:45-02:00",
        "Australia/Lord_Howe",
        "2026-04-04T15:00:00Z",
        false,
    ),
    (
        "SUN 01:45-02:00",
        "Australia/Lord_Howe",
        "2026-04-04T15:15:00Z",
        true,
    ),
    (
        "SUN 01:45-02:00",
        "Australia/Lord_Howe",
        "2026-04-04T15:30:00Z",
        false,
    ),
    // ... and 02:00 LHST -> 02:30 LHDT on 2026-10-04 at 15:30Z (Oct 3): 02:00-02:29 never occur.
    (
        "SUN 02:00-02:30",
        "Australia/Lord_Howe",
        "2026-10-03T15:29:59Z",
        false,
    ),
    (
        "SUN 02:00-02:30",
        "Australia/Lord_Howe",
        "2026-10-03T15:30:00Z",
        false,
    ),
    (
        "SUN 02:00-02:45",
        "Australia/Lord_Howe",
        "2026-10-03T15:30:00Z",
        true,
    ),
    // Zones without DST.
    (
        "MON-FRI 09:00-17:00",
        "Asia/Tokyo",
        "2026-11-24T00:00:00Z",
        true,
    ),
    (
        "MON-FRI 09:00-17:00",
        "Asia/Tokyo",
        "2026-11-23T23:59:59Z",
        false,
    ),
    ("08:00-09:00", "Asia/Kolkata", "2026-11-24T02:30:00Z", true),
    ("08:00-09:00", "Asia/Kolkata", "2026-11-24T03:30:00Z", false),
    ("FRI 22:00-02:00", "UTC", "2026-11-28T01:59:59Z", true),
];

#[test]
fn zoned_evaluation() {
    for &(list, zone, at, expected) in ZONED {
        let parsed = frames(list);
        let zone: Tz = zone.parse().unwrap();
        let at = utc(at);
        assert_eq!(
            parsed.allows_at(at, zone),
            expected,
            "`{list}` in {zone} at {at}"
        );
        assert_eq!(
            parsed.compile().allows_at(at, zone),
            expected,
            "compiled `{list}` in {zone} at {at}"
        );
    }
}

/// (constraint, zone, now, next open instant)
const NEXT_OPEN: &[(&str, &str, &str, Option<&str>)] = &[
    // Already open: `now` itself, sub-second part kept.
    (
        "MON-FRI 08:00-17:00",
        "UTC",
        "2026-11-25T12:00:00.250Z",
        Some("2026-11-25T12:00:00.250Z"),
    ),
    // Later the same day, the next week day, over the weekend.
    (
        "MON-FRI 08:00-17:00",
        "UTC",
        "2026-11-25T07:59:59.5Z",
        Some("2026-11-25T08:00:00Z"),
    ),
    (
        "MON-FRI 08:00-17:00",
        "UTC",
        "2026-11-25T17:00:00Z",
        Some("2026-11-26T08:00:00Z"),
    ),
    (
        "MON-FRI 08:00-17:00",
        "UTC",
        "2026-11-27T17:00:00Z",
        Some("2026-11-30T08:00:00Z"),
    ),
    (
        "MON-FRI 08:00-17:00",
        "Europe/Berlin",
        "2026-11-27T16:00:00Z",
        Some("2026-11-30T07:00:00Z"),
    ),
    // A window only once a week, from just after it.
    (
        "WED 12:00-12:01",
        "UTC",
        "2026-11-25T12:01:00Z",
        Some("2026-12-02T12:00:00Z"),
    ),
    // Never open.
    ("!00:00-24:00", "UTC", "2026-11-25T12:00:00Z", None),
    ("!MON-SUN", "Europe/Berlin", "2026-11-25T12:00:00Z", None),
    ("!SAT, SAT", "UTC", "2026-11-25T12:00:00Z", None),
    // Berlin spring forward: a window inside the skipped hour waits a week...
    (
        "SUN 02:30-02:45",
        "Europe/Berlin",
        "2026-03-29T00:00:00Z",
        Some("2026-04-05T00:30:00Z"),
    ),
    // ... one reaching past it opens at the transition.
    (
        "SUN 02:30-03:30",
        "Europe/Berlin",
        "2026-03-29T00:00:00Z",
        Some("2026-03-29T01:00:00Z"),
    ),
    // Berlin fall back: the repeated hour opens again right at the transition.
    (
        "SUN 02:00-02:30",
        "Europe/Berlin",
        "2026-10-25T00:40:00Z",
        Some("2026-10-25T01:00:00Z"),
    ),
    (
        "SUN 02:30-03:00",
        "Europe/Berlin",
        "2026-10-25T01:00:00Z",
        Some("2026-10-25T01:30:00Z"),
    ),
    (
        "SUN 02:30-03:00",
        "Europe/Berlin",
        "2026-10-25T00:20:00Z",
        Some("2026-10-25T00:30:00Z"),
    ),
    (
        "SUN 02:00-03:00",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        Some("2026-10-25T00:00:00Z"),
    ),
    // New York spring forward: 02:00-03:00 does not occur on 2026-03-08.
    (
        "02:00-03:00",
        "America/New_York",
        "2026-03-08T06:30:00Z",
        Some("2026-03-09T06:00:00Z"),
    ),
    // Lord Howe's half-hour shifts.
    (
        "SUN 01:45-02:00",
        "Australia/Lord_Howe",
        "2026-04-04T15:00:00Z",
        Some("2026-04-04T15:15:00Z"),
    ),
    (
        "SUN 02:00-02:30",
        "Australia/Lord_Howe",
        "2026-10-03T15:00:00Z",
        Some("2026-10-10T15:00:00Z"),
    ),
    (
        "SUN 02:00-02:45",
        "Australia/Lord_Howe",
        "2026-10-03T15:00:00Z",
        Some("2026-10-03T15:30:00Z"),
    ),
    // Zones without DST.
    (
        "MON-FRI 09:00-17:00",
        "Asia/Tokyo",
        "2026-11-28T00:00:00Z",
        Some("2026-11-30T00:00:00Z"),
    ),
    (
        "08:00-09:00",
        "Asia/Kolkata",
        "2026-11-24T03:30:00Z",
        Some("2026-11-25T02:30:00Z"),
    ),
    // No constraint is always open.
    (
        "",
        "Europe/Berlin",
        "2026-11-25T12:34:56Z",
        Some("2026-11-25T12:34:56Z"),
    ),
];

#[test]
fn next_open_table() {
    for &(list, zone, now, expected) in NEXT_OPEN {
        let parsed = frames(list);
        let zone: Tz = zone.parse().unwrap();
        let now = utc(now);
        let expected = expected.map(utc);
        assert_eq!(
            parsed.next_open(now, zone),
            expected,
            "`{list}` in {zone} from {now}"
        );
        if let Some(open) = expected {
            assert!(parsed.allows_at(open, zone));
        }
    }
}

#[test]
fn next_open_near_the_end_of_time_does_not_panic() {
    let parsed = frames("MON 08:00-09:00");
    assert_eq!(parsed.next_open(DateTime::<Utc>::MAX_UTC, Tz::UTC), None);
    let berlin = oco_core::chrono_tz::Europe::Berlin;
    let new_york = oco_core::chrono_tz::America::New_York;
    assert_eq!(parsed.next_open(DateTime::<Utc>::MAX_UTC, berlin), None);
    let first = parsed
        .next_open(DateTime::<Utc>::MIN_UTC, new_york)
        .unwrap();
    assert!(parsed.allows_at(first, new_york));
    assert!(first < DateTime::<Utc>::MIN_UTC + oco_core::chrono::Duration::days(8));
    assert!(!parsed.allows_at(DateTime::<Utc>::MAX_UTC, berlin));

    // Far from the end it still answers: 262142-12-31 is a Sunday.
    let late = Utc.with_ymd_and_hms(262_142, 12, 30, 0, 0, 0).unwrap();
    let expected = Utc.with_ymd_and_hms(262_142, 12, 31, 7, 0, 0).unwrap();
    assert_eq!(parsed.next_open(late, berlin), Some(expected));
}

/// (input, canonical form)
const CANONICAL: &[(&str, &str)] = &[
    ("Monday-Friday 8:00-17:00", "MON-FRI 08:00-17:00"),
    (
        "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59",
        "06:00-07:00, FRI 18:00-23:00, !SAT 11:00-13:00, SAT 00:00-23:59",
    ),
    ("sat", "SAT"),
    ("MON-MON", "MON"),
    ("! sun", "!SUN"),
    ("mon11:00-13:00", "MON 11:00-13:00"),
    ("FRI - MON", "FRI-MON"),
    ("22:00 - 24:00", "22:00-24:00"),
    ("22:00-0:00", "22:00-00:00"),
    ("  ,  , ", ""),
    ("Tue 9:05-9:06", "TUE 09:05-09:06"),
    ("wednesday", "WED"),
    ("THURSDAY-saturday 00:00-00:01", "THU-SAT 00:00-00:01"),
    ("\tSun\t23:00\t-\t01:00\t", "SUN 23:00-01:00"),
    ("MON-FRI08:00-17:00,,", "MON-FRI 08:00-17:00"),
];

#[test]
fn canonical_forms() {
    for &(input, canonical) in CANONICAL {
        let parsed = frames(input);
        assert_eq!(parsed.to_string(), canonical, "canonical form of `{input}`");
        assert_eq!(frames(canonical), parsed, "reparse of `{canonical}`");
    }
}

#[test]
fn entries_expose_days_and_windows() {
    use oco_core::chrono::Weekday;

    let parsed = frames("FRI-MON 22:00-02:00, !SAT, 8:00-24:00");
    let [wrapping, saturday, daily] = parsed.entries() else {
        panic!("three entries expected");
    };
    let days = wrapping.days().unwrap();
    assert_eq!((days.first(), days.last()), (Weekday::Fri, Weekday::Mon));
    assert!(days.contains(Weekday::Sun) && !days.contains(Weekday::Wed));
    let window = wrapping.window().unwrap();
    assert_eq!(
        (window.start_minute(), window.end_minute()),
        (22 * 60, 2 * 60)
    );
    assert!(window.crosses_midnight());
    assert!(!wrapping.is_negated());

    assert!(saturday.is_negated());
    assert_eq!(saturday.window(), None);

    assert_eq!(daily.days(), None);
    let window = daily.window().unwrap();
    assert_eq!((window.start_minute(), window.end_minute()), (480, 1440));
    assert!(!window.crosses_midnight());
}

#[test]
fn default_is_unconstrained() {
    let none = TimeFrames::default();
    assert!(none.is_unconstrained());
    assert_eq!(none.to_string(), "");
    assert_eq!(frames(" , "), none);
    assert!(!frames("!SAT").is_unconstrained());
    let any = NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    assert!(none.allows_local(any));
}

#[test]
fn serde_uses_the_canonical_string() {
    let parsed = frames("monday-friday 8:00-17:00, !wed 12:00-13:00");
    let json = serde_json::to_string(&parsed).unwrap();
    assert_eq!(json, r#""MON-FRI 08:00-17:00, !WED 12:00-13:00""#);
    assert_eq!(serde_json::from_str::<TimeFrames>(&json).unwrap(), parsed);

    let err = serde_json::from_str::<TimeFrames>(r#""12:00-12:00""#).unwrap_err();
    assert!(err.to_string().contains("entry 1 `12:00-12:00`"), "{err}");
}

/// (input, kind, span)
const ERRORS: &[(&str, ErrorKind, std::ops::Range<usize>)] = &[
    ("12:00-12:00", ErrorKind::EmptyWindow, 0..11),
    ("MON 0:00 - 00:00", ErrorKind::EmptyWindow, 4..16),
    ("!", ErrorKind::EmptyNegation, 0..1),
    ("SAT, !", ErrorKind::EmptyNegation, 5..6),
    ("!!SAT", ErrorKind::DoubleNegation, 1..2),
    ("MOX", ErrorKind::UnknownDay, 0..3),
    ("MON-FRX", ErrorKind::UnknownDay, 4..7),
    ("Tues 8:00-9:00", ErrorKind::UnknownDay, 0..4),
    ("MON-", ErrorKind::MissingDay, 3..4),
    ("MON - 8:00-9:00", ErrorKind::MissingDay, 4..5),
    ("8:00", ErrorKind::MissingEnd, 4..4),
    ("8:00-", ErrorKind::MissingEnd, 5..5),
    ("SAT 8:00 -  ", ErrorKind::MissingEnd, 10..10),
    ("8-9", ErrorKind::InvalidTime, 0..1),
    ("8:0-9:00", ErrorKind::InvalidTime, 0..3),
    ("008:00-9:00", ErrorKind::InvalidTime, 0..6),
    ("8:000-9:00", ErrorKind::InvalidTime, 0..5),
    ("8:00am-9:00", ErrorKind::InvalidTime, 0..6),
    ("8:00-9:00x", ErrorKind::InvalidTime, 5..10),
    ("8:00-9.00", ErrorKind::InvalidTime, 5..9),
    ("MONDAY8", ErrorKind::InvalidTime, 6..7),
    ("8:00-x", ErrorKind::InvalidTime, 5..6),
    ("8:00:00-9:00", ErrorKind::SecondsNotAllowed, 0..7),
    ("8:00-9:00:30", ErrorKind::SecondsNotAllowed, 5..12),
    (
        "8:60-9:00",
        ErrorKind::MinuteOutOfRange { minute: 60 },
        2..4,
    ),
    (
        "8:00-9:99",
        ErrorKind::MinuteOutOfRange { minute: 99 },
        7..9,
    ),
    ("25:00-26:00", ErrorKind::HourOutOfRange { hour: 25 }, 0..2),
    ("8:00-24:30", ErrorKind::HourOutOfRange { hour: 24 }, 5..7),
    ("24:00-02:00", ErrorKind::StartAt24, 0..5),
    ("SUN 24:00-24:00", ErrorKind::StartAt24, 4..9),
    ("@", ErrorKind::ExpectedDayOrTime, 0..1),
    ("-8:00", ErrorKind::ExpectedDayOrTime, 0..1),
    ("\u{ff18}:00-9:00", ErrorKind::ExpectedDayOrTime, 0..6),
    ("MON 8:00-9:00 x", ErrorKind::TrailingGarbage, 14..15),
    ("MON @", ErrorKind::TrailingGarbage, 4..5),
    ("8:00 9:00", ErrorKind::TrailingGarbage, 5..9),
    ("SAT 0:00-23:59 extra", ErrorKind::TrailingGarbage, 15..20),
    (
        "MON 8:00-9:00, TUE 25:00-26:00",
        ErrorKind::HourOutOfRange { hour: 25 },
        19..21,
    ),
];

#[test]
fn errors_have_kind_and_span() {
    for (input, kind, span) in ERRORS {
        let err = input.parse::<TimeFrames>().unwrap_err();
        assert_eq!(err.kind(), kind, "kind for `{input}`");
        assert_eq!(
            &err.span(),
            span,
            "span for `{input}`:\n{}",
            err.render(input)
        );
    }
    let err = "MON 8:00-9:00, TUE 25:00-26:00"
        .parse::<TimeFrames>()
        .unwrap_err();
    assert_eq!(err.entry_number(), Some(2));
    assert_eq!(err.entry(), Some("TUE 25:00-26:00"));
}

#[test]
fn limits() {
    let max = vec!["SAT"; MAX_ENTRIES].join(",");
    assert_eq!(frames(&max).entries().len(), MAX_ENTRIES);
    let err = vec!["SAT"; MAX_ENTRIES + 1]
        .join(",")
        .parse::<TimeFrames>()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::TooManyEntries);
    let err = "SAT,".repeat(20_000).parse::<TimeFrames>().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::TooLong { len: 80_000 });
}

/// Every message of the time-frame language, pinned.
#[test]
fn messages() {
    let cases = [
        (
            "@",
            "entry 1 `@`: expected a day (`MON`, `Monday`, `MON-FRI`) or a time range (`08:00-17:00`)",
        ),
        (
            "Tues",
            "entry 1 `Tues`: unknown day; use `MON`..`SUN` or the full English name, e.g. `Monday`",
        ),
        ("MON-", "entry 1 `MON-`: a day name is missing after the `-`"),
        ("8-9", "entry 1 `8-9`: expected a time as `H:MM` or `HH:MM`"),
        (
            "8:00:00-9:00",
            "entry 1 `8:00:00-9:00`: times have no seconds; use `H:MM` or `HH:MM`",
        ),
        (
            "25:00-26:00",
            "entry 1 `25:00-26:00`: hour 25 is out of range; hours are 0 to 23, and `24:00` may end a window",
        ),
        (
            "8:60-9:00",
            "entry 1 `8:60-9:00`: minute 60 is out of range; minutes are 00 to 59",
        ),
        (
            "24:00-1:00",
            "entry 1 `24:00-1:00`: `24:00` may only end a window; start the next day at `00:00`",
        ),
        (
            "SAT 8:00",
            "entry 1 `SAT 8:00`: a time range needs an end: `START-END`, e.g. `08:00-17:00`",
        ),
        (
            "SAT, 12:00-12:00",
            "entry 2 `12:00-12:00`: the window starts where it ends and would never match; \
             use `00:00-24:00` or only the day for a whole day",
        ),
        (
            "SAT\n",
            "entry 1 `SAT\\n`: unexpected text after the entry",
        ),
    ];
    for (input, message) in cases {
        let err = input.parse::<TimeFrames>().unwrap_err();
        assert_eq!(err.to_string(), message, "message for `{input:?}`");
    }
}

#[test]
fn render_marks_missing_text_after_the_entry() {
    let input = "MON-FRI 08:00-";
    let err = input.parse::<TimeFrames>().unwrap_err();
    assert_eq!(
        err.render(input),
        "entry 1 `MON-FRI 08:00-`: a time range needs an end: `START-END`, e.g. `08:00-17:00`\n\
         MON-FRI 08:00-\n              ^"
    );

    // Carets count characters, not bytes.
    let input = "ÄÖ 8:00-9:00";
    let err = input.parse::<TimeFrames>().unwrap_err();
    assert_eq!(err.span(), 0..4);
    assert_eq!(err.render(input).lines().nth(2), Some("^^"));
}

/// Found by hand while fuzzing: `MON1:00-2:00` prints as `MON 01:00-02:00`, so a list under the
/// input limit could print a canonical form over it, which then failed to parse.
#[test]
fn regression_canonical_form_longer_than_the_limit() {
    let input = "MON1:00-2:00,".repeat(MAX_ENTRIES);
    let err = input.parse::<TimeFrames>().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::CanonicalTooLong);
    let accepted = "MON1:00-2:00,".repeat(err.entry_number().unwrap() - 1);
    let parsed = frames(&accepted);
    let canonical = parsed.to_string();
    assert!(canonical.len() <= oco_core::constraint::MAX_INPUT_LEN);
    assert_eq!(frames(&canonical), parsed);
}

/// A list of one to three entries: optional negation, optional day range, optional window.
fn arbitrary_frames() -> impl proptest::strategy::Strategy<Value = TimeFrames> {
    use proptest::prelude::*;
    const DAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let entry = (
        any::<bool>(),
        proptest::option::of((0usize..7, 0usize..7)),
        proptest::option::of((0u32..24 * 60, 1u32..24 * 60)),
    )
        .prop_filter_map(
            "an entry needs days or a window",
            |(negated, days, window)| {
                if days.is_none() && window.is_none() {
                    return None;
                }
                let mut text = String::from(if negated { "!" } else { "" });
                if let Some((first, last)) = days {
                    text.push_str(&format!("{}-{} ", DAYS[first], DAYS[last]));
                }
                if let Some((start, length)) = window {
                    let end = (start + length) % (24 * 60);
                    text.push_str(&format!(
                        "{}:{:02}-{}:{:02}",
                        start / 60,
                        start % 60,
                        end / 60,
                        end % 60
                    ));
                }
                Some(text)
            },
        );
    proptest::collection::vec(entry, 1..4).prop_map(|entries| frames(&entries.join(", ")))
}

proptest::proptest! {
    /// `next_open` and `next_closed` find the first instant with their verdict: the verdict at
    /// the answer is theirs, and every whole minute before it (and `now`) has the other one.
    #[test]
    fn next_open_and_next_closed_find_the_first_change(
        list in arbitrary_frames(),
        offset_seconds in 0i64..14 * 86_400,
        zone in proptest::sample::select(vec![
            Tz::UTC,
            oco_core::chrono_tz::Europe::Berlin,
            oco_core::chrono_tz::America::New_York,
        ]),
    ) {
        // From Sunday 2026-03-22, so the fortnight crosses Europe's and America's DST changes.
        let now = utc("2026-03-22T00:00:00Z") + oco_core::chrono::Duration::seconds(offset_seconds);
        let matcher = list.compile();
        for (allowed, found) in [
            (true, matcher.next_open(now, zone)),
            (false, matcher.next_closed(now, zone)),
        ] {
            // The brute force: `now`, then every whole minute for eight days.
            let first_minute = now.timestamp().div_euclid(60) * 60 + 60;
            let expected = std::iter::once(now)
                .chain((0..8 * 1440).map(|m| DateTime::from_timestamp(first_minute + m * 60, 0).unwrap()))
                .find(|&at| list.allows_at(at, zone) == allowed);
            proptest::prop_assert_eq!(found, expected, "`{}` in {} from {}, verdict {}", list, zone, now, allowed);
        }
    }
}
