//! Assignments (the record that a package is installed on a computer): list, set and remove by
//! hand.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oco_core::model::{Assignment, ComputerId, PackageId, Revision};
use serde::Serialize;

use super::error::ApiResult;
use super::extract::ApiPath;
use super::{blocking, engine};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/computers/{id}/assignments", get(list))
        .route(
            "/computers/{id}/assignments/{package}",
            put(set).delete(remove),
        )
}

/// A computer's assignments, oldest first, with its assignment revision.
#[derive(Debug, Serialize)]
struct Assignments {
    items: Vec<Assignment>,
    revision: Revision,
}

async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Assignments>> {
    blocking(move || {
        let store = state.store();
        let id = ComputerId(id);
        store.computer(id)?;
        let (items, revision) = store.assignments(id)?;
        Ok(Json(Assignments { items, revision }))
    })
    .await
}

async fn set(
    State(state): State<AppState>,
    ApiPath((computer, package)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<Assignment>> {
    let now = state.clock().now();
    blocking(move || {
        let assigned = engine(&state).assign(ComputerId(computer), PackageId(package), now)?;
        Ok(Json(assigned.value))
    })
    .await
}

async fn remove(
    State(state): State<AppState>,
    ApiPath((computer, package)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    blocking(move || {
        engine(&state).unassign(ComputerId(computer), PackageId(package), now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
