//! The core's store conformance suite, against a database file and an in-memory database (a
//! failure names the check).

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use oco_core::store::testkit;
use oco_core::store::Store;
use oco_store_sqlite::SqliteStore;

/// Temporary directories of the file stores, removed when the test process ends.
static DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

fn file_store() -> Box<dyn Store> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("oco.db")).expect("a new database file");
    DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
    Box::new(store)
}

fn memory_store() -> Box<dyn Store> {
    Box::new(SqliteStore::open_in_memory().expect("an in-memory database"))
}

#[test]
fn whole_suite_on_a_file() {
    testkit::run_conformance(&file_store);
}

#[test]
fn whole_suite_in_memory() {
    testkit::run_conformance(&memory_store);
}
