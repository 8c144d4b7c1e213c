//! The admin API under `/api/v1`: JSON over HTTP, bearer-token authenticated.
//!
//! One file per resource. Every handler decodes, reads the clock once, runs its store calls and
//! core calls off the async threads (`blocking`) and encodes. Errors are [`ApiError`]s:
//! `{"error": {"code", "message", "field", …}}` with 400 (invalid input), 401, 403 (a read-only
//! token), 404, 405, 409, 413, 415, 500, 503 or 507; [`json_errors`] gives that shape to the errors made below the handlers.
//! Edits are JSON merge patches (`patch.rs`); bodies are read whole before anything answers
//! (`extract::read_whole_body`), except a payload upload's, which is streamed to disk, bounded
//! by `--max-payload-size` rather than the 64 MiB body limit (`packages.rs`).
//!
//! Every change of data goes through the engine ([`oco_core::engine::Engine`], `engine`
//! over the server's store): it reads what the change needs, decides, writes with its
//! preconditions and retries a lost race, and re-evaluates the deployment rules the change
//! concerns, undoing the write if that fails. Its errors become [`ApiError`]s
//! (`From<EngineError>`), which log what became of an undone change.

mod assignments;
mod computers;
mod containers;
mod error;
mod extract;
mod groups;
mod housekeeping;
mod jobs;
mod openapi;
mod packages;
mod patch;
mod policy;
mod rules;
pub(crate) mod tokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use oco_core::engine::{Engine, EngineOptions};
use oco_core::model::MAX_LIST_ENTRIES;
use oco_core::store::{Page, Store, StoreResult, TokenAccess};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use extract::PageQuery;

pub(crate) use error::{ApiError, ApiResult};
pub(crate) use extract::Paged;

/// The admin routes, relative to `/api/v1`, behind the admin token of `state`, and the OpenAPI
/// document that describes them at `/openapi.json`, open to all.
///
/// Every route is registered through `utoipa_axum`'s `routes!` from its handler's annotation
/// (see [`openapi`]), so that the router and the document are made by the same calls.
///
/// # Panics
///
/// If the document does not render as JSON; it is plain data and always does.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let (router, api) = OpenApiRouter::new()
        .merge(computers::routes())
        .merge(groups::routes())
        .merge(packages::routes())
        .merge(assignments::routes())
        .merge(containers::routes())
        .merge(rules::routes())
        .merge(jobs::routes())
        .merge(housekeeping::routes())
        .merge(tokens::routes())
        .fallback(|| async { ApiError::not_found("no such admin API route") })
        .layer(middleware::from_fn(extract::read_whole_body))
        .merge(packages::payload_routes())
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(openapi::routes())
        .split_for_parts();
    #[allow(clippy::expect_used)] // The document is plain data: it always renders.
    let document = openapi::Document::finish(api).expect("the OpenAPI document renders as JSON");
    router
        .route_layer(middleware::from_fn(crate::observe::matched_route))
        .layer(Extension(document))
}

/// The path the admin API is served under.
pub(crate) const PREFIX: &str = "/api/v1";

/// Gives every error response under [`PREFIX`] the JSON error shape.
///
/// Handlers and extractors answer [`ApiError`]s themselves; this catches the responses made
/// below them, whose bodies are empty or plain text: routing's 404 (a path the nested router
/// never sees, such as `/api/v1/`) and 405, and the body limit's 413. It sits on the whole app
/// because only there does it see the first of these; the agent endpoint, outside the prefix,
/// keeps the plain-text errors the OCO agent expects. Headers other than the body's own (an
/// `Allow` of a 405) are kept.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let admin = path
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let response = next.run(request).await;
    let status = response.status();
    if !admin
        || !(status.is_client_error() || status.is_server_error())
        || extract::is_json(response.headers())
    {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut answer = ApiError::from_status(status).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// Refuses requests without a stored admin token (401), and requests of a read-only token that
/// are not `GET` or `HEAD` (403). The response names the token for the access log.
///
/// The presented token is hashed and looked up by its digest among the stored tokens, as read
/// at most a second ago ([`tokens::TokenCache`]): a flood of wrong tokens reads the database at
/// most once a second, and what is compared is a SHA-256 digest, so the time a comparison takes
/// tells nothing about the secret.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .filter(|token| !token.is_empty())
        .map(tokens::digest);
    let token = match presented {
        Some(digest) => state.admin_tokens().find(&state, &digest).await?,
        None => None,
    };
    match token {
        Some(token) => {
            let name = crate::observe::TokenName(token.name.as_str().into());
            let reads = matches!(*request.method(), Method::GET | Method::HEAD);
            let mut response = if token.access == TokenAccess::ReadOnly && !reads {
                extract::discard(request.into_body(), crate::BODY_LIMIT).await;
                ApiError::read_only(token.name.as_str()).into_response()
            } else {
                next.run(request).await
            };
            response.extensions_mut().insert(name);
            Ok(response)
        }
        None => {
            if let Some(suppressed) = state.log_refused_token() {
                tracing::warn!(
                    "refused an admin request to {} {}: {}{}",
                    request.method(),
                    request
                        .extensions()
                        .get::<axum::extract::OriginalUri>()
                        .map_or_else(|| request.uri().path(), |uri| uri.path()),
                    if presented.is_some() {
                        "the token is not valid"
                    } else {
                        "no bearer token"
                    },
                    crate::observe::suppressed_note(suppressed)
                );
            }
            // Read what the client sent before refusing, so that the refusal is not lost to a
            // reset; dropped as it arrives, since nobody vouches for it.
            extract::discard(request.into_body(), crate::BODY_LIMIT).await;
            Err(ApiError::unauthorized())
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110, section 11.1), and one or more spaces separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' ').trim())
}

/// Runs `work` (store calls, core calls) on the blocking thread pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal("blocking task", &error))?
}

/// Runs heavy `work` (one that re-evaluates rules, deploys, renews, deletes a container or
/// computes statistics: it may read much) on the blocking thread pool once one of the
/// `--admin-heavy-concurrency` permits is free, so that a few such requests at once cannot
/// exhaust memory; a request that waits longer than the configured wait is refused with 503 and
/// `Retry-After`. The permit goes with the work: a client that gives up does not free it before
/// the work ends.
async fn heavy<T: Send + 'static>(
    gate: HeavyGate,
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let HeavyGate { permits, wait } = gate;
    let permit = tokio::time::timeout(wait, permits.acquire_owned())
        .await
        .map_err(|_| ApiError::busy(wait, wait.as_secs().clamp(1, 60)))?
        .map_err(|error| ApiError::internal("admin permits", &error))?;
    blocking(move || {
        let _permit = permit;
        work()
    })
    .await
}

/// What [`heavy`] waits on: the permits of heavy admin operations and how long to wait.
struct HeavyGate {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

impl HeavyGate {
    fn of(state: &AppState) -> Self {
        HeavyGate {
            permits: state.admin_heavy().clone(),
            wait: state.options().admin_heavy_wait,
        }
    }
}

/// The engine over the server's store, with its settings: what handlers call to change data.
fn engine(state: &AppState) -> Engine<Arc<dyn Store>> {
    Engine::with_options(
        state.store().clone(),
        EngineOptions::default().with_settings(*state.settings()),
    )
}

/// One page of a store listing, as `GET /<resources>` answers it: `list` reads the page the query
/// asks for with one item more (to know whether there is a next page), `id` gives an item's id.
async fn list_page<T: Send + 'static>(
    state: AppState,
    query: &PageQuery,
    list: fn(&dyn Store, Page) -> StoreResult<Vec<T>>,
    id: fn(&T) -> i64,
) -> ApiResult<Json<Paged<T>>> {
    let (page, limit) = (query.probe()?, query.limit()?);
    blocking(move || {
        let items = list(state.store().as_ref(), page)?;
        Ok(Json(Paged::of(items, limit, id)))
    })
    .await
}

/// 400 naming `field` when a list in a request has more than [`MAX_LIST_ENTRIES`] entries.
pub(super) fn check_entries(field: &str, count: usize) -> Result<(), error::ApiError> {
    if count > MAX_LIST_ENTRIES {
        return Err(error::ApiError::invalid(
            field,
            format!("must have at most {MAX_LIST_ENTRIES} entries, got {count}"),
        ));
    }
    Ok(())
}
