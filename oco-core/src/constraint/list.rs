//! The list syntax both languages share: entries, white space, negation and the limits.

use std::fmt::{self, Write as _};

use super::error::{ErrorKind, ParseError};
use super::{MAX_ENTRIES, MAX_INPUT_LEN};

/// One non-empty entry with its negation removed.
pub(super) struct RawEntry<'a> {
    /// Whether the entry started with `!`.
    pub(super) negated: bool,
    /// The entry without `!` and without surrounding white space; never empty.
    pub(super) body: &'a str,
    /// The byte offset of `body` in the whole input.
    pub(super) offset: usize,
}

/// Splits `input` into its non-empty entries and parses each with `parse_entry`, in order.
///
/// Errors of `parse_entry` carry spans relative to the entry body; they are moved to the whole
/// input and tagged with the entry's number and text here.
///
/// Besides the input, the canonical form (entries joined by `", "`) must fit in
/// [`MAX_INPUT_LEN`]: it can be longer than the input (`1:00` prints as `01:00`), and whatever is
/// accepted must parse again from its canonical form.
pub(super) fn parse_list<T: fmt::Display>(
    input: &str,
    parse_entry: impl FnMut(&RawEntry<'_>) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    parse_list_spanned(input, parse_entry, |_| {})
}

/// [`parse_list`], calling `span` with each entry's byte range in `input` (from its `!`, if any,
/// to its end, without the white space around it), in order.
pub(super) fn parse_list_spanned<T: fmt::Display>(
    input: &str,
    mut parse_entry: impl FnMut(&RawEntry<'_>) -> Result<T, ParseError>,
    mut span: impl FnMut(std::ops::Range<usize>),
) -> Result<Vec<T>, ParseError> {
    if input.len() > MAX_INPUT_LEN {
        let mut start = MAX_INPUT_LEN;
        while !input.is_char_boundary(start) {
            start -= 1;
        }
        return Err(ParseError::new(
            ErrorKind::TooLong { len: input.len() },
            start..input.len(),
        ));
    }
    let mut entries = Vec::new();
    let mut canonical = LengthCounter(0);
    let mut offset = 0;
    for piece in input.split(',') {
        let piece_offset = offset;
        offset += piece.len() + 1;

        let text = trim_blank(piece);
        if text.is_empty() {
            continue;
        }
        let text_offset = piece_offset + (piece.len() - trim_blank_start(piece).len());
        let number = entries.len() + 1;
        let tag = |err: ParseError| err.in_entry(number, text);
        if number > MAX_ENTRIES {
            return Err(tag(ParseError::new(
                ErrorKind::TooManyEntries,
                text_offset..text_offset + text.len(),
            )));
        }

        let raw = split_negation(text, text_offset).map_err(tag)?;
        let entry = parse_entry(&raw).map_err(|err| {
            let span = err.span();
            let moved = ParseError::new(
                err.kind().clone(),
                raw.offset + span.start..raw.offset + span.end,
            );
            tag(moved)
        })?;
        if !entries.is_empty() {
            canonical.0 += ", ".len();
        }
        // Writing into a counter cannot fail.
        let _ = write!(canonical, "{entry}");
        if canonical.0 > MAX_INPUT_LEN {
            return Err(tag(ParseError::new(
                ErrorKind::CanonicalTooLong,
                text_offset..text_offset + text.len(),
            )));
        }
        entries.push(entry);
        span(text_offset..text_offset + text.len());
    }
    Ok(entries)
}

/// Counts the bytes written to it: the length of a canonical form, without writing it.
pub(super) struct LengthCounter(pub(super) usize);

impl fmt::Write for LengthCounter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Whether `c` is white space in the constraint languages: ASCII space or tab, nothing else.
pub(super) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

pub(super) fn trim_blank(s: &str) -> &str {
    s.trim_matches(is_blank)
}

pub(super) fn trim_blank_start(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn split_negation(text: &str, offset: usize) -> Result<RawEntry<'_>, ParseError> {
    let Some(rest) = text.strip_prefix('!') else {
        return Ok(RawEntry {
            negated: false,
            body: text,
            offset,
        });
    };
    let body = trim_blank_start(rest);
    let body_offset = offset + text.len() - body.len();
    if body.is_empty() {
        return Err(ParseError::new(
            ErrorKind::EmptyNegation,
            offset..offset + 1,
        ));
    }
    if body.starts_with('!') {
        return Err(ParseError::new(
            ErrorKind::DoubleNegation,
            body_offset..body_offset + 1,
        ));
    }
    Ok(RawEntry {
        negated: true,
        body,
        offset: body_offset,
    })
}

/// Implements `FromStr` (with the entry parser `parse_entry` of the invoking module), the
/// canonical `Display` (entries joined by `", "`) and serde as that string, for a list type with
/// an `entries` field.
macro_rules! text_impls {
    ($list:ident) => {
        impl std::str::FromStr for $list {
            type Err = ParseError;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                let entries = list::parse_list(input, parse_entry)?;
                Ok($list { entries })
            }
        }

        impl $list {
            /// Parses `input` as `FromStr` does, with each entry's byte range in `input`.
            pub(super) fn parse_spanned(
                input: &str,
            ) -> Result<(Self, Vec<std::ops::Range<usize>>), ParseError> {
                let mut spans = Vec::new();
                let entries =
                    list::parse_list_spanned(input, parse_entry, |span| spans.push(span))?;
                Ok(($list { entries }, spans))
            }
        }

        impl fmt::Display for $list {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for (i, entry) in self.entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{entry}")?;
                }
                Ok(())
            }
        }

        crate::text_serde::serde_as_text!($list);
    };
}
pub(super) use text_impls;
