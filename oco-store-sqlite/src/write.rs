//! Writes: the administrative setters, and change sets ([`ChangeWriter`]). Each runs inside one
//! `BEGIN IMMEDIATE` transaction opened by the caller, which commits it only on success.

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
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, Params};

use crate::backend;
use crate::encode::{self, compatibility, from_revision, macs, opt_time, revision, time, TextEnum};
use crate::read::{self, computer_exists, int, not_found, row};

const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        reason: reason.into(),
    }
}

fn conflict(what: impl Into<String>) -> StoreError {
    StoreError::Conflict { what: what.into() }
}

/// The extended result code of a failed constraint, if `error` is one.
fn constraint(error: &rusqlite::Error) -> Option<i32> {
    match error {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            Some(e.extended_code)
        }
        _ => None,
    }
}

/// The columns shared by jobs and tombstones.
macro_rules! job_table_columns {
    () => {
        "id, container_id, rule_id, computer_id, package_id, kind, snapshot_id, sequence, state, \
         download_progress, return_code, output, message, download_started, execution_started, \
         finished, last_report, wol_shutdown, wol_shutdown_since, orphaned, attempt, revision"
    };
}

fn execute(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(backend)
}

fn exists(conn: &Connection, sql: &str, id: i64) -> StoreResult<bool> {
    Ok(row(conn, sql, [id], int)?.is_some())
}

/// A row's values by column name, for an INSERT and an UPDATE by id made from the same list, so
/// that the two statements cannot drift apart. (The `*_columns!` macros of `encode` are the
/// SELECT side.)
type Values = Vec<(&'static str, Value)>;

/// `INSERT INTO table (a, b, …) VALUES (?1, ?2, …)` for `columns`.
fn insert_sql(table: &str, columns: &Values) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let places: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        places.join(", ")
    )
}

/// `UPDATE table SET a = ?2, b = ?3, … WHERE id = ?1` for `columns`.
fn update_sql(table: &str, columns: &Values) -> String {
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ?{}", i + 2))
        .collect();
    format!("UPDATE {table} SET {} WHERE id = ?1", sets.join(", "))
}

/// The values of `columns`, after `id` if given (the parameters of the statements above).
fn column_params(id: Option<i64>, columns: &Values) -> impl Params + '_ {
    params_from_iter(
        id.map(Value::Integer)
            .into_iter()
            .chain(columns.iter().map(|(_, value)| value.clone())),
    )
}

/// A delivery policy's columns.
fn policy_values(policy: &DeliveryPolicy) -> Values {
    let p = encode::policy(policy);
    vec![
        ("priority", p.priority.into()),
        ("sequence_mode", p.sequence_mode.to_owned().into()),
        ("ip_ranges", p.ip_ranges.into()),
        ("time_frames", p.time_frames.into()),
        ("time_zone", p.time_zone.to_owned().into()),
        ("post_action_timeout", p.post_action_timeout.into()),
    ]
}

// Computers.

pub(crate) fn create_computer(conn: &Connection, computer: NewComputer) -> StoreResult<Computer> {
    check_hostname(conn, &computer.hostname, None)?;
    execute(
        conn,
        "INSERT INTO computers (hostname, hostname_key, os, os_version, architecture, macs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
        id: ComputerId(conn.last_insert_rowid()),
        hostname: computer.hostname,
        os: computer.os,
        os_version: computer.os_version,
        architecture: computer.architecture,
        macs: computer.macs,
        last_seen: None,
    })
}

fn check_hostname(
    conn: &Connection,
    hostname: &Name,
    except: Option<ComputerId>,
) -> StoreResult<()> {
    let taken = row(
        conn,
        "SELECT id FROM computers WHERE hostname_key = ?1",
        [hostname.as_str().to_lowercase()],
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

pub(crate) fn update_computer(conn: &Connection, computer: &Computer) -> StoreResult<()> {
    if !computer_exists(conn, computer.id)? {
        return Err(not_found("computer", computer.id));
    }
    check_hostname(conn, &computer.hostname, Some(computer.id))?;
    execute(
        conn,
        "UPDATE computers SET hostname = ?2, hostname_key = ?3, os = ?4, os_version = ?5, \
         architecture = ?6, macs = ?7, last_seen = ?8 WHERE id = ?1",
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
    conn: &Connection,
    id: ComputerId,
    at: DateTime<Utc>,
) -> StoreResult<Vec<JobId>> {
    if !computer_exists(conn, id)? {
        return Err(not_found("computer", id));
    }
    let unfinished = read::rows(
        conn,
        "SELECT id FROM jobs WHERE computer_id = ?1 AND state IN (?2, ?3, ?4) ORDER BY id",
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
            "INSERT OR REPLACE INTO tombstones (",
            job_table_columns!(),
            ", deleted_at) SELECT ",
            job_table_columns!(),
            ", ?2 FROM jobs WHERE computer_id = ?1"
        ),
        params![id.0, time(at)?],
    )?;
    for sql in [
        "DELETE FROM credentials WHERE computer_id = ?1",
        "DELETE FROM assignments WHERE computer_id = ?1",
        "DELETE FROM computer_group_members WHERE computer_id = ?1",
        "DELETE FROM jobs WHERE computer_id = ?1",
        "DELETE FROM computers WHERE id = ?1",
    ] {
        execute(conn, sql, [id.0])?;
    }
    // Rules being deleted may have lost their last job.
    for rule in read::rows(conn, "SELECT id FROM rules WHERE deleting <> 0", [], int)? {
        remove_rule_if_deleted_and_empty(conn, RuleId(rule))?;
    }
    Ok(unfinished.into_iter().map(JobId).collect())
}

/// Writes a computer's credentials (parameters: computer, then `encode::credentials_values`), by
/// the setter and by `Change::SetCredentials`.
const UPSERT_CREDENTIALS: &str = "INSERT INTO credentials (computer_id, agent_key, \
     previous_agent_key, server_key, last_hello, last_reply, contact_at, contact_address, \
     agent_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (computer_id) DO UPDATE SET agent_key = excluded.agent_key, \
     previous_agent_key = excluded.previous_agent_key, server_key = excluded.server_key, \
     last_hello = excluded.last_hello, last_reply = excluded.last_reply, \
     contact_at = excluded.contact_at, contact_address = excluded.contact_address, \
     agent_version = excluded.agent_version";

/// Replaces a computer's credentials if its row holds exactly the expected ones (parameters: the
/// computer, the expected values as for [`UPSERT_CREDENTIALS`], then the new ones); changes no
/// row when there is no row or it differs.
const CAS_CREDENTIALS: &str = "UPDATE credentials SET agent_key = ?10, \
     previous_agent_key = ?11, server_key = ?12, last_hello = ?13, last_reply = ?14, \
     contact_at = ?15, contact_address = ?16, agent_version = ?17 \
     WHERE computer_id = ?1 AND agent_key IS ?2 AND previous_agent_key IS ?3 \
     AND server_key IS ?4 AND last_hello IS ?5 AND last_reply IS ?6 AND contact_at IS ?7 \
     AND contact_address IS ?8 AND agent_version IS ?9";

/// The parameters of [`UPSERT_CREDENTIALS`].
fn credentials_params(
    computer: ComputerId,
    credentials: &AgentCredentials,
) -> StoreResult<Vec<Value>> {
    let mut values = vec![Value::Integer(computer.0)];
    values.extend(encode::credentials_values(credentials)?);
    Ok(values)
}

/// Writes the server state (parameter: admin token hash), by the setter and by
/// `Change::SetServerState`.
const UPSERT_SERVER_STATE: &str = "INSERT INTO server_state (id, admin_token_hash) \
     VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET admin_token_hash = excluded.admin_token_hash";

pub(crate) fn set_last_seen(
    conn: &Connection,
    id: ComputerId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let changed = execute(
        conn,
        "UPDATE computers SET last_seen = ?2 WHERE id = ?1",
        params![id.0, time(at)?],
    )?;
    if changed == 0 {
        return Err(not_found("computer", id));
    }
    Ok(())
}

pub(crate) fn set_credentials(
    conn: &Connection,
    id: ComputerId,
    credentials: &AgentCredentials,
) -> StoreResult<()> {
    if !computer_exists(conn, id)? {
        return Err(not_found("computer", id));
    }
    execute(
        conn,
        UPSERT_CREDENTIALS,
        params_from_iter(credentials_params(id, credentials)?),
    )?;
    Ok(())
}

pub(crate) fn set_server_state(conn: &Connection, state: &ServerState) -> StoreResult<()> {
    execute(conn, UPSERT_SERVER_STATE, [&state.admin_token_hash])?;
    Ok(())
}

// Packages.

pub(crate) fn create_admin_token(
    conn: &Connection,
    token: NewAdminToken,
) -> StoreResult<AdminToken> {
    let taken = row(
        conn,
        "SELECT name = ?1 FROM admin_tokens WHERE name = ?1 OR digest = ?2",
        params![token.name.as_str(), token.digest.to_string()],
        |row| row.get::<_, bool>(0).map_err(backend),
    )?;
    if let Some(name_taken) = taken {
        return Err(oco_core::store::columns::admin_token_taken(
            &token, name_taken,
        ));
    }
    execute(
        conn,
        "INSERT INTO admin_tokens (name, access, digest, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            token.name.as_str(),
            oco_core::store::columns::TextEnum::text(token.access),
            token.digest.to_string(),
            time(token.created)?
        ],
    )?;
    Ok(token.with_id(TokenId(conn.last_insert_rowid())))
}

/// Runs inside the write transaction, so the count of the other full-access tokens holds until
/// the delete.
pub(crate) fn delete_admin_token(conn: &Connection, id: TokenId) -> StoreResult<()> {
    let token = row(
        conn,
        "SELECT name, access = 'full', \
         (SELECT count(*) FROM admin_tokens WHERE access = 'full' AND id <> ?1) \
         FROM admin_tokens WHERE id = ?1",
        [id.0],
        |row| {
            Ok((
                row.get::<_, String>(0).map_err(backend)?,
                row.get::<_, bool>(1).map_err(backend)?,
                row.get::<_, i64>(2).map_err(backend)?,
            ))
        },
    )?
    .ok_or_else(|| not_found("admin token", id))?;
    if let (name, true, 0) = token {
        return Err(oco_core::store::columns::last_full_token(id, &name));
    }
    execute(conn, "DELETE FROM admin_tokens WHERE id = ?1", [id.0])?;
    Ok(())
}

pub(crate) fn create_family(conn: &Connection, name: Name) -> StoreResult<PackageFamily> {
    let taken = row(
        conn,
        "SELECT id FROM families WHERE name = ?1",
        [name.as_str()],
        int,
    )?;
    if taken.is_some() {
        return Err(StoreError::Duplicate {
            what: "package family",
            key: name.to_string(),
        });
    }
    execute(
        conn,
        "INSERT INTO families (name) VALUES (?1)",
        [name.as_str()],
    )?;
    Ok(PackageFamily {
        id: FamilyId(conn.last_insert_rowid()),
        name,
    })
}

fn check_package(
    conn: &Connection,
    package: &Package,
    except: Option<PackageId>,
) -> StoreResult<()> {
    if !exists(
        conn,
        "SELECT 1 FROM families WHERE id = ?1",
        package.family.0,
    )? {
        return Err(invalid(format!(
            "unknown package family {}",
            package.family
        )));
    }
    for dependency in &package.dependencies {
        if Some(*dependency) != except
            && !exists(conn, "SELECT 1 FROM packages WHERE id = ?1", dependency.0)?
        {
            return Err(invalid(format!("unknown dependency package {dependency}")));
        }
    }
    // Only an update can close a cycle: nothing depends on a package being created.
    if let Some(id) = except {
        let cycle = oco_core::model::dependency_cycle(id, &package.dependencies, |other| {
            let text = row(
                conn,
                "SELECT dependencies FROM packages WHERE id = ?1",
                params![other.0],
                |r| r.get::<_, String>(0).map_err(backend),
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
        "SELECT id FROM packages WHERE family_id = ?1 AND version = ?2",
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

pub(crate) fn create_package(conn: &Connection, package: NewPackage) -> StoreResult<Package> {
    // The id is the row's, known once it is inserted.
    let mut package = package.with_id(PackageId(0));
    check_package(conn, &package, None)?;
    let compat = compatibility(&package.compatibility);
    let payload = encode::payload_columns(&package)?;
    execute(
        conn,
        "INSERT INTO packages (family_id, version, install_command, install_success_codes, \
         install_post_action, uninstall_command, uninstall_success_codes, uninstall_post_action, \
         has_payload, download_for_uninstall, upgrade_behavior, compatible_os, \
         compatible_os_versions, compatible_architectures, dependencies, payload_size, \
         payload_sha256) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        package_params!(package, compat, payload),
    )?;
    package.id = PackageId(conn.last_insert_rowid());
    Ok(package)
}

pub(crate) fn update_package(conn: &Connection, package: &Package) -> StoreResult<()> {
    if !exists(conn, "SELECT 1 FROM packages WHERE id = ?1", package.id.0)? {
        return Err(not_found("package", package.id));
    }
    check_package(conn, package, Some(package.id))?;
    let compat = compatibility(&package.compatibility);
    let payload = encode::payload_columns(package)?;
    execute(
        conn,
        "UPDATE packages SET family_id = ?1, version = ?2, install_command = ?3, \
         install_success_codes = ?4, install_post_action = ?5, uninstall_command = ?6, \
         uninstall_success_codes = ?7, uninstall_post_action = ?8, has_payload = ?9, \
         download_for_uninstall = ?10, upgrade_behavior = ?11, compatible_os = ?12, \
         compatible_os_versions = ?13, compatible_architectures = ?14, dependencies = ?15, \
         payload_size = ?16, payload_sha256 = ?17 \
         WHERE id = ?18",
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
    exists: "SELECT 1 FROM computer_groups WHERE id = ?1",
    parent_of: "SELECT parent_id FROM computer_groups WHERE id = ?1",
    insert: "INSERT INTO computer_groups (name, parent_id) VALUES (?1, ?2)",
    set_parent: "UPDATE computer_groups SET parent_id = ?2 WHERE id = ?1",
};

const PACKAGE_GROUPS: GroupTable = GroupTable {
    what: "package group",
    exists: "SELECT 1 FROM package_groups WHERE id = ?1",
    parent_of: "SELECT parent_id FROM package_groups WHERE id = ?1",
    insert: "INSERT INTO package_groups (name, parent_id) VALUES (?1, ?2)",
    set_parent: "UPDATE package_groups SET parent_id = ?2 WHERE id = ?1",
};

impl GroupTable {
    fn create(self, conn: &Connection, name: &Name, parent: Option<i64>) -> StoreResult<i64> {
        if let Some(parent) = parent {
            if !exists(conn, self.exists, parent)? {
                return Err(invalid(format!("unknown parent {} {parent}", self.what)));
            }
        }
        execute(conn, self.insert, params![name.as_str(), parent])?;
        Ok(conn.last_insert_rowid())
    }

    fn set_parent(self, conn: &Connection, id: i64, parent: Option<i64>) -> StoreResult<()> {
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
                current = row(conn, self.parent_of, [group], |row| {
                    row.get::<_, Option<i64>>(0).map_err(backend)
                })?
                .flatten();
            }
        }
        execute(conn, self.set_parent, params![id, parent])?;
        Ok(())
    }
}

pub(crate) fn create_computer_group(
    conn: &Connection,
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
    conn: &Connection,
    id: ComputerGroupId,
    parent: Option<ComputerGroupId>,
) -> StoreResult<()> {
    COMPUTER_GROUPS.set_parent(conn, id.0, parent.map(|p| p.0))
}

pub(crate) fn set_computer_group_members(
    conn: &Connection,
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
        "DELETE FROM computer_group_members WHERE group_id = ?1",
        [id.0],
    )?;
    for member in members {
        execute(
            conn,
            "INSERT INTO computer_group_members (group_id, computer_id) VALUES (?1, ?2)",
            [id.0, member.0],
        )?;
    }
    Ok(())
}

pub(crate) fn create_package_group(
    conn: &Connection,
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
    conn: &Connection,
    id: PackageGroupId,
    parent: Option<PackageGroupId>,
) -> StoreResult<()> {
    PACKAGE_GROUPS.set_parent(conn, id.0, parent.map(|p| p.0))
}

pub(crate) fn set_package_group_members(
    conn: &Connection,
    id: PackageGroupId,
    members: &[PackageId],
) -> StoreResult<()> {
    if !exists(conn, PACKAGE_GROUPS.exists, id.0)? {
        return Err(not_found("package group", id));
    }
    for member in members {
        if !exists(conn, "SELECT 1 FROM packages WHERE id = ?1", member.0)? {
            return Err(invalid(format!("unknown package {member}")));
        }
    }
    execute(
        conn,
        "DELETE FROM package_group_members WHERE group_id = ?1",
        [id.0],
    )?;
    // Ordered; a package listed twice keeps its first position.
    let mut seen = BTreeSet::new();
    for (position, member) in members.iter().filter(|m| seen.insert(**m)).enumerate() {
        let position = i64::try_from(position).map_err(|_| invalid("too many members"))?;
        execute(
            conn,
            "INSERT INTO package_group_members (group_id, position, package_id) \
             VALUES (?1, ?2, ?3)",
            [id.0, position, member.0],
        )?;
    }
    Ok(())
}

// Rules.

fn check_rule_groups(conn: &Connection, rule: &DeploymentRule) -> StoreResult<()> {
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

pub(crate) fn create_rule(conn: &Connection, rule: NewRule) -> StoreResult<DeploymentRule> {
    // The id is the row's, known once it is inserted.
    let mut rule = rule.with_id(RuleId(0));
    check_rule_groups(conn, &rule)?;
    let columns = rule_values(&rule)?;
    execute(
        conn,
        &insert_sql("rules", &columns),
        column_params(None, &columns),
    )?;
    rule.id = RuleId(conn.last_insert_rowid());
    Ok(rule)
}

pub(crate) fn update_rule(conn: &Connection, rule: &DeploymentRule) -> StoreResult<()> {
    if !exists(conn, "SELECT 1 FROM rules WHERE id = ?1", rule.id.0)? {
        return Err(not_found("rule", rule.id));
    }
    check_rule_groups(conn, rule)?;
    let columns = rule_values(rule)?;
    execute(
        conn,
        &update_sql("rules", &columns),
        column_params(Some(rule.id.0), &columns),
    )?;
    Ok(())
}

/// A rule's columns (all but its id).
fn rule_values(rule: &DeploymentRule) -> StoreResult<Values> {
    let mut columns: Values = vec![
        ("name", rule.name.as_str().to_owned().into()),
        ("notes", rule.notes.clone().into()),
        ("enabled", rule.enabled.into()),
        ("computer_group_id", rule.computer_group.0.into()),
        ("package_group_id", rule.package_group.0.into()),
        ("created_at", time(rule.created_at)?.into()),
    ];
    columns.extend(policy_values(&rule.policy));
    Ok(columns)
}

/// A container's columns (all but its id).
fn container_values(c: &JobContainer) -> StoreResult<Values> {
    let mut columns: Values = vec![
        ("name", c.name.as_str().to_owned().into()),
        ("notes", c.notes.clone().into()),
        ("enabled", c.enabled.into()),
        ("schedule_start", time(c.schedule.start())?.into()),
        ("schedule_end", opt_time(c.schedule.end())?.into()),
        ("wol_wake", c.wol.wake.into()),
        ("wol_shutdown_after", c.wol.shutdown_after.into()),
        ("wol_sent_at", opt_time(c.wol.sent_at)?.into()),
        ("self_service", c.self_service.into()),
        ("created_at", time(c.created_at)?.into()),
    ];
    columns.extend(policy_values(&c.policy));
    Ok(columns)
}

pub(crate) fn delete_rule(conn: &Connection, id: RuleId) -> StoreResult<()> {
    let changed = execute(conn, "UPDATE rules SET deleting = 1 WHERE id = ?1", [id.0])?;
    if changed == 0 {
        return Err(not_found("rule", id));
    }
    remove_rule_if_deleted_and_empty(conn, id)?;
    Ok(())
}

/// Removes a rule being deleted once it has no job left. Its tombstones stay until housekeeping
/// purges them: a late report on one still records the installation. Whether it was removed.
fn remove_rule_if_deleted_and_empty(conn: &Connection, rule: RuleId) -> StoreResult<bool> {
    let removed = execute(
        conn,
        "DELETE FROM rules WHERE id = ?1 AND deleting <> 0 \
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE rule_id = ?1)",
        [rule.0],
    )?;
    Ok(removed > 0)
}

// Change sets.

/// Applies change sets inside the caller's transaction, counting statements for fault
/// injection and remembering the ids of job snapshots written or found.
pub(crate) struct ChangeWriter<'c> {
    conn: &'c Connection,
    /// The statement to fail (fault injection), counted from 1.
    fail_at: Option<u64>,
    executed: Cell<u64>,
    /// Ids of job snapshots, by value. Forgotten when a member of a batch is rolled back (the
    /// ids it inserted are gone).
    snapshots: RefCell<HashMap<JobSnapshot, i64>>,
}

/// A statement that failed: SQLite's error (to inspect), or an injected failure.
enum Failed {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<Failed> for StoreError {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Sqlite(error) => backend(error),
            Failed::Store(error) => error,
        }
    }
}

const JOB_INSERT: &str = "INSERT INTO jobs (container_id, rule_id, computer_id, package_id, kind, \
     snapshot_id, sequence, state, download_progress, return_code, output, message, \
     download_started, execution_started, finished, last_report, wol_shutdown, \
     wol_shutdown_since, orphaned, attempt, revision) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, 1)";

impl<'c> ChangeWriter<'c> {
    pub(crate) fn new(conn: &'c Connection, fail_at: Option<u64>) -> Self {
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
        for change in &set.changes {
            self.change(change, &mut applied)?;
        }
        Ok(applied)
    }

    /// Applies each set in a savepoint of its own. `Err` if the transaction can no longer be
    /// trusted (a rollback to a savepoint failed): the caller must roll it back whole.
    pub(crate) fn apply_many(&self, sets: &[ChangeSet]) -> StoreResult<Vec<StoreResult<Applied>>> {
        let mut results = Vec::with_capacity(sets.len());
        for set in sets {
            if let Err(error) = self.exec("SAVEPOINT change_set", []) {
                results.push(Err(error.into()));
                continue;
            }
            let result = self.apply(set);
            let result = match result {
                Ok(applied) => match self.exec("RELEASE change_set", []) {
                    Ok(_) => Ok(applied),
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
            results.push(result);
        }
        Ok(results)
    }

    /// Rolls the current member of a batch back (not counted as a statement).
    fn undo_member(&self) -> StoreResult<()> {
        self.snapshots.borrow_mut().clear();
        self.conn
            .execute_batch("ROLLBACK TO change_set; RELEASE change_set")
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
    fn exec(&self, sql: &str, params: impl Params) -> Result<usize, Failed> {
        self.tick()?;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params))
            .map_err(Failed::Sqlite)
    }

    /// The first row of a query, counted.
    fn query<T>(
        &self,
        sql: &str,
        params: impl Params,
        decode: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T>,
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
                    "SELECT wol_sent_at FROM containers WHERE id = ?1",
                    [container.0],
                    |row| row.get::<_, Option<i64>>(0).map_err(backend),
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
                    "UPDATE containers SET wol_sent_at = ?2 WHERE id = ?1",
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
                                        " FROM packages WHERE id = ?1"
                                    ),
                                    [new.package.0],
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
                    "DELETE FROM tombstones WHERE deleted_at < ?1",
                    [time(*deleted_before)?],
                )?;
            }
            Change::UpsertAssignment { assignment } => {
                let inserted = self.exec(
                    "INSERT INTO assignments (computer_id, package_id, installed_at, job_id) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (computer_id, package_id) DO UPDATE \
                     SET installed_at = excluded.installed_at, job_id = excluded.job_id",
                    params![
                        assignment.computer.0,
                        assignment.package.0,
                        time(assignment.installed_at)?,
                        assignment.job.map(|j| j.0),
                    ],
                );
                match inserted {
                    Err(Failed::Sqlite(e))
                        if constraint(&e) == Some(SQLITE_CONSTRAINT_FOREIGNKEY) =>
                    {
                        if !computer_exists(self.conn, assignment.computer)? {
                            return Err(invalid(format!(
                                "unknown computer {}",
                                assignment.computer
                            )));
                        }
                        return Err(invalid(format!("unknown package {}", assignment.package)));
                    }
                    other => {
                        other?;
                    }
                }
                self.bump_assignments(assignment.computer)?;
            }
            Change::DeleteAssignment { computer, package } => {
                let removed = self.exec(
                    "DELETE FROM assignments WHERE computer_id = ?1 AND package_id = ?2",
                    [computer.0, package.0],
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
                // row yet, a conflict, a missing computer) is told apart by reading the row.
                let mut values = credentials_params(*computer, expected)?;
                values.extend(encode::credentials_values(credentials)?);
                if self.exec(CAS_CREDENTIALS, params_from_iter(values))? == 0 {
                    self.tick()?;
                    if read::credentials(self.conn, *computer)? != *expected {
                        return Err(conflict(format!(
                            "credentials of computer {computer} changed since read"
                        )));
                    }
                    self.exec(
                        UPSERT_CREDENTIALS,
                        params_from_iter(credentials_params(*computer, credentials)?),
                    )?;
                }
            }
            Change::SetLastSeen { computer, at } => {
                let changed = self.exec(
                    "UPDATE computers SET last_seen = max(coalesce(last_seen, ?2), ?2) \
                     WHERE id = ?1",
                    params![computer.0, time(*at)?],
                )?;
                if changed == 0 {
                    return Err(not_found("computer", computer));
                }
            }
            Change::SetServerState { state } => {
                self.exec(UPSERT_SERVER_STATE, [&state.admin_token_hash])?;
            }
            Change::ExpectAssignments { computer, expected } => {
                self.tick()?;
                let stored = read::assignment_revision(self.conn, *computer)?;
                encode::assignments_at_revision(*computer, stored, *expected)?;
            }
        }
        Ok(())
    }

    fn bump_assignments(&self, computer: ComputerId) -> StoreResult<()> {
        self.exec(
            "UPDATE computers SET assignment_revision = assignment_revision + 1 WHERE id = ?1",
            [computer.0],
        )?;
        Ok(())
    }

    fn insert_container(&self, c: &JobContainer) -> StoreResult<ContainerId> {
        let columns = container_values(c)?;
        self.exec(
            &insert_sql("containers", &columns),
            column_params(None, &columns),
        )?;
        Ok(ContainerId(self.conn.last_insert_rowid()))
    }

    fn update_container(&self, c: &JobContainer) -> StoreResult<()> {
        let columns = container_values(c)?;
        let changed = self.exec(
            &update_sql("containers", &columns),
            column_params(Some(c.id.0), &columns),
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
            "SELECT id, revision FROM jobs WHERE container_id = ?1",
            [id.0],
            |row| {
                let job: i64 = int(row)?;
                let revision: i64 = row.get(1).map_err(backend)?;
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
                "INSERT OR REPLACE INTO tombstones (",
                job_table_columns!(),
                ", deleted_at) SELECT ",
                job_table_columns!(),
                ", ?2 FROM jobs WHERE container_id = ?1"
            ),
            params![id.0, time(at)?],
        )?;
        self.exec("DELETE FROM jobs WHERE container_id = ?1", [id.0])?;
        let removed = self.exec("DELETE FROM containers WHERE id = ?1", [id.0])?;
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
        let procedure = &snapshot.procedure;
        let codes = procedure.success_codes.to_string();
        let values = params![
            procedure.command,
            codes,
            procedure.post_action.text(),
            snapshot.download,
            snapshot.upgrade_behavior.text(),
        ];
        let found = self.query(
            "SELECT id FROM job_snapshots WHERE command = ?1 AND success_codes = ?2 \
             AND post_action = ?3 AND download = ?4 AND upgrade_behavior = ?5",
            values,
            int,
        )?;
        let id = match found {
            Some(id) => id,
            None => {
                self.exec(
                    "INSERT INTO job_snapshots (command, success_codes, post_action, download, \
                     upgrade_behavior) VALUES (?1, ?2, ?3, ?4, ?5)",
                    values,
                )?;
                self.conn.last_insert_rowid()
            }
        };
        self.snapshots.borrow_mut().insert(snapshot.clone(), id);
        Ok(id)
    }

    /// Inserts `job` (its id and revision ignored) with the stored snapshot `snapshot`.
    fn insert_job(&self, job: &Job, snapshot: i64) -> StoreResult<JobId> {
        let (container, rule) = encode::origin(job.origin);
        let (wol, since) = encode::wol_shutdown(job.wol_shutdown)?;
        let inserted = self.exec(
            JOB_INSERT,
            params![
                container,
                rule,
                job.computer.0,
                job.package.0,
                job.kind.text(),
                snapshot,
                job.sequence,
                job.state.text(),
                job.download_progress,
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
                job.attempt,
            ],
        );
        match inserted {
            Ok(_) => Ok(JobId(self.conn.last_insert_rowid())),
            Err(Failed::Sqlite(e)) => match constraint(&e) {
                Some(SQLITE_CONSTRAINT_FOREIGNKEY) => Err(self.unknown_reference(job)?),
                Some(SQLITE_CONSTRAINT_UNIQUE) => Err(StoreError::Duplicate {
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

    /// Which reference of `job` is unknown (after a foreign key failed).
    fn unknown_reference(&self, job: &Job) -> StoreResult<StoreError> {
        let origin_exists = match job.origin {
            Origin::Container(id) => {
                exists(self.conn, "SELECT 1 FROM containers WHERE id = ?1", id.0)?
            }
            Origin::Rule(id) => exists(self.conn, "SELECT 1 FROM rules WHERE id = ?1", id.0)?,
        };
        Ok(if !origin_exists {
            invalid(format!("unknown origin {}", job.origin))
        } else if !computer_exists(self.conn, job.computer)? {
            invalid(format!("unknown computer {}", job.computer))
        } else {
            invalid(format!("unknown package {}", job.package))
        })
    }

    fn update_job(&self, expected: Revision, job: &Job) -> StoreResult<()> {
        let snapshot = self.snapshot_id(&job.snapshot)?;
        let (container, rule) = encode::origin(job.origin);
        let (wol, since) = encode::wol_shutdown(job.wol_shutdown)?;
        let changed = self.exec(
            "UPDATE jobs SET snapshot_id = ?3, sequence = ?4, state = ?5, \
             download_progress = ?6, return_code = ?7, output = ?8, message = ?9, \
             download_started = ?10, execution_started = ?11, finished = ?12, last_report = ?13, \
             wol_shutdown = ?14, wol_shutdown_since = ?15, orphaned = ?16, attempt = ?17, \
             revision = revision + 1 \
             WHERE id = ?1 AND revision = ?2 AND container_id IS ?18 AND rule_id IS ?19 \
             AND computer_id = ?20 AND package_id = ?21 AND kind = ?22",
            params![
                job.id.0,
                revision(expected)?,
                snapshot,
                job.sequence,
                job.state.text(),
                job.download_progress,
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
                job.attempt,
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
            "SELECT revision FROM jobs WHERE id = ?1",
            [id.0],
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
        let rule = {
            let mut statement = self
                .conn
                .prepare_cached(concat!(
                    "INSERT OR REPLACE INTO tombstones (",
                    job_table_columns!(),
                    ", deleted_at) SELECT ",
                    job_table_columns!(),
                    ", ?3 FROM jobs WHERE id = ?1 AND revision = ?2 AND computer_id = ?4 \
                     RETURNING rule_id"
                ))
                .map_err(backend)?;
            let mut rows = statement
                .query(params![id.0, revision(expected)?, time(at)?, computer.0])
                .map_err(backend)?;
            match rows.next().map_err(backend)? {
                Some(row) => Some(row.get::<_, Option<i64>>(0).map_err(backend)?),
                None => None,
            }
        };
        let Some(rule) = rule else {
            self.check_revision(id, expected)?;
            // The job is there at the expected revision: it is another computer's.
            return Err(invalid(format!("job {id} is not computer {computer}'s")));
        };
        self.exec("DELETE FROM jobs WHERE id = ?1", [id.0])?;
        if let Some(rule) = rule {
            self.tick()?;
            remove_rule_if_deleted_and_empty(self.conn, RuleId(rule))?;
        }
        Ok(())
    }
}
