//! Shows how parse errors of the constraint languages point at the mistake.
//!
//! Each bad input is parsed; the error's kind and byte span are printed, then
//! `ParseError::render`, which names the mistake and its entry and draws a caret line under the
//! span. Errors are values here, not failures: the program prints them and exits successfully.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p oco-examples --example parse_error
//! ```

use std::error::Error;
use std::fmt::Display;
use std::str::FromStr;

use oco_core::constraint::{IpRanges, ParseError, TimeFrames};

fn main() -> Result<(), Box<dyn Error>> {
    // Host bits below the prefix: the message suggests the network.
    show::<IpRanges>("10.0.0.0/8, 192.168.2.3/24");
    // A leading zero, which other tools read as octal.
    show::<IpRanges>("10.0.0.0/8, 010.0.0.1");
    // A prefix length beyond the IPv6 maximum.
    show::<IpRanges>("2001:db8::/129");
    // Minute 60 does not exist.
    show::<TimeFrames>("MON-FRI 8:00-17:60");
    // A window that starts where it ends would contain no instant.
    show::<TimeFrames>("12:00-12:00");
    // A negation of nothing.
    show::<TimeFrames>("!");
    // Not a day name.
    show::<TimeFrames>("MON-FRY 08:00-17:00");
    Ok(())
}

/// Parses `input` as a `T` and prints the error, or the canonical form if it parses.
fn show<T>(input: &str)
where
    T: FromStr<Err = ParseError> + Display,
{
    println!("input: {input:?}");
    match input.parse::<T>() {
        Ok(value) => println!("parses as `{value}`"),
        Err(err) => {
            println!("kind: {:?}, span: {:?}", err.kind(), err.span());
            println!("{}", err.render(input));
        }
    }
    println!();
}
