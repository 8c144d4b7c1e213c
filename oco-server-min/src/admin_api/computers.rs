//! Computers: create, get, list, update, delete, and reset an agent to first contact.
//!
//! A computer is shown with its agent's last accepted hello (`agent`: when, from which address,
//! which agent version; `null` before the first), which `explain` also uses as the address.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use oco_core::model::{check_text, Computer, ComputerId, JobId, MacAddress, Name, MAX_LABEL_CHARS};
use oco_core::store::{AgentContact, NewComputer, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{BadRequest, Conflict, Internal, MergePatch, NotFound, UnsupportedMediaType};
use super::patch::{null_is_default, Patch};
use super::{blocking, check_entries, engine};
use crate::observe::Created;
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(reset_agent))
}

/// A computer as the admin API shows it: its fields and its agent's last contact.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ComputerView {
    #[serde(flatten)]
    computer: Computer,
    /// The agent's last accepted hello; `null` before the first.
    #[schema(required = true)]
    agent: Option<AgentContact>,
}

/// `computer` with its agent's last contact, read from the store.
fn view(store: &dyn Store, computer: Computer) -> Result<ComputerView, ApiError> {
    let agent = store.credentials(computer.id)?.last_contact;
    Ok(ComputerView { computer, agent })
}

/// A computer to create, and a computer's editable form (a `PATCH` is a JSON merge patch of
/// it). Absent or `null` fields are empty.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ComputerInput {
    /// Unique among computers, compared case-insensitively: labels of letters, digits, `-`
    /// and `_` separated by dots, at most 253 bytes.
    #[schema(example = "pc-042")]
    hostname: String,
    /// Operating system, as the agent reports it; one line of at most 255 characters.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    os: String,
    /// Operating system version; one line of at most 255 characters.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    os_version: String,
    /// CPU architecture; one line of at most 255 characters.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    architecture: String,
    /// MAC addresses for Wake-on-LAN (`aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or
    /// `aabb.ccdd.eeff`), at most 1,000.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    macs: Vec<String>,
}

/// A `PATCH` body: a JSON merge patch of [`ComputerInput`].
type ComputerPatch = MergePatch<ComputerInput>;

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
        for (field, text) in [
            ("os", &self.os),
            ("os_version", &self.os_version),
            ("architecture", &self.architecture),
        ] {
            check_text(field, text, MAX_LABEL_CHARS, false)?;
        }
        check_entries("macs", self.macs.len())?;
        Ok(NewComputer {
            hostname: Name::hostname("hostname", &self.hostname)?,
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

/// Creates a computer.
#[utoipa::path(
    post,
    path = "/computers",
    operation_id = "create_computer",
    tag = "computers",
    request_body = ComputerInput,
    responses(
        (status = 201, description = "The computer created.", body = ComputerView),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Body(input): Body<ComputerInput>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<ComputerView>)> {
    let new = input.into_new()?;
    let now = state.clock().now();
    blocking(move || {
        let computer = engine(&state).create_computer(new, now)?.value;
        Ok((
            StatusCode::CREATED,
            Created::id(computer.id),
            Json(view(state.store().as_ref(), computer)?),
        ))
    })
    .await
}

/// Lists computers by id.
#[utoipa::path(
    get,
    path = "/computers",
    operation_id = "list_computers",
    tag = "computers",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of computers.", body = Paged<ComputerView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<ComputerView>>> {
    let (page, limit) = (query.probe()?, query.limit()?);
    blocking(move || {
        let store = state.store().as_ref();
        let items = store
            .list_computers(page)?
            .into_iter()
            .map(|computer| view(store, computer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(Paged::of(items, limit, |c| c.computer.id.0)))
    })
    .await
}

/// Shows a computer.
#[utoipa::path(
    get,
    path = "/computers/{id}",
    operation_id = "get_computer",
    tag = "computers",
    params(("id" = i64, Path, description = "The computer's id.", example = 1)),
    responses(
        (status = 200, description = "The computer.", body = ComputerView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ComputerView>> {
    blocking(move || {
        let store = state.store().as_ref();
        Ok(Json(view(store, store.computer(ComputerId(id))?)?))
    })
    .await
}

/// Applies a merge patch to the computer.
#[utoipa::path(
    patch,
    path = "/computers/{id}",
    operation_id = "update_computer",
    tag = "computers",
    params(("id" = i64, Path, description = "The computer's id.", example = 1)),
    request_body(content(
        (ComputerPatch = "application/merge-patch+json"),
        (ComputerPatch = "application/json"),
    )),
    responses(
        (status = 200, description = "The computer changed.", body = ComputerView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    patch: Patch,
) -> ApiResult<Json<ComputerView>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let old = store.computer(ComputerId(id))?;
        let fields = patch.apply(&ComputerInput::from(&old))?.into_new()?;
        let new = Computer {
            hostname: fields.hostname,
            os: fields.os,
            os_version: fields.os_version,
            architecture: fields.architecture,
            macs: fields.macs,
            ..old
        };
        let new = engine(&state).update_computer(new, now)?.value;
        Ok(Json(view(store, new)?))
    })
    .await
}

/// What deleting a computer dropped.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeletedComputer)]
struct Deleted {
    /// The computer's jobs that were pending (Waiting, Downloading or Executing) when it was
    /// deleted, by id: an agent may have been handed them, and their outcome will not be
    /// recorded, since the computer is gone and its agent can no longer authenticate. Their
    /// tombstones stay until housekeeping purges them.
    unfinished_jobs: Vec<JobId>,
}

/// Deletes a computer with its jobs and assignments.
#[utoipa::path(
    delete,
    path = "/computers/{id}",
    operation_id = "delete_computer",
    tag = "computers",
    params(("id" = i64, Path, description = "The computer's id.", example = 1)),
    responses(
        (status = 200, description = "What the deletion dropped.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Deleted>> {
    let now = state.clock().now();
    blocking(move || {
        let id = ComputerId(id);
        let deleted = engine(&state).delete_computer(id, now)?;
        if !deleted.unfinished_jobs.is_empty() {
            tracing::warn!(
                computer = %id,
                jobs = ?deleted.unfinished_jobs,
                "deleted a computer with unfinished jobs; their outcome will not be recorded"
            );
        }
        Ok(Json(Deleted {
            unfinished_jobs: deleted.unfinished_jobs,
        }))
    })
    .await
}

/// `POST /computers/{id}/agent/reset`: the computer's next hello is a first contact again (see
/// [`AgentCredentials::reset_to_first_contact`](oco_core::store::AgentCredentials)): for an
/// agent locked out by a bad timestamp, or reinstalled with the global key.
#[utoipa::path(
    post,
    path = "/computers/{id}/agent/reset",
    operation_id = "reset_computer_agent",
    tag = "computers",
    params(("id" = i64, Path, description = "The computer's id.", example = 1)),
    responses(
        (status = 200, description = "The computer, its agent reset.", body = ComputerView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
async fn reset_agent(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ComputerView>> {
    blocking(move || {
        let id = ComputerId(id);
        engine(&state).reset_agent(id)?;
        let store = state.store().as_ref();
        Ok(Json(view(store, store.computer(id)?)?))
    })
    .await
}
