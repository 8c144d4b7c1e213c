//! The OCO agent's wire protocol (see the server docs and the protocol reference).

use axum::Router;

use crate::AppState;

/// The agent API's own state.
#[derive(Debug, Default)]
pub struct AgentState {}

/// The agent endpoint, at `path`.
pub fn router(path: &str) -> Router<AppState> {
    let _ = path;
    Router::new()
}
