//! `oco-server-min`: parses the options, opens the store and serves (see the crate docs).
//!
//! Start-up: options ([`config`]), logging, the data directory, the secrets file ([`secrets`]),
//! the store (SQLite, or PostgreSQL with [`peers`]' listener and housekeeping lead), the
//! descriptor limit (raised to the hard limit; the connection cap is sized
//! from it). Then it serves [`oco_server_min::app`] through [`connections::serve`] with the
//! housekeeping task and the periodic flush of the agent API's coalesced state beside it, until
//! SIGINT or SIGTERM: then idle and stalled connections close at once, in-flight requests finish
//! (within `--shutdown-grace`), the background tasks stop, the agent state is flushed a last time
//! and the store is closed, and the process exits with status 0.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use oco_core::store::{Store, StoreError, StoreResult};
use oco_core::Settings;
use oco_server_min::clock::{Clock, SystemClock};
use oco_server_min::config::{self, Config, LogFormat};
use oco_server_min::connections::{self, ConnectionOptions};
use oco_server_min::housekeeping::{self, HousekeepingOptions, Lead};
use oco_server_min::observe::SchemaCheck;
use oco_server_min::peers::{self, PgLeadership};
use oco_server_min::secrets::{self, Outcome, SecretsError};
use oco_server_min::AppState;
use oco_store_postgres::PgStore;
use oco_store_sqlite::SqliteStore;
use tokio::sync::watch;

/// mimalloc rather than the system allocator: a hello allocates and frees dozens of small
/// buffers (HTTP, JSON, SQLite rows) on several threads; with glibc's per-thread arenas the
/// server held 13 MiB more for the same load and CPU (`benches/RESULTS.md`, fleet mode).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the agent API's coalesced state (last-seen times, the timestamp high-water mark) is
/// written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How often the log sums up what agents asked (a line per agent request is DEBUG).
const AGENT_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// How long a stopped server waits for the last users of the store to let go of it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    // Exits with status 2 on a usage error and 0 after --help or --version.
    let matches = config::command().get_matches();
    let config = match config::load(&matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("oco-server-min: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = init_logging(&config) {
        eprintln!("oco-server-min: {error}");
        return ExitCode::from(2);
    }
    // The configuration holds no secret (they are in the secrets file; a database URL's
    // password is shown as `***`).
    tracing::info!(
        "oco-server-min {} starting; configuration: {config:?}",
        env!("CARGO_PKG_VERSION")
    );
    let connections = connection_options(&config);
    match start(&config).and_then(|(state, database)| serve(&config, connections, state, database))
    {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Why the server could not start or stopped early.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("log filter: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("database {database}: {source}")]
    Store {
        database: String,
        source: StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn init_logging(config: &Config) -> Result<(), Error> {
    let filter = config.log_filter(std::env::var("RUST_LOG").ok());
    let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).init(),
        // The request span (its id) on each line; not the list of enclosing spans.
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// Raises the descriptor limit and sizes the connection cap from it.
fn connection_options(config: &Config) -> ConnectionOptions {
    let limit = match connections::raise_descriptor_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!("cannot read or raise the descriptor limit: {error}; assuming 1024");
            connections::DescriptorLimit {
                soft: 1024,
                hard: 1024,
            }
        }
    };
    let (max_connections, lowered) = connections::max_connections(config.max_connections, limit);
    if lowered {
        tracing::warn!(
            "--max-connections {} needs about {} descriptors (a socket and a file each, and {} more), \
             but the limit is {}: lowered to {max_connections}; raise the limit (`ulimit -Hn`, \
             systemd's LimitNOFILE=) to allow more",
            config.max_connections.unwrap_or_default(),
            2 * config.max_connections.unwrap_or_default() as u64 + connections::RESERVED_DESCRIPTORS,
            connections::RESERVED_DESCRIPTORS,
            limit.soft
        );
    }
    let options = config.connection_options(max_connections);
    tracing::info!(
        "descriptor limit {} (hard {}); at most {max_connections} connections; timeouts: \
         header {:?}, body {:?}, idle {:?}; shutdown grace {:?}",
        limit.soft,
        limit.hard,
        options.header_timeout,
        options.body_timeout,
        options.idle_timeout,
        options.shutdown_grace
    );
    options
}

/// Prepares the data directory, the secrets and the store.
fn start(config: &Config) -> Result<(AppState, Database), Error> {
    // The data directory holds the keys of every agent: created for its owner only (0700),
    // and an existing one that others can enter or read is reported.
    for dir in [config.data_dir.clone(), config.payload_dir()] {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|source| Error::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let database_file = config.database_path().map(Path::to_path_buf);
    for path in [
        Some(config.data_dir.clone()),
        Some(config.payload_dir()),
        database_file,
    ]
    .into_iter()
    .flatten()
    {
        if path.exists() && secrets::readable_by_others(&path)? {
            tracing::warn!(
                "{} can be read by other users; `chmod go-rwx` it (it holds agent keys or payloads)",
                path.display()
            );
        }
    }
    // Uploads a crash interrupted; no upload of this process runs yet, but another process
    // sharing the directory may be writing one: only files no upload wrote to for twice the
    // body timeout (after which an upload is cut off) go.
    let payloads = config.payload_dir();
    let idle_for = 2 * config.body_timeout.max(Duration::from_secs(30));
    match oco_server_min::payloads::remove_partials(
        &payloads,
        std::time::SystemTime::from(SystemClock.now()),
        idle_for,
    ) {
        Ok(removed) if !removed.is_empty() => tracing::info!(
            "removed {} interrupted upload(s) from {}",
            removed.len(),
            payloads.display()
        ),
        Ok(_) => {}
        Err(source) => {
            return Err(Error::DataDir {
                path: payloads,
                source,
            })
        }
    }

    let secrets_path = config.secrets_path();
    let (stored, outcome) = secrets::load_or_create(&secrets_path)?;
    match outcome {
        Outcome::Created => tracing::info!(
            "created the admin token, the global agent key and the registration key in {}",
            secrets_path.display()
        ),
        Outcome::Read => {}
        Outcome::Completed(keys) => tracing::warn!(
            "{} lacked {}: generated and added",
            secrets_path.display(),
            keys.join(", ")
        ),
    }
    if secrets::readable_by_others(&secrets_path)? {
        tracing::warn!(
            "{} can be read by other users; `chmod 600` it",
            secrets_path.display()
        );
    }
    tracing::info!(
        "admin token and global agent key: see {}",
        secrets_path.display()
    );
    if config.self_registration {
        tracing::info!(
            "self-registration is on: unknown agents may register with the registration key in {}",
            secrets_path.display()
        );
    }

    let (store, database): (Arc<dyn Store>, Database) = match &config.database {
        config::Database::Sqlite(path) => {
            let store = SqliteStore::open_with(path, &config.store_options())
                .map_err(|source| store_error(config, source))?;
            tracing::info!(
                "database {} (synchronous = {:?})",
                config.database.describe(),
                config.synchronous
            );
            let store = Arc::new(store);
            (store.clone(), Database::Sqlite(store))
        }
        config::Database::Postgres(url) => {
            let store = PgStore::connect_with(url, &config.postgres_options())
                .map_err(|source| store_error(config, source))?;
            tracing::info!(
                "database {} (at most {} connections for requests); other server processes \
                 may share it",
                config.database.describe(),
                config.database_connections
            );
            let store = Arc::new(store);
            (store.clone(), Database::Postgres(store))
        }
    };
    let shared = [stored.agent_key.as_str(), stored.registration_key.as_str()];
    let replaced = match &database {
        Database::Sqlite(sqlite) => oco_server_min::agent_api::forget_shared_keys(
            |from, to| sqlite.replace_previous_agent_key(from, to),
            &shared,
        ),
        Database::Postgres(pg) => oco_server_min::agent_api::forget_shared_keys(
            |from, to| pg.replace_previous_agent_key(from, to),
            &shared,
        ),
    };
    match replaced {
        Ok(0) => {}
        Ok(rows) => tracing::info!(
            "replaced the copies of a shared agent key in {rows} computer row(s) by a fingerprint"
        ),
        Err(source) => return Err(store_error(config, source)),
    }
    let mut options = config.server_options();
    options.schema_check = Some(schema_check(&database));
    let state = AppState::new(
        store,
        Arc::new(SystemClock),
        Settings::default(),
        options,
        stored.for_server(config.self_registration),
    )?;
    Ok((state, database))
}

/// The store a server runs on.
enum Database {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

/// What `/readyz` checks of the schema: that it is the one this build migrates to (another
/// process of a newer build may have migrated the database since this one opened it).
fn schema_check(database: &Database) -> SchemaCheck {
    let version: Arc<dyn Fn() -> StoreResult<u32> + Send + Sync> = match database {
        Database::Sqlite(sqlite) => {
            let sqlite = sqlite.clone();
            Arc::new(move || sqlite.schema_version())
        }
        Database::Postgres(pg) => {
            let pg = pg.clone();
            Arc::new(move || pg.schema_version())
        }
    };
    let expected = match database {
        Database::Sqlite(_) => oco_store_sqlite::SCHEMA_VERSION,
        Database::Postgres(_) => oco_store_postgres::SCHEMA_VERSION,
    };
    SchemaCheck(Arc::new(move || match version() {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(format!(
            "the database's schema is version {found}; this build runs on version {expected}"
        )),
        Err(error) => Err(format!("cannot read the schema's version: {error}")),
    }))
}

fn store_error(config: &Config, source: StoreError) -> Error {
    Error::Store {
        database: config.database.describe(),
        source,
    }
}

/// Serves until a signal, then stops in order and closes the store.
fn serve(
    config: &Config,
    connections: ConnectionOptions,
    state: AppState,
    database: Database,
) -> Result<(), Error> {
    let (listening, lead) = match &database {
        Database::Sqlite(_) => (None, None),
        Database::Postgres(pg) => {
            let listening = peers::listen(
                pg.clone(),
                state.cached_store().clone(),
                Arc::new(SystemClock),
            )?;
            let lead: Arc<dyn Lead> = Arc::new(PgLeadership::new(pg.clone()));
            (Some(listening), Some(lead))
        }
    };
    // Kept here too, so that the lead's connection is closed by this thread, after the runtime:
    // the PostgreSQL client must not close a connection on an async worker (the housekeeping
    // task would otherwise drop the last reference when it ends).
    let kept_lead = lead.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve_until_signal(config, connections, state, lead));
    // Every task is done; the runtime's blocking threads may still hold the store a moment.
    runtime.shutdown_timeout(CLOSE_TIMEOUT);
    if let Some(listening) = listening {
        listening.stop();
    }
    drop(kept_lead);
    served?;
    match database {
        Database::Sqlite(store) => close(store),
        // Its connections close as the last holder lets go; nothing is left to checkpoint.
        Database::Postgres(_) => {}
    }
    Ok(())
}

async fn serve_until_signal(
    config: &Config,
    connections: ConnectionOptions,
    state: AppState,
    lead: Option<Arc<dyn Lead>>,
) -> Result<(), Error> {
    // Signal handlers first: a signal that arrives once the server is announced must stop it
    // gracefully, not kill it.
    let stop_signal = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "listening on http://{addr} (agent API at {}, admin API under /api/v1)",
        config.agent_path
    );

    let (stop, stopped) = watch::channel(false);
    let housekeeping = tokio::spawn(housekeeping::run_periodically(
        state.clone(),
        HousekeepingOptions {
            interval: config.housekeeping_interval,
            wol_targets: config.wol_targets.clone(),
            lead,
        },
        stopped.clone(),
    ));
    let flusher = tokio::spawn(flush_periodically(state.clone(), stopped));

    let app = oco_server_min::app(state.clone());
    let open = connections::OpenConnections::default();
    state.metrics().watch_connections(open.clone());
    connections::serve_counted(listener, app, connections, stop_signal, open).await;
    tracing::info!("stopping: connections are closed; stopping housekeeping");

    // The receivers may be gone already if a task ended; there is then nothing to stop.
    let _ = stop.send(true);
    for task in [housekeeping, flusher] {
        if let Err(error) = task.await {
            tracing::error!("a background task failed: {error}");
        }
    }
    flush_agent_state(&state).await;
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM. The handlers are installed when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!("{name}: stopping gracefully");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            // Without a handler the process would simply die; a failure to install it is rare
            // enough to treat as the signal itself.
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupted: stopping gracefully");
        })
    }
}

/// Flushes the agent API's state every [`FLUSH_INTERVAL`] until `stop` turns true.
async fn flush_periodically(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(FLUSH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut summaries = tokio::time::interval(AGENT_SUMMARY_INTERVAL);
    summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first ticks are immediate: nothing to write or sum up yet.
    ticks.tick().await;
    summaries.tick().await;
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticks.tick() => flush_agent_state(&state).await,
            _ = summaries.tick() => {
                if let Some(summary) = oco_server_min::agent_api::summary(&state) {
                    tracing::info!("agents in the last minute: {summary}");
                }
            }
        }
    }
}

/// Writes the agent API's coalesced last-seen times and response-timestamp high-water mark.
async fn flush_agent_state(state: &AppState) {
    // The times not written stay pending for the next flush.
    if let Err(error) = oco_server_min::agent_api::flush(state).await {
        tracing::error!("writing the agents' last-seen times: {error}");
    }
}

/// Drops the store once nothing else holds it, so that SQLite closes its connections and
/// checkpoints the write-ahead log.
fn close(store: Arc<SqliteStore>) {
    let mut store = store;
    let mut waited = Duration::ZERO;
    loop {
        match Arc::try_unwrap(store) {
            Ok(store) => {
                drop(store);
                tracing::info!("database closed");
                return;
            }
            // The group committer's thread lets go when its queue closes, just after the last
            // `AppState` is dropped.
            Err(shared) if waited < CLOSE_TIMEOUT => {
                store = shared;
                std::thread::sleep(Duration::from_millis(10));
                waited += Duration::from_millis(10);
            }
            Err(_) => {
                tracing::warn!(
                    "the database is still in use after {CLOSE_TIMEOUT:?}; exiting without closing it (it stays consistent)"
                );
                return;
            }
        }
    }
}
