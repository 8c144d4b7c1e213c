//! Versioned migrations, embedded in the binary and recorded in the database's
//! `PRAGMA user_version`.

use oco_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};

use crate::backend;

/// The migrations in order: migration `i` (0-based) brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_agent_replies_and_contact.sql"),
    // 0003 is taken by a change developed alongside; it goes here when both are merged.
    include_str!("../migrations/0004_job_summaries.sql"),
];

/// The schema version this code writes: the number of migrations.
// Checked at compile time: a handful of migrations fits in a u32.
#[allow(clippy::cast_possible_truncation)]
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The schema version recorded in the database (0 for a new database).
pub(crate) fn version(conn: &Connection) -> StoreResult<u32> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    u32::try_from(version).map_err(|_| StoreError::Invalid {
        reason: format!("the database records schema version {version}, which is not a version"),
    })
}

/// Refuses a database whose schema is newer than this code's, without writing anything.
///
/// # Errors
///
/// [`StoreError::Invalid`] naming both versions.
pub(crate) fn refuse_newer(conn: &Connection) -> StoreResult<()> {
    let current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(newer_schema(current));
    }
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`] in one transaction: every missing migration, or none.
///
/// # Errors
///
/// [`StoreError::Invalid`] if the database's schema is newer than this code's; `Backend` if a
/// migration fails (then nothing was changed).
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current = version(&tx)?;
    if current > SCHEMA_VERSION {
        return Err(newer_schema(current));
    }
    let first = usize::try_from(current).map_err(|_| newer_schema(current))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(first) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::Backend(
                format!("migration to schema version {} failed: {e}", index + 1).into(),
            )
        })?;
    }
    if current < SCHEMA_VERSION {
        // PRAGMA takes no parameters; the value is a number this code chose.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

fn newer_schema(found: u32) -> StoreError {
    StoreError::Invalid {
        reason: format!(
            "the database has schema version {found}, newer than version {SCHEMA_VERSION} that \
             this oco-store-sqlite knows: open it with a newer release"
        ),
    }
}
