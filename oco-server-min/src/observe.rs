//! What an operator sees of the server: a request id on every request, one access-log line per
//! request, and the health endpoints a load balancer or an orchestrator probes.
//!
//! - **Request ids.** Every request gets an id, returned in the `X-Request-Id` response header
//!   and carried by every log line written while the request is handled (a `request` span; for
//!   agent requests, the hot path, the span is DEBUG and the agent API's lines at INFO and
//!   above name the id as their `request` field). A
//!   proxy's id in the request's own `X-Request-Id` is kept when it is 1 to 64 characters of
//!   letters, digits, `-`, `_` and `.` (so that one id follows a request through the proxy's log
//!   and ours); anything else is replaced, so a client cannot write arbitrary text into the log.
//! - **Access log.** One line per request when it is answered (target
//!   `oco_server_min::access`): method, path, status, latency in milliseconds, request id, and
//!   for admin requests the admin token's name. Admin requests at INFO; agent requests and
//!   health probes at DEBUG (thousands a second would drown everything else).
//! - **Audit log.** One more line per successful admin write (target `oco_server_min::audit`,
//!   INFO): the token's name, the resource, its id (the one created, for a creation) and the
//!   operation (`create`, `update`, `delete`, or the method and the action in the path, such
//!   as `post renew`).
//! - **`/healthz`** answers 200 while the process serves requests; **`/readyz`** answers 200
//!   when the store answers a small read and its schema is the one this build migrates to, 503
//!   naming what is wrong otherwise. Both are unauthenticated. A readiness result is reused for
//!   one second, and one check runs at a time (one that timed out still counts until its read
//!   returns), so probing it in a loop costs the database at most one small read a second and
//!   a hung database one thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument;

use crate::AppState;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a request.
const MAX_REQUEST_ID: usize = 64;

/// How long a readiness result is reused.
const READINESS_REUSE: Duration = Duration::from_secs(1);

/// How long a readiness check may take before it counts as a failure.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Lets a message through at most once per [`LOG_INTERVAL`], counting the others: for lines a
/// client can cause at will (a refused connection, a wrong token).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

/// How often a throttled message may be logged.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Throttle {
    /// `Some(suppressed since the last one)` when a message may be logged now.
    pub(crate) fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// What a throttled message adds about the ones left out.
pub(crate) fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more since the last message)")
    }
}

/// The id of the request being handled, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of what an admin request created, put in the response's extensions by the handler,
/// for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created(pub(crate) String);

impl Created {
    /// The extension naming `id`.
    pub(crate) fn id(id: impl fmt::Display) -> axum::Extension<Created> {
        axum::Extension(Created(id.to_string()))
    }
}

/// The name of the admin token a request was authenticated with, put in the response's
/// extensions by the admin API, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenName(pub(crate) String);

/// Makes request ids: a random prefix per process and a counter, so that ids from several
/// processes behind one load balancer do not collide.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> RequestIds {
        let mut bytes = [0u8; 4];
        // Without the system's randomness, ids are still unique within the process.
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: u32::from_le_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    fn make(&self) -> RequestId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        RequestId(format!("{:08x}-{n:x}", self.prefix))
    }
}

/// What an admin write changed, for its audit line: the resource (the collection in the path),
/// its id (the one created, or the one in the path; `-` for none), and the operation.
#[derive(Debug, PartialEq, Eq)]
struct Change<'a> {
    resource: &'a str,
    id: &'a str,
    operation: String,
}

impl<'a> Change<'a> {
    /// The change a successful write of `method` on `path` (under the admin prefix) made.
    fn of(method: &Method, path: &'a str, created: Option<&'a str>) -> Change<'a> {
        let rest = path
            .strip_prefix(crate::admin_api::PREFIX)
            .unwrap_or(path)
            .trim_matches('/');
        let mut parts = rest.splitn(3, '/');
        let resource = parts.next().unwrap_or("");
        let in_path = parts.next();
        let action = parts.next();
        let operation = match (method, created, action) {
            (_, _, Some(action)) => format!("{} {action}", method.as_str().to_lowercase()),
            (&Method::POST, Some(_), None) => "create".into(),
            (&Method::DELETE, _, None) => "delete".into(),
            (&Method::PATCH | &Method::PUT, _, None) => "update".into(),
            _ => method.as_str().to_lowercase(),
        };
        Change {
            resource,
            id: created.or(in_path).unwrap_or("-"),
            operation,
        }
    }
}

/// Whether `id` may be taken from a request as its id.
fn acceptable(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Gives each request its id and span, returns the id in the response, and writes the
/// access-log line.
pub(crate) async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| state.request_ids().make(), |id| RequestId(id.to_owned()));
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let admin = path.starts_with(crate::admin_api::PREFIX);
    // Agent requests are the hot path: their span is DEBUG (at INFO, creating one per poll
    // cost about 5 % of a hello), and the agent API names the id in the lines it writes at
    // INFO and above.
    let agent = path == state.options().agent_path;
    let span = if agent {
        tracing::debug_span!("request", id = %id)
    } else {
        tracing::info_span!("request", id = %id)
    };
    // Tokio's clock: it is what the runtime measures time with, and tests may pause it.
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    if agent {
        state
            .metrics()
            .agent_request(&method, status, millis / 1000.0);
    } else {
        let route = response
            .extensions()
            .get::<Route>()
            .map_or("unmatched", |route| route.0.as_str());
        state
            .metrics()
            .request(route, &method, status, millis / 1000.0);
    }
    let token = response
        .extensions()
        .get::<TokenName>()
        .map_or("-", |token| token.0.as_str());
    let _entered = span.enter();
    if admin {
        tracing::info!(
            target: "oco_server_min::access",
            %method, %path, status, latency_ms = format_args!("{millis:.3}"), token,
            "request"
        );
        let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        if writes && response.status().is_success() {
            let created = response.extensions().get::<Created>().map(|c| c.0.as_str());
            let change = Change::of(&method, &path, created);
            tracing::info!(
                target: "oco_server_min::audit",
                token, resource = change.resource, id = change.id, operation = %change.operation,
                "changed"
            );
        }
    } else {
        tracing::debug!(
            target: "oco_server_min::access",
            %method, %path, status, latency_ms = format_args!("{millis:.3}"),
            "request"
        );
    }
    response
}

/// The pattern of the route that answered a request (`/api/v1/computers/{id}`), which
/// [`matched_route`] puts on the response for the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Route(MatchedPath);

/// Middleware on the routes: names the matched route's pattern on the response. On every route
/// but the agent API's, whose requests the metrics know by their path (its route is a plain
/// path), so that the hot path does without it. The innermost router's is kept.
pub(crate) async fn matched_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        if response.extensions().get::<Route>().is_none() {
            response.extensions_mut().insert(Route(matched));
        }
    }
    response
}

/// The last readiness result and when it was found.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Whether a check's blocking work is still running (it cannot be cancelled when it times
    /// out): no other starts until it ends, so a database that hangs holds one thread, not one
    /// per probe.
    running: Arc<AtomicBool>,
}

/// A check that the store's schema is the one this build migrates to: `Err` naming what is
/// wrong. The server's `main` gives one for the store it opened.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// use oco_server_min::observe::SchemaCheck;
/// use oco_server_min::ServerOptions;
/// use oco_store_sqlite::{SqliteStore, SCHEMA_VERSION};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(SqliteStore::open_in_memory()?);
/// let opened = store.clone();
/// let options = ServerOptions {
///     schema_check: Some(SchemaCheck(Arc::new(move || {
///         match opened.schema_version() {
///             Ok(version) if version == SCHEMA_VERSION => Ok(()),
///             Ok(version) => Err(format!("schema version {version}, not {SCHEMA_VERSION}")),
///             Err(error) => Err(error.to_string()),
///         }
///     }))),
///     ..ServerOptions::default()
/// };
/// let SchemaCheck(check) = options.schema_check.as_ref().expect("set above");
/// assert_eq!(check(), Ok(()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SchemaCheck(pub Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SchemaCheck")
    }
}

/// `/healthz` and `/readyz`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route_layer(axum::middleware::from_fn(matched_route))
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut last = state.readiness().last.lock().await;
    let result = match &*last {
        Some((at, result)) if at.elapsed() < READINESS_REUSE => result.clone(),
        _ => {
            let result = check(&state).await;
            *last = Some((Instant::now(), result.clone()));
            result
        }
    };
    drop(last);
    match result {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            tracing::warn!("not ready: {reason}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unready", "error": reason })),
            )
                .into_response()
        }
    }
}

/// One small read of the store, then its schema, within [`READINESS_TIMEOUT`].
async fn check(state: &AppState) -> Result<(), String> {
    let running = state.readiness().running.clone();
    if running.swap(true, Ordering::AcqRel) {
        return Err("the last readiness check is still waiting for the database".into());
    }
    let store = state.store().clone();
    let schema = state.options().schema_check.clone();
    let work = tokio::task::spawn_blocking(move || {
        /// Marks the check ended however its work ends.
        struct Ended(Arc<AtomicBool>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _ended = Ended(running);
        store
            .server_state()
            .map_err(|error| format!("the database does not answer: {error}"))?;
        match schema {
            Some(SchemaCheck(check)) => check(),
            None => Ok(()),
        }
    });
    match tokio::time::timeout(READINESS_TIMEOUT, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => Err(format!("the readiness check failed: {error}")),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            READINESS_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_taken_from_requests() {
        assert!(acceptable("a1-B2_c3.d4"));
        assert!(acceptable(&"x".repeat(64)));
        assert!(!acceptable(""));
        assert!(!acceptable(&"x".repeat(65)));
        assert!(!acceptable("two words"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable("quote\""));
    }

    #[test]
    fn a_write_names_what_it_changed() {
        let change = |method: Method, path, created| Change::of(&method, path, created);
        assert_eq!(
            change(Method::POST, "/api/v1/containers", Some("12")),
            Change {
                resource: "containers",
                id: "12",
                operation: "create".into()
            }
        );
        let deleted = change(Method::DELETE, "/api/v1/computers/3", None);
        assert_eq!((deleted.resource, deleted.id), ("computers", "3"));
        assert_eq!(deleted.operation, "delete");
        assert_eq!(
            change(Method::PATCH, "/api/v1/rules/4", None).operation,
            "update"
        );
        let renewed = change(Method::POST, "/api/v1/containers/7/renew", None);
        assert_eq!(
            (renewed.id, renewed.operation.as_str()),
            ("7", "post renew")
        );
        let reset = change(Method::POST, "/api/v1/computers/2/agent/reset", None);
        assert_eq!(reset.operation, "post agent/reset");
        let run = change(Method::POST, "/api/v1/housekeeping", None);
        assert_eq!(
            (run.resource, run.id, run.operation.as_str()),
            ("housekeeping", "-", "post")
        );
    }

    #[test]
    fn made_ids_are_distinct() {
        let ids = RequestIds::new();
        let a = ids.make();
        let b = ids.make();
        assert_ne!(a, b);
        assert!(acceptable(&a.0) && acceptable(&b.0), "{a} {b}");
    }
}
