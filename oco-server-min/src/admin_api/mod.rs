//! The admin API under `/api/v1`.

use axum::Router;

use crate::AppState;

/// The admin routes, relative to `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
}
