//! Versioned migrations, embedded in the binary and recorded in the database's
//! `PRAGMA user_version`.

use oco_core::model::Name;
use oco_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::backend;

/// One migration: its SQL, then the code that changes data SQL cannot, in the same transaction.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

/// The migrations in order: migration `i` (0-based) brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("../migrations/0001_initial.sql"),
        then: None,
    },
    Migration {
        sql: include_str!("../migrations/0002_agent_replies_and_contact.sql"),
        then: None,
    },
    Migration {
        sql: include_str!("../migrations/0003_clean_names.sql"),
        then: Some(clean_names),
    },
    Migration {
        sql: include_str!("../migrations/0004_payload_digest.sql"),
        then: None,
    },
    Migration {
        sql: include_str!("../migrations/0005_job_summaries.sql"),
        then: None,
    },
    Migration {
        sql: include_str!("../migrations/0006_last_seen_from_contact.sql"),
        then: None,
    },
    Migration {
        sql: include_str!("../migrations/0007_admin_tokens.sql"),
        then: None,
    },
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
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(first) {
        tx.execute_batch(migration.sql)
            .and_then(|()| migration.then.map_or(Ok(()), |then| then(&tx)))
            .map_err(|e| {
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

/// The columns holding a [`Name`]: table, name column, and what a row is called in a fallback
/// name (`computer 7`).
const NAME_COLUMNS: &[(&str, &str, &str)] = &[
    ("computers", "hostname", "computer"),
    ("families", "name", "family"),
    ("packages", "version", "version"),
    ("computer_groups", "name", "computer group"),
    ("package_groups", "name", "package group"),
    ("containers", "name", "container"),
    ("rules", "name", "rule"),
];

/// Makes every stored name one that [`Name::new`] accepts (see `0003_clean_names.sql`), so that
/// no row written before its rules became unreadable. Rows whose name is valid are not written.
fn clean_names(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for &(table, column, kind) in NAME_COLUMNS {
        let mut dirty = Vec::new();
        {
            let mut rows = tx.prepare(&format!("SELECT id, {column} FROM {table}"))?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                // Read as bytes: text that is not even UTF-8 is cleaned too.
                let text = String::from_utf8_lossy(row.get_ref(1)?.as_bytes()?).into_owned();
                if !Name::new(column, &text).is_ok_and(|name| name.as_str() == text) {
                    dirty.push((id, text));
                }
            }
        }
        for (id, text) in dirty {
            let clean = Name::lossy(&text, &format!("{kind} {id}"));
            let written = rename(tx, table, column, id, clean.as_str())?;
            if !written {
                // Equal to another's name where names are unique: the id tells them apart.
                let suffix = format!(" #{id}");
                let base: String = clean
                    .as_str()
                    .chars()
                    .take(Name::MAX_CHARS - suffix.len())
                    .collect();
                let unique = Name::lossy(&format!("{}{suffix}", base.trim_end()), "");
                if !rename(tx, table, column, id, unique.as_str())? {
                    return Err(rusqlite::Error::ToSqlConversionFailure(
                        format!("{table} {id}: no unique name for {text:?}").into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Writes `name` into row `id`; `false` if a uniqueness constraint refused it.
fn rename(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    id: i64,
    name: &str,
) -> rusqlite::Result<bool> {
    let result = if table == "computers" {
        tx.execute(
            "UPDATE computers SET hostname = ?2, hostname_key = ?3 WHERE id = ?1",
            params![id, name, name.to_lowercase()],
        )
    } else {
        tx.execute(
            &format!("UPDATE {table} SET {column} = ?2 WHERE id = ?1"),
            params![id, name],
        )
    };
    match result {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == ErrorCode::ConstraintViolation =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

fn newer_schema(found: u32) -> StoreError {
    StoreError::Invalid {
        reason: format!(
            "the database has schema version {found}, newer than version {SCHEMA_VERSION} that \
             this oco-store-sqlite knows: open it with a newer release"
        ),
    }
}
