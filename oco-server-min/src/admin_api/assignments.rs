//! Assignments (the record that a package is installed on a computer): list, set and remove by
//! hand.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oco_core::model::{Assignment, ComputerId, PackageId, Revision};
use oco_core::rules::RuleEvent;
use oco_core::store::{Change, ChangeSet};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::{blocking, change_with_rules};
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

/// The change set that puts `previous` back (or removes the record if there was none).
fn restore(computer: ComputerId, package: PackageId, previous: Option<Assignment>) -> ChangeSet {
    ChangeSet {
        changes: vec![match previous {
            Some(assignment) => Change::UpsertAssignment { assignment },
            None => Change::DeleteAssignment { computer, package },
        }],
    }
}

async fn set(
    State(state): State<AppState>,
    ApiPath((computer, package)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<Assignment>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let (computer, package) = (ComputerId(computer), PackageId(package));
        store.computer(computer)?;
        store.package(package)?;
        let (assignments, revision) = store.assignments(computer)?;
        let previous = assignments.into_iter().find(|a| a.package == package);
        let assignment = Assignment {
            computer,
            package,
            installed_at: now,
            job: None,
        };
        let event = RuleEvent::AssignmentsChanged { computer };
        let before = crate::rules::world_for(store, &event)?;
        let set = ChangeSet {
            changes: vec![
                Change::ExpectAssignments {
                    computer,
                    expected: revision,
                },
                Change::UpsertAssignment {
                    assignment: assignment.clone(),
                },
            ],
        };
        change_with_rules(
            store,
            &before,
            now,
            || Ok(store.apply(&set).map(|_| ())?),
            |()| event.clone(),
            |()| {
                store
                    .apply(&restore(computer, package, previous))
                    .map(|_| ())
            },
        )?;
        Ok(Json(assignment))
    })
    .await
}

async fn remove(
    State(state): State<AppState>,
    ApiPath((computer, package)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let (computer, package) = (ComputerId(computer), PackageId(package));
        store.computer(computer)?;
        let (assignments, revision) = store.assignments(computer)?;
        let Some(previous) = assignments.into_iter().find(|a| a.package == package) else {
            return Err(ApiError::not_found(format!(
                "package {package} is not assigned to computer {computer}"
            )));
        };
        let event = RuleEvent::AssignmentsChanged { computer };
        let before = crate::rules::world_for(store, &event)?;
        let set = ChangeSet {
            changes: vec![
                Change::ExpectAssignments {
                    computer,
                    expected: revision,
                },
                Change::DeleteAssignment { computer, package },
            ],
        };
        change_with_rules(
            store,
            &before,
            now,
            || Ok(store.apply(&set).map(|_| ())?),
            |()| event.clone(),
            |()| {
                store
                    .apply(&restore(computer, package, Some(previous)))
                    .map(|_| ())
            },
        )?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
