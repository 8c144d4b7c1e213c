use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Assignment, Computer, ComputerGroup, ComputerGroupId, ComputerId, DeliveryPolicy,
    DeploymentRule, Job, JobContainer, JobId, Origin, Package, PackageGroup, PackageGroupId,
    PackageId, Revision, RuleId, Schedule, SequenceMode,
};

/// Everything the planner needs for one computer's poll, from one consistent state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerSnapshot {
    /// The polling computer.
    pub computer: Computer,
    /// Its pending jobs (Waiting, Downloading, Executing), in any order.
    pub jobs: Vec<Job>,
    /// The origins of those jobs.
    pub origins: BTreeMap<Origin, OriginInfo>,
}

/// What the planner needs to know of an origin (a container or a rule) of a computer's jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginInfo {
    /// A disabled origin's jobs are held.
    pub enabled: bool,
    /// For the delivery order.
    pub created_at: DateTime<Utc>,
    /// Containers' start and end; `None` for rules.
    pub schedule: Option<Schedule>,
    /// The delivery policy, or why the stored one could not be read (then its jobs are held with
    /// reason `Corrupt`).
    pub policy: Result<DeliveryPolicy, String>,
    /// The polling computer's Failed jobs in this origin (for sequence mode).
    pub failed: Vec<FailedJob>,
}

/// A Failed job, as sequence mode needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedJob {
    /// The job.
    pub id: JobId,
    /// Its sequence in the origin.
    pub sequence: u32,
}

/// What handling one agent report needs, from one consistent state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSnapshot {
    /// The reported job, or its tombstone if it was deleted (by rule evaluation, or with its
    /// container, rule or computer).
    pub job: Job,
    /// Whether `job` is a tombstone of a deleted job.
    pub deleted: bool,
    /// The sequence mode of the job's origin (for the -8888 cascade). For a tombstone whose
    /// origin no longer exists, [`SequenceMode::IgnoreFailed`]: a report on a tombstone never
    /// cascades, so the mode does not matter there.
    pub sequence_mode: SequenceMode,
    /// The computer's other jobs of the same origin (none once the origin is gone).
    pub origin_jobs: Vec<Job>,
    /// The computer's assignments of packages in the job's package family.
    pub family_assignments: Vec<Assignment>,
    /// The computer's assignment revision those were read at.
    pub assignment_revision: Revision,
}

/// What deploying needs: the computers, packages and groups involved, with assignments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploySnapshot {
    /// Computers by id (at least every target and group member).
    pub computers: BTreeMap<ComputerId, Computer>,
    /// Computer groups (at least the targets and their subgroups).
    pub computer_groups: Vec<ComputerGroup>,
    /// Direct members of each computer group.
    pub computer_group_members: BTreeMap<ComputerGroupId, Vec<ComputerId>>,
    /// Packages by id: at least every target, group member and their dependencies
    /// (transitively), and the packages of the target computers' assignments (for explicit
    /// uninstall of other versions).
    pub packages: BTreeMap<PackageId, Package>,
    /// Package groups (at least the targets and their subgroups).
    pub package_groups: Vec<PackageGroup>,
    /// Direct members of each package group, in order.
    pub package_group_members: BTreeMap<PackageGroupId, Vec<PackageId>>,
    /// Each computer's assignments, oldest first.
    pub assignments: BTreeMap<ComputerId, Vec<Assignment>>,
}

/// What housekeeping needs. A store may leave out containers that cannot need anything (not
/// ended, no Wake-on-LAN due, pending jobs left).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HousekeepingSnapshot {
    /// Containers with all their jobs.
    pub containers: Vec<ContainerJobs>,
    /// The computers of those jobs, for last-seen times and MAC addresses.
    pub computers: BTreeMap<ComputerId, Computer>,
    /// When the oldest tombstone of a deleted job was deleted, if there is one.
    #[serde(default)]
    pub oldest_tombstone: Option<DateTime<Utc>>,
}

/// A container with all its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerJobs {
    /// The container.
    pub container: JobContainer,
    /// All its jobs.
    pub jobs: Vec<Job>,
}

/// Server-wide secrets the server keeps (see the server docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    /// A hash of the admin API token (never the token itself).
    pub admin_token_hash: Option<String>,
}

/// What the server keeps per computer about its agent: keys, the replay guard, the last reply
/// timestamp and the last contact (see the server docs).
///
/// # Examples
///
/// An administrator resets a computer whose agent is locked out; its next hello, signed with the
/// global key or the key it had, is a first contact again:
///
/// ```
/// use oco_core::store::AgentCredentials;
///
/// let locked_out = AgentCredentials {
///     agent_key: Some("own-key".into()),
///     server_key: Some("server-key".into()),
///     last_hello: Some(4_102_444_800.0),
///     last_reply: Some(1_764_849_600.000_001),
///     ..AgentCredentials::default()
/// };
/// let reset = locked_out.reset_to_first_contact();
/// assert_eq!(reset.agent_key, None);
/// assert_eq!(reset.previous_agent_key.as_deref(), Some("own-key"));
/// assert_eq!(reset.last_hello, None);
/// // The agent keeps its server key and its last server timestamp, so both stay.
/// assert_eq!(reset.server_key, locked_out.server_key);
/// assert_eq!(reset.last_reply, locked_out.last_reply);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentCredentials {
    /// The computer's own agent key; `None` until the first hello (the global key applies).
    pub agent_key: Option<String>,
    /// The key before the last change, accepted until the new one is used. Without an own key
    /// (after [`reset_to_first_contact`](Self::reset_to_first_contact)) it is accepted as a
    /// first-contact key. A key shared by many computers (the server's global key) may be kept
    /// here as a reference to it rather than the key itself; the server decides.
    pub previous_agent_key: Option<String>,
    /// The key the server signs responses with.
    pub server_key: Option<String>,
    /// The agent's timestamp of its last accepted hello (the replay guard).
    pub last_hello: Option<f64>,
    /// At least every `result.timestamp` sent to this computer's agent (the server reserves a
    /// little ahead), stored before a reply it covers is sent: every later reply to it is
    /// greater, whichever server process sends it.
    pub last_reply: Option<f64>,
    /// The agent's last accepted hello: when, from where, with which agent version.
    pub last_contact: Option<AgentContact>,
}

impl AgentCredentials {
    /// The credentials of a computer whose next hello is a first contact again: no own agent key
    /// and no replay guard. The key it had becomes the previous key, which a computer without
    /// an own key may sign with, as with the global key; the server key, the last reply
    /// timestamp and the last contact stay, because the agent keeps its server key and its last
    /// server timestamp.
    #[must_use]
    pub fn reset_to_first_contact(&self) -> AgentCredentials {
        AgentCredentials {
            agent_key: None,
            previous_agent_key: self
                .agent_key
                .clone()
                .or_else(|| self.previous_agent_key.clone()),
            server_key: self.server_key.clone(),
            last_hello: None,
            last_reply: self.last_reply,
            last_contact: self.last_contact.clone(),
        }
    }
}

/// What an agent request reads first of the computer it names ([`Store::agent_lookup`]): enough
/// to check the request, and whether a hello has anything to plan at all.
///
/// [`Store::agent_lookup`]: crate::store::Store::agent_lookup
#[derive(Debug, Clone, PartialEq)]
pub struct AgentLookup {
    /// The computer.
    pub computer: ComputerId,
    /// Its agent credentials.
    pub credentials: AgentCredentials,
    /// Whether it has pending jobs (Waiting, Downloading or Executing). Without any, its plan
    /// hands out and holds nothing, whatever the time and the address.
    pub pending_jobs: bool,
}

/// An agent's last accepted hello, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentContact {
    /// When the server accepted it.
    pub at: DateTime<Utc>,
    /// The agent's address (the TCP peer, or what a trusted proxy forwarded).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "192.0.2.7"))]
    pub address: std::net::IpAddr,
    /// The agent's version, as it reported it (`None` if it did not).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub agent_version: Option<String>,
}

/// What rule evaluation needs: groups, computers, packages and assignments (as for deploy), every
/// rule, each computer's assignment revision, and every job of every rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleSnapshot {
    /// Computers, groups, packages and assignments.
    pub deploy: DeploySnapshot,
    /// Every rule, enabled or not.
    pub rules: Vec<DeploymentRule>,
    /// Each computer's assignment revision (absent: 0).
    pub assignment_revisions: BTreeMap<ComputerId, Revision>,
    /// Every job of every rule.
    pub jobs: Vec<Job>,
}

/// Which part of the rule world [`Store::rule_snapshot_part`](super::Store::rule_snapshot_part)
/// reads: what a change of groups, packages or rules concerns, so that re-evaluating it reads
/// neither the computers nor the jobs it does not touch.
///
/// # Examples
///
/// The part a rule edit reads: the computers of the rule's groups before and after the edit,
/// and every job of the rule (a full evaluation retires its jobs wherever they are).
///
/// ```
/// use oco_core::model::{ComputerId, RuleId};
/// use oco_core::store::RulePart;
///
/// let part = RulePart::computers([ComputerId(1), ComputerId(2)]).with_rule_jobs([RuleId(7)]);
/// assert!(part.jobs);
/// assert!(part.rule_jobs.contains(&RuleId(7)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulePart {
    /// The computers read, with their group memberships, assignments, assignment revisions and
    /// (if [`jobs`](Self::jobs)) every rule's jobs on them.
    pub computers: BTreeSet<ComputerId>,
    /// Rules whose every job is read as well, on whatever computer it is.
    pub rule_jobs: BTreeSet<RuleId>,
    /// Whether jobs are read at all (a conflict check needs none).
    pub jobs: bool,
}

impl RulePart {
    /// The part of `computers`, with their jobs.
    pub fn computers(computers: impl IntoIterator<Item = ComputerId>) -> Self {
        RulePart {
            computers: computers.into_iter().collect(),
            rule_jobs: BTreeSet::new(),
            jobs: true,
        }
    }

    /// The same part, with every job of `rules` too.
    #[must_use]
    pub fn with_rule_jobs(mut self, rules: impl IntoIterator<Item = RuleId>) -> Self {
        self.rule_jobs.extend(rules);
        self
    }

    /// The same part without any job.
    #[must_use]
    pub fn without_jobs(mut self) -> Self {
        self.jobs = false;
        self.rule_jobs.clear();
        self
    }

    /// Whether `job` is in the part: a rule's job on one of its computers, or of one of its
    /// rules.
    pub fn has_job(&self, job: &Job) -> bool {
        let Origin::Rule(rule) = job.origin else {
            return false;
        };
        self.jobs && (self.computers.contains(&job.computer) || self.rule_jobs.contains(&rule))
    }
}
