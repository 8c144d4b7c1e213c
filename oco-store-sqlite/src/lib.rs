//! `oco-store-sqlite`: the durable SQLite store for [`oco_core`].
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace so that its name and
//! place are fixed; it has no API. The store (the core's storage trait on SQLite, with
//! migrations) is built in a later step, and this page will then open with a runnable example.
//!
//! ```
//! // Until then the crate only re-exports the core it will store.
//! use oco_store_sqlite::oco_core::constraint::IpRanges;
//! assert!(IpRanges::default().is_unconstrained());
//! ```

pub use oco_core;
