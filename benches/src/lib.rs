//! Fixed, deterministic inputs for the `oco-core` benchmarks, and the naive baselines they are
//! measured against (see `benches/PERFORMANCE.md`).
//!
//! Every input comes from a hand-written [`SplitMix64`] with a fixed seed, so figures stay
//! comparable from run to run and machine to machine.
//!
//! # Examples
//!
//! ```
//! use oco_benches::{ip_lookups, long_ip_list, short_ip_list, NaiveIpScan};
//! use oco_core::constraint::IpMatcher;
//!
//! let ranges = short_ip_list();
//! let naive = NaiveIpScan::new(ranges.entries());
//! for addr in ip_lookups(ranges.entries()) {
//!     assert_eq!(naive.allows(addr), ranges.allows(addr));
//! }
//!
//! let entries = long_ip_list(1_000);
//! let (naive, matcher) = (NaiveIpScan::new(&entries), IpMatcher::new(entries.iter().copied()));
//! for addr in ip_lookups(&entries) {
//!     assert_eq!(naive.allows(addr), matcher.allows(addr));
//! }
//! ```

// Bench inputs are fixed and known to be valid: a failed parse is a bug in this file, and a panic
// with a message is the right report for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use oco_core::chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::constraint::{IpEntry, IpRanges, TimeFrames};

pub mod agent;
pub mod fleet;
pub mod planner;
pub mod rules;
pub mod sqlite;

/// The seed of every generated input.
pub const SEED: u64 = 0x000C_0BE7_C4E5_u64;

/// The "short" IP list: 8 entries, 5 IPv4 and 3 IPv6, 2 of them negated.
pub const SHORT_IP_LIST: &str = "!192.168.2.3, 192.168.2.0/24, 10.2.0.0/16, 172.16.0.0/12, \
     100.64.0.0/10, !2001:db8:0:1::/64, 2001:db8::/32, fd00::/8";

/// The entry counts of the "long" IP lists that `PERFORMANCE.md` names.
pub const LONG_IP_COUNTS: [usize; 2] = [1_000, 10_000];

/// How many addresses [`ip_lookups`] returns; a power of two, so a rotating index is a mask.
pub const LOOKUP_COUNT: usize = 4_096;

/// The OCO documentation's time-frame example.
pub const DOC_EXAMPLE_FRAMES: &str = "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59";

/// The second fixed time-frame list: office hours without Wednesday lunch, plus Saturday.
pub const WORKWEEK_FRAMES: &str = "MON-FRI 08:00-17:00, !WED 12:00-13:00, SAT";

/// How many instants [`instants`] returns; a power of two, so a rotating index is a mask.
pub const INSTANT_COUNT: usize = 1_024;

/// The zone of the `allows_at` and `next_open` benchmarks.
pub const ZONE: Tz = oco_core::chrono_tz::Europe::Berlin;

/// The longest a [`minute_scan_next_open`] looks ahead: a week of minutes, plus a day for offset
/// changes; a list that allows anything allows some minute of every week.
pub const SCAN_LIMIT_MINUTES: i64 = 8 * 24 * 60;

/// The SplitMix64 generator (Steele, Lea and Flood), small and good enough for bench inputs.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    #[allow(clippy::cast_possible_truncation)] // keeping the high half is the point
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// The next 128 random bits.
    pub fn next_u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// A number in `0..n` (with a modulo bias too small to matter here).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index in `0..len`.
    ///
    /// # Panics
    ///
    /// If `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).expect("below len, which is a usize")
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }
}

/// The short list, parsed.
pub fn short_ip_list() -> IpRanges {
    SHORT_IP_LIST.parse().expect("the short list parses")
}

/// The first `count` generated long-list entries, built in code with [`IpEntry::new`].
///
/// Entries are random networks with their host bits cleared, half IPv4 `/8`..`/32` and half IPv6
/// `/16`..`/64` inside `2000::/3`; one in ten is negated. A shorter list is a prefix of a longer
/// one. They are built rather than parsed because 10,000 entries exceed the text limits of
/// [`IpRanges`] ([`MAX_ENTRIES`](oco_core::constraint::MAX_ENTRIES) entries,
/// [`MAX_INPUT_LEN`](oco_core::constraint::MAX_INPUT_LEN) bytes); `IpMatcher::new` compiles them.
pub fn long_ip_list(count: usize) -> Vec<IpEntry> {
    ip_entries().take(count).collect()
}

/// The [`LOOKUP_COUNT`] fixed lookup addresses for the list `entries`, in shuffled order.
///
/// Half are inside some entry (an entry's network with random host bits), half inside none (a
/// random IPv4 address or a random IPv6 address in `2000::/3`, alternately). Both families occur
/// in both halves whenever the list has entries of both.
pub fn ip_lookups(entries: &[IpEntry]) -> Vec<IpAddr> {
    let mut rng = SplitMix64::new(SEED ^ 0x1_00C0);
    let networks: Vec<IpNet> = entries.iter().map(IpEntry::network).collect();
    let covered = |addr: &IpAddr| networks.iter().any(|net| net.contains(addr));
    let mut lookups = Vec::with_capacity(LOOKUP_COUNT);
    for i in 0..LOOKUP_COUNT {
        let addr = if i % 2 == 0 && !networks.is_empty() {
            let network = networks[rng.index(networks.len())];
            random_host(&mut rng, network)
        } else {
            loop {
                let addr = if i % 4 == 1 {
                    IpAddr::V4(Ipv4Addr::from(rng.next_u32()))
                } else {
                    IpAddr::V6(Ipv6Addr::from(global_unicast(rng.next_u128())))
                };
                if !covered(&addr) {
                    break addr;
                }
            }
        };
        lookups.push(addr);
    }
    rng.shuffle(&mut lookups);
    lookups
}

/// The reference answers of the list `entries` for `lookups`, from the naive scan.
pub fn expected_ip_verdicts(entries: &[IpEntry], lookups: &[IpAddr]) -> Vec<bool> {
    let naive = NaiveIpScan::new(entries);
    lookups.iter().map(|&addr| naive.allows(addr)).collect()
}

/// The IP baseline: a naive first-match scan with `ipnet`'s `contains`, with the semantics of
/// `IpRanges::allows` and `IpMatcher::allows`.
#[derive(Debug, Clone)]
pub struct NaiveIpScan {
    entries: Vec<(IpNet, bool)>,
    when_unmatched: bool,
}

impl NaiveIpScan {
    /// The scan over `entries`, in order.
    pub fn new(entries: &[IpEntry]) -> Self {
        let entries: Vec<(IpNet, bool)> = entries
            .iter()
            .map(|e| (e.network(), e.is_negated()))
            .collect();
        let when_unmatched = entries.iter().all(|&(_, negated)| negated);
        NaiveIpScan {
            entries,
            when_unmatched,
        }
    }

    /// Whether `addr` is allowed: IPv4-mapped IPv6 is read as IPv4; the first entry containing
    /// the address decides; when none does, allowed iff every entry is negated.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            IpAddr::V4(_) => addr,
        };
        self.entries
            .iter()
            .find(|(network, _)| network.contains(&addr))
            .map_or(self.when_unmatched, |&(_, negated)| !negated)
    }
}

/// The two fixed time-frame lists, parsed, with a short name for each.
pub fn frame_lists() -> [(&'static str, TimeFrames); 2] {
    [
        (
            "doc",
            DOC_EXAMPLE_FRAMES.parse().expect("the doc example parses"),
        ),
        (
            "workweek",
            WORKWEEK_FRAMES.parse().expect("the workweek list parses"),
        ),
    ]
}

/// The start of the fortnight of [`instants`]: Monday 2026-03-23 00:00 UTC.
///
/// The fortnight contains Berlin's change to summer time (2026-03-29, 01:00 UTC), so `allows_at`
/// and `next_open` meet both offsets and the change itself.
pub fn fortnight_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 23, 0, 0, 0).unwrap()
}

/// [`INSTANT_COUNT`] fixed instants, uniformly random at millisecond resolution over the fortnight
/// from [`fortnight_start`], in random order.
pub fn instants() -> Vec<DateTime<Utc>> {
    let mut rng = SplitMix64::new(SEED ^ 0x2_71AE);
    let fortnight_ms = 14 * 24 * 60 * 60 * 1000;
    let start = fortnight_start();
    (0..INSTANT_COUNT)
        .map(|_| {
            let offset = i64::try_from(rng.below(fortnight_ms)).expect("below a fortnight");
            start + Duration::milliseconds(offset)
        })
        .collect()
}

/// The wall-clock times of `instants` in `zone`.
pub fn local_times(instants: &[DateTime<Utc>], zone: Tz) -> Vec<NaiveDateTime> {
    instants
        .iter()
        .map(|at| at.with_timezone(&zone).naive_local())
        .collect()
}

/// The `next_open` baseline: `now` if allowed, else the first whole UTC minute after it that
/// `TimeFrames::allows_at` allows, looking [`SCAN_LIMIT_MINUTES`] ahead.
///
/// The same answer as `next_open` for zones whose offsets are whole minutes (Berlin's are whole
/// hours): windows and offset changes then both fall on whole UTC minutes.
pub fn minute_scan_next_open(
    frames: &TimeFrames,
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    if frames.allows_at(now, zone) {
        return Some(now);
    }
    let first = DateTime::from_timestamp(now.timestamp().div_euclid(60) * 60 + 60, 0)?;
    (0..SCAN_LIMIT_MINUTES)
        .map(|minutes| first + Duration::minutes(minutes))
        .find(|&at| frames.allows_at(at, zone))
}

/// A random address in `net` (its network with random host bits).
fn random_host(rng: &mut SplitMix64, net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(net) => {
            let host = rng.next_u32() & u32::from(net.hostmask());
            IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) | host))
        }
        IpNet::V6(net) => {
            let host = rng.next_u128() & u128::from(net.hostmask());
            IpAddr::V6(Ipv6Addr::from(u128::from(net.network()) | host))
        }
    }
}

/// `bits` moved into `2000::/3`, the global unicast space.
fn global_unicast(bits: u128) -> u128 {
    (bits >> 3) | (1 << 125)
}

/// The endless, deterministic stream of long-list entries.
fn ip_entries() -> impl Iterator<Item = IpEntry> {
    let mut rng = SplitMix64::new(SEED);
    std::iter::repeat_with(move || {
        let negated = rng.below(10) == 0;
        let network = if rng.below(2) == 0 {
            let len = 8 + u8::try_from(rng.below(25)).expect("below 25");
            let network = rng.next_u32() & (u32::MAX << (32 - len));
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(network), len))
        } else {
            let len = 16 + u8::try_from(rng.below(49)).expect("below 49");
            let network = global_unicast(rng.next_u128()) & (u128::MAX << (128 - len));
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(network), len))
        };
        IpEntry::new(network, negated)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oco_core::constraint::IpMatcher;

    #[test]
    fn short_list_has_the_documented_shape() {
        let ranges = short_ip_list();
        let entries = ranges.entries();
        assert_eq!(entries.len(), 8);
        let v4 = entries
            .iter()
            .filter(|e| matches!(e.network(), IpNet::V4(_)))
            .count();
        assert_eq!(v4, 5);
        assert_eq!(entries.iter().filter(|e| e.is_negated()).count(), 2);
    }

    #[test]
    fn long_lists_have_the_documented_shape() {
        let longest = long_ip_list(LONG_IP_COUNTS[1]);
        for count in LONG_IP_COUNTS {
            let entries = long_ip_list(count);
            assert_eq!(entries.len(), count);
            assert_eq!(entries, longest[..count], "a prefix of the longer list");
            let negated = entries.iter().filter(|e| e.is_negated()).count();
            assert!(
                (count * 7 / 100..=count * 13 / 100).contains(&negated),
                "{count}: {negated} negated"
            );
            let v4 = entries
                .iter()
                .filter(|e| matches!(e.network(), IpNet::V4(_)))
                .count();
            assert!(
                (count * 2 / 5..=count * 3 / 5).contains(&v4),
                "{count}: {v4} IPv4"
            );
            let lengths_in_range = entries.iter().all(|e| match e.network() {
                IpNet::V4(net) => (8..=32).contains(&net.prefix_len()),
                IpNet::V6(net) => {
                    (16..=64).contains(&net.prefix_len()) && net.network().segments()[0] >> 13 == 1
                }
            });
            assert!(lengths_in_range, "{count}: prefix lengths and IPv6 space");
        }
    }

    /// The 1,000-entry list, written out as text and parsed, is the same list: built and parsed
    /// entries are interchangeable.
    #[test]
    fn the_thousand_entry_list_round_trips_through_text() {
        let entries = long_ip_list(LONG_IP_COUNTS[0]);
        let text = entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let ranges: IpRanges = text.parse().unwrap();
        assert_eq!(ranges.entries(), entries);
    }

    /// The fixed lists: the short one parsed, the long ones built.
    fn all_ip_lists() -> Vec<Vec<IpEntry>> {
        let mut lists = vec![short_ip_list().entries().to_vec()];
        lists.extend(LONG_IP_COUNTS.map(long_ip_list));
        lists
    }

    #[test]
    fn lookups_are_half_matching_and_cover_both_families() {
        for entries in all_ip_lists() {
            let lookups = ip_lookups(&entries);
            assert_eq!(lookups.len(), LOOKUP_COUNT);
            let contained = |addr: &IpAddr| entries.iter().any(|e| e.network().contains(addr));
            let (matching, unmatched): (Vec<IpAddr>, Vec<IpAddr>) =
                lookups.iter().partition(|addr| contained(addr));
            assert_eq!(
                matching.len(),
                LOOKUP_COUNT / 2,
                "{} entries",
                entries.len()
            );
            for half in [&matching, &unmatched] {
                assert!(half.iter().any(IpAddr::is_ipv4));
                assert!(half.iter().any(IpAddr::is_ipv6));
            }
            assert_eq!(lookups, ip_lookups(&entries), "deterministic");
        }
    }

    #[test]
    fn short_list_baseline_compiled_and_interpreted_ip_checks_agree() {
        let ranges = short_ip_list();
        let naive = NaiveIpScan::new(ranges.entries());
        let matcher = ranges.compile();
        let lookups = ip_lookups(ranges.entries());
        let expected = expected_ip_verdicts(ranges.entries(), &lookups);
        for (&addr, &verdict) in lookups.iter().zip(&expected) {
            assert_eq!(ranges.allows(addr), verdict, "interpreted at {addr}");
            assert_eq!(naive.allows(addr), verdict, "baseline at {addr}");
            assert_eq!(matcher.allows(addr), verdict, "compiled at {addr}");
        }
        assert!(expected.contains(&true) && expected.contains(&false));
    }

    #[test]
    fn long_list_baseline_and_compiled_ip_checks_agree() {
        for count in LONG_IP_COUNTS {
            let entries = long_ip_list(count);
            let matcher = IpMatcher::new(entries.iter().copied());
            let lookups = ip_lookups(&entries);
            let expected = expected_ip_verdicts(&entries, &lookups);
            for (&addr, &verdict) in lookups.iter().zip(&expected) {
                assert_eq!(matcher.allows(addr), verdict, "{count}: compiled at {addr}");
            }
            // Both verdicts among the matching lookups, the unmatched ones all denied (the lists
            // have plain entries).
            assert!(expected.contains(&true) && expected.contains(&false));
            let unmatched_allowed = lookups
                .iter()
                .zip(&expected)
                .filter(|(addr, _)| !entries.iter().any(|e| e.network().contains(*addr)))
                .any(|(_, &verdict)| verdict);
            assert!(!unmatched_allowed, "{count}");
        }
    }

    #[test]
    fn baseline_reads_mapped_addresses_as_ipv4() {
        let ranges: IpRanges = "!10.0.0.0/8".parse().unwrap();
        let naive = NaiveIpScan::new(ranges.entries());
        assert!(!naive.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(naive.allows("::ffff:11.1.2.3".parse().unwrap()));
    }

    #[test]
    fn instants_span_the_fortnight() {
        let instants = instants();
        assert_eq!(instants.len(), INSTANT_COUNT);
        let start = fortnight_start();
        let end = start + Duration::days(14);
        assert!(instants.iter().all(|&at| start <= at && at < end));
        let locals = local_times(&instants, ZONE);
        let lists = frame_lists();
        let frames = &lists[1].1;
        let allowed = locals.iter().filter(|&&l| frames.allows_local(l)).count();
        assert!(allowed > 0 && allowed < INSTANT_COUNT);
    }

    #[test]
    fn minute_scan_agrees_with_next_open_on_the_fixed_instants() {
        for (name, frames) in frame_lists() {
            let matcher = frames.compile();
            for now in instants() {
                assert_eq!(
                    matcher.next_open(now, ZONE),
                    minute_scan_next_open(&frames, now, ZONE),
                    "{name} from {now}"
                );
            }
        }
    }

    /// Every whole minute, and every half minute, over the weeks around both of Berlin's offset
    /// changes in 2026: the answer at a minute is that minute if allowed, else the answer at the
    /// next minute, so walking backwards gives every expected answer in one pass.
    #[test]
    fn next_open_agrees_with_the_minute_recurrence_around_offset_changes() {
        let windows = [
            Utc.with_ymd_and_hms(2026, 3, 22, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 18, 0, 0, 0).unwrap(),
        ];
        for (name, frames) in frame_lists() {
            let matcher = frames.compile();
            for start in windows {
                let minutes = 14 * 24 * 60;
                let tail = start + Duration::minutes(minutes);
                let mut next = minute_scan_next_open(&frames, tail, ZONE);
                for m in (0..minutes).rev() {
                    let at = start + Duration::minutes(m);
                    let allowed = frames.allows_at(at, ZONE);
                    let half = at + Duration::seconds(30);
                    let expected_half = if allowed { Some(half) } else { next };
                    assert_eq!(
                        matcher.next_open(half, ZONE),
                        expected_half,
                        "{name} from {half}"
                    );
                    if allowed {
                        next = Some(at);
                    }
                    assert_eq!(matcher.next_open(at, ZONE), next, "{name} from {at}");
                }
            }
        }
    }
}
