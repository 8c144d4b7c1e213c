//! `oco-server-min`: the thin server that OCO agents and administrators talk to.
//!
//! Every decision is a call into [`oco_core`]; a handler decodes, reads the clock once, loads a
//! snapshot, calls the core, applies the change set and encodes. [`app`] is the whole HTTP
//! surface, for tests to drive in-process; `main.rs` parses options, opens the store and serves.

pub mod admin_api;
pub mod agent_api;
pub mod clock;
pub mod commit;
pub mod config;
pub mod housekeeping;
pub mod rules;
pub mod secrets;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::Router;

pub use state::{AppState, Secrets, ServerOptions};

/// Request bodies up to 64 MiB: an agent report carries a job's whole output.
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The server's routes: the agent API at its configured path and the admin API under `/api/v1`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(agent_api::router(&state.options().agent_path))
        .nest("/api/v1", admin_api::router(&state))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
