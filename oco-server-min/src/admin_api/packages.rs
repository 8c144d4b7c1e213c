//! Package families, packages (metadata), and package payloads (zip archives).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use oco_core::engine::EngineError;
use oco_core::model::{
    check_text, Compatibility, FamilyId, Name, Package, PackageFamily, PackageId, Payload,
    PostAction, Procedure, SuccessCodes, UpgradeBehavior, MAX_COMMAND_CHARS, MAX_LABEL_CHARS,
};
use oco_core::store::{NewPackage, StoreError};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::{blocking, check_entries, engine, heavy, list_page, HeavyGate};
use crate::observe::Created;
use crate::payloads::{PayloadWriter, Written};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/package-families", get(list_families).post(create_family))
        .route("/package-families/{id}", get(family))
        .route("/packages", get(list_packages).post(create_package))
        .route("/packages/{id}", get(package).patch(update_package))
}

/// The payload routes: the upload streams its own body to disk, bounded by
/// `--max-payload-size` and not by the admin API's body limit, so it is not behind
/// [`super::extract::read_whole_body`]; the download and a 405 are.
pub(super) fn payload_routes() -> Router<AppState> {
    Router::new().route(
        "/packages/{id}/payload",
        get(download_payload)
            .layer(axum::middleware::from_fn(super::extract::read_whole_body))
            .put(upload_payload)
            .layer(axum::extract::DefaultBodyLimit::disable()),
    )
}

/// A family to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFamily {
    name: String,
}

/// A procedure in a request: success codes as text (absent or `null`: `0`; `*`: any code;
/// empty: a 400).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcedureInput {
    #[serde(default, deserialize_with = "null_is_default")]
    command: String,
    #[serde(default)]
    success_codes: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    post_action: PostAction,
}

impl From<&Procedure> for ProcedureInput {
    fn from(procedure: &Procedure) -> Self {
        ProcedureInput {
            command: procedure.command.clone(),
            success_codes: Some(procedure.success_codes.to_string()),
            post_action: procedure.post_action,
        }
    }
}

impl ProcedureInput {
    fn into_procedure(self, field: &str) -> ApiResult<Procedure> {
        let success_codes = match self.success_codes {
            Some(text) => text
                .parse()
                .map_err(|e: oco_core::model::InvalidField| ApiError::from(e.within(field)))?,
            None => SuccessCodes::zero(),
        };
        check_text(
            &format!("{field}.command"),
            &self.command,
            MAX_COMMAND_CHARS,
            true,
        )?;
        Ok(Procedure {
            command: self.command,
            success_codes,
            post_action: self.post_action,
        })
    }
}

/// Compatibility lists in a request; absent or `null` lists are empty (anything fits).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompatibilityInput {
    #[serde(default, deserialize_with = "null_is_default")]
    os: Vec<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    os_version: Vec<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    architecture: Vec<String>,
}

impl CompatibilityInput {
    /// The lists, each entry one line of at most [`MAX_LABEL_CHARS`].
    fn into_compatibility(self) -> ApiResult<Compatibility> {
        for (list, entries) in [
            ("os", &self.os),
            ("os_version", &self.os_version),
            ("architecture", &self.architecture),
        ] {
            check_entries(&format!("compatibility.{list}"), entries.len())?;
            for (i, entry) in entries.iter().enumerate() {
                check_text(
                    &format!("compatibility.{list}[{i}]"),
                    entry,
                    MAX_LABEL_CHARS,
                    false,
                )?;
            }
        }
        Ok(Compatibility {
            os: self.os,
            os_version: self.os_version,
            architecture: self.architecture,
        })
    }
}

impl From<&Compatibility> for CompatibilityInput {
    fn from(compatibility: &Compatibility) -> Self {
        CompatibilityInput {
            os: compatibility.os.clone(),
            os_version: compatibility.os_version.clone(),
            architecture: compatibility.architecture.clone(),
        }
    }
}

/// A package to create, and a package's editable form (see [`super::patch`]). Its payload is
/// uploaded separately. Absent or `null` fields take their defaults.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageInput {
    family: FamilyId,
    version: String,
    #[serde(default, deserialize_with = "null_is_default")]
    install: ProcedureInput,
    #[serde(default, deserialize_with = "null_is_default")]
    uninstall: ProcedureInput,
    #[serde(default, deserialize_with = "null_is_default")]
    download_for_uninstall: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    upgrade_behavior: UpgradeBehavior,
    #[serde(default, deserialize_with = "null_is_default")]
    compatibility: CompatibilityInput,
    #[serde(default, deserialize_with = "null_is_default")]
    dependencies: Vec<PackageId>,
}

impl From<&Package> for PackageInput {
    fn from(package: &Package) -> Self {
        PackageInput {
            family: package.family,
            version: package.version.as_str().to_owned(),
            install: ProcedureInput::from(&package.install),
            uninstall: ProcedureInput::from(&package.uninstall),
            download_for_uninstall: package.download_for_uninstall,
            upgrade_behavior: package.upgrade_behavior,
            compatibility: CompatibilityInput::from(&package.compatibility),
            dependencies: package.dependencies.clone(),
        }
    }
}

impl PackageInput {
    /// The package with these fields, keeping `id` and `payload`.
    fn into_package(self, id: PackageId, payload: Option<Payload>) -> ApiResult<Package> {
        Ok(Package {
            id,
            family: self.family,
            version: Name::new("version", &self.version)?,
            install: self.install.into_procedure("install")?,
            uninstall: self.uninstall.into_procedure("uninstall")?,
            payload,
            download_for_uninstall: self.download_for_uninstall,
            upgrade_behavior: self.upgrade_behavior,
            compatibility: self.compatibility.into_compatibility()?,
            dependencies: {
                check_entries("dependencies", self.dependencies.len())?;
                self.dependencies
            },
        })
    }
}

async fn create_family(
    State(state): State<AppState>,
    Body(input): Body<CreateFamily>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<PackageFamily>)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        let family = engine(&state).create_family(name)?;
        Ok((StatusCode::CREATED, Created::id(family.id), Json(family)))
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
    Body(input): Body<PackageInput>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<Package>)> {
    let package = input.into_package(PackageId(0), None)?;
    blocking(move || {
        let package = engine(&state)
            .create_package(NewPackage::from(package))
            .map_err(name_duplicate)?;
        Ok((StatusCode::CREATED, Created::id(package.id), Json(package)))
    })
    .await
}

/// A duplicate (family, version) names `version`; other errors are as they are.
fn name_duplicate(error: EngineError) -> ApiError {
    let duplicate = matches!(error, EngineError::Store(StoreError::Duplicate { .. }));
    let error = ApiError::from(error);
    if duplicate {
        error.with_field("version")
    } else {
        error
    }
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

/// Applies a merge patch to the package.
async fn update_package(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    patch: Patch,
) -> ApiResult<Json<Package>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let id = PackageId(id);
        let old = state.store().package(id)?;
        let new = patch
            .apply(&PackageInput::from(&old))?
            .into_package(id, old.payload)?;
        let changed = engine(&state)
            .update_package(new, now)
            .map_err(name_duplicate)?;
        Ok(Json(changed.value))
    })
    .await
}

/// Streams the body to a temporary file, hashing it, then checks it is a zip archive, puts it
/// in place and records its size and digest on the package (see [`crate::payloads`]).
///
/// Refused, it leaves the payload and the package as they were: 404 for an unknown package
/// (before the body is read), 413 over `--max-payload-size` (before the body is read when its
/// `Content-Length` says so), 400 for a body that is not a zip archive (naming why) or that was
/// cut off, 507 when the disk is full, 500 for another write error.
async fn upload_payload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    request: axum::extract::Request,
) -> ApiResult<Json<Package>> {
    let limit = state.options().max_payload_size;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let id = PackageId(id);
    {
        let state = state.clone();
        blocking(move || Ok(state.store().package(id)?)).await?;
    }
    let written = receive(&state, id, body, limit).await?;
    let now = state.clock().now();
    // A first payload changes what the package's jobs do (they download), so the rules are
    // re-evaluated: a heavy operation.
    heavy(HeavyGate::of(&state), move || {
        let checked = std::fs::File::open(written.partial.path())
            .and_then(crate::payloads::check_zip)
            .map_err(|error| ApiError::internal("reading a payload back", &error))?;
        if let Err(reason) = checked {
            return Err(ApiError::invalid("payload", reason.to_string()));
        }
        let payload = Payload::new(written.size, written.sha256);
        let store = state.store().as_ref();
        let _commits = crate::payloads::commit_lock();
        let old = store.package(id)?;
        // The file is durably in place before the row says so (see `crate::payloads`): a crash
        // in between leaves a file no row points to, or one the row gives another digest.
        let replaced = written
            .partial
            .commit()
            .map_err(|error| write_error("putting the payload in place", &error))?;
        match engine(&state).set_payload(id, Some(payload), now) {
            Ok(changed) => {
                replaced.keep();
                Ok(Json(changed.value))
            }
            Err(error) => {
                // Put the old file back only if the row is known to be as it was: a row with a
                // payload always has a file.
                match store.package(id) {
                    Ok(row) if row.payload == old.payload => replaced.undo(),
                    _ => replaced.keep(),
                }
                Err(error.into())
            }
        }
    })
    .await
}

/// Reads `body` into a [`PayloadWriter`] for `package`'s payload: the payload written whole,
/// or the error to answer (the temporary file removed).
async fn receive(
    state: &AppState,
    package: PackageId,
    mut body: axum::body::Body,
    limit: u64,
) -> ApiResult<Written> {
    use http_body_util::BodyExt;
    let mut writer = PayloadWriter::start(
        state.payload_path(package),
        state.options().payload_write_fault,
    );
    let mut size = 0u64;
    let mut head = Vec::with_capacity(ZIP_HEAD_LEN);
    loop {
        let chunk = match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue,
            },
            Some(Err(error)) => {
                writer.abort().await;
                tracing::info!(
                    "admin API: a payload upload of package {package} was cut off: {error}"
                );
                return Err(ApiError::invalid(
                    "payload",
                    format!("the upload was cut off before its end: {error}"),
                ));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            writer.abort().await;
            return Err(ApiError::payload_too_large(limit));
        }
        if head.len() < ZIP_HEAD_LEN {
            let wanted = (ZIP_HEAD_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            if head.len() == ZIP_HEAD_LEN && !is_zip_head(&head) {
                writer.abort().await;
                return Err(not_a_zip_head());
            }
        }
        if writer.write(chunk).await.is_err() {
            // The writer stopped on an error, which `finish` returns.
            break;
        }
    }
    if head.len() < ZIP_HEAD_LEN {
        writer.abort().await;
        return Err(not_a_zip_head());
    }
    writer
        .finish()
        .await
        .map_err(|error| write_error("writing the payload", &error))
}

/// How many bytes [`is_zip_head`] looks at.
const ZIP_HEAD_LEN: usize = 4;

/// Whether an upload starts as a zip archive does: a local file header, or the end record of an
/// empty archive.
fn is_zip_head(head: &[u8]) -> bool {
    head == b"PK\x03\x04" || head == b"PK\x05\x06"
}

fn not_a_zip_head() -> ApiError {
    ApiError::invalid(
        "payload",
        "not a zip archive: the body must be a zip archive (raw bytes), which starts with `PK`",
    )
}

/// 507 for a full disk (or quota), 500 naming `context` for another error.
fn write_error(context: &str, error: &std::io::Error) -> ApiError {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            ApiError::insufficient_storage(context, error)
        }
        _ => ApiError::write_failed(context, error),
    }
}

async fn download_payload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<axum::response::Response> {
    let id = PackageId(id);
    let package = {
        let state = state.clone();
        blocking(move || Ok(state.store().package(id)?)).await?
    };
    if !package.has_payload() {
        return Err(ApiError::not_found(format!("package {id} has no payload")));
    }
    let (length, body) = match crate::payloads::open_stream(&state.payload_path(id)).await {
        Ok(opened) => opened,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("admin API: package {id} has a payload, but its file is missing");
            return Err(ApiError::not_found(format!(
                "the payload file of package {id} is missing on the server; upload it again"
            ))
            .with_field("payload"));
        }
        Err(error) => return Err(ApiError::internal("reading a payload", &error)),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}
