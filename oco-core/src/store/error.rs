use std::fmt;

/// What went wrong in a store, in the core's terms; adapters map their own errors into it.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// No such thing.
    NotFound {
        /// What was looked for (`"job"`, `"computer"`, …).
        what: &'static str,
        /// Its id or key.
        id: String,
    },
    /// A precondition of a change set failed (a revision moved on): nothing was written; reload
    /// and recompute.
    Conflict {
        /// Which precondition.
        what: String,
    },
    /// A unique name or key is taken.
    Duplicate {
        /// What kind of thing (`"hostname"`, …).
        what: &'static str,
        /// The key.
        key: String,
    },
    /// A reference or rule of the data model would be violated (unknown group, group cycle, …).
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A stored value no longer parses. Reported for that row only; the rest stays usable.
    Corrupt {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The backend failed (I/O, the database engine, …).
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound { what, id } => write!(f, "{what} {id} not found"),
            StoreError::Conflict { what } => write!(f, "conflict: {what}"),
            StoreError::Duplicate { what, key } => write!(f, "{what} `{key}` already exists"),
            StoreError::Invalid { reason } => write!(f, "invalid: {reason}"),
            StoreError::Corrupt { what, id, reason } => {
                write!(f, "stored {what} {id} is corrupt: {reason}")
            }
            StoreError::Backend(source) => write!(f, "store backend failed: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Backend(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}
