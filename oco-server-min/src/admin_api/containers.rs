//! Job containers: deploy, uninstall, list, get, edit, enable/disable, renew, delete, statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
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

use super::error::ApiResult;
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, engine, heavy, list_page, HeavyGate};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers", get(list))
        .route("/containers/deploy", post(deploy_container))
        .route("/containers/uninstall", post(uninstall_container))
        .route("/containers/{id}", get(one).patch(edit).delete(remove))
        .route("/containers/{id}/enable", post(enable))
        .route("/containers/{id}/disable", post(disable))
        .route("/containers/{id}/renew", post(renew))
        .route("/containers/{id}/statistics", get(statistics))
}

/// A new container's settings in a request, and a container's editable form (see
/// [`super::patch`]). Absent or `null` fields take their defaults: enabled, starting now, no
/// end, the default policy in the server's zone, no Wake-on-LAN.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsInput {
    name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    notes: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    #[serde(default)]
    policy: Option<PolicyInput>,
    #[serde(default, deserialize_with = "null_is_default")]
    wol: WolInput,
    #[serde(default, deserialize_with = "null_is_default")]
    self_service: bool,
}

/// Wake-on-LAN settings in a request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WolInput {
    #[serde(default, deserialize_with = "null_is_default")]
    wake: bool,
    #[serde(default, deserialize_with = "null_is_default")]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployInput {
    container: SettingsInput,
    #[serde(default)]
    computers: Vec<ComputerId>,
    #[serde(default)]
    computer_groups: Vec<ComputerGroupId>,
    #[serde(default)]
    packages: Vec<PackageId>,
    #[serde(default)]
    package_groups: Vec<PackageGroupId>,
    #[serde(default)]
    force_reinstall: bool,
}

/// An uninstall: a new container with one uninstall job per assignment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UninstallInput {
    container: SettingsInput,
    assignments: Vec<AssignmentRef>,
}

/// A (computer, package) pair.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentRef {
    computer: ComputerId,
    package: PackageId,
}

/// A created container, its jobs, and the constraint lint's warnings on its policy.
#[derive(Debug, Serialize)]
struct Created {
    container: JobContainer,
    jobs: Vec<CreatedJob>,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// An edited container (its fields), and the constraint lint's warnings on its policy.
#[derive(Debug, Serialize)]
struct Edited {
    #[serde(flatten)]
    container: JobContainer,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// Which failed-like jobs to renew (absent: all of the container's), and how: in place, or
/// `into` a new container with that name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewInput {
    #[serde(default)]
    jobs: Option<Vec<JobId>>,
    #[serde(default)]
    into: Option<String>,
}

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

async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobContainer>> {
    blocking(move || Ok(Json(state.store().container(ContainerId(id))?))).await
}

/// Applies a merge patch to the container's settings (`end: null` removes the end).
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

async fn enable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobContainer>> {
    set_enabled(state, id, true).await
}

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

async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        engine(&state).delete_container(ContainerId(id), now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

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
