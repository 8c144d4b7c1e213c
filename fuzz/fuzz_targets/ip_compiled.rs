//! `IpRanges::compile`: the compiled matcher answers exactly as `IpRanges::allows` for every
//! address, and an IPv4 address gets the same answer as its IPv4-mapped IPv6 form.
//!
//! Input: a list, up to the first `0xFF` byte, then 17-byte address chunks.
//!
//! - The list is text (UTF-8, lossy) unless it starts with `#`; then the bytes after `#` generate
//!   entries (flag byte: bit 0 negation, bits 1-2 family; a prefix-length byte; address bytes),
//!   which reach the interval (binary search) matcher of long lists far more often than text does.
//!   Generated lists must parse.
//! - Chunk byte 0 picks the family (bits 0-1: IPv4, IPv6, IPv4-mapped IPv6, or derived from an
//!   entry's network with host bits from the chunk); the other bytes are the address.
//! - Besides the chunks, the first and last address of every entry's network and their neighbours
//!   are checked, where the compiled intervals begin and end.
//!
//! Run: `cargo +nightly fuzz run ip_compiled -- -dict=ip.dict` (from `fuzz/`).

#![no_main]

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use oco_core::constraint::IpRanges;

/// Entries generated from bytes at most; enough to pass the scan limit of both families.
const MAX_GENERATED: usize = 256;
/// Entries whose boundaries are checked at most.
const MAX_BOUNDARY_ENTRIES: usize = 256;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (list, rest) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));

    let ranges: IpRanges = match list.strip_prefix(b"#") {
        Some(spec) => {
            let text = generate_list(spec);
            match text.parse() {
                Ok(ranges) => ranges,
                Err(err) => panic!("generated list does not parse\n{}", err.render(&text)),
            }
        }
        None => match String::from_utf8_lossy(list).parse() {
            Ok(ranges) => ranges,
            Err(_) => return,
        },
    };
    let matcher = ranges.compile();
    let check = |addr: IpAddr| common::check_compiled_ip(&ranges, &matcher, addr);

    for entry in ranges.entries().iter().take(MAX_BOUNDARY_ENTRIES) {
        let net = entry.network();
        for addr in [net.network(), net.broadcast()] {
            check(addr);
            check(common::offset(addr, 1));
            check(common::offset(addr, -1));
        }
    }

    for chunk in rest.chunks_exact(17) {
        let bytes = &chunk[1..];
        let addr = match chunk[0] & 3 {
            0 => IpAddr::V4(v4_from(bytes)),
            1 => IpAddr::V6(v6_from(bytes)),
            2 => IpAddr::V6(v4_from(bytes).to_ipv6_mapped()),
            _ => match ranges.entries().get(usize::from(bytes[0])) {
                None => IpAddr::V4(v4_from(bytes)),
                Some(entry) => {
                    let net = entry.network();
                    with_host_bits(net.network(), net.prefix_len(), &bytes[1..])
                }
            },
        };
        check(addr);
    }
});

/// Builds list text from `spec`: per entry a flag byte (bit 0: `!`; bits 1-2: IPv4 from 4
/// bytes, IPv6 from 8 bytes for the top half, IPv6 from 16 bytes, IPv4-mapped IPv6 from 4
/// bytes), a prefix-length byte and the address bytes. Host bits are cleared.
fn generate_list(spec: &[u8]) -> String {
    let mut text = String::new();
    let mut bytes = spec;
    for _ in 0..MAX_GENERATED {
        let [flags, len, tail @ ..] = bytes else {
            break;
        };
        let negation = if flags & 1 == 1 { "!" } else { "" };
        let (addr, used) = match (flags >> 1) & 3 {
            0 => (IpAddr::V4(v4_from(tail)), 4),
            1 => {
                let mut full = [0u8; 16];
                let top = tail.len().min(8);
                full[..top].copy_from_slice(&tail[..top]);
                (IpAddr::V6(Ipv6Addr::from(full)), 8)
            }
            2 => (IpAddr::V6(v6_from(tail)), 16),
            _ => (IpAddr::V6(v4_from(tail).to_ipv6_mapped()), 4),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = *len % (max + 1);
        let network = with_host_bits(addr, len, &[]);
        let _ = write!(text, "{negation}{network}/{len}, ");
        bytes = tail.get(used..).unwrap_or(&[]);
    }
    text
}

fn v4_from(bytes: &[u8]) -> Ipv4Addr {
    let mut octets = [0u8; 4];
    let n = bytes.len().min(4);
    octets[..n].copy_from_slice(&bytes[..n]);
    Ipv4Addr::from(octets)
}

fn v6_from(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    let n = bytes.len().min(16);
    octets[..n].copy_from_slice(&bytes[..n]);
    Ipv6Addr::from(octets)
}

/// `network` with the bits below `len` replaced by (the low bits of) `host`.
fn with_host_bits(network: IpAddr, len: u8, host: &[u8]) -> IpAddr {
    let mut host_bits = [0u8; 16];
    let n = host.len().min(16);
    host_bits[..n].copy_from_slice(&host[..n]);
    let host = u128::from_be_bytes(host_bits);
    match network {
        IpAddr::V4(net) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            // Truncation intended: the low 32 host bits.
            #[allow(clippy::cast_possible_truncation)]
            let host = host as u32;
            IpAddr::V4(Ipv4Addr::from((u32::from(net) & mask) | (host & !mask)))
        }
        IpAddr::V6(net) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from((u128::from(net) & mask) | (host & !mask)))
        }
    }
}
