//! Agent IP ranges through the public API: evaluation, canonical form, errors and their messages.

// Test helpers panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use oco_core::constraint::{ErrorKind, IpRanges, MAX_ENTRIES, MAX_INPUT_LEN};

fn ranges(text: &str) -> IpRanges {
    text.parse()
        .unwrap_or_else(|err: oco_core::constraint::ParseError| panic!("{}", err.render(text)))
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const DOC: &str = "10.2.0.0/16, !192.168.2.3, 192.168.2.0/24, caff:eeca:ffee::/64";

/// (constraint, address, allowed)
const EVALUATION: &[(&str, &str, bool)] = &[
    // The spec's normative examples.
    (DOC, "192.168.2.3", false),
    (DOC, "192.168.2.4", true),
    (DOC, "10.9.0.1", false),
    ("192.168.2.0/24, !192.168.2.3", "192.168.2.3", true),
    ("!10.0.0.0/8", "11.0.0.1", true),
    ("!10.0.0.0/8", "10.0.0.1", false),
    ("10.0.0.0/8", "::ffff:10.1.2.3", true),
    ("::/0", "::ffff:10.0.0.1", false),
    // More of the documentation's list.
    (DOC, "10.2.255.255", true),
    (DOC, "10.2.0.0", true),
    (DOC, "10.3.0.0", false),
    (DOC, "10.1.255.255", false),
    (DOC, "caff:eeca:ffee::1", true),
    (DOC, "caff:eeca:ffee:0:ffff:ffff:ffff:ffff", true),
    (DOC, "caff:eeca:ffee:1::", false),
    (DOC, "::ffff:192.168.2.3", false),
    (DOC, "::ffff:192.168.2.77", true),
    (DOC, "192.168.3.1", false),
    ("192.168.2.0/24, !192.168.2.3", "192.168.2.200", true),
    ("192.168.2.0/24, !192.168.2.3", "192.168.1.1", false),
    // Negations only: everything else is allowed, across families too.
    ("!10.0.0.0/8", "2001:db8::1", true),
    ("!10.0.0.0/8", "::ffff:10.0.0.1", false),
    ("!192.168.0.0/16, !10.0.0.0/8", "172.16.0.1", true),
    ("!192.168.0.0/16, !10.0.0.0/8", "192.168.5.5", false),
    ("!192.168.0.0/16, !10.0.0.0/8", "10.1.1.1", false),
    // Prefix boundaries.
    ("10.0.0.0/8", "10.255.255.255", true),
    ("10.0.0.0/8", "11.0.0.0", false),
    ("10.0.0.0/8", "9.255.255.255", false),
    ("fe80::/10", "fe80::1", true),
    ("fe80::/10", "febf:ffff::", true),
    ("fe80::/10", "fec0::", false),
    // Families never cross.
    ("::/0", "2001:db8::1", true),
    ("::/0", "::1", true),
    ("::/0", "10.0.0.1", false),
    ("0.0.0.0/0", "2001:db8::1", false),
    ("0.0.0.0/0", "1.2.3.4", true),
    ("0.0.0.0/0", "255.255.255.255", true),
    ("!::1, ::/0", "::1", false),
    ("!::1, ::/0", "::2", true),
    ("!::1, ::/0", "127.0.0.1", false),
    ("64:ff9b::/96", "64:ff9b::a00:1", true),
    ("64:ff9b::/96", "10.0.0.1", false),
    // No constraint.
    ("", "1.2.3.4", true),
    ("", "::1", true),
    (" , ,, ", "10.0.0.1", true),
    // A bare IPv6 address is one host (OCO widens it to a /32).
    ("2001:db8::1", "2001:db8::1", true),
    ("2001:db8::1", "2001:db8::2", false),
    ("2001:db8::1", "2001:db8:ffff::1", false),
    ("1.2.3.4/32", "1.2.3.4", true),
    ("1.2.3.4/32", "1.2.3.5", false),
    ("127.0.0.1", "127.0.0.1", true),
    ("127.0.0.1", "::ffff:127.0.0.1", true),
    ("127.0.0.1", "::1", false),
    // Mapped ranges are IPv4 ranges.
    ("::ffff:10.0.0.0/104", "10.200.0.1", true),
    ("::ffff:10.0.0.0/104", "::ffff:10.200.0.1", true),
    ("::ffff:10.0.0.0/104", "11.0.0.1", false),
    ("::ffff:0.0.0.0/96", "8.8.8.8", true),
    ("::ffff:0.0.0.0/96", "2001:db8::", false),
    // First match decides.
    ("!10.1.0.0/16, 10.0.0.0/8", "10.1.2.3", false),
    ("!10.1.0.0/16, 10.0.0.0/8", "10.2.3.4", true),
    ("!10.1.0.0/16, 10.0.0.0/8", "11.0.0.1", false),
    ("10.0.0.0/8, !10.1.0.0/16", "10.1.2.3", true),
    ("0.0.0.0/0, !1.2.3.4", "1.2.3.4", true),
    ("!1.2.3.4, 0.0.0.0/0", "1.2.3.4", false),
    ("!1.2.3.4, 0.0.0.0/0", "1.2.3.5", true),
    ("!1.2.3.4, 0.0.0.0/0", "::1", false),
    ("1.2.3.4, !1.2.3.4", "1.2.3.4", true),
    ("!1.2.3.4, 1.2.3.4", "1.2.3.4", false),
    // White space around entries and tokens.
    ("  10.0.0.0 / 8  ,\t! 10.5.0.0/16 ", "10.5.0.1", true),
    ("  10.0.0.0 / 8  ,\t! 10.5.0.0/16 ", "10.6.0.1", true),
    ("\t!\t10.5.0.0/16,10.0.0.0/8", "10.5.0.1", false),
];

#[test]
fn evaluation_table() {
    assert!(EVALUATION.len() >= 60);
    for &(list, address, expected) in EVALUATION {
        let parsed = ranges(list);
        assert_eq!(
            parsed.allows(addr(address)),
            expected,
            "`{list}` for {address}"
        );
        assert_eq!(
            parsed.compile().allows(addr(address)),
            expected,
            "compiled `{list}` for {address}"
        );
    }
}

/// (input, canonical form)
const CANONICAL: &[(&str, &str)] = &[
    (
        "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64",
        "10.2.0.0/16, !192.168.2.3, 192.168.2.0/24, caff:eeca:ffee::/64",
    ),
    ("", ""),
    (" , , ", ""),
    ("10.0.0.0/8,,11.0.0.0/8,", "10.0.0.0/8, 11.0.0.0/8"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("2001:db8::1/128", "2001:db8::1"),
    ("2001:0db8:0000::/48", "2001:db8::/48"),
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("::FFFF:0A01:0203", "10.1.2.3"),
    ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
    ("::ffff:1.2.3.4/128", "1.2.3.4"),
    ("! 10.0.0.0 / 8", "!10.0.0.0/8"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("::/0", "::/0"),
    ("1.2.3.4/32", "1.2.3.4"),
    ("::1", "::1"),
    ("::", "::"),
    ("\t10.0.0.0/8\t", "10.0.0.0/8"),
];

#[test]
fn canonical_forms() {
    for &(input, canonical) in CANONICAL {
        let parsed = ranges(input);
        assert_eq!(parsed.to_string(), canonical, "canonical form of `{input}`");
        assert_eq!(ranges(canonical), parsed, "reparse of `{canonical}`");
    }
}

#[test]
fn entries_expose_networks_and_negation() {
    let parsed = ranges("10.2.0.0/16, !192.168.2.3, ::ffff:10.0.0.0/104");
    let entries = parsed.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].network(), "10.2.0.0/16".parse().unwrap());
    assert!(!entries[0].is_negated());
    assert_eq!(entries[1].network(), "192.168.2.3/32".parse().unwrap());
    assert!(entries[1].is_negated());
    assert_eq!(entries[2].network(), "10.0.0.0/8".parse().unwrap());
}

#[test]
fn default_is_unconstrained() {
    let none = IpRanges::default();
    assert!(none.is_unconstrained());
    assert!(none.entries().is_empty());
    assert_eq!(none.to_string(), "");
    assert_eq!(ranges(" ,, "), none);
    assert!(!ranges("!10.0.0.0/8").is_unconstrained());
}

#[test]
fn serde_uses_the_canonical_string() {
    let parsed = ranges("10.0.0.0/8 , !::1");
    let json = serde_json::to_string(&parsed).unwrap();
    assert_eq!(json, r#""10.0.0.0/8, !::1""#);
    assert_eq!(serde_json::from_str::<IpRanges>(&json).unwrap(), parsed);

    let err = serde_json::from_str::<IpRanges>(r#""10.0.0.1/24""#).unwrap_err();
    assert!(
        err.to_string()
            .contains("entry 1 `10.0.0.1/24`: host bits are set below the prefix length"),
        "{err}"
    );
}

/// (input, kind, span)
fn error_cases() -> Vec<(&'static str, ErrorKind, std::ops::Range<usize>)> {
    vec![
        (
            "10.0.0.1/24",
            ErrorKind::HostBitsSet {
                network: "10.0.0.0/24".parse().unwrap(),
            },
            0..11,
        ),
        (
            "10.0.0.0/8, 192.168.2.3/24",
            ErrorKind::HostBitsSet {
                network: "192.168.2.0/24".parse().unwrap(),
            },
            12..26,
        ),
        (
            "::ffff:10.0.0.1/104",
            ErrorKind::HostBitsSet {
                network: "10.0.0.0/8".parse().unwrap(),
            },
            0..19,
        ),
        (
            "2001:db8::1/32",
            ErrorKind::HostBitsSet {
                network: "2001:db8::/32".parse().unwrap(),
            },
            0..14,
        ),
        (
            "::ffff:10.0.0.0/95",
            ErrorKind::HostBitsSet {
                network: "::fffe:0:0/95".parse().unwrap(),
            },
            0..18,
        ),
        ("!", ErrorKind::EmptyNegation, 0..1),
        ("  ! ", ErrorKind::EmptyNegation, 2..3),
        ("10.0.0.0/8, !", ErrorKind::EmptyNegation, 12..13),
        ("!!10.0.0.0/8", ErrorKind::DoubleNegation, 1..2),
        ("! !10.0.0.0/8", ErrorKind::DoubleNegation, 2..3),
        ("foo", ErrorKind::InvalidAddress, 0..3),
        ("10.0.0", ErrorKind::InvalidAddress, 0..6),
        ("256.0.0.1", ErrorKind::InvalidAddress, 0..9),
        ("1.2.3.4.5", ErrorKind::InvalidAddress, 0..9),
        ("1.2.3.4;5.6.7.8", ErrorKind::InvalidAddress, 0..15),
        ("2001:db8:::1", ErrorKind::InvalidAddress, 0..12),
        ("gggg::", ErrorKind::InvalidAddress, 0..6),
        ("010.0.0.1", ErrorKind::LeadingZeroInAddress, 0..9),
        ("10.0.0.01/32", ErrorKind::LeadingZeroInAddress, 0..9),
        ("fe80::1%eth0", ErrorKind::ZoneId, 7..12),
        ("fe80::1%3/128", ErrorKind::ZoneId, 7..9),
        (
            "10.0.0.0/33",
            ErrorKind::PrefixOutOfRange { max: 32 },
            9..11,
        ),
        ("::/129", ErrorKind::PrefixOutOfRange { max: 128 }, 3..6),
        (
            "10.0.0.0/99999999999",
            ErrorKind::PrefixOutOfRange { max: 32 },
            9..20,
        ),
        ("10.0.0.0/08", ErrorKind::LeadingZeroInPrefix, 9..11),
        ("10.0.0.0/00", ErrorKind::LeadingZeroInPrefix, 9..11),
        ("10.0.0.0/", ErrorKind::MissingPrefix, 8..9),
        ("10.0.0.0 / ", ErrorKind::MissingPrefix, 9..10),
        ("10.0.0.0/x", ErrorKind::InvalidPrefix, 9..10),
        ("10.0.0.0/+8", ErrorKind::InvalidPrefix, 9..11),
        ("10.0.0.0/-1", ErrorKind::InvalidPrefix, 9..11),
        ("10.0.0.0/8/8", ErrorKind::InvalidPrefix, 9..12),
        ("10.0.0.0/8\n", ErrorKind::InvalidPrefix, 9..11),
        ("/8", ErrorKind::MissingAddress, 0..1),
        ("! /8", ErrorKind::MissingAddress, 2..3),
        ("10.0.0.0/8 x", ErrorKind::TrailingGarbage, 11..12),
        ("10.0.0.1 10.0.0.2", ErrorKind::TrailingGarbage, 9..17),
        (
            "1.2.3.4/32 , ::1/129",
            ErrorKind::PrefixOutOfRange { max: 128 },
            17..20,
        ),
    ]
}

#[test]
fn errors_have_kind_and_span() {
    for (input, kind, span) in error_cases() {
        let err = input.parse::<IpRanges>().unwrap_err();
        assert_eq!(err.kind(), &kind, "kind for `{input}`");
        assert_eq!(
            err.span(),
            span,
            "span for `{input}`:\n{}",
            err.render(input)
        );
    }
}

#[test]
fn errors_name_the_entry() {
    let err = "1.2.3.4/32 , ::1/129".parse::<IpRanges>().unwrap_err();
    assert_eq!(err.entry_number(), Some(2));
    assert_eq!(err.entry(), Some("::1/129"));

    let err = "10.0.0.0/8,,, !".parse::<IpRanges>().unwrap_err();
    assert_eq!(err.entry_number(), Some(2), "empty entries are not counted");
    assert_eq!(err.entry(), Some("!"));
}

#[test]
fn limits() {
    let max_entries = vec!["1.2.3.4"; MAX_ENTRIES].join(",");
    assert_eq!(ranges(&max_entries).entries().len(), MAX_ENTRIES);

    let too_many = vec!["1.2.3.4"; MAX_ENTRIES + 1].join(",");
    let err = too_many.parse::<IpRanges>().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::TooManyEntries);
    assert_eq!(err.entry_number(), Some(MAX_ENTRIES + 1));
    let start = MAX_ENTRIES * "1.2.3.4,".len();
    assert_eq!(err.span(), start..start + 7);

    // Empty entries do not count towards the limit.
    let with_gaps = vec!["1.2.3.4"; MAX_ENTRIES].join(",,");
    assert_eq!(ranges(&with_gaps).entries().len(), MAX_ENTRIES);

    let too_long = " ".repeat(MAX_INPUT_LEN + 1);
    let err = too_long.parse::<IpRanges>().unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::TooLong {
            len: MAX_INPUT_LEN + 1
        }
    );
    assert_eq!(err.entry(), None);
    assert!(" ".repeat(MAX_INPUT_LEN).parse::<IpRanges>().is_ok());
}

/// Every message of the IP language and the shared list syntax, pinned.
#[test]
fn messages() {
    let cases = [
        (
            "10.0.0.1/24",
            "entry 1 `10.0.0.1/24`: host bits are set below the prefix length; did you mean `10.0.0.0/24`?",
        ),
        ("!", "entry 1 `!`: `!` must be followed by what it negates"),
        (
            "!!1.2.3.4",
            "entry 1 `!!1.2.3.4`: only one `!` is allowed per entry",
        ),
        (
            "1.2.3.4 x",
            "entry 1 `1.2.3.4 x`: unexpected text after the entry",
        ),
        ("/8", "entry 1 `/8`: an address is missing before the `/`"),
        ("foo", "entry 1 `foo`: not an IPv4 or IPv6 address"),
        (
            "010.0.0.1",
            "entry 1 `010.0.0.1`: IPv4 address parts must not have leading zeros (they read as octal elsewhere)",
        ),
        (
            "fe80::1%eth0",
            "entry 1 `fe80::1%eth0`: IPv6 zone ids (`%...`) are not allowed",
        ),
        (
            "1.2.3.4/",
            "entry 1 `1.2.3.4/`: a prefix length is missing after the `/`",
        ),
        (
            "1.2.3.4/x",
            "entry 1 `1.2.3.4/x`: the prefix length must be a plain decimal number",
        ),
        (
            "1.2.3.4/032",
            "entry 1 `1.2.3.4/032`: the prefix length must not have leading zeros",
        ),
        (
            "1.2.3.4/33",
            "entry 1 `1.2.3.4/33`: the prefix length is out of range; at most 32 for this address family",
        ),
        (
            "::/200",
            "entry 1 `::/200`: the prefix length is out of range; at most 128 for this address family",
        ),
    ];
    for (input, message) in cases {
        let err = input.parse::<IpRanges>().unwrap_err();
        assert_eq!(err.to_string(), message, "message for `{input}`");
    }

    let too_many = vec!["1.2.3.4"; MAX_ENTRIES + 1].join(",");
    assert_eq!(
        too_many.parse::<IpRanges>().unwrap_err().to_string(),
        "entry 4097 `1.2.3.4`: the constraint has more than 4096 entries; at most 4096 are allowed"
    );
    assert_eq!(
        " ".repeat(70_000)
            .parse::<IpRanges>()
            .unwrap_err()
            .to_string(),
        "the constraint is 70000 bytes long; at most 65536 are allowed"
    );
}

#[test]
fn render_puts_a_caret_under_the_span() {
    let input = "10.0.0.0/8, 10.0.0.0/33";
    let err = input.parse::<IpRanges>().unwrap_err();
    assert_eq!(
        err.render(input),
        "entry 2 `10.0.0.0/33`: the prefix length is out of range; at most 32 for this address family\n\
         10.0.0.0/8, 10.0.0.0/33\n                     ^^"
    );

    // Tabs and other control characters print as spaces, so the caret stays aligned.
    let input = "\t10.0.0.0/\n";
    let err = input.parse::<IpRanges>().unwrap_err();
    assert_eq!(err.span(), 10..11);
    assert_eq!(
        err.render(input).lines().skip(1).collect::<Vec<_>>(),
        [" 10.0.0.0/ ", "          ^"]
    );

    // Long inputs are cut to a window around the span.
    let input = format!(
        "{}1.2.3.4/x{}",
        "10.0.0.0/8, ".repeat(20),
        ", ::1".repeat(20)
    );
    let err = input.parse::<IpRanges>().unwrap_err();
    let rendered = err.render(&input);
    let lines: Vec<&str> = rendered.lines().collect();
    assert!(lines[1].starts_with("..."), "{rendered}");
    assert!(lines[1].ends_with("..."), "{rendered}");
    let caret = lines[2].find('^').unwrap();
    assert_eq!(&lines[1][caret..caret + 1], "x", "{rendered}");
}

#[test]
fn entries_built_in_code_are_normalized() {
    use oco_core::constraint::IpEntry;

    let entry = IpEntry::new("192.168.2.3/24".parse().unwrap(), false);
    assert_eq!(entry.network(), "192.168.2.0/24".parse().unwrap());
    assert!(!entry.is_negated());

    let mapped = IpEntry::new("::ffff:10.1.2.3/104".parse().unwrap(), true);
    assert_eq!(mapped.network(), "10.0.0.0/8".parse().unwrap());
    assert!(mapped.is_negated());
    assert_eq!(mapped.to_string(), "!10.0.0.0/8");

    // Below /96 the network is IPv6 and no longer contains only mapped addresses.
    let wide = IpEntry::new("::ffff:0:0/80".parse().unwrap(), false);
    assert_eq!(wide.network(), "::/80".parse().unwrap());
}

/// A matcher built from entries in code may exceed the text limits and answers like a
/// first-match scan.
#[test]
fn matcher_from_entries_beyond_the_text_limits() {
    use oco_core::constraint::{IpEntry, IpMatcher};
    use oco_core::ipnet::IpNet;

    // 10.0.0.0/24, 10.0.1.0/24, ... every third one negated, then all of 10/8 negated.
    let mut entries: Vec<IpEntry> = (0..10_000u32)
        .map(|i| {
            let net = IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24);
            IpEntry::new(net.unwrap(), i % 3 == 0)
        })
        .collect();
    entries.push(IpEntry::new("10.0.0.0/8".parse().unwrap(), true));
    assert!(entries.len() > MAX_ENTRIES);
    let matcher = IpMatcher::new(entries.iter().copied());

    let first_match = |addr: IpAddr| {
        entries
            .iter()
            .find(|entry| entry.network().contains(&addr))
            .is_some_and(|entry| !entry.is_negated())
    };
    for i in (0..10_100u32).step_by(7) {
        let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8) + 5));
        assert_eq!(matcher.allows(addr), first_match(addr), "{addr}");
    }
    assert!(!matcher.allows(addr("10.0.0.1")));
    assert!(matcher.allows(addr("10.0.1.1")));
    assert!(!matcher.allows(addr("10.200.0.1")));
    assert!(!matcher.allows(addr("11.0.0.1")));
}

/// Found by hand while fuzzing: a list under the input limit printed a canonical form over it
/// (`", "` separators), which then failed to parse, so a saved constraint could not be loaded.
#[test]
fn regression_canonical_form_longer_than_the_limit() {
    let input = "255.255.255.255,".repeat(MAX_ENTRIES);
    assert!(input.len() <= MAX_INPUT_LEN);
    let err = input.parse::<IpRanges>().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::CanonicalTooLong);
    // 3,855 entries print as 61,678 bytes, the 3,856th would pass 65,536: (17 + 2) * 3,856 - 2.
    assert_eq!(err.entry_number(), Some(3856));
    assert_eq!(err.span(), 3855 * 16..3855 * 16 + 15);
    assert_eq!(
        err.to_string(),
        "entry 3856 `255.255.255.255`: the constraint's canonical form grows past 65536 bytes here; \
         at most 65536 are allowed"
    );

    let fits = "255.255.255.255,".repeat(3855);
    let parsed = ranges(&fits);
    assert_eq!(ranges(&parsed.to_string()), parsed);
}

/// Found by hand while fuzzing: the span of `TooLong` started inside a multi-byte character.
#[test]
fn regression_too_long_span_on_a_char_boundary() {
    let input = format!("{}é", "a".repeat(MAX_INPUT_LEN - 1));
    let err = input.parse::<IpRanges>().unwrap_err();
    assert_eq!(err.span(), MAX_INPUT_LEN - 1..MAX_INPUT_LEN + 1);
    assert!(input.is_char_boundary(err.span().start));
}
