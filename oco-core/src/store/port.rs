use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AdminToken, AgentCredentials, AgentLookup, Applied, ChangeSet, DeploySnapshot,
    HousekeepingSnapshot, NewAdminToken, PlannerSnapshot, ReportSnapshot, RulePart, RuleSnapshot,
    ServerState, StoreError,
};
use crate::housekeeping::JobSummary;
use crate::model::{
    Assignment, Compatibility, Computer, ComputerGroup, ComputerGroupId, ComputerId, ContainerId,
    DeliveryPolicy, DeploymentRule, FamilyId, Job, JobContainer, JobId, JobState, Name, Origin,
    Package, PackageFamily, PackageGroup, PackageGroupId, PackageId, Payload, Procedure, Revision,
    RuleId, Sha256Digest, TokenId, UpgradeBehavior,
};

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where a listing starts and how long it is. Lists come in a stable order (by id unless a
/// method says otherwise); `after` is the last id of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Only items whose id is greater than this (`None`: from the start).
    pub after: Option<i64>,
    /// At most this many items.
    pub limit: usize,
}

impl Page {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Page { after: None, limit }
    }
}

/// Which jobs a listing returns; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// Jobs of this origin.
    pub origin: Option<Origin>,
    /// Jobs on this computer.
    pub computer: Option<ComputerId>,
    /// Jobs of this package.
    pub package: Option<PackageId>,
    /// Jobs in this state.
    pub state: Option<JobState>,
}

/// A job in a listing: its output cut to a length the listing chose
/// ([`Store::list_jobs_abridged`]), and whether anything was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListedJob {
    /// The job; its `output` is at most the listing's number of characters.
    #[serde(flatten)]
    pub job: Job,
    /// Whether the output was cut; the whole is [`Store::job`]'s.
    pub output_truncated: bool,
}

impl ListedJob {
    /// `job` with its output cut to its first `output_chars` characters (not bytes).
    pub fn abridge(mut job: Job, output_chars: usize) -> ListedJob {
        let cut = job
            .output
            .char_indices()
            .nth(output_chars)
            .map(|(at, _)| at);
        if let Some(at) = cut {
            job.output.truncate(at);
        }
        ListedJob {
            job,
            output_truncated: cut.is_some(),
        }
    }
}

/// A computer to create; the store assigns the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewComputer {
    /// Unique, compared case-insensitively.
    pub hostname: Name,
    /// Operating system.
    pub os: String,
    /// Operating system version.
    pub os_version: String,
    /// Architecture.
    pub architecture: String,
    /// MAC addresses.
    pub macs: Vec<crate::model::MacAddress>,
}

impl NewComputer {
    /// A computer named `hostname` with no os, version, architecture or MAC addresses known yet
    /// (its agent's hello does not report them; an administrator or an import does); the
    /// `with_*` methods set them.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, NewComputer, Store};
    ///
    /// let store = MemoryStore::new();
    /// let pc = store.create_computer(
    ///     NewComputer::new(Name::hostname("hostname", "pc-042")?)
    ///         .with_os("Windows", "11")
    ///         .with_architecture("x64")
    ///         .with_macs(vec!["aa:bb:cc:dd:ee:ff".parse()?]),
    /// )?;
    /// assert_eq!(store.computer(pc.id)?.os, "Windows");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(hostname: Name) -> Self {
        NewComputer {
            hostname,
            os: String::new(),
            os_version: String::new(),
            architecture: String::new(),
            macs: Vec::new(),
        }
    }

    /// The computer with this operating system and version.
    #[must_use]
    pub fn with_os(self, os: impl Into<String>, os_version: impl Into<String>) -> Self {
        NewComputer {
            os: os.into(),
            os_version: os_version.into(),
            ..self
        }
    }

    /// The computer with this architecture.
    #[must_use]
    pub fn with_architecture(self, architecture: impl Into<String>) -> Self {
        NewComputer {
            architecture: architecture.into(),
            ..self
        }
    }

    /// The computer with these MAC addresses (for Wake-on-LAN).
    #[must_use]
    pub fn with_macs(self, macs: Vec<crate::model::MacAddress>) -> Self {
        NewComputer { macs, ..self }
    }
}

/// A package to create: everything but the id, which the store assigns. [`NewPackage::new`]
/// gives the common defaults, and the `with_*` methods change them.
///
/// # Examples
///
/// ```
/// use oco_core::model::{Name, Procedure, UpgradeBehavior};
/// use oco_core::store::{MemoryStore, NewPackage, Store};
///
/// let store = MemoryStore::new();
/// let family = store.create_family(Name::new("name", "7-Zip")?)?;
/// let package = store.create_package(
///     NewPackage::new(family.id, Name::new("version", "24.08")?, Procedure::new("msiexec /i 7z.msi /qn"))
///         .with_uninstall(Procedure::new("msiexec /x 7z.msi /qn"))
///         .with_upgrade_behavior(UpgradeBehavior::ImplicitRemove),
/// )?;
/// assert_eq!(store.package(package.id)?, package);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPackage {
    /// The family; (family, version) is unique.
    pub family: FamilyId,
    /// The version, unique within the family.
    pub version: Name,
    /// How to install it.
    pub install: Procedure,
    /// How to uninstall it.
    pub uninstall: Procedure,
    /// The payload archive stored for it, if any.
    pub payload: Option<Payload>,
    /// Whether uninstall jobs download the payload too.
    pub download_for_uninstall: bool,
    /// What installing it means for other installed versions of the family.
    pub upgrade_behavior: UpgradeBehavior,
    /// Which computers it may be installed on.
    pub compatibility: Compatibility,
    /// Packages that must be installed first, in order.
    pub dependencies: Vec<PackageId>,
}

impl NewPackage {
    /// Version `version` of `family`, installed with `install`; no uninstall command (an empty
    /// command that any return code completes), no payload, other versions kept, compatible with
    /// every computer, no dependencies.
    pub fn new(family: FamilyId, version: Name, install: Procedure) -> Self {
        NewPackage {
            family,
            version,
            install,
            uninstall: Procedure::default(),
            payload: None,
            download_for_uninstall: false,
            upgrade_behavior: UpgradeBehavior::default(),
            compatibility: Compatibility::default(),
            dependencies: Vec::new(),
        }
    }

    /// The package uninstalled with `uninstall`.
    #[must_use]
    pub fn with_uninstall(self, uninstall: Procedure) -> Self {
        NewPackage { uninstall, ..self }
    }

    /// The package with this upgrade behavior.
    #[must_use]
    pub fn with_upgrade_behavior(self, upgrade_behavior: UpgradeBehavior) -> Self {
        NewPackage {
            upgrade_behavior,
            ..self
        }
    }

    /// The package with these compatibility lists.
    #[must_use]
    pub fn with_compatibility(self, compatibility: Compatibility) -> Self {
        NewPackage {
            compatibility,
            ..self
        }
    }

    /// The package depending on these packages, in order.
    #[must_use]
    pub fn with_dependencies(self, dependencies: Vec<PackageId>) -> Self {
        NewPackage {
            dependencies,
            ..self
        }
    }

    /// The package with this payload recorded (its archive is stored elsewhere).
    #[must_use]
    pub fn with_payload(self, payload: Payload) -> Self {
        NewPackage {
            payload: Some(payload),
            ..self
        }
    }

    /// The package as stored under `id`: what a [`Store`] implementation returns.
    pub fn with_id(self, id: PackageId) -> Package {
        Package {
            id,
            family: self.family,
            version: self.version,
            install: self.install,
            uninstall: self.uninstall,
            payload: self.payload,
            download_for_uninstall: self.download_for_uninstall,
            upgrade_behavior: self.upgrade_behavior,
            compatibility: self.compatibility,
            dependencies: self.dependencies,
        }
    }
}

impl From<Package> for NewPackage {
    /// The package's fields without its id (to create a copy).
    fn from(package: Package) -> Self {
        NewPackage {
            family: package.family,
            version: package.version,
            install: package.install,
            uninstall: package.uninstall,
            payload: package.payload,
            download_for_uninstall: package.download_for_uninstall,
            upgrade_behavior: package.upgrade_behavior,
            compatibility: package.compatibility,
            dependencies: package.dependencies,
        }
    }
}

/// A deployment rule to create: everything but the id, which the store assigns.
///
/// # Examples
///
/// ```
/// use oco_core::chrono::{TimeZone, Utc};
/// use oco_core::chrono_tz::Tz;
/// use oco_core::model::{DeliveryPolicy, Name};
/// use oco_core::store::{MemoryStore, NewRule, Store};
///
/// let store = MemoryStore::new();
/// let computers = store.create_computer_group(Name::new("name", "office")?, None)?;
/// let packages = store.create_package_group(Name::new("name", "base")?, None)?;
/// let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
/// let rule = store.create_rule(
///     NewRule::new(Name::new("name", "office base")?, computers.id, packages.id, now)
///         .with_policy(DeliveryPolicy::new(Tz::UTC).with_time_frames("MON-FRI 18:00-06:00".parse()?)),
/// )?;
/// assert!(rule.enabled);
/// assert_eq!(store.rule(rule.id)?, rule);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRule {
    /// Not blank.
    pub name: Name,
    /// Free text.
    pub notes: String,
    /// A disabled rule's jobs are held and it claims nothing.
    pub enabled: bool,
    /// Whose computers.
    pub computer_group: ComputerGroupId,
    /// Which packages, in order.
    pub package_group: PackageGroupId,
    /// How its jobs are delivered.
    pub policy: DeliveryPolicy,
    /// When it is created.
    pub created_at: DateTime<Utc>,
}

impl NewRule {
    /// An enabled rule named `name`: the members of `computer_group` should have the packages of
    /// `package_group`; created at `created_at`, with no notes and a new policy in UTC.
    pub fn new(
        name: Name,
        computer_group: ComputerGroupId,
        package_group: PackageGroupId,
        created_at: DateTime<Utc>,
    ) -> Self {
        NewRule {
            name,
            notes: String::new(),
            enabled: true,
            computer_group,
            package_group,
            policy: DeliveryPolicy::new(chrono_tz::Tz::UTC),
            created_at,
        }
    }

    /// The rule with this policy.
    #[must_use]
    pub fn with_policy(self, policy: DeliveryPolicy) -> Self {
        NewRule { policy, ..self }
    }

    /// The rule with these notes.
    #[must_use]
    pub fn with_notes(self, notes: impl Into<String>) -> Self {
        NewRule {
            notes: notes.into(),
            ..self
        }
    }

    /// The rule created disabled.
    #[must_use]
    pub fn disabled(self) -> Self {
        NewRule {
            enabled: false,
            ..self
        }
    }

    /// The rule as stored under `id`: what a [`Store`] implementation returns.
    pub fn with_id(self, id: RuleId) -> DeploymentRule {
        DeploymentRule {
            id,
            name: self.name,
            notes: self.notes,
            enabled: self.enabled,
            computer_group: self.computer_group,
            package_group: self.package_group,
            policy: self.policy,
            created_at: self.created_at,
        }
    }
}

impl From<DeploymentRule> for NewRule {
    /// The rule's fields without its id.
    fn from(rule: DeploymentRule) -> Self {
        NewRule {
            name: rule.name,
            notes: rule.notes,
            enabled: rule.enabled,
            computer_group: rule.computer_group,
            package_group: rule.package_group,
            policy: rule.policy,
            created_at: rule.created_at,
        }
    }
}

/// The storage port. Synchronous, object-safe, `Send + Sync`; methods take `&self` and
/// implementations synchronise inside.
///
/// Reads return values from one consistent state. Writes of jobs and assignments go through
/// [`Store::apply`] as [`ChangeSet`]s; the plain setters below are for administrative data. Every
/// method that names a missing id returns [`StoreError::NotFound`].
///
/// References and smart pointers to a store (`&S`, `Box<S>`, `Arc<S>`, `S` unsized too) are
/// stores that call the one they point to, so code generic over `S: Store` takes any of them.
/// An adapter checks itself with the conformance suite (`store::testkit::run_conformance`,
/// feature `testkit`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// use oco_core::model::Name;
/// use oco_core::store::{MemoryStore, NewComputer, Page, Store};
///
/// fn inventory<S: Store>(store: S) -> Result<usize, Box<dyn std::error::Error>> {
///     Ok(store.list_computers(Page::first(100))?.len())
/// }
///
/// let store = Arc::new(MemoryStore::new());
/// store.create_computer(NewComputer::new(Name::hostname("hostname", "pc-042")?))?;
/// assert_eq!(inventory(&*store)?, 1);
/// assert_eq!(inventory(Arc::clone(&store))?, 1);
/// let shared: Box<dyn Store> = Box::new(MemoryStore::new());
/// assert_eq!(inventory(shared)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Store: Send + Sync {
    // Computers.

    /// Creates a computer. [`StoreError::Duplicate`] if the hostname is taken (any letter case).
    fn create_computer(&self, computer: NewComputer) -> StoreResult<Computer>;
    /// Replaces a computer's fields. [`StoreError::Duplicate`] if the new hostname is taken.
    fn update_computer(&self, computer: &Computer) -> StoreResult<()>;
    /// Deletes a computer with its jobs, assignments, group memberships and credentials, at
    /// `at`.
    ///
    /// Each job leaves a tombstone dated `at` (as [`Change::DeleteJob`](super::Change::DeleteJob)
    /// does), and the computer's earlier tombstones are kept: nothing is forgotten before
    /// housekeeping purges it by age. Rules being deleted whose last job this was are removed.
    ///
    /// Returns the ids of the jobs that were pending (Waiting, Downloading or Executing), in id
    /// order: jobs an agent may have been handed and not finished, whose outcome can no longer
    /// be recorded, since there is no computer to record it on (and its agent can no longer
    /// authenticate).
    fn delete_computer(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<Vec<JobId>>;
    /// One computer.
    fn computer(&self, id: ComputerId) -> StoreResult<Computer>;
    /// The computer with this hostname (compared case-insensitively), if any.
    fn computer_by_hostname(&self, hostname: &str) -> StoreResult<Option<Computer>>;
    /// Computers by id.
    fn list_computers(&self, page: Page) -> StoreResult<Vec<Computer>>;
    /// Records that the computer's agent was seen at `at`. The computer's
    /// [`last_seen`](crate::model::Computer::last_seen) is then the later of `at` and its
    /// credentials' last contact.
    fn set_last_seen(&self, id: ComputerId, at: DateTime<Utc>) -> StoreResult<()>;
    /// The computer's agent credentials (all `None` before the first hello).
    fn credentials(&self, id: ComputerId) -> StoreResult<AgentCredentials>;
    /// Replaces the computer's agent credentials.
    fn set_credentials(&self, id: ComputerId, credentials: &AgentCredentials) -> StoreResult<()>;
    /// The server-wide state (all `None` in a new store).
    fn server_state(&self) -> StoreResult<ServerState>;
    /// Replaces the server-wide state.
    fn set_server_state(&self, state: &ServerState) -> StoreResult<()>;

    // Admin API tokens.

    /// Stores an admin API token. [`StoreError::Duplicate`] if its name or its digest is taken.
    fn create_admin_token(&self, token: NewAdminToken) -> StoreResult<AdminToken>;
    /// Admin API tokens by id.
    fn list_admin_tokens(&self, page: Page) -> StoreResult<Vec<AdminToken>>;
    /// The admin API token whose secret has this digest, if any.
    fn admin_token_by_digest(&self, digest: &Sha256Digest) -> StoreResult<Option<AdminToken>>;
    /// Deletes (revokes) an admin API token. [`StoreError::Invalid`] if it is the last
    /// full-access token: at least one stays, checked in the deleting write, so that revocations
    /// at once cannot remove the last two.
    fn delete_admin_token(&self, id: TokenId) -> StoreResult<()>;

    // Packages.

    /// Creates a package family. [`StoreError::Duplicate`] if the name is taken.
    fn create_family(&self, name: Name) -> StoreResult<PackageFamily>;
    /// One package family.
    fn family(&self, id: FamilyId) -> StoreResult<PackageFamily>;
    /// Package families by id.
    fn list_families(&self, page: Page) -> StoreResult<Vec<PackageFamily>>;
    /// Creates a package and returns it with its id. [`StoreError::Duplicate`] if the family has
    /// the version; [`StoreError::Invalid`] for an unknown family or dependency.
    fn create_package(&self, package: NewPackage) -> StoreResult<Package>;
    /// Replaces a package's fields (jobs keep their snapshots).
    fn update_package(&self, package: &Package) -> StoreResult<()>;
    /// One package.
    fn package(&self, id: PackageId) -> StoreResult<Package>;
    /// Packages by id.
    fn list_packages(&self, page: Page) -> StoreResult<Vec<Package>>;

    // Groups.

    /// Creates a computer group. [`StoreError::Invalid`] for an unknown parent.
    fn create_computer_group(
        &self,
        name: Name,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<ComputerGroup>;
    /// Moves a computer group under another parent. [`StoreError::Invalid`] for a cycle.
    fn set_computer_group_parent(
        &self,
        id: ComputerGroupId,
        parent: Option<ComputerGroupId>,
    ) -> StoreResult<()>;
    /// Replaces a computer group's direct members.
    fn set_computer_group_members(
        &self,
        id: ComputerGroupId,
        members: &[ComputerId],
    ) -> StoreResult<()>;
    /// Every computer group with its direct members (ordered by id).
    fn computer_groups(&self) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>>;
    /// Creates a package group. [`StoreError::Invalid`] for an unknown parent.
    fn create_package_group(
        &self,
        name: Name,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<PackageGroup>;
    /// Moves a package group under another parent. [`StoreError::Invalid`] for a cycle.
    fn set_package_group_parent(
        &self,
        id: PackageGroupId,
        parent: Option<PackageGroupId>,
    ) -> StoreResult<()>;
    /// Replaces a package group's direct members, in order.
    fn set_package_group_members(
        &self,
        id: PackageGroupId,
        members: &[PackageId],
    ) -> StoreResult<()>;
    /// Every package group with its direct members in order.
    fn package_groups(&self) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>>;

    // Assignments, containers, rules, jobs.

    /// A computer's assignments, oldest first, with its assignment revision.
    fn assignments(&self, computer: ComputerId) -> StoreResult<(Vec<Assignment>, Revision)>;
    /// One container.
    fn container(&self, id: ContainerId) -> StoreResult<JobContainer>;
    /// Containers by id.
    fn list_containers(&self, page: Page) -> StoreResult<Vec<JobContainer>>;
    /// Creates a deployment rule and returns it with its id. [`StoreError::Invalid`] for unknown
    /// groups.
    fn create_rule(&self, rule: NewRule) -> StoreResult<DeploymentRule>;
    /// Replaces a rule's fields.
    fn update_rule(&self, rule: &DeploymentRule) -> StoreResult<()>;
    /// One rule.
    fn rule(&self, id: RuleId) -> StoreResult<DeploymentRule>;
    /// Rules by id.
    fn list_rules(&self, page: Page) -> StoreResult<Vec<DeploymentRule>>;
    /// One job.
    fn job(&self, id: JobId) -> StoreResult<Job>;
    /// Jobs matching `filter`, by id.
    fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>>;
    /// Jobs matching `filter`, by id, as [`Store::list_jobs`], each job's output cut to its first
    /// `output_chars` characters: a page of a listing stays small whatever the jobs' outputs.
    /// The default cuts what [`Store::list_jobs`] read; stores override it to read no more
    /// than they keep.
    fn list_jobs_abridged(
        &self,
        filter: &JobFilter,
        page: Page,
        output_chars: usize,
    ) -> StoreResult<Vec<ListedJob>> {
        Ok(self
            .list_jobs(filter, page)?
            .into_iter()
            .map(|job| ListedJob::abridge(job, output_chars))
            .collect())
    }

    // Snapshots for the core.

    /// What the planner needs for one computer's poll.
    fn planner_snapshot(&self, computer: ComputerId) -> StoreResult<PlannerSnapshot>;
    /// What handling a report on `job` needs (a tombstone if the job was deleted).
    fn report_snapshot(&self, job: JobId) -> StoreResult<ReportSnapshot>;
    /// What an agent's hello reads, in one go: the computer named `hostname` (as
    /// [`computer_by_hostname`](Store::computer_by_hostname)), its
    /// [`credentials`](Store::credentials) and its
    /// [`planner_snapshot`](Store::planner_snapshot); `None` if no computer has the hostname.
    /// Equal to the three calls; a store may read them in one transaction.
    fn hello_snapshot(
        &self,
        hostname: &str,
    ) -> StoreResult<Option<(Computer, AgentCredentials, PlannerSnapshot)>> {
        let Some(computer) = self.computer_by_hostname(hostname)? else {
            return Ok(None);
        };
        let credentials = self.credentials(computer.id)?;
        let snapshot = self.planner_snapshot(computer.id)?;
        Ok(Some((computer, credentials, snapshot)))
    }
    /// What an agent request reads first: the computer named `hostname` (as
    /// [`computer_by_hostname`](Store::computer_by_hostname)), its
    /// [`credentials`](Store::credentials), and whether its
    /// [`planner_snapshot`](Store::planner_snapshot) holds a pending job; `None` if no computer
    /// has the hostname. Equal to those calls; a store answers it with one small read (the
    /// provided implementation reads the whole planner snapshot).
    fn agent_lookup(&self, hostname: &str) -> StoreResult<Option<AgentLookup>> {
        let Some(computer) = self.computer_by_hostname(hostname)? else {
            return Ok(None);
        };
        let credentials = self.credentials(computer.id)?;
        let snapshot = self.planner_snapshot(computer.id)?;
        Ok(Some(AgentLookup {
            computer: computer.id,
            credentials,
            pending_jobs: snapshot.jobs.iter().any(|job| job.state.is_pending()),
        }))
    }
    /// What deploying needs.
    fn deploy_snapshot(&self) -> StoreResult<DeploySnapshot>;
    /// What rule evaluation needs.
    fn rule_snapshot(&self) -> StoreResult<RuleSnapshot>;
    /// The rule snapshot restricted to `computers`: every rule (as [`Store::rule_snapshot`]),
    /// every group with its direct members filtered to those computers (package groups
    /// complete), those computers, the packages of every rule's package group (with their
    /// dependencies) and of those computers' assignments, those computers' assignments and
    /// assignment revisions, and the rules' jobs on those computers. Evaluating any rule with
    /// [`Scope::computers(computers)`](crate::rules::Scope::computers) on
    /// [`RuleWorld::from_snapshot`](crate::rules::RuleWorld::from_snapshot) of it gives the same
    /// diff as on the full snapshot.
    ///
    /// The provided implementation filters [`Store::rule_snapshot`] (correct, but it reads
    /// everything); a store with indexes overrides it, so that re-evaluating the rules of one
    /// computer that joined a group reads only what concerns that computer. Unknown computers
    /// are left out.
    fn rule_snapshot_for(&self, computers: &[ComputerId]) -> StoreResult<RuleSnapshot> {
        self.rule_snapshot_part(&RulePart::computers(computers.iter().copied()))
    }
    /// The rule snapshot restricted to `part`: every rule (as [`Store::rule_snapshot`]), every
    /// group with its direct members filtered to `part.computers` (package groups complete),
    /// those computers, their assignments and assignment revisions, the packages of every rule's
    /// package group (with their dependencies, transitively), of those assignments and of the
    /// jobs read; and, if `part.jobs`, the rules' jobs on those computers and every job of the
    /// rules in `part.rule_jobs`.
    ///
    /// With [`RulePart::computers`], this is [`Store::rule_snapshot_for`]. Evaluating a rule of
    /// `part.rule_jobs` whose every member is in `part.computers` in full, or any rule for a
    /// scope of computers of `part.computers`, on
    /// [`RuleWorld::from_snapshot`](crate::rules::RuleWorld::from_snapshot) of it gives the same
    /// diff as on the full snapshot. Unknown computers and rules are left out.
    ///
    /// The provided implementation filters [`Store::rule_snapshot`] (correct, but it reads
    /// everything); a store with indexes overrides it, so that what a change reads grows with
    /// the computers and rules it touches, not with the database.
    fn rule_snapshot_part(&self, part: &RulePart) -> StoreResult<RuleSnapshot> {
        Ok(restrict_rule_snapshot(self.rule_snapshot()?, part))
    }
    /// The computers where rule `rule` has jobs, in any state (none for a rule without jobs or
    /// unknown). With the members of the rule's computer group, these are every computer a
    /// full evaluation of the rule can change, so that it can proceed a few computers at a time
    /// instead of reading every job of the rule at once.
    ///
    /// The provided implementation reads the rule's jobs ([`Store::rule_snapshot_part`]); a
    /// store with an index by rule overrides it.
    fn rule_job_computers(&self, rule: RuleId) -> StoreResult<BTreeSet<ComputerId>> {
        let part = RulePart::computers([]).with_rule_jobs([rule]);
        Ok(self
            .rule_snapshot_part(&part)?
            .jobs
            .iter()
            .filter(|job| job.origin == Origin::Rule(rule))
            .map(|job| job.computer)
            .collect())
    }
    /// The summary of the jobs of `origin` (a container's or a rule's) that
    /// [`statistics_of`](crate::housekeeping::statistics_of) needs: counts by state and three
    /// instants, as [`JobSummary::of`] computes them from the jobs. Empty for an origin without
    /// jobs (whether or not it exists).
    ///
    /// The provided implementation pages through [`Store::list_jobs`]; a store overrides it with
    /// an aggregate query.
    fn job_summary(&self, origin: Origin) -> StoreResult<JobSummary> {
        let filter = JobFilter {
            origin: Some(origin),
            ..JobFilter::default()
        };
        let mut summary = JobSummary::default();
        let mut page = Page::first(1000);
        loop {
            let jobs = self.list_jobs(&filter, page)?;
            for job in &jobs {
                summary.add(job);
            }
            match jobs.last() {
                Some(last) if jobs.len() == page.limit => page.after = Some(last.id.0),
                _ => return Ok(summary),
            }
        }
    }
    /// Deletes a rule: at once if it has no jobs; otherwise it leaves [`Store::rule_snapshot`] and
    /// [`Store::list_rules`] now (so rule evaluation retires its jobs instead of recreating them)
    /// and is removed with its last job (running ones go at their final report). [`Store::rule`]
    /// and the planner still see it until then.
    fn delete_rule(&self, id: RuleId) -> StoreResult<()>;
    /// What housekeeping needs at `now`: at least every container that may need something then
    /// (ended at `now`, wake packets due, or no pending jobs), with all its jobs; a store may
    /// leave out the others, so that a run does not read the jobs of containers still running.
    fn housekeeping_snapshot(&self, now: DateTime<Utc>) -> StoreResult<HousekeepingSnapshot>;

    // Writes.

    /// Applies a change set atomically: every change or none. [`StoreError::Conflict`] if a
    /// precondition failed.
    fn apply(&self, changes: &ChangeSet) -> StoreResult<Applied>;
    /// Applies several change sets, each atomically on its own: a failing one changes nothing
    /// and does not affect the others. They share a commit (a store may use a few, never one
    /// per set). One result per change set, in order, each returned once its set is committed.
    fn apply_many(&self, sets: &[ChangeSet]) -> Vec<StoreResult<Applied>>;
}

/// `snapshot` restricted to `part`, as [`Store::rule_snapshot_part`] describes it.
pub(crate) fn restrict_rule_snapshot(snapshot: RuleSnapshot, part: &RulePart) -> RuleSnapshot {
    use std::collections::BTreeSet;

    use crate::model::resolve::resolve_package_group;

    let RuleSnapshot {
        deploy,
        rules,
        assignment_revisions,
        jobs,
    } = snapshot;
    let wanted = &part.computers;
    let assignments: std::collections::BTreeMap<ComputerId, Vec<Assignment>> = deploy
        .assignments
        .into_iter()
        .filter(|(computer, _)| wanted.contains(computer))
        .collect();
    let jobs: Vec<Job> = jobs.into_iter().filter(|job| part.has_job(job)).collect();
    // Packages: every rule's (with dependencies, transitively), the assigned ones, and those of
    // the jobs kept.
    let mut packages = BTreeSet::new();
    let mut todo: Vec<PackageId> = rules
        .iter()
        .flat_map(|rule| {
            resolve_package_group(
                rule.package_group,
                &deploy.package_groups,
                &deploy.package_group_members,
            )
        })
        .chain(assignments.values().flatten().map(|a| a.package))
        .chain(jobs.iter().map(|job| job.package))
        .collect();
    while let Some(id) = todo.pop() {
        if packages.insert(id) {
            if let Some(package) = deploy.packages.get(&id) {
                todo.extend(package.dependencies.iter().copied());
            }
        }
    }
    RuleSnapshot {
        deploy: super::DeploySnapshot {
            computers: deploy
                .computers
                .into_iter()
                .filter(|(id, _)| wanted.contains(id))
                .collect(),
            computer_groups: deploy.computer_groups,
            computer_group_members: deploy
                .computer_group_members
                .into_iter()
                .map(|(group, members)| {
                    let members = members.into_iter().filter(|m| wanted.contains(m));
                    (group, members.collect())
                })
                .collect(),
            packages: deploy
                .packages
                .into_iter()
                .filter(|(id, _)| packages.contains(id))
                .collect(),
            package_groups: deploy.package_groups,
            package_group_members: deploy.package_group_members,
            assignments,
        },
        rules,
        assignment_revisions: assignment_revisions
            .into_iter()
            .filter(|(computer, _)| wanted.contains(computer))
            .collect(),
        jobs,
    }
}
