//! `oco-core`: pure, I/O-free scheduling of software deployment jobs for OCO-managed computers.
//!
//! The crate reads no clock, file, socket or random source: `now` is always an argument, and
//! decisions come back as values for the caller to apply.
//!
//! - [`engine`]: one call per operation over any store (deploy, poll, report, rules, groups,
//!   housekeeping…), with compare-and-set retries and rule re-evaluation.
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
//! The whole cycle on the in-memory store, through the [`engine`]: a deploy to two computers,
//! their polls, a failure and its -8888 cascade, a rule that reacts to a group change, and
//! housekeeping. Every call takes `now`; nothing reads a clock.
//!
//! ```
//! use oco_core::chrono::{Duration, TimeZone, Utc};
//! use oco_core::deploy::{ContainerSettings, DeployRequest};
//! use oco_core::engine::Engine;
//! use oco_core::model::{DeliveryPolicy, JobState, Name, Procedure, SequenceMode};
//! use oco_core::report::{AgentReport, ReportedState};
//! use oco_core::store::{MemoryStore, NewComputer, NewPackage, NewRule, Store};
//!
//! let engine = Engine::new(MemoryStore::new());
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
//! let pc1 = engine.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?), now)?.value;
//! let pc2 = engine.create_computer(NewComputer::new(Name::hostname("hostname", "pc2")?), now)?.value;
//! let family = engine.create_family(Name::new("name", "Office")?)?;
//! let package = |version| NewPackage::new(family.id, version, Procedure::new("setup.exe /S"));
//! let runtime = engine.create_package(package(Name::new("version", "runtime")?))?;
//! let editor = engine.create_package(package(Name::new("version", "editor")?))?;
//!
//! // A container for both computers: each gets the runtime, then the editor.
//! let policy = DeliveryPolicy::default().with_sequence_mode(SequenceMode::AbortAfterFailed);
//! let container = ContainerSettings::new(Name::new("name", "Office")?, now, policy)
//!     .with_end(now + Duration::days(1))?;
//! let request = DeployRequest::new(container)
//!     .with_computers([pc1.id, pc2.id])
//!     .with_packages([runtime.id, editor.id]);
//! assert_eq!(engine.deploy(&request, now)?.jobs.len(), 4);
//!
//! // pc1 polls and gets both, in sequence; the runtime fails with an agent error (-9999) …
//! let address = "10.0.0.7".parse()?;
//! let poll = engine.poll(pc1.id, address, now)?;
//! assert_eq!(poll.deliver.len(), 2);
//! let first = &poll.deliver[0].job;
//! let failure = AgentReport::new(first.id, first.attempt, ReportedState::Failed).with_return_code(-9999);
//! let (reported, _) = engine.report(pc1.id, failure, now)?;
//! assert!(!reported.job_succeeded);
//! // … so its editor job fails with -8888, and pc1 gets nothing more; pc2 is not affected.
//! let aborted = engine.store().job(poll.deliver[1].job.id)?;
//! assert_eq!((aborted.state, aborted.return_code), (JobState::Failed, Some(-8888)));
//! assert!(engine.poll(pc1.id, address, now)?.deliver.is_empty());
//! assert_eq!(engine.poll(pc2.id, address, now)?.deliver.len(), 2);
//!
//! // A rule: the office group gets the editors group. The group is empty: no job yet.
//! let office = engine.create_computer_group(Name::new("name", "office")?, None)?;
//! let editors = engine.create_package_group(Name::new("name", "editors")?, None)?;
//! engine.set_package_group_members(editors.id, &[editor.id], now)?;
//! let rule = NewRule::new(Name::new("name", "editors for the office")?, office.id, editors.id, now);
//! assert_eq!(engine.create_rule(rule, now)?.evaluations[0].inserted, 0);
//! // pc1 joins the group: the rule gives it a job of its own, handed out at its next poll.
//! let joined = engine.set_computer_group_members(office.id, &[pc1.id], now)?;
//! assert_eq!(joined.evaluations[0].inserted, 1);
//! assert_eq!(engine.poll(pc1.id, address, now)?.deliver.len(), 1);
//!
//! // Two days on, housekeeping expires the jobs of the ended container that never ran.
//! let housekept = engine.housekeeping(now + Duration::days(2))?;
//! assert_eq!(housekept.summary.expired, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Beyond this crate: `oco-store-sqlite` is the embedded store, `oco-agent-protocol` answers
//! real OCO agents over any transport, `oco-server-min` is the HTTP server, and the workspace's
//! `examples/` directory has complete programs (`cargo run -p oco-examples --example …`). The
//! constraint languages have their own examples in [`constraint`].

pub use chrono;
pub use chrono_tz;
pub use ipnet;

pub mod constraint;
pub mod deploy;
pub mod engine;
pub mod housekeeping;
pub mod model;
#[cfg(feature = "openapi")]
mod openapi;
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
