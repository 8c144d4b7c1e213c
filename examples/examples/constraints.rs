//! Parses the two constraint languages, prints their canonical forms and evaluates them.
//!
//! The inputs are the examples from the OCO documentation: an agent IP-range list and a list of
//! time frames. The IP list is checked for a few agent addresses (an IPv4-mapped IPv6 address
//! among them, as a dual-stack server sees IPv4 agents); the time frames for a few instants read
//! as wall-clock time in Europe/Berlin, with the next instant they allow where they deny.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p oco-examples --example constraints
//! ```

use std::error::Error;
use std::net::IpAddr;

use oco_core::chrono::{DateTime, TimeZone, Utc};
use oco_core::chrono_tz::Europe::Berlin;
use oco_core::chrono_tz::Tz;
use oco_core::constraint::{IpRanges, TimeFrames};

const IP_RANGES: &str = "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64";
const TIME_FRAMES: &str = "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59";

fn main() -> Result<(), Box<dyn Error>> {
    let ranges: IpRanges = IP_RANGES.parse()?;
    println!("IP ranges    {IP_RANGES}");
    println!("canonical    {ranges}");
    println!();
    for addr in [
        "192.168.2.3",
        "192.168.2.4",
        "10.2.7.1",
        "10.9.0.1",
        "::ffff:10.2.0.5",
        "caff:eeca:ffee::1",
    ] {
        let addr: IpAddr = addr.parse()?;
        println!("  {addr:<20} {}", verdict(ranges.allows(addr)));
    }
    println!();

    let frames: TimeFrames = TIME_FRAMES.parse()?;
    println!("time frames  {TIME_FRAMES}");
    println!("canonical    {frames}");
    println!("zone         {}", Berlin.name());
    println!();
    let instants = [
        // Wednesday morning, inside the daily 06:00-07:00 window.
        berlin(2026, 11, 25, 6, 15, 0)?,
        // Tuesday afternoon: no entry matches.
        berlin(2026, 11, 24, 13, 0, 0)?,
        // Friday evening.
        berlin(2026, 11, 27, 18, 30, 0)?,
        // Saturday noon: the negated entry is reached before `SAT 00:00-23:59`.
        berlin(2026, 11, 28, 12, 0, 0)?,
        // Saturday 23:59:30: windows are half-open, so `00:00-23:59` misses the last minute.
        berlin(2026, 11, 28, 23, 59, 30)?,
        // Monday 07:00:00: the end of `06:00-07:00` is excluded.
        berlin(2026, 11, 30, 7, 0, 0)?,
        // The night clocks go forward (Sunday 2026-03-29, 02:00 CET becomes 03:00 CEST).
        berlin(2026, 3, 28, 23, 59, 30)?,
    ];
    let matcher = frames.compile();
    for now in instants {
        let allowed = frames.allows_at(now, Berlin);
        debug_assert_eq!(allowed, matcher.allows_at(now, Berlin));
        print!("  {}  {}", local(now, Berlin), verdict(allowed));
        if !allowed {
            match frames.next_open(now, Berlin) {
                Some(open) => print!("  opens {} ({open})", local(open, Berlin)),
                None => print!("  never opens"),
            }
        }
        println!();
    }
    Ok(())
}

/// The instant of a Berlin wall-clock time, which must exist and be unambiguous.
fn berlin(
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Result<DateTime<Utc>, Box<dyn Error>> {
    let local = Berlin
        .with_ymd_and_hms(year, month, day, hour, minute, second)
        .single()
        .ok_or("not a unique local time in Berlin")?;
    Ok(local.to_utc())
}

fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "allow"
    } else {
        "deny"
    }
}
