//! The data model: computers, packages, groups, assignments, job containers, deployment rules,
//! the delivery policy they share, and jobs.
//!
//! Types whose values have rules (names, priorities, schedules, success codes, MAC addresses) are
//! validated when constructed, with an [`InvalidField`] error naming the field; once built, a
//! value is valid, so the plain structs that hold them can have public fields.
//!
//! # Examples
//!
//! ```
//! use oco_core::model::{MacAddress, Priority, SuccessCodes};
//!
//! let mac: MacAddress = "aabb.ccdd.eeff".parse()?;
//! assert_eq!(mac.to_string(), "aa:bb:cc:dd:ee:ff");
//!
//! let codes: SuccessCodes = "0, 3010, -5--1".parse()?;
//! assert!(codes.accepts(3010) && codes.accepts(-3) && !codes.accepts(1));
//!
//! assert_eq!(Priority::new(101).unwrap_err().to_string(), "priority: must be between -100 and 100, got 101");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod computer;
mod container;
mod group;
mod ids;
mod job;
mod package;
mod policy;
pub mod resolve;
mod values;

pub use computer::{Computer, MacAddress};
pub use container::{JobContainer, Schedule, WolSettings};
pub use group::{Assignment, ComputerGroup, DeploymentRule, PackageGroup};
pub use ids::{
    ComputerGroupId, ComputerId, ContainerId, FamilyId, JobId, PackageGroupId, PackageId, Revision,
    RuleId, TokenId,
};
pub use job::{Job, JobKind, JobSnapshot, JobState, MessageCode, Origin, ServerFinal, WolShutdown};
pub use package::{
    dependency_cycle, Compatibility, DependencyCycle, Package, PackageFamily, Payload, PostAction,
    Procedure, Sha256Digest, SuccessCodes, UpgradeBehavior,
};
pub use policy::{DeliveryPolicy, Priority, SequenceMode};
pub use values::{
    check_text, InvalidField, Name, MAX_COMMAND_CHARS, MAX_LABEL_CHARS, MAX_LIST_ENTRIES,
    MAX_NOTES_CHARS,
};
