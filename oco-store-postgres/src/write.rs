//! Writes: the administrative setters, and change sets ([`ChangeWriter`]). Each runs inside one
//! transaction opened by the caller, which commits it only on success: `SERIALIZABLE`, or
//! `READ COMMITTED` for change sets whose every check holds by a row lock ([`row_checked`]).

use std::cell::{Cell, RefCell};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{
    Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeliveryPolicy,
    DeploymentRule, FamilyId, Job, JobContainer, JobId, JobKind, JobSnapshot, JobState, Name,
    Origin, Package, PackageFamily, PackageGroup, PackageGroupId, PackageId, Revision, RuleId,
    TokenId,
};
use oco_core::store::{
    AdminToken, AgentCredentials, Applied, Change, ChangeSet, NewAdminToken, NewComputer,
    NewPackage, NewRule, ServerState, StoreError, StoreResult,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::Row;

use crate::encode::column;
use crate::encode::{
    self, compatibility, corrupt, from_revision, macs, opt_time, revision, time, CredentialColumns,
    CredentialFields, TextEnum,
};
use crate::read::{self, computer_exists, int, not_found, row};
use crate::{backend, params, Conn, Param};

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        reason: reason.into(),
    }
}

fn conflict(what: impl Into<String>) -> StoreError {
    StoreError::Conflict { what: what.into() }
}

/// The id of a stored job snapshot by its value.
const FIND_SNAPSHOT: &str = "SELECT id FROM job_snapshots WHERE command = $1 \
     AND success_codes = $2 AND post_action = $3 AND download = $4 AND upgrade_behavior = $5";

/// Whether every change of `sets` relies only on checks that hold by a row lock until the commit,
/// so that the sets may be written at `READ COMMITTED` instead of `SERIALIZABLE`: the changes of
/// the agent path (credentials, job reports, last-seen times, assignments).
///
/// Each such change checks what it relies on in the row it writes (a compare-and-set `UPDATE`:
/// PostgreSQL re-checks the condition on the newest version of the row, after waiting for any
/// transaction writing it) or in a row it locks (`FOR NO KEY UPDATE`, `FOR UPDATE`), so the outcome is
/// that of the writes one after the other, as under `SERIALIZABLE`. What `SERIALIZABLE` would add
/// is a predicate lock for each row read, kept after the commit until every transaction that
/// overlapped it has ended: with agents' requests committed hundreds of times a second, one long
/// transaction (an administrator's deploy, a slow client) made those locks pile up past
/// PostgreSQL's table of them (`max_pred_locks_per_transaction` × connections), and every write
/// then failed with "out of shared memory" until it ended.
pub(crate) fn row_checked(sets: &[&ChangeSet]) -> bool {
    sets.iter().flat_map(|set| &set.changes).all(|change| {
        matches!(
            change,
            Change::SetCredentials { .. }
                | Change::UpdateJob { .. }
                | Change::SetLastSeen { .. }
                | Change::UpsertAssignment { .. }
                | Change::DeleteAssignment { .. }
                | Change::ExpectAssignments { .. }
        )
    })
}

/// A failed constraint: whether a foreign key or a unique key, and the constraint's name.
fn constraint(error: &postgres::Error) -> Option<(Violated, &str)> {
    let db = error.as_db_error()?;
    let violated = if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
        Violated::ForeignKey
    } else if *db.code() == SqlState::UNIQUE_VIOLATION {
        Violated::Unique
    } else {
        return None;
    };
    Some((violated, db.constraint().unwrap_or("")))
}

/// The kinds of constraint the writes tell apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Violated {
    ForeignKey,
    Unique,
}

/// What makes an insert into `tombstones` replace a row of the same id, as SQLite's
/// `INSERT OR REPLACE` (a job id is never reused, so this only keeps the writes total).
macro_rules! replace_tombstone {
    () => {
        " ON CONFLICT (id) DO UPDATE SET container_id = excluded.container_id, \
         rule_id = excluded.rule_id, computer_id = excluded.computer_id, \
         package_id = excluded.package_id, kind = excluded.kind, snapshot_id = excluded.snapshot_id, \
         sequence = excluded.sequence, state = excluded.state, \
         download_progress = excluded.download_progress, return_code = excluded.return_code, \
         output = excluded.output, message = excluded.message, \
         download_started = excluded.download_started, \
         execution_started = excluded.execution_started, finished = excluded.finished, \
         last_report = excluded.last_report, wol_shutdown = excluded.wol_shutdown, \
         wol_shutdown_since = excluded.wol_shutdown_since, orphaned = excluded.orphaned, \
         attempt = excluded.attempt, revision = excluded.revision, deleted_at = excluded.deleted_at"
    };
}

/// The columns shared by jobs and tombstones.
macro_rules! job_table_columns {
    () => {
        "id, container_id, rule_id, computer_id, package_id, kind, snapshot_id, sequence, state, \
         download_progress, return_code, output, message, download_started, execution_started, \
         finished, last_report, wol_shutdown, wol_shutdown_since, orphaned, attempt, revision"
    };
}

fn execute(conn: &Conn<'_>, sql: &str, params: &[Param<'_>]) -> StoreResult<u64> {
    conn.execute(sql, params).map_err(backend)
}

/// Runs an `INSERT … RETURNING id`; the id.
fn insert(conn: &Conn<'_>, sql: &str, params: &[Param<'_>]) -> StoreResult<i64> {
    row(conn, sql, params, int)?
        .ok_or_else(|| StoreError::Backend(format!("no id returned by {sql}").into()))
}

fn exists(conn: &Conn<'_>, sql: &str, id: i64) -> StoreResult<bool> {
    Ok(row(conn, sql, &[&id], |_| Ok(()))?.is_some())
}

/// A row's values by column name, for an INSERT and an UPDATE by id made from the same list, so
/// that the two statements cannot drift apart. (The `*_columns!` macros of `encode` are the
/// SELECT side.)
type Values = Vec<(&'static str, Box<dyn ToSql + Sync>)>;

/// `INSERT INTO table (a, b, …) VALUES ($1, $2, …) RETURNING id` for `columns`.
fn insert_sql(table: &str, columns: &Values) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let places: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) RETURNING id",
        names.join(", "),
        places.join(", ")
    )
}

/// `UPDATE table SET a = $2, b = $3, … WHERE id = $1` for `columns`.
fn update_sql(table: &str, columns: &Values) -> String {
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ${}", i + 2))
        .collect();
    format!("UPDATE {table} SET {} WHERE id = $1", sets.join(", "))
}

/// The values of `columns`, after `id` if given (the parameters of the statements above).
fn column_params<'v>(id: Option<&'v i64>, columns: &'v Values) -> Vec<Param<'v>> {
    id.into_iter()
        .map(|id| id as Param<'v>)
        .chain(columns.iter().map(|(_, value)| &**value as Param<'v>))
        .collect()
}

/// A delivery policy's columns.
fn policy_values(policy: &DeliveryPolicy) -> Values {
    let p = encode::policy(policy);
    vec![
        ("priority", Box::new(p.priority)),
        ("sequence_mode", Box::new(p.sequence_mode)),
        ("ip_ranges", Box::new(p.ip_ranges)),
        ("time_frames", Box::new(p.time_frames)),
        ("time_zone", Box::new(p.time_zone)),
        ("post_action_timeout", Box::new(p.post_action_timeout)),
    ]
}

// Computers.

pub(crate) fn create_computer(conn: &Conn<'_>, computer: NewComputer) -> StoreResult<Computer> {
    check_hostname(conn, &computer.hostname, None)?;
    let id = insert(
        conn,
        "INSERT INTO computers (hostname, hostname_key, os, os_version, architecture, macs) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        params![
            computer.hostname.as_str(),
            computer.hostname.as_str().to_lowercase(),
            computer.os,
            computer.os_version,
            computer.architecture,
            macs(&computer.macs),
        ],
    )?;
    Ok(Computer {
        id: ComputerId(id),
        hostname: computer.hostname,
        os: computer.os,
        os_version: computer.os_version,
        architecture: computer.architecture,
        macs: computer.macs,
        last_seen: None,
    })
}

fn check_hostname(conn: &Conn<'_>, hostname: &Name, except: Option<ComputerId>) -> StoreResult<()> {
    let taken = row(
        conn,
        "SELECT id FROM computers WHERE hostname_key = $1",
        &[&hostname.as_str().to_lowercase()],
        int,
    )?;
    match taken {
        Some(id) if Some(ComputerId(id)) != except => Err(StoreError::Duplicate {
            what: "hostname",
            key: hostname.to_string(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn update_computer(conn: &Conn<'_>, computer: &Computer) -> StoreResult<()> {
    if !computer_exists(conn, computer.id)? {
        return Err(not_found("computer", computer.id));
    }
    check_hostname(conn, &computer.hostname, Some(computer.id))?;
    execute(
        conn,
        "UPDATE computers SET hostname = $2, hostname_key = $3, os = $4, os_version = $5, \
         architecture = $6, macs = $7, last_seen = $8 WHERE id = $1",
        params![
            computer.id.0,
            computer.hostname.as_str(),
            computer.hostname.as_str().to_lowercase(),
            computer.os,
            computer.os_version,
            computer.architecture,
            macs(&computer.macs),
            opt_time(computer.last_seen)?,
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_computer(
    conn: &Conn<'_>,
    id: ComputerId,
    at: DateTime<Utc>,
) -> StoreResult<Vec<JobId>> {
    if !computer_exists(conn, id)? {
        return Err(not_found("computer", id));
    }
    let unfinished = read::rows(
        conn,
        "SELECT id FROM jobs WHERE computer_id = $1 AND state IN ($2, $3, $4) ORDER BY id",
        params![
            id.0,
            JobState::Waiting.text(),
            JobState::Downloading.text(),
            JobState::Executing.text(),
        ],
        int,
    )?;
    // The jobs leave tombstones (and earlier tombstones stay): housekeeping purges them by age.
    execute(
        conn,
        concat!(
            "INSERT INTO tombstones (",
            job_table_columns!(),
            ", deleted_at) SELECT ",
            job_table_columns!(),
            ", $2::bigint FROM jobs WHERE computer_id = $1",
            replace_tombstone!()
        ),
        params![id.0, time(at)?],
    )?;
    for sql in [
        "DELETE FROM credentials WHERE computer_id = $1",
        "DELETE FROM assignments WHERE computer_id = $1",
        "DELETE FROM computer_group_members WHERE computer_id = $1",
        "DELETE FROM jobs WHERE computer_id = $1",
        "DELETE FROM computers WHERE id = $1",
    ] {
        execute(conn, sql, &[&id.0])?;
    }
    // Rules being deleted may have lost their last job.
    for rule in read::rows(conn, "SELECT id FROM rules WHERE deleting", &[], int)? {
        remove_rule_if_deleted_and_empty(conn, RuleId(rule))?;
    }
    Ok(unfinished.into_iter().map(JobId).collect())
}

/// A computer's credentials inserted (parameters: computer, then `encode::credentials_values`);
/// what to do when the computer has a row already follows.
macro_rules! insert_credentials {
    () => {
        "INSERT INTO credentials (computer_id, agent_key, previous_agent_key, server_key, \
         last_hello, last_reply, contact_at, contact_address, agent_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    };
}

/// Writes a computer's credentials (parameters as for [`insert_credentials`]), by the setter.
const UPSERT_CREDENTIALS: &str = concat!(
    insert_credentials!(),
    "ON CONFLICT (computer_id) DO UPDATE SET agent_key = excluded.agent_key, \
     previous_agent_key = excluded.previous_agent_key, server_key = excluded.server_key, \
     last_hello = excluded.last_hello, last_reply = excluded.last_reply, \
     contact_at = excluded.contact_at, contact_address = excluded.contact_address, \
     agent_version = excluded.agent_version"
);

/// A computer's first credentials (parameters as for [`insert_credentials`]); no row is
/// inserted when a concurrent transaction inserted one first.
const INSERT_FIRST_CREDENTIALS: &str = concat!(
    insert_credentials!(),
    "ON CONFLICT (computer_id) DO NOTHING"
);

/// A computer's credentials, its row locked until the commit.
const CREDENTIALS_FOR_UPDATE: &str = "SELECT agent_key, previous_agent_key, server_key, \
     last_hello, last_reply, contact_at, contact_address, agent_version FROM credentials \
     WHERE computer_id = $1 FOR UPDATE";

/// Replaces a computer's credentials if its row holds exactly the expected ones (parameters: the
/// computer, the expected values as for [`UPSERT_CREDENTIALS`], then the new ones); changes no
/// row when there is no row or it differs.
const CAS_CREDENTIALS: &str = "UPDATE credentials SET agent_key = $10, \
     previous_agent_key = $11, server_key = $12, last_hello = $13, last_reply = $14, \
     contact_at = $15, contact_address = $16, agent_version = $17 \
     WHERE computer_id = $1 AND agent_key IS NOT DISTINCT FROM $2 \
     AND previous_agent_key IS NOT DISTINCT FROM $3 AND server_key IS NOT DISTINCT FROM $4 \
     AND last_hello IS NOT DISTINCT FROM $5 AND last_reply IS NOT DISTINCT FROM $6 \
     AND contact_at IS NOT DISTINCT FROM $7 AND contact_address IS NOT DISTINCT FROM $8 \
     AND agent_version IS NOT DISTINCT FROM $9";

/// [`CAS_CREDENTIALS`] for several computers (parameters: the computers, the expected values as
/// eight arrays of [`CredentialColumns::params`], then the new ones); returns the computers whose
/// rows it changed. The `ANY` lets the planner find the rows by the primary key whatever number
/// of computers it expects.
const CAS_MANY_CREDENTIALS: &str = "UPDATE credentials c SET agent_key = n.agent_key, \
     previous_agent_key = n.previous_agent_key, server_key = n.server_key, \
     last_hello = n.last_hello, last_reply = n.last_reply, contact_at = n.contact_at, \
     contact_address = n.contact_address, agent_version = n.agent_version \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[], \
     $6::float8[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
     $13::float8[], $14::float8[], $15::bigint[], $16::text[], $17::text[]) AS n (computer_id, \
     old_agent_key, old_previous_agent_key, old_server_key, old_last_hello, old_last_reply, \
     old_contact_at, old_contact_address, old_agent_version, agent_key, previous_agent_key, \
     server_key, last_hello, last_reply, contact_at, contact_address, agent_version) \
     WHERE c.computer_id = ANY ($1) AND c.computer_id = n.computer_id \
     AND c.agent_key IS NOT DISTINCT FROM n.old_agent_key \
     AND c.previous_agent_key IS NOT DISTINCT FROM n.old_previous_agent_key \
     AND c.server_key IS NOT DISTINCT FROM n.old_server_key \
     AND c.last_hello IS NOT DISTINCT FROM n.old_last_hello \
     AND c.last_reply IS NOT DISTINCT FROM n.old_last_reply \
     AND c.contact_at IS NOT DISTINCT FROM n.old_contact_at \
     AND c.contact_address IS NOT DISTINCT FROM n.old_contact_address \
     AND c.agent_version IS NOT DISTINCT FROM n.old_agent_version \
     RETURNING c.computer_id";

/// The parameters of [`UPSERT_CREDENTIALS`].
fn credentials_params(
    computer: ComputerId,
    credentials: &AgentCredentials,
) -> StoreResult<Vec<Box<dyn ToSql + Sync>>> {
    let mut values: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(computer.0)];
    values.extend(encode::credentials_values(credentials)?);
    Ok(values)
}

/// Boxed values as parameters.
fn boxed(values: &[Box<dyn ToSql + Sync>]) -> Vec<Param<'_>> {
    values.iter().map(|value| &**value as Param<'_>).collect()
}

/// Writes the server state (parameter: admin token hash), by the setter and by
/// `Change::SetServerState`.
const UPSERT_SERVER_STATE: &str = "INSERT INTO server_state (id, admin_token_hash) \
     VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET admin_token_hash = excluded.admin_token_hash";

pub(crate) fn set_last_seen(conn: &Conn<'_>, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()> {
    let changed = execute(
        conn,
        "UPDATE computers SET last_seen = $2 WHERE id = $1",
        params![id.0, time(at)?],
    )?;
    if changed == 0 {
        return Err(not_found("computer", id));
    }
    Ok(())
}

pub(crate) fn set_credentials(
    conn: &Conn<'_>,
    id: ComputerId,
    credentials: &AgentCredentials,
) -> StoreResult<()> {
    if !computer_exists(conn, id)? {
        return Err(not_found("computer", id));
    }
    execute(
        conn,
        UPSERT_CREDENTIALS,
        &boxed(&credentials_params(id, credentials)?),
    )?;
    Ok(())
}

pub(crate) fn set_server_state(conn: &Conn<'_>, state: &ServerState) -> StoreResult<()> {
    execute(conn, UPSERT_SERVER_STATE, &[&state.admin_token_hash])?;
    Ok(())
}

// Packages.

pub(crate) fn create_admin_token(conn: &Conn<'_>, token: NewAdminToken) -> StoreResult<AdminToken> {
    let taken = row(
        conn,
        "SELECT name = $1 FROM admin_tokens WHERE name = $1 OR digest = $2",
        &[&token.name.as_str(), &token.digest.to_string()],
        |row| column::<bool>(row, 0),
    )?;
    if let Some(name_taken) = taken {
        return Err(oco_core::store::columns::admin_token_taken(
            &token, name_taken,
        ));
    }
    let id = insert(
        conn,
        "INSERT INTO admin_tokens (name, access, digest, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        &[
            &token.name.as_str(),
            &oco_core::store::columns::TextEnum::text(token.access),
            &token.digest.to_string(),
            &time(token.created)?,
        ],
    )?;
    Ok(token.with_id(TokenId(id)))
}

/// Runs in a serializable write: two revocations of the last two full-access tokens at once
/// are a serialization failure for one of them, which is run again and then sees the other's.
pub(crate) fn delete_admin_token(conn: &Conn<'_>, id: TokenId) -> StoreResult<()> {
    let token = row(
        conn,
        "SELECT name, access = 'full', \
         (SELECT count(*) FROM admin_tokens WHERE access = 'full' AND id <> $1) \
         FROM admin_tokens WHERE id = $1",
        &[&id.0],
        |row| {
            Ok((
                column::<String>(row, 0)?,
                column::<bool>(row, 1)?,
                column::<i64>(row, 2)?,
            ))
        },
    )?
    .ok_or_else(|| not_found("admin token", id))?;
    if let (name, true, 0) = token {
        return Err(oco_core::store::columns::last_full_token(id, &name));
    }
    execute(conn, "DELETE FROM admin_tokens WHERE id = $1", &[&id.0])?;
    Ok(())
}

pub(crate) fn create_family(conn: &Conn<'_>, name: Name) -> StoreResult<PackageFamily> {
    let taken = row(
        conn,
        "SELECT id FROM families WHERE name = $1",
        &[&name.as_str()],
        int,
    )?;
    if taken.is_some() {
        return Err(StoreError::Duplicate {
            what: "package family",
            key: name.to_string(),
        });
    }
    let id = insert(
        conn,
        "INSERT INTO families (name) VALUES ($1) RETURNING id",
        &[&name.as_str()],
    )?;
    Ok(PackageFamily {
        id: FamilyId(id),
        name,
    })
}

fn check_package(conn: &Conn<'_>, package: &Package, except: Option<PackageId>) -> StoreResult<()> {
    if !exists(
        conn,
        "SELECT 1 FROM families WHERE id = $1",
        package.family.0,
    )? {
        return Err(invalid(format!(
            "unknown package family {}",
            package.family
        )));
    }
    for dependency in &package.dependencies {
        if Some(*dependency) != except
            && !exists(conn, "SELECT 1 FROM packages WHERE id = $1", dependency.0)?
        {
            return Err(invalid(format!("unknown dependency package {dependency}")));
        }
    }
    // Only an update can close a cycle: nothing depends on a package being created.
    if let Some(id) = except {
        let cycle = oco_core::model::dependency_cycle(id, &package.dependencies, |other| {
            let text = row(
                conn,
                "SELECT dependencies FROM packages WHERE id = $1",
                params![other.0],
                |r| column::<String>(r, 0),
            )?;
            match text {
                Some(text) => {
                    encode::parse_ids("dependencies", &text).map_err(|reason| StoreError::Corrupt {
                        what: "package",
                        id: other.to_string(),
                        reason,
                    })
                }
                None => Ok(Vec::new()),
            }
        })?;
        if let Some(cycle) = cycle {
            return Err(invalid(cycle.to_string()));
        }
    }
    let taken = row(
        conn,
        "SELECT id FROM packages WHERE family_id = $1 AND version = $2",
        params![package.family.0, package.version.as_str()],
        int,
    )?;
    if taken.is_some_and(|id| Some(PackageId(id)) != except) {
        return Err(StoreError::Duplicate {
            what: "package version",
            key: format!("{}/{}", package.family, package.version),
        });
    }
    Ok(())
}

/// The package's columns after the id, in the order of the insert and update below.
macro_rules! package_params {
    ($p:expr, $compat:expr, $payload:expr $(, $extra:expr)*) => {
        params![
            $p.family.0,
            $p.version.as_str(),
            $p.install.command,
            $p.install.success_codes.to_string(),
            $p.install.post_action.text(),
            $p.uninstall.command,
            $p.uninstall.success_codes.to_string(),
            $p.uninstall.post_action.text(),
            $payload.0,
            $p.download_for_uninstall,
            $p.upgrade_behavior.text(),
            $compat[0],
            $compat[1],
            $compat[2],
            encode::ids(&$p.dependencies),
            $payload.1,
            $payload.2,
            $($extra,)*
        ]
    };
}

pub(crate) fn create_package(conn: &Conn<'_>, package: NewPackage) -> StoreResult<Package> {
    // The id is the row's, known once it is inserted.
    let mut package = package.with_id(PackageId(0));
    check_package(conn, &package, None)?;
    let compat = compatibility(&package.compatibility);
    let payload = encode::payload_columns(&package)?;
    let id = insert(
        conn,
        "INSERT INTO packages (family_id, version, install_command, install_success_codes, \
         install_post_action, uninstall_command, uninstall_success_codes, uninstall_post_action, \
         has_payload, download_for_uninstall, upgrade_behavior, compatible_os, \
         compatible_os_versions, compatible_architectures, dependencies, payload_size, \
         payload_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         RETURNING id",
        package_params!(package, compat, payload),
    )?;
    package.id = PackageId(id);
    Ok(package)
}

pub(crate) fn update_package(conn: &Conn<'_>, package: &Package) -> StoreResult<()> {
    if !exists(conn, "SELECT 1 FROM packages WHERE id = $1", package.id.0)? {
        return Err(not_found("package", package.id));
    }
    check_package(conn, package, Some(package.id))?;
    let compat = compatibility(&package.compatibility);
    let payload = encode::payload_columns(package)?;
    execute(
        conn,
        "UPDATE packages SET family_id = $1, version = $2, install_command = $3, \
         install_success_codes = $4, install_post_action = $5, uninstall_command = $6, \
         uninstall_success_codes = $7, uninstall_post_action = $8, has_payload = $9, \
         download_for_uninstall = $10, upgrade_behavior = $11, compatible_os = $12, \
         compatible_os_versions = $13, compatible_architectures = $14, dependencies = $15, \
         payload_size = $16, payload_sha256 = $17 \
         WHERE id = $18",
        package_params!(package, compat, payload, package.id.0),
    )?;
    Ok(())
}

// Groups.

/// The two group tables (computer or package), for the code they share.
#[derive(Clone, Copy)]
struct GroupTable {
    what: &'static str,
    exists: &'static str,
    parent_of: &'static str,
    insert: &'static str,
    set_parent: &'static str,
}

const COMPUTER_GROUPS: GroupTable = GroupTable {
    what: "computer group",
    exists: "SELECT 1 FROM computer_groups WHERE id = $1",
    parent_of: "SELECT parent_id FROM computer_groups WHERE id = $1",
    insert: "INSERT INTO computer_groups (name, parent_id) VALUES ($1, $2) RETURNING id",
    set_parent: "UPDATE computer_groups SET parent_id = $2 WHERE id = $1",
};

const PACKAGE_GROUPS: GroupTable = GroupTable {
    what: "package group",
    exists: "SELECT 1 FROM package_groups WHERE id = $1",
    parent_of: "SELECT parent_id FROM package_groups WHERE id = $1",
    insert: "INSERT INTO package_groups (name, parent_id) VALUES ($1, $2) RETURNING id",
    set_parent: "UPDATE package_groups SET parent_id = $2 WHERE id = $1",
};

impl GroupTable {
    fn create(self, conn: &Conn<'_>, name: &Name, parent: Option<i64>) -> StoreResult<i64> {
        if let Some(parent) = parent {
            if !exists(conn, self.exists, parent)? {
                return Err(invalid(format!("unknown parent {} {parent}", self.what)));
            }
        }
        insert(conn, self.insert, params![name.as_str(), parent])
    }

    fn set_parent(self, conn: &Conn<'_>, id: i64, parent: Option<i64>) -> StoreResult<()> {
        if !exists(conn, self.exists, id)? {
            return Err(not_found(self.what, id));
        }
        if let Some(parent) = parent {
            if !exists(conn, self.exists, parent)? {
                return Err(invalid(format!("unknown parent {} {parent}", self.what)));
            }
            // Walk up from the new parent; reaching `id` means a cycle. Bounded by the visited
            // set in case the stored hierarchy were already cyclic.
            let mut seen = BTreeSet::new();
            let mut current = Some(parent);
            while let Some(group) = current {
                if group == id || !seen.insert(group) {
                    return Err(invalid(format!(
                        "{} {parent} is {id} or one of its subgroups: a cycle",
                        self.what
                    )));
                }
                current = row(conn, self.parent_of, &[&group], |row| {
                    column::<Option<i64>>(row, 0)
                })?
                .flatten();
            }
        }
        execute(conn, self.set_parent, params![id, parent])?;
        Ok(())
    }
}

pub(crate) fn create_computer_group(
    conn: &Conn<'_>,
    name: Name,
    parent: Option<ComputerGroupId>,
) -> StoreResult<ComputerGroup> {
    let id = COMPUTER_GROUPS.create(conn, &name, parent.map(|p| p.0))?;
    Ok(ComputerGroup {
        id: ComputerGroupId(id),
        name,
        parent,
    })
}

pub(crate) fn set_computer_group_parent(
    conn: &Conn<'_>,
    id: ComputerGroupId,
    parent: Option<ComputerGroupId>,
) -> StoreResult<()> {
    COMPUTER_GROUPS.set_parent(conn, id.0, parent.map(|p| p.0))
}

pub(crate) fn set_computer_group_members(
    conn: &Conn<'_>,
    id: ComputerGroupId,
    members: &[ComputerId],
) -> StoreResult<()> {
    if !exists(conn, COMPUTER_GROUPS.exists, id.0)? {
        return Err(not_found("computer group", id));
    }
    let members: BTreeSet<ComputerId> = members.iter().copied().collect();
    for member in &members {
        if !computer_exists(conn, *member)? {
            return Err(invalid(format!("unknown computer {member}")));
        }
    }
    execute(
        conn,
        "DELETE FROM computer_group_members WHERE group_id = $1",
        &[&id.0],
    )?;
    for member in members {
        execute(
            conn,
            "INSERT INTO computer_group_members (group_id, computer_id) VALUES ($1, $2)",
            &[&id.0, &member.0],
        )?;
    }
    Ok(())
}

pub(crate) fn create_package_group(
    conn: &Conn<'_>,
    name: Name,
    parent: Option<PackageGroupId>,
) -> StoreResult<PackageGroup> {
    let id = PACKAGE_GROUPS.create(conn, &name, parent.map(|p| p.0))?;
    Ok(PackageGroup {
        id: PackageGroupId(id),
        name,
        parent,
    })
}

pub(crate) fn set_package_group_parent(
    conn: &Conn<'_>,
    id: PackageGroupId,
    parent: Option<PackageGroupId>,
) -> StoreResult<()> {
    PACKAGE_GROUPS.set_parent(conn, id.0, parent.map(|p| p.0))
}

pub(crate) fn set_package_group_members(
    conn: &Conn<'_>,
    id: PackageGroupId,
    members: &[PackageId],
) -> StoreResult<()> {
    if !exists(conn, PACKAGE_GROUPS.exists, id.0)? {
        return Err(not_found("package group", id));
    }
    for member in members {
        if !exists(conn, "SELECT 1 FROM packages WHERE id = $1", member.0)? {
            return Err(invalid(format!("unknown package {member}")));
        }
    }
    execute(
        conn,
        "DELETE FROM package_group_members WHERE group_id = $1",
        &[&id.0],
    )?;
    // Ordered; a package listed twice keeps its first position.
    let mut seen = BTreeSet::new();
    for (position, member) in members.iter().filter(|m| seen.insert(**m)).enumerate() {
        let position = i64::try_from(position).map_err(|_| invalid("too many members"))?;
        execute(
            conn,
            "INSERT INTO package_group_members (group_id, position, package_id) \
             VALUES ($1, $2, $3)",
            &[&id.0, &position, &member.0],
        )?;
    }
    Ok(())
}

// Rules.

fn check_rule_groups(conn: &Conn<'_>, rule: &DeploymentRule) -> StoreResult<()> {
    if !exists(conn, COMPUTER_GROUPS.exists, rule.computer_group.0)? {
        return Err(invalid(format!(
            "unknown computer group {}",
            rule.computer_group
        )));
    }
    if !exists(conn, PACKAGE_GROUPS.exists, rule.package_group.0)? {
        return Err(invalid(format!(
            "unknown package group {}",
            rule.package_group
        )));
    }
    Ok(())
}

pub(crate) fn create_rule(conn: &Conn<'_>, rule: NewRule) -> StoreResult<DeploymentRule> {
    // The id is the row's, known once it is inserted.
    let mut rule = rule.with_id(RuleId(0));
    check_rule_groups(conn, &rule)?;
    let columns = rule_values(&rule)?;
    let id = insert(
        conn,
        &insert_sql("rules", &columns),
        &column_params(None, &columns),
    )?;
    rule.id = RuleId(id);
    Ok(rule)
}

pub(crate) fn update_rule(conn: &Conn<'_>, rule: &DeploymentRule) -> StoreResult<()> {
    if !exists(conn, "SELECT 1 FROM rules WHERE id = $1", rule.id.0)? {
        return Err(not_found("rule", rule.id));
    }
    check_rule_groups(conn, rule)?;
    let columns = rule_values(rule)?;
    execute(
        conn,
        &update_sql("rules", &columns),
        &column_params(Some(&rule.id.0), &columns),
    )?;
    Ok(())
}

/// A rule's columns (all but its id).
fn rule_values(rule: &DeploymentRule) -> StoreResult<Values> {
    let mut columns: Values = vec![
        ("name", Box::new(rule.name.as_str().to_owned())),
        ("notes", Box::new(rule.notes.clone())),
        ("enabled", Box::new(rule.enabled)),
        ("computer_group_id", Box::new(rule.computer_group.0)),
        ("package_group_id", Box::new(rule.package_group.0)),
        ("created_at", Box::new(time(rule.created_at)?)),
    ];
    columns.extend(policy_values(&rule.policy));
    Ok(columns)
}

/// A container's columns (all but its id).
fn container_values(c: &JobContainer) -> StoreResult<Values> {
    let mut columns: Values = vec![
        ("name", Box::new(c.name.as_str().to_owned())),
        ("notes", Box::new(c.notes.clone())),
        ("enabled", Box::new(c.enabled)),
        ("schedule_start", Box::new(time(c.schedule.start())?)),
        ("schedule_end", Box::new(opt_time(c.schedule.end())?)),
        ("wol_wake", Box::new(c.wol.wake)),
        ("wol_shutdown_after", Box::new(c.wol.shutdown_after)),
        ("wol_sent_at", Box::new(opt_time(c.wol.sent_at)?)),
        ("self_service", Box::new(c.self_service)),
        ("created_at", Box::new(time(c.created_at)?)),
    ];
    columns.extend(policy_values(&c.policy));
    Ok(columns)
}

pub(crate) fn delete_rule(conn: &Conn<'_>, id: RuleId) -> StoreResult<()> {
    let changed = execute(
        conn,
        "UPDATE rules SET deleting = true WHERE id = $1",
        &[&id.0],
    )?;
    if changed == 0 {
        return Err(not_found("rule", id));
    }
    remove_rule_if_deleted_and_empty(conn, id)?;
    Ok(())
}

/// Removes a rule being deleted once it has no job left. Its tombstones stay until housekeeping
/// purges them: a late report on one still records the installation. Whether it was removed.
fn remove_rule_if_deleted_and_empty(conn: &Conn<'_>, rule: RuleId) -> StoreResult<bool> {
    let removed = execute(
        conn,
        "DELETE FROM rules WHERE id = $1 AND deleting \
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE rule_id = $1)",
        &[&rule.0],
    )?;
    Ok(removed > 0)
}

// Change sets.

/// Applies change sets inside the caller's transaction, counting statements for fault
/// injection and remembering the ids of job snapshots written or found.
pub(crate) struct ChangeWriter<'c, 's> {
    conn: &'c Conn<'s>,
    /// The statement to fail (fault injection), counted from 1.
    fail_at: Option<u64>,
    executed: Cell<u64>,
    /// Ids of job snapshots, by value. Forgotten when a member of a batch is rolled back (the
    /// ids it inserted are gone).
    snapshots: RefCell<HashMap<JobSnapshot, i64>>,
}

/// The credentials of a batch's hellos, to write in one statement run on its own outside a
/// transaction (atomic and committed by itself) instead of three statements each inside the
/// batch's transaction (a savepoint, the compare-and-set, its release): the sets that are one
/// `SetCredentials` each, of a computer whose credentials no other set of the batch writes, so
/// that the order of the sets does not matter. The sets it does not write (their rows did not
/// hold the expected credentials: a conflict, no row yet, no computer) are left to the batch's
/// transaction, as all are when the statement fails (then nothing of it was written).
#[derive(Debug)]
pub(crate) struct HelloBatch {
    /// In the order of their ids: the order two such statements lock rows in.
    computers: Vec<i64>,
    /// The index in the batch of each computer's set.
    sets: Vec<usize>,
    expected: CredentialColumns,
    new: CredentialColumns,
}

impl HelloBatch {
    /// The hellos of `sets`, if there are two or more (one is written in the transaction,
    /// as fast).
    pub(crate) fn of(sets: &[ChangeSet]) -> Option<HelloBatch> {
        let mut writes: HashMap<ComputerId, usize> = HashMap::new();
        for change in sets.iter().flat_map(|set| &set.changes) {
            if let Change::SetCredentials { computer, .. } = change {
                *writes.entry(*computer).or_default() += 1;
            }
        }
        let mut hellos: Vec<_> = sets
            .iter()
            .enumerate()
            .filter_map(|(index, set)| match set.changes.as_slice() {
                [Change::SetCredentials {
                    computer,
                    expected,
                    credentials,
                }] if writes.get(computer) == Some(&1) => {
                    // A value that cannot be written fails its own set, in the transaction.
                    let old = CredentialFields::of(expected).ok()?;
                    let new = CredentialFields::of(credentials).ok()?;
                    Some((computer.0, index, old, new))
                }
                _ => None,
            })
            .collect();
        if hellos.len() < 2 {
            return None;
        }
        hellos.sort_unstable_by_key(|&(computer, ..)| computer);
        let mut batch = HelloBatch {
            computers: Vec::with_capacity(hellos.len()),
            sets: Vec::with_capacity(hellos.len()),
            expected: CredentialColumns::default(),
            new: CredentialColumns::default(),
        };
        for (computer, index, old, new) in hellos {
            batch.computers.push(computer);
            batch.sets.push(index);
            batch.expected.push(old);
            batch.new.push(new);
        }
        Some(batch)
    }
}

/// A statement that failed: PostgreSQL's error (to inspect), or an injected failure.
///
/// After PostgreSQL's, the transaction is aborted until it (or the member's savepoint) is
/// rolled back, and a `COMMIT` would roll it back without an error: every such failure is
/// returned, so that the set fails and its savepoint or the transaction is rolled back.
enum Failed {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<Failed> for StoreError {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Pg(error) => backend(error),
            Failed::Store(error) => error,
        }
    }
}

const JOB_INSERT: &str = "INSERT INTO jobs (container_id, rule_id, computer_id, package_id, kind, \
     snapshot_id, sequence, state, download_progress, return_code, output, message, \
     download_started, execution_started, finished, last_report, wol_shutdown, \
     wol_shutdown_since, orphaned, attempt, revision) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, 1) RETURNING id";

impl<'c, 's> ChangeWriter<'c, 's> {
    pub(crate) fn new(conn: &'c Conn<'s>, fail_at: Option<u64>) -> Self {
        ChangeWriter {
            conn,
            fail_at,
            executed: Cell::new(0),
            snapshots: RefCell::new(HashMap::new()),
        }
    }

    /// Applies one change set. On an error the caller rolls the transaction (or savepoint) back.
    pub(crate) fn apply(&self, set: &ChangeSet) -> StoreResult<Applied> {
        let mut applied = Applied::default();
        let mut changes = set.changes.as_slice();
        while let Some(first) = changes.first() {
            // A run of last-seen times (the server's periodic flush writes one per computer
            // seen) is one statement: one round trip, not one per computer, while the requests
            // waiting for the same commit wait.
            let run = changes
                .iter()
                .take_while(|change| matches!(change, Change::SetLastSeen { .. }))
                .count();
            if run > 1 {
                self.last_seen(&changes[..run])?;
                changes = &changes[run..];
            } else {
                self.change(first, &mut applied)?;
                changes = &changes[1..];
            }
        }
        Ok(applied)
    }

    /// `SetLastSeen` changes, in one statement: each computer's latest time, in the order of the
    /// computers' ids (the order two writers lock them in); `NotFound` naming a computer that
    /// does not exist.
    fn last_seen(&self, changes: &[Change]) -> StoreResult<()> {
        let mut latest: BTreeMap<i64, i64> = BTreeMap::new();
        for change in changes {
            if let Change::SetLastSeen { computer, at } = change {
                let at = time(*at)?;
                latest
                    .entry(computer.0)
                    .and_modify(|seen| *seen = (*seen).max(at))
                    .or_insert(at);
            }
        }
        let (ids, times): (Vec<i64>, Vec<i64>) = latest.into_iter().unzip();
        self.tick()?;
        let updated: BTreeSet<i64> = read::rows(
            self.conn,
            "UPDATE computers c SET last_seen = greatest(c.last_seen, seen.at) \
             FROM unnest($1::bigint[], $2::bigint[]) AS seen (id, at) \
             WHERE c.id = seen.id RETURNING c.id",
            &[&ids, &times],
            int,
        )?
        .into_iter()
        .collect();
        match ids.iter().find(|id| !updated.contains(id)) {
            Some(missing) => Err(not_found("computer", missing)),
            None => Ok(()),
        }
    }

    /// Applies each set in a savepoint of its own. `Err` if the transaction can no longer be
    /// trusted (a savepoint could not be made or rolled back) or PostgreSQL cancelled it for a
    /// concurrent one: the caller must roll it back whole (and may run it again).
    pub(crate) fn apply_many(&self, sets: &[&ChangeSet]) -> StoreResult<Vec<StoreResult<Applied>>> {
        let mut results = Vec::with_capacity(sets.len());
        for set in sets {
            match self.savepoint("SAVEPOINT change_set") {
                Ok(()) => {}
                Err(Failed::Store(error)) => {
                    results.push(Err(error));
                    continue;
                }
                Err(Failed::Pg(error)) => return Err(backend(error)),
            }
            let result = self.apply(set);
            let result = match result {
                Ok(applied) => match self.savepoint("RELEASE change_set") {
                    Ok(()) => Ok(applied),
                    Err(error) => {
                        self.undo_member()?;
                        Err(error.into())
                    }
                },
                Err(error) => {
                    self.undo_member()?;
                    Err(error)
                }
            };
            match result {
                Err(error) if crate::is_transient(&error) => return Err(error),
                result => results.push(result),
            }
        }
        Ok(results)
    }

    /// Writes `batch` (one statement): the sets whose rows held exactly the expected
    /// credentials, by their index in the batch.
    pub(crate) fn hellos(&self, batch: &HelloBatch) -> StoreResult<Vec<usize>> {
        let mut params: Vec<Param<'_>> = vec![&batch.computers];
        params.extend(batch.expected.params());
        params.extend(batch.new.params());
        self.tick()?;
        let changed: BTreeSet<i64> = read::rows(self.conn, CAS_MANY_CREDENTIALS, &params, int)?
            .into_iter()
            .collect();
        Ok(batch
            .computers
            .iter()
            .zip(&batch.sets)
            .filter(|(computer, _)| changed.contains(computer))
            .map(|(_, &set)| set)
            .collect())
    }

    /// Runs a savepoint command, counted.
    fn savepoint(&self, sql: &str) -> Result<(), Failed> {
        self.tick()?;
        self.conn.batch(sql).map_err(Failed::Pg)
    }

    /// Rolls the current member of a batch back (not counted as a statement).
    fn undo_member(&self) -> StoreResult<()> {
        self.snapshots.borrow_mut().clear();
        self.conn
            .batch("ROLLBACK TO change_set; RELEASE change_set")
            .map_err(backend)
    }

    /// Counts a statement; fails it if it is the one to fail.
    fn tick(&self) -> Result<(), Failed> {
        let n = self.executed.get() + 1;
        self.executed.set(n);
        if self.fail_at == Some(n) {
            return Err(Failed::Store(StoreError::Backend(
                format!("injected failure of statement {n} of the transaction").into(),
            )));
        }
        Ok(())
    }

    /// Executes a statement, counted.
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Failed> {
        self.tick()?;
        self.conn.execute(sql, params).map_err(Failed::Pg)
    }

    /// The first row of a query, counted, undecoded.
    fn query_raw(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, Failed> {
        self.tick()?;
        Ok(self
            .conn
            .query(sql, params)
            .map_err(Failed::Pg)?
            .into_iter()
            .next())
    }

    /// The first row of a query, counted.
    fn query<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        decode: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.tick()?;
        row(self.conn, sql, params, decode)
    }

    fn change(&self, change: &Change, applied: &mut Applied) -> StoreResult<()> {
        match change {
            Change::CreateContainer { container, jobs } => {
                let id = self.insert_container(container)?;
                applied.containers.push(id);
                applied.jobs.reserve(jobs.len());
                for job in jobs {
                    let mut job = job.clone();
                    job.origin = Origin::Container(id);
                    let snapshot = self.snapshot_id(&job.snapshot)?;
                    applied.jobs.push(self.insert_job(&job, snapshot)?);
                }
            }
            Change::UpdateContainer { container } => self.update_container(container)?,
            Change::MarkWolSent { container, at } => {
                let sent = self.query(
                    "SELECT wol_sent_at FROM containers WHERE id = $1",
                    &[&container.0],
                    |row| column::<Option<i64>>(row, 0),
                )?;
                match sent {
                    None => return Err(not_found("container", container)),
                    Some(Some(sent)) => {
                        return Err(conflict(format!(
                            "wake packets of container {container} were sent at {}",
                            encode::from_time(sent)
                        )))
                    }
                    Some(None) => {}
                }
                self.exec(
                    "UPDATE containers SET wol_sent_at = $2 WHERE id = $1",
                    params![container.0, time(*at)?],
                )?;
            }
            Change::DeleteContainer { id, jobs, at } => self.delete_container(*id, jobs, *at)?,
            Change::InsertJob { job } => {
                let snapshot = self.snapshot_id(&job.snapshot)?;
                applied.jobs.push(self.insert_job(job, snapshot)?);
            }
            Change::InsertRuleJobs { rule, at, jobs } => {
                let mut packages: HashMap<PackageId, Package> = HashMap::new();
                let mut snapshots: HashMap<(PackageId, JobKind), i64> = HashMap::new();
                applied.jobs.reserve(jobs.len());
                for new in jobs {
                    let package = match packages.entry(new.package) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => {
                            let package = self
                                .query(
                                    concat!(
                                        "SELECT ",
                                        encode::package_columns!(),
                                        " FROM packages WHERE id = $1"
                                    ),
                                    &[&new.package.0],
                                    encode::package_row,
                                )?
                                .ok_or_else(|| {
                                    invalid(format!("unknown package {}", new.package))
                                })?;
                            entry.insert(package)
                        }
                    };
                    let job = new.to_job(*rule, package, *at);
                    let snapshot = match snapshots.get(&(new.package, new.kind)) {
                        Some(id) => *id,
                        None => {
                            let id = self.snapshot_id(&job.snapshot)?;
                            snapshots.insert((new.package, new.kind), id);
                            id
                        }
                    };
                    applied.jobs.push(self.insert_job(&job, snapshot)?);
                }
            }
            Change::UpdateJob { expected, job } => self.update_job(*expected, job)?,
            Change::DeleteJob {
                id,
                computer,
                expected,
                at,
            } => self.delete_job(*id, *computer, *expected, *at)?,
            Change::PurgeTombstones { deleted_before } => {
                self.exec(
                    "DELETE FROM tombstones WHERE deleted_at < $1",
                    &[&time(*deleted_before)?],
                )?;
            }
            Change::UpsertAssignment { assignment } => {
                let inserted = self.exec(
                    "INSERT INTO assignments (computer_id, package_id, installed_at, job_id) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (computer_id, package_id) DO UPDATE \
                     SET installed_at = excluded.installed_at, job_id = excluded.job_id",
                    params![
                        assignment.computer.0,
                        assignment.package.0,
                        time(assignment.installed_at)?,
                        assignment.job.map(|j| j.0),
                    ],
                );
                match inserted {
                    // The constraint names the reference: the transaction is aborted, so it
                    // cannot be asked.
                    Err(Failed::Pg(e)) => match constraint(&e) {
                        Some((Violated::ForeignKey, "assignments_computer")) => {
                            return Err(invalid(format!(
                                "unknown computer {}",
                                assignment.computer
                            )));
                        }
                        Some((Violated::ForeignKey, _)) => {
                            return Err(invalid(format!("unknown package {}", assignment.package)));
                        }
                        _ => return Err(backend(e)),
                    },
                    other => {
                        other?;
                    }
                }
                self.bump_assignments(assignment.computer)?;
            }
            Change::DeleteAssignment { computer, package } => {
                let removed = self.exec(
                    "DELETE FROM assignments WHERE computer_id = $1 AND package_id = $2",
                    &[&computer.0, &package.0],
                )?;
                if removed > 0 {
                    self.bump_assignments(*computer)?;
                } else if !computer_exists(self.conn, *computer)? {
                    return Err(invalid(format!("unknown computer {computer}")));
                }
            }
            Change::SetCredentials {
                computer,
                expected,
                credentials,
            } => {
                // The common case, a computer's row as expected, is one statement; the rest (no
                // row yet, a conflict, a missing computer) is told apart by reading the row,
                // locked, so that what is read still holds at the commit (at `READ COMMITTED`
                // too, see `row_checked`).
                let mut values = credentials_params(*computer, expected)?;
                values.extend(encode::credentials_values(credentials)?);
                if self.exec(CAS_CREDENTIALS, &boxed(&values))? == 0 {
                    let changed = || {
                        conflict(format!(
                            "credentials of computer {computer} changed since read"
                        ))
                    };
                    self.tick()?;
                    if !computer_exists(self.conn, *computer)? {
                        return Err(not_found("computer", computer));
                    }
                    self.tick()?;
                    let stored = row(self.conn, CREDENTIALS_FOR_UPDATE, &[&computer.0], |row| {
                        encode::credentials(row).map_err(|reason| {
                            corrupt("credentials of computer", computer.0, reason)
                        })
                    })?;
                    let new = credentials_params(*computer, credentials)?;
                    let new = boxed(&new);
                    match stored {
                        Some(stored) if stored == *expected => {
                            self.exec(UPSERT_CREDENTIALS, &new)?;
                        }
                        None if *expected == AgentCredentials::default() => {
                            if self.exec(INSERT_FIRST_CREDENTIALS, &new)? == 0 {
                                return Err(changed());
                            }
                        }
                        _ => return Err(changed()),
                    }
                }
            }
            Change::SetLastSeen { computer, at } => {
                let changed = self.exec(
                    "UPDATE computers SET last_seen = greatest(last_seen, $2) \
                     WHERE id = $1",
                    params![computer.0, time(*at)?],
                )?;
                if changed == 0 {
                    return Err(not_found("computer", computer));
                }
            }
            Change::SetServerState { state } => {
                self.exec(UPSERT_SERVER_STATE, &[&state.admin_token_hash])?;
            }
            Change::ExpectAssignments { computer, expected } => {
                // Locked as an update locks it (the assignments written next bump the revision):
                // no other transaction changes the revision before the commit, at
                // `READ COMMITTED` too (see `row_checked`). A weaker lock would deadlock two
                // such sets each waiting to bump what the other holds.
                let stored = self.query(
                    "SELECT assignment_revision FROM computers WHERE id = $1 FOR NO KEY UPDATE",
                    &[&computer.0],
                    |row| {
                        from_revision(int(row)?)
                            .map_err(|reason| corrupt("computer", computer.0, reason))
                    },
                )?;
                encode::assignments_at_revision(*computer, stored, *expected)?;
            }
        }
        Ok(())
    }

    fn bump_assignments(&self, computer: ComputerId) -> StoreResult<()> {
        self.exec(
            "UPDATE computers SET assignment_revision = assignment_revision + 1 WHERE id = $1",
            &[&computer.0],
        )?;
        Ok(())
    }

    fn insert_container(&self, c: &JobContainer) -> StoreResult<ContainerId> {
        let columns = container_values(c)?;
        let id = self
            .query_raw(
                &insert_sql("containers", &columns),
                &column_params(None, &columns),
            )?
            .ok_or_else(|| StoreError::Backend("no container id returned".into()))?;
        Ok(ContainerId(column(&id, 0)?))
    }

    fn update_container(&self, c: &JobContainer) -> StoreResult<()> {
        let columns = container_values(c)?;
        let changed = self.exec(
            &update_sql("containers", &columns),
            &column_params(Some(&c.id.0), &columns),
        )?;
        if changed == 0 {
            return Err(not_found("container", c.id));
        }
        Ok(())
    }

    fn delete_container(
        &self,
        id: ContainerId,
        jobs: &[(JobId, Revision)],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.tick()?;
        let stored: BTreeMap<JobId, Revision> = read::rows(
            self.conn,
            "SELECT id, revision FROM jobs WHERE container_id = $1",
            &[&id.0],
            |row| {
                let job: i64 = int(row)?;
                let revision: i64 = column(row, 1)?;
                let revision = from_revision(revision)
                    .map_err(|reason| encode::corrupt("job", job, reason))?;
                Ok((JobId(job), revision))
            },
        )?
        .into_iter()
        .collect();
        let expected: BTreeMap<JobId, Revision> = jobs.iter().copied().collect();
        if stored != expected {
            return Err(conflict(format!(
                "the jobs of container {id} changed since they were read"
            )));
        }
        // The jobs leave tombstones (and earlier tombstones stay): an agent may still be running
        // one, and its success must still be recorded. Housekeeping purges them by age.
        self.exec(
            concat!(
                "INSERT INTO tombstones (",
                job_table_columns!(),
                ", deleted_at) SELECT ",
                job_table_columns!(),
                ", $2::bigint FROM jobs WHERE container_id = $1",
                replace_tombstone!()
            ),
            params![id.0, time(at)?],
        )?;
        self.exec("DELETE FROM jobs WHERE container_id = $1", &[&id.0])?;
        let removed = self.exec("DELETE FROM containers WHERE id = $1", &[&id.0])?;
        if removed == 0 {
            return Err(not_found("container", id));
        }
        Ok(())
    }

    /// The id of a stored job snapshot equal to `snapshot`, stored now if there is none.
    fn snapshot_id(&self, snapshot: &JobSnapshot) -> StoreResult<i64> {
        if let Some(id) = self.snapshots.borrow().get(snapshot) {
            return Ok(*id);
        }
        if let Some(id) = self.conn.snapshot_id(snapshot) {
            return Ok(id);
        }
        let procedure = &snapshot.procedure;
        let codes = procedure.success_codes.to_string();
        let values: &[Param<'_>] = params![
            procedure.command,
            codes,
            procedure.post_action.text(),
            snapshot.download,
            snapshot.upgrade_behavior.text(),
        ];
        let found = self.query(FIND_SNAPSHOT, values, int)?;
        let id = match found {
            Some(id) => {
                // Committed before this transaction: safe to remember beyond it.
                self.conn.remember_snapshot(id, snapshot);
                id
            }
            None => {
                // A concurrent transaction may insert the same snapshot first: at
                // `READ COMMITTED` that row is then read once it is committed (at `SERIALIZABLE`
                // PostgreSQL cancels this transaction instead, and it runs again).
                let inserted = self.query_raw(
                    "INSERT INTO job_snapshots (command, success_codes, post_action, download, \
                     upgrade_behavior) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT ON CONSTRAINT job_snapshots_value DO NOTHING RETURNING id",
                    values,
                )?;
                let inserted = match inserted {
                    Some(inserted) => inserted,
                    None => self
                        .query_raw(FIND_SNAPSHOT, values)?
                        .ok_or_else(|| StoreError::Backend("no job snapshot id returned".into()))?,
                };
                column(&inserted, 0)?
            }
        };
        self.snapshots.borrow_mut().insert(snapshot.clone(), id);
        Ok(id)
    }

    /// Inserts `job` (its id and revision ignored) with the stored snapshot `snapshot`.
    fn insert_job(&self, job: &Job, snapshot: i64) -> StoreResult<JobId> {
        let (container, rule) = encode::origin(job.origin);
        let (wol, since) = encode::wol_shutdown(job.wol_shutdown)?;
        let inserted = self.query_raw(
            JOB_INSERT,
            params![
                container,
                rule,
                job.computer.0,
                job.package.0,
                job.kind.text(),
                snapshot,
                i64::from(job.sequence),
                job.state.text(),
                job.download_progress.map(i64::from),
                job.return_code,
                job.output,
                job.message.map(TextEnum::text),
                opt_time(job.download_started)?,
                opt_time(job.execution_started)?,
                opt_time(job.finished)?,
                opt_time(job.last_report)?,
                wol,
                since,
                job.orphaned,
                i64::from(job.attempt),
            ],
        );
        match inserted {
            Ok(Some(row)) => Ok(JobId(column(&row, 0)?)),
            Ok(None) => Err(StoreError::Backend("no job id returned".into())),
            // The constraint names the reference: the transaction is aborted, so it cannot be
            // asked.
            Err(Failed::Pg(e)) => match constraint(&e) {
                Some((Violated::ForeignKey, name)) => Err(unknown_reference(job, name)),
                Some((Violated::Unique, _)) => Err(StoreError::Duplicate {
                    what: "rule job",
                    key: format!(
                        "{} computer {} package {} {}",
                        job.origin,
                        job.computer,
                        job.package,
                        job.kind.text()
                    ),
                }),
                _ => Err(backend(e)),
            },
            Err(failed) => Err(failed.into()),
        }
    }

    fn update_job(&self, expected: Revision, job: &Job) -> StoreResult<()> {
        let snapshot = self.snapshot_id(&job.snapshot)?;
        let (container, rule) = encode::origin(job.origin);
        let (wol, since) = encode::wol_shutdown(job.wol_shutdown)?;
        let changed = self.exec(
            "UPDATE jobs SET snapshot_id = $3, sequence = $4, state = $5, \
             download_progress = $6, return_code = $7, output = $8, message = $9, \
             download_started = $10, execution_started = $11, finished = $12, last_report = $13, \
             wol_shutdown = $14, wol_shutdown_since = $15, orphaned = $16, attempt = $17, \
             revision = revision + 1 \
             WHERE id = $1 AND revision = $2 AND container_id IS NOT DISTINCT FROM $18 \
             AND rule_id IS NOT DISTINCT FROM $19 \
             AND computer_id = $20 AND package_id = $21 AND kind = $22",
            params![
                job.id.0,
                revision(expected)?,
                snapshot,
                i64::from(job.sequence),
                job.state.text(),
                job.download_progress.map(i64::from),
                job.return_code,
                job.output,
                job.message.map(TextEnum::text),
                opt_time(job.download_started)?,
                opt_time(job.execution_started)?,
                opt_time(job.finished)?,
                opt_time(job.last_report)?,
                wol,
                since,
                job.orphaned,
                i64::from(job.attempt),
                container,
                rule,
                job.computer.0,
                job.package.0,
                job.kind.text(),
            ],
        )?;
        if changed == 1 {
            return Ok(());
        }
        // Why not: gone, moved on, or an attempt to change the job's identity.
        self.check_revision(job.id, expected)?;
        Err(invalid(format!(
            "job {} cannot change its origin, computer, package or kind",
            job.id
        )))
    }

    /// A conflict if job `id` is gone or not at `expected`.
    fn check_revision(&self, id: JobId, expected: Revision) -> StoreResult<()> {
        let stored = row(
            self.conn,
            "SELECT revision FROM jobs WHERE id = $1",
            &[&id.0],
            int,
        )?;
        encode::job_at_revision(id, stored, expected)
    }

    fn delete_job(
        &self,
        id: JobId,
        computer: ComputerId,
        expected: Revision,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.tick()?;
        let rule = row(
            self.conn,
            concat!(
                "INSERT INTO tombstones (",
                job_table_columns!(),
                ", deleted_at) SELECT ",
                job_table_columns!(),
                ", $3::bigint FROM jobs WHERE id = $1 AND revision = $2 AND computer_id = $4",
                replace_tombstone!(),
                " RETURNING rule_id"
            ),
            params![id.0, revision(expected)?, time(at)?, computer.0],
            |row| column::<Option<i64>>(row, 0),
        )?;
        let Some(rule) = rule else {
            self.check_revision(id, expected)?;
            // The job is there at the expected revision: it is another computer's.
            return Err(invalid(format!("job {id} is not computer {computer}'s")));
        };
        self.exec("DELETE FROM jobs WHERE id = $1", &[&id.0])?;
        if let Some(rule) = rule {
            self.tick()?;
            remove_rule_if_deleted_and_empty(self.conn, RuleId(rule))?;
        }
        Ok(())
    }
}

/// Which reference of `job` is unknown, from the foreign key that failed.
fn unknown_reference(job: &Job, constraint: &str) -> StoreError {
    match constraint {
        "jobs_container" | "jobs_rule" => invalid(format!("unknown origin {}", job.origin)),
        "jobs_computer" => invalid(format!("unknown computer {}", job.computer)),
        "jobs_package" => invalid(format!("unknown package {}", job.package)),
        other => invalid(format!("job {}: a reference is unknown ({other})", job.id)),
    }
}
