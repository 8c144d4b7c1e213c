//! `oco-server-min`: the thin server that OCO agents and administrators talk to.
//!
//! Every decision is a call into [`oco_core`]; a handler decodes, reads the clock once, loads a
//! snapshot, calls the core, applies the change set and encodes. [`app`] is the whole HTTP
//! surface, for tests to drive in-process; `main.rs` parses options, opens the store and serves.
//!
//! # Examples
//!
//! The server on an in-memory store with a fixed clock, driven in-process:
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use oco_core::chrono::{TimeZone, Utc};
//! use oco_core::store::{MemoryStore, Store};
//! use oco_server_min::clock::FixedClock;
//! use oco_server_min::{app, AppState, Secrets, ServerOptions};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap());
//! let secrets = Secrets {
//!     admin_token: "admin-token".into(),
//!     agent_key: "global-agent-key".into(),
//!     registration_key: None,
//! };
//! let state = AppState::new(
//!     store.clone(),
//!     Arc::new(clock),
//!     Default::default(),
//!     ServerOptions::default(),
//!     secrets,
//! )?;
//!
//! let request = Request::post("/api/v1/computers")
//!     .header("authorization", "Bearer admin-token")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"hostname": "pc1"}"#))?;
//! let response = app(state).oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert!(store.computer_by_hostname("PC1")?.is_some());
//! # Ok(())
//! # }
//! ```

mod admin_api;
pub mod agent_api;
pub mod clock;
mod commit;
pub mod config;
pub mod connections;
mod drive;
pub mod housekeeping;
pub mod metrics;
pub mod observe;
pub mod payloads;
pub mod peers;
pub mod secrets;
mod state;

use axum::extract::DefaultBodyLimit;
use axum::Router;

pub use admin_api::tokens::MAX_ADMIN_TOKENS;
pub use state::{
    AppState, Secrets, ServerOptions, ADMIN_HEAVY_CONCURRENCY, ADMIN_HEAVY_WAIT,
    DEFAULT_MAX_PAYLOAD_SIZE,
};

/// Request bodies up to 64 MiB: an agent report carries a job's whole output.
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The server's routes: the agent API at its configured path, the admin API under `/api/v1`,
/// `/healthz`, `/readyz` and `/metrics` ([`metrics`]; behind an admin token unless
/// [`ServerOptions::metrics_public`]); every request with its id, access-log line and metrics
/// ([`observe`]).
pub fn app(state: AppState) -> Router {
    let mut metrics = Router::new().route("/metrics", axum::routing::get(metrics::serve));
    if !state.options().metrics_public {
        metrics = metrics.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_api::authenticate,
        ));
    }
    Router::new()
        .merge(agent_api::router(&state.options().agent_path))
        .nest(admin_api::PREFIX, admin_api::router(&state))
        .merge(observe::routes())
        .merge(metrics.route_layer(axum::middleware::from_fn(observe::matched_route)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(admin_api::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::request_context,
        ))
        .with_state(state)
}
