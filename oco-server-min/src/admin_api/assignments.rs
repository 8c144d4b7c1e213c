//! Assignments (the record that a package is installed on a computer): list, set and remove by
//! hand.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use oco_core::model::{Assignment, ComputerId, PackageId, Revision};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::ApiPath;
use super::openapi::{BadRequest, Conflict, Internal, NotFound};
use super::{blocking, engine};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(set, remove))
}

/// A computer's assignments, oldest first, with its assignment revision.
#[derive(Debug, Serialize, ToSchema)]
struct Assignments {
    /// The assignments, oldest first.
    items: Vec<Assignment>,
    /// Bumped at every change of the computer's assignments.
    revision: Revision,
}

/// Lists a computer's assignments (the packages recorded as installed on it).
#[utoipa::path(
    get,
    path = "/computers/{id}/assignments",
    operation_id = "list_assignments",
    tag = "assignments",
    params(("id" = i64, Path, description = "The computer's id.", example = 1)),
    responses(
        (status = 200, description = "The computer's assignments.", body = Assignments),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
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

/// Records by hand that a package is installed on a computer; re-evaluates the rules concerned.
#[utoipa::path(
    put,
    path = "/computers/{id}/assignments/{package}",
    operation_id = "set_assignment",
    tag = "assignments",
    params(
        ("id" = i64, Path, description = "The computer's id.", example = 1),
        ("package" = i64, Path, description = "The package's id.", example = 1),
    ),
    responses(
        (status = 200, description = "The assignment.", body = Assignment),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
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

/// Removes the record that a package is installed on a computer; re-evaluates the rules
/// concerned.
#[utoipa::path(
    delete,
    path = "/computers/{id}/assignments/{package}",
    operation_id = "delete_assignment",
    tag = "assignments",
    params(
        ("id" = i64, Path, description = "The computer's id.", example = 1),
        ("package" = i64, Path, description = "The package's id.", example = 1),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
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
