//! The constraint rows of `benches/PERFORMANCE.md`: each group measures an `oco-core` function
//! beside its baseline, on the fixed inputs of `oco_benches`, so the ratio comes from one run.
//!
//! Every iteration takes the next input of a fixed set (rotating) and asserts its answer against
//! one precomputed before measuring, so a fast wrong answer fails the bench instead of winning it.
//!
//! Run: `cargo bench -p oco-benches` (CI: `cargo bench -p oco-benches -- --test`, one pass each).

// Setup panics on invalid fixed inputs, which is a bug in the bench, not a case to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use oco_benches::{
    expected_ip_verdicts, frame_lists, instants, ip_lookups, local_times, long_ip_list,
    minute_scan_next_open, short_ip_list, NaiveIpScan, INSTANT_COUNT, LONG_IP_COUNTS, LOOKUP_COUNT,
    ZONE,
};
use oco_core::constraint::testkit::{brute_force_ip_lint, brute_force_time_lint, BruteLint};
use oco_core::constraint::{lint_ip_entries, IpEntry, IpMatcher};

/// IP check, short list (parsed text, `IpRanges::compile`): `IpMatcher::allows` against the
/// naive `ipnet` scan.
fn ip_check_short(c: &mut Criterion) {
    let ranges = short_ip_list();
    let mut group = c.benchmark_group("ip_check_short");
    ip_check(&mut group, ranges.entries(), &ranges.compile());
    group.finish();
}

/// IP check, long lists of 1,000 and 10,000 entries (built in code, `IpMatcher::new`):
/// `IpMatcher::allows` against the naive `ipnet` scan.
fn ip_check_long(c: &mut Criterion) {
    let mut group = c.benchmark_group("ip_check_long");
    for count in LONG_IP_COUNTS {
        let entries = long_ip_list(count);
        ip_check(
            &mut group,
            &entries,
            &IpMatcher::new(entries.iter().copied()),
        );
    }
    group.finish();
}

/// Compiling the long lists with `IpMatcher::new`; the target is for 10,000 ranges, and 1,000
/// shows the scale.
fn ip_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("ip_compile");
    for count in LONG_IP_COUNTS {
        let entries = long_ip_list(count);
        // A compiled matcher that answers right for a fixed lookup is compiled at all.
        let probe = ip_lookups(&entries)[LOOKUP_COUNT - 1];
        let expected = expected_ip_verdicts(&entries, &[probe])[0];
        group.bench_function(BenchmarkId::new("compile", count), |b| {
            b.iter(|| {
                let matcher = IpMatcher::new(black_box(&entries).iter().copied());
                assert_eq!(matcher.allows(probe), expected);
                matcher
            });
        });
    }
    group.finish();
}

/// Time-frame check with the local time given: `WeekMatcher::allows_local` against the
/// interpreted `TimeFrames::allows_local`.
fn time_check_local(c: &mut Criterion) {
    let locals = local_times(&instants(), ZONE);
    let mut group = c.benchmark_group("time_check_local");
    for (name, frames) in frame_lists() {
        let matcher = frames.compile();
        let expected: Vec<bool> = locals.iter().map(|&l| frames.allows_local(l)).collect();
        group.bench_function(BenchmarkId::new("compiled", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                assert_eq!(matcher.allows_local(black_box(locals[k])), expected[k]);
            });
        });
        group.bench_function(BenchmarkId::new("baseline", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                assert_eq!(frames.allows_local(black_box(locals[k])), expected[k]);
            });
        });
    }
    group.finish();
}

/// Time-frame check with the conversion to Europe/Berlin: `WeekMatcher::allows_at` against
/// `TimeFrames::allows_at`.
fn time_check_at(c: &mut Criterion) {
    let instants = instants();
    let mut group = c.benchmark_group("time_check_at");
    for (name, frames) in frame_lists() {
        let matcher = frames.compile();
        let expected: Vec<bool> = instants
            .iter()
            .map(|&at| frames.allows_at(at, ZONE))
            .collect();
        group.bench_function(BenchmarkId::new("compiled", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                assert_eq!(matcher.allows_at(black_box(instants[k]), ZONE), expected[k]);
            });
        });
        group.bench_function(BenchmarkId::new("baseline", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                assert_eq!(frames.allows_at(black_box(instants[k]), ZONE), expected[k]);
            });
        });
    }
    group.finish();
}

/// `next_open` from each fixed instant, compiled matcher against a minute-by-minute scan.
fn next_open(c: &mut Criterion) {
    let instants = instants();
    let mut group = c.benchmark_group("next_open");
    for (name, frames) in frame_lists() {
        let matcher = frames.compile();
        let expected: Vec<_> = instants
            .iter()
            .map(|&now| minute_scan_next_open(&frames, now, ZONE))
            .collect();
        for (&now, &scanned) in instants.iter().zip(&expected) {
            assert_eq!(
                matcher.next_open(now, ZONE),
                scanned,
                "{name}: next_open and the minute scan disagree from {now}"
            );
        }
        group.bench_function(BenchmarkId::new("compiled", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                assert_eq!(matcher.next_open(black_box(instants[k]), ZONE), expected[k]);
            });
        });
        group.bench_function(BenchmarkId::new("minute_scan", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let k = next_index(&mut i, INSTANT_COUNT);
                let scanned = minute_scan_next_open(&frames, black_box(instants[k]), ZONE);
                assert_eq!(scanned, expected[k]);
            });
        });
    }
    group.finish();
}

/// The constraint lint on the long IP lists and the two time-frame lists, against the
/// brute-force baseline (`brute_force_ip_lint`, `brute_force_time_lint`: each entry removed in
/// turn, the list compiled again and compared). The baseline is quadratic: at 10,000 entries it
/// takes about a minute per lint, so that list is measured without it.
fn lint(c: &mut Criterion) {
    let mut group = c.benchmark_group("lint");
    for count in LONG_IP_COUNTS {
        let entries = long_ip_list(count);
        let expected = BruteLint::from_findings(&lint_ip_entries(&entries));
        group.bench_function(BenchmarkId::new("ip", count), |b| {
            b.iter(|| {
                let findings = lint_ip_entries(black_box(&entries));
                assert_eq!(
                    findings.len(),
                    expected.never_applies.len() + expected.removable.len()
                );
                findings
            });
        });
        if count <= 1_000 {
            let brute = brute_force_ip_lint(&entries);
            assert!(
                brute.matches(&expected),
                "the lint and brute force disagree on the {count}-entry list: {brute:?} against {expected:?}"
            );
            group.bench_function(BenchmarkId::new("ip_brute_force", count), |b| {
                b.iter(|| assert_eq!(&brute_force_ip_lint(black_box(&entries)), &brute));
            });
        }
    }
    for (name, frames) in frame_lists() {
        let expected = BruteLint::from_findings(&frames.lint());
        let brute = brute_force_time_lint(&frames);
        assert!(
            brute.matches(&expected),
            "{name}: {brute:?} against {expected:?}"
        );
        group.bench_function(BenchmarkId::new("time", name), |b| {
            b.iter(|| {
                let findings = black_box(&frames).lint();
                assert_eq!(BruteLint::from_findings(&findings), expected);
                findings
            });
        });
        group.bench_function(BenchmarkId::new("time_brute_force", name), |b| {
            b.iter(|| assert_eq!(&brute_force_time_lint(black_box(&frames)), &brute));
        });
    }
    group.finish();
}

/// Adds `matcher`'s check and the naive scan of `entries` (the list it was compiled from) to
/// `group`, with the entry count as parameter.
fn ip_check(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    entries: &[IpEntry],
    matcher: &IpMatcher,
) {
    let count = entries.len();
    let lookups = ip_lookups(entries);
    let expected = expected_ip_verdicts(entries, &lookups);
    let naive = NaiveIpScan::new(entries);
    group.bench_function(BenchmarkId::new("compiled", count), |b| {
        let mut i = 0;
        b.iter(|| {
            let k = next_index(&mut i, LOOKUP_COUNT);
            assert_eq!(matcher.allows(black_box(lookups[k])), expected[k]);
        });
    });
    group.bench_function(BenchmarkId::new("baseline", count), |b| {
        let mut i = 0;
        b.iter(|| {
            let k = next_index(&mut i, LOOKUP_COUNT);
            assert_eq!(naive.allows(black_box(lookups[k])), expected[k]);
        });
    });
}

/// The current index into a set of `len` inputs (a power of two), advancing the cursor.
fn next_index(cursor: &mut usize, len: usize) -> usize {
    let k = *cursor & (len - 1);
    *cursor = cursor.wrapping_add(1);
    k
}

/// Modest times, so the whole suite runs in a few minutes on a 2-core machine.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = constraints;
    config = config();
    targets = ip_check_short, ip_check_long, ip_compile, time_check_local, time_check_at, next_open, lint
}
criterion_main!(constraints);
