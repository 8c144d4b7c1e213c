//! Creating jobs: deploy, uninstall and renew.
//!
//! Each function decides and returns a [`ChangeSet`] for the store to apply; nothing is written
//! here. New containers and jobs carry placeholder ids (`ContainerId(0)`, `JobId(0)`, origin
//! `Origin::Container(ContainerId(0))`): the store assigns the real ones when it applies
//! [`Change::CreateContainer`].
//!
//! # Examples
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use oco_core::chrono::{TimeZone, Utc};
//! use oco_core::chrono_tz::UTC;
//! use oco_core::deploy::{deploy, ContainerSettings, DeployError, DeployRequest};
//! use oco_core::model::{DeliveryPolicy, Name, Schedule, WolSettings};
//! use oco_core::store::DeploySnapshot;
//!
//! let now = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
//! let request = DeployRequest {
//!     container: ContainerSettings {
//!         name: Name::new("name", "Nothing")?,
//!         notes: String::new(),
//!         enabled: true,
//!         schedule: Schedule::new(now, None)?,
//!         policy: DeliveryPolicy::new(UTC),
//!         wol: WolSettings::default(),
//!         self_service: false,
//!     },
//!     computers: vec![],
//!     computer_groups: vec![],
//!     packages: vec![],
//!     package_groups: vec![],
//!     force_reinstall: false,
//! };
//! let err = deploy(&request, &DeploySnapshot::default(), now).unwrap_err();
//! assert_eq!(err, DeployError::NoJobs);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::resolve::{resolve_computer_group, resolve_package_group};
use crate::model::{
    Assignment, Computer, ComputerGroupId, ComputerId, ContainerId, DeliveryPolicy, FamilyId, Job,
    JobContainer, JobId, JobKind, JobSnapshot, JobState, Name, Origin, Package, PackageGroupId,
    PackageId, Schedule, ServerFinal, UpgradeBehavior, WolSettings,
};
use crate::store::{Change, ChangeSet, DeploySnapshot};

/// The settings of a new container, as an administrator gives them for a deploy or an
/// uninstall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// The container's name.
    pub name: Name,
    /// The container's notes.
    pub notes: String,
    /// Whether the container's jobs may be delivered.
    pub enabled: bool,
    /// When the jobs may start, and until when.
    pub schedule: Schedule,
    /// How the jobs are delivered.
    pub policy: DeliveryPolicy,
    /// Wake-on-LAN (its `sent_at` is ignored: a new container has sent nothing).
    pub wol: WolSettings,
    /// Created from the self-service portal.
    pub self_service: bool,
}

impl ContainerSettings {
    /// Settings of an enabled container named `name`, starting at `start` with no end, with
    /// `policy`, no Wake-on-LAN, empty notes, not from the self-service portal.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::chrono_tz::Tz;
    /// use oco_core::deploy::{ContainerSettings, DeployRequest};
    /// use oco_core::model::{ComputerId, DeliveryPolicy, Name, PackageId};
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    /// let settings = ContainerSettings::new(Name::new("name", "editor 2.0")?, now, DeliveryPolicy::new(Tz::UTC));
    /// let request = DeployRequest::new(settings)
    ///     .with_computers([ComputerId(1), ComputerId(2)])
    ///     .with_packages([PackageId(7)]);
    /// assert_eq!(request.computers.len(), 2);
    /// assert!(request.container.enabled);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(name: Name, start: DateTime<Utc>, policy: DeliveryPolicy) -> Self {
        ContainerSettings {
            name,
            notes: String::new(),
            enabled: true,
            schedule: Schedule::starting(start),
            policy,
            wol: WolSettings::default(),
            self_service: false,
        }
    }
}

impl ContainerSettings {
    /// The settings with jobs expiring at `end` if not begun by then.
    ///
    /// # Errors
    ///
    /// When `end` is not after the start (field `end`).
    pub fn with_end(self, end: DateTime<Utc>) -> Result<Self, crate::model::InvalidField> {
        Ok(ContainerSettings {
            schedule: Schedule::new(self.schedule.start(), Some(end))?,
            ..self
        })
    }

    /// The settings with these notes.
    #[must_use]
    pub fn with_notes(self, notes: impl Into<String>) -> Self {
        ContainerSettings {
            notes: notes.into(),
            ..self
        }
    }

    /// The settings with these Wake-on-LAN settings (`sent_at` is ignored).
    #[must_use]
    pub fn with_wol(self, wol: WolSettings) -> Self {
        ContainerSettings { wol, ..self }
    }

    /// The settings of a container created disabled (its jobs are held).
    #[must_use]
    pub fn disabled(self) -> Self {
        ContainerSettings {
            enabled: false,
            ..self
        }
    }
}

impl UninstallRequest {
    /// An uninstall of `assignments` (computer, package), in order, into a new container with
    /// `container`'s settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{Duration, TimeZone, Utc};
    /// use oco_core::deploy::{ContainerSettings, UninstallRequest};
    /// use oco_core::model::{ComputerId, DeliveryPolicy, Name, PackageId};
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    /// let settings = ContainerSettings::new(Name::new("name", "remove 7-Zip")?, now, DeliveryPolicy::default())
    ///     .with_end(now + Duration::days(7))?
    ///     .with_notes("ticket 4711");
    /// assert!(settings.clone().with_end(now).is_err(), "an end must come after the start");
    /// let request = UninstallRequest::new(settings, [(ComputerId(1), PackageId(7))]);
    /// assert_eq!(request.container.schedule.end(), Some(now + Duration::days(7)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        container: ContainerSettings,
        assignments: impl IntoIterator<Item = (ComputerId, PackageId)>,
    ) -> Self {
        UninstallRequest {
            container,
            assignments: assignments.into_iter().collect(),
        }
    }
}

impl DeployRequest {
    /// A deploy of nothing yet into a new container with `container`'s settings; the `with_*`
    /// methods add targets and packages (see [`ContainerSettings::new`] for an example).
    pub fn new(container: ContainerSettings) -> Self {
        DeployRequest {
            container,
            computers: Vec::new(),
            computer_groups: Vec::new(),
            packages: Vec::new(),
            package_groups: Vec::new(),
            force_reinstall: false,
        }
    }

    /// The request with these target computers added, in order.
    #[must_use]
    pub fn with_computers(mut self, computers: impl IntoIterator<Item = ComputerId>) -> Self {
        self.computers.extend(computers);
        self
    }

    /// The request with these target computer groups added, in order.
    #[must_use]
    pub fn with_computer_groups(
        mut self,
        groups: impl IntoIterator<Item = ComputerGroupId>,
    ) -> Self {
        self.computer_groups.extend(groups);
        self
    }

    /// The request with these packages added, in order.
    #[must_use]
    pub fn with_packages(mut self, packages: impl IntoIterator<Item = PackageId>) -> Self {
        self.packages.extend(packages);
        self
    }

    /// The request with these package groups added, in order.
    #[must_use]
    pub fn with_package_groups(mut self, groups: impl IntoIterator<Item = PackageGroupId>) -> Self {
        self.package_groups.extend(groups);
        self
    }

    /// The request installing again what is already installed (instead of recording it as
    /// AlreadyInstalled).
    #[must_use]
    pub fn forcing_reinstall(self) -> Self {
        DeployRequest {
            force_reinstall: true,
            ..self
        }
    }
}

/// What an administrator asks to deploy: a new container with these settings, for these
/// computers and packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The new container's settings.
    pub container: ContainerSettings,
    /// Target computers, in order.
    pub computers: Vec<ComputerId>,
    /// Target computer groups; their members (subgroups included) follow `computers`.
    pub computer_groups: Vec<ComputerGroupId>,
    /// Packages, in order.
    pub packages: Vec<PackageId>,
    /// Package groups; their resolved packages follow `packages`.
    pub package_groups: Vec<PackageGroupId>,
    /// Install packages that are already installed again instead of creating AlreadyInstalled
    /// jobs.
    pub force_reinstall: bool,
}

/// What an administrator asks to uninstall: a new container with these settings, with one
/// uninstall job per assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UninstallRequest {
    /// The new container's settings.
    pub container: ContainerSettings,
    /// The (computer, package) assignments to uninstall, in order.
    pub assignments: Vec<(ComputerId, PackageId)>,
}

/// The outcome of renewing failed-like jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[must_use = "a renewal writes nothing until its `changes` are applied"]
pub struct Renewal {
    /// What to write: job updates (in place) or one new container (into a container).
    pub changes: ChangeSet,
    /// The jobs renewed (for a new container: the old jobs that got a fresh copy), in the order
    /// their changes come.
    pub renewed: Vec<JobId>,
    /// Jobs left as they are because of incompatibility: jobs already Incompatible (they stay
    /// Incompatible), and failed-like install jobs whose package is no longer compatible with the
    /// computer.
    pub incompatible: Vec<JobId>,
    /// Jobs not renewed for another reason: not Failed, Expired or Incompatible, of another
    /// origin (into a container), or failed-like with a package or computer no longer known.
    pub skipped: Vec<JobId>,
}

/// What kind of thing an unknown id was meant to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    /// A computer.
    Computer,
    /// A computer group.
    ComputerGroup,
    /// A package.
    Package,
    /// A package group.
    PackageGroup,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Computer => "computer",
            Entity::ComputerGroup => "computer group",
            Entity::Package => "package",
            Entity::PackageGroup => "package group",
        })
    }
}

/// Why jobs could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployError {
    /// An id names nothing the snapshot knows.
    Unknown {
        /// What the id was meant to name.
        what: Entity,
        /// The id.
        id: i64,
    },
    /// Packages depend on each other in a cycle, given in dependency order with the first
    /// package repeated at the end (`[a, b, a]`: a needs b, b needs a).
    DependencyCycle {
        /// The cycle.
        cycle: Vec<PackageId>,
    },
    /// Two or more versions of one family are deployed together and at least one of them removes
    /// other versions when installed.
    ConflictingVersions {
        /// The family.
        family: FamilyId,
        /// Its versions in the deploy, in deploy order.
        packages: Vec<PackageId>,
    },
    /// An uninstall names a package the computer has no assignment of.
    NotAssigned {
        /// The computer.
        computer: ComputerId,
        /// The package.
        package: PackageId,
    },
    /// Nothing to create: no target computers, no packages, or no failed jobs to renew.
    NoJobs,
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::Unknown { what, id } => write!(f, "unknown {what} {id}"),
            DeployError::DependencyCycle { cycle } => {
                f.write_str("packages depend on each other in a cycle: ")?;
                write_ids(f, cycle, " -> ")
            }
            DeployError::ConflictingVersions { family, packages } => {
                f.write_str("packages ")?;
                write_ids(f, packages, ", ")?;
                write!(
                    f,
                    " are versions of package family {family} and one of them removes the other \
                     versions when installed; deploy only one of them"
                )
            }
            DeployError::NotAssigned { computer, package } => write!(
                f,
                "package {package} is not installed on computer {computer} (no assignment), so it \
                 cannot be uninstalled"
            ),
            DeployError::NoJobs => f.write_str(
                "no jobs to create: no target computers, no packages, or nothing to renew",
            ),
        }
    }
}

impl std::error::Error for DeployError {}

/// Creates a container with the jobs `request` asks for, as one [`Change::CreateContainer`].
///
/// Targets are the explicit computers in the given order, then each computer group's resolved
/// members ([`resolve_computer_group`]); a computer appearing twice keeps its first position.
/// Packages are the explicit packages in order, then each package group resolved
/// ([`resolve_package_group`]); then every package is preceded by its dependencies, recursively
/// (dependencies of dependencies before them); duplicates keep their first position. A package
/// reached only as a dependency is *auto-added*.
///
/// Jobs come per target computer, in target order, each computer's numbered from 1 (every job
/// created takes the next number). For each package, in order, the first that applies:
/// - a package incompatible with the computer gets an Incompatible job (finished `now`), an
///   auto-added dependency included (even one installed in some version of its family);
/// - an auto-added dependency already installed on the computer in any version of its family
///   gets no job;
/// - a package assigned to the computer gets an AlreadyInstalled job (finished `now`), unless
///   `force_reinstall`;
/// - otherwise, for an explicit-uninstall package, an uninstall job for each *other* installed
///   version of its family, oldest assignment first (by `installed_at`, then package id), then
///   the install job. Assignments of packages missing from the snapshot are ignored (their
///   family is not known).
///
/// # Errors
///
/// Checked in this order: [`DeployError::Unknown`] for an id the snapshot does not know
/// (including dependencies and group members), [`DeployError::DependencyCycle`],
/// [`DeployError::ConflictingVersions`] when two versions of one family are in the deploy
/// (dependencies included) and one of them removes others, and [`DeployError::NoJobs`] when no
/// job at all would be created.
pub fn deploy(
    request: &DeployRequest,
    snapshot: &DeploySnapshot,
    now: DateTime<Utc>,
) -> Result<ChangeSet, DeployError> {
    let targets = resolve_targets(request, snapshot)?;
    let requested = resolve_requested_packages(request, snapshot)?;
    let packages = with_dependencies(&requested, &snapshot.packages)?;
    check_conflicting_versions(&packages)?;
    let explicit: BTreeSet<PackageId> = requested.iter().copied().collect();

    let origin = new_origin();
    let no_assignments = Vec::new();
    let mut jobs = Vec::new();
    for computer in targets {
        let assignments = snapshot
            .assignments
            .get(&computer.id)
            .unwrap_or(&no_assignments);
        let mut sequence = 0;
        let mut next = || {
            sequence += 1;
            sequence
        };
        for &package in &packages {
            let installed_in_family = |exact: bool| {
                assignments.iter().any(|assignment| {
                    if exact {
                        assignment.package == package.id
                    } else {
                        snapshot
                            .packages
                            .get(&assignment.package)
                            .is_some_and(|other| other.family == package.family)
                    }
                })
            };
            if !package.compatibility.allows(computer) {
                let mut job = Job::new(origin, computer.id, package, JobKind::Install, next());
                job.finalize_by_server(ServerFinal::Incompatible, now);
                jobs.push(job);
                continue;
            }
            if !explicit.contains(&package.id) && installed_in_family(false) {
                continue;
            }
            if installed_in_family(true) && !request.force_reinstall {
                let mut job = Job::new(origin, computer.id, package, JobKind::Install, next());
                job.finalize_by_server(ServerFinal::AlreadyInstalled, now);
                jobs.push(job);
                continue;
            }
            if package.upgrade_behavior == UpgradeBehavior::ExplicitUninstall {
                for other in other_installed_versions(package, assignments, &snapshot.packages) {
                    jobs.push(Job::new(
                        origin,
                        computer.id,
                        other,
                        JobKind::Uninstall,
                        next(),
                    ));
                }
            }
            jobs.push(Job::new(
                origin,
                computer.id,
                package,
                JobKind::Install,
                next(),
            ));
        }
    }
    create_container(new_container(request.container.clone(), now), jobs)
}

/// Creates a container with one uninstall job per assignment in `request`, as one
/// [`Change::CreateContainer`].
///
/// Jobs come in the order the assignments are given; each computer's are numbered 1, 2, 3… in
/// that order (OCO gives them all 0). A pair given twice yields one job. Compatibility is not
/// checked: the package is installed, and uninstalling it is what is asked.
///
/// # Errors
///
/// [`DeployError::Unknown`] for a computer or package the snapshot does not know,
/// [`DeployError::NotAssigned`] for a pair without an assignment, [`DeployError::NoJobs`] when no
/// assignments are given.
pub fn uninstall(
    request: &UninstallRequest,
    snapshot: &DeploySnapshot,
    now: DateTime<Utc>,
) -> Result<ChangeSet, DeployError> {
    let origin = new_origin();
    let mut seen = BTreeSet::new();
    let mut sequences: BTreeMap<ComputerId, u32> = BTreeMap::new();
    let mut jobs = Vec::new();
    for &(computer, package) in &request.assignments {
        if !snapshot.computers.contains_key(&computer) {
            return Err(unknown(Entity::Computer, computer.0));
        }
        let Some(package_record) = snapshot.packages.get(&package) else {
            return Err(unknown(Entity::Package, package.0));
        };
        let assigned = snapshot
            .assignments
            .get(&computer)
            .is_some_and(|list| list.iter().any(|a| a.package == package));
        if !assigned {
            return Err(DeployError::NotAssigned { computer, package });
        }
        if !seen.insert((computer, package)) {
            continue;
        }
        let sequence = sequences.entry(computer).or_insert(0);
        *sequence += 1;
        jobs.push(Job::new(
            origin,
            computer,
            package_record,
            JobKind::Uninstall,
            *sequence,
        ));
    }
    create_container(new_container(request.container.clone(), now), jobs)
}

/// Renews failed-like (Failed or Expired) jobs where they are: one [`Change::UpdateJob`] per
/// renewed job, expecting the job's current revision.
///
/// A renewed job is Waiting again with its report data cleared (return code, output, message,
/// progress, timestamps, last report, Wake-on-LAN shutdown mark), `attempt + 1`, and its snapshot
/// re-taken from the current package. Jobs already Incompatible stay Incompatible and are listed
/// in `incompatible`, as are failed-like install jobs whose package is no longer compatible with
/// the computer, which are left as they are (uninstall jobs are not checked: the package is
/// installed). Other jobs, and failed-like jobs whose package or computer is not in the maps, are
/// listed in `skipped`. Results keep the order of `jobs`.
pub fn renew_in_place(
    jobs: &[Job],
    packages: &BTreeMap<PackageId, Package>,
    computers: &BTreeMap<ComputerId, Computer>,
) -> Renewal {
    let mut renewal = Renewal::default();
    for job in jobs {
        let Some(package) = classify(job, packages, computers, &mut renewal) else {
            continue;
        };
        let mut renewed = job.clone();
        renewed.state = JobState::Waiting;
        renewed.download_progress = None;
        renewed.return_code = None;
        renewed.output.clear();
        renewed.message = None;
        renewed.download_started = None;
        renewed.execution_started = None;
        renewed.finished = None;
        renewed.last_report = None;
        renewed.wol_shutdown = None;
        renewed.attempt = job.attempt.saturating_add(1);
        renewed.snapshot = JobSnapshot::of(package, job.kind);
        renewal.renewed.push(job.id);
        renewal.changes.push(Change::UpdateJob {
            expected: job.revision,
            job: renewed,
        });
    }
    renewal
}

/// Renews the failed-like (Failed or Expired) jobs of container `old` into a new container named
/// `name`, as one [`Change::CreateContainer`]; the old jobs are not changed.
///
/// The new container copies the old one's notes, enabled flag, self-service flag, policy and
/// Wake-on-LAN settings (not yet sent); it starts `now` and ends at the old end if that is still
/// in the future, else never. Each renewed job gets a fresh Waiting copy (same computer, package
/// and kind, attempt 1, snapshot re-taken from the current package), numbered per computer from
/// 1 in the old sequence order; jobs come ordered by computer, then old sequence, then id, and
/// `renewed` lists the old jobs in that order. Incompatible and skipped jobs are classified as
/// in [`renew_in_place`]; jobs of another origin are skipped.
///
/// # Errors
///
/// [`DeployError::NoJobs`] when no job is renewed.
pub fn renew_into_container(
    old: &JobContainer,
    jobs: &[Job],
    packages: &BTreeMap<PackageId, Package>,
    computers: &BTreeMap<ComputerId, Computer>,
    name: Name,
    now: DateTime<Utc>,
) -> Result<Renewal, DeployError> {
    let mut renewal = Renewal::default();
    let mut chosen = Vec::new();
    for job in jobs {
        if job.origin != Origin::Container(old.id) {
            renewal.skipped.push(job.id);
            continue;
        }
        if let Some(package) = classify(job, packages, computers, &mut renewal) {
            chosen.push((job, package));
        }
    }
    chosen.sort_by_key(|(job, _)| (job.computer, job.sequence, job.id));

    let origin = new_origin();
    let mut sequences: BTreeMap<ComputerId, u32> = BTreeMap::new();
    let mut new_jobs = Vec::with_capacity(chosen.len());
    for (job, package) in chosen {
        let sequence = sequences.entry(job.computer).or_insert(0);
        *sequence += 1;
        new_jobs.push(Job::new(origin, job.computer, package, job.kind, *sequence));
        renewal.renewed.push(job.id);
    }

    let end = old.schedule.end().filter(|&end| end > now);
    // Invariant: `end`, if any, is after `now`, which is all `Schedule::new` checks.
    #[allow(clippy::expect_used)]
    let schedule = Schedule::new(now, end).expect("end was filtered to be after now");
    let settings = ContainerSettings {
        name,
        notes: old.notes.clone(),
        enabled: old.enabled,
        schedule,
        policy: old.policy.clone(),
        wol: old.wol,
        self_service: old.self_service,
    };
    renewal.changes = create_container(new_container(settings, now), new_jobs)?;
    Ok(renewal)
}

fn new_origin() -> Origin {
    Origin::Container(ContainerId(0))
}

fn unknown(what: Entity, id: i64) -> DeployError {
    DeployError::Unknown { what, id }
}

/// The new container `settings` describe, created `now`, with a placeholder id and nothing sent
/// by Wake-on-LAN yet.
fn new_container(settings: ContainerSettings, now: DateTime<Utc>) -> JobContainer {
    let ContainerSettings {
        name,
        notes,
        enabled,
        schedule,
        policy,
        wol,
        self_service,
    } = settings;
    JobContainer {
        id: ContainerId(0),
        name,
        notes,
        enabled,
        schedule,
        policy,
        wol: WolSettings {
            sent_at: None,
            ..wol
        },
        self_service,
        created_at: now,
    }
}

fn create_container(container: JobContainer, jobs: Vec<Job>) -> Result<ChangeSet, DeployError> {
    if jobs.is_empty() {
        return Err(DeployError::NoJobs);
    }
    Ok(ChangeSet {
        changes: vec![Change::CreateContainer { container, jobs }],
    })
}

fn write_ids<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    ids: &[T],
    separator: &str,
) -> fmt::Result {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{id}")?;
    }
    Ok(())
}

/// Files `job` under `skipped` or `incompatible` in `renewal`, or returns its current package if
/// it is to be renewed.
fn classify<'a>(
    job: &Job,
    packages: &'a BTreeMap<PackageId, Package>,
    computers: &BTreeMap<ComputerId, Computer>,
    renewal: &mut Renewal,
) -> Option<&'a Package> {
    // Reported as incompatible whatever became of its package or computer: it stays so.
    if job.state == JobState::Incompatible {
        renewal.incompatible.push(job.id);
        return None;
    }
    let (Some(package), Some(computer)) =
        (packages.get(&job.package), computers.get(&job.computer))
    else {
        renewal.skipped.push(job.id);
        return None;
    };
    if !job.state.is_failed_like() {
        renewal.skipped.push(job.id);
        return None;
    }
    if job.kind == JobKind::Install && !package.compatibility.allows(computer) {
        renewal.incompatible.push(job.id);
        return None;
    }
    Some(package)
}

/// The target computers: explicit ones, then group members, each once.
fn resolve_targets<'a>(
    request: &DeployRequest,
    snapshot: &'a DeploySnapshot,
) -> Result<Vec<&'a Computer>, DeployError> {
    let mut ids = request.computers.clone();
    for &group in &request.computer_groups {
        if !snapshot.computer_groups.iter().any(|g| g.id == group) {
            return Err(unknown(Entity::ComputerGroup, group.0));
        }
        ids.extend(resolve_computer_group(
            group,
            &snapshot.computer_groups,
            &snapshot.computer_group_members,
            &snapshot.computers,
        ));
    }
    let mut seen = BTreeSet::new();
    let mut targets = Vec::new();
    for id in ids {
        let Some(computer) = snapshot.computers.get(&id) else {
            return Err(unknown(Entity::Computer, id.0));
        };
        if seen.insert(id) {
            targets.push(computer);
        }
    }
    Ok(targets)
}

/// The requested packages: explicit ones, then package groups' resolved members, each once.
fn resolve_requested_packages(
    request: &DeployRequest,
    snapshot: &DeploySnapshot,
) -> Result<Vec<PackageId>, DeployError> {
    let mut ids = request.packages.clone();
    for &group in &request.package_groups {
        if !snapshot.package_groups.iter().any(|g| g.id == group) {
            return Err(unknown(Entity::PackageGroup, group.0));
        }
        ids.extend(resolve_package_group(
            group,
            &snapshot.package_groups,
            &snapshot.package_group_members,
        ));
    }
    let mut seen = BTreeSet::new();
    let mut requested = Vec::new();
    for id in ids {
        if !snapshot.packages.contains_key(&id) {
            return Err(unknown(Entity::Package, id.0));
        }
        if seen.insert(id) {
            requested.push(id);
        }
    }
    Ok(requested)
}

/// `requested` with each package preceded by its dependencies, recursively, each once.
fn with_dependencies<'a>(
    requested: &[PackageId],
    packages: &'a BTreeMap<PackageId, Package>,
) -> Result<Vec<&'a Package>, DeployError> {
    struct Walk<'a> {
        packages: &'a BTreeMap<PackageId, Package>,
        path: Vec<PackageId>,
        done: BTreeSet<PackageId>,
        order: Vec<&'a Package>,
    }

    impl<'a> Walk<'a> {
        fn visit(&mut self, id: PackageId) -> Result<(), DeployError> {
            if self.done.contains(&id) {
                return Ok(());
            }
            if let Some(start) = self.path.iter().position(|&on_path| on_path == id) {
                let mut cycle = self.path[start..].to_vec();
                cycle.push(id);
                return Err(DeployError::DependencyCycle { cycle });
            }
            let Some(package) = self.packages.get(&id) else {
                return Err(unknown(Entity::Package, id.0));
            };
            self.path.push(id);
            for &dependency in &package.dependencies {
                self.visit(dependency)?;
            }
            self.path.pop();
            self.done.insert(id);
            self.order.push(package);
            Ok(())
        }
    }

    let mut walk = Walk {
        packages,
        path: Vec::new(),
        done: BTreeSet::new(),
        order: Vec::new(),
    };
    for &id in requested {
        walk.visit(id)?;
    }
    Ok(walk.order)
}

/// Refuses two versions of one family when one of them removes others.
fn check_conflicting_versions(packages: &[&Package]) -> Result<(), DeployError> {
    let mut families: Vec<(FamilyId, Vec<&Package>)> = Vec::new();
    for &package in packages {
        match families
            .iter_mut()
            .find(|(family, _)| *family == package.family)
        {
            Some((_, versions)) => versions.push(package),
            None => families.push((package.family, vec![package])),
        }
    }
    for (family, versions) in families {
        if versions.len() > 1 && versions.iter().any(|p| p.upgrade_behavior.removes_others()) {
            return Err(DeployError::ConflictingVersions {
                family,
                packages: versions.iter().map(|p| p.id).collect(),
            });
        }
    }
    Ok(())
}

/// The packages of the other versions of `package`'s family assigned to the computer, oldest
/// assignment first (by `installed_at`, then package id).
fn other_installed_versions<'a>(
    package: &Package,
    assignments: &[Assignment],
    packages: &'a BTreeMap<PackageId, Package>,
) -> Vec<&'a Package> {
    let mut others: Vec<(&Assignment, &Package)> = assignments
        .iter()
        .filter(|assignment| assignment.package != package.id)
        .filter_map(|assignment| {
            packages
                .get(&assignment.package)
                .filter(|other| other.family == package.family)
                .map(|other| (assignment, other))
        })
        .collect();
    others.sort_by_key(|(assignment, other)| (assignment.installed_at, other.id));
    others.dedup_by_key(|(_, other)| other.id);
    others.into_iter().map(|(_, other)| other).collect()
}
