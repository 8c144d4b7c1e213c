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

/// A name: not blank, without surrounding white space (it is trimmed), at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 255;

    /// Validates `value` as the name in `field`.
    ///
    /// # Errors
    ///
    /// When the trimmed value is empty or longer than [`Name::MAX_CHARS`].
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
        Ok(Name(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
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
