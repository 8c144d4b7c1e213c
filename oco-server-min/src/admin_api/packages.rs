//! Package families, packages (metadata), and package payloads (zip archives).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use oco_core::engine::EngineError;
use oco_core::model::{
    check_text, Compatibility, FamilyId, Name, Package, PackageFamily, PackageId, Payload,
    PostAction, Procedure, SuccessCodes, UpgradeBehavior, MAX_COMMAND_CHARS, MAX_LABEL_CHARS,
};
use oco_core::store::{NewPackage, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{
    BadRequest, Busy, Conflict, InsufficientStorage, Internal, MergePatch, NotFound,
    UnsupportedMediaType, ZipArchive,
};
use super::patch::{null_is_default, Patch};
use super::{blocking, check_entries, engine, heavy, list_page, HeavyGate};
use crate::observe::Created;
use crate::payloads::{PayloadWriter, Written};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_families, create_family))
        .routes(routes!(family))
        .routes(routes!(list_packages, create_package))
        .routes(routes!(package, update_package))
}

/// The payload routes: the upload streams its own body to disk, bounded by
/// `--max-payload-size` and not by the admin API's body limit, so it is not behind
/// [`super::extract::read_whole_body`]; the download and a 405 are. (The download is
/// registered last: the route's 405 is the fallback of the method router registered last.)
pub(super) fn payload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_payload).layer(axum::extract::DefaultBodyLimit::disable()))
        .routes(
            routes!(download_payload)
                .layer(axum::middleware::from_fn(super::extract::read_whole_body)),
        )
}

/// A family to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateFamily {
    /// Unique among families: one line, not blank, at most 255 characters.
    #[schema(example = "Firefox")]
    name: String,
}

/// A procedure in a request: success codes as text (absent or `null`: `0`; `*`: any code;
/// empty: a 400).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProcedureInput {
    /// The command line the agent runs, at most 32,767 characters; absent or `null`: empty.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    command: String,
    /// Return codes that count as success: comma-separated integers and inclusive ranges
    /// (`0, 3010`, `-5--1`), or `*` for every code; absent or `null`: `0`.
    #[serde(default)]
    #[schema(example = "0, 3010")]
    success_codes: Option<String>,
    /// What the agent does after success; absent or `null`: `none`.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
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
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompatibilityInput {
    /// Operating systems; entries of one line of at most 255 characters, at most 1,000.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    os: Vec<String>,
    /// Operating system versions.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    os_version: Vec<String>,
    /// Architectures.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
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

/// A package to create, and a package's editable form (a `PATCH` is a JSON merge patch of
/// it). Its payload is uploaded separately. Absent or `null` fields take their defaults.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PackageInput {
    /// The family; it cannot change once created.
    family: FamilyId,
    /// The version, unique within the family: one line, not blank, at most 255 characters.
    #[schema(example = "1.0")]
    version: String,
    /// How to install it; absent or `null`: an empty command.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    install: ProcedureInput,
    /// How to uninstall it; absent or `null`: an empty command.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    uninstall: ProcedureInput,
    /// Whether uninstall jobs download the payload too.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    download_for_uninstall: bool,
    /// What installing it means for other installed versions of the family.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    upgrade_behavior: UpgradeBehavior,
    /// Which computers it may be installed on; absent or `null`: any.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    compatibility: CompatibilityInput,
    /// Packages that must be installed first, in order; at most 1,000.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    dependencies: Vec<PackageId>,
}

/// A `PATCH` body: a JSON merge patch of [`PackageInput`].
type PackagePatch = MergePatch<PackageInput>;

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

/// Creates a package family.
#[utoipa::path(
    post,
    path = "/package-families",
    operation_id = "create_package_family",
    tag = "packages",
    request_body = CreateFamily,
    responses(
        (status = 201, description = "The family created.", body = PackageFamily),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
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

/// Lists package families by id.
#[utoipa::path(
    get,
    path = "/package-families",
    operation_id = "list_package_families",
    tag = "packages",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of families.", body = Paged<PackageFamily>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
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

/// Shows a package family.
#[utoipa::path(
    get,
    path = "/package-families/{id}",
    operation_id = "get_package_family",
    tag = "packages",
    params(("id" = i64, Path, description = "The family's id.", example = 1)),
    responses(
        (status = 200, description = "The family.", body = PackageFamily),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn family(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PackageFamily>> {
    blocking(move || Ok(Json(state.store().family(FamilyId(id))?))).await
}

/// Creates a package (a version of a family), without a payload.
#[utoipa::path(
    post,
    path = "/packages",
    operation_id = "create_package",
    tag = "packages",
    request_body = PackageInput,
    responses(
        (status = 201, description = "The package created.", body = Package),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
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

/// Lists packages by id.
#[utoipa::path(
    get,
    path = "/packages",
    operation_id = "list_packages",
    tag = "packages",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of packages.", body = Paged<Package>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
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

/// Shows a package.
#[utoipa::path(
    get,
    path = "/packages/{id}",
    operation_id = "get_package",
    tag = "packages",
    params(("id" = i64, Path, description = "The package's id.", example = 1)),
    responses(
        (status = 200, description = "The package.", body = Package),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn package(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Package>> {
    blocking(move || Ok(Json(state.store().package(PackageId(id))?))).await
}

/// Applies a merge patch to the package; re-evaluates the rules concerned.
#[utoipa::path(
    patch,
    path = "/packages/{id}",
    operation_id = "update_package",
    tag = "packages",
    params(("id" = i64, Path, description = "The package's id.", example = 1)),
    request_body(content(
        (PackagePatch = "application/merge-patch+json"),
        (PackagePatch = "application/json"),
    )),
    responses(
        (status = 200, description = "The package changed.", body = Package),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
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
#[utoipa::path(
    put,
    path = "/packages/{id}/payload",
    operation_id = "upload_package_payload",
    tag = "packages",
    params(("id" = i64, Path, description = "The package's id.", example = 1)),
    request_body(
        description = "The zip archive, raw bytes (any `Content-Type`), at most \
                       `--max-payload-size` bytes (16 GiB by default).",
        content = ZipArchive,
        content_type = "application/zip",
    ),
    responses(
        (status = 200, description = "The package, with the payload's size and digest.", body = Package),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
        (status = 507, response = InsufficientStorage),
    ),
)]
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

/// Downloads a package's payload archive.
#[utoipa::path(
    get,
    path = "/packages/{id}/payload",
    operation_id = "download_package_payload",
    tag = "packages",
    params(("id" = i64, Path, description = "The package's id.", example = 1)),
    responses(
        (status = 200, description = "The zip archive.", body = ZipArchive, content_type = "application/zip",
         headers(("content-length" = u64, description = "The archive's length in bytes."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
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
