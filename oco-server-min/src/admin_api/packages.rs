//! Package families, packages (metadata), and package payloads (zip archives).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use oco_core::model::{
    Compatibility, FamilyId, Name, Package, PackageFamily, PackageId, PostAction, Procedure,
    SuccessCodes, UpgradeBehavior,
};
use oco_core::rules::RuleEvent;
use oco_core::store::Store;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged, RawBody};
use super::{blocking, change_with_rules, list_page};
use crate::payloads::PartialPayload;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/package-families", get(list_families).post(create_family))
        .route("/package-families/{id}", get(family))
        .route("/packages", get(list_packages).post(create_package))
        .route("/packages/{id}", get(package).patch(update_package))
}

/// The payload routes: the upload reads its own body (it is to be streamed to disk), so these
/// are not behind [`super::extract::read_whole_body`]; the download and a 405 are.
pub(super) fn payload_routes() -> Router<AppState> {
    Router::new().route(
        "/packages/{id}/payload",
        get(download_payload)
            .layer(axum::middleware::from_fn(super::extract::read_whole_body))
            .put(upload_payload),
    )
}

/// A family to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFamily {
    name: String,
}

/// A procedure in a request: success codes as text (absent: `0`; `*`: any code; empty: a 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcedureInput {
    #[serde(default)]
    command: String,
    #[serde(default = "zero")]
    success_codes: String,
    #[serde(default)]
    post_action: PostAction,
}

fn zero() -> String {
    "0".into()
}

impl Default for ProcedureInput {
    fn default() -> Self {
        ProcedureInput {
            command: String::new(),
            success_codes: zero(),
            post_action: PostAction::None,
        }
    }
}

impl ProcedureInput {
    fn into_procedure(self, field: &str) -> ApiResult<Procedure> {
        let success_codes: SuccessCodes = self
            .success_codes
            .parse()
            .map_err(|e: oco_core::model::InvalidField| ApiError::from(e.within(field)))?;
        Ok(Procedure {
            command: self.command,
            success_codes,
            post_action: self.post_action,
        })
    }
}

/// Compatibility lists in a request; absent lists are empty (anything fits).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompatibilityInput {
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    os_version: Vec<String>,
    #[serde(default)]
    architecture: Vec<String>,
}

impl From<CompatibilityInput> for Compatibility {
    fn from(input: CompatibilityInput) -> Self {
        Compatibility {
            os: input.os,
            os_version: input.os_version,
            architecture: input.architecture,
        }
    }
}

/// A package to create. Its payload is uploaded separately.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePackage {
    family: FamilyId,
    version: String,
    #[serde(default)]
    install: ProcedureInput,
    #[serde(default)]
    uninstall: ProcedureInput,
    #[serde(default)]
    download_for_uninstall: bool,
    #[serde(default)]
    upgrade_behavior: UpgradeBehavior,
    #[serde(default)]
    compatibility: CompatibilityInput,
    #[serde(default)]
    dependencies: Vec<PackageId>,
}

/// Fields to change; absent ones stay (procedures and compatibility are replaced whole).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePackage {
    version: Option<String>,
    install: Option<ProcedureInput>,
    uninstall: Option<ProcedureInput>,
    download_for_uninstall: Option<bool>,
    upgrade_behavior: Option<UpgradeBehavior>,
    compatibility: Option<CompatibilityInput>,
    dependencies: Option<Vec<PackageId>>,
}

/// 404 naming `dependencies[i]` for an unknown dependency.
fn check_dependencies(store: &dyn Store, dependencies: &[PackageId]) -> ApiResult<()> {
    for (i, &dependency) in dependencies.iter().enumerate() {
        store
            .package(dependency)
            .map_err(|error| ApiError::from(error).with_field(format!("dependencies[{i}]")))?;
    }
    Ok(())
}

async fn create_family(
    State(state): State<AppState>,
    Body(input): Body<CreateFamily>,
) -> ApiResult<(StatusCode, Json<PackageFamily>)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        let family = state.store().create_family(name)?;
        Ok((StatusCode::CREATED, Json(family)))
    })
    .await
}

async fn list_families(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<PackageFamily>>> {
    list_page(
        state,
        &query,
        |store, page| store.list_families(page),
        |f| f.id.0,
    )
    .await
}

async fn family(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PackageFamily>> {
    blocking(move || Ok(Json(state.store().family(FamilyId(id))?))).await
}

async fn create_package(
    State(state): State<AppState>,
    Body(input): Body<CreatePackage>,
) -> ApiResult<(StatusCode, Json<Package>)> {
    let package = Package {
        id: PackageId(0),
        family: input.family,
        version: Name::new("version", &input.version)?,
        install: input.install.into_procedure("install")?,
        uninstall: input.uninstall.into_procedure("uninstall")?,
        has_payload: false,
        download_for_uninstall: input.download_for_uninstall,
        upgrade_behavior: input.upgrade_behavior,
        compatibility: input.compatibility.into(),
        dependencies: input.dependencies,
    };
    blocking(move || {
        let store = state.store().as_ref();
        store
            .family(package.family)
            .map_err(|error| ApiError::from(error).with_field("family"))?;
        check_dependencies(store, &package.dependencies)?;
        // A new package is in no package group: no rule wants it yet.
        let package = store
            .create_package(package)
            .map_err(|error| ApiError::from(error).with_field("version"))?;
        Ok((StatusCode::CREATED, Json(package)))
    })
    .await
}

async fn list_packages(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<Package>>> {
    list_page(
        state,
        &query,
        |store, page| store.list_packages(page),
        |p| p.id.0,
    )
    .await
}

async fn package(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Package>> {
    blocking(move || Ok(Json(state.store().package(PackageId(id))?))).await
}

async fn update_package(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<UpdatePackage>,
) -> ApiResult<Json<Package>> {
    let version = input
        .version
        .as_deref()
        .map(|text| Name::new("version", text))
        .transpose()?;
    let install = input
        .install
        .map(|p| p.into_procedure("install"))
        .transpose()?;
    let uninstall = input
        .uninstall
        .map(|p| p.into_procedure("uninstall"))
        .transpose()?;
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = PackageId(id);
        let old = store.package(id)?;
        let mut new = old.clone();
        if let Some(version) = version {
            new.version = version;
        }
        if let Some(install) = install {
            new.install = install;
        }
        if let Some(uninstall) = uninstall {
            new.uninstall = uninstall;
        }
        if let Some(flag) = input.download_for_uninstall {
            new.download_for_uninstall = flag;
        }
        if let Some(behavior) = input.upgrade_behavior {
            new.upgrade_behavior = behavior;
        }
        if let Some(compatibility) = input.compatibility {
            new.compatibility = compatibility.into();
        }
        if let Some(dependencies) = input.dependencies {
            check_dependencies(store, &dependencies)?;
            new.dependencies = dependencies;
        }
        save_package(store, &old, &new, now)?;
        Ok(Json(new))
    })
    .await
}

/// Replaces `old` with `new` and re-evaluates the rules that have it.
fn save_package(
    store: &dyn Store,
    old: &Package,
    new: &Package,
    now: oco_core::chrono::DateTime<oco_core::chrono::Utc>,
) -> ApiResult<()> {
    let event = RuleEvent::PackageEdited { package: new.id };
    let before = crate::rules::world_for(store, &event)?;
    change_with_rules(
        store,
        &before,
        now,
        || {
            store
                .update_package(new)
                .map_err(|error| ApiError::from(error).with_field("version"))
        },
        |()| event.clone(),
        |()| store.update_package(old),
    )?;
    Ok(())
}

async fn upload_payload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    RawBody(bytes): RawBody,
) -> ApiResult<Json<Package>> {
    // Local file header, or the end record of an empty archive.
    if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
        return Err(ApiError::invalid(
            "payload",
            "the body must be a zip archive (raw bytes)",
        ));
    }
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = PackageId(id);
        let old = store.package(id)?;
        // The file is durably in place before the row says so (see `crate::payloads`): a crash
        // in between leaves a file no row points to, never a row without its file.
        let mut partial = PartialPayload::create(&state.payload_path(id))
            .map_err(|error| ApiError::internal("writing a payload", &error))?;
        partial
            .write(&bytes)
            .and_then(|()| partial.commit())
            .map_err(|error| ApiError::internal("writing a payload", &error))?;
        let mut new = old.clone();
        new.has_payload = true;
        if !old.has_payload {
            save_package(store, &old, &new, now)?;
        }
        Ok(Json(new))
    })
    .await
}

async fn download_payload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    blocking(move || {
        let id = PackageId(id);
        let package = state.store().package(id)?;
        if !package.has_payload {
            return Err(ApiError::not_found(format!("package {id} has no payload")));
        }
        let bytes = match std::fs::read(state.payload_path(id)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("admin API: package {id} has a payload, but its file is missing");
                return Err(ApiError::not_found(format!(
                    "the payload file of package {id} is missing on the server; upload it again"
                ))
                .with_field("payload"));
            }
            Err(error) => return Err(ApiError::internal("reading a payload", &error)),
        };
        Ok(([(header::CONTENT_TYPE, "application/zip")], bytes))
    })
    .await
}
