//! Job containers: deploy, uninstall, list, get, edit, enable/disable, renew, delete, statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::deploy::{ContainerSettings, DeployRequest, UninstallRequest};
use oco_core::engine::{CreatedJob, Deployed, Renewed};
use oco_core::housekeeping::ContainerStatistics;
use oco_core::model::{
    check_text, ComputerGroupId, ComputerId, ContainerId, JobContainer, JobId, Name,
    PackageGroupId, PackageId, Schedule, WolSettings, MAX_NOTES_CHARS,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{
    BadRequest, Busy, Conflict, Internal, MergePatch, NotFound, UnsupportedMediaType,
};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, engine, heavy, list_page, HeavyGate};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(deploy_container))
        .routes(routes!(uninstall_container))
        .routes(routes!(one, edit, remove))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(renew))
        .routes(routes!(statistics))
}

/// A new container's settings in a request, and a container's editable form (a `PATCH` is a
/// JSON merge patch of it). Absent or `null` fields take their defaults: enabled, starting now,
/// no end, the default policy in the server's zone, no Wake-on-LAN.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContainerSettings)]
struct SettingsInput {
    /// One line, not blank, at most 255 characters.
    #[schema(example = "Firefox 128")]
    name: String,
    /// Free text, at most 10,000 characters.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    notes: String,
    /// A disabled container's jobs are held; absent or `null`: enabled.
    #[serde(default)]
    enabled: Option<bool>,
    /// When its jobs may start; absent or `null`: now.
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    /// When its jobs that have not started expire; absent or `null`: never. After `start`.
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    /// How its jobs are delivered; absent or `null`: the default policy.
    #[serde(default)]
    policy: Option<PolicyInput>,
    /// Wake-on-LAN; absent or `null`: none.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    wol: WolInput,
    /// Created from the self-service portal.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    self_service: bool,
}

/// A `PATCH` body: a JSON merge patch of [`SettingsInput`].
type ContainerSettingsPatch = MergePatch<SettingsInput>;

/// Wake-on-LAN settings in a request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WolInput {
    /// Wake the target computers when the container starts.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    wake: bool,
    /// Shut computers that were woken down after their last job.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    shutdown_after: bool,
}

impl From<&JobContainer> for SettingsInput {
    fn from(container: &JobContainer) -> Self {
        SettingsInput {
            name: container.name.as_str().to_owned(),
            notes: container.notes.clone(),
            enabled: Some(container.enabled),
            start: Some(container.schedule.start()),
            end: container.schedule.end(),
            policy: Some(PolicyInput::from(&container.policy)),
            wol: WolInput {
                wake: container.wol.wake,
                shutdown_after: container.wol.shutdown_after,
            },
            self_service: container.self_service,
        }
    }
}

impl SettingsInput {
    /// The settings and the constraint lint's warnings on them; errors and warnings name fields
    /// under `prefix` (`"container."` in a deploy, `""` in an edit).
    fn into_settings(
        self,
        zone: Tz,
        now: DateTime<Utc>,
        prefix: &str,
    ) -> ApiResult<(ContainerSettings, Vec<Warning>)> {
        let within = |field: &str| format!("{prefix}{field}");
        let (policy, warnings) = policy_or_default(self.policy, zone, &within("policy"))?;
        let schedule = Schedule::new(self.start.unwrap_or(now), self.end);
        let settings = ContainerSettings {
            name: Name::new(&within("name"), &self.name)?,
            notes: {
                check_text(&within("notes"), &self.notes, MAX_NOTES_CHARS, true)?;
                self.notes
            },
            enabled: self.enabled.unwrap_or(true),
            schedule: match prefix.strip_suffix('.') {
                Some(outer) => schedule.map_err(|e| e.within(outer))?,
                None => schedule?,
            },
            policy,
            wol: WolSettings {
                wake: self.wol.wake,
                shutdown_after: self.wol.shutdown_after,
                sent_at: None,
            },
            self_service: self.self_service,
        };
        Ok((settings, warnings))
    }
}

/// A deploy: a new container for these computers and packages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeployInput {
    /// The new container's settings.
    container: SettingsInput,
    /// Target computers.
    #[serde(default)]
    computers: Vec<ComputerId>,
    /// Target computer groups (their members, subgroups included).
    #[serde(default)]
    computer_groups: Vec<ComputerGroupId>,
    /// Packages to install (their dependencies are added).
    #[serde(default)]
    packages: Vec<PackageId>,
    /// Package groups to install, in order.
    #[serde(default)]
    package_groups: Vec<PackageGroupId>,
    /// Install packages that are already installed too.
    #[serde(default)]
    force_reinstall: bool,
}

/// An uninstall: a new container with one uninstall job per assignment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UninstallInput {
    /// The new container's settings.
    container: SettingsInput,
    /// The (computer, package) pairs to uninstall.
    assignments: Vec<AssignmentRef>,
}

/// A (computer, package) pair.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignmentRef {
    /// The computer.
    computer: ComputerId,
    /// The package installed on it.
    package: PackageId,
}

/// A created container, its jobs, and the constraint lint's warnings on its policy.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedContainer)]
struct Created {
    /// The container, with its id.
    container: JobContainer,
    /// Its jobs, in the order created.
    jobs: Vec<CreatedJob>,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// An edited container (its fields), and the constraint lint's warnings on its policy.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EditedContainer)]
struct Edited {
    #[serde(flatten)]
    container: JobContainer,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// Which failed-like jobs to renew (absent: all of the container's), and how: in place, or
/// `into` a new container with that name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContainerRenewal)]
struct RenewInput {
    /// The jobs to renew, by id; absent or `null`: every failed or expired job.
    #[serde(default)]
    jobs: Option<Vec<JobId>>,
    /// Renew into a new container of this name (with the old one's settings) instead of in
    /// place.
    #[serde(default)]
    into: Option<String>,
}

/// A container's path parameter.
const CONTAINER: &str = "The container's id.";

/// A created container with the lint's `warnings`, as answered.
fn created(
    deployed: Deployed,
    warnings: Vec<Warning>,
) -> (
    StatusCode,
    Extension<crate::observe::Created>,
    Json<Created>,
) {
    (
        StatusCode::CREATED,
        crate::observe::Created::id(deployed.container.id),
        Json(Created {
            container: deployed.container,
            jobs: deployed.jobs,
            warnings,
        }),
    )
}

/// Deploys: creates a container with a job per target computer and package.
#[utoipa::path(
    post,
    path = "/containers/deploy",
    operation_id = "deploy_container",
    tag = "containers",
    request_body = DeployInput,
    responses(
        (status = 201, description = "The container and its jobs.", body = Created),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn deploy_container(
    State(state): State<AppState>,
    Body(input): Body<DeployInput>,
) -> ApiResult<(
    StatusCode,
    Extension<crate::observe::Created>,
    Json<Created>,
)> {
    let now = state.clock().now();
    let (container, warnings) =
        input
            .container
            .into_settings(state.options().time_zone, now, "container.")?;
    let request = DeployRequest {
        container,
        computers: input.computers,
        computer_groups: input.computer_groups,
        packages: input.packages,
        package_groups: input.package_groups,
        force_reinstall: input.force_reinstall,
    };
    heavy(HeavyGate::of(&state), move || {
        Ok(created(engine(&state).deploy(&request, now)?, warnings))
    })
    .await
}

/// Uninstalls: creates a container with an uninstall job per assignment.
#[utoipa::path(
    post,
    path = "/containers/uninstall",
    operation_id = "uninstall_container",
    tag = "containers",
    request_body = UninstallInput,
    responses(
        (status = 201, description = "The container and its jobs.", body = Created),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn uninstall_container(
    State(state): State<AppState>,
    Body(input): Body<UninstallInput>,
) -> ApiResult<(
    StatusCode,
    Extension<crate::observe::Created>,
    Json<Created>,
)> {
    let now = state.clock().now();
    let (container, warnings) =
        input
            .container
            .into_settings(state.options().time_zone, now, "container.")?;
    let request = UninstallRequest {
        container,
        assignments: input
            .assignments
            .iter()
            .map(|a| (a.computer, a.package))
            .collect(),
    };
    heavy(HeavyGate::of(&state), move || {
        Ok(created(engine(&state).uninstall(&request, now)?, warnings))
    })
    .await
}

/// Lists containers by id.
#[utoipa::path(
    get,
    path = "/containers",
    operation_id = "list_containers",
    tag = "containers",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of containers.", body = Paged<JobContainer>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<JobContainer>>> {
    list_page(
        state,
        &query,
        |store, page| store.list_containers(page),
        |c| c.id.0,
    )
    .await
}

/// Shows a container.
#[utoipa::path(
    get,
    path = "/containers/{id}",
    operation_id = "get_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    responses(
        (status = 200, description = "The container.", body = JobContainer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobContainer>> {
    blocking(move || Ok(Json(state.store().container(ContainerId(id))?))).await
}

/// Applies a merge patch to the container's settings (`end: null` removes the end).
#[utoipa::path(
    patch,
    path = "/containers/{id}",
    operation_id = "update_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    request_body(content(
        (ContainerSettingsPatch = "application/merge-patch+json"),
        (ContainerSettingsPatch = "application/json"),
    )),
    responses(
        (status = 200, description = "The container changed.", body = Edited),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn edit(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    patch: Patch,
) -> ApiResult<Json<Edited>> {
    let zone = state.options().time_zone;
    let now = state.clock().now();
    blocking(move || {
        let id = ContainerId(id);
        let old = state.store().container(id)?;
        let (settings, warnings) = patch
            .apply(&SettingsInput::from(&old))?
            .into_settings(zone, now, "")?;
        let container = engine(&state).edit_container(id, settings)?;
        Ok(Json(Edited {
            container,
            warnings,
        }))
    })
    .await
}

/// Enables a container: its jobs may be delivered.
#[utoipa::path(
    post,
    path = "/containers/{id}/enable",
    operation_id = "enable_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    responses(
        (status = 200, description = "The container.", body = JobContainer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
async fn enable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobContainer>> {
    set_enabled(state, id, true).await
}

/// Disables a container: its jobs are held.
#[utoipa::path(
    post,
    path = "/containers/{id}/disable",
    operation_id = "disable_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    responses(
        (status = 200, description = "The container.", body = JobContainer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
async fn disable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobContainer>> {
    set_enabled(state, id, false).await
}

async fn set_enabled(state: AppState, id: i64, enabled: bool) -> ApiResult<Json<JobContainer>> {
    blocking(move || {
        Ok(Json(
            engine(&state).set_container_enabled(ContainerId(id), enabled)?,
        ))
    })
    .await
}

/// Renews failed and expired jobs, in place or into a new container.
#[utoipa::path(
    post,
    path = "/containers/{id}/renew",
    operation_id = "renew_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    request_body = RenewInput,
    responses(
        (status = 200, description = "What was renewed.", body = Renewed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn renew(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<RenewInput>,
) -> ApiResult<Json<Renewed>> {
    let name = input
        .into
        .as_deref()
        .map(|text| Name::new("into", text))
        .transpose()?;
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let renewed =
            engine(&state).renew_container(ContainerId(id), input.jobs.as_deref(), name, now)?;
        Ok(Json(renewed))
    })
    .await
}

/// Deletes a container with its jobs.
#[utoipa::path(
    delete,
    path = "/containers/{id}",
    operation_id = "delete_container",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        engine(&state).delete_container(ContainerId(id), now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// A container's progress: status, runtimes, jobs in each state.
#[utoipa::path(
    get,
    path = "/containers/{id}/statistics",
    operation_id = "container_statistics",
    tag = "containers",
    params(("id" = i64, Path, description = CONTAINER, example = 1)),
    responses(
        (status = 200, description = "The container's statistics.", body = ContainerStatistics),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn statistics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ContainerStatistics>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        Ok(Json(
            engine(&state).container_statistics(ContainerId(id), now)?,
        ))
    })
    .await
}
