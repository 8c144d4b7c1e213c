//! Versioned migrations, embedded in the binary and recorded in the table
//! `oco_schema_migrations` of the store's schema.

use oco_core::store::{StoreError, StoreResult};

use crate::{backend, Conn};

/// One migration: its version's SQL, run in the migrating transaction.
struct Migration {
    /// What it does, recorded with its version.
    description: &'static str,
    sql: &'static str,
}

/// The migrations in order: migration `i` (0-based) brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        description: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        description: "change notifications",
        sql: include_str!("../migrations/0002_change_notifications.sql"),
    },
    Migration {
        description: "rule job counts from an index",
        sql: include_str!("../migrations/0003_rule_counts_from_an_index.sql"),
    },
    Migration {
        description: "room for job updates in place",
        sql: include_str!("../migrations/0004_room_for_job_updates.sql"),
    },
    Migration {
        description: "room for credentials updates in place",
        sql: include_str!("../migrations/0005_room_for_credentials_updates.sql"),
    },
    Migration {
        description: "admin tokens",
        sql: include_str!("../migrations/0006_admin_tokens.sql"),
    },
];

/// The schema version this code writes: the number of migrations.
// Checked at compile time: a handful of migrations fits in a u32.
#[allow(clippy::cast_possible_truncation)]
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Any number, the same in every process: the key of the advisory lock that makes processes
/// starting at once on one database migrate one after the other.
const MIGRATION_LOCK: i64 = 0x6f63_6f5f_6d69_6772;

/// Creates the migrations table if there is none.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS oco_schema_migrations (\
     version bigint PRIMARY KEY, \
     description text NOT NULL, \
     applied_at timestamptz NOT NULL DEFAULT now())";

/// The schema version recorded in the database (0 for a new one).
pub(crate) fn version(conn: &Conn<'_>) -> StoreResult<u32> {
    let exists = conn
        .query(
            "SELECT to_regclass('oco_schema_migrations') IS NOT NULL",
            &[],
        )
        .map_err(backend)?;
    let exists: bool = match exists.first() {
        Some(row) => row.try_get(0).map_err(backend)?,
        None => false,
    };
    if !exists {
        return Ok(0);
    }
    let rows = conn
        .query(
            "SELECT coalesce(max(version), 0) FROM oco_schema_migrations",
            &[],
        )
        .map_err(backend)?;
    let version: i64 = match rows.first() {
        Some(row) => row.try_get(0).map_err(backend)?,
        None => 0,
    };
    u32::try_from(version).map_err(|_| StoreError::Invalid {
        reason: format!("the database records schema version {version}, which is not a version"),
    })
}

/// Takes the migration lock until the end of the transaction (again if it holds it already).
pub(crate) fn lock(conn: &Conn<'_>) -> StoreResult<()> {
    conn.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(backend)?;
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] inside the caller's transaction: every missing
/// migration, each recorded, or none (the caller rolls back on an error). Processes migrating
/// at once take turns on an advisory lock held to the end of the transaction.
///
/// # Errors
///
/// [`StoreError::Invalid`] if the database's schema is newer than this code's; `Backend` if a
/// migration fails.
pub(crate) fn migrate(conn: &Conn<'_>) -> StoreResult<()> {
    lock(conn)?;
    let current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(newer_schema(current));
    }
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    conn.batch(CREATE_TABLE).map_err(backend)?;
    let first = usize::try_from(current).map_err(|_| newer_schema(current))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(first) {
        let version = index + 1;
        conn.batch(migration.sql).map_err(|e| {
            StoreError::Backend(
                format!(
                    "migration to schema version {version} failed: {}",
                    crate::backend(e)
                )
                .into(),
            )
        })?;
        let recorded = i64::try_from(version).map_err(|_| newer_schema(current))?;
        conn.execute(
            "INSERT INTO oco_schema_migrations (version, description) VALUES ($1, $2)",
            &[&recorded, &migration.description],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// The error for a database of a newer schema than this code's.
pub(crate) fn newer_schema(found: u32) -> StoreError {
    StoreError::Invalid {
        reason: format!(
            "the database has schema version {found}, newer than version {SCHEMA_VERSION} that \
             this oco-store-postgres knows: open it with a newer release"
        ),
    }
}
