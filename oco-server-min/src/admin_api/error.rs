//! The admin API's errors: one JSON shape, a status per kind of mistake.

use std::ops::Range;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oco_core::constraint::ParseError;
use oco_core::deploy::{DeployError, Entity};
use oco_core::engine::{EngineError, Undo};
use oco_core::model::InvalidField;
use oco_core::rules::Conflict;
use oco_core::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered as `{"error": {"code", "message", "field"?, "position"?, "rendered"?,
/// "conflicts"?}}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Box<ErrorBody>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

/// An error response's body: `{"error": {…}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorResponse {
    error: Box<ErrorBody>,
}

/// The `error` object of an error response.
#[derive(Debug, Serialize, ToSchema)]
struct ErrorBody {
    /// What kind of mistake: `malformed`, `invalid`, `invalid-constraint`, `not-found`,
    /// `duplicate`, `conflict`, `family-conflict`, `not-assigned`, `no-jobs`, `unauthorized`,
    /// `forbidden`, `method-not-allowed`, `too-large`, `unsupported-media-type`, `busy`,
    /// `insufficient-storage`, `write-failed`, `internal`.
    code: &'static str,
    /// What is wrong, for a person.
    message: String,
    /// The field concerned, as a path (`container.policy.ip_ranges`, `macs[1]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// For an `invalid-constraint`: the byte span of the mistake in the field's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<Position>,
    /// For an `invalid-constraint`: the message, the text and a caret line under the mistake.
    #[serde(skip_serializing_if = "Option::is_none")]
    rendered: Option<String>,
    /// For a `family-conflict`: the conflicts the change would add (a rule being created
    /// appears as rule 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    conflicts: Option<Vec<Conflict>>,
}

/// A byte span of the field's text.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub(crate) struct Position {
    /// The byte offset where the span starts.
    pub(crate) start: usize,
    /// The byte offset where the span ends (exclusive).
    pub(crate) end: usize,
}

/// The result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                code,
                message: message.into(),
                field: None,
                position: None,
                rendered: None,
                conflicts: None,
            }),
            retry_after: None,
        }
    }

    /// The same error, naming `field`.
    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    /// 400: invalid input, naming the field.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    /// 400: a body or query that does not decode (serde's message, with the path).
    pub(crate) fn malformed(field: Option<String>, message: impl Into<String>) -> Self {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "malformed", message);
        error.body.field = field.filter(|path| !path.is_empty() && path != ".");
        error
    }

    /// 400: a constraint that does not parse, with the span and the caret rendering.
    pub(crate) fn constraint(field: impl Into<String>, input: &str, error: &ParseError) -> Self {
        let span: Range<usize> = error.span();
        let mut api = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-constraint",
            error.to_string(),
        )
        .with_field(field);
        api.body.position = Some(Position {
            start: span.start,
            end: span.end,
        });
        api.body.rendered = Some(error.render(input));
        api
    }

    /// 404: an unknown id.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 409: the change would break a rule of the data (a dependency cycle, …), said in `message`.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409: the change would make versions of one family remove each other forever.
    pub(crate) fn family_conflicts(conflicts: Vec<Conflict>) -> Self {
        let mut error = ApiError::new(
            StatusCode::CONFLICT,
            "family-conflict",
            "the change would make rules install two versions of one package family that remove \
             each other; see `conflicts` (a rule being created appears as rule 0)",
        );
        error.body.conflicts = Some(conflicts);
        error
    }

    /// 401: no admin token, or a wrong one.
    pub(crate) fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required: `Authorization: Bearer <token>`",
        )
    }

    /// 403: a read-only token asked to change something.
    pub(crate) fn read_only(name: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token `{name}` is read-only: it may only GET"),
        )
    }

    /// 503 with `Retry-After: retry_after` seconds: heavy admin operations are all busy and the
    /// request waited `waited` for its turn.
    pub(crate) fn busy(waited: std::time::Duration, retry_after: u64) -> Self {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "the server is busy with other heavy admin operations (re-evaluating rules, \
                 deploying, statistics) and this one waited {} s for its turn; nothing was \
                 changed, try again later",
                waited.as_secs_f64()
            ),
        );
        error.retry_after = Some(retry_after);
        error
    }

    /// 500: logged here; the client learns only that the server failed.
    pub(crate) fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("admin API: {context}: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; nothing was changed (see the server log)",
        )
    }

    /// 413: a body over [`crate::BODY_LIMIT`].
    pub(crate) fn too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!(
                "the body is over the limit of {} MiB",
                crate::BODY_LIMIT / (1024 * 1024)
            ),
        )
    }

    /// 413: a payload upload over `limit` bytes (`--max-payload-size`).
    pub(crate) fn payload_too_large(limit: u64) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the payload is over the limit of {limit} bytes (--max-payload-size)"),
        )
    }

    /// 507: the disk of the payload directory is full; logged here.
    pub(crate) fn insufficient_storage(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("admin API: {context}: {error}");
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient-storage",
            format!("{context}: the server's disk is full; nothing was changed"),
        )
    }

    /// 500: a file could not be written; logged here, and the message says what was being
    /// written.
    pub(crate) fn write_failed(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("admin API: {context}: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write-failed",
            format!("{context} failed on the server (see the server log); nothing was changed"),
        )
    }

    /// 415: a JSON route given a body of another content type.
    pub(crate) fn unsupported_media_type() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        )
    }

    /// The error for `status` when nothing more is known (a response made below the handlers:
    /// routing, body limits): its own code and message for the statuses the stack produces, the
    /// status's reason otherwise.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::not_found("no such admin API route"),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "method-not-allowed",
                "the route does not take this method; the `Allow` header lists those it takes",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(),
            StatusCode::UNAUTHORIZED => ApiError::unauthorized(),
            _ if status.is_server_error() => ApiError::new(
                status,
                "internal",
                "the server failed; nothing was changed (see the server log)",
            ),
            _ => ApiError::new(
                status,
                "bad-request",
                status
                    .canonical_reason()
                    .unwrap_or("the request was refused"),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{error}; the data changed meanwhile, try again"),
            ),
            StoreError::Duplicate { what, .. } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", error.to_string())
                    .with_field(*what)
            }
            StoreError::Invalid { reason } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", reason.clone())
            }
            _ => ApiError::internal("store", &error),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(error: InvalidField) -> Self {
        ApiError::invalid(error.field, error.reason)
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        let message = error.to_string();
        match error {
            DeployError::Unknown { what, .. } => {
                ApiError::not_found(message).with_field(match what {
                    Entity::Computer => "computers",
                    Entity::ComputerGroup => "computer_groups",
                    Entity::Package => "packages",
                    Entity::PackageGroup => "package_groups",
                })
            }
            DeployError::DependencyCycle { .. } | DeployError::ConflictingVersions { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message).with_field("packages")
            }
            DeployError::NotAssigned { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not-assigned", message)
                    .with_field("assignments")
            }
            DeployError::NoJobs => ApiError::new(StatusCode::BAD_REQUEST, "no-jobs", message),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => error.into(),
            EngineError::Reference { field, source } => match source {
                StoreError::Invalid { reason } => ApiError::invalid(field, reason),
                other => ApiError::from(other).with_field(field),
            },
            EngineError::Invalid(error) => error.into(),
            EngineError::Deploy(error) => error.into(),
            EngineError::DependencyCycle(cycle) => {
                ApiError::conflict(cycle.to_string()).with_field("dependencies")
            }
            EngineError::FamilyConflicts(conflicts) => ApiError::family_conflicts(conflicts),
            EngineError::NotAssigned { computer, package } => ApiError::not_found(format!(
                "package {package} is not assigned to computer {computer}"
            )),
            EngineError::RuleBeingDeleted(rule) => {
                ApiError::not_found(format!("rule {rule} is being deleted"))
            }
            EngineError::UnknownJob(job) => ApiError::not_found(format!("job {job} not found")),
            EngineError::Contended { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{error}; the data kept changing meanwhile, try again"),
            ),
            EngineError::Reevaluation { source, undo } => {
                log_undo(&source, &undo);
                source.into()
            }
            other => ApiError::internal("engine", &other),
        }
    }
}

/// Logs a change whose rule re-evaluation failed, and what became of it.
fn log_undo(source: &StoreError, undo: &Undo) {
    tracing::warn!("admin API: re-evaluating rules after a change failed: {source}");
    match undo {
        Undo::Undone { repair: Ok(_) } => {
            tracing::warn!("admin API: the change was undone and its rules repaired");
        }
        Undo::Undone { repair: Err(error) } => {
            tracing::error!("admin API: re-evaluating rules after an undone change failed: {error}")
        }
        Undo::Failed(error) => {
            tracing::error!("admin API: undoing a change failed: {error}; the change stands");
        }
        Undo::NotPossible => tracing::warn!(
            "admin API: the change cannot be undone; the next change of its rules evaluates \
             them again"
        ),
        _ => tracing::error!("admin API: the change's undo: {undo:?}"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(ErrorResponse { error: self.body })).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
