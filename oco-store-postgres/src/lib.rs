//! `oco-store-postgres`: the [`Store`] of [`oco_core`] on PostgreSQL, for deployments that
//! outgrow one machine.
//!
//! ```no_run
//! use oco_store_postgres::oco_core::model::Name;
//! use oco_store_postgres::oco_core::store::{NewComputer, Store};
//! use oco_store_postgres::PgStore;
//!
//! let store = PgStore::connect("postgres://oco@localhost/oco")?;
//! let created = store.create_computer(NewComputer {
//!     hostname: Name::new("hostname", "PC-042")?,
//!     os: "Windows".into(),
//!     os_version: "11".into(),
//!     architecture: "x86_64".into(),
//!     macs: vec!["aa:bb:cc:dd:ee:ff".parse()?],
//! })?;
//! let found = store.computer_by_hostname("pc-042")?;
//! assert_eq!(found, Some(created));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`PgStore::connect`] connects to a database (a `postgres://` URL or a `key=value`
//! connection string) and brings its schema up to date. The store holds the same data as the
//! SQLite store, with the same semantics, and passes the core's conformance suite
//! (`oco_core::store::testkit`).
//!
//! # Blocking
//!
//! The store uses the synchronous `postgres` client: every method blocks its thread until the
//! database answers. An async server calls it from blocking threads (`spawn_blocking`), as it
//! does the SQLite store; called on an async runtime's worker thread it would stall that
//! worker, and the client refuses to run inside a Tokio runtime at all.
//!
//! # Schema and migrations
//!
//! The schema is created and migrated by versioned SQL migrations embedded in the binary
//! (`migrations/*.sql`); each applied version is recorded in the table `oco_schema_migrations`.
//! [`Options::schema`] puts the tables in a schema of their own (created if missing). Opening
//! migrates in one transaction under an advisory lock, so that processes starting at once
//! migrate one after the other; a database of a newer schema than [`SCHEMA_VERSION`] is a
//! [`StoreError::Invalid`] naming both versions.
//!
//! # Connections and concurrency
//!
//! A store keeps a pool of up to [`Options::max_connections`] connections, opened as needed;
//! each has its own cache of prepared statements. A connection found closed when a transaction
//! begins on it (the server restarted, or ended an idle session) is replaced by the next one,
//! without an error. Every read runs in one `REPEATABLE READ, READ ONLY` transaction (or is one
//! statement), so a snapshot comes from one consistent state. Every write runs in one
//! `SERIALIZABLE` transaction, or `READ COMMITTED` for the agent path's change sets, whose every
//! check holds by a row lock (credentials, job updates, last-seen times, assignments): whatever
//! other writers, of this process or of others, do at the same time, the outcome is that of the
//! writes one after the other, as the SQLite store's single writer gives. A write that
//! PostgreSQL cancels for that (a serialization failure or a deadlock) is run again from the
//! start, up to [`WRITE_ATTEMPTS`] times; nothing of a cancelled attempt is kept.
//!
//! # Durability
//!
//! [`apply`](Store::apply) returns after the commit, which PostgreSQL makes durable as its
//! `synchronous_commit` setting says (by default: flushed to the write-ahead log on disk).
//! [`Store::apply_many`] shares one commit among several change sets, each in a savepoint of
//! its own; the credentials of a batch of hellos are written before, in one statement that
//! commits on its own.
//!
//! # Corrupt rows
//!
//! Constraints and other typed values are stored as their canonical text and parsed when read.
//! A row that no longer parses (edited by hand) is [`StoreError::Corrupt`] naming that row, with
//! the same consequences as in the SQLite store: its getter and a listing page that contains it
//! fail, the planner holds the jobs of an origin whose policy does not parse, and housekeeping
//! leaves out a container it cannot read.

mod encode;
mod read;
mod schema;
mod shared;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod write;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use oco_core;
use oco_core::chrono::{DateTime, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, JobSnapshot, Name, Origin, Package, PackageFamily,
    PackageGroup, PackageGroupId, PackageId, Revision, RuleId, Sha256Digest, TokenId,
};
use oco_core::store::{
    AdminToken, AgentCredentials, AgentLookup, Applied, ChangeSet, DeploySnapshot,
    HousekeepingSnapshot, JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage, NewRule,
    Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot, ServerState, Store, StoreError,
    StoreResult,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, Row, Statement};

pub use schema::SCHEMA_VERSION;
pub use shared::{Leadership, Listener, Touched};
use tls::Connector;

/// How many times a write is attempted when PostgreSQL cancels it for a concurrent one.
pub const WRITE_ATTEMPTS: u32 = 16;

/// At most this many prepared statements are cached per connection (then the cache starts
/// over): the store's statements are a fixed set, with a few variants of a listing's filter.
const STATEMENT_CACHE: usize = 256;

/// At most this many job snapshots are cached per connection (then the cache starts over): one
/// per package version and kind in use, a few hundred in practice.
const SNAPSHOT_CACHE: usize = 4096;

/// How a store connects.
#[derive(Debug, Clone)]
pub struct Options {
    /// The most connections the store opens at once (at least 1). Default 4: more made every
    /// agent request slower on a database sharing a core with the server (more PostgreSQL
    /// processes to switch between, smaller group commits; see `DESIGN.md`).
    pub max_connections: usize,
    /// How long a call waits for a free connection when all are in use, and for a new
    /// connection to be established.
    pub connect_timeout: Duration,
    /// The schema that holds the store's tables, created if missing; `None`: the connection's
    /// default (`public`, unless the role's `search_path` says otherwise).
    pub schema: Option<String>,
    /// With `sslmode=require` in the connection string: the PEM file of the certificates that
    /// may sign the server's (its CA); `None`: the system's trusted certificates. Given without
    /// `sslmode=require`, it is an error.
    pub ca_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
            schema: None,
            ca_file: None,
        }
    }
}

/// The [`Store`] on PostgreSQL. `Send + Sync`: share it between threads (e.g. in an `Arc`).
///
/// See the crate docs for the connection model, isolation, durability and how corrupt rows are
/// reported.
pub struct PgStore {
    pool: Pool,
    #[cfg(feature = "fault-injection")]
    fail_nth: Mutex<Option<u64>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.pool.schema)
            .field("max_connections", &self.pool.max)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database of `params` (a `postgres://` URL or a `key=value` connection
    /// string) with [`Options::default`], migrating it to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] if `params` does not parse or the database has a newer schema;
    /// [`StoreError::Backend`] if it cannot be reached or migrated.
    pub fn connect(params: &str) -> StoreResult<PgStore> {
        Self::connect_with(params, &Options::default())
    }

    /// Connects to the database of `params` with `options`, migrating it to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    ///
    /// As [`PgStore::connect`].
    pub fn connect_with(params: &str, options: &Options) -> StoreResult<PgStore> {
        let mut config: Config = params.parse().map_err(|e| StoreError::Invalid {
            reason: format!("the PostgreSQL connection string does not parse: {e}"),
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("oco");
        }
        let connector = Connector::for_config(&config, options.ca_file.as_deref())?;
        let mut pool = Pool {
            config,
            connector,
            writer: String::new(),
            schema: options.schema.clone(),
            max: options.max_connections.max(1),
            wait: options.connect_timeout,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        };
        // A tag that tells this store's writes from every other's, drawn by the database (the
        // store reads no random source of its own).
        pool.writer = pool
            .connect()?
            .query_one(
                "SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid())",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(backend)?;
        let store = PgStore {
            pool,
            #[cfg(feature = "fault-injection")]
            fail_nth: Mutex::new(None),
        };
        // Read committed: each statement sees what was committed before it, so a process that
        // waited for the lock sees the tables that the one before it created.
        store.run("BEGIN ISOLATION LEVEL READ COMMITTED", |conn| {
            schema::lock(conn)?;
            if let Some(schema) = &store.pool.schema {
                conn.batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
                    .map_err(backend)?;
            }
            schema::migrate(conn)
        })?;
        Ok(store)
    }

    /// The schema version recorded in the database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if PostgreSQL fails.
    pub fn schema_version(&self) -> StoreResult<u32> {
        self.read(schema::version)
    }

    /// Replaces `from` by `to` in every computer's previous agent key, in one transaction, and
    /// returns how many computers had it. A server uses it at start to take copies of a shared
    /// key (the global or the registration key) out of rows written before it stored such keys
    /// by a reference only.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if PostgreSQL fails; then nothing was replaced.
    pub fn replace_previous_agent_key(&self, from: &str, to: &str) -> StoreResult<usize> {
        self.write(|conn| {
            let changed = conn
                .execute(
                    "UPDATE credentials SET previous_agent_key = $2 \
                     WHERE previous_agent_key = $1",
                    &[&from, &to],
                )
                .map_err(backend)?;
            Ok(usize::try_from(changed).unwrap_or(usize::MAX))
        })
    }

    /// While `Some(n)`: inside each later `apply`/`apply_many` transaction, the `n`-th SQL
    /// statement executed (from 1, counted from the first statement after `BEGIN`, the `BEGIN`
    /// itself not counted; savepoints count, rollbacks and the `COMMIT` do not) fails with
    /// [`StoreError::Backend`] instead of running. The statement writing a batch's hellos
    /// before its transaction counts as a transaction of its own (its statement 1). For tests
    /// that a half-applied change set leaves no trace.
    #[cfg(feature = "fault-injection")]
    pub fn fail_nth_statement(&self, n: Option<u64>) {
        *self.fail_nth.lock().unwrap_or_else(PoisonError::into_inner) = n;
    }

    /// Runs `f` in one read-only snapshot transaction.
    fn read<T>(&self, mut f: impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.on_a_live_connection(|session| {
            session.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", &mut f)
        })
    }

    /// Runs `f`, which makes one statement, outside an explicit transaction: the statement sees
    /// one snapshot, as a read transaction's statements do, and costs one round trip instead of
    /// three. For the reads every agent request makes. (A job snapshot not cached yet is read in
    /// a statement of its own: its row never changes, so any snapshot sees the same.)
    fn read_single<T>(&self, mut f: impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.on_a_live_connection(|session| session.single(&mut f))
    }

    /// Runs `f` in one serializable transaction, committed if `f` succeeds, attempted again
    /// from the start when PostgreSQL cancels it for a concurrent transaction.
    fn write<T>(&self, f: impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.run(SERIALIZABLE, f)
    }

    fn run<T>(
        &self,
        begin: &str,
        mut f: impl FnMut(&Conn<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut attempt = 1;
        loop {
            match self.on_a_live_connection(|session| session.transaction(begin, &mut f)) {
                Err(error) if is_transient(&error) && attempt < WRITE_ATTEMPTS => {
                    // A short pause, longer at each attempt, so that the transactions that
                    // collided do not collide again at once.
                    std::thread::sleep(Duration::from_micros(200) * attempt);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Runs `once` on a pooled connection, again on the next one while the connection turns
    /// out closed before anything was done: each idle connection may have been closed (a
    /// restarted server), so at most as many times as the pool has connections.
    fn on_a_live_connection<T>(
        &self,
        mut once: impl FnMut(&mut Pooled<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut stale = 0;
        loop {
            let mut session = self.pool.take()?;
            let result = once(&mut session);
            drop(session);
            match result {
                Err(error) if is_stale(&error) && stale < self.pool.max => stale += 1,
                result => return result,
            }
        }
    }

    /// The statement to fail in the next change-set transaction, if any.
    fn fail_at(&self) -> Option<u64> {
        #[cfg(feature = "fault-injection")]
        {
            *self.fail_nth.lock().unwrap_or_else(PoisonError::into_inner)
        }
        #[cfg(not(feature = "fault-injection"))]
        {
            None
        }
    }
}

/// A parameter of a statement.
pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// The parameters of a statement, from values that are `ToSql + Sync`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as $crate::Param<'_>),*]
    };
}
pub(crate) use params;

/// A connection inside one transaction: what the reads and writes run their statements on.
pub(crate) struct Conn<'s> {
    // Borrowed mutably for one statement at a time (no statement runs another), so the borrow
    // never overlaps.
    session: RefCell<&'s mut Session>,
}

impl Conn<'_> {
    /// The rows of `sql`, prepared once per connection.
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, postgres::Error> {
        let mut session = self.session.borrow_mut();
        let statement = session.prepared(sql)?;
        session.client.query(&statement, params)
    }

    /// Executes `sql`, prepared once per connection; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, postgres::Error> {
        let mut session = self.session.borrow_mut();
        let statement = session.prepared(sql)?;
        session.client.execute(&statement, params)
    }

    /// Runs `sql` (statements without parameters) as it is, unprepared.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), postgres::Error> {
        self.session.borrow_mut().client.batch_execute(sql)
    }

    /// The job snapshot `id`, if this connection read it before.
    ///
    /// A stored snapshot never changes and is never deleted (jobs of one package share it by
    /// value; nothing updates or deletes `job_snapshots`), and ids are never reused, so what a
    /// connection read once, in any transaction, is what every later transaction would read:
    /// a report's jobs and the snapshot of its job update cost no query after the first.
    pub(crate) fn snapshot(&self, id: i64) -> Option<JobSnapshot> {
        self.session.borrow().snapshots.by_id.get(&id).cloned()
    }

    /// The id of the stored snapshot equal to `snapshot`, if this connection read it before.
    pub(crate) fn snapshot_id(&self, snapshot: &JobSnapshot) -> Option<i64> {
        self.session
            .borrow()
            .snapshots
            .by_value
            .get(snapshot)
            .copied()
    }

    /// Remembers the stored snapshot `id`, read from the database (never one this transaction
    /// inserted: it would be gone if the transaction rolled back).
    pub(crate) fn remember_snapshot(&self, id: i64, snapshot: &JobSnapshot) {
        self.session.borrow_mut().snapshots.remember(id, snapshot);
    }
}

/// Job snapshots a connection read: at most [`SNAPSHOT_CACHE`] of them, then it starts over.
#[derive(Default)]
struct SnapshotCache {
    by_id: HashMap<i64, JobSnapshot>,
    by_value: HashMap<JobSnapshot, i64>,
}

impl SnapshotCache {
    fn remember(&mut self, id: i64, snapshot: &JobSnapshot) {
        if self.by_id.len() >= SNAPSHOT_CACHE {
            self.by_id.clear();
            self.by_value.clear();
        }
        self.by_id.insert(id, snapshot.clone());
        self.by_value.insert(snapshot.clone(), id);
    }
}

/// One connection with its prepared statements.
struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Job snapshots this connection read, by id and by value (see [`Conn::snapshot`]).
    snapshots: SnapshotCache,
    /// Set from `BEGIN` until the transaction ended: a session given back with it set (its
    /// caller panicked) is closed rather than reused.
    in_transaction: bool,
}

impl Session {
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `f`, which makes one statement, as PostgreSQL's implicit transaction of that
    /// statement: one snapshot, as a read transaction would give, without the round trips of
    /// `BEGIN` and `COMMIT`. If the connection turns out closed, nothing was done (a read).
    fn single<T>(&mut self, f: &mut impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let result = f(&Conn {
            session: RefCell::new(&mut *self),
        });
        match result {
            Err(StoreError::Backend(error)) if self.client.is_closed() => {
                Err(StoreError::Backend(Box::new(Stale(error))))
            }
            result => result,
        }
    }

    /// Runs `f` between `begin` and `COMMIT`, rolling back if `f` or the commit fails.
    fn transaction<T>(
        &mut self,
        begin: &str,
        f: &mut impl FnMut(&Conn<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if let Err(error) = self.client.batch_execute(begin) {
            // Nothing was done: a connection found closed here is tried again with another.
            return Err(if self.client.is_closed() {
                StoreError::Backend(Box::new(Stale(Box::new(PgError(error)))))
            } else {
                backend(error)
            });
        }
        self.in_transaction = true;
        let conn = Conn {
            session: RefCell::new(self),
        };
        let result =
            f(&conn).and_then(|value| conn.batch("COMMIT").map(|()| value).map_err(backend));
        // After a failed COMMIT PostgreSQL has ended the transaction already; the ROLLBACK then
        // only warns. A failed rollback closes the connection, which rolls back too.
        let ended = result.is_ok() || conn.batch("ROLLBACK").is_ok();
        self.in_transaction = !ended;
        result
    }
}

/// The connections of a store.
struct Pool {
    config: Config,
    connector: Connector,
    /// This store's `oco.writer` setting in each of its sessions, which its change notifications
    /// carry: its own [`Listener`] leaves them out.
    writer: String,
    schema: Option<String>,
    max: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Session>,
    /// Connections open, idle or in use.
    open: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is a list and a count, each changed in one step: a panic elsewhere while
        // the lock was held leaves it whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one if fewer than `max` are open, or one given back within
    /// `wait` (waiting again, until then, when another caller took the one given back first).
    // A deadline for the wait is the one clock reading the store makes: it decides nothing
    // about the data.
    #[allow(clippy::disallowed_methods)]
    fn take(&self) -> StoreResult<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            while let Some(session) = state.idle.pop() {
                if session.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    session: Some(session),
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.open() {
                    Ok(session) => Ok(Pooled {
                        pool: self,
                        session: Some(session),
                    }),
                    Err(error) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(error)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(
                    format!(
                        "no PostgreSQL connection was free within {:?} ({} in use)",
                        self.wait, self.max
                    )
                    .into(),
                ));
            }
            // Woken when a connection is given back; another caller may take it first, and then
            // this one waits again for what is left of its time.
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A new connection, set up as every session of the store is: its schema, its writer.
    fn connect(&self) -> StoreResult<Client> {
        let mut client = self.connector.connect(&self.config).map_err(backend)?;
        // The tag is hexadecimal digits: nothing to quote.
        let mut setup = format!("SET oco.writer TO '{}'", self.writer);
        if let Some(schema) = &self.schema {
            setup.push_str(&format!("; SET search_path TO {}", quote(schema)));
        }
        client.batch_execute(&setup).map_err(backend)?;
        Ok(client)
    }

    fn open(&self) -> StoreResult<Session> {
        let client = self.connect()?;
        Ok(Session {
            client,
            statements: HashMap::new(),
            snapshots: SnapshotCache::default(),
            in_transaction: false,
        })
    }

    fn give_back(&self, session: Session) {
        let mut state = self.lock();
        if session.in_transaction || session.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(session);
        }
        drop(state);
        self.returned.notify_one();
    }
}

/// A connection checked out of the pool, given back when dropped.
struct Pooled<'p> {
    pool: &'p Pool,
    /// `None` only while dropping.
    session: Option<Session>,
}

impl Pooled<'_> {
    fn single<T>(&mut self, f: &mut impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        match &mut self.session {
            Some(session) => session.single(f),
            None => Err(StoreError::Backend("the connection was given back".into())),
        }
    }

    fn transaction<T>(
        &mut self,
        begin: &str,
        f: &mut impl FnMut(&Conn<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        match &mut self.session {
            Some(session) => session.transaction(begin, f),
            None => Err(StoreError::Backend("the connection was given back".into())),
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.give_back(session);
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL failure as a store error: a unique key taken is [`StoreError::Duplicate`], a
/// reference to nothing [`StoreError::Invalid`] (the writes check both first; these are what a
/// concurrent writer can still cause), anything else [`StoreError::Backend`].
pub(crate) fn backend(error: postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let key = || db.detail().unwrap_or(db.message()).to_owned();
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            let what = match db.constraint() {
                Some("computers_hostname_key") => "hostname",
                Some("families_name") => "package family",
                Some("admin_tokens_name") => "admin token",
                Some("admin_tokens_digest") => "admin token digest",
                Some("packages_version") => "package version",
                Some("jobs_by_rule") => "rule job",
                _ => "key",
            };
            return StoreError::Duplicate { what, key: key() };
        }
        if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Invalid { reason: key() };
        }
    }
    StoreError::Backend(Box::new(PgError(error)))
}

/// A PostgreSQL error shown with its cause: the client's own message for an error the server
/// sent is only "db error".
#[derive(Debug)]
struct PgError(postgres::Error);

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::error::Error::source(&self.0) {
            Some(cause) => write!(f, "{}: {cause}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A pooled connection found closed when a transaction began on it (the server restarted, an
/// administrator ended the session, the network dropped it while idle): nothing was done, and
/// the transaction can begin on another.
#[derive(Debug)]
struct Stale(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection was closed while idle: {}", self.0)
    }
}

impl std::error::Error for Stale {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

fn is_stale(error: &StoreError) -> bool {
    matches!(error, StoreError::Backend(source) if source.is::<Stale>())
}

/// The transaction of a write.
const SERIALIZABLE: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";

/// The transaction of change sets whose checks all hold by row locks ([`write::row_checked`]).
const READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// How a transaction writing `sets` begins.
fn begin_for(sets: &[&ChangeSet]) -> &'static str {
    if write::row_checked(sets) {
        READ_COMMITTED
    } else {
        SERIALIZABLE
    }
}

/// Whether `error` is PostgreSQL cancelling a transaction for a concurrent one (a serialization
/// failure or a deadlock): the transaction can be run again.
pub(crate) fn is_transient(error: &StoreError) -> bool {
    let StoreError::Backend(source) = error else {
        return false;
    };
    source
        .downcast_ref::<PgError>()
        .and_then(|error| error.0.code())
        .is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        })
}

impl Store for PgStore {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        self.write(|c| write::create_computer(c, computer.clone()))
    }

    fn update_computer(&self, computer: &Computer) -> StoreResult<()> {
        self.write(|c| write::update_computer(c, computer))
    }

    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>> {
        self.write(|c| write::delete_computer(c, id, at))
    }

    fn computer(&self, id: ComputerId) -> StoreResult<Computer> {
        self.read(|c| read::computer(c, id))
    }

    fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>> {
        self.read(|c| read::computer_by_hostname(c, hostname))
    }

    fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>> {
        self.read(|c| read::list_computers(c, page))
    }

    fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| write::set_last_seen(c, id, at))
    }

    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials> {
        self.read(|c| read::credentials(c, id))
    }

    fn hello_snapshot(
        &self,
        hostname: &str,
    ) -> StoreResult<Option<(Computer, AgentCredentials, PlannerSnapshot)>> {
        self.read(|c| read::hello_snapshot(c, hostname))
    }

    fn agent_lookup(&self, hostname: &str) -> StoreResult<Option<AgentLookup>> {
        // One statement, made by every agent request.
        self.read_single(|c| read::agent_lookup(c, hostname))
    }

    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        self.write(|c| write::set_credentials(c, id, credentials))
    }

    fn server_state(&self) -> StoreResult<ServerState> {
        self.read(read::server_state)
    }

    fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
        self.write(|c| write::set_server_state(c, state))
    }

    fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken> {
        self.write(|c| write::create_admin_token(c, token.clone()))
    }

    fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>> {
        self.read(|c| read::list_admin_tokens(c, page))
    }

    fn admin_token_by_digest(&self, digest: &Sha256Digest) -> StoreResult<Option<AdminToken>> {
        self.read(|c| read::admin_token_by_digest(c, digest))
    }

    fn delete_admin_token(&self, id: TokenId) -> StoreResult<()> {
        self.write(|c| write::delete_admin_token(c, id))
    }

    fn create_family(&self, name: Name) -> StoreResult<PackageFamily> {
        self.write(|c| write::create_family(c, name.clone()))
    }

    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.read(|c| read::family(c, id))
    }

    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        self.read(|c| read::list_families(c, page))
    }

    fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
        self.write(|c| write::create_package(c, package.clone()))
    }

    fn update_package(&self, package: &Package) -> StoreResult<()> {
        self.write(|c| write::update_package(c, package))
    }

    fn package(&self, id: PackageId) -> StoreResult<Package> {
        self.read(|c| read::package(c, id))
    }

    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>> {
        self.read(|c| read::list_packages(c, page))
    }

    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup> {
        self.write(|c| write::create_computer_group(c, name.clone(), parent))
    }

    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()> {
        self.write(|c| write::set_computer_group_parent(c, id, parent))
    }

    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()> {
        self.write(|c| write::set_computer_group_members(c, id, members))
    }

    fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
        self.read(read::computer_groups)
    }

    fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<PackageGroup> {
        self.write(|c| write::create_package_group(c, name.clone(), parent))
    }

    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()> {
        self.write(|c| write::set_package_group_parent(c, id, parent))
    }

    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()> {
        self.write(|c| write::set_package_group_members(c, id, members))
    }

    fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
        self.read(read::package_groups)
    }

    fn assignments(&self, computer: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)> {
        self.read(|c| read::assignments(c, computer))
    }

    fn container(&self, id: ContainerId) -> StoreResult<JobContainer> {
        self.read(|c| read::container(c, id))
    }

    fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>> {
        self.read(|c| read::list_containers(c, page))
    }

    fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule> {
        self.write(|c| write::create_rule(c, rule.clone()))
    }

    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()> {
        self.write(|c| write::update_rule(c, rule))
    }

    fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule> {
        self.read(|c| read::rule(c, id))
    }

    fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>> {
        self.read(|c| read::list_rules(c, page))
    }

    fn job(&self, id: JobId) -> StoreResult<Job> {
        self.read(|c| read::job(c, id))
    }

    fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>> {
        self.read(|c| read::list_jobs(c, filter, page, None))
    }

    fn list_jobs_abridged(
        &self,
        filter: &JobFilter,
        page: Page,
        output_chars: usize,
    ) -> StoreResult<Vec<ListedJob>> {
        let jobs = self.read(|c| read::list_jobs(c, filter, page, Some(output_chars)))?;
        Ok(jobs
            .into_iter()
            .map(|job| ListedJob::abridge(job, output_chars))
            .collect())
    }

    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot> {
        self.read(|c| read::planner_snapshot(c, computer))
    }

    fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot> {
        self.read_single(|c| read::report_snapshot(c, job))
    }

    fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot> {
        self.read(read::deploy_snapshot)
    }

    fn rule_snapshot(&self) -> StoreResult<RuleSnapshot> {
        self.read(read::rule_snapshot)
    }

    fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
        self.read(|c| read::rule_snapshot_part(c, part))
    }

    fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
        self.read(|c| read::rule_job_computers(c, rule))
    }

    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        self.read(|c| read::job_summary(c, origin))
    }

    fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
        self.write(|c| write::delete_rule(c, id))
    }

    fn housekeeping_snapshot(&self, now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot> {
        self.read(|conn| read::housekeeping_snapshot(conn, now))
    }

    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied> {
        let fail_at = self.fail_at();
        self.run(begin_for(&[changes]), |c| {
            write::ChangeWriter::new(c, fail_at).apply(changes)
        })
    }

    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        let fail_at = self.fail_at();
        // A batch of hellos: their credentials first, in one statement of its own
        // (`HelloBatch`); if it fails, nothing of it was written and the transaction writes
        // every set.
        let mut written = vec![false; sets.len()];
        if let Some(batch) = write::HelloBatch::of(sets) {
            let hellos = self.on_a_live_connection(|session| {
                session.single(&mut |c| write::ChangeWriter::new(c, fail_at).hellos(&batch))
            });
            for index in hellos.unwrap_or_default() {
                written[index] = true;
            }
        }
        let rest: Vec<&ChangeSet> = sets
            .iter()
            .zip(&written)
            .filter_map(|(set, written)| (!written).then_some(set))
            .collect();
        let mut results = Vec::new();
        let committed = if rest.is_empty() {
            Ok(())
        } else {
            self.run(begin_for(&rest), |c| {
                results = write::ChangeWriter::new(c, fail_at).apply_many(&rest)?;
                Ok(())
            })
        };
        if let Err(error) = committed {
            // Nothing of the transaction was committed: each of its sets failed with it.
            let message = error.to_string();
            results = rest
                .iter()
                .map(|_| Err(StoreError::Backend(message.clone().into())))
                .collect();
        }
        let mut results = results.into_iter();
        written
            .into_iter()
            .map(|written| {
                if written {
                    Ok(Applied::default())
                } else {
                    results.next().unwrap_or_else(|| {
                        Err(StoreError::Backend("a change set without a result".into()))
                    })
                }
            })
            .collect()
    }
}
