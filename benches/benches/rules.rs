//! The rule rows of `benches/PERFORMANCE.md`: full evaluation of one rule over 10,000 computers ×
//! 100 packages (first evaluation and steady state) and 50,000 × 200 (first evaluation), beside a
//! naive hash-set diff in the same group; and the incremental evaluation of one computer joining
//! the 100-package rule's group (`scopes_for`, then `evaluate` for that scope), beside a full
//! evaluation of the same world.
//!
//! Every iteration asserts the insert and delete counts, which follow from the fixed inputs. The
//! diffs are dropped outside the timed section (`iter_batched`): a million-job diff takes a while
//! to free, and that is the caller's cost, not evaluation's.
//!
//! Run: `cargo bench -p oco-benches --bench rules` (a few minutes on 2 cores; CI:
//! `cargo bench -p oco-benches -- --test`, one pass each).

// Setup panics on invalid fixed inputs, which is a bug in the bench, not a case to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};
use oco_benches::rules::{
    first_world, hashset_diff, join_one_worlds, rules_now, steady_world, RuleCase, CASE_10K_X_100,
    CASE_50K_X_200, CHANGED_ONE_IN, RULE,
};
use oco_core::rules::{scopes_for, RuleEvent, RuleWorld, Scope};

/// Full evaluation against the hash-set diff, case by case (each world is dropped before the
/// next is built: the 50k × 200 diff alone takes a few gigabytes).
fn rules_full(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules_full");
    group.sampling_mode(SamplingMode::Flat);
    let now = rules_now();
    type Build = fn(RuleCase) -> RuleWorld;
    let cases: [(&str, RuleCase, Build, u64); 3] = [
        ("10k_x_100_first", CASE_10K_X_100, first_world, 8),
        ("10k_x_100_steady", CASE_10K_X_100, steady_world, 8),
        ("50k_x_200_first", CASE_50K_X_200, first_world, 30),
    ];
    for (name, case, build, seconds) in cases {
        group.measurement_time(Duration::from_secs(seconds));
        let world = build(case);
        let (inserts, deletes) = expected_counts(name, case);
        group.bench_function(BenchmarkId::new("evaluate", name), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let diff = black_box(&world).evaluate(RULE, &Scope::full(), now);
                    assert_eq!((diff.insert.len(), diff.delete.len()), (inserts, deletes));
                    diff
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("hashset_baseline", name), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let diff = hashset_diff(black_box(&world), RULE, now);
                    assert_eq!((diff.insert.len(), diff.delete.len()), (inserts, deletes));
                    diff
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// One computer joins the group of the 10,000 × 100 rule (all jobs exist): `scopes_for` and
/// `evaluate` for its scope, against a full evaluation of the world after the join.
fn rules_incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules_incremental");
    let now = rules_now();
    let (before, after) = join_one_worlds(CASE_10K_X_100);
    let packages = CASE_10K_X_100.packages;
    // The server knows which computer joined.
    let joined = RuleEvent::ComputerGroupsChanged {
        computers: Some(vec![oco_benches::rules::computer_id(
            CASE_10K_X_100.computers + 1,
        )]),
    };
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("incremental", "join_one"), |b| {
        b.iter_batched(
            || (),
            |()| {
                let scopes = scopes_for(&joined, black_box(&before), black_box(&after));
                let diff = after.evaluate(RULE, &scopes[&RULE], now);
                assert_eq!((diff.insert.len(), diff.delete.len()), (packages, 0));
                diff
            },
            BatchSize::SmallInput,
        )
    });
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function(BenchmarkId::new("full", "join_one"), |b| {
        b.iter_batched(
            || (),
            |()| {
                let diff = black_box(&after).evaluate(RULE, &Scope::full(), now);
                assert_eq!((diff.insert.len(), diff.delete.len()), (packages, 0));
                diff
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The inserts and deletes a case's diff has: every pair on a first evaluation; on the steady
/// state, the pairs of the 1 % of computers that joined, and of the 1 % that left.
fn expected_counts(name: &str, case: RuleCase) -> (usize, usize) {
    if name.ends_with("_steady") {
        let moved = case.computers / CHANGED_ONE_IN * case.packages;
        (moved, moved)
    } else {
        (case.computers * case.packages, 0)
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    targets = rules_full, rules_incremental
}
criterion_main!(benches);
