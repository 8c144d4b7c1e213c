//! The grammar of both constraint languages, an example of every production, every parse error
//! with its message, and the deliberate differences from OCO.
//!
//! This module holds documentation only; every example in it is a doc test.
//!
//! # Notation
//!
//! The grammar is written in the EBNF of the W3C XML 1.0 recommendation (section 6,
//! "Notation"): `a ::= ...` defines `a`; `"abc"` is literal text; `[0-9]` is a range of
//! characters; `#x20` is the character with that code point; `a b` is `a` followed by `b`;
//! `a | b` is either; `a?`, `a*` and `a+` are at most one, any number and at least one `a`;
//! parentheses group; `/* ... */` is a comment. What a context-free grammar says badly (letter
//! case, number ranges, host bits, the limits) is in a comment beside the production or in the
//! text after the grammar, and the examples check it.
//!
//! The grammar says which texts are accepted. Which error a rejected text gets is listed under
//! [Errors](#errors).
//!
//! # Lists: both languages
//!
//! ```text
//! list   ::= item ( "," item )*
//! item   ::= blank* ( "!" blank* )? entry blank*
//!          | blank*                       /* an empty item: ignored */
//! entry  ::= ip-entry                     /* in IpRanges */
//!          | time-entry                   /* in TimeFrames */
//! blank  ::= #x20 | #x9                   /* ASCII space and tab, nothing else */
//! ```
//!
//! - The input is cut at every `,` first: no entry contains a comma.
//! - Blanks are ASCII space and tab only. A line break, a carriage return or a no-break space is
//!   an ordinary character, so inside an item it makes the entry invalid.
//! - An entry may start with one `!` (negation), blanks after it allowed.
//! - A list without entries (the empty text, or only blanks and commas) is *no constraint*: it
//!   allows everything.
//! - The first entry that contains the address or time decides: a plain entry allows, a negated
//!   one denies. When none contains it, the verdict is *deny*, unless every entry is negated:
//!   then it is *allow*.
//! - The canonical form ([`Display`](std::fmt::Display)) joins the entries with `", "`, `!`
//!   attached to its entry; parsing it gives the same value again.
//!
//! ```
//! use oco_core::constraint::{IpRanges, TimeFrames};
//!
//! // Blanks around items and empty items are dropped.
//! let ranges: IpRanges = " 10.0.0.0/8 ,\t, ! 10.1.0.0/16,".parse()?;
//! assert_eq!(ranges.entries().len(), 2);
//! assert!(ranges.entries()[1].is_negated());
//! assert_eq!(ranges.to_string(), "10.0.0.0/8, !10.1.0.0/16");
//! assert_eq!(ranges.to_string().parse::<IpRanges>()?, ranges);
//!
//! // The first entry containing the address decides.
//! assert!(ranges.allows("10.2.0.1".parse()?));
//! // 10.1.0.1 is in the negated 10.1/16, but 10/8 comes first.
//! assert!(ranges.allows("10.1.0.1".parse()?));
//! assert!(!ranges.allows("192.0.2.1".parse()?)); // no entry matches: deny
//!
//! // Only blanks and commas: no constraint.
//! for input in ["", " ", ",", " ,\t, ,"] {
//!     assert!(input.parse::<IpRanges>()?.is_unconstrained());
//!     assert!(input.parse::<TimeFrames>()?.is_unconstrained());
//! }
//!
//! // Other white space is not a blank; `!` needs an entry, and only one `!` is allowed.
//! for input in ["10.0.0.1\n", "10.0.0.1\r", "\u{a0}10.0.0.1", "!", "10.0.0.1, !", "!!10.0.0.1"] {
//!     assert!(input.parse::<IpRanges>().is_err(), "{input:?}");
//! }
//! assert!("SAT\n".parse::<TimeFrames>().is_err());
//! assert!("! !SAT".parse::<TimeFrames>().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # IP ranges ([`IpRanges`])
//!
//! ```text
//! ip-entry  ::= address ( blank* "/" blank* prefix )?
//! address   ::= ipv4 | ipv6
//! ipv4      ::= octet "." octet "." octet "." octet
//! octet     ::= digit | [1-9] digit | "1" digit digit | "2" [0-4] digit | "25" [0-5]
//!               /* 0 to 255, without leading zeros */
//! ipv6      ::= /* a text form of RFC 4291, section 2.2: eight groups of one to four hex
//!                  digits (either case) separated by ":"; one run of zero groups may be
//!                  written "::"; the last 32 bits may be written as an ipv4.
//!                  No zone id ("fe80::1%eth0"), no brackets ("[::1]"). */
//! prefix    ::= "0" | [1-9] digit*        /* at most 32 after an ipv4, 128 after an ipv6 */
//! digit     ::= [0-9]
//! ```
//!
//! Beyond the grammar, the address must have no bits set after its first `prefix` bits
//! (`192.168.2.0/24`, not `192.168.2.3/24`).
//!
//! Meaning: `address/prefix` is the network of the addresses that share its first `prefix` bits;
//! a bare address is a single host (`/32` for IPv4, `/128` for IPv6). An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is IPv4: the entry `::ffff:10.0.0.0/104` is `10.0.0.0/8`, and an agent
//! at `::ffff:10.1.2.3` is checked as `10.1.2.3`. IPv4 entries never contain IPv6 addresses
//! and IPv6 entries never contain IPv4 addresses.
//!
//! Canonical form: the network address in its standard text form, then `/prefix` unless the
//! entry is a single host. IPv6 is written as RFC 5952, section 4 recommends: lower case, no
//! leading zeros, the longest run of two or more zero groups as `::`; embedded IPv4 in hex.
//!
//! `ip-entry`: an address alone or with a prefix; blanks around `/` are allowed.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//! use oco_core::ipnet::IpNet;
//!
//! let ranges: IpRanges = "192.168.2.0 / 24, 10.0.0.1, 2001:db8::/32".parse()?;
//! assert_eq!(ranges.to_string(), "192.168.2.0/24, 10.0.0.1, 2001:db8::/32");
//! let networks: Vec<IpNet> = ranges.entries().iter().map(|entry| entry.network()).collect();
//! let expected: Vec<IpNet> =
//!     vec!["192.168.2.0/24".parse()?, "10.0.0.1/32".parse()?, "2001:db8::/32".parse()?];
//! assert_eq!(networks, expected);
//!
//! // One address and one prefix per entry, nothing else.
//! for input in ["10.0.0.0 8", "10.0.0.0/8 /8", "10.0.0.0/8/8", "10.0.0.1 10.0.0.2", "/24"] {
//!     assert!(input.parse::<IpRanges>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `ipv4`: a dotted quad of decimal numbers 0 to 255 without leading zeros (which other tools
//! read as octal).
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! for input in ["0.0.0.0", "10.0.0.1", "192.168.100.200", "255.255.255.255"] {
//!     assert_eq!(input.parse::<IpRanges>()?.to_string(), input);
//! }
//! for input in [
//!     "010.0.0.1", "10.0.0.01", "00.0.0.0", "256.0.0.1", "1.2.3", "1.2.3.4.5", "0x0a.0.0.1",
//! ] {
//!     assert!(input.parse::<IpRanges>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `ipv6`: any RFC 4291 text form; the canonical form is compressed and lower case.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! for (input, canonical) in [
//!     ("::", "::"),
//!     ("::1", "::1"),
//!     ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
//!     ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
//!     ("CAFF:EECA:FFEE:0000::/64", "caff:eeca:ffee::/64"),
//!     ("1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
//!     // The last 32 bits as an IPv4 address.
//!     ("64:ff9b::192.0.2.1", "64:ff9b::c000:201"),
//!     // IPv4-mapped: IPv4.
//!     ("::ffff:192.0.2.1", "192.0.2.1"),
//! ] {
//!     assert_eq!(input.parse::<IpRanges>()?.to_string(), canonical);
//! }
//! // No zone id, no brackets, at most eight groups of at most four digits, no leading zeros
//! // in an embedded IPv4 address.
//! for input in [
//!     "fe80::1%eth0", "[::1]", "1:2:3:4:5:6:7:8:9", "12345::", "1::2::3", "::ffff:010.0.0.1",
//! ] {
//!     assert!(input.parse::<IpRanges>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `prefix`: a plain decimal number without sign or leading zeros, at most 32 after an IPv4
//! address and 128 after an IPv6 address. Set host bits are an error (whose message suggests the
//! network); an IPv4-mapped network of prefix 96 or more is the IPv4 network of prefix − 96.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! for input in ["0.0.0.0/0", "10.0.0.0/8", "192.168.2.0/31", "::/0", "2001:db8::/127"] {
//!     assert_eq!(input.parse::<IpRanges>()?.to_string(), input);
//! }
//! // A full-length prefix is a single host, printed without it.
//! let hosts: IpRanges = "10.0.0.1/32, 2001:db8::1/128".parse()?;
//! assert_eq!(hosts.to_string(), "10.0.0.1, 2001:db8::1");
//! // IPv4-mapped networks are IPv4.
//! assert_eq!("::ffff:10.0.0.0/104".parse::<IpRanges>()?.to_string(), "10.0.0.0/8");
//! assert_eq!("::ffff:0.0.0.0/96".parse::<IpRanges>()?.to_string(), "0.0.0.0/0");
//!
//! for input in [
//!     "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-8", "10.0.0.0/08", "10.0.0.0/8.0", "10.0.0.0/33",
//!     "2001:db8::/129", "10.0.0.0/x",
//!     // Host bits set.
//!     "192.168.2.3/24", "2001:db8::1/32", "::ffff:10.0.0.0/64",
//! ] {
//!     assert!(input.parse::<IpRanges>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Time frames ([`TimeFrames`])
//!
//! ```text
//! time-entry ::= days ( blank* window )?
//!              | window
//! days       ::= day ( blank* "-" blank* day )?
//! day        ::= "MON" | "TUE" | "WED" | "THU" | "FRI" | "SAT" | "SUN"
//!              | "MONDAY" | "TUESDAY" | "WEDNESDAY" | "THURSDAY" | "FRIDAY" | "SATURDAY"
//!              | "SUNDAY"                       /* ASCII letters in any case */
//! window     ::= start blank* "-" blank* end    /* start and end differ */
//! start      ::= time
//! end        ::= time | "24:00"
//! time       ::= hour ":" minute
//! hour       ::= [0-1]? digit | "2" [0-3]      /* 0 to 23, one or two digits */
//! minute     ::= [0-5] digit                    /* 00 to 59, always two digits */
//! ```
//!
//! Meaning, in local wall-clock time:
//!
//! - `days` alone is the whole of each of those days; `window` alone applies to every day.
//! - A day range includes both ends and may wrap over the end of the week (`FRI-MON` is Friday,
//!   Saturday, Sunday and Monday); `MON-MON` is Monday alone.
//! - A window is half-open, `[start, end)`, to the second: `6:00-7:00` contains 06:00:00 and
//!   06:59:59, not 07:00:00.
//! - `end` at or before `start` crosses midnight: `FRI 22:00-02:00` is Friday 22:00 to Saturday
//!   02:00; the days name the day a window starts.
//!
//! Canonical form: `!` if negated, the days as upper-case three-letter names (`MON-FRI` for a
//! range, one name when both ends are the same day), a space if there are both, the window as
//! `HH:MM-HH:MM`.
//!
//! `time-entry`: days, a window, or days and a window, in that order, with or without blanks
//! between them.
//!
//! ```
//! use oco_core::constraint::TimeFrames;
//!
//! let frames: TimeFrames = "SAT, 8:00-17:00, MON-FRI 18:00-20:00, MON11:00-13:00".parse()?;
//! assert_eq!(frames.to_string(), "SAT, 08:00-17:00, MON-FRI 18:00-20:00, MON 11:00-13:00");
//! let entries = frames.entries();
//! assert!(entries[0].days().is_some() && entries[0].window().is_none());
//! assert!(entries[1].days().is_none() && entries[1].window().is_some());
//! assert!(entries[2].days().is_some() && entries[2].window().is_some());
//! assert_eq!(entries[3], "MON 11:00-13:00".parse::<TimeFrames>()?.entries()[0]);
//!
//! // Days first; one day spec and one window per entry.
//! for input in ["8:00-17:00 MON", "MON FRI", "MON 8:00-9:00 10:00-11:00", "*"] {
//!     assert!(input.parse::<TimeFrames>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `days` and `day`: three-letter and full English names in any letter case, alone or as a
//! range.
//!
//! ```
//! use oco_core::chrono::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
//! use oco_core::constraint::TimeFrames;
//!
//! for input in ["SAT", "sat", "Sat", "Saturday", "SATURDAY", "sAtUrDaY"] {
//!     assert_eq!(input.parse::<TimeFrames>()?.to_string(), "SAT");
//! }
//! for input in ["Sa", "Sats", "Tues", "Thur", "Thurs", "Samstag", "S4T"] {
//!     assert!(input.parse::<TimeFrames>().is_err(), "{input}");
//! }
//!
//! // A range includes both ends; blanks around `-` are allowed; both forms of names mix.
//! let frames: TimeFrames = "Monday - fri".parse()?;
//! assert_eq!(frames.to_string(), "MON-FRI");
//! let days = frames.entries()[0].days().unwrap();
//! assert_eq!((days.first(), days.last()), (Mon, Fri));
//! assert!([Mon, Tue, Wed, Thu, Fri].iter().all(|&day| days.contains(day)));
//! assert!(!days.contains(Sat) && !days.contains(Sun));
//!
//! // A range may wrap over the end of the week.
//! let days = "FRI-MON".parse::<TimeFrames>()?.entries()[0].days().unwrap();
//! assert!([Fri, Sat, Sun, Mon].iter().all(|&day| days.contains(day)));
//! assert!(![Tue, Wed, Thu].iter().any(|&day| days.contains(day)));
//!
//! // A range of one day is that day.
//! assert_eq!("MON-MON".parse::<TimeFrames>()?, "MON".parse::<TimeFrames>()?);
//! assert_eq!("MON-MON".parse::<TimeFrames>()?.to_string(), "MON");
//!
//! for input in ["MON-", "MON-8:00-9:00", "MON-XYZ", "MON--FRI"] {
//!     assert!(input.parse::<TimeFrames>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `window`, `time`, `hour`, `minute`: `H:MM` or `HH:MM`, printed as `HH:MM`; `24:00` only as
//! the end; a half-open window that crosses midnight when it ends at or before its start.
//!
//! ```
//! use oco_core::chrono::{NaiveDate, NaiveDateTime, Weekday};
//! use oco_core::chrono::Weekday::{Fri, Mon, Sat, Sun};
//! use oco_core::constraint::TimeFrames;
//!
//! // Local times in the week of Monday 2026-11-23.
//! let at = |day: Weekday, time: &str| -> NaiveDateTime {
//!     NaiveDate::from_isoywd_opt(2026, 48, day).unwrap().and_time(time.parse().unwrap())
//! };
//!
//! let frames: TimeFrames = "6:00 - 7:00".parse()?;
//! assert_eq!(frames.to_string(), "06:00-07:00");
//! let window = frames.entries()[0].window().unwrap();
//! assert_eq!((window.start_minute(), window.end_minute()), (6 * 60, 7 * 60));
//! // Half-open, to the second, on every day.
//! assert!(!frames.allows_local(at(Mon, "05:59:59")));
//! assert!(frames.allows_local(at(Mon, "06:00:00")));
//! assert!(frames.allows_local(at(Sun, "06:59:59")));
//! assert!(!frames.allows_local(at(Sun, "07:00:00")));
//!
//! // `24:00` ends a window at midnight; `00:00-24:00` is the whole day.
//! let frames: TimeFrames = "SAT 22:00-24:00".parse()?;
//! assert!(frames.allows_local(at(Sat, "23:59:59")));
//! assert!(!frames.allows_local(at(Sun, "00:00:00")));
//! assert_eq!("0:00-24:00".parse::<TimeFrames>()?.to_string(), "00:00-24:00");
//!
//! // An end at or before the start crosses midnight; the days name the day the window starts.
//! let frames: TimeFrames = "FRI 22:00-02:00".parse()?;
//! assert!(frames.entries()[0].window().unwrap().crosses_midnight());
//! assert!(frames.allows_local(at(Fri, "22:00:00")));
//! assert!(frames.allows_local(at(Sat, "01:59:59")));
//! assert!(!frames.allows_local(at(Sat, "02:00:00")));
//! assert!(!frames.allows_local(at(Fri, "01:00:00")));
//!
//! for input in [
//!     "8-17", "8.00-17.00", "8:0-9:00", "8:000-9:00", "008:00-9:00", "8 :00-9:00", "8:00am-9:00",
//!     "08:00:00-09:00", "7:60-8:00", "23:00-24:01", "25:00-1:00", "24:00-06:00", "12:00-12:00",
//!     "8:00", "8:00-", "8:00 9:00", "8:00\u{2013}9:00",
//! ] {
//!     assert!(input.parse::<TimeFrames>().is_err(), "{input}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limits
//!
//! A constraint is at most [`MAX_INPUT_LEN`] bytes long (blanks and empty items included), has
//! at most [`MAX_ENTRIES`] entries (empty items do not count), and its canonical form is at most
//! [`MAX_INPUT_LEN`] bytes long too: a canonical form can be longer than the input
//! (`mon1:00-2:00` prints as `MON 01:00-02:00`), and it must parse again.
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges, TimeFrames, MAX_ENTRIES, MAX_INPUT_LEN};
//!
//! assert_eq!((MAX_INPUT_LEN, MAX_ENTRIES), (65_536, 4_096));
//!
//! // Exactly MAX_INPUT_LEN bytes are fine; one more is too long, even if it is only blanks.
//! let input = format!("{}SAT", " ".repeat(MAX_INPUT_LEN - 3));
//! assert_eq!(input.parse::<TimeFrames>()?.to_string(), "SAT");
//! let input = " ".repeat(MAX_INPUT_LEN + 1);
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TooLong { len: 65_537 }));
//!
//! // MAX_ENTRIES entries; empty items do not count.
//! let input = "SAT,,".repeat(MAX_ENTRIES);
//! assert_eq!(input.parse::<TimeFrames>()?.entries().len(), MAX_ENTRIES);
//! let input = "SAT,".repeat(MAX_ENTRIES + 1);
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TooManyEntries));
//!
//! // 4,096 entries of 13 bytes are 53,248 bytes of input, but each prints as 17 bytes
//! // (`MON 01:00-02:00, `): entry 3,856 takes the canonical form past 65,536 bytes.
//! let input = "mon1:00-2:00,".repeat(MAX_ENTRIES);
//! assert_eq!(input.len(), 53_248);
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::CanonicalTooLong));
//! assert_eq!(err.entry_number(), Some(3_856));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! Every [`ErrorKind`] can be produced by some input; all of them are below. A
//! [`ParseError`]'s message ([`Display`](std::fmt::Display)) names the entry (its number among
//! the non-empty entries, and its text) and then the mistake. [`TooLong`] is about the whole
//! input and names no entry; [`TooManyEntries`] and [`CanonicalTooLong`] name the entry at which
//! the limit is passed. [`ParseError::render`] adds the input and a caret line under the span of
//! the mistake; of a long input it shows 40 characters on each side of the span, and `...` where
//! it cuts.
//!
//! | `ErrorKind` | Example input | Language |
//! |---|---|---|
//! | [`TooLong`] | `SAT,` × 16,385 (65,540 bytes) | both |
//! | [`TooManyEntries`] | `SAT,` × 4,097 | both |
//! | [`CanonicalTooLong`] | `mon1:00-2:00,` × 4,096 | both |
//! | [`EmptyNegation`] | `10.0.0.0/8, !` | both |
//! | [`DoubleNegation`] | `!!10.0.0.0/8` | both |
//! | [`TrailingGarbage`] | `10.0.0.0 8`, `MON FRI` | both |
//! | [`MissingAddress`] | `/24` | IP ranges |
//! | [`InvalidAddress`] | `192.168.2` | IP ranges |
//! | [`LeadingZeroInAddress`] | `010.0.0.1` | IP ranges |
//! | [`ZoneId`] | `fe80::1%eth0` | IP ranges |
//! | [`MissingPrefix`] | `10.0.0.0/` | IP ranges |
//! | [`InvalidPrefix`] | `10.0.0.0/+8` | IP ranges |
//! | [`LeadingZeroInPrefix`] | `10.0.0.0/08` | IP ranges |
//! | [`PrefixOutOfRange`] | `10.0.0.0/33`, `::/129` | IP ranges |
//! | [`HostBitsSet`] | `192.168.2.3/24` | IP ranges |
//! | [`ExpectedDayOrTime`] | `*` | time frames |
//! | [`UnknownDay`] | `Tues 8:00-9:00` | time frames |
//! | [`MissingDay`] | `MON-` | time frames |
//! | [`InvalidTime`] | `8.00-17.00` | time frames |
//! | [`SecondsNotAllowed`] | `08:00:30-09:00` | time frames |
//! | [`HourOutOfRange`] | `22:00-25:00` | time frames |
//! | [`MinuteOutOfRange`] | `8:60-9:00` | time frames |
//! | [`StartAt24`] | `24:00-06:00` | time frames |
//! | [`MissingEnd`] | `SAT 8:00` | time frames |
//! | [`EmptyWindow`] | `12:00-12:00` | time frames |
//!
//! The limits:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, TimeFrames, MAX_ENTRIES};
//!
//! let input = "SAT,".repeat(16_385);
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TooLong { len: 65_540 }));
//! assert_eq!(err.to_string(), "the constraint is 65540 bytes long; at most 65536 are allowed");
//! assert_eq!(
//!     err.render(&input),
//!     format!("{err}\n...{}\n{}^^^^", "SAT,".repeat(11), " ".repeat(43))
//! );
//!
//! let input = "SAT,".repeat(MAX_ENTRIES + 1);
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TooManyEntries));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 4097 `SAT`: the constraint has more than 4096 entries; at most 4096 are allowed"
//! );
//! assert_eq!(
//!     err.render(&input),
//!     format!("{err}\n...{}\n{}^^^", "SAT,".repeat(11), " ".repeat(43))
//! );
//!
//! let input = "mon1:00-2:00,".repeat(MAX_ENTRIES);
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::CanonicalTooLong));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 3856 `mon1:00-2:00`: the constraint's canonical form grows past 65536 bytes here; \
//!      at most 65536 are allowed"
//! );
//! assert_eq!(
//!     err.render(&input),
//!     format!("{err}\n...,{}...\n{}{}", "mon1:00-2:00,".repeat(7), " ".repeat(43), "^".repeat(12))
//! );
//! ```
//!
//! Negation and what follows an entry, in both languages:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges, TimeFrames};
//!
//! let input = "10.0.0.0/8, !";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::EmptyNegation));
//! assert_eq!(err.to_string(), "entry 2 `!`: `!` must be followed by what it negates");
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0/8, !\n            ^"));
//!
//! let input = "!!10.0.0.0/8";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::DoubleNegation));
//! assert_eq!(err.to_string(), "entry 1 `!!10.0.0.0/8`: only one `!` is allowed per entry");
//! assert_eq!(err.render(input), format!("{err}\n!!10.0.0.0/8\n ^"));
//!
//! let input = "10.0.0.0 8";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TrailingGarbage));
//! assert_eq!(err.to_string(), "entry 1 `10.0.0.0 8`: unexpected text after the entry");
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0 8\n         ^"));
//!
//! let input = "MON FRI";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::TrailingGarbage));
//! assert_eq!(err.to_string(), "entry 1 `MON FRI`: unexpected text after the entry");
//! assert_eq!(err.render(input), format!("{err}\nMON FRI\n    ^^^"));
//! ```
//!
//! IP addresses:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges};
//!
//! let input = "/24";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::MissingAddress));
//! assert_eq!(err.to_string(), "entry 1 `/24`: an address is missing before the `/`");
//! assert_eq!(err.render(input), format!("{err}\n/24\n^"));
//!
//! let input = "192.168.2";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::InvalidAddress));
//! assert_eq!(err.to_string(), "entry 1 `192.168.2`: not an IPv4 or IPv6 address");
//! assert_eq!(err.render(input), format!("{err}\n192.168.2\n^^^^^^^^^"));
//!
//! let input = "010.0.0.1";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::LeadingZeroInAddress));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `010.0.0.1`: IPv4 address parts must not have leading zeros \
//!      (they read as octal elsewhere)"
//! );
//! assert_eq!(err.render(input), format!("{err}\n010.0.0.1\n^^^^^^^^^"));
//!
//! let input = "fe80::1%eth0";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::ZoneId));
//! assert_eq!(err.to_string(), "entry 1 `fe80::1%eth0`: IPv6 zone ids (`%...`) are not allowed");
//! assert_eq!(err.render(input), format!("{err}\nfe80::1%eth0\n       ^^^^^"));
//! ```
//!
//! IP prefixes:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges};
//!
//! let input = "10.0.0.0/";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::MissingPrefix));
//! assert_eq!(err.to_string(), "entry 1 `10.0.0.0/`: a prefix length is missing after the `/`");
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0/\n        ^"));
//!
//! let input = "10.0.0.0/+8";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::InvalidPrefix));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `10.0.0.0/+8`: the prefix length must be a plain decimal number"
//! );
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0/+8\n         ^^"));
//!
//! let input = "10.0.0.0/08";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::LeadingZeroInPrefix));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `10.0.0.0/08`: the prefix length must not have leading zeros"
//! );
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0/08\n         ^^"));
//!
//! let input = "10.0.0.0/33";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::PrefixOutOfRange { max: 32 }));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `10.0.0.0/33`: the prefix length is out of range; \
//!      at most 32 for this address family"
//! );
//! assert_eq!(err.render(input), format!("{err}\n10.0.0.0/33\n         ^^"));
//!
//! let input = "::/129";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::PrefixOutOfRange { max: 128 }));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `::/129`: the prefix length is out of range; at most 128 for this address family"
//! );
//! assert_eq!(err.render(input), format!("{err}\n::/129\n   ^^^"));
//!
//! let input = "192.168.2.3/24";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(
//!     err.kind(),
//!     ErrorKind::HostBitsSet { network } if network.to_string() == "192.168.2.0/24"
//! ));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `192.168.2.3/24`: host bits are set below the prefix length; \
//!      did you mean `192.168.2.0/24`?"
//! );
//! assert_eq!(err.render(input), format!("{err}\n192.168.2.3/24\n^^^^^^^^^^^^^^"));
//! ```
//!
//! Days:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, TimeFrames};
//!
//! let input = "*";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::ExpectedDayOrTime));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `*`: expected a day (`MON`, `Monday`, `MON-FRI`) or a time range (`08:00-17:00`)"
//! );
//! assert_eq!(err.render(input), format!("{err}\n*\n^"));
//!
//! let input = "Tues 8:00-9:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::UnknownDay));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `Tues 8:00-9:00`: unknown day; use `MON`..`SUN` or the full English name, \
//!      e.g. `Monday`"
//! );
//! assert_eq!(err.render(input), format!("{err}\nTues 8:00-9:00\n^^^^"));
//!
//! let input = "MON-";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::MissingDay));
//! assert_eq!(err.to_string(), "entry 1 `MON-`: a day name is missing after the `-`");
//! assert_eq!(err.render(input), format!("{err}\nMON-\n   ^"));
//! ```
//!
//! Times and windows:
//!
//! ```
//! use oco_core::constraint::{ErrorKind, TimeFrames};
//!
//! let input = "8.00-17.00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::InvalidTime));
//! assert_eq!(err.to_string(), "entry 1 `8.00-17.00`: expected a time as `H:MM` or `HH:MM`");
//! assert_eq!(err.render(input), format!("{err}\n8.00-17.00\n^^^^"));
//!
//! let input = "08:00:30-09:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::SecondsNotAllowed));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `08:00:30-09:00`: times have no seconds; use `H:MM` or `HH:MM`"
//! );
//! assert_eq!(err.render(input), format!("{err}\n08:00:30-09:00\n^^^^^^^^"));
//!
//! let input = "22:00-25:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::HourOutOfRange { hour: 25 }));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `22:00-25:00`: hour 25 is out of range; hours are 0 to 23, \
//!      and `24:00` may end a window"
//! );
//! assert_eq!(err.render(input), format!("{err}\n22:00-25:00\n      ^^"));
//!
//! let input = "8:60-9:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::MinuteOutOfRange { minute: 60 }));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `8:60-9:00`: minute 60 is out of range; minutes are 00 to 59"
//! );
//! assert_eq!(err.render(input), format!("{err}\n8:60-9:00\n  ^^"));
//!
//! let input = "24:00-06:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::StartAt24));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `24:00-06:00`: `24:00` may only end a window; start the next day at `00:00`"
//! );
//! assert_eq!(err.render(input), format!("{err}\n24:00-06:00\n^^^^^"));
//!
//! let input = "SAT 8:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::MissingEnd));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `SAT 8:00`: a time range needs an end: `START-END`, e.g. `08:00-17:00`"
//! );
//! assert_eq!(err.render(input), format!("{err}\nSAT 8:00\n        ^"));
//!
//! let input = "12:00-12:00";
//! let err = input.parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::EmptyWindow));
//! assert_eq!(
//!     err.to_string(),
//!     "entry 1 `12:00-12:00`: the window starts where it ends and would never match; \
//!      use `00:00-24:00` or only the day for a whole day"
//! );
//! assert_eq!(err.render(input), format!("{err}\n12:00-12:00\n^^^^^^^^^^^"));
//! ```
//!
//! # OCO's examples
//!
//! OCO's documentation gives one example of each language. Both parse, with these canonical
//! forms and verdicts.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! let ranges: IpRanges =
//!     "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64".parse()?;
//! assert_eq!(
//!     ranges.to_string(),
//!     "10.2.0.0/16, !192.168.2.3, 192.168.2.0/24, caff:eeca:ffee::/64"
//! );
//! // "allow all clients inside 10.2.0.0/16"
//! assert!(ranges.allows("10.2.0.1".parse()?));
//! assert!(ranges.allows("10.2.255.255".parse()?));
//! // "allow all clients inside 192.168.2.0/24 except !192.168.2.3/32"
//! assert!(ranges.allows("192.168.2.4".parse()?));
//! assert!(!ranges.allows("192.168.2.3".parse()?)); // the negation is reached first
//! // "allow all clients inside CAFF:EECA:FFEE:0000::/64"
//! assert!(ranges.allows("caff:eeca:ffee::1".parse()?));
//! assert!(ranges.allows("caff:eeca:ffee:0:ffff:ffff:ffff:ffff".parse()?));
//! assert!(!ranges.allows("caff:eeca:ffee:1::".parse()?));
//! // No entry matches and the list has plain entries: deny.
//! assert!(!ranges.allows("10.9.0.1".parse()?));
//! // An IPv4 agent seen by a dual-stack server, as an IPv4-mapped IPv6 address.
//! assert!(ranges.allows("::ffff:10.2.3.4".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use oco_core::chrono::{NaiveDate, NaiveDateTime, Weekday};
//! use oco_core::chrono::Weekday::{Fri, Mon, Sat, Thu};
//! use oco_core::constraint::TimeFrames;
//!
//! // Local times in the week of Monday 2026-11-23.
//! let at = |day: Weekday, time: &str| -> NaiveDateTime {
//!     NaiveDate::from_isoywd_opt(2026, 48, day).unwrap().and_time(time.parse().unwrap())
//! };
//!
//! let frames: TimeFrames = "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59".parse()?;
//! assert_eq!(
//!     frames.to_string(),
//!     "06:00-07:00, FRI 18:00-23:00, !SAT 11:00-13:00, SAT 00:00-23:59"
//! );
//! // "allow job execution every day between 6:00 and 7:00"
//! assert!(frames.allows_local(at(Mon, "06:00:00")));
//! assert!(frames.allows_local(at(Thu, "06:59:59")));
//! assert!(!frames.allows_local(at(Mon, "07:00:00"))); // the end is not in the window
//! // "allow job execution on friday between 18:00 and 23:00"
//! assert!(frames.allows_local(at(Fri, "18:00:00")));
//! assert!(!frames.allows_local(at(Fri, "23:00:00")));
//! assert!(!frames.allows_local(at(Thu, "18:00:00")));
//! // "allow job execution on saturday, but not between 11:00 and 13:00"
//! assert!(frames.allows_local(at(Sat, "00:00:00")));
//! assert!(frames.allows_local(at(Sat, "10:59:59")));
//! assert!(!frames.allows_local(at(Sat, "12:00:00"))); // the negation is reached first
//! assert!(frames.allows_local(at(Sat, "13:00:00")));
//! assert!(frames.allows_local(at(Sat, "23:58:59")));
//! // `0:00-23:59` ends at 23:59: the last minute of Saturday is not in it.
//! assert!(!frames.allows_local(at(Sat, "23:59:30")));
//! // Written with the whole day, Saturday has no gap at the end.
//! let whole_day: TimeFrames = "6:00-7:00, FRI 18:00-23:00, !SAT 11:00-13:00, SAT".parse()?;
//! assert!(whole_day.allows_local(at(Sat, "23:59:30")));
//! assert!(!whole_day.allows_local(at(Sat, "12:00:00")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! More verdicts:
//!
//! ```
//! use oco_core::chrono::{NaiveDate, NaiveDateTime, Weekday};
//! use oco_core::chrono::Weekday::{Mon, Sat, Wed};
//! use oco_core::constraint::{IpRanges, TimeFrames};
//!
//! let at = |day: Weekday, time: &str| -> NaiveDateTime {
//!     NaiveDate::from_isoywd_opt(2026, 48, day).unwrap().and_time(time.parse().unwrap())
//! };
//! let ranges = |text: &str| text.parse::<IpRanges>().unwrap();
//! let frames = |text: &str| text.parse::<TimeFrames>().unwrap();
//!
//! // The first match decides.
//! assert!(ranges("192.168.2.0/24, !192.168.2.3").allows("192.168.2.3".parse()?));
//! // Only negations: everything else is allowed.
//! assert!(ranges("!10.0.0.0/8").allows("11.0.0.1".parse()?));
//! assert!(!ranges("!10.0.0.0/8").allows("10.0.0.1".parse()?));
//! // IPv4-mapped addresses are IPv4, and IPv4 is never in an IPv6 range.
//! assert!(ranges("10.0.0.0/8").allows("::ffff:10.1.2.3".parse()?));
//! assert!(!ranges("::/0").allows("::ffff:10.0.0.1".parse()?));
//! // Set host bits are an error that suggests the network.
//! let err = "10.0.0.1/24".parse::<IpRanges>().unwrap_err();
//! assert!(err.to_string().ends_with("did you mean `10.0.0.0/24`?"));
//!
//! assert!(frames("FRI 22:00-02:00").allows_local(at(Sat, "01:59:00")));
//! assert!(frames("MON-FRI 08:00-17:00").allows_local(at(Wed, "16:59:59")));
//! assert!(frames("FRI-SUN 22:00-02:00").allows_local(at(Mon, "01:00:00")));
//! assert_eq!(frames("Monday-Friday 8:00-17:00").to_string(), "MON-FRI 08:00-17:00");
//! assert!("12:00-12:00".parse::<TimeFrames>().is_err());
//! assert!("!".parse::<TimeFrames>().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Differences from OCO
//!
//! OCO stores the text and parses it again on every agent poll. This crate parses once, when a
//! constraint is saved, and differs on purpose where OCO's reading is surprising or unsafe.
//!
//! **Parse errors come at save time.** In OCO, a bad entry makes the whole poll fail (HTTP 500),
//! so the computer gets no jobs from any container until someone notices. Here the text does not
//! parse, and the error says what is wrong and where, before anything is stored; a parsed value
//! always evaluates.
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges};
//!
//! let input = "10.2.0.0/16, 192.168.2.0/244";
//! let err = input.parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::PrefixOutOfRange { max: 32 }));
//! assert_eq!(err.entry_number(), Some(2));
//! assert_eq!(&input[err.span()], "244");
//! ```
//!
//! **A bare IPv6 address is one host.** OCO appends `/32` to every bare address, IPv6 too, so
//! there `2001:db8::1` is the whole network `2001:db8::/32`. Here it is `/128`.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! let ranges: IpRanges = "2001:db8::1".parse()?;
//! assert_eq!(ranges.entries()[0].network().prefix_len(), 128);
//! assert!(ranges.allows("2001:db8::1".parse()?));
//! assert!(!ranges.allows("2001:db8::2".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Set host bits are an error.** OCO compares only the first `prefix` bits, so it silently
//! reads `192.168.2.3/24` as `192.168.2.0/24`, although a host (`/32`) may have been meant.
//! Here it is an error whose message suggests the network.
//!
//! ```
//! use oco_core::constraint::{ErrorKind, IpRanges};
//!
//! let err = "192.168.2.3/24".parse::<IpRanges>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::HostBitsSet { .. }));
//! assert!(err.to_string().ends_with("did you mean `192.168.2.0/24`?"));
//! assert!("192.168.2.0/24, 192.168.2.3".parse::<IpRanges>().is_ok());
//! ```
//!
//! **IPv4-mapped addresses are IPv4.** A dual-stack server sees an IPv4 agent as
//! `::ffff:a.b.c.d`, which OCO's IPv4 ranges do not match. Here the address is checked as IPv4,
//! and a mapped range is an IPv4 range.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! let ranges: IpRanges = "10.0.0.0/8".parse()?;
//! assert!(ranges.allows("::ffff:10.1.2.3".parse()?));
//! let mapped: IpRanges = "::ffff:10.0.0.0/104".parse()?;
//! assert_eq!(mapped, ranges);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Address families never match each other.** OCO compares bit strings, so an IPv4 range can
//! contain IPv6 addresses (`0.0.0.0/0` contains every address). Here IPv4 ranges contain only
//! IPv4 addresses and IPv6 ranges only IPv6 addresses; mapped addresses being IPv4, `::/0` does
//! not contain `::ffff:10.0.0.1`.
//!
//! ```
//! use oco_core::constraint::IpRanges;
//!
//! let v4: IpRanges = "0.0.0.0/0".parse()?;
//! assert!(v4.allows("10.0.0.1".parse()?));
//! assert!(!v4.allows("2001:db8::1".parse()?));
//! let v6: IpRanges = "::/0".parse()?;
//! assert!(v6.allows("2001:db8::1".parse()?));
//! assert!(!v6.allows("10.0.0.1".parse()?));
//! assert!(!v6.allows("::ffff:10.0.0.1".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **A list of only negations allows the rest.** OCO denies whatever no entry matches, so there
//! a list of only negations denies everything. Here, when every entry is negated, what no entry
//! matches is allowed: `!10.0.0.0/8` means "everything except 10/8". A list with at least one
//! plain entry still denies what no entry matches.
//!
//! ```
//! use oco_core::chrono::NaiveDate;
//! use oco_core::constraint::{IpRanges, TimeFrames};
//!
//! let ranges: IpRanges = "!10.0.0.0/8, !192.168.0.0/16".parse()?;
//! assert!(ranges.allows("11.0.0.1".parse()?));
//! assert!(!ranges.allows("10.0.0.1".parse()?));
//! let ranges: IpRanges = "!10.0.0.0/8, 192.168.0.0/16".parse()?;
//! assert!(!ranges.allows("11.0.0.1".parse()?));
//!
//! let frames: TimeFrames = "!SAT, !SUN".parse()?;
//! let monday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
//! let saturday = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
//! assert!(frames.allows_local(monday.and_hms_opt(12, 0, 0).unwrap()));
//! assert!(!frames.allows_local(saturday.and_hms_opt(12, 0, 0).unwrap()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Windows are half-open, to the second.** OCO compares whole minutes and excludes both ends,
//! so its "all Saturday" `SAT 0:00-23:59` misses 00:00 and 23:59. Here a window includes its
//! start and excludes its end, `[start, end)`, at every second: `SAT 0:00-23:59` misses only the
//! last minute, 23:59:00 to 23:59:59; `SAT 0:00-24:00` or `SAT` is the whole day.
//!
//! ```
//! use oco_core::chrono::NaiveDate;
//! use oco_core::constraint::TimeFrames;
//!
//! let saturday = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
//! let at = |h, m, s| saturday.and_hms_opt(h, m, s).unwrap();
//!
//! let almost: TimeFrames = "SAT 0:00-23:59".parse()?;
//! assert!(almost.allows_local(at(0, 0, 0)));
//! assert!(almost.allows_local(at(23, 58, 59)));
//! assert!(!almost.allows_local(at(23, 59, 0)));
//! for whole in ["SAT 0:00-24:00", "SAT"] {
//!     let whole: TimeFrames = whole.parse()?;
//!     assert!(whole.allows_local(at(0, 0, 0)) && whole.allows_local(at(23, 59, 59)));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **An empty window is an error.** In OCO a window that starts where it ends (`12:00-12:00`)
//! silently never matches. Here it is a parse error ([`EmptyWindow`]); a whole day is
//! `00:00-24:00` or the day alone.
//!
//! ```
//! use oco_core::constraint::{ErrorKind, TimeFrames};
//!
//! let err = "12:00-12:00".parse::<TimeFrames>().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::EmptyWindow));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`IpRanges`]: super::IpRanges
//! [`TimeFrames`]: super::TimeFrames
//! [`ErrorKind`]: super::ErrorKind
//! [`ParseError`]: super::ParseError
//! [`ParseError::render`]: super::ParseError::render
//! [`MAX_INPUT_LEN`]: super::MAX_INPUT_LEN
//! [`MAX_ENTRIES`]: super::MAX_ENTRIES
//! [`TooLong`]: super::ErrorKind::TooLong
//! [`TooManyEntries`]: super::ErrorKind::TooManyEntries
//! [`CanonicalTooLong`]: super::ErrorKind::CanonicalTooLong
//! [`EmptyNegation`]: super::ErrorKind::EmptyNegation
//! [`DoubleNegation`]: super::ErrorKind::DoubleNegation
//! [`TrailingGarbage`]: super::ErrorKind::TrailingGarbage
//! [`MissingAddress`]: super::ErrorKind::MissingAddress
//! [`InvalidAddress`]: super::ErrorKind::InvalidAddress
//! [`LeadingZeroInAddress`]: super::ErrorKind::LeadingZeroInAddress
//! [`ZoneId`]: super::ErrorKind::ZoneId
//! [`MissingPrefix`]: super::ErrorKind::MissingPrefix
//! [`InvalidPrefix`]: super::ErrorKind::InvalidPrefix
//! [`LeadingZeroInPrefix`]: super::ErrorKind::LeadingZeroInPrefix
//! [`PrefixOutOfRange`]: super::ErrorKind::PrefixOutOfRange
//! [`HostBitsSet`]: super::ErrorKind::HostBitsSet
//! [`ExpectedDayOrTime`]: super::ErrorKind::ExpectedDayOrTime
//! [`UnknownDay`]: super::ErrorKind::UnknownDay
//! [`MissingDay`]: super::ErrorKind::MissingDay
//! [`InvalidTime`]: super::ErrorKind::InvalidTime
//! [`SecondsNotAllowed`]: super::ErrorKind::SecondsNotAllowed
//! [`HourOutOfRange`]: super::ErrorKind::HourOutOfRange
//! [`MinuteOutOfRange`]: super::ErrorKind::MinuteOutOfRange
//! [`StartAt24`]: super::ErrorKind::StartAt24
//! [`MissingEnd`]: super::ErrorKind::MissingEnd
//! [`EmptyWindow`]: super::ErrorKind::EmptyWindow
