//! What every request handler shares.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oco_agent_protocol::cache::{self, CachedStore};
use oco_agent_protocol::keys::OsKeys;
use oco_agent_protocol::service::{AgentService, ServiceConfig};
use oco_core::chrono_tz::Tz;
use oco_core::engine::{Engine, EngineOptions};
use oco_core::ipnet::IpNet;
use oco_core::store::Store;
use oco_core::Settings;
use tokio::sync::Semaphore;

use crate::agent_api::AgentState;
use crate::clock::Clock;
use crate::commit::Committer;
use crate::housekeeping::HousekeepingStatus;
use crate::metrics::Metrics;
use crate::observe::{Readiness, RequestIds, Throttle};

/// The server's shared state: the store, the clock, the group committer, options and secrets.
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    /// The same store as `store`, with its hello cache.
    cached: Arc<CachedStore>,
    store: Arc<dyn Store>,
    /// The engine over `store`, with the server's settings.
    engine: Engine<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    committer: Committer,
    settings: Settings,
    options: ServerOptions,
    secrets: Secrets,
    agent: AgentState,
    /// The agent protocol over `cached`.
    agent_service: AgentService,
    housekeeping: HousekeepingStatus,
    /// Permits for heavy admin operations (see [`ServerOptions::admin_heavy_concurrency`]).
    admin_heavy: Arc<Semaphore>,
    request_ids: RequestIds,
    readiness: Readiness,
    /// When a refused admin token was last logged.
    refused_tokens: std::sync::Mutex<Throttle>,
    metrics: Metrics,
    /// The stored admin tokens, as authentication reads them.
    admin_tokens: crate::admin_api::tokens::TokenCache,
}

/// How the server behaves, as its options say.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The agent API's path (`/api-agent.php`).
    pub agent_path: String,
    /// Proxies whose `X-Forwarded-For` header names the agent's address.
    pub trusted_proxies: Vec<IpNet>,
    /// The zone of new delivery policies when a request names none.
    pub time_zone: Tz,
    /// Whether unknown computers may register with the registration key.
    pub self_registration: bool,
    /// Whether `/metrics` answers without an admin token (`false` by default: it needs one, a
    /// read-only one will do).
    pub metrics_public: bool,
    /// Where package payloads (zip archives) are kept, one file per package.
    pub payload_dir: PathBuf,
    /// The memory of the hello cache, in bytes (0: off); see [`oco_agent_protocol::cache`].
    pub hello_cache_memory: u64,
    /// How far ahead of the server clock an agent's timestamp may be (600 s by default); see
    /// [`crate::agent_api`].
    pub max_clock_skew: Duration,
    /// The largest agent request body, in bytes ([`crate::BODY_LIMIT`], 64 MiB, by default: a
    /// report carries a job's whole output).
    pub agent_body_limit: usize,
    /// The most of a job's output kept, in bytes (1 MiB by default): a longer output keeps its
    /// head and tail around a line saying how much was left out.
    pub max_job_output: usize,
    /// The largest payload upload, in bytes ([`DEFAULT_MAX_PAYLOAD_SIZE`], 16 GiB, by default).
    pub max_payload_size: u64,
    /// Makes payload writes fail as a full or failing disk would: for tests of those paths.
    /// `None` in a server (no option sets it).
    pub payload_write_fault: Option<crate::payloads::WriteFault>,
    /// How many heavy admin operations (those that re-evaluate rules, deploy, renew, delete a
    /// container or compute statistics) run at once (2 by default, at least 1); others wait.
    pub admin_heavy_concurrency: usize,
    /// How long a heavy admin operation waits for its turn before it is refused with 503 and
    /// `Retry-After` ([`ADMIN_HEAVY_WAIT`] by default).
    pub admin_heavy_wait: Duration,
    /// Whether the short reads of agent requests may run on the async workers (`true` by
    /// default: a SQLite read takes microseconds). `false` for a store that waits on the
    /// network, or that must not run inside an async runtime (PostgreSQL's client): every read
    /// then runs on a blocking thread.
    pub inline_reads: bool,
    /// Whether other server processes write to the same database (`false` by default). Then
    /// the hello cache trusts a hit only while their writes are being heard
    /// ([`CachedStore::shared`]): the caller must report them, as
    /// [`crate::peers::listen`] does for PostgreSQL.
    pub other_writers: bool,
    /// What `/readyz` checks of the store's schema besides a small read (`None`: nothing);
    /// the server's `main` checks that it is the one this build migrates to.
    pub schema_check: Option<crate::observe::SchemaCheck>,
}

/// The default largest payload upload: 16 GiB.
pub const DEFAULT_MAX_PAYLOAD_SIZE: u64 = 16 * 1024 * 1024 * 1024;

/// How many heavy admin operations run at once by default.
pub const ADMIN_HEAVY_CONCURRENCY: usize = 2;

/// How long a heavy admin operation waits for its turn by default: 30 s.
pub const ADMIN_HEAVY_WAIT: Duration = Duration::from_secs(30);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            agent_path: "/api-agent.php".into(),
            trusted_proxies: Vec::new(),
            time_zone: Tz::UTC,
            self_registration: false,
            metrics_public: false,
            payload_dir: PathBuf::from("payloads"),
            hello_cache_memory: cache::DEFAULT_MEMORY,
            max_clock_skew: Duration::from_secs(600),
            agent_body_limit: crate::BODY_LIMIT,
            max_job_output: 1024 * 1024,
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
            payload_write_fault: None,
            admin_heavy_concurrency: ADMIN_HEAVY_CONCURRENCY,
            admin_heavy_wait: ADMIN_HEAVY_WAIT,
            inline_reads: true,
            other_writers: false,
            schema_check: None,
        }
    }
}

/// The secrets requests are checked against. `Debug` shows none of them.
#[derive(Clone)]
pub struct Secrets {
    /// The admin API's bearer token.
    pub admin_token: String,
    /// The global agent key: signs a computer's requests until it has its own.
    pub agent_key: String,
    /// The key unknown computers sign their first hello with to register (self-registration).
    pub registration_key: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("admin_token", &"<redacted>")
            .field("agent_key", &"<redacted>")
            .field(
                "registration_key",
                &self.registration_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AppState {
    /// The state of a server on `store`, reading time from `clock`; starts the group committer.
    ///
    /// The server wraps `store` in a [`CachedStore`] and writes only through it: from here on,
    /// nothing else may write to `store`, unless [`ServerOptions::other_writers`] says so and
    /// their writes are reported to [`AppState::cached_store`].
    ///
    /// The admin API's tokens are the store's ([`oco_core::store::Store::list_admin_tokens`]);
    /// if it holds no full-access token (a new store, or every one revoked), `secrets.admin_token`
    /// is stored as the full-access token `admin` first.
    ///
    /// # Errors
    ///
    /// If the committing thread cannot be started, or the first admin token cannot be stored.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        options: ServerOptions,
        secrets: Secrets,
    ) -> std::io::Result<AppState> {
        let cached = Arc::new(if options.other_writers {
            CachedStore::shared(store, options.hello_cache_memory)
        } else {
            CachedStore::new(store, options.hello_cache_memory)
        });
        let store: Arc<dyn Store> = cached.clone();
        first_admin_token(store.as_ref(), &secrets.admin_token, clock.now())?;
        let metrics = Metrics::new(&options.agent_path);
        metrics.watch_cache(cached.clone());
        let committer = Committer::start_measured(store.clone(), Some(metrics.commit()))?;
        let engine_options = EngineOptions::default().with_settings(settings);
        let engine = Engine::with_options(store.clone(), engine_options.clone());
        let mut config = ServiceConfig::new(secrets.agent_key.clone())
            .with_max_clock_skew(options.max_clock_skew)
            .with_max_job_output(options.max_job_output);
        // The registration key is known even with self-registration off: a previous key that
        // is it is recognised by its fingerprint.
        config.registration_key = secrets.registration_key.clone();
        config.self_registration = options.self_registration;
        let agent_service = AgentService::new(
            Engine::with_options(cached.clone(), engine_options),
            config,
            Arc::new(OsKeys),
        );
        let admin_heavy = Arc::new(Semaphore::new(options.admin_heavy_concurrency.max(1)));
        Ok(AppState(Arc::new(Shared {
            cached,
            store,
            engine,
            clock,
            committer,
            settings,
            options,
            secrets,
            agent: AgentState::default(),
            agent_service,
            housekeeping: HousekeepingStatus::default(),
            admin_heavy,
            request_ids: RequestIds::new(),
            readiness: Readiness::default(),
            refused_tokens: std::sync::Mutex::default(),
            metrics,
            admin_tokens: crate::admin_api::tokens::TokenCache::default(),
        })))
    }

    /// Makes the ids of requests that bring none.
    pub(crate) fn request_ids(&self) -> &RequestIds {
        &self.0.request_ids
    }

    /// Whether a refused admin token may be logged now: `Some(refusals not logged since the
    /// last one)`, at most once a minute.
    pub(crate) fn log_refused_token(&self) -> Option<u64> {
        self.0
            .refused_tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready()
    }

    /// The server's metrics (what `/metrics` shows).
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The stored admin tokens, as authentication reads them.
    pub(crate) fn admin_tokens(&self) -> &crate::admin_api::tokens::TokenCache {
        &self.0.admin_tokens
    }

    /// The last readiness result.
    pub(crate) fn readiness(&self) -> &Readiness {
        &self.0.readiness
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The engine over [`AppState::store`], with the server's settings: what every operation
    /// that decides and writes goes through.
    pub fn engine(&self) -> &Engine<Arc<dyn Store>> {
        &self.0.engine
    }

    /// The store, as its hello cache (the same store as [`AppState::store`]).
    pub fn cached_store(&self) -> &Arc<CachedStore> {
        &self.0.cached
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.0.clock.as_ref()
    }

    /// The group committer (writes that must be durable before a reply).
    pub fn committer(&self) -> &Committer {
        &self.0.committer
    }

    /// The core's settings (expiry, purge and offline ages).
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.0.options
    }

    /// The secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.0.secrets
    }

    /// Where the payload archive of `package` is kept (whether or not it exists).
    pub fn payload_path(&self, package: oco_core::model::PackageId) -> PathBuf {
        self.0
            .options
            .payload_dir
            .join(format!("{}.zip", package.0))
    }

    /// The agent API's own state (response timestamps, coalesced last-seen times).
    pub fn agent(&self) -> &AgentState {
        &self.0.agent
    }

    /// The agent protocol: what agent requests are answered.
    pub fn agent_service(&self) -> &AgentService {
        &self.0.agent_service
    }

    /// The permits of heavy admin operations.
    pub fn admin_heavy(&self) -> &Arc<Semaphore> {
        &self.0.admin_heavy
    }

    /// What the last housekeeping runs did.
    pub fn housekeeping(&self) -> &HousekeepingStatus {
        &self.0.housekeeping
    }
}

/// Stores the secrets file's admin token if the store holds no full-access token, and says in
/// the log what became of it.
fn first_admin_token(
    store: &dyn Store,
    secret: &str,
    now: oco_core::chrono::DateTime<oco_core::chrono::Utc>,
) -> std::io::Result<()> {
    let stored =
        crate::admin_api::tokens::seed(store, secret, now).map_err(std::io::Error::other)?;
    if let Some(name) = stored {
        tracing::info!(
            "stored the secrets file's admin-token as the full-access admin token `{name}` \
             (the store held none); manage tokens at /api/v1/tokens"
        );
        if secret.chars().count() < 32 {
            tracing::warn!(
                "the secrets file's admin-token is short ({} characters): its digest in the \
                 database (and its backups) could be guessed; make a token at /api/v1/tokens \
                 and revoke `{name}`",
                secret.chars().count()
            );
        }
    } else if !secret.is_empty()
        && store
            .admin_token_by_digest(&crate::admin_api::tokens::digest(secret))
            .map_err(std::io::Error::other)?
            .is_none()
    {
        tracing::warn!(
            "the secrets file's admin-token is not a stored token: it was revoked, or the file \
             was edited after the first start (editing it does not rotate it); requests need a \
             token made at /api/v1/tokens"
        );
    }
    Ok(())
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("options", &self.0.options)
            .field("secrets", &self.0.secrets)
            .finish_non_exhaustive()
    }
}
