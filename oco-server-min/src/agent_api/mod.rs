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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use oco_agent_protocol::cache::HelloOutlook;
use oco_agent_protocol::keys::{self, decide_hello, HelloGrant, HelloRefusal, KeyError, OsKeys};
use oco_agent_protocol::wire::{
    Head, HelloParams, NoParams, Reply, ReportReplyParams, ReportRequest,
};
use oco_agent_protocol::{signature, timestamp};
use oco_core::chrono::{DateTime, Duration, Utc};
use oco_core::engine::FollowUp;
use oco_core::ipnet::IpNet;
use oco_core::model::{ComputerId, JobState, Name, PackageId};
use oco_core::report::{
    apply_report, AgentReport, Disposition, IgnoredReport, ReportError, ReportOutcome,
    ReportedState,
};
use oco_core::store::{
    AgentContact, AgentCredentials, AgentLookup, Change, ChangeSet, NewComputer, ReportSnapshot,
    Store, StoreError, StoreResult,
};
use serde::Serialize;
use tracing::Instrument;

use crate::AppState;

/// How many times a write that lost a compare-and-set race is recomputed from a fresh read
/// before the request fails.
const ATTEMPTS: usize = 8;

/// The agent API's own state: the reply timestamps reserved by this process, and last-seen times
/// waiting for [`flush`].
#[derive(Debug, Default)]
pub struct AgentState {
    replies: timestamp::Replies,
    refusals: RefusalLog,
    last_seen: Mutex<HashMap<ComputerId, DateTime<Utc>>>,
    /// Reads running inline on an async worker now (see [`read`]).
    inline_reads: AtomicUsize,
}

impl AgentState {
    /// Notes that `computer`'s agent was seen at `at` (written at the next [`flush`]).
    fn saw(&self, computer: ComputerId, at: DateTime<Utc>) {
        let mut pending = self.pending();
        let seen = pending.entry(computer).or_insert(at);
        *seen = (*seen).max(at);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<ComputerId, DateTime<Utc>>> {
        self.last_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes copies of `shared` keys (the global agent key, the registration key) out of the
/// computer rows of `store`: a release before this one stored the key a computer in first
/// contact had signed with as itself; it becomes the reference a first contact stores now, so
/// such an agent is still recognised. Returns how many rows held a copy. Run it at start,
/// before serving.
///
/// # Errors
///
/// The store's; then no row was changed.
pub fn forget_shared_keys(
    store: &oco_store_sqlite::SqliteStore,
    shared: &[&str],
) -> StoreResult<usize> {
    let mut replaced = 0;
    for key in shared {
        replaced += store.replace_previous_agent_key(key, &keys::remember(key, shared))?;
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
    let agent = state.agent();
    let pending: Vec<(ComputerId, DateTime<Utc>)> = agent.pending().drain().collect();
    if pending.is_empty() {
        return Ok(());
    }
    let op = state.engine().record_seen_op(pending);
    match crate::drive::drive(state, crate::drive::Reads::Blocking, op).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(not_recorded)) => {
            requeue(state, &not_recorded.unwritten);
            Err(not_recorded.error)
        }
        Err(error) => Err(StoreError::Backend(Box::new(error))),
    }
}

fn requeue(state: &AppState, pending: &[(ComputerId, DateTime<Utc>)]) {
    for &(computer, at) in pending {
        state.agent().saw(computer, at);
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint.

/// A refused or failed request: plain text with its status.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(
        "Agent timestamp too far ahead: more than {limit} s ahead of the server clock \
         (check the agent's clock)"
    )]
    AheadOfClock { limit: u64 },
    #[error("Request body too large: the limit is {0} bytes")]
    TooLarge(usize),
    #[error("Internal server error")]
    Store(#[from] StoreError),
    #[error("Internal server error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::AheadOfClock { .. } => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, self.to_string()).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

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

/// Whatever a request needs besides its body.
struct Request<'a> {
    state: &'a AppState,
    body: &'a Bytes,
    signature: &'a str,
    head: Head<'a>,
    now: DateTime<Utc>,
}

async fn endpoint(
    State(state): State<AppState>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
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
        match handle(&state, now, peer, &headers, body).await {
            Ok(response) => {
                tracing::debug!(
                    status = response.status().as_u16(),
                    "agent request answered"
                );
                response
            }
            Err(error) => {
                match &error {
                    ApiError::Store(failure) => {
                        tracing::error!(error = %failure, "agent request failed")
                    }
                    ApiError::Internal(failure) => {
                        tracing::error!(error = %failure, "agent request failed")
                    }
                    refused => {
                        if let Some(suppressed) = state.agent().refusals.admit(now) {
                            tracing::warn!(
                                status = refused.status().as_u16(),
                                reason = %refused,
                                suppressed,
                                "agent request refused"
                            );
                        }
                    }
                }
                error.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

async fn handle(
    state: &AppState,
    now: DateTime<Utc>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // What the headers decide is decided before a byte of the body is read.
    if headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes) != Some(b"application/json") {
        return Err(ApiError::BadRequest("Content type mismatch".into()));
    }
    let signature = headers
        .get(signature::AGENT_SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::Unauthorized("Missing signature"))?;
    let body = read_body(headers, body, state.options().agent_body_limit).await?;
    let head: Head<'_> = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("Invalid request: {error}")))?;
    let span = tracing::Span::current();
    span.record("method", &*head.method);
    span.record("hostname", &*head.params.hostname);
    let ConnectInfo(peer) = peer.map_err(|rejection| {
        ApiError::Internal(format!("the peer address is unknown: {rejection}"))
    })?;
    let limit = state.options().max_clock_skew;
    let ahead = head.params.timestamp - timestamp::epoch_seconds(now);
    // NaN is refused too (serde_json reads none, but nothing here should depend on that).
    if ahead.is_nan() || ahead > limit.as_secs_f64() {
        return Err(ApiError::AheadOfClock {
            limit: limit.as_secs(),
        });
    }
    let request = Request {
        state,
        body: &body,
        signature,
        now,
        head,
    };
    match &*request.head.method {
        "oco.agent.hello" => {
            let addr = agent_address(peer, headers, &state.options().trusted_proxies)?;
            hello(&request, addr).await
        }
        "oco.agent.update_job_state" => update_job_state(&request).await,
        "oco.agent.download" => download(&request).await,
        "oco.agent.update" | "oco.agent.events" | "oco.agent.passwords" => {
            minimal_reply(&request).await
        }
        other => Err(ApiError::BadRequest(format!("Unknown method `{other}`"))),
    }
}

/// The request body, at most `limit` bytes: a `Content-Length` over it is refused before reading,
/// a body that grows past it while read is refused there.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            ApiError::TooLarge(limit)
        } else {
            ApiError::BadRequest(format!("Could not read the request body: {error}"))
        }
    })
}

/// The agent's address for IP constraints: the TCP peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy itself.
fn agent_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, ApiError> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.ip().to_canonical();
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Invalid X-Forwarded-For header".into()))?;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let ip: IpAddr = entry.parse().map_err(|_| {
                ApiError::BadRequest(format!("Invalid X-Forwarded-For entry `{entry}`"))
            })?;
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

// ---------------------------------------------------------------------------------------------
// Hello.

/// What a hello found in the store.
// One per request, moved once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum HelloRead {
    /// No computer has this hostname.
    Unknown,
    Refused(HelloRefusal),
    /// The computer was deleted between its lookup and its planner snapshot.
    Raced,
    Granted {
        computer: ComputerId,
        credentials: AgentCredentials,
        grant: HelloGrant,
        planned: HelloOutlook,
    },
}

async fn hello(request: &Request<'_>, addr: IpAddr) -> Result<Response, ApiError> {
    let state = request.state;
    let hostname = request.head.params.hostname.to_string();
    let timestamp = request.head.params.timestamp;
    let now = request.now;
    let agent_version = request
        .head
        .params
        .data
        .agent_version
        .as_deref()
        .map(printable_version);
    // The computer this request registered, whose first hello may be signed with the
    // registration key.
    let mut registered: Option<ComputerId> = None;
    for _ in 0..ATTEMPTS {
        let read = {
            let store = state.cached_store().clone();
            let settings = *state.settings();
            let hostname = hostname.clone();
            let body = request.body.clone();
            let signature = request.signature.to_owned();
            let global = state.secrets().agent_key.clone();
            let registration = state.secrets().registration_key.clone();
            read(
                state,
                move || -> StoreResult<Result<HelloRead, KeyError>> {
                    // The checks first, on the computer's credentials (one small read): a
                    // refused hello never reads a planner snapshot nor fills the cache.
                    let Some(lookup) = store.agent_lookup(&hostname)? else {
                        return Ok(Ok(HelloRead::Unknown));
                    };
                    let mut first_contact = vec![global.as_str()];
                    if registered == Some(lookup.computer) {
                        first_contact.extend(registration.as_deref());
                    }
                    let mut shared = vec![global.as_str()];
                    shared.extend(registration.as_deref());
                    let verifies = |key: &str| signature::verify(key, &body, &signature);
                    let grant = match decide_hello(
                        &lookup.credentials,
                        verifies,
                        &first_contact,
                        &shared,
                        timestamp,
                        &OsKeys,
                    ) {
                        Ok(Ok(grant)) => grant,
                        Ok(Err(refusal)) => return Ok(Ok(HelloRead::Refused(refusal))),
                        Err(error) => return Ok(Err(error)),
                    };
                    let planned = match store.hello_outlook(&lookup, now, addr, &settings) {
                        Ok(planned) => planned,
                        Err(StoreError::NotFound { .. }) => return Ok(Ok(HelloRead::Raced)),
                        Err(error) => return Err(error),
                    };
                    // The credentials the checks passed on are the ones the commit expects: if
                    // they changed meanwhile, it conflicts and the hello starts over.
                    Ok(Ok(HelloRead::Granted {
                        computer: lookup.computer,
                        credentials: lookup.credentials,
                        grant,
                        planned,
                    }))
                },
            )
            .await?
            .map_err(|error| ApiError::Internal(format!("no random keys: {error}")))?
        };
        let (computer, stored, grant, planned) = match read {
            HelloRead::Unknown => {
                registered = Some(register(request, &hostname).await?);
                continue;
            }
            HelloRead::Refused(HelloRefusal::Signature) => {
                return Err(ApiError::Unauthorized("Invalid signature"))
            }
            HelloRead::Refused(HelloRefusal::TimestampTooOld) => {
                return Err(ApiError::Unauthorized("Agent timestamp too old"))
            }
            HelloRead::Raced => continue,
            HelloRead::Granted {
                computer,
                credentials,
                grant,
                planned,
            } => (computer, credentials, grant, planned),
        };
        // A hello writes the credentials anyway: it always renews the reservation.
        let (issued, reserve) = timestamp::Replies::reserve(now, stored.last_reply);
        let credentials = AgentCredentials {
            last_reply: Some(reserve),
            last_contact: Some(AgentContact {
                at: now,
                address: addr,
                agent_version: agent_version.clone(),
            }),
            ..grant.credentials.clone()
        };
        let mut set = ChangeSet::default();
        set.push(Change::SetCredentials {
            computer,
            expected: stored,
            credentials,
        });
        set.extend(planned.changes);
        match state.committer().commit(set).await {
            Ok(_) => {}
            Err(StoreError::Conflict { what }) => {
                tracing::debug!(%what, "hello lost a race; reading again");
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        // No `saw`: the credentials just written hold the contact, which is the computer's
        // last-seen time (a hello writes one row).
        state.agent().replies.stored(computer, issued, reserve, now);
        let outlook = &planned.outlook;
        tracing::debug!(
            jobs = outlook.delivered(),
            held = outlook.held(),
            cached = planned.hit,
            keys_sent = grant.send_agent_key.is_some(),
            "hello"
        );
        let software_jobs = outlook.software_jobs_json();
        let params = HelloParams {
            server_key: grant.send_server_key.as_deref(),
            agent_key: grant.send_agent_key.as_deref(),
            update: 0,
            software_jobs: &software_jobs,
        };
        return signed_json(
            &Reply::new(params, issued),
            grant.credentials.server_key.as_deref(),
        );
    }
    Err(ApiError::Internal(format!(
        "hello of {hostname} lost {ATTEMPTS} races in a row"
    )))
}

/// Registers an unknown computer that signed its hello with the registration key (when
/// self-registration is on), and returns its id.
async fn register(request: &Request<'_>, hostname: &str) -> Result<ComputerId, ApiError> {
    let state = request.state;
    let key = match &state.secrets().registration_key {
        Some(key) if state.options().self_registration => key,
        _ => {
            return Err(ApiError::Unauthorized(
                "Client self-registration is disabled",
            ))
        }
    };
    if !signature::verify(key, request.body, request.signature) {
        return Err(ApiError::Unauthorized("Invalid signature"));
    }
    let name = Name::hostname("hostname", hostname)
        .map_err(|error| ApiError::BadRequest(format!("Invalid hostname: {error}")))?;
    let store = state.store().clone();
    let hostname = name.as_str().to_owned();
    let created = blocking(move || {
        match store.create_computer(NewComputer {
            hostname: name,
            os: String::new(),
            os_version: String::new(),
            architecture: String::new(),
            macs: Vec::new(),
        }) {
            Ok(computer) => Ok(computer.id),
            // Registered by a concurrent hello meanwhile.
            Err(StoreError::Duplicate { .. }) => store
                .computer_by_hostname(&hostname)?
                .map(|computer| computer.id)
                .ok_or_else(|| StoreError::Conflict {
                    what: format!("computer {hostname} registered and deleted at once"),
                }),
            Err(error) => Err(error),
        }
    })
    .await?;
    tracing::info!(computer = %created, "computer registered itself");
    Ok(created)
}

// ---------------------------------------------------------------------------------------------
// Other methods.

/// Authenticates a request other than a hello: signed with the computer's own key, with a
/// timestamp not older than the last hello's. Returns the computer and the credentials read,
/// which the request's write expects (see [`signed_request_write`]).
async fn authenticate(request: &Request<'_>) -> Result<(ComputerId, AgentCredentials), ApiError> {
    let state = request.state;
    let store = state.cached_store().clone();
    let hostname = request.head.params.hostname.to_string();
    let found = read(state, move || store.agent_lookup(&hostname)).await?;
    check_signed(request, found)
}

/// The checks of [`authenticate`] on what it read (`None`: no such computer).
fn check_signed(
    request: &Request<'_>,
    found: Option<AgentLookup>,
) -> Result<(ComputerId, AgentCredentials), ApiError> {
    let AgentLookup {
        computer,
        credentials,
        ..
    } = found.ok_or(ApiError::Unauthorized("Unknown computer"))?;
    let signed = credentials
        .agent_key
        .as_deref()
        .is_some_and(|key| signature::verify(key, request.body, request.signature));
    if !signed {
        return Err(ApiError::Unauthorized("Invalid signature"));
    }
    if credentials
        .last_hello
        .is_some_and(|last| request.head.params.timestamp < last)
    {
        return Err(ApiError::Unauthorized("Agent timestamp too old"));
    }
    request.state.agent().saw(computer, request.now);
    Ok((computer, credentials))
}

/// The write after an authenticated request other than a hello: `last_reply` becomes the
/// computer's reply reservation (a new one, or the stored one for a download, which sends no
/// timestamp), and, the request being signed with the computer's own key, the previous key's
/// grace period ends. Compare-and-set against `credentials` as read: a concurrent request of the
/// same agent makes it conflict, and the request is computed again.
fn signed_request_write(
    computer: ComputerId,
    credentials: &AgentCredentials,
    last_reply: Option<f64>,
) -> Change {
    Change::SetCredentials {
        computer,
        expected: credentials.clone(),
        credentials: AgentCredentials {
            previous_agent_key: None,
            last_reply,
            ..credentials.clone()
        },
    }
}

/// The timestamp of a JSON reply to an authenticated request other than a hello, and the
/// reservation the request must store before replying, if the stored one does not cover it.
struct ReplyStamp {
    issued: f64,
    reserve: Option<f64>,
}

impl ReplyStamp {
    /// The stamp of a reply to `computer`, whose credentials the request read.
    fn new(request: &Request<'_>, computer: ComputerId, credentials: &AgentCredentials) -> Self {
        let replies = &request.state.agent().replies;
        let next = if credentials.previous_agent_key.is_some() {
            // The credentials are written anyway (the previous key's grace period ends).
            let (reply, reserve) = timestamp::Replies::reserve(request.now, credentials.last_reply);
            timestamp::NextReply::Reserve { reply, reserve }
        } else {
            replies.next(computer, request.now, credentials.last_reply)
        };
        match next {
            timestamp::NextReply::Covered(issued) => ReplyStamp {
                issued,
                reserve: None,
            },
            timestamp::NextReply::Reserve { reply, reserve } => ReplyStamp {
                issued: reply,
                reserve: Some(reserve),
            },
        }
    }

    /// The credentials write the reply needs, if any.
    fn write(&self, computer: ComputerId, credentials: &AgentCredentials) -> Option<Change> {
        self.reserve
            .map(|reserve| signed_request_write(computer, credentials, Some(reserve)))
    }

    /// Notes, once the write is committed, the reservation it stored.
    fn committed(&self, request: &Request<'_>, computer: ComputerId) {
        if let Some(reserve) = self.reserve {
            request
                .state
                .agent()
                .replies
                .stored(computer, self.issued, reserve, request.now);
        }
    }
}

/// The minimal reply of `oco.agent.update`, `events` and `passwords`.
async fn minimal_reply(request: &Request<'_>) -> Result<Response, ApiError> {
    for _ in 0..ATTEMPTS {
        let (computer, credentials) = authenticate(request).await?;
        let stamp = ReplyStamp::new(request, computer, &credentials);
        if let Some(write) = stamp.write(computer, &credentials) {
            let set = ChangeSet {
                changes: vec![write],
            };
            match request.state.committer().commit(set).await {
                Ok(_) => stamp.committed(request, computer),
                Err(StoreError::Conflict { what }) => {
                    tracing::debug!(%what, "reply lost a race; reading again");
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        return signed_json(
            &Reply::new(NoParams {}, stamp.issued),
            credentials.server_key.as_deref(),
        );
    }
    Err(ApiError::Internal(format!(
        "{} lost {ATTEMPTS} races in a row",
        request.head.method
    )))
}

async fn update_job_state(request: &Request<'_>) -> Result<Response, ApiError> {
    let state = request.state;
    let parsed: ReportRequest = serde_json::from_slice(request.body)
        .map_err(|error| ApiError::BadRequest(format!("Invalid job report: {error}")))?;
    let data = parsed.params.data;
    let parsed_job = data.job_id.parse();
    // One read for the authentication and the job's report snapshot, which is read only if the
    // job id parses; its outcome is looked at after the authentication, as if read after it.
    let read_both = || {
        let store = state.cached_store().clone();
        let hostname = request.head.params.hostname.to_string();
        let job = parsed_job.map(|(job, _)| job);
        read(state, move || {
            let found = store.agent_lookup(&hostname)?;
            let snapshot = match (&found, job) {
                (Some(_), Some(job)) => Some(store.report_snapshot(job)),
                _ => None,
            };
            Ok((found, snapshot))
        })
    };
    let (found, mut snapshot) = read_both().await?;
    let (mut computer, mut credentials) = check_signed(request, found)?;
    let (job, attempt) =
        parsed_job.ok_or_else(|| ApiError::BadRequest(format!("Unknown job {}", data.job_id)))?;
    let reported = ReportedState::from_wire_code(data.state)
        .map_err(|error| ApiError::BadRequest(format!("Invalid job report: {error}")))?;
    let download_progress = data
        .download_progress
        .map(|progress| {
            u8::try_from(progress)
                .ok()
                .filter(|p| *p <= 101)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "Invalid job report: download-progress {progress} is not 0 to 101"
                    ))
                })
        })
        .transpose()?;
    let report = AgentReport {
        job,
        attempt,
        state: reported,
        return_code: data.return_code,
        download_progress,
        output: data
            .message
            .map(|output| capped_output(output, state.options().max_job_output)),
    };
    for round in 0..ATTEMPTS {
        if round > 0 {
            let (found, again) = read_both().await?;
            (computer, credentials) = check_signed(request, found)?;
            snapshot = again;
        }
        let snapshot = match snapshot.take() {
            Some(Ok(snapshot)) => snapshot,
            Some(Err(StoreError::NotFound { .. })) | None => {
                return Err(ApiError::BadRequest(format!("Unknown job {}", data.job_id)))
            }
            Some(Err(error)) => return Err(error.into()),
        };
        let outcome = match apply_report(&snapshot, computer, &report, request.now) {
            Ok(outcome) => outcome,
            Err(ReportError::ForeignJob { .. }) => {
                return Err(ApiError::Unauthorized("Job of another computer"))
            }
            Err(error @ ReportError::JobMismatch { .. }) => {
                return Err(ApiError::Internal(error.to_string()))
            }
        };
        let stamp = ReplyStamp::new(request, computer, &credentials);
        let mut set = outcome.changes.clone();
        set.changes.extend(stamp.write(computer, &credentials));
        let written = if set.is_empty() {
            Ok(Default::default())
        } else {
            state.committer().commit(set).await
        };
        match written {
            Ok(_) => stamp.committed(request, computer),
            Err(StoreError::Conflict { what }) => {
                tracing::debug!(%what, "report lost a race; reading again");
                continue;
            }
            // The computer was deleted since the report was authenticated (its job is a
            // tombstone now, with nothing to record the success on): answered as the agent's
            // next request will be.
            Err(StoreError::NotFound {
                what: "computer", ..
            }) => return Err(ApiError::Unauthorized("Unknown computer")),
            Err(error) => return Err(error.into()),
        }
        match outcome.disposition {
            Disposition::Applied => {
                tracing::debug!(%job, state = %reported.wire_code(), "report applied")
            }
            Disposition::Ignored(reason) => tracing::debug!(%job, %reason, "report ignored"),
        }
        if !outcome.reevaluate.is_empty() {
            let follow_up = FollowUp {
                computers: outcome.reevaluate.clone(),
            };
            spawn_reevaluation(state, follow_up, request.now);
        }
        let params = ReportReplyParams {
            job_succeeded: job_succeeded(&snapshot, &outcome),
        };
        return signed_json(
            &Reply::new(params, stamp.issued),
            credentials.server_key.as_deref(),
        );
    }
    Err(ApiError::Internal(format!(
        "report on job {job} lost {ATTEMPTS} races in a row"
    )))
}

/// Whether the job stands Succeeded after the report: its written state, a success recorded on a
/// deleted job, or, for an ignored report, the stored state.
fn job_succeeded(snapshot: &ReportSnapshot, outcome: &ReportOutcome) -> bool {
    let written = outcome
        .changes
        .changes
        .iter()
        .find_map(|change| match change {
            Change::UpdateJob { job, .. } if job.id == snapshot.job.id => Some(job.state),
            _ => None,
        });
    match (written, outcome.disposition) {
        (Some(state), _) => state == JobState::Succeeded,
        // An accepted success on a deleted job writes assignments only.
        (None, Disposition::Applied)
        | (None, Disposition::Ignored(IgnoredReport::DeletedJobRecorded)) => true,
        (None, Disposition::Ignored(_)) => snapshot.job.state == JobState::Succeeded,
    }
}

/// Re-evaluates the rules of `computers` in the background (their assignments changed, or a
/// rule's job stopped running).
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

async fn download(request: &Request<'_>) -> Result<Response, ApiError> {
    let state = request.state;
    let package = request
        .head
        .params
        .package_id
        .map(PackageId)
        .ok_or_else(|| {
            ApiError::BadRequest("Invalid request: missing field `package-id`".into())
        })?;
    let (computer, credentials) = authenticate(request).await?;
    if credentials.previous_agent_key.is_some() {
        // Signed with the computer's own key: the previous key's grace period ends.
        let confirm = signed_request_write(computer, &credentials, credentials.last_reply);
        match state
            .committer()
            .commit(ChangeSet {
                changes: vec![confirm],
            })
            .await
        {
            // A concurrent request changed them: the next request tries again.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let store = state.store().clone();
    let pending = blocking(move || {
        let snapshot = store.planner_snapshot(computer)?;
        Ok(snapshot
            .jobs
            .iter()
            .any(|job| job.package == package && job.state.is_pending()))
    })
    .await?;
    if !pending {
        return Err(ApiError::BadRequest(format!(
            "No pending job for package {package}"
        )));
    }
    let path = state.payload_path(package);
    let (length, body) = match crate::payloads::open_stream(&path).await {
        Ok(opened) => opened,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::BadRequest(format!(
                "No payload for package {package}"
            )))
        }
        Err(error) => {
            return Err(ApiError::Internal(format!(
                "reading {}: {error}",
                path.display()
            )))
        }
    };
    tracing::debug!(%package, bytes = length, "payload sending");
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::try_from(format!("attachment; filename=\"{}.zip\"", package.0))
    {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A job's output as stored: whole when it has at most `limit` bytes; otherwise its first and
/// last `limit / 2` bytes or so (cut at character boundaries) around a line saying how much was
/// left out. The head says what ran, the tail how it ended.
fn capped_output(output: String, limit: usize) -> String {
    if output.len() <= limit {
        return output;
    }
    let mut head = limit / 2;
    while !output.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = output.len() - limit / 2;
    while !output.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[… {} bytes of output left out by the server …]\n{}",
        &output[..head],
        tail - head,
        &output[tail..]
    )
}

/// The longest agent version kept, in characters; the OCO agent sends a few (`1.2.0`).
const MAX_AGENT_VERSION: usize = 64;

/// An agent's version as kept: control characters dropped, at most [`MAX_AGENT_VERSION`]
/// characters (the rest is cut off: the version is shown, never compared).
fn printable_version(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_AGENT_VERSION)
        .collect()
}

/// `value` as a JSON response, signed with `server_key` over the exact bytes sent.
fn signed_json<T: Serialize>(value: &T, server_key: Option<&str>) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|error| ApiError::Internal(format!("encoding a reply: {error}")))?;
    let signature = server_key.map(|key| signature::sign(key, &body));
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(signature) = signature {
        let value = HeaderValue::try_from(signature)
            .map_err(|error| ApiError::Internal(format!("signature header: {error}")))?;
        headers.insert(signature::SERVER_SIGNATURE, value);
    }
    Ok(response)
}

/// At most this many store reads run inline on the async workers at once; more wait on the
/// blocking pool. Bounds how many workers a slow read can hold up.
const INLINE_READS: usize = 2;

/// Runs a short store read of the request path: inline on the async worker when fewer than
/// [`INLINE_READS`] do so already, else on the blocking pool. A read takes tens of
/// microseconds; handing it to a pool thread and back costs as much CPU again in context
/// switches.
async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let inline = &state.agent().inline_reads;
    if inline.fetch_add(1, Ordering::Acquire) < INLINE_READS {
        struct Slot<'a>(&'a AtomicUsize);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Release);
            }
        }
        let _slot = Slot(inline);
        return f();
    }
    inline.fetch_sub(1, Ordering::Release);
    blocking(f).await
}

/// Runs blocking store calls off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| StoreError::Backend(Box::new(error)))?
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
    fn long_outputs_keep_their_head_and_tail() {
        assert_eq!(capped_output("short".into(), 10), "short");
        assert_eq!(
            capped_output("0123456789abcdefghij".into(), 10),
            "01234\n[… 10 bytes of output left out by the server …]\nfghij"
        );
        // Cut at character boundaries: `é` is two bytes, so 2 + 2 of the 5 are kept.
        let capped = capped_output("ééééé".into(), 5);
        assert_eq!(
            capped,
            "é\n[… 6 bytes of output left out by the server …]\né"
        );
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
                .map_err(|e| e.to_string())
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
