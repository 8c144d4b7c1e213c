//! `TimeFrames::compile` and `next_open`: the compiled week matcher answers exactly as the plain
//! `allows_local` and `allows_at`, and `next_open(now, zone)` returns the first allowed instant.
//!
//! Input: a list (UTF-8, lossy) up to the first `0xFF` byte, then 8-byte chunks. Each chunk is
//! a local time (years 1970..2100, bytes 0-4), a time-zone index into `chrono_tz::TZ_VARIANTS`
//! (bytes 5-6) and a sub-second part (byte 7). Per chunk:
//!
//! - compiled `allows_local` equals plain `allows_local` at the local time;
//! - compiled `allows_at` equals plain `allows_at` at the same digits read as UTC, in the zone;
//! - for the first few chunks, with `now` in 1971..2036: `next_open(now, zone)` is `Some(t)` with
//!   `t >= now`, `allows_at(t)`, and no instant before it allowed (checked at `now`, `t - 1s`, and
//!   at instants spread over `[now, t)`); or `None`, and then no minute of the week is allowed.
//!
//! Run: `cargo +nightly fuzz run time_compiled -- -dict=time.dict` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use oco_core::chrono::{DateTime, Duration, NaiveDate, TimeDelta, Utc};
use oco_core::chrono_tz::{Tz, TZ_VARIANTS};
use oco_core::constraint::TimeFrames;

/// 1970-01-01 to 2100-01-01, in seconds.
const LOCAL_RANGE: u64 = 4_102_444_800;
/// 1971-01-01 and 2036-01-01 as Unix timestamps.
const NOW_FIRST: i64 = 31_536_000;
const NOW_LAST: i64 = 2_082_758_400;
/// Chunks that also get a `next_open` check (each costs a search over offset changes).
const NEXT_OPEN_CHUNKS: usize = 4;
/// Instants checked to be denied between `now` and `next_open`'s answer.
const GAP_SAMPLES: i64 = 64;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (list, rest) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(frames) = String::from_utf8_lossy(list).parse::<TimeFrames>() else {
        return;
    };
    let matcher = frames.compile();

    for (i, chunk) in rest.chunks_exact(8).enumerate() {
        let seconds =
            u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], 0, 0, 0]);
        let zone =
            TZ_VARIANTS[usize::from(u16::from_le_bytes([chunk[5], chunk[6]])) % TZ_VARIANTS.len()];
        let nanos = u32::from(chunk[7]) * 3_921_568;
        let Some(instant) = timestamp(i64::try_from(seconds % LOCAL_RANGE).unwrap_or(0), nanos)
        else {
            continue;
        };

        let local = instant.naive_utc();
        assert_eq!(
            matcher.allows_local(local),
            frames.allows_local(local),
            "allows_local({local}) compiled != plain\nframes: {frames}"
        );
        assert_eq!(
            matcher.allows_at(instant, zone),
            frames.allows_at(instant, zone),
            "allows_at({instant}, {zone}) compiled != plain\nframes: {frames}"
        );

        if i < NEXT_OPEN_CHUNKS {
            let now_seconds =
                NOW_FIRST + i64::try_from(seconds).unwrap_or(0) % (NOW_LAST - NOW_FIRST);
            if let Some(now) = timestamp(now_seconds, nanos) {
                check_next_open(&frames, now, zone);
            }
        }
    }
});

fn check_next_open(frames: &TimeFrames, now: DateTime<Utc>, zone: Tz) {
    let context = || format!("frames: {frames:?} ({frames})\nnow: {now:?}\nzone: {zone}");
    let Some(open) = frames.next_open(now, zone) else {
        let monday = NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        if let Some(monday) = monday {
            for minute in 0..7 * 24 * 60 {
                let local = monday + Duration::minutes(minute);
                assert!(
                    !frames.allows_local(local),
                    "next_open is None, but {local} is allowed\n{}",
                    context()
                );
            }
        }
        return;
    };
    assert!(open >= now, "next_open {open} is before now\n{}", context());
    assert!(
        frames.allows_at(open, zone),
        "next_open {open} is not allowed\n{}",
        context()
    );
    if open == now {
        return;
    }
    assert!(
        !frames.allows_at(now, zone),
        "now is allowed, but next_open is {open}\n{}",
        context()
    );
    let before = open - TimeDelta::seconds(1);
    if before >= now {
        assert!(
            !frames.allows_at(before, zone),
            "{before} is allowed, before next_open {open}\n{}",
            context()
        );
    }
    let gap = open - now;
    for k in 1..GAP_SAMPLES {
        let at = now + gap / 64 * i32::try_from(k).unwrap_or(0);
        assert!(
            !frames.allows_at(at, zone),
            "{at} is allowed, before next_open {open}\n{}",
            context()
        );
    }
}

fn timestamp(seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, nanos)
}
