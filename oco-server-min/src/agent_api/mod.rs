//! The OCO agent's wire protocol: one endpoint, JSON-RPC bodies routed on their `method`.
//!
//! Every request is signed by the agent (HMAC-SHA256 of the exact body, see
//! [`oco_agent_protocol::signature`]) and carries the agent's clock, which may be at most
//! [`ServerOptions::max_clock_skew`](crate::ServerOptions::max_clock_skew) ahead of the server's
//! (nothing of a request from further ahead is stored: one such timestamp would otherwise
//! become the replay guard and lock the agent out). Every JSON reply carries a `result.timestamp`
//! that strictly increases for each agent (stored per computer before the reply, see
//! [`oco_agent_protocol::timestamp`]) and is signed with the computer's server key. The methods:
//!
//! - `oco.agent.hello`: the key exchange (trust on first use), the replay guard (the agent's
//!   timestamp must exceed the last hello's, made durable with the reply's other writes before
//!   the reply), the agent's last contact (time, address, version), and the jobs the planner
//!   hands out.
//! - `oco.agent.update_job_state`: the core's report handling, committed before the reply
//!   (recomputed and retried when it loses a compare-and-set race); rules are re-evaluated
//!   afterwards for the computers the outcome names.
//! - `oco.agent.download` (a GET with a body): the package's payload, for a computer with a
//!   pending job of that package.
//! - `oco.agent.update`, `oco.agent.events`, `oco.agent.passwords`: answered minimally.
//!
//! Errors are plain text: 400 for a bad request, 401 for authentication, 413 for a body over
//! [`BODY_LIMIT`](crate::BODY_LIMIT), 500 (logged) for a store failure, which writes nothing.
//!
//! Last-seen times are kept in memory and written by [`flush`], which the server calls every few
//! seconds and at shutdown.

pub mod client;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use oco_agent_protocol::keys;
use oco_agent_protocol::service::{self, AgentService, Outcome, PayloadRef, Refusal, Request};
use oco_agent_protocol::signature;
use oco_core::chrono::{DateTime, Duration, Utc};
use oco_core::engine::FollowUp;
use oco_core::ipnet::IpNet;
use oco_core::store::{StoreError, StoreResult};
use tracing::Instrument;

use crate::drive::{drive, Reads};
use crate::observe::RequestId;
use crate::AppState;

/// The agent API's own state in the server: which refusals are logged, and how many store reads
/// run on the async workers now.
#[derive(Debug, Default)]
pub struct AgentState {
    refusals: RefusalLog,
    /// What agents asked since the last summary.
    tally: AgentTally,
    /// Reads running inline on an async worker now (see [`crate::drive`]).
    pub(crate) inline_reads: AtomicUsize,
}

/// Agent requests by outcome since the last [`summary`], for the log's periodic summary in
/// place of a line per request.
#[derive(Debug, Default)]
struct AgentTally {
    polls: AtomicU64,
    jobs_handed_out: AtomicU64,
    reports: AtomicU64,
    downloads: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// What agents asked since the last call, as one line for the log (`None` when nothing):
/// polls (and the jobs they handed out), job reports, payload downloads, other requests,
/// refusals and failures. The server logs it once a minute at INFO.
pub fn summary(state: &AppState) -> Option<String> {
    let tally = &state.agent().tally;
    let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
    let counts = [
        ("polls", take(&tally.polls)),
        ("jobs handed out", take(&tally.jobs_handed_out)),
        ("reports", take(&tally.reports)),
        ("downloads", take(&tally.downloads)),
        ("other requests", take(&tally.other)),
        ("refused", take(&tally.refused)),
        ("failed", take(&tally.failed)),
    ];
    counts.iter().any(|(_, n)| *n > 0).then(|| {
        counts
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Takes copies of `shared` keys (the global agent key, the registration key) out of the
/// computer rows of a store, through its `replace_previous_agent_key` (the SQLite and the
/// PostgreSQL store each have one): a release before this one stored the key a computer in first
/// contact had signed with as itself; it becomes the reference a first contact stores now, so
/// such an agent is still recognised. Returns how many rows held a copy. Run it at start,
/// before serving.
///
/// # Errors
///
/// The store's; then no row was changed.
pub fn forget_shared_keys(
    replace_previous_agent_key: impl Fn(&str, &str) -> StoreResult<usize>,
    shared: &[&str],
) -> StoreResult<usize> {
    let mut replaced = 0;
    for key in shared {
        replaced += replace_previous_agent_key(key, &keys::remember(key, shared))?;
    }
    Ok(replaced)
}

/// The agent endpoint at `path`: POST, and GET with a body (downloads), routed on the body's
/// `method`.
pub fn router(path: &str) -> Router<AppState> {
    Router::new().route(path, post(endpoint).get(endpoint))
}

/// Writes the last-seen times noted since the last call (one commit).
///
/// The server calls this every few seconds and once at shutdown, after the last request; a
/// last-seen time is lost only if the process dies between two calls. Safe to call concurrently
/// with requests and with itself. Computers deleted meanwhile are skipped.
///
/// # Errors
///
/// The store's; the times not written are kept for the next call.
pub async fn flush(state: &AppState) -> StoreResult<()> {
    let service = state.agent_service();
    let Some(op) = service.flush() else {
        return Ok(());
    };
    match drive(state, Reads::Blocking, op).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(not_recorded)) => {
            service.requeue(&not_recorded.unwritten);
            Err(not_recorded.error)
        }
        Err(error) => Err(StoreError::Backend(Box::new(error))),
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint.

/// Refused requests are logged at most [`REFUSALS_LOGGED`] times per [`REFUSAL_WINDOW`]:
/// unauthenticated traffic must not be able to flood the log.
const REFUSALS_LOGGED: u64 = 10;

/// See [`REFUSALS_LOGGED`].
const REFUSAL_WINDOW: Duration = Duration::seconds(10);

/// Which refused requests are logged: the first [`REFUSALS_LOGGED`] of each window of
/// [`REFUSAL_WINDOW`], the first of a window also saying how many were left unlogged before it.
#[derive(Debug, Default)]
struct RefusalLog {
    window: Mutex<RefusalWindow>,
}

#[derive(Debug, Default)]
struct RefusalWindow {
    /// When the current window opened (`None` before the first refusal).
    opened: Option<DateTime<Utc>>,
    /// Refusals logged in it.
    logged: u64,
    /// Refusals not logged since the last line that reported them.
    suppressed: u64,
}

impl RefusalLog {
    /// Whether a refusal at `now` is logged: `Some(n)` with the number of refusals left unlogged
    /// since the last line, or `None` when this one is left unlogged.
    fn admit(&self, now: DateTime<Utc>) -> Option<u64> {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if window
            .opened
            .is_none_or(|opened| now < opened || now - opened >= REFUSAL_WINDOW)
        {
            window.opened = Some(now);
            window.logged = 0;
        }
        if window.logged < REFUSALS_LOGGED {
            window.logged += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

async fn endpoint(
    State(state): State<AppState>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::debug_span!(
        "agent",
        method = tracing::field::Empty,
        hostname = tracing::field::Empty
    );
    async move {
        let now = state.clock().now();
        let mut answer = answer(&state, now, peer, &headers, body).await;
        let span = tracing::Span::current();
        if let Some(method) = answer.method {
            span.record("method", method);
        }
        if let Some(hostname) = &answer.hostname {
            span.record("hostname", hostname.as_str());
        }
        let request_id = request_id.map(|Extension(id)| id);
        log(&state, now, &answer, request_id.as_ref());
        if let Some(follow_up) = answer.follow_up.take() {
            spawn_reevaluation(&state, follow_up, now);
        }
        encode(&state, answer, request_id.as_ref()).await
    }
    .instrument(span)
    .await
}

/// The service's answer to the request: the headers checked before the body is read, the body
/// read within its limit, the exchange run.
async fn answer(
    state: &AppState,
    now: DateTime<Utc>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    headers: &HeaderMap,
    body: Body,
) -> service::Response {
    // What the headers decide is decided before a byte of the body is read.
    let signature = match AgentService::check_headers(
        headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        headers
            .get(signature::AGENT_SIGNATURE)
            .map(HeaderValue::as_bytes),
    ) {
        Ok(signature) => signature.to_owned(),
        Err(refusal) => return refusal.into(),
    };
    let body = match read_body(headers, body, state.options().agent_body_limit).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into(),
    };
    let ConnectInfo(peer) = match peer {
        Ok(peer) => peer,
        Err(rejection) => {
            return service::Response::internal(format!("the peer address is unknown: {rejection}"))
        }
    };
    let address = agent_address(peer, headers, &state.options().trusted_proxies);
    let exchange = state.agent_service().exchange(Request {
        body,
        signature,
        address,
        now,
    });
    drive(state, Reads::Inline, exchange)
        .await
        .unwrap_or_else(|error| {
            service::Response::internal(format!("the exchange was lost: {error}"))
        })
}

/// Logs what the answer says happened: refusals at WARN (at most [`REFUSALS_LOGGED`] per
/// [`REFUSAL_WINDOW`]), store failures at ERROR, the rest at DEBUG.
///
/// Agent requests have no span at INFO (a span per poll costs too much for what it carries), so
/// the lines written at INFO and above name the request id themselves.
fn log(
    state: &AppState,
    now: DateTime<Utc>,
    answer: &service::Response,
    request_id: Option<&RequestId>,
) {
    let request = request_id.map_or("-", |id| id.0.as_str());
    if let Some(computer) = answer.registered {
        tracing::info!(request, %computer, "computer registered itself");
    }
    state.metrics().agent(&answer.outcome);
    let tally = &state.agent().tally;
    let count = |counter: &AtomicU64, n: u64| counter.fetch_add(n, Ordering::Relaxed);
    match &answer.outcome {
        Outcome::Failed { .. } => count(&tally.failed, 1),
        Outcome::Refused => count(&tally.refused, 1),
        Outcome::Hello { delivered, .. } => {
            count(&tally.jobs_handed_out, u64::from(*delivered));
            count(&tally.polls, 1)
        }
        Outcome::Report { .. } => count(&tally.reports, 1),
        Outcome::Download { .. } => count(&tally.downloads, 1),
        _ => count(&tally.other, 1),
    };
    match &answer.outcome {
        Outcome::Failed { error } => tracing::error!(request, %error, "agent request failed"),
        Outcome::Refused => {
            if let Some(suppressed) = state.agent().refusals.admit(now) {
                let reason = match &answer.body {
                    service::Body::Text(reason) => reason.as_str(),
                    _ => "",
                };
                tracing::warn!(
                    request,
                    status = answer.status.code(),
                    reason,
                    suppressed,
                    "agent request refused"
                );
            }
        }
        Outcome::Hello {
            delivered,
            held,
            cached,
            keys_sent,
        } => tracing::debug!(jobs = delivered, held, cached, keys_sent, "hello"),
        Outcome::Report {
            job,
            disposition,
            state,
        } => {
            tracing::debug!(%job, ?disposition, ?state, "report answered")
        }
        Outcome::Download { package } => tracing::debug!(%package, "payload requested"),
        _ => tracing::debug!(status = answer.status.code(), "agent request answered"),
    }
}

/// The answer as an HTTP response: a payload streamed from its file, the rest as they are.
async fn encode(
    state: &AppState,
    answer: service::Response,
    request_id: Option<&RequestId>,
) -> Response {
    let status =
        StatusCode::from_u16(answer.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = HeaderValue::from_static(answer.content_type());
    let mut response = match answer.body {
        service::Body::Json(bytes) => Response::new(Body::from(bytes)),
        service::Body::Text(text) => Response::new(Body::from(text)),
        service::Body::Payload(payload) => {
            return stream_payload(state, &payload, request_id).await
        }
        _ => Response::new(Body::empty()),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if let Some(signature) = answer.signature {
        match HeaderValue::try_from(signature) {
            Ok(value) => {
                headers.insert(signature::SERVER_SIGNATURE, value);
            }
            Err(error) => {
                tracing::error!(%error, "signature header");
                return internal_error();
            }
        }
    }
    response
}

/// The payload archive of a package, streamed from its file.
async fn stream_payload(
    state: &AppState,
    payload: &PayloadRef,
    request_id: Option<&RequestId>,
) -> Response {
    let path = state.payload_path(payload.package);
    let (length, body) = match crate::payloads::open_stream(&path).await {
        Ok(opened) => opened,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let missing = payload.missing();
            log(state, state.clock().now(), &missing, request_id);
            return Box::pin(encode(state, missing, request_id)).await;
        }
        Err(error) => {
            let request = request_id.map_or("-", |id| id.0.as_str());
            tracing::error!(request, path = %path.display(), %error, "agent request failed");
            return internal_error();
        }
    };
    tracing::debug!(package = %payload.package, bytes = length, "payload sending");
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) =
        HeaderValue::try_from(format!("attachment; filename=\"{}\"", payload.file_name()))
    {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

fn internal_error() -> Response {
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request body, at most `limit` bytes: a `Content-Length` over it is refused before reading,
/// a body that grows past it while read is refused there.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Refusal::too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            Refusal::too_large(limit)
        } else {
            Refusal::bad_request(format!("Could not read the request body: {error}"))
        }
    })
}

/// The agent's address for IP constraints: the TCP peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy itself.
fn agent_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, String> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.ip().to_canonical();
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value
            .to_str()
            .map_err(|_| "Invalid X-Forwarded-For header".to_owned())?;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let ip: IpAddr = entry
                .parse()
                .map_err(|_| format!("Invalid X-Forwarded-For entry `{entry}`"))?;
            entries.push(ip.to_canonical());
        }
    }
    Ok(entries
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(entries.first())
        .copied()
        .unwrap_or(peer))
}

/// Re-evaluates the rules a report calls for in the background (the computers' assignments
/// changed, or a rule's job stopped running).
fn spawn_reevaluation(state: &AppState, follow_up: FollowUp, now: DateTime<Utc>) {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let computers = follow_up.computers.clone();
        match state.engine().follow_up(follow_up, now) {
            Ok(evaluated) => {
                tracing::debug!(?computers, rules = evaluated.len(), "rules re-evaluated")
            }
            Err(error) => {
                tracing::error!(?computers, %error, "re-evaluating rules after a report failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn refusals_are_logged_ten_per_ten_seconds_with_a_count_of_the_rest() {
        let log = RefusalLog::default();
        let start = oco_core::store::testkit::at(0);
        let logged: Vec<Option<u64>> = (0..25).map(|_| log.admit(start)).collect();
        assert_eq!(logged.iter().filter(|line| line.is_some()).count(), 10);
        assert!(logged[..10].iter().all(|line| *line == Some(0)));
        // Still inside the window: nothing.
        assert_eq!(log.admit(start + Duration::seconds(9)), None);
        // The next window's first line counts the 16 left out.
        assert_eq!(log.admit(start + Duration::seconds(10)), Some(16));
        assert_eq!(log.admit(start + Duration::seconds(11)), Some(0));
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let from = |peer: &str, forwarded: &[&str]| {
            agent_address(peer.parse().unwrap(), &headers(forwarded), &trusted)
        };
        let ip = |text: &str| Ok(text.parse::<IpAddr>().unwrap());
        assert_eq!(from("192.0.2.1:1", &["198.51.100.7"]), ip("192.0.2.1"));
        assert_eq!(from("10.0.0.1:1", &["198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(
            from("10.0.0.1:1", &["203.0.113.9, 198.51.100.7, 10.0.0.2"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            from("10.0.0.1:1", &["203.0.113.9", "10.0.0.3"]),
            ip("203.0.113.9")
        );
        assert_eq!(from("10.0.0.1:1", &["10.0.0.3"]), ip("10.0.0.3"));
        assert_eq!(from("10.0.0.1:1", &[]), ip("10.0.0.1"));
        assert_eq!(from("[::ffff:10.0.0.1]:1", &["192.0.2.5"]), ip("192.0.2.5"));
        assert!(from("10.0.0.1:1", &["not-an-address"]).is_err());
    }
}
