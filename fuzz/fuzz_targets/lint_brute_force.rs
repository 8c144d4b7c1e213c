//! The constraint lint against brute force, on lists built from the input by `Arbitrary`
//! (oco-core features `arbitrary` and `testkit`): an IP list of up to 16 entries and a time-frame
//! list of up to 6, drawn one entry at a time.
//!
//! For each list, the entries the lint finds shadowed are exactly those that are never the first
//! match, and those it finds redundant exactly those that decide somewhere but whose removal
//! changes no verdict (`oco_core::constraint::testkit`, which checks one address of every stretch
//! between entry ends, or every minute of the week). The lint of the list's canonical text
//! (`parse_linted`) finds the same, with each entry's span on that entry's text.
//!
//! Lists are kept short because the brute force is quadratic and compiles the list once per
//! entry; the lint's property tests (`oco-core/tests/lint.rs`) check the causes and reorderings
//! too.
//!
//! Run: `cargo +nightly fuzz run lint_brute_force` (from `fuzz/`).

#![no_main]

mod common;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use oco_core::constraint::testkit::{brute_force_ip_lint, brute_force_time_lint, BruteLint};
use oco_core::constraint::{Finding, IpEntry, IpRanges, TimeFrame, TimeFrames};

/// IP entries of a generated list, at most.
const MAX_IP_ENTRIES: usize = 16;
/// Time-frame entries of a generated list, at most.
const MAX_TIME_ENTRIES: usize = 6;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let ip: Vec<IpEntry> = common::draw(&mut u, MAX_IP_ENTRIES);
    let frames: Vec<TimeFrame> = common::draw(&mut u, MAX_TIME_ENTRIES);

    let ranges = IpRanges::from_entries(ip).expect("16 entries are within the limits");
    let lint = ranges.lint();
    let brute = brute_force_ip_lint(ranges.entries());
    assert!(
        brute.matches(&BruteLint::from_findings(&lint)),
        "`{ranges}`: brute force {brute:?}, lint {lint:?}"
    );
    same_from_text(&ranges.to_string(), &lint, IpRanges::parse_linted);

    let frames = TimeFrames::from_entries(frames).expect("6 entries are within the limits");
    let lint = frames.lint();
    let brute = brute_force_time_lint(&frames);
    assert!(
        brute.matches(&BruteLint::from_findings(&lint)),
        "`{frames}`: brute force {brute:?}, lint {lint:?}"
    );
    same_from_text(&frames.to_string(), &lint, TimeFrames::parse_linted);
});

/// The lint of `canonical` parsed finds what `lint` (on the value) found, with the same spans:
/// the text is the canonical one.
fn same_from_text<T, E: std::fmt::Debug>(
    canonical: &str,
    lint: &[Finding],
    parse_linted: fn(&str) -> Result<(T, Vec<Finding>), E>,
) {
    let (_, from_text) = parse_linted(canonical).expect("the canonical text parses");
    assert_eq!(from_text, lint, "`{canonical}`");
    for finding in &from_text {
        assert!(
            canonical.get(finding.span()).is_some(),
            "span {:?} outside `{canonical}`",
            finding.span()
        );
    }
}
