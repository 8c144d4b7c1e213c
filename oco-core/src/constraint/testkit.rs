//! Reference implementations for tests, fuzz targets and benchmarks (feature `testkit`): the
//! lint's findings computed by brute force, to check [`IpRanges::lint`](super::IpRanges::lint)
//! and [`TimeFrames::lint`] against and to measure them beside.
//!
//! # Examples
//!
//! ```
//! use oco_core::constraint::testkit::{brute_force_ip_lint, BruteLint};
//! use oco_core::constraint::IpRanges;
//!
//! let ranges: IpRanges = "10.0.0.0/8, !10.66.0.0/16, 10.1.0.0/16".parse()?;
//! let brute = brute_force_ip_lint(ranges.entries());
//! assert_eq!(brute.never_applies, [1, 2]);
//! assert!(brute.matches(&BruteLint::from_findings(&ranges.lint())));
//! # Ok::<(), oco_core::constraint::ParseError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use ipnet::IpNet;

use super::ip::MAPPED;
use super::{Finding, FindingKind, IpEntry, IpMatcher, TimeFrames};

/// What the lint baseline finds: the entries (0-based) that are never the first match, and those
/// whose removal changes no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BruteLint {
    /// Entries that never decide anything.
    pub never_applies: Vec<usize>,
    /// Entries whose removal alone changes no verdict.
    pub removable: Vec<usize>,
}

impl BruteLint {
    /// The same sets from `oco_core`'s findings: shadowed entries never apply; redundant ones
    /// decide somewhere but are removable (shadowed ones are left out of `removable`, which the
    /// comparison in [`BruteLint::matches`] allows for).
    pub fn from_findings(findings: &[Finding]) -> BruteLint {
        let numbered = |wanted: fn(&FindingKind) -> bool| {
            findings
                .iter()
                .filter(|f| wanted(f.kind()))
                .filter_map(|f| f.entry_number().map(|n| n - 1))
                .collect()
        };
        BruteLint {
            never_applies: numbered(|k| matches!(k, FindingKind::Shadowed { .. })),
            removable: numbered(|k| matches!(k, FindingKind::Redundant)),
        }
    }

    /// Whether the lint's sets (`from_findings`) agree with these: the same entries never apply,
    /// and the redundant ones are the removable entries that do apply.
    pub fn matches(&self, lint: &BruteLint) -> bool {
        let redundant: Vec<usize> = self
            .removable
            .iter()
            .copied()
            .filter(|entry| !self.never_applies.contains(entry))
            .collect();
        self.never_applies == lint.never_applies && redundant == lint.removable
    }
}

/// The lint baseline for IP lists: for each entry, a scan of the list at one address of every
/// stretch on which no entry begins or ends (is it ever the first match?), and the list compiled
/// without it and compared at those addresses (does removing it change a verdict?). Quadratic.
pub fn brute_force_ip_lint(entries: &[IpEntry]) -> BruteLint {
    let mapped_last = MAPPED | 0xffff_ffff;
    let mapped = MAPPED..=mapped_last;
    let mut points: Vec<IpAddr> = vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::from(mapped_last + 1)),
    ];
    for entry in entries {
        match entry.network() {
            IpNet::V4(net) => {
                points.push(IpAddr::V4(net.network()));
                if let Some(next) = u32::from(net.broadcast()).checked_add(1) {
                    points.push(IpAddr::V4(next.into()));
                }
            }
            IpNet::V6(net) => {
                points.push(IpAddr::V6(net.network()));
                if let Some(next) = u128::from(net.broadcast()).checked_add(1) {
                    if !mapped.contains(&next) {
                        points.push(IpAddr::V6(next.into()));
                    }
                }
            }
        }
    }
    points.sort_unstable();
    points.dedup();
    let first_match = |addr: &IpAddr| entries.iter().position(|e| e.network().contains(addr));
    let mut applies = vec![false; entries.len()];
    for point in &points {
        if let Some(first) = first_match(point) {
            applies[first] = true;
        }
    }
    let whole = IpMatcher::new(entries.iter().copied());
    let verdicts: Vec<bool> = points.iter().map(|&p| whole.allows(p)).collect();
    let removable = (0..entries.len())
        .filter(|&removed| {
            let rest = IpMatcher::new(
                entries
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != removed)
                    .map(|(_, e)| *e),
            );
            points
                .iter()
                .zip(&verdicts)
                .all(|(&p, &verdict)| rest.allows(p) == verdict)
        })
        .collect();
    BruteLint {
        never_applies: (0..entries.len()).filter(|&i| !applies[i]).collect(),
        removable,
    }
}

/// The lint baseline for time frames: every minute of a week scanned for its first entry, and
/// the list without each entry compared with the list at every minute.
pub fn brute_force_time_lint(frames: &TimeFrames) -> BruteLint {
    let monday = NaiveDate::from_ymd_opt(2026, 11, 23)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let minutes: Vec<NaiveDateTime> = (0..7 * 24 * 60)
        .map(|m| monday + Duration::minutes(m))
        .collect();
    let entries = frames.entries();
    let mut applies = vec![false; entries.len()];
    for &minute in &minutes {
        if let Some(first) = entries.iter().position(|e| e.contains_local(minute)) {
            applies[first] = true;
        }
    }
    let whole = frames.compile();
    let verdicts: Vec<bool> = minutes.iter().map(|&m| whole.allows_local(m)).collect();
    let removable = (0..entries.len())
        .filter(|&removed| {
            let rest: TimeFrames = entries
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != removed)
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
                .parse()
                .unwrap_or_default();
            let rest = rest.compile();
            minutes
                .iter()
                .zip(&verdicts)
                .all(|(&m, &verdict)| rest.allows_local(m) == verdict)
        })
        .collect();
    BruteLint {
        never_applies: (0..entries.len()).filter(|&i| !applies[i]).collect(),
        removable,
    }
}
