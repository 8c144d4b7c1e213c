//! Housekeeping status: what the last runs did.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use crate::housekeeping::StatusSnapshot;
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// What the housekeeping runs did since the server started.
#[utoipa::path(
    get,
    path = "/housekeeping",
    operation_id = "housekeeping_status",
    tag = "housekeeping",
    responses(
        (status = 200, description = "The housekeeping status.", body = StatusSnapshot),
    ),
)]
async fn status(State(state): State<AppState>) -> ApiResult<Json<StatusSnapshot>> {
    Ok(Json(state.housekeeping().snapshot()))
}
