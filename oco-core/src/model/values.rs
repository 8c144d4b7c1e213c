//! Small validated values shared by the model, and the validation error.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A value that breaks a rule of the model, naming the field (`priority`, `schedule.end`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field, as a dotted path from the value being built.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidField {
    /// An error for `field` with `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix.` put before the field, for a value nested in another.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidField {}

/// A name: not blank, without surrounding white space (it is trimmed), at most 255 characters,
/// on one line and shown as written: no control characters (NUL, line breaks, escapes) and no
/// bidirectional formatting characters (a right-to-left override makes `exe.txt` of `txt.exe`).
///
/// ```
/// use oco_core::model::Name;
///
/// assert_eq!(Name::new("name", "  Firefox ")?.as_str(), "Firefox");
/// let error = Name::new("name", "setup\u{202E}txt.exe").unwrap_err();
/// assert_eq!(error.field, "name");
/// assert!(error.reason.contains("U+202E"), "{error}");
/// # Ok::<(), oco_core::model::InvalidField>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 255;

    /// The longest hostname, in bytes, as DNS allows.
    pub const MAX_HOSTNAME_BYTES: usize = 253;

    /// The longest label of a hostname (the part between two dots), in bytes, as DNS allows.
    pub const MAX_LABEL_BYTES: usize = 63;

    /// Validates `value` as the name in `field`.
    ///
    /// # Errors
    ///
    /// When the trimmed value is empty, longer than [`Name::MAX_CHARS`], or holds a control
    /// or bidirectional formatting character.
    pub fn new(field: &str, value: &str) -> Result<Self, InvalidField> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidField::new(field, "must not be blank"));
        }
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(InvalidField::new(
                field,
                format!(
                    "must be at most {} characters, got {chars}",
                    Self::MAX_CHARS
                ),
            ));
        }
        if let Some((at, c)) = trimmed.char_indices().find(|&(_, c)| !shown_as_written(c)) {
            return Err(InvalidField::new(
                field,
                format!(
                    "must not contain {} (U+{:04X}, at byte {at})",
                    unwanted(c),
                    u32::from(c)
                ),
            ));
        }
        Ok(Name(trimmed.to_owned()))
    }

    /// Validates `value` as a computer's hostname in `field`: a [`Name`] that DNS could carry,
    /// at most [`Name::MAX_HOSTNAME_BYTES`] bytes of labels separated by dots, each label
    /// 1 to [`Name::MAX_LABEL_BYTES`] bytes of letters (of any script), digits, `-` and `_`.
    ///
    /// ```
    /// use oco_core::model::Name;
    ///
    /// assert!(Name::hostname("hostname", "PC-042.corp.example").is_ok());
    /// assert!(Name::hostname("hostname", "bad host").is_err());
    /// assert!(Name::hostname("hostname", &"a".repeat(64)).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Name::new`], and when a label is empty or too long, the whole is too long, or a
    /// character is none of those.
    pub fn hostname(field: &str, value: &str) -> Result<Self, InvalidField> {
        let name = Self::new(field, value)?;
        let text = name.as_str();
        if text.len() > Self::MAX_HOSTNAME_BYTES {
            return Err(InvalidField::new(
                field,
                format!(
                    "must be at most {} bytes, as DNS allows, got {}",
                    Self::MAX_HOSTNAME_BYTES,
                    text.len()
                ),
            ));
        }
        let mut start = 0;
        for label in text.split('.') {
            if label.is_empty() {
                return Err(InvalidField::new(
                    field,
                    format!("has an empty label at byte {start} (two dots, or a dot at an end)"),
                ));
            }
            if label.len() > Self::MAX_LABEL_BYTES {
                return Err(InvalidField::new(
                    field,
                    format!(
                        "label `{label}` is {} bytes; DNS allows at most {}",
                        label.len(),
                        Self::MAX_LABEL_BYTES
                    ),
                ));
            }
            if let Some((at, c)) = label
                .char_indices()
                .find(|&(_, c)| !(c.is_alphanumeric() || c == '-' || c == '_'))
            {
                return Err(InvalidField::new(
                    field,
                    format!(
                        "must hold only letters, digits, `-`, `_` and dots; got {c:?} at byte {}",
                        start + at
                    ),
                ));
            }
            start += label.len() + 1;
        }
        Ok(name)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `value` made a valid name, for data written before the rules of [`Name::new`] held:
    /// characters it refuses are dropped, white space trimmed, and the result cut to
    /// [`Name::MAX_CHARS`]; `fallback` if nothing is left.
    ///
    /// ```
    /// use oco_core::model::Name;
    ///
    /// assert_eq!(Name::lossy("Fire\u{0}fox\n", "x").as_str(), "Firefox");
    /// assert_eq!(Name::lossy("\u{202E}", "container 7").as_str(), "container 7");
    /// ```
    pub fn lossy(value: &str, fallback: &str) -> Self {
        let clean = |text: &str| -> String {
            let kept: String = text.chars().filter(|&c| shown_as_written(c)).collect();
            let cut: String = kept.trim().chars().take(Self::MAX_CHARS).collect();
            cut.trim_end().to_owned()
        };
        let name = Some(clean(value))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| clean(fallback));
        if name.is_empty() {
            Name("unnamed".to_owned())
        } else {
            Name(name)
        }
    }
}

/// Whether `c` may appear in a name or a one-line text: not a control character and not a
/// bidirectional formatting character.
fn shown_as_written(c: char) -> bool {
    !(c.is_control() || is_bidi_format(c) || c == '\u{2028}' || c == '\u{2029}')
}

/// The bidirectional formatting characters of Unicode (marks, embeddings, overrides, isolates),
/// which reorder the text around them on screen.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What kind of character `c` (refused) is, for an error message.
fn unwanted(c: char) -> &'static str {
    match c {
        '\0' => "a NUL character",
        '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => "a line break",
        _ if is_bidi_format(c) => "a bidirectional formatting character",
        _ => "a control character",
    }
}

/// The longest notes of a container or a rule, in characters.
pub const MAX_NOTES_CHARS: usize = 10_000;

/// The longest install or uninstall command, in characters: what Windows' `CreateProcess`
/// accepts.
pub const MAX_COMMAND_CHARS: usize = 32_767;

/// The longest one-line descriptive text (an operating system, its version, an architecture,
/// an entry of a compatibility list), in characters: as a name.
pub const MAX_LABEL_CHARS: usize = Name::MAX_CHARS;

/// The most entries of a list in a request (MAC addresses, compatibility entries,
/// dependencies).
pub const MAX_LIST_ENTRIES: usize = 1_000;

/// Checks a free-text field: at most `max_chars` characters; with `lines`, line breaks and
/// tabs are allowed (notes), otherwise the text is one line (an operating system's name). No
/// other control character is allowed in either, NUL included.
///
/// ```
/// use oco_core::model::check_text;
///
/// assert!(check_text("notes", "line one\nline two", 100, true).is_ok());
/// assert!(check_text("os", "Windows\n", 100, false).is_err());
/// let error = check_text("notes", &"x".repeat(101), 100, true).unwrap_err();
/// assert_eq!(error.to_string(), "notes: must be at most 100 characters, got 101");
/// ```
///
/// # Errors
///
/// Naming `field`, when the text is too long or holds a character it may not.
pub fn check_text(
    field: &str,
    value: &str,
    max_chars: usize,
    lines: bool,
) -> Result<(), InvalidField> {
    // Counting stops past the limit: a huge text costs no more than a long one.
    let chars = value.chars().take(max_chars + 1).count();
    if chars > max_chars {
        let total = value.chars().count();
        return Err(InvalidField::new(
            field,
            format!("must be at most {max_chars} characters, got {total}"),
        ));
    }
    let allowed = |c: char| shown_as_written(c) || (lines && matches!(c, '\n' | '\r' | '\t'));
    match value.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((at, c)) => Err(InvalidField::new(
            field,
            format!(
                "must not contain {} (U+{:04X}, at byte {at})",
                unwanted(c),
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Name::new("name", &text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests may panic.

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_refuse_control_and_reordering_characters_naming_the_field_and_the_place() {
        for (text, what) in [
            ("ab\0c", "a NUL character (U+0000, at byte 2)"),
            ("a\nb", "a line break (U+000A, at byte 1)"),
            ("a\u{1b}[31mb", "a control character (U+001B, at byte 1)"),
            (
                "gpj.\u{202E}exe",
                "a bidirectional formatting character (U+202E, at byte 4)",
            ),
            (
                "a\u{2067}b",
                "a bidirectional formatting character (U+2067, at byte 1)",
            ),
            ("a\u{2028}b", "a line break (U+2028, at byte 1)"),
        ] {
            let error = Name::new("container.name", text).unwrap_err();
            assert_eq!(error.field, "container.name");
            assert_eq!(error.reason, format!("must not contain {what}"), "{text:?}");
        }
        // Letters of every script, punctuation and inner spaces are names.
        for text in [
            "Mozilla Firefox (x64)",
            "Überweisung",
            "פיירפוקס",
            "火狐 浏览器",
        ] {
            assert_eq!(Name::new("name", text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn hostnames_follow_the_rules_of_dns() {
        let label = "a".repeat(63);
        let longest = [label.as_str(); 4].join(".")[..253].to_owned();
        for good in [
            "pc1",
            "PC-042.corp.example",
            "build_agent-7",
            "münchen-01",
            &longest,
        ] {
            assert!(Name::hostname("hostname", good).is_ok(), "{good}");
        }
        for (bad, reason) in [
            ("pc 1", "got ' ' at byte 2"),
            ("pc1..corp", "empty label at byte 4"),
            (".pc1", "empty label at byte 0"),
            ("pc1/x", "got '/' at byte 3"),
            ("pc\u{0}1", "NUL"),
            ("", "blank"),
        ] {
            let error = Name::hostname("hostname", bad).unwrap_err();
            assert!(error.reason.contains(reason), "{bad:?}: {error}");
        }
        let long_label = "b".repeat(64);
        assert!(Name::hostname("hostname", &long_label)
            .unwrap_err()
            .reason
            .contains("64 bytes; DNS allows at most 63"));
        let too_long = format!("{longest}a");
        assert!(Name::hostname("hostname", &too_long)
            .unwrap_err()
            .reason
            .contains("at most 253 bytes"));
    }

    #[test]
    fn free_text_is_bounded_and_keeps_line_breaks_only_where_allowed() {
        assert!(check_text("notes", "first\r\n\tsecond", 20, true).is_ok());
        assert_eq!(
            check_text("os", "Windows\t11", 20, false)
                .unwrap_err()
                .to_string(),
            "os: must not contain a control character (U+0009, at byte 7)"
        );
        assert_eq!(
            check_text("notes", "a\0", 20, true)
                .unwrap_err()
                .to_string(),
            "notes: must not contain a NUL character (U+0000, at byte 1)"
        );
        assert!(check_text("notes", &"é".repeat(20), 20, true).is_ok());
        assert!(check_text("notes", &"é".repeat(21), 20, true).is_err());
    }

    proptest! {
        #[test]
        fn a_name_is_accepted_iff_it_has_no_refused_character_and_fits(text in "\\PC{0,3}[\\x00-\\x1f\\u{202a}-\\u{202e}a ]{0,3}\\PC{0,3}") {
            let trimmed = text.trim();
            let expected = !trimmed.is_empty()
                && trimmed.chars().count() <= Name::MAX_CHARS
                && trimmed.chars().all(shown_as_written);
            prop_assert_eq!(Name::new("name", &text).is_ok(), expected);
        }

        #[test]
        fn lossy_always_gives_a_valid_name_and_keeps_valid_ones(text in "\\PC{0,300}|[\\x00-\\x1f\\u{2066} ]{0,5}", fallback in "\\PC{0,10}") {
            let name = Name::lossy(&text, &fallback);
            prop_assert_eq!(Name::new("name", name.as_str()), Ok(name.clone()));
            if let Ok(valid) = Name::new("name", &text) {
                prop_assert_eq!(name, valid);
            }
        }

        #[test]
        fn every_hostname_is_a_name(text in "[a-zA-Z0-9_.-]{1,300}") {
            if let Ok(hostname) = Name::hostname("hostname", &text) {
                prop_assert!(hostname.as_str().len() <= Name::MAX_HOSTNAME_BYTES);
                prop_assert!(hostname.as_str().split('.').all(|label| (1..=63).contains(&label.len())));
                prop_assert_eq!(Name::new("name", &text), Ok(hostname));
            }
        }
    }
}
