//! Computers: create, get, list, update, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oco_core::model::{Computer, ComputerId, MacAddress, Name};
use oco_core::rules::{RuleEvent, RuleWorld};
use oco_core::store::NewComputer;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::{blocking, change_with_rules, list_page};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/computers", get(list).post(create))
        .route("/computers/{id}", get(one).patch(update).delete(remove))
}

/// A computer to create, and a computer's editable form (see [`super::patch`]). Absent or
/// `null` fields are empty.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComputerInput {
    hostname: String,
    #[serde(default, deserialize_with = "null_is_default")]
    os: String,
    #[serde(default, deserialize_with = "null_is_default")]
    os_version: String,
    #[serde(default, deserialize_with = "null_is_default")]
    architecture: String,
    #[serde(default, deserialize_with = "null_is_default")]
    macs: Vec<String>,
}

impl From<&Computer> for ComputerInput {
    fn from(computer: &Computer) -> Self {
        ComputerInput {
            hostname: computer.hostname.as_str().to_owned(),
            os: computer.os.clone(),
            os_version: computer.os_version.clone(),
            architecture: computer.architecture.clone(),
            macs: computer.macs.iter().map(ToString::to_string).collect(),
        }
    }
}

impl ComputerInput {
    /// The fields, checked.
    fn into_new(self) -> ApiResult<NewComputer> {
        Ok(NewComputer {
            hostname: Name::new("hostname", &self.hostname)?,
            os: self.os,
            os_version: self.os_version,
            architecture: self.architecture,
            macs: parse_macs(&self.macs)?,
        })
    }
}

fn parse_macs(macs: &[String]) -> Result<Vec<MacAddress>, ApiError> {
    macs.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<MacAddress>()
                .map_err(|error| ApiError::invalid(format!("macs[{i}]"), error.reason))
        })
        .collect()
}

async fn create(
    State(state): State<AppState>,
    Body(input): Body<ComputerInput>,
) -> ApiResult<(StatusCode, Json<Computer>)> {
    let new = input.into_new()?;
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        // A new computer is in no group yet, so no rule had it before.
        let (computer, _) = change_with_rules(
            store,
            &RuleWorld::default(),
            now,
            || Ok(store.create_computer(new)?),
            |computer| RuleEvent::ComputerChanged {
                computer: computer.id,
            },
            |computer| store.delete_computer(computer.id),
        )?;
        Ok((StatusCode::CREATED, Json(computer)))
    })
    .await
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<Computer>>> {
    list_page(
        state,
        &query,
        |store, page| store.list_computers(page),
        |c| c.id.0,
    )
    .await
}

async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Computer>> {
    blocking(move || Ok(Json(state.store().computer(ComputerId(id))?))).await
}

/// Applies a merge patch to the computer.
async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    patch: Patch,
) -> ApiResult<Json<Computer>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = ComputerId(id);
        let old = store.computer(id)?;
        let fields = patch.apply(&ComputerInput::from(&old))?.into_new()?;
        let new = Computer {
            hostname: fields.hostname,
            os: fields.os,
            os_version: fields.os_version,
            architecture: fields.architecture,
            macs: fields.macs,
            ..old.clone()
        };
        let event = RuleEvent::ComputerChanged { computer: id };
        let before = crate::rules::world_for(store, &event)?;
        change_with_rules(
            store,
            &before,
            now,
            || Ok(store.update_computer(&new)?),
            |()| event.clone(),
            |()| store.update_computer(&old),
        )?;
        Ok(Json(new))
    })
    .await
}

async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = ComputerId(id);
        store.computer(id)?;
        let event = RuleEvent::ComputerDeleted { computer: id };
        let before = crate::rules::world_for(store, &event)?;
        store.delete_computer(id)?;
        // The store deleted the computer's jobs with it; this settles the other rules' claims.
        // A deleted computer cannot be restored: a failure here is reported, and the next change
        // of those rules evaluates them again.
        crate::rules::reevaluate(store, &event, &before, now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
