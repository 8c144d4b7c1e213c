//! Round trips of every field: random worlds (computers, packages, containers with random
//! policies and jobs in every state, assignments, groups, rules with their jobs, tombstones,
//! credentials, server state) are written to a file store and to the reference `MemoryStore` with
//! the same calls; every getter, lister and snapshot of the file store, before and after
//! reopening the file, equals the reference's.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;

use oco_core::chrono::{DateTime, Duration, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::constraint::{IpEntry, IpRanges, TimeFrames};
use oco_core::ipnet::{IpNet, Ipv4Net, Ipv6Net};
use oco_core::model::{
    Assignment, Compatibility, ComputerGroupId, ComputerId, ContainerId, DeliveryPolicy, Job,
    JobContainer, JobId, JobKind, JobSnapshot, JobState, MacAddress, MessageCode, Origin, Package,
    PackageGroupId, PackageId, Payload, PostAction, Priority, Procedure, RuleId, Schedule,
    SequenceMode, Sha256Digest, UpgradeBehavior, WolSettings, WolShutdown,
};
use oco_core::rules::{NewJob, NewJobs};
use oco_core::store::testkit::{at, dump, name};
use oco_core::store::{
    AgentContact, AgentCredentials, Change, ChangeSet, JobFilter, MemoryStore, NewComputer,
    NewPackage, NewRule, Page, ServerState, Store, StoreError,
};
use oco_store_sqlite::SqliteStore;
use proptest::prelude::*;

// ---- the generated world -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ComputerSpec {
    os: String,
    os_version: String,
    architecture: String,
    macs: Vec<[u8; 6]>,
    last_seen: Option<DateTime<Utc>>,
    credentials: AgentCredentials,
}

#[derive(Debug, Clone)]
struct PackageSpec {
    install: Procedure,
    uninstall: Procedure,
    payload: Option<Payload>,
    download_for_uninstall: bool,
    upgrade_behavior: UpgradeBehavior,
    compatibility: Compatibility,
    /// Indices into the packages created before this one.
    dependencies: Vec<usize>,
}

#[derive(Debug, Clone)]
struct JobSpec {
    computer: usize,
    package: usize,
    kind: JobKind,
    snapshot: JobSnapshot,
    sequence: u32,
    state: JobState,
    download_progress: Option<u8>,
    return_code: Option<i64>,
    output: String,
    message: Option<MessageCode>,
    download_started: Option<DateTime<Utc>>,
    execution_started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    last_report: Option<DateTime<Utc>>,
    wol_shutdown: Option<WolShutdown>,
    orphaned: bool,
    attempt: u32,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    notes: String,
    enabled: bool,
    start: DateTime<Utc>,
    length: Option<i64>,
    policy: DeliveryPolicy,
    wol: WolSettings,
    self_service: bool,
    created_at: DateTime<Utc>,
    jobs: Vec<JobSpec>,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    notes: String,
    enabled: bool,
    policy: DeliveryPolicy,
    created_at: DateTime<Utc>,
    /// (computer, package, kind, sequence, state) indices of new jobs.
    jobs: Vec<(usize, usize, JobKind, u32, JobState)>,
    evaluated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct World {
    computers: Vec<ComputerSpec>,
    /// Per family, its packages.
    families: Vec<Vec<PackageSpec>>,
    containers: Vec<ContainerSpec>,
    /// (computer, package, installed at, index of a container job it names).
    assignments: Vec<(usize, usize, DateTime<Utc>, Option<usize>)>,
    /// Computer group members (indices), package group members (indices, in order).
    computer_group: Vec<usize>,
    package_group: Vec<usize>,
    rules: Vec<RuleSpec>,
    /// Container jobs (indices) to delete, leaving tombstones.
    deleted: Vec<(usize, DateTime<Utc>)>,
    server: ServerState,
}

/// Instants with sub-second precision around the fixed base.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-400_000_000_i64..400_000_000, 0_i64..1_000_000_000)
        .prop_map(|(seconds, nanos)| at(seconds) + Duration::nanoseconds(nanos))
}

fn text() -> impl Strategy<Value = String> {
    // Printable text, non-ASCII and list separators included.
    "[ -~äöü€日本,;\"'\\\\]{0,16}"
}

fn list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..3)
}

fn procedure() -> impl Strategy<Value = Procedure> {
    (
        text(),
        prop::collection::vec((-70_000_i64..70_000, 0_i64..5), 0..4),
        prop_oneof![
            Just(PostAction::None),
            Just(PostAction::Restart),
            Just(PostAction::Shutdown),
            Just(PostAction::ExitAgent),
        ],
    )
        .prop_map(|(command, ranges, post_action)| {
            let codes: Vec<String> = ranges
                .iter()
                .map(|&(low, width)| {
                    if width == 0 {
                        low.to_string()
                    } else {
                        format!("{low}-{}", low + width)
                    }
                })
                .collect();
            Procedure {
                command,
                // No range is "every code", written `*`.
                success_codes: if codes.is_empty() {
                    "*".parse().unwrap()
                } else {
                    codes.join(", ").parse().unwrap()
                },
                post_action,
            }
        })
}

/// No payload, one stored before sizes and digests were kept, or one with both (any size a
/// SQLite integer holds).
fn payload() -> impl Strategy<Value = Option<Payload>> {
    prop_oneof![
        Just(None),
        Just(Some(Payload::Unknown)),
        (0..=i64::MAX as u64, any::<[u8; 32]>())
            .prop_map(|(size, digest)| Some(Payload::new(size, Sha256Digest(digest)))),
    ]
}

fn upgrade_behavior() -> impl Strategy<Value = UpgradeBehavior> {
    prop_oneof![
        Just(UpgradeBehavior::KeepOthers),
        Just(UpgradeBehavior::ImplicitRemove),
        Just(UpgradeBehavior::ExplicitUninstall),
    ]
}

fn ip_ranges() -> impl Strategy<Value = IpRanges> {
    let entry = prop_oneof![
        (any::<bool>(), any::<[u8; 4]>(), 0_u8..=32).prop_map(|(negated, octets, prefix)| {
            let net = Ipv4Net::new(octets.into(), prefix).unwrap().trunc();
            IpEntry::new(IpNet::V4(net), negated)
        }),
        (any::<bool>(), any::<[u16; 8]>(), 0_u8..=128).prop_map(|(negated, segments, prefix)| {
            let net = Ipv6Net::new(segments.into(), prefix).unwrap().trunc();
            IpEntry::new(IpNet::V6(net), negated)
        }),
    ];
    prop::collection::vec(entry, 0..4).prop_map(|entries| {
        // Go through the canonical text, as an administrator's input would.
        let text: Vec<String> = entries.iter().map(IpEntry::to_string).collect();
        text.join(", ").parse().unwrap()
    })
}

fn time_frames() -> impl Strategy<Value = TimeFrames> {
    const DAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let entry = (
        any::<bool>(),
        prop::option::of((0..7_usize, prop::option::of(0..7_usize))),
        prop::option::of((0_u16..24 * 60, 1_u16..24 * 60)),
    )
        .prop_filter("an entry has days or a window", |(_, days, window)| {
            days.is_some() || window.is_some()
        })
        .prop_map(|(negated, days, window)| {
            let mut text = String::new();
            if negated {
                text.push('!');
            }
            if let Some((first, last)) = days {
                text.push_str(DAYS[first]);
                if let Some(last) = last {
                    text.push('-');
                    text.push_str(DAYS[last]);
                }
                text.push(' ');
            }
            if let Some((start, length)) = window {
                let end = (start + length) % (24 * 60);
                text.push_str(&format!(
                    "{}:{:02}-{}:{:02}",
                    start / 60,
                    start % 60,
                    end / 60,
                    end % 60
                ));
            }
            text
        });
    prop::collection::vec(entry, 0..4).prop_map(|entries| entries.join(", ").parse().unwrap())
}

fn policy() -> impl Strategy<Value = DeliveryPolicy> {
    (
        -100_i64..=100,
        any::<bool>(),
        ip_ranges(),
        time_frames(),
        prop::sample::select(vec![
            Tz::UTC,
            Tz::Europe__Berlin,
            Tz::America__New_York,
            Tz::Asia__Kolkata,
            Tz::Pacific__Chatham,
        ]),
        prop::option::of(0_u32..10_000),
    )
        .prop_map(
            |(priority, abort, ip_ranges, time_frames, time_zone, post_action_timeout)| {
                DeliveryPolicy {
                    priority: Priority::new(priority).unwrap(),
                    sequence_mode: if abort {
                        SequenceMode::AbortAfterFailed
                    } else {
                        SequenceMode::IgnoreFailed
                    },
                    ip_ranges,
                    time_frames,
                    time_zone,
                    post_action_timeout,
                }
            },
        )
}

fn computer() -> impl Strategy<Value = ComputerSpec> {
    (
        text(),
        text(),
        text(),
        prop::collection::vec(any::<[u8; 6]>(), 0..3),
        prop::option::of(instant()),
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(-1e12_f64..1e12),
            prop::option::of(-1e12_f64..1e12),
            prop::option::of((
                instant(),
                any::<u128>(),
                any::<bool>(),
                prop::option::of(text()),
            )),
        ),
    )
        .prop_map(
            |(os, os_version, architecture, macs, last_seen, (a, p, s, h, r, contact))| {
                ComputerSpec {
                    os,
                    os_version,
                    architecture,
                    macs,
                    last_seen,
                    credentials: AgentCredentials {
                        agent_key: a,
                        previous_agent_key: p,
                        server_key: s,
                        last_hello: h,
                        last_reply: r,
                        last_contact: contact.map(|(at, bits, v6, agent_version)| AgentContact {
                            at,
                            address: if v6 {
                                std::net::IpAddr::V6(bits.into())
                            } else {
                                // The low 32 bits, by design.
                                #[allow(clippy::cast_possible_truncation)]
                                std::net::IpAddr::V4((bits as u32).into())
                            },
                            agent_version,
                        }),
                    },
                }
            },
        )
}

fn package() -> impl Strategy<Value = PackageSpec> {
    (
        procedure(),
        procedure(),
        payload(),
        any::<bool>(),
        upgrade_behavior(),
        (list(), list(), list()),
        prop::collection::vec(0..8_usize, 0..3),
    )
        .prop_map(
            |(install, uninstall, payload, download, upgrade, (os, v, arch), deps)| PackageSpec {
                install,
                uninstall,
                payload,
                download_for_uninstall: download,
                upgrade_behavior: upgrade,
                compatibility: Compatibility {
                    os,
                    os_version: v,
                    architecture: arch,
                },
                dependencies: deps,
            },
        )
}

fn job() -> impl Strategy<Value = JobSpec> {
    (
        (0..8_usize, 0..8_usize, any::<bool>(), 1_u32..20, 1_u32..5),
        (procedure(), any::<bool>(), upgrade_behavior()),
        prop::sample::select(JobState::ALL.to_vec()),
        (
            prop::option::of(0_u8..=101),
            prop::option::of(any::<i64>()),
            text(),
            prop::option::of(prop::sample::select(vec![
                MessageCode::AbortedAfterFailed,
                MessageCode::Expired,
                MessageCode::ExpiredStale,
                MessageCode::ReturnCodeRejected,
            ])),
        ),
        (
            prop::option::of(instant()),
            prop::option::of(instant()),
            prop::option::of(instant()),
            prop::option::of(instant()),
        ),
        (
            prop::option::of(prop_oneof![
                instant().prop_map(|since| WolShutdown::Pending { since }),
                Just(WolShutdown::Confirmed),
            ]),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (computer, package, uninstall, sequence, attempt),
                (procedure, download, upgrade_behavior),
                state,
                (download_progress, return_code, output, message),
                (download_started, execution_started, finished, last_report),
                (wol_shutdown, orphaned),
            )| JobSpec {
                computer,
                package,
                kind: if uninstall {
                    JobKind::Uninstall
                } else {
                    JobKind::Install
                },
                snapshot: JobSnapshot {
                    procedure,
                    download,
                    upgrade_behavior,
                },
                sequence,
                state,
                download_progress,
                return_code,
                output,
                message,
                download_started,
                execution_started,
                finished,
                last_report,
                wol_shutdown,
                orphaned,
                attempt,
            },
        )
}

fn container() -> impl Strategy<Value = ContainerSpec> {
    (
        (
            text(),
            any::<bool>(),
            instant(),
            prop::option::of(0_i64..10_000_000),
        ),
        policy(),
        (any::<bool>(), any::<bool>(), prop::option::of(instant())),
        any::<bool>(),
        instant(),
        prop::collection::vec(job(), 0..6),
    )
        .prop_map(
            |(
                (notes, enabled, start, length),
                policy,
                (wake, shutdown_after, sent_at),
                self_service,
                created_at,
                jobs,
            )| ContainerSpec {
                notes,
                enabled,
                start,
                length,
                policy,
                wol: WolSettings {
                    wake,
                    shutdown_after,
                    sent_at,
                },
                self_service,
                created_at,
                jobs,
            },
        )
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        (text(), any::<bool>(), policy(), instant()),
        prop::collection::vec(
            (
                0..8_usize,
                0..8_usize,
                any::<bool>(),
                1_u32..10,
                prop::sample::select(vec![
                    JobState::Waiting,
                    JobState::Incompatible,
                    JobState::AlreadyInstalled,
                ]),
            ),
            0..5,
        ),
        instant(),
    )
        .prop_map(
            |((notes, enabled, policy, created_at), jobs, evaluated_at)| RuleSpec {
                notes,
                enabled,
                policy,
                created_at,
                jobs: jobs
                    .into_iter()
                    .map(|(c, p, uninstall, sequence, state)| {
                        let kind = if uninstall {
                            JobKind::Uninstall
                        } else {
                            JobKind::Install
                        };
                        (c, p, kind, sequence, state)
                    })
                    .collect(),
                evaluated_at,
            },
        )
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(computer(), 1..4),
        prop::collection::vec(prop::collection::vec(package(), 1..3), 1..3),
        prop::collection::vec(container(), 0..3),
        prop::collection::vec(
            (
                0..8_usize,
                0..8_usize,
                instant(),
                prop::option::of(0..16_usize),
            ),
            0..5,
        ),
        (
            prop::collection::vec(0..8_usize, 0..4),
            prop::collection::vec(0..8_usize, 0..4),
        ),
        prop::collection::vec(rule(), 0..3),
        prop::collection::vec((0..16_usize, instant()), 0..3),
        prop::option::of(text()),
    )
        .prop_map(
            |(
                computers,
                families,
                containers,
                assignments,
                (computer_group, package_group),
                rules,
                deleted,
                admin_token_hash,
            )| World {
                computers,
                families,
                containers,
                assignments,
                computer_group,
                package_group,
                rules,
                deleted,
                server: ServerState { admin_token_hash },
            },
        )
}

// ---- writing a world ---------------------------------------------------------------------------

/// The ids a store assigned while the world was written.
#[derive(Debug, Clone, PartialEq)]
struct Ids {
    computers: Vec<ComputerId>,
    packages: Vec<PackageId>,
    containers: Vec<ContainerId>,
    container_jobs: Vec<JobId>,
    rules: Vec<RuleId>,
    computer_group: ComputerGroupId,
    package_group: PackageGroupId,
}

fn apply(store: &dyn Store, changes: Vec<Change>) -> Result<(), StoreError> {
    store.apply(&ChangeSet { changes }).map(|_| ())
}

/// Writes `world` into `store`; returns the ids it assigned.
fn write(store: &dyn Store, world: &World) -> Ids {
    let computers: Vec<ComputerId> = world
        .computers
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let created = store
                .create_computer(NewComputer {
                    hostname: name(&format!("Host-{i}")),
                    os: spec.os.clone(),
                    os_version: spec.os_version.clone(),
                    architecture: spec.architecture.clone(),
                    macs: spec.macs.iter().map(|&m| MacAddress(m)).collect(),
                })
                .unwrap();
            if let Some(seen) = spec.last_seen {
                store.set_last_seen(created.id, seen).unwrap();
            }
            store
                .set_credentials(created.id, &spec.credentials)
                .unwrap();
            created.id
        })
        .collect();
    let mut packages: Vec<Package> = Vec::new();
    for (f, family) in world.families.iter().enumerate() {
        let family_id = store
            .create_family(name(&format!("family {f}")))
            .unwrap()
            .id;
        for (v, spec) in family.iter().enumerate() {
            let mut dependencies: Vec<PackageId> = spec
                .dependencies
                .iter()
                .filter(|_| !packages.is_empty())
                .map(|&d| packages[d % packages.len()].id)
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            dependencies.retain(|d| seen.insert(*d));
            let package = store
                .create_package(NewPackage {
                    family: family_id,
                    version: name(&format!("{v}.0")),
                    install: spec.install.clone(),
                    uninstall: spec.uninstall.clone(),
                    payload: spec.payload,
                    download_for_uninstall: spec.download_for_uninstall,
                    upgrade_behavior: spec.upgrade_behavior,
                    compatibility: spec.compatibility.clone(),
                    dependencies,
                })
                .unwrap();
            packages.push(package);
        }
    }
    let computer = |i: usize| computers[i % computers.len()];
    let package = |i: usize| &packages[i % packages.len()];

    let mut containers = Vec::new();
    let mut container_jobs = Vec::new();
    for (c, spec) in world.containers.iter().enumerate() {
        let jobs = spec
            .jobs
            .iter()
            .map(|j| Job {
                id: JobId(0),
                origin: Origin::Container(ContainerId(0)),
                computer: computer(j.computer),
                package: package(j.package).id,
                kind: j.kind,
                snapshot: j.snapshot.clone(),
                sequence: j.sequence,
                state: j.state,
                download_progress: j.download_progress,
                return_code: j.return_code,
                output: j.output.clone(),
                message: j.message,
                download_started: j.download_started,
                execution_started: j.execution_started,
                finished: j.finished,
                last_report: j.last_report,
                wol_shutdown: j.wol_shutdown,
                orphaned: j.orphaned,
                attempt: j.attempt,
                revision: Default::default(),
            })
            .collect();
        let applied = store
            .apply(&ChangeSet {
                changes: vec![Change::CreateContainer {
                    container: JobContainer {
                        id: ContainerId(0),
                        name: name(&format!("container {c}")),
                        notes: spec.notes.clone(),
                        enabled: spec.enabled,
                        schedule: Schedule::new(
                            spec.start,
                            spec.length.map(|l| spec.start + Duration::seconds(l)),
                        )
                        .unwrap(),
                        policy: spec.policy.clone(),
                        wol: spec.wol,
                        self_service: spec.self_service,
                        created_at: spec.created_at,
                    },
                    jobs,
                }],
            })
            .unwrap();
        containers.extend(applied.containers);
        container_jobs.extend(applied.jobs);
    }

    for &(c, p, installed_at, job) in &world.assignments {
        let job = job
            .filter(|_| !container_jobs.is_empty())
            .map(|j| container_jobs[j % container_jobs.len()]);
        apply(
            store,
            vec![Change::UpsertAssignment {
                assignment: Assignment {
                    computer: computer(c),
                    package: package(p).id,
                    installed_at,
                    job,
                },
            }],
        )
        .unwrap();
    }

    let computer_group = store
        .create_computer_group(name("computers"), None)
        .unwrap()
        .id;
    let members: Vec<ComputerId> = world.computer_group.iter().map(|&c| computer(c)).collect();
    store
        .set_computer_group_members(computer_group, &members)
        .unwrap();
    let sub = store
        .create_computer_group(name("sub"), Some(computer_group))
        .unwrap();
    store
        .set_computer_group_members(sub.id, &computers)
        .unwrap();
    let package_group = store
        .create_package_group(name("packages"), None)
        .unwrap()
        .id;
    let members: Vec<PackageId> = world.package_group.iter().map(|&p| package(p).id).collect();
    store
        .set_package_group_members(package_group, &members)
        .unwrap();
    store
        .create_package_group(name("sub"), Some(package_group))
        .unwrap();

    let mut rules = Vec::new();
    for (r, spec) in world.rules.iter().enumerate() {
        let rule = store
            .create_rule(NewRule {
                name: name(&format!("rule {r}")),
                notes: spec.notes.clone(),
                enabled: spec.enabled,
                computer_group,
                package_group,
                policy: spec.policy.clone(),
                created_at: spec.created_at,
            })
            .unwrap();
        let mut jobs = NewJobs::new();
        let mut keys = std::collections::BTreeSet::new();
        let mut specs = spec.jobs.clone();
        // Compact form: one run per computer.
        specs.sort_by_key(|&(c, ..)| computer(c));
        for (c, p, kind, sequence, state) in specs {
            if keys.insert((computer(c), package(p).id, kind)) {
                jobs.push(NewJob {
                    computer: computer(c),
                    package: package(p).id,
                    kind,
                    sequence,
                    state,
                });
            }
        }
        apply(
            store,
            vec![Change::InsertRuleJobs {
                rule: rule.id,
                at: spec.evaluated_at,
                jobs,
            }],
        )
        .unwrap();
        rules.push(rule.id);
    }

    for &(j, deleted_at) in &world.deleted {
        if container_jobs.is_empty() {
            break;
        }
        let id = container_jobs[j % container_jobs.len()];
        if let Ok(job) = store.job(id) {
            apply(
                store,
                vec![Change::DeleteJob {
                    id,
                    computer: job.computer,
                    expected: job.revision,
                    at: deleted_at,
                }],
            )
            .unwrap();
        }
    }

    store.set_server_state(&world.server).unwrap();
    Ids {
        computers,
        packages: packages.iter().map(|p| p.id).collect(),
        containers,
        container_jobs,
        rules,
        computer_group,
        package_group,
    }
}

// ---- reading everything back -------------------------------------------------------------------

/// An error's kind, for comparing stores that word their messages differently.
fn kind<T>(result: Result<T, StoreError>) -> Result<T, &'static str> {
    result.map_err(|e| match e {
        StoreError::NotFound { .. } => "NotFound",
        StoreError::Conflict { .. } => "Conflict",
        StoreError::Duplicate { .. } => "Duplicate",
        StoreError::Invalid { .. } => "Invalid",
        StoreError::Corrupt { .. } => "Corrupt",
        StoreError::Backend(_) => "Backend",
        _ => "other",
    })
}

/// Everything readable about a world, with orders the trait leaves open normalised.
fn read_all(store: &dyn Store, ids: &Ids) -> BTreeMap<String, String> {
    fn put(reads: &mut BTreeMap<String, String>, key: String, value: impl Debug) {
        reads.insert(key, format!("{value:#?}"));
    }
    let mut reads = BTreeMap::new();
    put(&mut reads, "dump".into(), dump(store));
    put(&mut reads, "server".into(), kind(store.server_state()));
    for &c in &ids.computers {
        put(&mut reads, format!("computer {c}"), kind(store.computer(c)));
        let computer = store.computer(c).unwrap();
        put(
            &mut reads,
            format!("computer by hostname {c}"),
            kind(store.computer_by_hostname(&computer.hostname.as_str().to_uppercase())),
        );
        put(
            &mut reads,
            format!("credentials {c}"),
            kind(store.credentials(c)),
        );
        put(
            &mut reads,
            format!("assignments {c}"),
            kind(store.assignments(c)),
        );
        let planner = kind(store.planner_snapshot(c)).map(|mut s| {
            s.jobs.sort_by_key(|j| j.id);
            for origin in s.origins.values_mut() {
                origin.failed.sort_by_key(|f| (f.sequence, f.id));
            }
            s
        });
        put(&mut reads, format!("planner {c}"), planner);
        let filter = JobFilter {
            computer: Some(c),
            ..JobFilter::default()
        };
        put(
            &mut reads,
            format!("jobs of computer {c}"),
            kind(store.list_jobs(&filter, Page::first(usize::MAX))),
        );
    }
    for &p in &ids.packages {
        put(&mut reads, format!("package {p}"), kind(store.package(p)));
        let filter = JobFilter {
            package: Some(p),
            ..JobFilter::default()
        };
        put(
            &mut reads,
            format!("jobs of package {p}"),
            kind(store.list_jobs(&filter, Page::first(usize::MAX))),
        );
    }
    for package in store.list_packages(Page::first(usize::MAX)).unwrap() {
        put(
            &mut reads,
            format!("family {}", package.family),
            kind(store.family(package.family)),
        );
    }
    for &c in &ids.containers {
        put(
            &mut reads,
            format!("container {c}"),
            kind(store.container(c)),
        );
    }
    let origins = ids
        .containers
        .iter()
        .map(|&c| Origin::Container(c))
        .chain(ids.rules.iter().map(|&r| Origin::Rule(r)));
    for origin in origins {
        let filter = JobFilter {
            origin: Some(origin),
            ..JobFilter::default()
        };
        put(
            &mut reads,
            format!("jobs of {origin}"),
            kind(store.list_jobs(&filter, Page::first(usize::MAX))),
        );
    }
    for &r in &ids.rules {
        put(&mut reads, format!("rule {r}"), kind(store.rule(r)));
    }
    for state in JobState::ALL {
        let filter = JobFilter {
            state: Some(state),
            ..JobFilter::default()
        };
        put(
            &mut reads,
            format!("jobs {state}"),
            kind(store.list_jobs(&filter, Page::first(usize::MAX))),
        );
    }
    let all_jobs: Vec<JobId> = store
        .list_jobs(&JobFilter::default(), Page::first(usize::MAX))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .chain(ids.container_jobs.iter().copied())
        .collect();
    for id in all_jobs {
        put(&mut reads, format!("job {id}"), kind(store.job(id)));
        let report = kind(store.report_snapshot(id)).map(|mut s| {
            s.origin_jobs.sort_by_key(|j| j.id);
            s.family_assignments
                .sort_by_key(|a| (a.installed_at, a.package));
            s
        });
        put(&mut reads, format!("report {id}"), report);
    }
    // Pages of two, walked by cursor, add up to the whole list.
    let mut paged = Vec::new();
    let mut page = Page::first(2);
    loop {
        let jobs = store.list_jobs(&JobFilter::default(), page).unwrap();
        let Some(last) = jobs.last() else { break };
        page.after = Some(last.id.0);
        paged.extend(jobs);
    }
    put(&mut reads, "jobs paged".into(), paged);
    let mut groups = store.computer_groups().unwrap();
    groups.sort_by_key(|(g, _)| g.id);
    put(&mut reads, "computer groups".into(), groups);
    put(
        &mut reads,
        "package groups".into(),
        store.package_groups().unwrap(),
    );
    let deploy = kind(store.deploy_snapshot()).map(|mut s| {
        s.computer_groups.sort_by_key(|g| g.id);
        s.package_groups.sort_by_key(|g| g.id);
        s
    });
    put(&mut reads, "deploy".into(), deploy);
    let rules = kind(store.rule_snapshot()).map(|mut s| {
        s.deploy.computer_groups.sort_by_key(|g| g.id);
        s.deploy.package_groups.sort_by_key(|g| g.id);
        s.rules.sort_by_key(|r| r.id);
        s.jobs.sort_by_key(|j| j.id);
        // Computers whose assignment revision is 0 may be absent.
        s.assignment_revisions.retain(|_, r| r.0 != 0);
        s
    });
    put(&mut reads, "rule snapshot".into(), rules);
    reads
}

/// Housekeeping may leave out containers that cannot need anything: those it gives must be
/// complete and equal to the reference's.
fn check_housekeeping(reference: &dyn Store, store: &dyn Store) {
    // Far in the future: every container with an end has ended.
    let now = oco_core::chrono::DateTime::<oco_core::chrono::Utc>::MAX_UTC;
    let want = reference.housekeeping_snapshot(now).unwrap();
    let got = store.housekeeping_snapshot(now).unwrap();
    assert_eq!(got.oldest_tombstone, want.oldest_tombstone);
    for entry in &got.containers {
        let expected = want
            .containers
            .iter()
            .find(|e| e.container.id == entry.container.id)
            .expect("housekeeping gave a container the reference does not have");
        let mut jobs = entry.jobs.clone();
        jobs.sort_by_key(|j| j.id);
        let mut expected_jobs = expected.jobs.clone();
        expected_jobs.sort_by_key(|j| j.id);
        assert_eq!(entry.container, expected.container);
        assert_eq!(jobs, expected_jobs);
        for job in &jobs {
            assert_eq!(
                got.computers.get(&job.computer),
                want.computers.get(&job.computer)
            );
        }
    }
}

fn assert_same_reads(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (key, value) in want {
        assert_eq!(&got[key], value, "`{key}` differs from the reference");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_field_round_trips(world in world()) {
        let reference = MemoryStore::new();
        let reference_ids = write(&reference, &world);
        let want = read_all(&reference, &reference_ids);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oco.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        let ids = write(&store, &world);
        prop_assert_eq!(&ids, &reference_ids, "the store assigned other ids");
        assert_same_reads(&want, &read_all(&store, &ids));
        check_housekeeping(&reference, &store);
        drop(store);

        let reopened = SqliteStore::open(&path).unwrap();
        assert_same_reads(&want, &read_all(&reopened, &ids));
    }
}

/// Agent output is arbitrary text: control characters, NUL included, survive.
#[test]
fn job_output_with_control_characters_round_trips() {
    let (_dir, _path, store) = common::temp_store();
    let computer = store
        .create_computer(oco_core::store::testkit::new_computer("pc"))
        .unwrap();
    let family = store.create_family(name("app")).unwrap();
    let package = store
        .create_package(oco_core::store::testkit::package(family.id, "1.0", vec![]))
        .unwrap();
    let mut job = common::waiting_job(computer.id, &package, 1);
    job.output = "line 1\r\nline\t2\u{0}after NUL\u{1b}[31m\u{7f}".into();
    job.snapshot.procedure.command = "cmd /c \"echo\u{0}\"".into();
    let applied = store
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer {
                container: common::open_container("c"),
                jobs: vec![job.clone()],
            }],
        })
        .unwrap();
    let stored = store.job(applied.jobs[0]).unwrap();
    assert_eq!(stored.output, job.output);
    assert_eq!(stored.snapshot, job.snapshot);
}

/// Instants the model allows beyond what nanoseconds since 1970 in 64 bits hold (after 2262,
/// before 1677): each is stored exactly or refused with an error, never silently changed.
#[test]
fn far_instants_round_trip_or_are_refused() {
    use oco_core::chrono::TimeZone;
    let (_dir, _path, store) = common::temp_store();
    let computer = store
        .create_computer(oco_core::store::testkit::new_computer("pc"))
        .unwrap();
    for year in [1600, 2300, 9999] {
        let instant = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();

        let mut c = common::open_container(&format!("until {year}"));
        c.schedule = Schedule::new(
            instant.min(at(0)),
            Some(instant.max(at(0)) + Duration::days(1)),
        )
        .unwrap();
        c.created_at = instant;
        match store.apply(&ChangeSet {
            changes: vec![Change::CreateContainer {
                container: c.clone(),
                jobs: vec![],
            }],
        }) {
            Ok(applied) => {
                c.id = applied.containers[0];
                assert_eq!(store.container(c.id).unwrap(), c, "year {year}");
            }
            Err(StoreError::Invalid { .. } | StoreError::Backend(_)) => {}
            Err(other) => panic!("year {year}: {other:?}"),
        }

        match store.set_last_seen(computer.id, instant) {
            Ok(()) => assert_eq!(
                store.computer(computer.id).unwrap().last_seen,
                Some(instant),
                "year {year}"
            ),
            Err(StoreError::Invalid { .. } | StoreError::Backend(_)) => {}
            Err(other) => panic!("year {year}: {other:?}"),
        }
    }
    // Whatever was refused, the store still reads.
    store.list_containers(Page::first(10)).unwrap();
}
