//! `oco-store-sqlite`: the durable [`Store`] of [`oco_core`] on SQLite.
//!
//! ```
//! use oco_store_sqlite::oco_core::model::Name;
//! use oco_store_sqlite::oco_core::store::{NewComputer, Store};
//! use oco_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open_in_memory()?;
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
//! [`SqliteStore::open`] opens (or creates) a database file and brings its schema up to date;
//! [`SqliteStore::open_in_memory`] makes a private database for tests and examples. The store
//! passes the core's conformance suite (`oco_core::store::testkit`).
//!
//! # Schema and migrations
//!
//! The schema is created and migrated by versioned SQL migrations embedded in the binary
//! (`migrations/*.sql`); the version is recorded in the database (`PRAGMA user_version`). Opening
//! an older database migrates it in one transaction; opening a database of a newer schema than
//! [`SCHEMA_VERSION`] is a [`StoreError::Invalid`] naming both versions.
//!
//! # Connections and concurrency
//!
//! A file store has one writer connection behind a mutex (every write is one `BEGIN IMMEDIATE`
//! transaction) and a pool of [`Options::readers`] reader connections; each read runs in one
//! transaction, so a snapshot comes from one consistent state. With WAL, readers never wait for
//! the writer. Several processes may open one file: SQLite's locks serialise their writes, and a
//! writer waits up to [`Options::busy_timeout`] for another. An in-memory store has one
//! connection for everything (two in-memory connections would be two databases).
//!
//! # Durability
//!
//! [`apply`](Store::apply) returns after the commit. With the default
//! [`Synchronous::Normal`] (in WAL mode) a commit survives a crash of the process, but the last
//! commits before a power loss or an operating-system crash may be lost (the database stays
//! consistent). [`Synchronous::Full`] makes every commit wait for the disk, surviving power loss,
//! at the cost of an `fsync` per commit; [`Store::apply_many`] shares one commit among several
//! change sets to amortise it.
//!
//! # Corrupt rows
//!
//! Constraints and other typed values are stored as their canonical text and parsed when read.
//! A row that no longer parses (edited by hand) is [`StoreError::Corrupt`] naming that row: the
//! getter of that row fails, and so does a listing page that contains it (the error names the id,
//! so the caller can page past it with [`Page::after`](oco_core::store::Page)). The planner
//! snapshot reads an origin whose policy no longer parses as `Err(reason)` in
//! [`OriginInfo::policy`](oco_core::store::OriginInfo) (its jobs are held), and housekeeping leaves
//! out a container it cannot read; other rows and other computers are unaffected.

mod encode;
mod read;
mod schema;
mod write;

use std::collections::BTreeSet;
use std::ops::Deref;
use std::path::Path;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

pub use oco_core;
use oco_core::chrono::{DateTime, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId, Sha256Digest, TokenId,
};
use oco_core::store::{
    AdminToken, AgentCredentials, AgentLookup, Applied, ChangeSet, DeploySnapshot,
    HousekeepingSnapshot, JobFilter, ListedJob, NewAdminToken, NewComputer, NewPackage, NewRule,
    Page, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot, ServerState, Store, StoreError,
    StoreResult,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

pub use schema::SCHEMA_VERSION;

/// How a file store is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// When a commit reaches the disk (see the crate docs on durability).
    pub synchronous: Synchronous,
    /// How long a write waits for another process's write before failing.
    pub busy_timeout: Duration,
    /// Reader connections (0: reads share the writer connection).
    pub readers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
        }
    }
}

/// SQLite's `synchronous` setting, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Commits survive a process crash; the last ones may be lost on power loss.
    #[default]
    Normal,
    /// Every commit is flushed to the disk before it returns.
    Full,
}

/// The [`Store`] on SQLite. `Send + Sync`: share it between threads (e.g. in an `Arc`).
///
/// See the crate docs for the connection model, durability and how corrupt rows are reported.
#[derive(Debug)]
pub struct SqliteStore {
    // Fields drop in order: the readers and the checkpointer first, so that the writer, closing
    // last, checkpoints and removes the WAL file (a read-only connection cannot).
    /// `None`: reads use the writer connection.
    readers: Option<Pool>,
    /// `None` in memory (no WAL).
    _checkpointer: Option<Checkpointer>,
    /// Shared with the checkpointer, which pauses writes to restart a long WAL.
    writer: Arc<Mutex<Connection>>,
    #[cfg(feature = "fault-injection")]
    fail_nth: Mutex<Option<u64>>,
}

/// Copies the WAL back into the database from a thread of its own, every [`CHECKPOINT_EVERY`],
/// instead of in the commit that crosses SQLite's threshold: that commit, and every request of
/// its group, would wait for it (the tail of the server's reply latencies).
#[derive(Debug)]
struct Checkpointer {
    /// Dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// How often the checkpointer runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// A WAL of at least this many frames (4 KiB pages) is restarted after the round's checkpoint:
/// 64 MiB (4 MiB in this crate's tests, so that they reach it quickly).
const RESTART_FRAMES: i64 = if cfg!(test) { 1_024 } else { 16_384 };

impl Checkpointer {
    /// Starts the thread. Each round copies the WAL into the database with a PASSIVE checkpoint,
    /// which never waits for the writer or the readers. Under a steady stream of commits that is
    /// not enough: SQLite starts the WAL over only once every frame is copied, and new frames
    /// arrive while a round copies and syncs, so the WAL would grow without end. So when it has
    /// reached [`RESTART_FRAMES`], the round then holds `writer` and runs a RESTART checkpoint on
    /// it, which copies the few frames left and lets the next commit start the WAL over: one
    /// short pause of the writes, once every few seconds at full load.
    fn start(
        path: &Path,
        options: &Options,
        writer: Arc<Mutex<Connection>>,
    ) -> StoreResult<Checkpointer> {
        let conn = Connection::open(path).map_err(backend)?;
        configure(&conn, options)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("oco-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // An error is retried at the next round.
                    let Ok(frames) = checkpoint(&conn, "PASSIVE") else {
                        continue;
                    };
                    if frames >= RESTART_FRAMES {
                        let writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                        let _ = checkpoint(&writer, "RESTART");
                    }
                }
            })
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Runs a checkpoint in `mode` on `conn`; returns the number of frames in the WAL.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get(1)
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only checkpoints; a panic there has nothing to report at close.
            let _ = thread.join();
        }
    }
}

#[derive(Debug)]
struct Pool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with [`Options::default`], migrating it to
    /// [`SCHEMA_VERSION`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] if the database has a newer schema; [`StoreError::Backend`] if it
    /// cannot be opened or migrated.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        Self::open_with(path, &Options::default())
    }

    /// Opens (or creates) the database at `path` with `options`, migrating it to
    /// [`SCHEMA_VERSION`].
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: &Options) -> StoreResult<SqliteStore> {
        let path = path.as_ref();
        create_private(path)?;
        let mut writer = Connection::open(path).map_err(backend)?;
        configure(&writer, options)?;
        // A database this code cannot use is refused before anything (journal mode included) is
        // changed in the file.
        schema::refuse_newer(&writer)?;
        // WAL is a property of the file: set once, by the writer.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(
                format!(
                    "could not switch {} to WAL mode (got `{mode}`)",
                    path.display()
                )
                .into(),
            ));
        }
        schema::migrate(&mut writer)?;
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(backend)?;
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = Checkpointer::start(path, options, writer.clone())?;
        let readers = if options.readers == 0 {
            None
        } else {
            let mut idle = Vec::with_capacity(options.readers);
            for _ in 0..options.readers {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let reader = Connection::open_with_flags(path, flags).map_err(backend)?;
                configure(&reader, options)?;
                idle.push(reader);
            }
            Some(Pool {
                idle: Mutex::new(idle),
                returned: Condvar::new(),
            })
        };
        Ok(SqliteStore::new(writer, readers, Some(checkpointer)))
    }

    /// A new, private in-memory database with one connection for everything.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite fails.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let mut conn = Connection::open_in_memory().map_err(backend)?;
        configure(&conn, &Options::default())?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore::new(Arc::new(Mutex::new(conn)), None, None))
    }

    /// The schema version recorded in the database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite fails.
    pub fn schema_version(&self) -> StoreResult<u32> {
        let conn = self.writer();
        schema::version(&conn)
    }

    /// Replaces `from` by `to` in every computer's previous agent key, in one transaction, and
    /// returns how many computers had it. A server uses it at start to take copies of a shared
    /// key (the global or the registration key) out of rows written before it stored such keys
    /// by a reference only.
    ///
    /// ```
    /// use oco_store_sqlite::SqliteStore;
    ///
    /// let store = SqliteStore::open_in_memory()?;
    /// assert_eq!(store.replace_previous_agent_key("global-key", "fingerprint:ab12")?, 0);
    /// # Ok::<(), oco_core::store::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite fails; then nothing was replaced.
    pub fn replace_previous_agent_key(&self, from: &str, to: &str) -> StoreResult<usize> {
        self.write(|conn| {
            conn.execute(
                "UPDATE credentials SET previous_agent_key = ?2 WHERE previous_agent_key = ?1",
                rusqlite::params![from, to],
            )
            .map_err(backend)
        })
    }

    /// While `Some(n)`: inside each later `apply`/`apply_many` transaction, the `n`-th SQL
    /// statement executed (from 1, counted from the first statement after `BEGIN`, the `BEGIN`
    /// itself not counted; savepoints count, rollbacks and the `COMMIT` do not) fails with
    /// [`StoreError::Backend`] instead of running. For tests that a half-applied change set
    /// leaves no trace.
    #[cfg(feature = "fault-injection")]
    pub fn fail_nth_statement(&self, n: Option<u64>) {
        *self.fail_nth.lock().unwrap_or_else(PoisonError::into_inner) = n;
    }

    fn new(
        writer: Arc<Mutex<Connection>>,
        readers: Option<Pool>,
        checkpointer: Option<Checkpointer>,
    ) -> Self {
        SqliteStore {
            writer,
            readers,
            _checkpointer: checkpointer,
            #[cfg(feature = "fault-injection")]
            fail_nth: Mutex::new(None),
        }
    }

    /// The writer connection.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held can only have left an open transaction behind (every
        // use is one transaction), which the next transaction rolls back: nothing half-written
        // can be committed, so the poison is not reported.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one read transaction, on a reader connection if there are any.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = match &self.readers {
            Some(pool) => ReadConn::Pooled(pool, Some(pool.take())),
            None => ReadConn::Writer(self.writer()),
        };
        transaction(&conn, "BEGIN", f)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.writer();
        transaction(&conn, "BEGIN IMMEDIATE", f)
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

impl Pool {
    fn take(&self) -> Connection {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = idle.pop() {
                return conn;
            }
            idle = self
                .returned
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        self.returned.notify_one();
    }
}

/// A connection checked out for one read.
enum ReadConn<'a> {
    /// From the pool, given back when dropped (`None` only while dropping).
    Pooled(&'a Pool, Option<Connection>),
    Writer(MutexGuard<'a, Connection>),
}

impl Deref for ReadConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ReadConn::Pooled(_, Some(conn)) => conn,
            ReadConn::Pooled(_, None) => unreachable!("a pooled connection is only taken on drop"),
            ReadConn::Writer(conn) => conn,
        }
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        if let ReadConn::Pooled(pool, conn) = self {
            if let Some(conn) = conn.take() {
                pool.give_back(conn);
            }
        }
    }
}

/// Runs `f` between `begin` and `COMMIT`, rolling back if `f` or the commit fails. The three
/// statements are prepared once per connection.
fn transaction<T>(
    conn: &Connection,
    begin: &str,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let run = |sql: &str| -> StoreResult<()> {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(backend)
    };
    // A transaction left open by a panic in an earlier call.
    if !conn.is_autocommit() {
        run("ROLLBACK")?;
    }
    run(begin)?;
    let result = f(conn).and_then(|value| run("COMMIT").map(|()| value));
    if result.is_err() && !conn.is_autocommit() {
        // The error to report is the first one; a failed rollback leaves the transaction to
        // the next call, which rolls it back before anything else.
        let _ = run("ROLLBACK");
    }
    result
}

/// Creates the database file at `path`, if there is none, readable and writable by its owner
/// only (0600 on unix, whatever the umask): it holds every computer's agent and server keys.
/// SQLite gives the WAL and shared-memory files it creates beside it the same mode.
fn create_private(path: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Backend(
            format!("creating {}: {error}", path.display()).into(),
        )),
    }
}

/// Per-connection settings.
fn configure(conn: &Connection, options: &Options) -> StoreResult<()> {
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
    ))
    .map_err(backend)?;
    conn.busy_timeout(options.busy_timeout).map_err(backend)?;
    // The bundled SQLite has STAT4, under which a cached statement whose bindings are cleared
    // (rusqlite does, when it goes back to the cache) is prepared again at its next use. The
    // query-planner stability guarantee keeps the plan, and our statements do not depend on the
    // values bound.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// A SQLite failure as a store error.
pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

impl Store for SqliteStore {
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer> {
        self.write(|c| write::create_computer(c, computer))
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
        self.read(|c| read::agent_lookup(c, hostname))
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
        self.write(|c| write::create_admin_token(c, token))
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
        self.write(|c| write::create_family(c, name))
    }

    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily> {
        self.read(|c| read::family(c, id))
    }

    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>> {
        self.read(|c| read::list_families(c, page))
    }

    fn create_package(&self, package: NewPackage) -> StoreResult<Package> {
        self.write(|c| write::create_package(c, package))
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
        self.write(|c| write::create_computer_group(c, name, parent))
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
        self.write(|c| write::create_package_group(c, name, parent))
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
        self.write(|c| write::create_rule(c, rule))
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
        self.read(|c| read::report_snapshot(c, job))
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
        self.write(|c| write::ChangeWriter::new(c, fail_at).apply(changes))
    }

    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>> {
        if sets.is_empty() {
            return Vec::new();
        }
        let fail_at = self.fail_at();
        let mut results = Vec::new();
        let committed = self.write(|c| {
            results = write::ChangeWriter::new(c, fail_at).apply_many(sets)?;
            Ok(())
        });
        match committed {
            Ok(()) => results,
            // Nothing was committed: every set failed with the commit.
            Err(error) => {
                let message = error.to_string();
                sets.iter()
                    .map(|_| Err(StoreError::Backend(message.clone().into())))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use oco_core::model::{ContainerId, Job, JobKind, Origin};
    use oco_core::store::testkit::{self, at, fixture, new_computer};
    use oco_core::store::{Change, ChangeSet};

    use super::*;

    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oco.db");
        (dir, path)
    }

    #[test]
    fn a_new_database_gets_the_current_schema() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        // Opening again migrates nothing.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let memory = SqliteStore::open_in_memory().unwrap();
        assert_eq!(memory.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let (_dir, path) = temp_db();
        drop(SqliteStore::open(&path).unwrap());
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {newer}"))
            .unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid: the database has schema version {newer}, newer than version \
                 {SCHEMA_VERSION} that this oco-store-sqlite knows: open it with a newer release"
            )
        );
    }

    #[test]
    fn options_are_applied() {
        let (_dir, path) = temp_db();
        let options = Options {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_millis(250),
            readers: 0,
        };
        let store = SqliteStore::open_with(&path, &options).unwrap();
        let conn = store.writer();
        let read = |pragma: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(read("synchronous"), 2, "FULL");
        assert_eq!(read("foreign_keys"), 1);
        assert_eq!(read("busy_timeout"), 250);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // Reads go through the writer without readers.
        assert!(store.list_computers(Page::first(1)).unwrap().is_empty());
        assert_eq!(Options::default().synchronous, Synchronous::Normal);
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_store_is_send_and_sync() {
        assert_send_sync::<SqliteStore>();
    }

    /// A container with one Waiting job on `computer`.
    fn container_with_job(
        store: &SqliteStore,
        computer: ComputerId,
        package: &Package,
    ) -> ContainerId {
        let job = Job::new(
            Origin::Container(ContainerId(0)),
            computer,
            package,
            JobKind::Install,
            1,
        );
        testkit::create_container(store, "c", vec![job]).0
    }

    #[test]
    fn a_constraint_edited_by_hand_is_corrupt_for_its_row_only() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        let f = fixture(&store);
        let pc = f.computers[0].id;
        let broken = container_with_job(&store, pc, &f.packages[0]);
        let sound = container_with_job(&store, pc, &f.packages[1]);
        let other_pc = container_with_job(&store, f.computers[1].id, &f.packages[0]);
        let cg = store
            .create_computer_group(testkit::name("cg"), None)
            .unwrap();
        let pg = store
            .create_package_group(testkit::name("pg"), None)
            .unwrap();
        let rule = store.create_rule(testkit::rule("r", cg.id, pg.id)).unwrap();
        testkit::apply(
            &store,
            vec![Change::InsertJob {
                job: Job::new(Origin::Rule(rule.id), pc, &f.other, JobKind::Install, 1),
            }],
        );

        let hand = Connection::open(&path).unwrap();
        hand.execute(
            "UPDATE containers SET ip_ranges = '10.0.0.0/33, ???' WHERE id = ?1",
            [broken.0],
        )
        .unwrap();
        hand.execute(
            "UPDATE rules SET time_zone = 'Mars/Olympus' WHERE id = ?1",
            [rule.id.0],
        )
        .unwrap();

        match store.container(broken) {
            Err(StoreError::Corrupt { what, id, reason }) => {
                assert_eq!(
                    (what, id.as_str()),
                    ("container", broken.to_string().as_str())
                );
                assert!(
                    reason.starts_with("ip_ranges `10.0.0.0/33, ???`: "),
                    "{reason}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        match store.rule(rule.id) {
            Err(StoreError::Corrupt { what, reason, .. }) => {
                assert_eq!(what, "rule");
                assert_eq!(reason, "time_zone: `Mars/Olympus` is not an IANA time zone");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(store.container(sound).is_ok());

        // The planner holds the broken origins' jobs and delivers the others.
        let snapshot = store.planner_snapshot(pc).unwrap();
        assert_eq!(snapshot.jobs.len(), 3);
        let policy = &snapshot.origins[&Origin::Container(broken)].policy;
        let reason = policy.as_ref().unwrap_err();
        assert!(
            reason.starts_with(&format!("stored container {broken} is corrupt: ip_ranges")),
            "{reason}"
        );
        assert!(snapshot.origins[&Origin::Rule(rule.id)].policy.is_err());
        let origin = &snapshot.origins[&Origin::Container(sound)];
        assert_eq!(origin.policy.as_ref().unwrap(), &testkit::policy());
        assert_eq!(origin.schedule, Some(testkit::container("c").schedule));
        // Another computer's snapshot is untouched.
        let other = store.planner_snapshot(f.computers[1].id).unwrap();
        assert!(other.origins[&Origin::Container(other_pc)].policy.is_ok());

        // A listing page with the row fails naming it; the next page reads.
        let err = store.list_containers(Page::first(10)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let after = store
            .list_containers(Page {
                after: Some(broken.0),
                limit: 10,
            })
            .unwrap();
        assert_eq!(
            after.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![sound, other_pc]
        );
        // Housekeeping leaves the unreadable container out; reports still read its sequence mode.
        let housekeeping = store
            .housekeeping_snapshot(DateTime::<Utc>::MAX_UTC)
            .unwrap();
        assert!(housekeeping
            .containers
            .iter()
            .all(|c| c.container.id != broken));
        assert!(housekeeping
            .containers
            .iter()
            .any(|c| c.container.id == sound));
        let job = snapshot
            .jobs
            .iter()
            .find(|j| j.origin == Origin::Container(broken))
            .unwrap();
        assert!(store.report_snapshot(job.id).is_ok());
    }

    #[test]
    fn the_write_ahead_log_is_checkpointed_in_the_background() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        // Commits go to the WAL; the database file grows only when a checkpoint copies them.
        std::thread::sleep(CHECKPOINT_EVERY * 3);
        let before = size();
        for n in 0..200 {
            store
                .create_computer(testkit::new_computer(&format!("pc{n}")))
                .unwrap();
        }
        // Up to 5 s for a round to run on a busy machine.
        for _ in 0..50 {
            if size() > before {
                break;
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        assert!(
            size() > before,
            "the database file stayed at {before} bytes"
        );
    }

    #[test]
    fn the_write_ahead_log_starts_over_under_a_stream_of_commits() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        let wal = path.with_extension("db-wal");
        let pc = store.create_computer(testkit::new_computer("pc")).unwrap();
        // The WAL header's checkpoint sequence number (big-endian, bytes 12..16) goes up each
        // time SQLite starts the WAL over. Commits back to back for 30 checkpoint rounds: the
        // passive rounds alone never catch up with the last frame (0 restarts here, while the
        // WAL grew to hundreds of MiB); with the restarts it starts over at nearly every round,
        // once it holds 4 MiB (in tests).
        let sequence = || {
            use std::io::Read;
            let mut header = [0; 16];
            let mut file = std::fs::File::open(&wal).ok()?;
            file.read_exact(&mut header).ok()?;
            Some(u32::from_be_bytes([
                header[12], header[13], header[14], header[15],
            ]))
        };
        let mut seen = std::collections::BTreeSet::new();
        // The test bounds its own length by the clock; the store reads none.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        for n in 0.. {
            if started.elapsed() > CHECKPOINT_EVERY * 30 {
                break;
            }
            let mut credentials = store.credentials(pc.id).unwrap();
            // Every page of the value changes (SQLite skips writing unchanged overflow pages).
            let fill = char::from(b'a' + u8::try_from(n % 26).unwrap());
            credentials.server_key = Some(fill.to_string().repeat(8 * 1024));
            store.set_credentials(pc.id, &credentials).unwrap();
            if n % 16 == 0 {
                seen.extend(sequence());
            }
        }
        assert!(
            seen.len() > 15,
            "the WAL started over {} times: checkpoint sequence numbers {seen:?}",
            seen.len().saturating_sub(1)
        );
    }

    #[test]
    fn closing_a_file_store_removes_its_write_ahead_log() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        fixture(&store);
        let wal = path.with_extension("db-wal");
        assert!(wal.exists(), "{} exists while open", wal.display());
        drop(store);
        assert!(!wal.exists(), "{} is removed at close", wal.display());
    }

    #[test]
    fn housekeeping_reads_no_jobs_of_containers_still_running() {
        let store = SqliteStore::open_in_memory().unwrap();
        let f = fixture(&store);
        // Pending jobs, ends at at(86_400), wake packets already sent.
        let running = container_with_job(&store, f.computers[0].id, &f.packages[0]);
        let has = |now| {
            store
                .housekeeping_snapshot(now)
                .unwrap()
                .containers
                .iter()
                .any(|c| c.container.id == running)
        };
        assert!(!has(testkit::at(10)));
        assert!(!has(testkit::at(86_399)));
        assert!(has(testkit::at(86_400)));
    }

    #[test]
    fn a_corrupt_job_row_is_reported_for_that_job() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).unwrap();
        let f = fixture(&store);
        let c = container_with_job(&store, f.computers[0].id, &f.packages[0]);
        let job = store
            .list_jobs(&oco_core::store::JobFilter::default(), Page::first(1))
            .unwrap()[0]
            .clone();
        let hand = Connection::open(&path).unwrap();
        hand.execute(
            "UPDATE jobs SET kind = 'reinstall' WHERE id = ?1",
            [job.id.0],
        )
        .unwrap();
        match store.job(job.id) {
            Err(StoreError::Corrupt { what, id, reason }) => {
                assert_eq!((what, id), ("job", job.id.to_string()));
                assert_eq!(reason, "kind: `reinstall` is not a job kind");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(store.container(c).is_ok());
        assert!(store.planner_snapshot(f.computers[1].id).is_ok());
    }

    #[test]
    fn instants_beyond_the_stored_range_are_invalid() {
        let store = SqliteStore::open_in_memory().unwrap();
        let pc = store.create_computer(new_computer("pc1")).unwrap();
        let far = DateTime::from_timestamp(400_000_000_000, 0).unwrap();
        let err = store.set_last_seen(pc.id, far).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
        assert_eq!(store.computer(pc.id).unwrap().last_seen, None);
        store.set_last_seen(pc.id, at(1)).unwrap();
    }

    #[test]
    fn jobs_share_stored_snapshots() {
        let store = SqliteStore::open_in_memory().unwrap();
        let f = fixture(&store);
        for _ in 0..3 {
            container_with_job(&store, f.computers[0].id, &f.packages[0]);
        }
        let conn = store.writer();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM job_snapshots", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn apply_many_commits_once_with_each_set_atomic() {
        let store = SqliteStore::open_in_memory().unwrap();
        let f = fixture(&store);
        let sets = vec![
            ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: testkit::container("a"),
                    jobs: vec![],
                }],
            },
            ChangeSet {
                changes: vec![
                    Change::CreateContainer {
                        container: testkit::container("b"),
                        jobs: vec![],
                    },
                    Change::ExpectAssignments {
                        computer: f.computers[0].id,
                        expected: Revision(5),
                    },
                ],
            },
        ];
        let results = store.apply_many(&sets);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Conflict { .. })));
        let names: Vec<String> = store
            .list_containers(Page::first(10))
            .unwrap()
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        assert_eq!(names, vec!["a"]);
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn a_failed_statement_rolls_the_whole_set_back() {
        let store = SqliteStore::open_in_memory().unwrap();
        let f = fixture(&store);
        let c = container_with_job(&store, f.computers[0].id, &f.packages[0]);
        let job = store
            .list_jobs(&oco_core::store::JobFilter::default(), Page::first(1))
            .unwrap()[0]
            .clone();
        let mut done = job.clone();
        done.state = oco_core::model::JobState::Succeeded;
        let set = ChangeSet {
            changes: vec![
                Change::UpdateJob {
                    expected: job.revision,
                    job: done,
                },
                Change::UpsertAssignment {
                    assignment: Assignment {
                        computer: job.computer,
                        package: job.package,
                        installed_at: at(3),
                        job: Some(job.id),
                    },
                },
                Change::InsertJob {
                    job: Job::new(
                        Origin::Container(c),
                        f.computers[1].id,
                        &f.other,
                        JobKind::Install,
                        1,
                    ),
                },
            ],
        };
        let before = testkit::dump(&store);
        let mut n = 1;
        loop {
            store.fail_nth_statement(Some(n));
            match store.apply(&set) {
                Err(StoreError::Backend(_)) => {
                    assert_eq!(testkit::dump(&store), before, "statement {n} failed");
                    n += 1;
                }
                Ok(_) => break,
                Err(other) => panic!("statement {n}: {other:?}"),
            }
        }
        assert!(n > 4, "the set runs several statements, got {n}");
        store.fail_nth_statement(None);
        assert_eq!(
            store.job(job.id).unwrap().state,
            oco_core::model::JobState::Succeeded
        );
    }
}
