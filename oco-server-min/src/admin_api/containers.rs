//! Job containers: deploy, uninstall, list, get, edit, enable/disable, renew, delete, statistics.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::deploy::{self, ContainerSettings, DeployRequest, Renewal, UninstallRequest};
use oco_core::housekeeping::{container_statistics_of, ContainerStatistics};
use oco_core::model::{
    check_text, Computer, ComputerGroupId, ComputerId, ContainerId, Job, JobContainer, JobId, Name,
    Origin, Package, PackageGroupId, PackageId, Schedule, WolSettings, MAX_NOTES_CHARS,
};
use oco_core::store::{Change, ChangeSet, JobFilter, Page, Store};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, heavy, list_page, HeavyGate};
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

/// A job of a created container: enough to tell the jobs apart without fetching each.
#[derive(Debug, Serialize)]
struct CreatedJob {
    id: JobId,
    computer: ComputerId,
    package: PackageId,
    sequence: u32,
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

/// What a renew did.
#[derive(Debug, Serialize)]
struct Renewed {
    renewed: Vec<JobId>,
    incompatible: Vec<JobId>,
    skipped: Vec<JobId>,
    /// The new container, when renewed into one.
    container: Option<ContainerId>,
}

/// Applies a change set creating one container and answers with it (built from the change set:
/// nothing is read after the write, so a failed read cannot turn a done write into an error).
fn create(
    store: &dyn Store,
    changes: &ChangeSet,
    warnings: Vec<Warning>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let applied = store.apply(changes)?;
    let created = changes.changes.iter().find_map(|change| match change {
        Change::CreateContainer { container, jobs } => Some((container.clone(), jobs)),
        _ => None,
    });
    let (Some((mut container, jobs)), Some(&id)) = (created, applied.containers.first()) else {
        return Err(ApiError::internal(
            "deploy",
            &"the change set created no container",
        ));
    };
    if jobs.len() != applied.jobs.len() {
        return Err(ApiError::internal(
            "deploy",
            &"the store assigned another number of job ids than jobs were created",
        ));
    }
    container.id = id;
    // The store assigns the ids in the order of the change set's jobs.
    let jobs = jobs
        .iter()
        .zip(&applied.jobs)
        .map(|(job, &id)| CreatedJob {
            id,
            computer: job.computer,
            package: job.package,
            sequence: job.sequence,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(Created {
            container,
            jobs,
            warnings,
        }),
    ))
}

async fn deploy_container(
    State(state): State<AppState>,
    Body(input): Body<DeployInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
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
        let store = state.store().as_ref();
        let snapshot = store.deploy_snapshot()?;
        let changes = deploy::deploy(&request, &snapshot, now)?;
        create(store, &changes, warnings)
    })
    .await
}

async fn uninstall_container(
    State(state): State<AppState>,
    Body(input): Body<UninstallInput>,
) -> ApiResult<(StatusCode, Json<Created>)> {
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
        let store = state.store().as_ref();
        let snapshot = store.deploy_snapshot()?;
        let changes = deploy::uninstall(&request, &snapshot, now)?;
        create(store, &changes, warnings)
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

/// Replaces a container's fields with `edit` applied to them.
fn update(
    store: &dyn Store,
    id: ContainerId,
    edit: impl FnOnce(&mut JobContainer) -> ApiResult<()>,
) -> ApiResult<Json<JobContainer>> {
    let mut container = store.container(id)?;
    edit(&mut container)?;
    store.apply(&ChangeSet {
        changes: vec![Change::UpdateContainer {
            container: container.clone(),
        }],
    })?;
    Ok(Json(container))
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
        let mut warnings = Vec::new();
        let Json(container) = update(state.store().as_ref(), ContainerId(id), |container| {
            let settings;
            (settings, warnings) = patch
                .apply(&SettingsInput::from(&*container))?
                .into_settings(zone, now, "")?;
            container.name = settings.name;
            container.notes = settings.notes;
            container.enabled = settings.enabled;
            container.schedule = settings.schedule;
            container.policy = settings.policy;
            // Whether the packets were sent is the server's, not the administrator's.
            container.wol.wake = settings.wol.wake;
            container.wol.shutdown_after = settings.wol.shutdown_after;
            container.self_service = settings.self_service;
            Ok(())
        })?;
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
        update(state.store().as_ref(), ContainerId(id), |container| {
            container.enabled = enabled;
            Ok(())
        })
    })
    .await
}

/// Every job matching `filter`, by id, without its output: what is read of a container's or a
/// rule's jobs (to delete, renew, count them) is then bounded by their number, not by what
/// their agents printed. A renewal clears the output of the jobs it writes anyway.
pub(super) fn all_jobs(store: &dyn Store, filter: &JobFilter) -> ApiResult<Vec<Job>> {
    const CHUNK: usize = 10_000;
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_jobs_abridged(
            filter,
            Page {
                after,
                limit: CHUNK,
            },
            0,
        )?;
        let full = page.len() == CHUNK;
        after = page.last().map(|listed| listed.job.id.0);
        jobs.extend(page.into_iter().map(|listed| listed.job));
        if !full {
            return Ok(jobs);
        }
    }
}

/// The jobs of `origin` that `wanted` names (all when `None`); 404 naming `jobs` for an id that
/// is not one of them.
pub(super) fn chosen_jobs(
    store: &dyn Store,
    origin: Origin,
    wanted: Option<&[JobId]>,
) -> ApiResult<Vec<Job>> {
    let jobs = all_jobs(
        store,
        &JobFilter {
            origin: Some(origin),
            ..JobFilter::default()
        },
    )?;
    let Some(wanted) = wanted else {
        return Ok(jobs);
    };
    if let Some(missing) = wanted.iter().find(|id| !jobs.iter().any(|j| j.id == **id)) {
        return Err(
            ApiError::not_found(format!("job {missing} is not a job of {origin}"))
                .with_field("jobs"),
        );
    }
    Ok(jobs
        .into_iter()
        .filter(|j| wanted.contains(&j.id))
        .collect())
}

/// The current packages and computers of `jobs`, for renewing them.
pub(super) fn renew_inputs(
    store: &dyn Store,
    jobs: &[Job],
) -> ApiResult<(BTreeMap<PackageId, Package>, BTreeMap<ComputerId, Computer>)> {
    let mut packages = BTreeMap::new();
    let mut computers = BTreeMap::new();
    for job in jobs {
        if let std::collections::btree_map::Entry::Vacant(entry) = packages.entry(job.package) {
            entry.insert(store.package(job.package)?);
        }
        if let std::collections::btree_map::Entry::Vacant(entry) = computers.entry(job.computer) {
            entry.insert(store.computer(job.computer)?);
        }
    }
    Ok((packages, computers))
}

/// Applies a renewal (if it writes anything) and describes it.
pub(super) fn apply_renewal(
    store: &dyn Store,
    renewal: Renewal,
) -> ApiResult<(Renewal, Option<ContainerId>)> {
    let container = if renewal.changes.is_empty() {
        None
    } else {
        store.apply(&renewal.changes)?.containers.first().copied()
    };
    Ok((renewal, container))
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
        let store = state.store().as_ref();
        let id = ContainerId(id);
        let container = store.container(id)?;
        let jobs = chosen_jobs(store, Origin::Container(id), input.jobs.as_deref())?;
        let (packages, computers) = renew_inputs(store, &jobs)?;
        let renewal = match name {
            Some(name) => {
                deploy::renew_into_container(&container, &jobs, &packages, &computers, name, now)?
            }
            None => deploy::renew_in_place(&jobs, &packages, &computers),
        };
        let (renewal, container) = apply_renewal(store, renewal)?;
        Ok(Json(Renewed {
            renewed: renewal.renewed,
            incompatible: renewal.incompatible,
            skipped: renewal.skipped,
            container,
        }))
    })
    .await
}

async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = ContainerId(id);
        store.container(id)?;
        let jobs = chosen_jobs(store, Origin::Container(id), None)?;
        // The jobs leave tombstones, so that an agent running one still gets its success
        // recorded; housekeeping purges them later.
        store.apply(&ChangeSet {
            changes: vec![Change::DeleteContainer {
                id,
                jobs: jobs.iter().map(|job| (job.id, job.revision)).collect(),
                at: now,
            }],
        })?;
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
        let store = state.store().as_ref();
        let id = ContainerId(id);
        let container = store.container(id)?;
        let summary = store.job_summary(Origin::Container(id))?;
        Ok(Json(container_statistics_of(&container, &summary, now)))
    })
    .await
}
