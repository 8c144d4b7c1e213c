//! The planner row of `benches/PERFORMANCE.md`: `plan` for one computer with 50 pending jobs over
//! 10 origins, with no holds and with 5 origins held by time frames, beside a naive planner that
//! checks every job on its own and sorts all candidates, in the same group.
//!
//! Every iteration asserts the delivered jobs against the expected list.
//!
//! Run: `cargo bench -p oco-benches --bench planner`.

// Setup panics on invalid fixed inputs, which is a bug in the bench, not a case to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use oco_benches::planner::{naive_plan, planner_addr, planner_now, planner_snapshot};
use oco_core::model::JobId;
use oco_core::plan::plan;
use oco_core::Settings;

fn planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    let settings = Settings::default();
    let (now, addr) = (planner_now(), planner_addr());
    for (name, held) in [("no_holds", 0), ("5_held_origins", 5)] {
        let snapshot = planner_snapshot(held);
        let expected = naive_plan(&snapshot, now, addr);
        group.bench_function(BenchmarkId::new("plan", name), |b| {
            b.iter(|| {
                let plan = plan(black_box(&snapshot), now, addr, &settings);
                assert!(plan
                    .deliver
                    .iter()
                    .map(|d| d.job.id)
                    .eq(expected.iter().copied()));
                plan.held.len()
            })
        });
        group.bench_function(BenchmarkId::new("naive_sort", name), |b| {
            b.iter(|| {
                let ids: Vec<JobId> = naive_plan(black_box(&snapshot), now, addr);
                assert_eq!(ids, expected);
                ids.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = planner
}
criterion_main!(benches);
