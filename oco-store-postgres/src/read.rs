//! Reads: getters, listings and the core's snapshots, each run inside one read transaction by
//! the caller.

use std::collections::{BTreeMap, BTreeSet};

use oco_core::chrono::{DateTime, Utc};
use oco_core::housekeeping::JobSummary;
use oco_core::model::resolve::resolve_package_group;
use oco_core::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId, DeploymentRule,
    FamilyId, Job, JobContainer, JobId, JobState, Origin, Package, PackageFamily, PackageGroup,
    PackageGroupId, PackageId, Revision, RuleId, SequenceMode, Sha256Digest,
};
use oco_core::store::columns;
use oco_core::store::{
    AdminToken, AgentCredentials, AgentLookup, ContainerJobs, DeploySnapshot, FailedJob,
    HousekeepingSnapshot, JobFilter, OriginInfo, Page, PlannerSnapshot, ReportSnapshot, RulePart,
    RuleSnapshot, ServerState, StoreError, StoreResult,
};
use postgres::Row;

use crate::encode::{
    self, assignment_row, column, computer_columns, computer_row, container_columns, container_row,
    corrupt, from_revision, from_time, get, job_columns, job_row, package_columns, package_row,
    parse_column, parse_policy, rule_columns, rule_row, Snapshots,
};
use crate::{backend, params, Conn, Param};

/// `FROM` of a job read (its snapshot is read through [`Snapshots`]).
macro_rules! from_jobs {
    () => {
        " FROM jobs j "
    };
}

pub(crate) fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

/// The rows of a prepared query, each decoded by `decode`.
pub(crate) fn rows<T>(
    conn: &Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    conn.query(sql, params)
        .map_err(backend)?
        .iter()
        .map(decode)
        .collect()
}

/// The first row of a prepared query, decoded, if any.
pub(crate) fn row<T>(
    conn: &Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    conn.query(sql, params)
        .map_err(backend)?
        .first()
        .map(decode)
        .transpose()
}

/// Column 0 as an `i64`.
pub(crate) fn int(row: &Row) -> StoreResult<i64> {
    column(row, 0)
}

/// A page's bounds as SQL parameters: the id to start after and the limit.
fn bounds(page: Page) -> (i64, i64) {
    (
        page.after.unwrap_or(i64::MIN),
        i64::try_from(page.limit).unwrap_or(i64::MAX),
    )
}

pub(crate) fn computer_exists(conn: &Conn<'_>, id: ComputerId) -> StoreResult<bool> {
    Ok(row(
        conn,
        "SELECT 1 FROM computers WHERE id = $1",
        &[&id.0],
        |_| Ok(()),
    )?
    .is_some())
}

pub(crate) fn computer(conn: &Conn<'_>, id: ComputerId) -> StoreResult<Computer> {
    row(
        conn,
        concat!(
            "SELECT ",
            computer_columns!(),
            " FROM computers c WHERE c.id = $1"
        ),
        &[&id.0],
        computer_row,
    )?
    .ok_or_else(|| not_found("computer", id))
}

pub(crate) fn computer_by_hostname(
    conn: &Conn<'_>,
    hostname: &str,
) -> StoreResult<Option<Computer>> {
    let key = hostname.trim().to_lowercase();
    row(
        conn,
        concat!(
            "SELECT ",
            computer_columns!(),
            " FROM computers c WHERE c.hostname_key = $1"
        ),
        &[&key],
        computer_row,
    )
}

pub(crate) fn list_computers(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<Computer>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        concat!(
            "SELECT ",
            computer_columns!(),
            " FROM computers c WHERE c.id > $1 ORDER BY c.id LIMIT $2"
        ),
        params![after, limit],
        computer_row,
    )
}

pub(crate) fn credentials(conn: &Conn<'_>, id: ComputerId) -> StoreResult<AgentCredentials> {
    if !computer_exists(conn, id)? {
        return Err(not_found("computer", id));
    }
    credentials_of(conn, id)
}

/// The credentials of computer `id`, known to exist.
fn credentials_of(conn: &Conn<'_>, id: ComputerId) -> StoreResult<AgentCredentials> {
    let stored = row(
        conn,
        "SELECT agent_key, previous_agent_key, server_key, last_hello, last_reply, contact_at, \
         contact_address, agent_version FROM credentials WHERE computer_id = $1",
        &[&id.0],
        |row| {
            encode::credentials(row)
                .map_err(|reason| corrupt("credentials of computer", id.0, reason))
        },
    )?;
    Ok(stored.unwrap_or_default())
}

pub(crate) fn server_state(conn: &Conn<'_>) -> StoreResult<ServerState> {
    let stored = row(
        conn,
        "SELECT admin_token_hash FROM server_state WHERE id = 1",
        &[],
        |row| {
            let decode = || -> Result<ServerState, String> {
                Ok(ServerState {
                    admin_token_hash: get(row, 0, "admin_token_hash")?,
                })
            };
            decode().map_err(|reason| corrupt("server state", 1, reason))
        },
    )?;
    Ok(stored.unwrap_or_default())
}

fn family_row(row: &Row) -> StoreResult<PackageFamily> {
    let id: i64 = column(row, 0)?;
    let name =
        encode::name(row, 1, "name").map_err(|reason| corrupt("package family", id, reason))?;
    Ok(PackageFamily {
        id: FamilyId(id),
        name,
    })
}

pub(crate) fn list_admin_tokens(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<AdminToken>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        &format!(
            "SELECT {} FROM admin_tokens WHERE id > $1 ORDER BY id LIMIT $2",
            columns::ADMIN_TOKEN_COLUMNS
        ),
        params![after, limit],
        |row| columns::admin_token_row(&crate::encode::PgRow(row)),
    )
}

pub(crate) fn admin_token_by_digest(
    conn: &Conn<'_>,
    digest: &Sha256Digest,
) -> StoreResult<Option<AdminToken>> {
    row(
        conn,
        &format!(
            "SELECT {} FROM admin_tokens WHERE digest = $1",
            columns::ADMIN_TOKEN_COLUMNS
        ),
        &[&digest.to_string()],
        |row| columns::admin_token_row(&crate::encode::PgRow(row)),
    )
}

pub(crate) fn family(conn: &Conn<'_>, id: FamilyId) -> StoreResult<PackageFamily> {
    row(
        conn,
        "SELECT id, name FROM families WHERE id = $1",
        &[&id.0],
        family_row,
    )?
    .ok_or_else(|| not_found("package family", id))
}

pub(crate) fn list_families(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<PackageFamily>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        "SELECT id, name FROM families WHERE id > $1 ORDER BY id LIMIT $2",
        params![after, limit],
        family_row,
    )
}

pub(crate) fn package(conn: &Conn<'_>, id: PackageId) -> StoreResult<Package> {
    row(
        conn,
        concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages WHERE id = $1"
        ),
        &[&id.0],
        package_row,
    )?
    .ok_or_else(|| not_found("package", id))
}

pub(crate) fn list_packages(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<Package>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages WHERE id > $1 ORDER BY id LIMIT $2"
        ),
        params![after, limit],
        package_row,
    )
}

fn computer_group_row(row: &Row) -> StoreResult<ComputerGroup> {
    let id: i64 = column(row, 0)?;
    let decode = || -> Result<ComputerGroup, String> {
        Ok(ComputerGroup {
            id: ComputerGroupId(id),
            name: encode::name(row, 1, "name")?,
            parent: get::<Option<i64>>(row, 2, "parent_id")?.map(ComputerGroupId),
        })
    };
    decode().map_err(|reason| corrupt("computer group", id, reason))
}

fn package_group_row(row: &Row) -> StoreResult<PackageGroup> {
    let id: i64 = column(row, 0)?;
    let decode = || -> Result<PackageGroup, String> {
        Ok(PackageGroup {
            id: PackageGroupId(id),
            name: encode::name(row, 1, "name")?,
            parent: get::<Option<i64>>(row, 2, "parent_id")?.map(PackageGroupId),
        })
    };
    decode().map_err(|reason| corrupt("package group", id, reason))
}

fn pair(row: &Row) -> StoreResult<(i64, i64)> {
    Ok((column(row, 0)?, column(row, 1)?))
}

/// Every computer group with its direct members (by computer id), by group id; with `only`,
/// the members are filtered to those computers.
fn computer_groups_filtered(
    conn: &Conn<'_>,
    only: Option<&BTreeSet<ComputerId>>,
) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
    let groups = rows(
        conn,
        "SELECT id, name, parent_id FROM computer_groups ORDER BY id",
        &[],
        computer_group_row,
    )?;
    let mut members: BTreeMap<ComputerGroupId, Vec<ComputerId>> = BTreeMap::new();
    match only {
        None => {
            for (group, computer) in rows(
                conn,
                "SELECT group_id, computer_id FROM computer_group_members \
                 ORDER BY group_id, computer_id",
                &[],
                pair,
            )? {
                members
                    .entry(ComputerGroupId(group))
                    .or_default()
                    .push(ComputerId(computer));
            }
        }
        Some(computers) => {
            for computer in computers {
                for group in rows(
                    conn,
                    "SELECT group_id FROM computer_group_members WHERE computer_id = $1",
                    &[&computer.0],
                    int,
                )? {
                    members
                        .entry(ComputerGroupId(group))
                        .or_default()
                        .push(*computer);
                }
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|group| {
            let list = members.remove(&group.id).unwrap_or_default();
            (group, list)
        })
        .collect())
}

pub(crate) fn computer_groups(
    conn: &Conn<'_>,
) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
    computer_groups_filtered(conn, None)
}

pub(crate) fn package_groups(conn: &Conn<'_>) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
    let groups = rows(
        conn,
        "SELECT id, name, parent_id FROM package_groups ORDER BY id",
        &[],
        package_group_row,
    )?;
    let mut members: BTreeMap<PackageGroupId, Vec<PackageId>> = BTreeMap::new();
    for (group, package) in rows(
        conn,
        "SELECT group_id, package_id FROM package_group_members ORDER BY group_id, position",
        &[],
        pair,
    )? {
        members
            .entry(PackageGroupId(group))
            .or_default()
            .push(PackageId(package));
    }
    Ok(groups
        .into_iter()
        .map(|group| {
            let list = members.remove(&group.id).unwrap_or_default();
            (group, list)
        })
        .collect())
}

/// A computer's assignments, oldest first (then by package id).
fn assignments_of(conn: &Conn<'_>, computer: ComputerId) -> StoreResult<Vec<Assignment>> {
    rows(
        conn,
        "SELECT computer_id, package_id, installed_at, job_id FROM assignments \
         WHERE computer_id = $1 ORDER BY installed_at, package_id",
        &[&computer.0],
        assignment_row,
    )
}

/// A computer's assignment revision, if the computer exists.
pub(crate) fn assignment_revision(
    conn: &Conn<'_>,
    computer: ComputerId,
) -> StoreResult<Option<Revision>> {
    row(
        conn,
        "SELECT assignment_revision FROM computers WHERE id = $1",
        &[&computer.0],
        |row| from_revision(int(row)?).map_err(|reason| corrupt("computer", computer.0, reason)),
    )
}

pub(crate) fn assignments(
    conn: &Conn<'_>,
    computer: ComputerId,
) -> StoreResult<(Vec<Assignment>, Revision)> {
    let revision =
        assignment_revision(conn, computer)?.ok_or_else(|| not_found("computer", computer))?;
    Ok((assignments_of(conn, computer)?, revision))
}

pub(crate) fn container(conn: &Conn<'_>, id: ContainerId) -> StoreResult<JobContainer> {
    row(
        conn,
        concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE id = $1"
        ),
        &[&id.0],
        container_row,
    )?
    .ok_or_else(|| not_found("container", id))
}

pub(crate) fn list_containers(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<JobContainer>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE id > $1 ORDER BY id LIMIT $2"
        ),
        params![after, limit],
        container_row,
    )
}

pub(crate) fn rule(conn: &Conn<'_>, id: RuleId) -> StoreResult<DeploymentRule> {
    row(
        conn,
        concat!("SELECT ", rule_columns!(), " FROM rules WHERE id = $1"),
        &[&id.0],
        rule_row,
    )?
    .ok_or_else(|| not_found("rule", id))
}

pub(crate) fn list_rules(conn: &Conn<'_>, page: Page) -> StoreResult<Vec<DeploymentRule>> {
    let (after, limit) = bounds(page);
    rows(
        conn,
        concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE id > $1 AND NOT deleting ORDER BY id LIMIT $2"
        ),
        params![after, limit],
        rule_row,
    )
}

/// Every rule that is not being deleted, by id.
fn live_rules(conn: &Conn<'_>) -> StoreResult<Vec<DeploymentRule>> {
    rows(
        conn,
        concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE NOT deleting ORDER BY id"
        ),
        &[],
        rule_row,
    )
}

pub(crate) fn job(conn: &Conn<'_>, id: JobId) -> StoreResult<Job> {
    let snapshots = Snapshots::new(conn);
    row(
        conn,
        concat!("SELECT ", job_columns!(), from_jobs!(), "WHERE j.id = $1"),
        &[&id.0],
        |row| job_row(row, &snapshots),
    )?
    .ok_or_else(|| not_found("job", id))
}

/// Jobs matching `filter`; with `output_chars`, each output is read up to one character more
/// than that (enough to tell a cut one), never whole.
pub(crate) fn list_jobs(
    conn: &Conn<'_>,
    filter: &JobFilter,
    page: Page,
    output_chars: Option<usize>,
) -> StoreResult<Vec<Job>> {
    let snapshots = Snapshots::new(conn);
    let (after, limit) = bounds(page);
    let mut sql = String::from(concat!(
        "SELECT ",
        job_columns!(),
        from_jobs!(),
        "WHERE j.id > $1"
    ));
    if let Some(chars) = output_chars {
        // `substr` counts characters of text: only the start of each output is sent.
        sql = sql.replacen(
            "j.output",
            &format!("substr(j.output, 1, {})", chars.saturating_add(1)),
            1,
        );
    }
    let origin = filter.origin.map(|origin| match origin {
        Origin::Container(id) => ("container_id", id.0),
        Origin::Rule(id) => ("rule_id", id.0),
    });
    let computer = filter.computer.map(|id| id.0);
    let package = filter.package.map(|id| id.0);
    let state = filter.state.map(encode::TextEnum::text);
    let mut conditions: Vec<(&str, Param<'_>)> = Vec::new();
    if let Some((column, id)) = &origin {
        conditions.push((column, id));
    }
    if let Some(id) = &computer {
        conditions.push(("computer_id", id));
    }
    if let Some(id) = &package {
        conditions.push(("package_id", id));
    }
    if let Some(state) = &state {
        conditions.push(("state", state));
    }
    let mut values: Vec<Param<'_>> = vec![&after, &limit];
    for (column, value) in conditions {
        values.push(value);
        sql.push_str(&format!(" AND j.{column} = ${}", values.len()));
    }
    sql.push_str(" ORDER BY j.id LIMIT $2");
    rows(conn, &sql, &values, |row| job_row(row, &snapshots))
}

/// An origin's fields as the planner reads them; a row that does not decode gives `Err` in the
/// policy (and no schedule if that is what does not decode).
fn origin_info(conn: &Conn<'_>, origin: Origin) -> StoreResult<Option<OriginInfo>> {
    match origin {
        Origin::Container(id) => row(
            conn,
            concat!(
                "SELECT enabled, created_at, schedule_start, schedule_end, ",
                encode::policy_columns!(),
                " FROM containers WHERE id = $1"
            ),
            &[&id.0],
            |row| Ok(planner_origin(row, true, "container", id.0)),
        ),
        Origin::Rule(id) => row(
            conn,
            concat!(
                "SELECT enabled, created_at, NULL::bigint, NULL::bigint, ",
                encode::policy_columns!(),
                " FROM rules WHERE id = $1"
            ),
            &[&id.0],
            |row| Ok(planner_origin(row, false, "rule", id.0)),
        ),
    }
}

fn planner_origin(row: &Row, container: bool, what: &str, id: i64) -> OriginInfo {
    let enabled = get::<bool>(row, 0, "enabled");
    let created_at = get::<i64>(row, 1, "created_at").map(from_time);
    let schedule = if container {
        encode::schedule(row, 2).map(Some)
    } else {
        Ok(None)
    };
    let policy = parse_policy(row, 4);
    // Whatever does not decode holds the origin's jobs, with the first reason.
    let problem = [
        enabled.as_ref().err(),
        created_at.as_ref().err(),
        schedule.as_ref().err(),
        policy.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    .next()
    .map(|reason| format!("stored {what} {id} is corrupt: {reason}"));
    OriginInfo {
        enabled: enabled.unwrap_or(false),
        created_at: created_at.unwrap_or_default(),
        schedule: schedule.ok().flatten(),
        policy: match problem {
            Some(reason) => Err(reason),
            None => policy,
        },
        failed: Vec::new(),
    }
}

/// What an agent request reads first, in one statement: the computer's id and credentials by
/// its hostname, and whether it has a pending job (an index probe).
pub(crate) fn agent_lookup(conn: &Conn<'_>, hostname: &str) -> StoreResult<Option<AgentLookup>> {
    let key = hostname.trim().to_lowercase();
    row(
        conn,
        "SELECT cr.agent_key, cr.previous_agent_key, cr.server_key, cr.last_hello, \
         cr.last_reply, cr.contact_at, cr.contact_address, cr.agent_version, c.id, \
         EXISTS (SELECT 1 FROM jobs j WHERE j.computer_id = c.id \
         AND j.state IN ('waiting', 'downloading', 'executing')) \
         FROM computers c LEFT JOIN credentials cr ON cr.computer_id = c.id \
         WHERE c.hostname_key = $1",
        &[&key],
        |row| {
            let id: i64 = column(row, 8)?;
            let credentials = encode::credentials(row)
                .map_err(|reason| corrupt("credentials of computer", id, reason))?;
            Ok(AgentLookup {
                computer: ComputerId(id),
                credentials,
                pending_jobs: column(row, 9)?,
            })
        },
    )
}

/// A hello's three reads in one transaction (the computer is read once).
pub(crate) fn hello_snapshot(
    conn: &Conn<'_>,
    hostname: &str,
) -> StoreResult<Option<(Computer, AgentCredentials, PlannerSnapshot)>> {
    let Some(computer) = computer_by_hostname(conn, hostname)? else {
        return Ok(None);
    };
    let credentials = credentials_of(conn, computer.id)?;
    let snapshot = planner_snapshot_of(conn, computer.clone())?;
    Ok(Some((computer, credentials, snapshot)))
}

pub(crate) fn planner_snapshot(
    conn: &Conn<'_>,
    computer_id: ComputerId,
) -> StoreResult<PlannerSnapshot> {
    let computer = computer(conn, computer_id)?;
    planner_snapshot_of(conn, computer)
}

/// The planner snapshot of `computer`, read in this transaction.
fn planner_snapshot_of(conn: &Conn<'_>, computer: Computer) -> StoreResult<PlannerSnapshot> {
    let snapshots = Snapshots::new(conn);
    let computer_id = computer.id;
    let mut jobs = rows(
        conn,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs j \
             WHERE j.computer_id = $1 AND j.state IN (",
            "'waiting', 'downloading', 'executing'",
            ")"
        ),
        &[&computer_id.0],
        |row| job_row(row, &snapshots),
    )?;
    jobs.sort_unstable_by_key(|job| job.id);
    let mut origins = BTreeMap::new();
    for job in &jobs {
        if origins.contains_key(&job.origin) {
            continue;
        }
        let info = origin_info(conn, job.origin)?.ok_or_else(|| encode::missing_origin(job))?;
        origins.insert(job.origin, info);
    }
    if !origins.is_empty() {
        for (id, container, rule, sequence) in rows(
            conn,
            "SELECT id, container_id, rule_id, sequence FROM jobs \
             WHERE computer_id = $1 AND state = 'failed'",
            &[&computer_id.0],
            |row| {
                let id: i64 = int(row)?;
                let decode = || -> Result<(i64, Option<i64>, Option<i64>, u32), String> {
                    Ok((
                        id,
                        get(row, 1, "container_id")?,
                        get(row, 2, "rule_id")?,
                        encode::narrow("sequence", get(row, 3, "sequence")?)?,
                    ))
                };
                decode().map_err(|reason| corrupt("job", id, reason))
            },
        )? {
            let origin = match (container, rule) {
                (Some(c), _) => Origin::Container(ContainerId(c)),
                (None, Some(r)) => Origin::Rule(RuleId(r)),
                (None, None) => continue,
            };
            if let Some(info) = origins.get_mut(&origin) {
                info.failed.push(FailedJob {
                    id: JobId(id),
                    sequence,
                });
            }
        }
        for info in origins.values_mut() {
            info.failed.sort_by_key(|f| (f.sequence, f.id));
        }
    }
    Ok(PlannerSnapshot {
        computer,
        jobs,
        origins,
    })
}

/// How many columns [`job_columns`] selects.
const JOB_COLUMN_COUNT: usize = 22;

/// The report snapshot of job `$1`, in one statement: every agent report reads it, and one
/// statement outside a transaction costs one round trip where a read transaction of five
/// statements cost five. Its rows have the shape of [`job_columns`] and four more columns (the
/// origin's sequence mode, the computer's assignment revision, whether the job is a tombstone,
/// and `part`):
///
/// - part 0, the job: live, or else its tombstone, with the other three columns;
/// - part 1, each other live job of its computer and origin;
/// - part 2, each assignment of its computer in its package's family, in the first four
///   columns (all four `bigint`, as `id, container_id, rule_id, computer_id` are), NULL after.
///
/// The computer's other jobs are found through `jobs_by_computer` alone (a computer has a few,
/// a container may have a million): `IS NOT DISTINCT FROM` compares the origins because a strict
/// comparison implies `container_id IS NOT NULL`, the predicate of `jobs_by_container`, and the
/// planner then ANDs a bitmap of that whole index in (700 µs a report on the 1M-job seed).
const REPORT_SNAPSHOT: &str = concat!(
    "WITH target AS MATERIALIZED (",
    "SELECT ",
    job_columns!(),
    ", false AS deleted FROM jobs j WHERE j.id = $1 \
     UNION ALL SELECT ",
    job_columns!(),
    ", true FROM tombstones j WHERE j.id = $1 \
     ORDER BY deleted LIMIT 1) \
     SELECT ",
    job_columns!(),
    ", coalesce((SELECT c.sequence_mode FROM containers c WHERE c.id = j.container_id), \
                (SELECT r.sequence_mode FROM rules r WHERE r.id = j.rule_id)), \
       (SELECT a.assignment_revision FROM computers a WHERE a.id = j.computer_id), \
       j.deleted, 0 AS part \
     FROM target j \
     UNION ALL SELECT ",
    job_columns!(),
    ", NULL, NULL, NULL, 1 \
     FROM jobs j JOIN target t ON j.computer_id = t.computer_id \
     WHERE j.container_id IS NOT DISTINCT FROM t.container_id \
       AND j.rule_id IS NOT DISTINCT FROM t.rule_id AND j.id <> t.id \
     UNION ALL \
     SELECT a.computer_id, a.package_id, a.installed_at, a.job_id, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, 2 \
     FROM assignments a JOIN packages p ON p.id = a.package_id \
       JOIN target t ON a.computer_id = t.computer_id \
     WHERE p.family_id = (SELECT family_id FROM packages WHERE id = t.package_id)"
);

/// The report snapshot of job `id`, in one statement ([`REPORT_SNAPSHOT`]); a job snapshot not
/// cached yet is read in a statement of its own (its row never changes).
pub(crate) fn report_snapshot(conn: &Conn<'_>, id: JobId) -> StoreResult<ReportSnapshot> {
    let snapshots = Snapshots::new(conn);
    let mut target = None;
    let mut origin_jobs = Vec::new();
    let mut family_assignments = Vec::new();
    for row in conn.query(REPORT_SNAPSHOT, &[&id.0]).map_err(backend)? {
        let part: i32 = column(&row, JOB_COLUMN_COUNT + 3)?;
        match part {
            0 => {
                let job = job_row(&row, &snapshots)?;
                let mode: Option<String> = column(&row, JOB_COLUMN_COUNT)?;
                let revision: Option<i64> = column(&row, JOB_COLUMN_COUNT + 1)?;
                let deleted: bool = column(&row, JOB_COLUMN_COUNT + 2)?;
                target = Some((job, mode, revision, deleted));
            }
            1 => origin_jobs.push(job_row(&row, &snapshots)?),
            _ => family_assignments.push(assignment_row(&row)?),
        }
    }
    let (job, mode, revision, deleted) = target.ok_or_else(|| not_found("job", id))?;
    let (what, origin_id) = match job.origin {
        Origin::Container(c) => ("container", c.0),
        Origin::Rule(r) => ("rule", r.0),
    };
    let sequence_mode = mode
        .map(|text| {
            parse_column::<SequenceMode>("sequence_mode", &text)
                .map_err(|reason| corrupt(what, origin_id, reason))
        })
        .transpose()?;
    // A tombstone may outlive its origin (a deleted container or rule); its report never
    // cascades, so any mode will do. A live job without its origin is corrupt.
    let sequence_mode = match sequence_mode {
        Some(mode) => mode,
        None if deleted => SequenceMode::IgnoreFailed,
        None => return Err(encode::missing_origin(&job)),
    };
    let assignment_revision = revision
        .map(|value| {
            from_revision(value).map_err(|reason| corrupt("computer", job.computer.0, reason))
        })
        .transpose()?
        .unwrap_or_default();
    origin_jobs.sort_unstable_by_key(|job| job.id);
    family_assignments.sort_unstable_by_key(|a| (a.installed_at, a.package));
    Ok(ReportSnapshot {
        job,
        deleted,
        sequence_mode,
        origin_jobs,
        family_assignments,
        assignment_revision,
    })
}

/// The deploy snapshot: everything, or with `only` the computers, memberships and assignments of
/// those computers (the packages are the caller's to filter).
fn deploy_snapshot_of(
    conn: &Conn<'_>,
    only: Option<&BTreeSet<ComputerId>>,
) -> StoreResult<DeploySnapshot> {
    let mut snapshot = DeploySnapshot::default();
    match only {
        None => {
            for computer in rows(
                conn,
                concat!(
                    "SELECT ",
                    computer_columns!(),
                    " FROM computers c ORDER BY c.id"
                ),
                &[],
                computer_row,
            )? {
                snapshot.computers.insert(computer.id, computer);
            }
            for assignment in rows(
                conn,
                "SELECT computer_id, package_id, installed_at, job_id FROM assignments \
                 ORDER BY computer_id, installed_at, package_id",
                &[],
                assignment_row,
            )? {
                snapshot
                    .assignments
                    .entry(assignment.computer)
                    .or_default()
                    .push(assignment);
            }
        }
        Some(computers) => {
            for &id in computers {
                let Some(computer) = row(
                    conn,
                    concat!(
                        "SELECT ",
                        computer_columns!(),
                        " FROM computers c WHERE c.id = $1"
                    ),
                    &[&id.0],
                    computer_row,
                )?
                else {
                    continue;
                };
                snapshot.computers.insert(id, computer);
                let list = assignments_of(conn, id)?;
                if !list.is_empty() {
                    snapshot.assignments.insert(id, list);
                }
            }
        }
    }
    for (group, members) in computer_groups_filtered(conn, only)? {
        snapshot.computer_group_members.insert(group.id, members);
        snapshot.computer_groups.push(group);
    }
    for (group, members) in package_groups(conn)? {
        snapshot.package_group_members.insert(group.id, members);
        snapshot.package_groups.push(group);
    }
    if only.is_none() {
        for package in rows(
            conn,
            concat!("SELECT ", package_columns!(), " FROM packages ORDER BY id"),
            &[],
            package_row,
        )? {
            snapshot.packages.insert(package.id, package);
        }
    }
    Ok(snapshot)
}

pub(crate) fn deploy_snapshot(conn: &Conn<'_>) -> StoreResult<DeploySnapshot> {
    deploy_snapshot_of(conn, None)
}

/// Each computer's assignment revision, where it is not 0.
fn assignment_revisions(
    conn: &Conn<'_>,
    only: Option<&BTreeSet<ComputerId>>,
) -> StoreResult<BTreeMap<ComputerId, Revision>> {
    let decode = |row: &Row| -> StoreResult<(ComputerId, Revision)> {
        let (id, revision) = pair(row)?;
        let revision = from_revision(revision).map_err(|reason| corrupt("computer", id, reason))?;
        Ok((ComputerId(id), revision))
    };
    let list = match only {
        None => rows(
            conn,
            "SELECT id, assignment_revision FROM computers WHERE assignment_revision <> 0",
            &[],
            decode,
        )?,
        Some(computers) => {
            let mut list = Vec::new();
            for computer in computers {
                list.extend(row(
                    conn,
                    "SELECT id, assignment_revision FROM computers \
                     WHERE id = $1 AND assignment_revision <> 0",
                    &[&computer.0],
                    decode,
                )?);
            }
            list
        }
    };
    Ok(list.into_iter().collect())
}

pub(crate) fn rule_snapshot(conn: &Conn<'_>) -> StoreResult<RuleSnapshot> {
    let snapshots = Snapshots::new(conn);
    Ok(RuleSnapshot {
        deploy: deploy_snapshot_of(conn, None)?,
        rules: live_rules(conn)?,
        assignment_revisions: assignment_revisions(conn, None)?,
        jobs: rows(
            conn,
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs j WHERE j.rule_id IS NOT NULL \
                 ORDER BY j.rule_id, j.computer_id, j.package_id, j.kind"
            ),
            &[],
            |row| job_row(row, &snapshots),
        )?,
    })
}

/// Parts of more computers than this may be read by scanning the tables (see [`deploy_part`]).
pub(crate) const SCAN_ABOVE: usize = 1000;

/// The deploy snapshot of `computers` (as `deploy_snapshot_of` with them, packages left to the
/// caller): read computer by computer through the indexes, or, for a part of more than
/// [`SCAN_ABOVE`] computers and an eighth of all, by scanning the tables once and keeping those
/// computers, which is faster than thousands of lookups.
fn deploy_part(conn: &Conn<'_>, computers: &BTreeSet<ComputerId>) -> StoreResult<DeploySnapshot> {
    if computers.len() <= SCAN_ABOVE {
        return deploy_snapshot_of(conn, Some(computers));
    }
    let total: i64 = row(conn, "SELECT COUNT(*) FROM computers", &[], int)?.unwrap_or(0);
    if i64::try_from(computers.len()).is_ok_and(|n| n.saturating_mul(8) <= total) {
        return deploy_snapshot_of(conn, Some(computers));
    }
    let mut deploy = deploy_snapshot_of(conn, None)?;
    deploy.computers.retain(|id, _| computers.contains(id));
    deploy.assignments.retain(|id, _| computers.contains(id));
    for members in deploy.computer_group_members.values_mut() {
        members.retain(|id| computers.contains(id));
    }
    deploy.packages.clear();
    Ok(deploy)
}

pub(crate) fn rule_snapshot_part(conn: &Conn<'_>, part: &RulePart) -> StoreResult<RuleSnapshot> {
    let snapshots = Snapshots::new(conn);
    let mut deploy = deploy_part(conn, &part.computers)?;
    let rules = live_rules(conn)?;
    let mut jobs = Vec::new();
    if part.jobs {
        // Every job of the rules named, then the other rules' jobs on the computers: each once.
        for rule in &part.rule_jobs {
            jobs.extend(rows(
                conn,
                concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs j WHERE j.rule_id = $1 \
                     ORDER BY j.computer_id, j.package_id, j.kind"
                ),
                &[&rule.0],
                |row| job_row(row, &snapshots),
            )?);
        }
        // The rules already read are left out in SQL, so that their jobs are not decoded twice
        // (a rule edited reads its own jobs on every member twice otherwise).
        let read: Vec<i64> = part.rule_jobs.iter().map(|r| r.0).collect();
        for computer in deploy.computers.keys() {
            jobs.extend(rows(
                conn,
                concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs j WHERE j.computer_id = $1 \
                     AND j.rule_id IS NOT NULL AND j.rule_id <> ALL ($2) \
                     ORDER BY j.rule_id, j.package_id, j.kind"
                ),
                params![computer.0, read],
                |row| job_row(row, &snapshots),
            )?);
        }
    }
    // Packages: every rule's (with their dependencies), the assigned ones and the jobs' ones.
    let mut todo: Vec<PackageId> = rules
        .iter()
        .flat_map(|rule| {
            resolve_package_group(
                rule.package_group,
                &deploy.package_groups,
                &deploy.package_group_members,
            )
        })
        .chain(deploy.assignments.values().flatten().map(|a| a.package))
        .chain(jobs.iter().map(|job| job.package))
        .collect();
    while let Some(id) = todo.pop() {
        if deploy.packages.contains_key(&id) {
            continue;
        }
        if let Some(package) = row(
            conn,
            concat!(
                "SELECT ",
                package_columns!(),
                " FROM packages WHERE id = $1"
            ),
            &[&id.0],
            package_row,
        )? {
            todo.extend(package.dependencies.iter().copied());
            deploy.packages.insert(id, package);
        }
    }
    Ok(RuleSnapshot {
        deploy,
        rules,
        assignment_revisions: assignment_revisions(conn, Some(&part.computers))?,
        jobs,
    })
}

/// The computers where rule `rule` has jobs: the distinct computers of its entries in the
/// `jobs_by_rule` index, without reading a job.
pub(crate) fn rule_job_computers(
    conn: &Conn<'_>,
    rule: RuleId,
) -> StoreResult<BTreeSet<ComputerId>> {
    Ok(rows(
        conn,
        "SELECT DISTINCT computer_id FROM jobs WHERE rule_id = $1",
        &[&rule.0],
        |row| Ok(ComputerId(column(row, 0)?)),
    )?
    .into_iter()
    .collect())
}

/// The summary of the jobs of `origin`, without reading a job row. A rule's counts come from
/// an aggregate by state over an index of its jobs' states (`jobs_rule_states`), its instants
/// from an end of an index each; a container's from one aggregate by state over an index
/// holding the state and both instants. (The SQLite store keeps a rule's counts in counters;
/// here they would make large rule evaluations quadratic: see migration 3.)
pub(crate) fn job_summary(conn: &Conn<'_>, origin: Origin) -> StoreResult<JobSummary> {
    match origin {
        Origin::Rule(id) => rule_job_summary(conn, id.0),
        Origin::Container(id) => container_job_summary(conn, id.0),
    }
}

fn rule_job_summary(conn: &Conn<'_>, id: i64) -> StoreResult<JobSummary> {
    let what = |reason: String| corrupt("rule", id, reason);
    let mut summary = JobSummary::default();
    let counts = rows(
        conn,
        "SELECT state, COUNT(*) FROM jobs WHERE rule_id = $1 GROUP BY state",
        &[&id],
        |row| {
            let state: String = get(row, 0, "state").map_err(what)?;
            let count: i64 = get(row, 1, "count").map_err(what)?;
            Ok((
                parse_column::<JobState>("state", &state).map_err(what)?,
                count,
            ))
        },
    )?;
    for (state, count) in counts {
        summary
            .counts
            .insert(state, usize::try_from(count).unwrap_or(0));
    }
    let instant = |sql: &str| -> StoreResult<Option<DateTime<Utc>>> {
        let value: Option<Option<i64>> = row(conn, sql, &[&id], |row| {
            get(row, 0, "instant").map_err(what)
        })?;
        Ok(value.flatten().map(from_time))
    };
    summary.last_finished = instant(
        "SELECT MAX(finished) FROM jobs \
         WHERE rule_id = $1 AND finished IS NOT NULL",
    )?;
    summary.first_execution_started = instant(
        "SELECT MIN(execution_started) FROM jobs \
         WHERE rule_id = $1 AND execution_started IS NOT NULL",
    )?;
    summary.last_started_finished = instant(
        "SELECT finished FROM jobs \
         WHERE rule_id = $1 AND finished IS NOT NULL AND execution_started IS NOT NULL \
         ORDER BY finished DESC LIMIT 1",
    )?;
    Ok(summary)
}

fn container_job_summary(conn: &Conn<'_>, id: i64) -> StoreResult<JobSummary> {
    type Group = (JobState, usize, Option<i64>, Option<i64>, Option<i64>);
    let decode = |row: &Row| -> StoreResult<Group> {
        let what = |reason: String| corrupt("container", id, reason);
        let state: String = get(row, 0, "state").map_err(what)?;
        let count: i64 = get(row, 1, "count").map_err(what)?;
        Ok((
            parse_column("state", &state).map_err(what)?,
            usize::try_from(count).unwrap_or(0),
            get(row, 2, "finished").map_err(what)?,
            get(row, 3, "execution_started").map_err(what)?,
            get(row, 4, "finished").map_err(what)?,
        ))
    };
    let groups = rows(
        conn,
        "SELECT state, COUNT(*), MAX(finished), MIN(execution_started), \
         MAX(CASE WHEN execution_started IS NOT NULL THEN finished END) \
         FROM jobs WHERE container_id = $1 GROUP BY state",
        &[&id],
        decode,
    )?;
    let mut summary = JobSummary::default();
    for (state, count, finished, started, started_finished) in groups {
        *summary.counts.entry(state).or_default() += count;
        summary.last_finished = summary.last_finished.max(finished.map(from_time));
        if let Some(started) = started.map(from_time) {
            summary.first_execution_started = Some(
                summary
                    .first_execution_started
                    .map_or(started, |first| first.min(started)),
            );
        }
        summary.last_started_finished = summary
            .last_started_finished
            .max(started_finished.map(from_time));
    }
    Ok(summary)
}

pub(crate) fn housekeeping_snapshot(
    conn: &Conn<'_>,
    now: DateTime<Utc>,
) -> StoreResult<HousekeepingSnapshot> {
    let snapshots = Snapshots::new(conn);
    // Instants outside the stored range compare as the range's ends.
    let now_nanos = encode::time(now).unwrap_or(if now.timestamp() > 0 {
        i64::MAX
    } else {
        i64::MIN
    });
    // Containers that may need something at `now`: ended (expiry), wake packets due, or without
    // pending jobs (purge). A container that does not decode is left out: housekeeping then
    // leaves it alone, and its getter reports it.
    let candidates = rows(
        conn,
        concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers c WHERE c.schedule_end <= $1 \
               OR (c.wol_wake AND c.wol_sent_at IS NULL AND c.enabled \
                   AND c.schedule_start <= $1) \
               OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.container_id = c.id \
                              AND j.state IN ('waiting', 'downloading', 'executing')) \
             ORDER BY c.id"
        ),
        &[&now_nanos],
        |row| match container_row(row) {
            Ok(container) => Ok(Some(container)),
            Err(StoreError::Corrupt { .. }) => Ok(None),
            Err(error) => Err(error),
        },
    )?;
    let mut snapshot = HousekeepingSnapshot::default();
    let mut computers = BTreeSet::new();
    for container in candidates.into_iter().flatten() {
        let jobs = match rows(
            conn,
            concat!(
                "SELECT ",
                job_columns!(),
                from_jobs!(),
                "WHERE j.container_id = $1 ORDER BY j.id"
            ),
            &[&container.id.0],
            |row| job_row(row, &snapshots),
        ) {
            Ok(jobs) => jobs,
            Err(StoreError::Corrupt { .. }) => continue,
            Err(error) => return Err(error),
        };
        computers.extend(jobs.iter().map(|job| job.computer));
        snapshot.containers.push(ContainerJobs { container, jobs });
    }
    for id in computers {
        if let Some(computer) = row(
            conn,
            concat!(
                "SELECT ",
                computer_columns!(),
                " FROM computers c WHERE c.id = $1"
            ),
            &[&id.0],
            computer_row,
        )? {
            snapshot.computers.insert(id, computer);
        }
    }
    snapshot.oldest_tombstone = row(conn, "SELECT min(deleted_at) FROM tombstones", &[], |row| {
        column::<Option<i64>>(row, 0)
    })?
    .flatten()
    .map(from_time);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_column_count_is_that_of_the_job_columns() {
        assert_eq!(job_columns!().split(',').count(), JOB_COLUMN_COUNT);
    }
}
