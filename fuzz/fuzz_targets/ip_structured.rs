//! `IpRanges` built from the input by `Arbitrary` (oco-core feature `arbitrary`): every input is
//! a valid list, so the fuzzer spends its time on the properties rather than on parse errors.
//!
//! The list is up to 256 `IpEntry`s drawn one by one (`Unstructured::arbitrary_iter`), not
//! `IpRanges::arbitrary`: that one reaches lists of 4,096 entries from a few bytes, and such a
//! list costs about 300 ms per run in the instrumented build (a short one well under 1 ms), so
//! they would take most of a short fuzzing run. oco-core's property tests cover them
//! (`tests/generators.rs`); 256 entries pass the 16 per family where `IpMatcher` switches from a
//! scan to intervals.
//!
//! - Round trip: the list is within the limits, `parse(display(x)) == x`, the canonical form is a
//!   fixed point, and `IpRanges::from_entries(x.entries()) == x`.
//! - Compiled equals interpreted: `compile().allows(a) == allows(a)` for addresses drawn from the
//!   rest of the input (anywhere, IPv4-mapped, or inside an entry's network) and then for the
//!   first and last address of the entries' networks and their neighbours, as many as a budget of
//!   plain evaluation allows; an IPv4 address and its IPv4-mapped form get the same answer.
//!
//! Run: `cargo +nightly fuzz run ip_structured` (from `fuzz/`).

#![no_main]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use oco_core::constraint::{IpEntry, IpRanges};

/// Entries of a generated list, at most.
const MAX_FUZZ_ENTRIES: usize = 256;
/// Entries visited by plain evaluation per input, at most: `allows` scans the list, so a long
/// list gets fewer addresses checked (a few dozen at 4,096 entries), a short one up to
/// [`MAX_CHECKED`].
const EVALUATION_BUDGET: usize = 1 << 17;
/// Addresses checked per input, at most.
const MAX_CHECKED: usize = 512;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let entries: Vec<IpEntry> = common::draw(&mut u, MAX_FUZZ_ENTRIES);
    let ranges = match IpRanges::from_entries(entries) {
        Ok(ranges) => ranges,
        Err(err) => panic!("{MAX_FUZZ_ENTRIES} entries are within the limits, but: {err}"),
    };
    common::check_built(&ranges, ranges.entries().len());
    assert_eq!(
        IpRanges::from_entries(ranges.entries().iter().copied()).as_ref(),
        Ok(&ranges)
    );

    let matcher = ranges.compile();
    let mut checks = (EVALUATION_BUDGET / ranges.entries().len().max(1)).min(MAX_CHECKED);
    let mut check = |addr: IpAddr| {
        if checks == 0 {
            return false;
        }
        checks -= 1;
        common::check_compiled_ip(&ranges, &matcher, addr);
        true
    };
    // Addresses from the input first (the fuzzer steers them), then the networks' edges.
    while !u.is_empty() {
        let Ok(addr) = probe(&mut u, &ranges) else {
            break;
        };
        if !check(addr) {
            return;
        }
    }
    for entry in ranges.entries() {
        let net = entry.network();
        for addr in [net.network(), net.broadcast()] {
            for addr in [addr, common::offset(addr, 1), common::offset(addr, -1)] {
                if !check(addr) {
                    return;
                }
            }
        }
    }
});

/// An address from the input: IPv4, IPv6, IPv4-mapped IPv6, or inside an entry's network.
fn probe(u: &mut Unstructured<'_>, ranges: &IpRanges) -> libfuzzer_sys::arbitrary::Result<IpAddr> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?)),
        1 => IpAddr::V6(Ipv6Addr::from(u128::arbitrary(u)?)),
        2 => IpAddr::V6(Ipv4Addr::from(u32::arbitrary(u)?).to_ipv6_mapped()),
        _ => {
            let entries = ranges.entries();
            let host = u128::arbitrary(u)?;
            match entries.get(u.choose_index(entries.len().max(1))?) {
                None => IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?)),
                Some(entry) => {
                    let net = entry.network();
                    match (net.network(), net.hostmask()) {
                        (IpAddr::V4(first), IpAddr::V4(mask)) => {
                            // Truncation intended: the low 32 bits are the IPv4 host bits.
                            #[allow(clippy::cast_possible_truncation)]
                            let host = host as u32 & u32::from(mask);
                            IpAddr::V4(Ipv4Addr::from(u32::from(first) | host))
                        }
                        (first, mask) => {
                            let bits = |addr: IpAddr| match addr {
                                IpAddr::V6(v6) => u128::from(v6),
                                IpAddr::V4(v4) => u128::from(u32::from(v4)),
                            };
                            IpAddr::V6(Ipv6Addr::from(bits(first) | (host & bits(mask))))
                        }
                    }
                }
            }
        }
    })
}
