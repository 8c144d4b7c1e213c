//! Helpers shared by the robustness tests: temporary file stores, a raw dump of every table, and
//! small fixtures.

// Test helpers panic on bad fixtures by design; not every test file uses every helper.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oco_core::chrono_tz::Tz;
use oco_core::model::{
    ComputerId, DeliveryPolicy, Job, JobContainer, JobKind, Origin, Package, Schedule, WolSettings,
};
use oco_core::store::testkit::{at, name};
use oco_store_sqlite::SqliteStore;
use rusqlite::types::Value;

/// A store in a fresh temporary directory; the directory lives as long as the returned guard.
pub fn temp_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oco.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}

/// One table's rows, each rendered as its columns' debug text, sorted.
pub type Rows = Vec<Vec<String>>;

/// Every table of the database at `path` (read with a separate raw connection) with all of its
/// rows in a stable order. Reads through the WAL, so it sees exactly what is committed.
pub fn raw_dump(path: &Path) -> BTreeMap<String, Rows> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let tables: Vec<String> = {
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut dump = BTreeMap::new();
    for table in tables {
        let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = statement.column_count();
        let mut rows: Rows = statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| row.get::<_, Value>(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        dump.insert(table, rows);
    }
    dump
}

/// A policy without constraints: every job is deliverable at any time from any address.
pub fn open_policy() -> DeliveryPolicy {
    DeliveryPolicy::new(Tz::UTC)
}

/// An enabled container started long ago, without end, constraints or Wake-on-LAN.
pub fn open_container(title: &str) -> JobContainer {
    JobContainer {
        id: oco_core::model::ContainerId(0),
        name: name(title),
        notes: String::new(),
        enabled: true,
        schedule: Schedule::new(at(-86_400), None).unwrap(),
        policy: open_policy(),
        wol: WolSettings::default(),
        self_service: false,
        created_at: at(-86_400),
    }
}

/// A Waiting install job of `package` on `computer` (origin set by the store).
pub fn waiting_job(computer: ComputerId, package: &Package, sequence: u32) -> Job {
    Job::new(
        Origin::Container(oco_core::model::ContainerId(0)),
        computer,
        package,
        JobKind::Install,
        sequence,
    )
}
