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

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use oco_core;
use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, Name, Package, PackageFamily, PackageGroup, PackageGroupId,
    PackageId, Revision, RuleId,
};
use oco_core::store::{
    AgentCredentials, Applied, ChangeSet, DeploySnapshot, HousekeepingSnapshot, JobFilter,
    NewComputer, Page, PlannerSnapshot, ReportSnapshot, RuleSnapshot, ServerState, Store,
    StoreError, StoreResult,
};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

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
    writer: Mutex<Connection>,
    /// `None`: reads use the writer connection.
    readers: Option<Pool>,
    #[cfg(feature = "fault-injection")]
    fail_nth: Mutex<Option<u64>>,
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
        let mut writer = Connection::open(path).map_err(backend)?;
        configure(&writer, options)?;
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
        Ok(SqliteStore::new(writer, readers))
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
        Ok(SqliteStore::new(conn, None))
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

    /// While `Some(n)`: inside each later `apply`/`apply_many` transaction, the `n`-th SQL
    /// statement executed (from 1, counted from the first statement after `BEGIN`, the `BEGIN`
    /// itself not counted; savepoints count, rollbacks and the `COMMIT` do not) fails with
    /// [`StoreError::Backend`] instead of running. For tests that a half-applied change set
    /// leaves no trace.
    #[cfg(feature = "fault-injection")]
    pub fn fail_nth_statement(&self, n: Option<u64>) {
        *self.fail_nth.lock().unwrap_or_else(PoisonError::into_inner) = n;
    }

    fn new(writer: Connection, readers: Option<Pool>) -> Self {
        SqliteStore {
            writer: Mutex::new(writer),
            readers,
            #[cfg(feature = "fault-injection")]
            fail_nth: Mutex::new(None),
        }
    }

    /// The writer connection, outside any transaction.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held can only have left an open transaction behind (every
        // write is one transaction): roll it back rather than poisoning the store for good.
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn
    }

    /// Runs `f` in one read transaction, on a reader connection if there are any.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = match &self.readers {
            Some(pool) => ReadConn::Pooled(pool, Some(pool.take())),
            None => ReadConn::Writer(self.writer()),
        };
        let tx = conn.transaction().map_err(backend)?;
        let value = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(value)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let value = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(value)
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

impl DerefMut for ReadConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
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

    fn delete_computer(&self, id: ComputerId) -> StoreResult<()> {
        self.write(|c| write::delete_computer(c, id))
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

    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()> {
        self.write(|c| write::set_credentials(c, id, credentials))
    }

    fn server_state(&self) -> StoreResult<ServerState> {
        self.read(read::server_state)
    }

    fn set_server_state(&self, state: &ServerState) -> StoreResult<()> {
        self.write(|c| write::set_server_state(c, state))
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

    fn create_package(&self, package: Package) -> StoreResult<Package> {
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

    fn create_rule(&self, rule: DeploymentRule) -> StoreResult<DeploymentRule> {
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
        self.read(|c| read::list_jobs(c, filter, page))
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

    fn rule_snapshot_for(&self, computers: &[ComputerId]) -> StoreResult<RuleSnapshot> {
        self.read(|c| read::rule_snapshot_for(c, computers))
    }

    fn delete_rule(&self, id: RuleId) -> StoreResult<()> {
        self.write(|c| write::delete_rule(c, id))
    }

    fn housekeeping_snapshot(&self) -> StoreResult<HousekeepingSnapshot> {
        self.read(read::housekeeping_snapshot)
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
