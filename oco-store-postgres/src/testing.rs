//! For test suites that need a PostgreSQL database (feature `testing`): the database comes from
//! environment variables (`OCO_TEST_POSTGRES`, a URL), a test without them says it was skipped
//! and passes, unless `OCO_REQUIRE_POSTGRES=1` (which CI sets) makes that a failure; each test
//! works in a schema of its own, dropped when it ends. `scripts/throwaway-cluster.sh start DIR`
//! starts a cluster to point them at.
//!
//! ```no_run
//! use oco_store_postgres::testing::{env_or_skip, TestSchema};
//! use oco_store_postgres::PgStore;
//!
//! let Some(vars) = env_or_skip("my_test", &["OCO_TEST_POSTGRES"]) else {
//!     return Ok(()); // skipped, and said so
//! };
//! let schema = TestSchema::create(&vars[0])?;
//! let store = PgStore::connect(&schema.url())?;
//! // … the test; the schema is dropped with `schema`.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use oco_core::store::StoreResult;
use postgres::{Client, NoTls};

use crate::backend;

/// The values of the environment variables `names`, or `None` (after saying on stderr that
/// `test` was skipped, and why) when one is unset or empty.
///
/// # Panics
///
/// When one is missing and `OCO_REQUIRE_POSTGRES=1`: the test must not pass without running.
pub fn env_or_skip(test: &str, names: &[&str]) -> Option<Vec<String>> {
    let values: Vec<Option<String>> = names
        .iter()
        .map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Some(values.into_iter().flatten().collect());
    }
    let missing = missing.join(", ");
    if std::env::var("OCO_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!(
            "{test}: OCO_REQUIRE_POSTGRES=1 but {missing} is not set \
             (oco-store-postgres/scripts/throwaway-cluster.sh start DIR prints the URL)"
        );
    }
    // Written to the process's stderr rather than with `eprintln!`, which the test harness
    // captures and shows only for a failure: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {missing} is not set (a PostgreSQL URL; \
         oco-store-postgres/scripts/throwaway-cluster.sh start DIR prints one)"
    );
    None
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh schema of the database at a URL, dropped (with everything in it) when this is.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// Creates a schema named after this process and a counter (an older one of that name is
    /// dropped first).
    ///
    /// # Errors
    ///
    /// [`oco_core::store::StoreError::Backend`] if the database cannot be reached.
    pub fn create(url: &str) -> StoreResult<TestSchema> {
        let name = format!(
            "oco_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = Client::connect(url, NoTls).map_err(backend)?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .map_err(backend)?;
        Ok(TestSchema {
            url: url.to_owned(),
            name,
        })
    }

    /// The schema's name (for [`Options::schema`](crate::Options::schema)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL with the schema as its search path: what a process given only a URL (a server
    /// started with `--database`) connects with.
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.url, self.name
        )
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
