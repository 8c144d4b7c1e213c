//! Rows to model values and back, as [`oco_core::store::columns`] encodes them for both SQL
//! stores (the SQLite store keeps the same values); what is here is PostgreSQL's: the column
//! lists the queries select, the postgres row as the core's decoders read it ([`PgRow`]), the
//! parameters of credentials and the job snapshots read once per read.
//!
//! Decoders return `Result<_, String>` with a reason naming the column; the caller wraps it into
//! [`StoreError::Corrupt`](oco_core::store::StoreError::Corrupt) with the row's kind and id
//! ([`corrupt`]).

use std::cell::RefCell;
use std::collections::HashMap;

use oco_core::model::{
    Assignment, Computer, DeliveryPolicy, DeploymentRule, Job, JobContainer, JobSnapshot, Name,
    Package, Schedule,
};
use oco_core::store::columns::{self, SqlRow};
pub(crate) use oco_core::store::columns::{
    assignments_at_revision, compatibility, corrupt, from_revision, from_time, ids,
    job_at_revision, macs, missing_origin, narrow, opt_time, origin, parse_column, parse_ids,
    payload_columns, policy, revision, time, wol_shutdown, TextEnum,
};
use oco_core::store::{AgentCredentials, StoreResult};
use postgres::types::{FromSql, ToSql};
use postgres::Row;

use crate::Conn;

/// A postgres row, as the core's decoders read it.
pub(crate) struct PgRow<'r>(pub(crate) &'r Row);

impl SqlRow for PgRow<'_> {
    fn key(&self, index: usize) -> StoreResult<i64> {
        column(self.0, index)
    }

    fn int(&self, index: usize, column: &str) -> Result<i64, String> {
        get(self.0, index, column)
    }

    fn opt_int(&self, index: usize, column: &str) -> Result<Option<i64>, String> {
        get(self.0, index, column)
    }

    fn flag(&self, index: usize, column: &str) -> Result<bool, String> {
        get(self.0, index, column)
    }

    fn opt_real(&self, index: usize, column: &str) -> Result<Option<f64>, String> {
        get(self.0, index, column)
    }

    fn text(&self, index: usize, column: &str) -> Result<String, String> {
        get(self.0, index, column)
    }

    fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, String> {
        get(self.0, index, column)
    }
}

/// Column `index` (named `column`) of `row`, or why it does not have the expected type.
pub(crate) fn get<'r, T: FromSql<'r>>(
    row: &'r Row,
    index: usize,
    column: &str,
) -> Result<T, String> {
    row.try_get(index).map_err(|e| format!("{column}: {e}"))
}

/// Column `index` of `row`, which the query guarantees has type `T` (an id, a count).
pub(crate) fn column<'r, T: FromSql<'r>>(row: &'r Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(crate::backend)
}

/// The columns of a delivery policy, as selected.
macro_rules! policy_columns {
    () => {
        "priority, sequence_mode, ip_ranges, time_frames, time_zone, post_action_timeout"
    };
}
pub(crate) use policy_columns;

/// The policy in the six columns from `first` on (as [`policy_columns`] selects them).
pub(crate) fn parse_policy(row: &Row, first: usize) -> Result<DeliveryPolicy, String> {
    columns::parse_policy(&PgRow(row), first)
}

/// A computer's credentials from a row of `agent_key, previous_agent_key, server_key,
/// last_hello, last_reply, contact_at, contact_address, agent_version`.
pub(crate) fn credentials(row: &Row) -> Result<AgentCredentials, String> {
    columns::credentials(&PgRow(row))
}

/// The parameters of `UPSERT_CREDENTIALS` after the computer: the columns of [`credentials`].
pub(crate) fn credentials_values(
    credentials: &AgentCredentials,
) -> StoreResult<[Box<dyn ToSql + Sync>; 8]> {
    let CredentialFields(a, b, c, d, e, f, g, h) = CredentialFields::of(credentials)?;
    Ok([
        Box::new(a),
        Box::new(b),
        Box::new(c),
        Box::new(d),
        Box::new(e),
        Box::new(f),
        Box::new(g),
        Box::new(h),
    ])
}

/// The values of [`credentials`]' columns, in their order.
pub(crate) struct CredentialFields(
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl CredentialFields {
    /// Credentials as the columns hold them; `Invalid` for a time the columns cannot hold.
    pub(crate) fn of(credentials: &AgentCredentials) -> StoreResult<CredentialFields> {
        let contact = credentials.last_contact.as_ref();
        Ok(CredentialFields(
            credentials.agent_key.clone(),
            credentials.previous_agent_key.clone(),
            credentials.server_key.clone(),
            credentials.last_hello,
            credentials.last_reply,
            opt_time(contact.map(|c| c.at))?,
            contact.map(|c| c.address.to_string()),
            contact.and_then(|c| c.agent_version.clone()),
        ))
    }
}

/// The columns of [`credentials`] of several computers, one array per column: parameters of a
/// statement that writes them all (`unnest`).
#[derive(Debug, Default)]
pub(crate) struct CredentialColumns(
    Vec<Option<String>>,
    Vec<Option<String>>,
    Vec<Option<String>>,
    Vec<Option<f64>>,
    Vec<Option<f64>>,
    Vec<Option<i64>>,
    Vec<Option<String>>,
    Vec<Option<String>>,
);

impl CredentialColumns {
    /// Appends one computer's credentials.
    pub(crate) fn push(&mut self, fields: CredentialFields) {
        let CredentialFields(a, b, c, d, e, f, g, h) = fields;
        self.0.push(a);
        self.1.push(b);
        self.2.push(c);
        self.3.push(d);
        self.4.push(e);
        self.5.push(f);
        self.6.push(g);
        self.7.push(h);
    }

    /// The eight arrays as parameters (`text[]`, `text[]`, `text[]`, `float8[]`, `float8[]`,
    /// `bigint[]`, `text[]`, `text[]`), in the order of [`credentials`]' columns.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.0, &self.1, &self.2, &self.3, &self.4, &self.5, &self.6, &self.7,
        ]
    }
}

// Rows.

/// The selected columns of a computer (table alias `c`), as [`computer_row`] reads them. Its
/// last-seen time is the later of its own and its credentials' last contact (which a hello
/// writes; see migration 6).
macro_rules! computer_columns {
    () => {
        "c.id, c.hostname, c.os, c.os_version, c.architecture, c.macs, \
         coalesce((SELECT greatest(c.last_seen, seen.contact_at) FROM credentials seen \
         WHERE seen.computer_id = c.id), c.last_seen)"
    };
}
pub(crate) use computer_columns;

/// A computer from the columns of [`computer_columns`].
pub(crate) fn computer_row(row: &Row) -> StoreResult<Computer> {
    columns::computer_row(&PgRow(row))
}

/// The selected columns of a package.
macro_rules! package_columns {
    () => {
        "id, family_id, version, install_command, install_success_codes, install_post_action, \
         uninstall_command, uninstall_success_codes, uninstall_post_action, has_payload, \
         download_for_uninstall, upgrade_behavior, compatible_os, compatible_os_versions, \
         compatible_architectures, dependencies, payload_size, payload_sha256"
    };
}
pub(crate) use package_columns;

/// A package from the columns of [`package_columns`].
pub(crate) fn package_row(row: &Row) -> StoreResult<Package> {
    columns::package_row(&PgRow(row))
}

/// The selected columns of a container.
macro_rules! container_columns {
    () => {
        concat!(
            "id, name, notes, enabled, schedule_start, schedule_end, ",
            $crate::encode::policy_columns!(),
            ", wol_wake, wol_shutdown_after, wol_sent_at, self_service, created_at"
        )
    };
}
pub(crate) use container_columns;

/// A container's schedule from the columns from `first` on.
pub(crate) fn schedule(row: &Row, first: usize) -> Result<Schedule, String> {
    columns::schedule(&PgRow(row), first)
}

/// A container from the columns of [`container_columns`].
pub(crate) fn container_row(row: &Row) -> StoreResult<JobContainer> {
    columns::container_row(&PgRow(row))
}

/// The selected columns of a rule.
macro_rules! rule_columns {
    () => {
        concat!(
            "id, name, notes, enabled, computer_group_id, package_group_id, ",
            $crate::encode::policy_columns!(),
            ", created_at"
        )
    };
}
pub(crate) use rule_columns;

/// A rule from the columns of [`rule_columns`].
pub(crate) fn rule_row(row: &Row) -> StoreResult<DeploymentRule> {
    columns::rule_row(&PgRow(row))
}

/// The selected columns of a job (alias `j`, of `jobs` or `tombstones`); the snapshot is its id,
/// read through [`Snapshots`].
macro_rules! job_columns {
    () => {
        "j.id, j.container_id, j.rule_id, j.computer_id, j.package_id, j.kind, j.snapshot_id, \
         j.sequence, j.state, j.download_progress, j.return_code, j.output, j.message, \
         j.download_started, j.execution_started, j.finished, j.last_report, j.wol_shutdown, \
         j.wol_shutdown_since, j.orphaned, j.attempt, j.revision"
    };
}
pub(crate) use job_columns;

/// The job snapshots one read has decoded, by id: jobs of one package share a stored snapshot,
/// so it is read and parsed once per read rather than once per job (and the jobs are read
/// without a join).
pub(crate) struct Snapshots<'c, 's> {
    conn: &'c Conn<'s>,
    decoded: RefCell<HashMap<i64, Result<JobSnapshot, String>>>,
}

impl<'c, 's> Snapshots<'c, 's> {
    pub(crate) fn new(conn: &'c Conn<'s>) -> Self {
        Snapshots {
            conn,
            decoded: RefCell::new(HashMap::new()),
        }
    }

    /// The stored snapshot `id`, or why it does not decode.
    fn get(&self, id: i64) -> StoreResult<Result<JobSnapshot, String>> {
        if let Some(found) = self.decoded.borrow().get(&id) {
            return Ok(found.clone());
        }
        if let Some(known) = self.conn.snapshot(id) {
            return Ok(Ok(known));
        }
        let rows = self
            .conn
            .query(
                "SELECT command, success_codes, post_action, download, upgrade_behavior \
                 FROM job_snapshots WHERE id = $1",
                &[&id],
            )
            .map_err(crate::backend)?;
        let decoded = match rows.first() {
            None => Err(format!("snapshot_id: snapshot {id} does not exist")),
            Some(row) => {
                columns::job_snapshot_row(&PgRow(row)).map_err(|e| format!("snapshot {id}: {e}"))
            }
        };
        if let Ok(snapshot) = &decoded {
            self.conn.remember_snapshot(id, snapshot);
        }
        self.decoded.borrow_mut().insert(id, decoded.clone());
        Ok(decoded)
    }
}

/// A job from the columns of [`job_columns`], its snapshot from `snapshots`.
pub(crate) fn job_row(row: &Row, snapshots: &Snapshots<'_, '_>) -> StoreResult<Job> {
    let snapshot_id: i64 = column(row, 6)?;
    let snapshot = snapshots.get(snapshot_id)?;
    columns::job_row(&PgRow(row), snapshot)
}

/// An assignment from `computer_id, package_id, installed_at, job_id`.
pub(crate) fn assignment_row(row: &Row) -> StoreResult<Assignment> {
    columns::assignment_row(&PgRow(row))
}

/// A [`Name`] from column `index`.
pub(crate) fn name(row: &Row, index: usize, column: &str) -> Result<Name, String> {
    columns::name(&PgRow(row), index, column)
}
