//! Several threads on one database: every compare-and-set loser gets `StoreError::Conflict`
//! (never a serialization failure, which the store retries), and exactly one of the writers
//! that read the same revision wins. The core's races ([`testkit::RACES`], which the SQLite
//! store runs too), on PostgreSQL, whose writers run at once rather than one after the other.
//! Skipped, saying so, without `OCO_TEST_POSTGRES`.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDatabase;
use oco_core::store::testkit;
use oco_core::store::Store;

#[test]
fn compare_and_set_races_have_exactly_one_winner() {
    let Some(db) = TestDatabase::get("compare_and_set_races_have_exactly_one_winner") else {
        return;
    };
    testkit::run_races(&|| Box::new(db.store()) as Box<dyn Store>);
}
