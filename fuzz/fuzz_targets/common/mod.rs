//! Checks shared by the targets.

// Each target uses some of these.
#![allow(dead_code)]

use std::fmt::{Debug, Display};
use std::str::FromStr;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oco_core::constraint::{IpMatcher, IpRanges, ParseError, MAX_ENTRIES, MAX_INPUT_LEN};

/// Up to `max` values drawn one by one from the input (`Arbitrary`).
pub fn draw<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>, max: usize) -> Vec<T> {
    let mut values = Vec::new();
    if let Ok(iter) = u.arbitrary_iter::<T>() {
        for value in iter.take(max) {
            match value {
                Ok(value) => values.push(value),
                Err(err) => panic!("Arbitrary refused its input: {err}"),
            }
        }
    }
    values
}

/// A list of `entries` entries built in code: within the limits, its canonical form parses back
/// to it, and the round trip of [`check_roundtrip`] holds for that form.
pub fn check_built<T>(value: &T, entries: usize)
where
    T: FromStr<Err = ParseError> + Display + Debug + PartialEq,
{
    let canonical = value.to_string();
    assert!(entries <= MAX_ENTRIES, "{entries} entries");
    assert!(
        canonical.len() <= MAX_INPUT_LEN,
        "canonical form of {} bytes",
        canonical.len()
    );
    match canonical.parse::<T>() {
        Ok(reparsed) => assert_eq!(
            &reparsed, value,
            "parse(display(x)) != x\ncanonical: {canonical}"
        ),
        Err(err) => panic!("canonical form does not parse\n{}", err.render(&canonical)),
    }
    check_roundtrip::<T>(&canonical);
}

/// Parses `input` as a `T` and checks the round trip, or the error, as the targets' headers say.
pub fn check_roundtrip<T>(input: &str)
where
    T: FromStr<Err = ParseError> + Display + Debug + PartialEq,
{
    match input.parse::<T>() {
        Ok(value) => {
            let canonical = value.to_string();
            let reparsed = match canonical.parse::<T>() {
                Ok(reparsed) => reparsed,
                Err(err) => panic!(
                    "canonical form does not parse\ninput: {input:?}\ncanonical: {canonical:?}\n{}",
                    err.render(&canonical)
                ),
            };
            assert_eq!(
                reparsed, value,
                "parse(display(x)) != x\ninput: {input:?}\ncanonical: {canonical:?}"
            );
            assert_eq!(
                reparsed.to_string(),
                canonical,
                "canonical form is not a fixed point\ninput: {input:?}"
            );
        }
        Err(err) => {
            let span = err.span();
            assert!(
                span.start <= span.end && span.end <= input.len(),
                "span {span:?} outside the input (len {})\ninput: {input:?}\nerror: {err}",
                input.len()
            );
            assert!(
                input.is_char_boundary(span.start) && input.is_char_boundary(span.end),
                "span {span:?} not on char boundaries\ninput: {input:?}\nerror: {err}"
            );
            assert_eq!(err.entry().is_some(), err.entry_number().is_some());
            let message = err.to_string();
            let rendered = err.render(input);
            assert!(
                rendered.starts_with(&message),
                "render does not start with the message\ninput: {input:?}\nrendered: {rendered:?}"
            );
        }
    }
}

/// The compiled matcher answers for `addr` as the list does, and an IPv4 address gets the same
/// answer as its IPv4-mapped IPv6 form from both.
pub fn check_compiled_ip(ranges: &IpRanges, matcher: &IpMatcher, addr: IpAddr) {
    let plain = ranges.allows(addr);
    assert_eq!(
        matcher.allows(addr),
        plain,
        "compiled != plain for {addr}\nranges: {ranges}"
    );
    if let IpAddr::V4(v4) = addr {
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(
            ranges.allows(mapped),
            plain,
            "{mapped} != {addr}\nranges: {ranges}"
        );
        assert_eq!(
            matcher.allows(mapped),
            plain,
            "compiled {mapped} != {addr}\nranges: {ranges}"
        );
    }
}

/// `addr + delta`, wrapping within its family.
pub fn offset(addr: IpAddr, delta: i8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4).wrapping_add_signed(i32::from(delta)),
        )),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6).wrapping_add_signed(i128::from(delta)),
        )),
    }
}
