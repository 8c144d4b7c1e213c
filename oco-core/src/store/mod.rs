//! The storage port: the [`Store`] trait, the [`ChangeSet`]s the core's decisions come back as,
//! the snapshots the core's functions read, and an in-memory store.
//!
//! A store is synchronous, object-safe and `Send + Sync` with methods on `&self` (implementations
//! synchronise inside), so a server holds an `Arc<dyn Store>`. Reads are snapshots taken from one
//! consistent state; writes are change sets applied atomically, with compare-and-set on job
//! revisions and per-computer assignment revisions.

mod changes;
pub mod columns;
mod error;
mod failing;
mod forward;
mod memory;
mod port;
mod snapshot;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tokens;

pub use changes::{Applied, Change, ChangeSet};
pub use error::StoreError;
pub use failing::{FailingStore, InjectedFailure};
pub use memory::MemoryStore;
pub use port::{JobFilter, ListedJob, NewComputer, NewPackage, NewRule, Page, Store, StoreResult};
pub use snapshot::{
    AgentContact, AgentCredentials, AgentLookup, ContainerJobs, DeploySnapshot, FailedJob,
    HousekeepingSnapshot, OriginInfo, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot,
    ServerState,
};
pub use tokens::{AdminToken, NewAdminToken, TokenAccess};
