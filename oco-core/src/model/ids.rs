//! Typed ids, so that a job id is never passed where a package id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = 1))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// A computer's id, assigned by the store.
    ComputerId
);
id_type!(
    /// A computer group's id, assigned by the store.
    ComputerGroupId
);
id_type!(
    /// A package family's id, assigned by the store.
    FamilyId
);
id_type!(
    /// A package's id, assigned by the store.
    PackageId
);
id_type!(
    /// A package group's id, assigned by the store.
    PackageGroupId
);
id_type!(
    /// A job container's id, assigned by the store.
    ContainerId
);
id_type!(
    /// A deployment rule's id, assigned by the store.
    RuleId
);
id_type!(
    /// A job's id, unique across containers and rules, assigned by the store.
    JobId
);
id_type!(
    /// An admin API token's id, assigned by the store.
    TokenId
);

/// A version counter for compare-and-set: bumped by the store at every change of the thing it
/// versions (a job; a computer's assignments).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
