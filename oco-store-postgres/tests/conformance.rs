//! The core's store conformance suite, each check on a store in a fresh schema (a failure names
//! the check). Skipped, saying so, without `OCO_TEST_POSTGRES`; see `tests/common`.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use oco_core::store::testkit;
use oco_core::store::Store;

#[test]
fn whole_suite() {
    let Some(db) = common::TestDatabase::get("whole_suite") else {
        return;
    };
    testkit::run_conformance(&|| Box::new(db.store()) as Box<dyn Store>);
}
