//! `oco-core`: pure, I/O-free scheduling of software deployment jobs for OCO-managed computers.
//!
//! The crate reads no clock, file, socket or random source: `now` is always an argument, and
//! decisions come back as values for the caller to apply.
//!
//! - [`constraint`]: the agent IP-range and time-frame languages of a delivery policy.
//! - [`model`]: computers, packages, groups, assignments, containers, rules, jobs.
//! - [`plan`]: what an agent gets when it polls, and why the rest is held.
//! - [`report`]: the job state machine and what an agent report changes.
//! - [`deploy`]: containers and jobs from targets and packages; uninstall; renew.
//! - [`housekeeping`]: expiry, purge, Wake-on-LAN; container statistics.
//! - [`rules`]: deployment rules' jobs by diffing, conflicts, and what re-evaluates them.
//! - [`store`]: the storage port ([`store::Store`]), change sets, snapshots, an in-memory store.
//!
//! The public API uses [`chrono`] 0.4, [`chrono_tz`] 0.10 and [`ipnet`] 2; all are re-exported so embedders
//! use the same versions.
//!
//! # Examples
//!
//! ```
//! use oco_core::constraint::{IpRanges, TimeFrames};
//! use oco_core::chrono::{TimeZone, Utc};
//! use oco_core::chrono_tz::Europe::Berlin;
//!
//! // The office network except the lab: the first matching entry decides, so the lab comes first.
//! let ranges: IpRanges = "!10.66.0.0/16, 10.0.0.0/8".parse()?;
//! let frames: TimeFrames = "MON-FRI 18:00-06:00, SAT-SUN".parse()?;
//! assert!(!ranges.allows("10.66.1.1".parse()?));
//!
//! let agent = "10.1.2.3".parse()?;
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(); // a Tuesday, 13:00 in Berlin
//! let may_run = ranges.allows(agent) && frames.allows_at(now, Berlin);
//! assert!(!may_run);
//! let opens = frames.next_open(now, Berlin).unwrap();
//! assert_eq!(opens, Utc.with_ymd_and_hms(2026, 11, 24, 17, 0, 0).unwrap());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use chrono;
pub use chrono_tz;
pub use ipnet;

pub mod constraint;
pub mod deploy;
pub mod engine;
pub mod housekeeping;
pub mod model;
pub mod plan;
pub mod report;
pub mod rules;
pub mod serde_seconds;
mod settings;
pub mod store;
mod text_serde;

pub use settings::Settings;

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
