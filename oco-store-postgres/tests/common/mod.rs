//! The database the tests run on: `OCO_TEST_POSTGRES` (a connection URL), each store in a fresh
//! schema of its own, dropped when the test ends. Without the variable the tests say they were
//! skipped and pass, unless `OCO_REQUIRE_POSTGRES=1` makes that a failure (CI sets it).
//! `scripts/throwaway-cluster.sh` starts a cluster to point them at.

// Test fixtures fail by panicking; not every test file uses every helper.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use oco_store_postgres::testing::env_or_skip;
use oco_store_postgres::{Options, PgStore};

/// Schemas of one test, dropped with it.
pub struct TestDatabase {
    pub url: String,
    schemas: Mutex<Vec<String>>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestDatabase {
    /// The test database, or `None` (after saying so) when the tests are to be skipped.
    ///
    /// # Panics
    ///
    /// Without `OCO_TEST_POSTGRES` when `OCO_REQUIRE_POSTGRES=1`.
    pub fn get(test: &str) -> Option<TestDatabase> {
        let url = env_or_skip(test, &["OCO_TEST_POSTGRES"])?.remove(0);
        Some(TestDatabase {
            url,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// A fresh schema's name, dropped with the test.
    pub fn schema(&self) -> String {
        let name = format!(
            "oco_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.schemas.lock().unwrap().push(name.clone());
        name
    }

    /// Options of a store in `schema`.
    pub fn options(&self, schema: &str) -> Options {
        Options {
            schema: Some(schema.to_owned()),
            ..Options::default()
        }
    }

    /// A store on a fresh schema.
    pub fn store(&self) -> PgStore {
        let schema = self.schema();
        PgStore::connect_with(&self.url, &self.options(&schema)).expect("a store on a new schema")
    }

    /// A plain connection to the database (search path set to `schema`, if given).
    pub fn client(&self, schema: Option<&str>) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        if let Some(schema) = schema {
            client
                .batch_execute(&format!("SET search_path TO \"{schema}\""))
                .unwrap();
        }
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap_or_else(|e| e.into_inner()));
        if schemas.is_empty() {
            return;
        }
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            for schema in schemas {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}
