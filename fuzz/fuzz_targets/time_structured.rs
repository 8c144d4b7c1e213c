//! `TimeFrames` built from the input by `Arbitrary` (oco-core feature `arbitrary`): every input is
//! a valid list, so the fuzzer spends its time on the properties rather than on parse errors.
//!
//! The list is up to 256 `TimeFrame`s drawn one by one (`Unstructured::arbitrary_iter`), not
//! `TimeFrames::arbitrary`: that one reaches lists of 4,096 entries from a few bytes, and such a
//! list costs about 300 ms per run in the instrumented build (a short one well under 1 ms), so
//! they would take most of a short fuzzing run. oco-core's property tests cover them
//! (`tests/generators.rs`).
//!
//! - Round trip: the list is within the limits, `parse(display(x)) == x`, the canonical form is a
//!   fixed point, and `TimeFrames::from_entries(x.entries()) == x`.
//! - Compiled equals interpreted: the compiled week matcher answers as `allows_local` at local
//!   times drawn from the rest of the input and then at the starts and ends of the entries'
//!   windows (and a second before) on every day of a week, as many as a budget of plain
//!   evaluation allows; and as `allows_at` at instants drawn from the input, in a zone picked from
//!   `chrono_tz::TZ_VARIANTS`.
//!
//! Run: `cargo +nightly fuzz run time_structured` (from `fuzz/`).

#![no_main]

mod common;

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oco_core::chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta};
use oco_core::chrono_tz::TZ_VARIANTS;
use oco_core::constraint::{TimeFrame, TimeFrames};

/// Entries of a generated list, at most.
const MAX_FUZZ_ENTRIES: usize = 256;
/// Entries visited by plain evaluation per input, at most: `allows_local` scans the list, so a
/// long list gets fewer times checked (a few dozen at 4,096 entries), a short one up to
/// [`MAX_CHECKED`].
const EVALUATION_BUDGET: usize = 1 << 17;
/// Times checked per input, at most.
const MAX_CHECKED: usize = 512;
/// 1970-01-01 to 2100-01-01, in seconds.
const INSTANT_RANGE: i64 = 4_102_444_800;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let entries: Vec<TimeFrame> = common::draw(&mut u, MAX_FUZZ_ENTRIES);
    let frames = match TimeFrames::from_entries(entries) {
        Ok(frames) => frames,
        Err(err) => panic!("{MAX_FUZZ_ENTRIES} entries are within the limits, but: {err}"),
    };
    common::check_built(&frames, frames.entries().len());
    assert_eq!(
        TimeFrames::from_entries(frames.entries().iter().copied()).as_ref(),
        Ok(&frames)
    );

    let matcher = frames.compile();
    let mut checks = (EVALUATION_BUDGET / frames.entries().len().max(1)).min(MAX_CHECKED);
    let mut budget = || {
        checks = checks.checked_sub(1)?;
        Some(())
    };
    // Monday 2024-01-01.
    let Some(monday) = NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
    else {
        return;
    };
    let check = |local: NaiveDateTime| {
        assert_eq!(
            matcher.allows_local(local),
            frames.allows_local(local),
            "allows_local({local}) compiled != plain\nframes: {frames}"
        );
    };

    // Times from the input first (the fuzzer steers them), then the windows' edges.
    while !u.is_empty() {
        let Ok((local, zone_index, instant)) = probe(&mut u) else {
            break;
        };
        if budget().is_none() {
            return;
        }
        check(monday + TimeDelta::seconds(local));
        let zone = TZ_VARIANTS[zone_index % TZ_VARIANTS.len()];
        if let Some(at) = DateTime::from_timestamp(instant, 0) {
            assert_eq!(
                matcher.allows_at(at, zone),
                frames.allows_at(at, zone),
                "allows_at({at}, {zone}) compiled != plain\nframes: {frames}"
            );
        }
    }
    for entry in frames.entries() {
        let Some(window) = entry.window() else {
            continue;
        };
        for day in 0..7 {
            for minute in [window.start_minute(), window.end_minute()] {
                let edge = monday + TimeDelta::minutes(day * 24 * 60 + i64::from(minute));
                for local in [edge, edge - TimeDelta::seconds(1)] {
                    if budget().is_none() {
                        return;
                    }
                    check(local);
                }
            }
        }
    }
});

/// A second of the fortnight from Monday, a zone index and an instant in 1970..2100.
fn probe(u: &mut Unstructured<'_>) -> Result<(i64, usize, i64)> {
    let local = u.int_in_range(0..=14 * 86_400 - 1)?;
    let zone = usize::from(u16::arbitrary(u)?);
    let instant = u.int_in_range(0..=INSTANT_RANGE - 1)?;
    Ok((local, zone, instant))
}
