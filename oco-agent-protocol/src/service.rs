//! The server side of the OCO agent protocol as a value-in, value-out machine.
//!
//! An [`AgentService`] turns one agent request ([`Request`]: the body bytes, the signature
//! header, the agent's address, `now`) into one [`Response`] (the status, the body bytes, the
//! signature header, or a payload to stream), through an [`Exchange`]: an
//! [`Operation`] that reads and decides when resumed and hands each write to its driver. The key
//! exchange, the replay guard, reply timestamps, self-registration and method dispatch live here;
//! the transport (HTTP, its body limits, the agent's address behind a proxy, streaming a payload
//! file, logging) is the driver's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use oco_core::chrono::{DateTime, Utc};
use oco_core::engine::{
    Engine, FollowUp, Operation, Progress, RecordSeenOp, ReportOp, Reported, Step, Write, Written,
};
use oco_core::model::{ComputerId, JobId, JobState, Name, PackageId};
use oco_core::report::{AgentReport, Disposition, ReportedState};
use oco_core::store::{
    AgentContact, AgentCredentials, AgentLookup, Change, ChangeSet, NewComputer, ReportSnapshot,
    Store, StoreError, StoreResult,
};
use serde::Serialize;

use crate::cache::{CachedStore, HelloOutlook};
use crate::keys::{decide_hello, HelloGrant, HelloRefusal, KeySource};
use crate::signature;
use crate::timestamp::{self, NextReply, Replies};
use crate::wire::{Head, HelloParams, NoParams, Reply, ReportReplyParams, ReportRequest};

/// The longest agent version kept, in characters; the OCO agent sends a few (`1.2.0`).
const MAX_AGENT_VERSION: usize = 64;

/// What an [`AgentService`] accepts, and the secrets it checks signatures with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The global agent key: what a computer without its own key signs its first hello with.
    pub global_key: String,
    /// The registration key: what an unknown computer signs its first hello with to register
    /// itself, when `self_registration` is on.
    pub registration_key: Option<String>,
    /// Whether unknown computers may register themselves (with the registration key).
    pub self_registration: bool,
    /// How far ahead of `now` an agent's timestamp may be (600 s): nothing of a request from
    /// further ahead is stored, since one such timestamp would become the replay guard and lock
    /// the agent out.
    pub max_clock_skew: std::time::Duration,
    /// The most bytes of a job's output kept (1 MiB); a longer output keeps its head and tail.
    pub max_job_output: usize,
}

impl ServiceConfig {
    /// A configuration with the global agent key `global_key`, no self-registration, and the
    /// defaults of the other limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::service::ServiceConfig;
    ///
    /// let config = ServiceConfig::new("global-agent-key").with_max_job_output(64 * 1024);
    /// assert!(!config.self_registration);
    /// assert_eq!(config.max_job_output, 64 * 1024);
    /// assert_eq!(config.max_clock_skew.as_secs(), 600);
    ///
    /// let open = config.with_registration("registration-key");
    /// assert!(open.self_registration);
    /// assert_eq!(open.registration_key.as_deref(), Some("registration-key"));
    /// ```
    pub fn new(global_key: impl Into<String>) -> Self {
        ServiceConfig {
            global_key: global_key.into(),
            registration_key: None,
            self_registration: false,
            max_clock_skew: std::time::Duration::from_secs(600),
            max_job_output: 1024 * 1024,
        }
    }

    /// This configuration with self-registration on, with `key`.
    #[must_use]
    pub fn with_registration(self, key: impl Into<String>) -> Self {
        ServiceConfig {
            registration_key: Some(key.into()),
            self_registration: true,
            ..self
        }
    }

    /// This configuration with `skew` as the largest clock skew accepted.
    #[must_use]
    pub fn with_max_clock_skew(self, skew: std::time::Duration) -> Self {
        ServiceConfig {
            max_clock_skew: skew,
            ..self
        }
    }

    /// This configuration keeping at most `bytes` of a job's output.
    #[must_use]
    pub fn with_max_job_output(self, bytes: usize) -> Self {
        ServiceConfig {
            max_job_output: bytes,
            ..self
        }
    }
}

/// The server side of the OCO agent protocol over a store: see the [module docs](self).
///
/// Cheap to clone (one `Arc`); every clone shares the reply reservations and the last-seen
/// times noted.
///
/// # Examples
///
/// A computer's first hello, answered on an in-memory store:
///
/// ```
/// use std::sync::Arc;
///
/// use oco_agent_protocol::agent::{hello_body, HelloData};
/// use oco_agent_protocol::cache::CachedStore;
/// use oco_agent_protocol::keys::CountingKeys;
/// use oco_agent_protocol::service::{AgentService, Body, Request, ServiceConfig, Status};
/// use oco_agent_protocol::signature::{sign, verify};
/// use oco_core::chrono::{TimeZone, Utc};
/// use oco_core::engine::Engine;
/// use oco_core::model::Name;
/// use oco_core::store::{MemoryStore, NewComputer, Store};
///
/// // The store behind the hello cache, through which every write goes.
/// let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20));
/// store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
/// let service = AgentService::new(
///     Engine::new(store.clone()),
///     ServiceConfig::new("global-agent-key"),
///     // Predictable keys for an example; a server makes them with `keys::OsKeys`.
///     Arc::new(CountingKeys::new()),
/// );
///
/// // The agent's first hello, signed with the global key.
/// let body = hello_body("uid", "pc1", 1_700_000_000.5, &HelloData::minimal());
/// let response = service.handle(Request {
///     signature: sign("global-agent-key", &body),
///     body,
///     address: Ok("10.0.0.7".parse()?),
///     now: Utc.timestamp_opt(1_700_000_001, 0).unwrap(),
/// });
/// assert_eq!(response.status, Status::Ok);
/// let Body::Json(bytes) = &response.body else {
///     unreachable!("a hello is answered in JSON");
/// };
/// // The keys of the computer, and the reply signed with the new server key.
/// let reply: serde_json::Value = serde_json::from_slice(bytes)?;
/// assert_eq!(reply["result"]["params"]["agent-key"], CountingKeys::nth(1));
/// assert_eq!(reply["result"]["params"]["server-key"], CountingKeys::nth(2));
/// let signature = response.signature.as_deref().unwrap_or_default();
/// assert!(verify(&CountingKeys::nth(2), bytes, signature));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AgentService(Arc<Shared>);

struct Shared {
    engine: Engine<Arc<CachedStore>>,
    config: ServiceConfig,
    keys: Arc<dyn KeySource>,
    /// The reply reservations this service stored.
    replies: Replies,
    /// Last-seen times of authenticated requests other than hellos, until [`AgentService::flush`].
    seen: Mutex<HashMap<ComputerId, DateTime<Utc>>>,
}

impl std::fmt::Debug for AgentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentService")
            .field("engine", &self.0.engine.options())
            .finish_non_exhaustive()
    }
}

/// One agent request, as the transport received it.
#[derive(Debug, Clone)]
pub struct Request<B> {
    /// The body: the exact bytes the agent signed.
    pub body: B,
    /// The agent's signature header ([`signature::AGENT_SIGNATURE`]).
    pub signature: String,
    /// The agent's address as IP constraints see it, or why the transport could not tell it
    /// (a malformed forwarding header): only a hello needs it, so only a hello is refused for it.
    pub address: Result<IpAddr, String>,
    /// The time of the request.
    pub now: DateTime<Utc>,
}

/// The status of a [`Response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// 200.
    Ok,
    /// 400: a malformed request.
    BadRequest,
    /// 401: authentication failed.
    Unauthorized,
    /// 413: the body is over the transport's limit ([`Refusal::too_large`]).
    PayloadTooLarge,
    /// 500: the store failed; nothing was written.
    InternalServerError,
}

impl Status {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::PayloadTooLarge => 413,
            Status::InternalServerError => 500,
        }
    }
}

/// What a [`Response`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// A JSON reply (`application/json`), signed.
    Json(Vec<u8>),
    /// A refusal or failure in plain text (`text/plain; charset=utf-8`).
    Text(String),
    /// A package's payload: the transport streams the file (`application/octet-stream`), or
    /// answers [`PayloadRef::missing`] if there is none.
    Payload(PayloadRef),
}

/// The payload archive of a package, for the transport to stream.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::service::PayloadRef;
/// use oco_core::model::PackageId;
///
/// let payload = PayloadRef { package: PackageId(3) };
/// assert_eq!(payload.file_name(), "3.zip");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRef {
    /// The package.
    pub package: PackageId,
}

impl PayloadRef {
    /// The file name the archive is sent as (`<id>.zip`).
    pub fn file_name(&self) -> String {
        format!("{}.zip", self.package.0)
    }

    /// The answer when the package has no payload file: 400 `No payload for package N`.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::service::{Body, PayloadRef, Status};
    /// use oco_core::model::PackageId;
    ///
    /// // The transport found no file to stream.
    /// let missing = PayloadRef { package: PackageId(3) }.missing();
    /// assert_eq!(missing.status, Status::BadRequest);
    /// assert_eq!(missing.body, Body::Text("No payload for package 3".into()));
    /// assert_eq!(missing.content_type(), "text/plain; charset=utf-8");
    /// ```
    pub fn missing(&self) -> Response {
        Response::refused(
            Status::BadRequest,
            format!("No payload for package {}", self.package),
        )
    }
}

/// What happened, for the transport's log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A hello was answered.
    Hello {
        /// Jobs handed out.
        delivered: u32,
        /// Pending jobs held.
        held: u32,
        /// Whether the answer came from the hello cache.
        cached: bool,
        /// Whether keys were sent (a key exchange).
        keys_sent: bool,
    },
    /// A job report was answered.
    Report {
        /// The job.
        job: JobId,
        /// Whether it was applied, or why not.
        disposition: Disposition,
        /// The state the report wrote to the job (`None` if it wrote none: ignored, or a
        /// success recorded on a deleted job).
        state: Option<JobState>,
    },
    /// A payload is to be sent.
    Download {
        /// The package.
        package: PackageId,
    },
    /// `update`, `events` or `passwords` was answered.
    Minimal,
    /// The request was refused (400, 401, 413); the reason is the body.
    Refused,
    /// The store failed (500); the detail is not sent.
    Failed {
        /// What failed.
        error: String,
    },
}

/// The answer to a [`Request`].
#[derive(Debug)]
#[must_use = "a response is for the transport to send"]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The body.
    pub body: Body,
    /// The signature header to send ([`signature::SERVER_SIGNATURE`]), over exactly the JSON
    /// bytes.
    pub signature: Option<String>,
    /// Rule re-evaluation the request calls for, to run after answering
    /// ([`Engine::follow_up`]).
    pub follow_up: Option<FollowUp>,
    /// A computer this request registered.
    pub registered: Option<ComputerId>,
    /// The request's method, when the body named one the protocol knows.
    pub method: Option<&'static str>,
    /// The agent's hostname, when the body said it.
    pub hostname: Option<String>,
    /// What happened, for the log.
    pub outcome: Outcome,
}

/// A request refused before it is answered: the status and the plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 401 or 413.
    pub status: Status,
    /// Why, as the agent is told.
    pub reason: String,
}

/// A refusal with `status` and `reason`.
fn refuse(status: Status, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

impl Refusal {
    /// The refusal of a body over the transport's limit of `limit` bytes (413).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::service::{Body, Refusal, Response};
    ///
    /// let response = Response::from(Refusal::too_large(1024));
    /// assert_eq!(response.status.code(), 413);
    /// assert_eq!(
    ///     response.body,
    ///     Body::Text("Request body too large: the limit is 1024 bytes".into())
    /// );
    /// ```
    pub fn too_large(limit: usize) -> Refusal {
        refuse(
            Status::PayloadTooLarge,
            format!("Request body too large: the limit is {limit} bytes"),
        )
    }

    /// The refusal of a request the transport could not read (400), saying why.
    pub fn bad_request(reason: impl Into<String>) -> Refusal {
        refuse(Status::BadRequest, reason)
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Self {
        Response::refused(refusal.status, refusal.reason)
    }
}

impl Response {
    /// A refusal with `status` and `reason` as the plain-text body.
    fn refused(status: Status, reason: impl Into<String>) -> Response {
        Response {
            status,
            body: Body::Text(reason.into()),
            signature: None,
            follow_up: None,
            registered: None,
            method: None,
            hostname: None,
            outcome: Outcome::Refused,
        }
    }

    /// A 500 whose detail is logged, not sent.
    pub fn internal(error: impl Into<String>) -> Response {
        Response {
            outcome: Outcome::Failed {
                error: error.into(),
            },
            ..Response::refused(Status::InternalServerError, "Internal server error")
        }
    }

    /// A signed JSON reply.
    fn json<T: Serialize>(value: &T, server_key: Option<&str>, outcome: Outcome) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status: Status::Ok,
                signature: server_key.map(|key| signature::sign(key, &body)),
                body: Body::Json(body),
                follow_up: None,
                registered: None,
                method: None,
                hostname: None,
                outcome,
            },
            Err(error) => Response::internal(format!("encoding a reply: {error}")),
        }
    }

    /// The content type of the body.
    pub fn content_type(&self) -> &'static str {
        match self.body {
            Body::Json(_) => "application/json",
            Body::Text(_) => "text/plain; charset=utf-8",
            Body::Payload(_) => "application/octet-stream",
        }
    }
}

impl AgentService {
    /// A service over `engine`'s store (with its hello cache), checking signatures with the keys
    /// of `config` and making new agent and server keys with `keys`.
    pub fn new(
        engine: Engine<Arc<CachedStore>>,
        config: ServiceConfig,
        keys: Arc<dyn KeySource>,
    ) -> Self {
        AgentService(Arc::new(Shared {
            engine,
            config,
            keys,
            replies: Replies::default(),
            seen: Mutex::new(HashMap::new()),
        }))
    }

    /// The engine the service decides with.
    pub fn engine(&self) -> &Engine<Arc<CachedStore>> {
        &self.0.engine
    }

    /// What the headers decide, before a byte of the body is read: the content type must be
    /// exactly `application/json` (400) and the signature header present and text (401).
    /// Returns the signature.
    ///
    /// # Errors
    ///
    /// The refusal to answer with, without reading the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::service::{AgentService, Status};
    ///
    /// let signature = AgentService::check_headers(Some(b"application/json"), Some(b"f598"))?;
    /// assert_eq!(signature, "f598");
    ///
    /// let refusal =
    ///     AgentService::check_headers(Some(b"application/json; charset=utf-8"), Some(b"f598"))
    ///         .unwrap_err();
    /// assert_eq!((refusal.status, refusal.reason.as_str()), (Status::BadRequest, "Content type mismatch"));
    /// let refusal = AgentService::check_headers(Some(b"application/json"), None).unwrap_err();
    /// assert_eq!((refusal.status, refusal.reason.as_str()), (Status::Unauthorized, "Missing signature"));
    /// # Ok::<(), oco_agent_protocol::service::Refusal>(())
    /// ```
    pub fn check_headers<'h>(
        content_type: Option<&[u8]>,
        signature: Option<&'h [u8]>,
    ) -> Result<&'h str, Refusal> {
        if content_type != Some(b"application/json") {
            return Err(refuse(Status::BadRequest, "Content type mismatch"));
        }
        signature
            .and_then(|value| std::str::from_utf8(value).ok())
            .ok_or_else(|| refuse(Status::Unauthorized, "Missing signature"))
    }

    /// The exchange that answers `request`, for a driver to run.
    ///
    /// The driver resumes it with the store to read from, performs each write it asks for (on
    /// that store, or batched with other requests' writes into one commit of the same data),
    /// and hands back the result, until it ends with the [`Response`]. [`handle`](Self::handle)
    /// is the simplest such driver.
    ///
    /// # Examples
    ///
    /// A driver by hand (`service` answers over `store`, as in the [type's example](Self)):
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use oco_agent_protocol::agent::{hello_body, HelloData};
    /// # use oco_agent_protocol::cache::CachedStore;
    /// # use oco_agent_protocol::keys::CountingKeys;
    /// # use oco_agent_protocol::service::{AgentService, Request, ServiceConfig, Status};
    /// # use oco_agent_protocol::signature::sign;
    /// # use oco_core::chrono::{TimeZone, Utc};
    /// # use oco_core::engine::Engine;
    /// # use oco_core::model::Name;
    /// # use oco_core::store::{MemoryStore, NewComputer, Store};
    /// # let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20));
    /// # let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// # let service = AgentService::new(
    /// #     Engine::new(store.clone()),
    /// #     ServiceConfig::new("global-agent-key"),
    /// #     Arc::new(CountingKeys::new()),
    /// # );
    /// use oco_core::engine::{Operation, Progress, Step, Write, Written};
    ///
    /// let body = hello_body("uid", "pc1", 1_700_000_000.5, &HelloData::minimal());
    /// let mut exchange = service.exchange(Request {
    ///     signature: sign("global-agent-key", &body),
    ///     body,
    ///     address: Ok("10.0.0.7".parse()?),
    ///     now: Utc.timestamp_opt(1_700_000_001, 0).unwrap(),
    /// });
    /// let mut writes = 0;
    /// let response = loop {
    ///     let write = match exchange.resume(store.as_ref()) {
    ///         Step::Done(response) => break response,
    ///         Step::Write(write) => write,
    ///     };
    ///     writes += 1;
    ///     let written = match write {
    ///         Write::Apply(set) => Written::Applied(store.apply(&set)),
    ///         Write::CreateComputer(computer) => Written::Created(store.create_computer(computer)),
    ///     };
    ///     // `Resume` after a lost race: the exchange reads and decides again.
    ///     if let Progress::Done(response) = exchange.written(written) {
    ///         break response;
    ///     }
    /// };
    /// assert_eq!((response.status, writes), (Status::Ok, 1));
    /// // The hello wrote the computer's new keys before it was answered.
    /// assert_eq!(store.credentials(pc.id)?.agent_key, Some(CountingKeys::nth(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exchange<B: AsRef<[u8]>>(&self, request: Request<B>) -> Exchange<B> {
        Exchange {
            service: self.clone(),
            attempts_left: self.0.engine.options().agent_attempts.get(),
            request,
            head: None,
            stage: Stage::Start,
            registered: None,
            registered_by_name: false,
        }
    }

    /// Answers `request` on the engine's store, each write applied directly: the
    /// [`exchange`](Self::exchange) run by [`oco_core::engine::run`]. See the [type's
    /// example](Self).
    pub fn handle<B: AsRef<[u8]>>(&self, request: Request<B>) -> Response {
        oco_core::engine::run(self.0.engine.store().as_ref(), self.exchange(request))
    }

    /// The last-seen times noted since the last call, as an operation that writes them (`None`
    /// when there are none). Give the times it could not write back with
    /// [`requeue`](Self::requeue).
    ///
    /// A hello records its time itself (with the computer's credentials); the other requests of
    /// an agent only note theirs, for a driver to write every few seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use oco_agent_protocol::agent::{hello_body, HelloData};
    /// # use oco_agent_protocol::cache::CachedStore;
    /// # use oco_agent_protocol::keys::CountingKeys;
    /// # use oco_agent_protocol::service::{AgentService, Request, ServiceConfig, Status};
    /// # use oco_agent_protocol::signature::sign;
    /// # use oco_core::chrono::{TimeZone, Utc};
    /// # use oco_core::engine::Engine;
    /// # use oco_core::model::Name;
    /// # use oco_core::store::{MemoryStore, NewComputer, Store};
    /// # let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20));
    /// # let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
    /// # let service = AgentService::new(
    /// #     Engine::new(store.clone()),
    /// #     ServiceConfig::new("global-agent-key"),
    /// #     Arc::new(CountingKeys::new()),
    /// # );
    /// use oco_agent_protocol::agent::plain_body;
    ///
    /// let hello = hello_body("uid", "pc1", 1_700_000_000.5, &HelloData::minimal());
    /// let at = |seconds| Utc.timestamp_opt(seconds, 0).unwrap();
    /// let response = service.handle(Request {
    ///     signature: sign("global-agent-key", &hello),
    ///     body: hello,
    ///     address: Ok("10.0.0.7".parse()?),
    ///     now: at(1_700_000_001),
    /// });
    /// assert_eq!(response.status, Status::Ok);
    /// assert_eq!(service.flush().map(|_| ()), None); // the hello wrote its own
    ///
    /// // A later request, signed with the key the hello gave the agent.
    /// let update = plain_body("oco.agent.update", "uid", "pc1", 1_700_000_060.5);
    /// let response = service.handle(Request {
    ///     signature: sign(&CountingKeys::nth(1), &update),
    ///     body: update,
    ///     address: Ok("10.0.0.7".parse()?),
    ///     now: at(1_700_000_061),
    /// });
    /// assert_eq!(response.status, Status::Ok);
    ///
    /// let op = service.flush().expect("a time noted");
    /// match oco_core::engine::run(store.as_ref(), op) {
    ///     Ok(recorded) => assert_eq!(recorded.written, 1),
    ///     Err(not_recorded) => service.requeue(&not_recorded.unwritten), // for the next flush
    /// }
    /// assert_eq!(store.computer(pc.id)?.last_seen, Some(at(1_700_000_061)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Option<RecordSeenOp> {
        let pending: Vec<(ComputerId, DateTime<Utc>)> = self.seen().drain().collect();
        (!pending.is_empty()).then(|| self.0.engine.record_seen_op(pending))
    }

    /// Notes last-seen times again that a [`flush`](Self::flush) could not write.
    pub fn requeue(&self, unwritten: &[(ComputerId, DateTime<Utc>)]) {
        for &(computer, at) in unwritten {
            self.saw(computer, at);
        }
    }

    fn saw(&self, computer: ComputerId, at: DateTime<Utc>) {
        let mut seen = self.seen();
        let entry = seen.entry(computer).or_insert(at);
        *entry = (*entry).max(at);
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<ComputerId, DateTime<Utc>>> {
        self.0.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The methods of the protocol.
const METHODS: [&str; 6] = [
    "oco.agent.hello",
    "oco.agent.update_job_state",
    "oco.agent.download",
    "oco.agent.update",
    "oco.agent.events",
    "oco.agent.passwords",
];

/// What the exchange keeps of the request's head.
#[derive(Debug)]
struct Parsed {
    /// One of [`METHODS`], or `None` for another.
    method: Option<&'static str>,
    hostname: String,
    timestamp: f64,
    package: Option<i64>,
    agent_version: Option<String>,
}

/// Where an [`Exchange`] is.
enum Stage {
    /// Nothing read yet.
    Start,
    /// A hello: reading, or its write pending.
    Hello(Option<Box<HelloWrite>>),
    /// Registering the computer (a [`Write::CreateComputer`] pending).
    Registering,
    /// A job report: the report (validated after authentication), and its write pending.
    Report {
        request: ReportRequest,
        pending: Option<Box<ReportWrite>>,
    },
    /// A download: authenticated and confirmed, the pending job to check.
    Download {
        package: PackageId,
        computer: Option<ComputerId>,
    },
    /// `update`, `events`, `passwords`: the reservation write pending.
    Minimal(Option<StampWrite>),
    /// Over.
    Done,
}

/// A hello's write, waiting for its result.
struct HelloWrite {
    computer: ComputerId,
    issued: f64,
    reserve: f64,
    grant: HelloGrant,
    planned: HelloOutlook,
}

/// A report's write, waiting for its result.
struct ReportWrite {
    op: ReportOp,
    job: JobId,
    computer: ComputerId,
    server_key: Option<String>,
    stamp: Stamp,
    /// The report's outcome when it wrote nothing itself (only the stamp is written).
    decided: Option<(Reported, FollowUp)>,
}

/// A reply stamp's write, waiting for its result.
struct StampWrite {
    computer: ComputerId,
    server_key: Option<String>,
    stamp: Stamp,
}

/// The timestamp of a reply, and the reservation to store first if the stored one does not
/// cover it.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    issued: f64,
    reserve: Option<f64>,
}

/// One request being answered: an [`Operation`] whose output is the [`Response`].
pub struct Exchange<B> {
    service: AgentService,
    request: Request<B>,
    head: Option<Parsed>,
    stage: Stage,
    attempts_left: usize,
    /// The computer this exchange registered, whose first hello may be signed with the
    /// registration key.
    registered: Option<ComputerId>,
    /// A concurrent request registered the hostname first: the computer found under it next is
    /// the one registered.
    registered_by_name: bool,
}

impl<B> std::fmt::Debug for Exchange<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<B: AsRef<[u8]>> Operation for Exchange<B> {
    type Output = Response;

    fn resume(&mut self, store: &dyn Store) -> Step<Response> {
        let step = self.step(store);
        match step {
            Step::Done(response) => Step::Done(self.finish(response)),
            write => write,
        }
    }

    fn written(&mut self, written: Written) -> Progress<Response> {
        let progress = self.after_write(written);
        match progress {
            Progress::Done(response) => Progress::Done(self.finish(response)),
            resume => resume,
        }
    }
}

impl<B: AsRef<[u8]>> Exchange<B> {
    /// Names the request in the response, and ends the exchange.
    fn finish(&mut self, mut response: Response) -> Response {
        self.stage = Stage::Done;
        if let Some(head) = self.head.take() {
            response.method = head.method;
            response.hostname = Some(head.hostname);
        }
        response.registered = response.registered.or(self.registered);
        response
    }

    fn body(&self) -> &[u8] {
        self.request.body.as_ref()
    }

    fn step(&mut self, store: &dyn Store) -> Step<Response> {
        if self.attempts_left == 0 {
            let method = self
                .head
                .as_ref()
                .and_then(|head| head.method)
                .unwrap_or("request");
            return Step::Done(Response::internal(format!(
                "{method} lost {} races in a row",
                self.service.0.engine.options().agent_attempts
            )));
        }
        self.attempts_left -= 1;
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Start => match self.start() {
                Ok(stage) => {
                    self.stage = stage;
                    self.step(store)
                }
                Err(refusal) => Step::Done(refusal.into()),
            },
            Stage::Hello(_) | Stage::Registering => self.hello(store),
            Stage::Report { request, .. } => self.report(store, request),
            Stage::Download { package, computer } => self.download(store, package, computer),
            Stage::Minimal(_) => self.minimal(store),
            Stage::Done => Step::Done(Response::internal("the exchange was resumed after its end")),
        }
    }

    /// Parses the head, checks the clock and picks the method's stage.
    fn start(&mut self) -> Result<Stage, Refusal> {
        // The start costs no attempt.
        self.attempts_left += 1;
        let head: Head<'_> = serde_json::from_slice(self.request.body.as_ref())
            .map_err(|error| refuse(Status::BadRequest, format!("Invalid request: {error}")))?;
        let parsed = Parsed {
            method: METHODS.iter().copied().find(|&known| known == head.method),
            hostname: head.params.hostname.to_string(),
            timestamp: head.params.timestamp,
            package: head.params.package_id,
            agent_version: head
                .params
                .data
                .agent_version
                .as_deref()
                .map(printable_version),
        };
        let limit = self.service.0.config.max_clock_skew;
        let ahead = parsed.timestamp - timestamp::epoch_seconds(self.request.now);
        self.head = Some(parsed);
        // NaN is refused too (serde_json reads none, but nothing here should depend on that).
        if ahead.is_nan() || ahead > limit.as_secs_f64() {
            return Err(refuse(
                Status::Unauthorized,
                format!(
                    "Agent timestamp too far ahead: more than {} s ahead of the server clock \
                     (check the agent's clock)",
                    limit.as_secs()
                ),
            ));
        }
        let Some(method) = self.head.as_ref().and_then(|head| head.method) else {
            return Err(refuse(
                Status::BadRequest,
                format!("Unknown method `{}`", head.method),
            ));
        };
        match method {
            "oco.agent.hello" => match &self.request.address {
                Ok(_) => Ok(Stage::Hello(None)),
                Err(reason) => Err(refuse(Status::BadRequest, reason.clone())),
            },
            "oco.agent.update_job_state" => {
                let request: ReportRequest =
                    serde_json::from_slice(self.body()).map_err(|error| {
                        refuse(Status::BadRequest, format!("Invalid job report: {error}"))
                    })?;
                Ok(Stage::Report {
                    request,
                    pending: None,
                })
            }
            "oco.agent.download" => {
                let package = self
                    .head
                    .as_ref()
                    .and_then(|head| head.package)
                    .map(PackageId)
                    .ok_or_else(|| {
                        refuse(
                            Status::BadRequest,
                            "Invalid request: missing field `package-id`",
                        )
                    })?;
                Ok(Stage::Download {
                    package,
                    computer: None,
                })
            }
            "oco.agent.update" | "oco.agent.events" | "oco.agent.passwords" => {
                Ok(Stage::Minimal(None))
            }
            other => Err(refuse(
                Status::BadRequest,
                format!("Unknown method `{other}`"),
            )),
        }
    }

    fn head(&self) -> &Parsed {
        // Invariant: every stage after the start has parsed the head.
        self.head.as_ref().unwrap_or(&EMPTY_HEAD)
    }

    // -----------------------------------------------------------------------------------------
    // Hello.

    fn hello(&mut self, store: &dyn Store) -> Step<Response> {
        let address = match &self.request.address {
            Ok(address) => *address,
            Err(_) => return Step::Done(Response::internal("a hello without an address")),
        };
        // The checks first, on the computer's credentials (one small read): a refused hello
        // never reads a planner snapshot nor fills the cache.
        let lookup = match store.agent_lookup(&self.head().hostname) {
            Ok(Some(lookup)) => lookup,
            Ok(None) => return self.register(),
            Err(error) => return Step::Done(store_failure(&error)),
        };
        if std::mem::take(&mut self.registered_by_name) {
            self.registered = Some(lookup.computer);
        }
        let shared = &self.service.0;
        let head = self.head();
        let now = self.request.now;
        let global = shared.config.global_key.as_str();
        let registration = shared.config.registration_key.as_deref();
        let mut first_contact = vec![global];
        if self.registered == Some(lookup.computer) {
            first_contact.extend(registration);
        }
        let mut shared_keys = vec![global];
        shared_keys.extend(registration);
        let body = self.request.body.as_ref();
        let verifies = |key: &str| signature::verify(key, body, &self.request.signature);
        let grant = match decide_hello(
            &lookup.credentials,
            verifies,
            &first_contact,
            &shared_keys,
            head.timestamp,
            shared.keys.as_ref(),
        ) {
            Ok(Ok(grant)) => grant,
            Ok(Err(HelloRefusal::Signature)) => {
                return Step::Done(Response::refused(Status::Unauthorized, "Invalid signature"))
            }
            Ok(Err(HelloRefusal::TimestampTooOld)) => {
                return Step::Done(Response::refused(
                    Status::Unauthorized,
                    "Agent timestamp too old",
                ))
            }
            Err(error) => return Step::Done(Response::internal(format!("no new keys: {error}"))),
        };
        let settings = shared.engine.options().settings;
        let planned = match shared
            .engine
            .store()
            .hello_outlook(&lookup, now, address, &settings)
        {
            Ok(planned) => planned,
            // The computer was deleted between its lookup and its planner snapshot.
            Err(StoreError::NotFound { .. }) => {
                self.stage = Stage::Hello(None);
                return self.step(store);
            }
            Err(error) => return Step::Done(store_failure(&error)),
        };
        let AgentLookup {
            computer,
            credentials: stored,
            ..
        } = lookup;
        // A hello writes the credentials anyway: it always renews the reservation.
        let (issued, reserve) = Replies::reserve(now, stored.last_reply);
        let credentials = AgentCredentials {
            last_reply: Some(reserve),
            last_contact: Some(AgentContact {
                at: now,
                address,
                agent_version: head.agent_version.clone(),
            }),
            ..grant.credentials.clone()
        };
        let mut set = ChangeSet::default();
        // The credentials the checks passed on are the ones the commit expects: if they changed
        // meanwhile, it conflicts and the hello starts over.
        set.push(Change::SetCredentials {
            computer,
            expected: stored,
            credentials,
        });
        set.extend(planned.changes.clone());
        self.stage = Stage::Hello(Some(Box::new(HelloWrite {
            computer,
            issued,
            reserve,
            grant,
            planned,
        })));
        Step::Write(Write::Apply(set))
    }

    /// An unknown computer: registers it if it signed with the registration key and
    /// self-registration is on.
    fn register(&mut self) -> Step<Response> {
        let config = &self.service.0.config;
        let key = match &config.registration_key {
            Some(key) if config.self_registration => key,
            _ => {
                return Step::Done(Response::refused(
                    Status::Unauthorized,
                    "Client self-registration is disabled",
                ))
            }
        };
        if !signature::verify(key, self.body(), &self.request.signature) {
            return Step::Done(Response::refused(Status::Unauthorized, "Invalid signature"));
        }
        let name = match Name::hostname("hostname", &self.head().hostname) {
            Ok(name) => name,
            Err(error) => {
                return Step::Done(Response::refused(
                    Status::BadRequest,
                    format!("Invalid hostname: {error}"),
                ))
            }
        };
        self.stage = Stage::Registering;
        Step::Write(Write::CreateComputer(NewComputer::new(name)))
    }

    fn hello_written(&mut self, pending: HelloWrite, written: Written) -> Progress<Response> {
        match written {
            Written::Applied(Ok(_)) => {}
            Written::Applied(Err(StoreError::Conflict { .. })) => {
                self.stage = Stage::Hello(None);
                return Progress::Resume;
            }
            Written::Applied(Err(error)) | Written::Created(Err(error)) => {
                return Progress::Done(store_failure(&error))
            }
            Written::Created(Ok(_)) => {
                return Progress::Done(Response::internal("a computer created for a hello"))
            }
        }
        let shared = &self.service.0;
        // No last-seen note: the credentials just written hold the contact, which is the
        // computer's last-seen time (a hello writes one row).
        shared.replies.stored(
            pending.computer,
            pending.issued,
            pending.reserve,
            self.request.now,
        );
        let outlook = &pending.planned.outlook;
        let software_jobs = outlook.software_jobs_json();
        let params = HelloParams {
            server_key: pending.grant.send_server_key.as_deref(),
            agent_key: pending.grant.send_agent_key.as_deref(),
            update: 0,
            software_jobs: &software_jobs,
        };
        Progress::Done(Response::json(
            &Reply::new(params, pending.issued),
            pending.grant.credentials.server_key.as_deref(),
            Outcome::Hello {
                delivered: outlook.delivered(),
                held: outlook.held(),
                cached: pending.planned.hit,
                keys_sent: pending.grant.send_agent_key.is_some(),
            },
        ))
    }

    fn registered_written(&mut self, written: Written) -> Progress<Response> {
        self.stage = Stage::Hello(None);
        match written {
            Written::Created(Ok(computer)) => {
                self.registered = Some(computer.id);
                Progress::Resume
            }
            // Registered by a concurrent hello meanwhile.
            Written::Created(Err(StoreError::Duplicate { .. })) => {
                self.registered_by_name = true;
                Progress::Resume
            }
            Written::Created(Err(error)) | Written::Applied(Err(error)) => {
                Progress::Done(store_failure(&error))
            }
            Written::Applied(Ok(_)) => Progress::Done(Response::internal(
                "a change set applied for a registration",
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Requests other than a hello.

    /// Authenticates a request other than a hello on what was read (`None`: no such computer):
    /// signed with the computer's own key, with a timestamp not older than the last hello's.
    fn check_signed(&self, found: Option<AgentLookup>) -> Result<AgentLookup, Refusal> {
        let lookup = found.ok_or_else(|| refuse(Status::Unauthorized, "Unknown computer"))?;
        let signed = lookup
            .credentials
            .agent_key
            .as_deref()
            .is_some_and(|key| signature::verify(key, self.body(), &self.request.signature));
        if !signed {
            return Err(refuse(Status::Unauthorized, "Invalid signature"));
        }
        if lookup
            .credentials
            .last_hello
            .is_some_and(|last| self.head().timestamp < last)
        {
            return Err(refuse(Status::Unauthorized, "Agent timestamp too old"));
        }
        self.service.saw(lookup.computer, self.request.now);
        Ok(lookup)
    }

    /// The stamp of a reply to `computer`, whose credentials the request read.
    fn stamp(&self, computer: ComputerId, credentials: &AgentCredentials) -> Stamp {
        let now = self.request.now;
        let next = if credentials.previous_agent_key.is_some() {
            // The credentials are written anyway (the previous key's grace period ends).
            let (reply, reserve) = Replies::reserve(now, credentials.last_reply);
            NextReply::Reserve { reply, reserve }
        } else {
            self.service
                .0
                .replies
                .next(computer, now, credentials.last_reply)
        };
        match next {
            NextReply::Covered(issued) => Stamp {
                issued,
                reserve: None,
            },
            NextReply::Reserve { reply, reserve } => Stamp {
                issued: reply,
                reserve: Some(reserve),
            },
        }
    }

    /// Notes, once a stamp's write is committed, the reservation it stored.
    fn stamp_committed(&self, computer: ComputerId, stamp: Stamp) {
        if let Some(reserve) = stamp.reserve {
            self.service
                .0
                .replies
                .stored(computer, stamp.issued, reserve, self.request.now);
        }
    }

    fn minimal(&mut self, store: &dyn Store) -> Step<Response> {
        let found = match store.agent_lookup(&self.head().hostname) {
            Ok(found) => found,
            Err(error) => return Step::Done(store_failure(&error)),
        };
        let lookup = match self.check_signed(found) {
            Ok(lookup) => lookup,
            Err(refused) => return Step::Done(refused.into()),
        };
        let stamp = self.stamp(lookup.computer, &lookup.credentials);
        let server_key = lookup.credentials.server_key.clone();
        match signed_request_write(lookup.computer, &lookup.credentials, stamp) {
            None => Step::Done(Response::json(
                &Reply::new(NoParams {}, stamp.issued),
                server_key.as_deref(),
                Outcome::Minimal,
            )),
            Some(change) => {
                self.stage = Stage::Minimal(Some(StampWrite {
                    computer: lookup.computer,
                    server_key,
                    stamp,
                }));
                Step::Write(Write::Apply(ChangeSet {
                    changes: vec![change],
                }))
            }
        }
    }

    fn minimal_written(&mut self, pending: StampWrite, written: Written) -> Progress<Response> {
        match written {
            Written::Applied(Ok(_)) => {
                self.stamp_committed(pending.computer, pending.stamp);
                Progress::Done(Response::json(
                    &Reply::new(NoParams {}, pending.stamp.issued),
                    pending.server_key.as_deref(),
                    Outcome::Minimal,
                ))
            }
            Written::Applied(Err(StoreError::Conflict { .. })) => {
                self.stage = Stage::Minimal(None);
                Progress::Resume
            }
            Written::Applied(Err(error)) | Written::Created(Err(error)) => {
                Progress::Done(store_failure(&error))
            }
            Written::Created(Ok(_)) => {
                Progress::Done(Response::internal("a computer created for a reply"))
            }
        }
    }

    fn report(&mut self, store: &dyn Store, request: ReportRequest) -> Step<Response> {
        let data = &request.params.data;
        let parsed_job = data.job_id.parse();
        // One read for the authentication and the job's report snapshot, which is read only if
        // the job id parses; its outcome is looked at after the authentication, as if read
        // after it.
        let read = || -> StoreResult<(Option<AgentLookup>, Option<StoreResult<ReportSnapshot>>)> {
            let found = store.agent_lookup(&self.head().hostname)?;
            let snapshot = match (&found, parsed_job) {
                (Some(_), Some((job, _))) => Some(store.report_snapshot(job)),
                _ => None,
            };
            Ok((found, snapshot))
        };
        let (found, snapshot) = match read() {
            Ok(read) => read,
            Err(error) => return Step::Done(store_failure(&error)),
        };
        let lookup = match self.check_signed(found) {
            Ok(lookup) => lookup,
            Err(refused) => return Step::Done(refused.into()),
        };
        let unknown_job =
            || Response::refused(Status::BadRequest, format!("Unknown job {}", data.job_id));
        let Some((job, attempt)) = parsed_job else {
            return Step::Done(unknown_job());
        };
        let report = match self.agent_report(&request, job, attempt) {
            Ok(report) => report,
            Err(refused) => return Step::Done(refused.into()),
        };
        let snapshot = match snapshot {
            Some(Ok(snapshot)) => snapshot,
            Some(Err(StoreError::NotFound { .. })) | None => return Step::Done(unknown_job()),
            Some(Err(error)) => return Step::Done(store_failure(&error)),
        };
        let now = self.request.now;
        let mut op = self
            .service
            .0
            .engine
            .report_op(lookup.computer, report, now);
        let stamp = self.stamp(lookup.computer, &lookup.credentials);
        let stamp_write = signed_request_write(lookup.computer, &lookup.credentials, stamp);
        let (mut set, decided) = match op.decide(&snapshot) {
            Step::Write(Write::Apply(set)) => (set, None),
            Step::Write(Write::CreateComputer(_)) => {
                return Step::Done(Response::internal("a report asked to create a computer"))
            }
            Step::Done(Ok(done)) => (ChangeSet::default(), Some(done)),
            Step::Done(Err(error)) => return Step::Done(engine_failure(error)),
        };
        let mut pending = ReportWrite {
            op,
            job,
            computer: lookup.computer,
            server_key: lookup.credentials.server_key.clone(),
            stamp,
            decided,
        };
        set.changes.extend(stamp_write);
        if set.is_empty() {
            return Step::Done(self.report_reply(&mut pending));
        }
        self.stage = Stage::Report {
            request,
            pending: Some(Box::new(pending)),
        };
        Step::Write(Write::Apply(set))
    }

    /// The report the request describes, validated (after the authentication).
    fn agent_report(
        &self,
        request: &ReportRequest,
        job: JobId,
        attempt: u32,
    ) -> Result<AgentReport, Refusal> {
        let data = &request.params.data;
        let invalid =
            |reason: String| refuse(Status::BadRequest, format!("Invalid job report: {reason}"));
        let state =
            ReportedState::from_wire_code(data.state).map_err(|e| invalid(e.to_string()))?;
        let download_progress = data
            .download_progress
            .map(|progress| {
                u8::try_from(progress)
                    .ok()
                    .filter(|p| *p <= 101)
                    .ok_or_else(|| invalid(format!("download-progress {progress} is not 0 to 101")))
            })
            .transpose()?;
        let mut report = AgentReport::new(job, attempt, state);
        report.return_code = data.return_code;
        report.download_progress = download_progress;
        report.output = data
            .message
            .clone()
            .map(|output| capped_output(output, self.service.0.config.max_job_output));
        Ok(report)
    }

    fn report_written(
        &mut self,
        request: ReportRequest,
        mut pending: ReportWrite,
        written: Written,
    ) -> Progress<Response> {
        match written {
            Written::Applied(Ok(applied)) => {
                self.stamp_committed(pending.computer, pending.stamp);
                if pending.decided.is_none() {
                    match pending.op.written(Written::Applied(Ok(applied))) {
                        Progress::Done(Ok(done)) => pending.decided = Some(done),
                        Progress::Done(Err(error)) => return Progress::Done(engine_failure(error)),
                        Progress::Resume => {
                            return Progress::Done(Response::internal(
                                "the report asked to be resumed after its write",
                            ))
                        }
                    }
                }
                Progress::Done(self.report_reply(&mut pending))
            }
            Written::Applied(Err(StoreError::Conflict { .. })) => {
                self.stage = Stage::Report {
                    request,
                    pending: None,
                };
                Progress::Resume
            }
            // The computer was deleted since the report was authenticated (its job is a
            // tombstone now, with nothing to record the success on): answered as the agent's
            // next request will be.
            Written::Applied(Err(StoreError::NotFound {
                what: "computer", ..
            })) => Progress::Done(Response::refused(Status::Unauthorized, "Unknown computer")),
            Written::Applied(Err(error)) | Written::Created(Err(error)) => {
                Progress::Done(store_failure(&error))
            }
            Written::Created(Ok(_)) => {
                Progress::Done(Response::internal("a computer created for a report"))
            }
        }
    }

    fn report_reply(&self, pending: &mut ReportWrite) -> Response {
        let Some((reported, follow_up)) = pending.decided.take() else {
            return Response::internal("a report answered before it was decided");
        };
        let params = ReportReplyParams {
            job_succeeded: reported.job_succeeded,
        };
        let state = reported
            .changes
            .changes
            .iter()
            .find_map(|change| match change {
                Change::UpdateJob { job, .. } if job.id == pending.job => Some(job.state),
                _ => None,
            });
        let mut response = Response::json(
            &Reply::new(params, pending.stamp.issued),
            pending.server_key.as_deref(),
            Outcome::Report {
                job: pending.job,
                disposition: reported.disposition,
                state,
            },
        );
        response.follow_up = (!follow_up.is_empty()).then_some(follow_up);
        response
    }

    fn download(
        &mut self,
        store: &dyn Store,
        package: PackageId,
        computer: Option<ComputerId>,
    ) -> Step<Response> {
        let computer = match computer {
            Some(computer) => computer,
            None => {
                let found = match store.agent_lookup(&self.head().hostname) {
                    Ok(found) => found,
                    Err(error) => return Step::Done(store_failure(&error)),
                };
                let lookup = match self.check_signed(found) {
                    Ok(lookup) => lookup,
                    Err(refused) => return Step::Done(refused.into()),
                };
                self.stage = Stage::Download {
                    package,
                    computer: Some(lookup.computer),
                };
                if lookup.credentials.previous_agent_key.is_some() {
                    // Signed with the computer's own key: the previous key's grace period ends.
                    let stamp = Stamp {
                        issued: 0.0,
                        reserve: lookup.credentials.last_reply,
                    };
                    let confirm = signed_request_write(lookup.computer, &lookup.credentials, stamp);
                    return Step::Write(Write::Apply(ChangeSet {
                        changes: confirm.into_iter().collect(),
                    }));
                }
                lookup.computer
            }
        };
        let pending = match store.planner_snapshot(computer) {
            Ok(snapshot) => snapshot
                .jobs
                .iter()
                .any(|job| job.package == package && job.state.is_pending()),
            Err(error) => return Step::Done(store_failure(&error)),
        };
        if !pending {
            return Step::Done(Response::refused(
                Status::BadRequest,
                format!("No pending job for package {package}"),
            ));
        }
        Step::Done(Response {
            status: Status::Ok,
            body: Body::Payload(PayloadRef { package }),
            signature: None,
            follow_up: None,
            registered: None,
            method: None,
            hostname: None,
            outcome: Outcome::Download { package },
        })
    }

    fn after_write(&mut self, written: Written) -> Progress<Response> {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Hello(Some(pending)) => self.hello_written(*pending, written),
            Stage::Registering => self.registered_written(written),
            Stage::Report {
                request,
                pending: Some(pending),
            } => self.report_written(request, *pending, written),
            Stage::Minimal(Some(pending)) => self.minimal_written(pending, written),
            Stage::Download { package, computer } => {
                self.stage = Stage::Download { package, computer };
                match written {
                    // A concurrent request changed them: the next request tries again.
                    Written::Applied(Ok(_) | Err(StoreError::Conflict { .. })) => {
                        // The confirmation costs no attempt.
                        self.attempts_left += 1;
                        Progress::Resume
                    }
                    Written::Applied(Err(error)) | Written::Created(Err(error)) => {
                        Progress::Done(store_failure(&error))
                    }
                    Written::Created(Ok(_)) => {
                        Progress::Done(Response::internal("a computer created for a download"))
                    }
                }
            }
            _ => Progress::Done(Response::internal("a write the exchange did not ask for")),
        }
    }
}

static EMPTY_HEAD: Parsed = Parsed {
    method: None,
    hostname: String::new(),
    timestamp: 0.0,
    package: None,
    agent_version: None,
};

/// The write after an authenticated request other than a hello, if it needs one: `last_reply`
/// becomes the stamp's reservation, and, the request being signed with the computer's own key,
/// the previous key's grace period ends. Compare-and-set against `credentials` as read: a
/// concurrent request of the same agent makes it conflict, and the request is decided again.
fn signed_request_write(
    computer: ComputerId,
    credentials: &AgentCredentials,
    stamp: Stamp,
) -> Option<Change> {
    if stamp.reserve.is_none() && credentials.previous_agent_key.is_none() {
        return None;
    }
    Some(Change::SetCredentials {
        computer,
        expected: credentials.clone(),
        credentials: AgentCredentials {
            previous_agent_key: None,
            last_reply: stamp.reserve.or(credentials.last_reply),
            ..credentials.clone()
        },
    })
}

fn store_failure(error: &StoreError) -> Response {
    Response::internal(error.to_string())
}

fn engine_failure(error: oco_core::engine::EngineError) -> Response {
    use oco_core::engine::EngineError;
    match error {
        EngineError::ForeignJob { .. } => {
            Response::refused(Status::Unauthorized, "Job of another computer")
        }
        EngineError::UnknownJob(job) => {
            Response::refused(Status::BadRequest, format!("Unknown job {job}"))
        }
        other => Response::internal(other.to_string()),
    }
}

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

/// An agent's version as kept: control characters dropped, at most [`MAX_AGENT_VERSION`]
/// characters (the rest is cut off: the version is shown, never compared).
fn printable_version(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_AGENT_VERSION)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn agent_versions_are_kept_printable_and_short() {
        assert_eq!(printable_version("1.2.0"), "1.2.0");
        assert_eq!(printable_version("1.2\u{0}\n.0"), "1.2.0");
        assert_eq!(printable_version(&"9".repeat(100)).len(), MAX_AGENT_VERSION);
    }
}
