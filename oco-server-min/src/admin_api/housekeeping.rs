//! Housekeeping status: what the last runs did.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiResult;
use crate::housekeeping::StatusSnapshot;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/housekeeping", get(status))
}

async fn status(State(state): State<AppState>) -> ApiResult<Json<StatusSnapshot>> {
    Ok(Json(state.housekeeping().snapshot()))
}
