//! Checks shared by the round-trip targets.

use std::fmt::{Debug, Display};
use std::str::FromStr;

use oco_core::constraint::ParseError;

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
