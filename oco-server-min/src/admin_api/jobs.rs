//! Jobs: list with filters and paging, get one, explain why one is held.
//!
//! `explain` plans the job's computer at the current time for an address: the one given with
//! `?address=`, else that of the computer's last accepted hello (the answer says which, as
//! `address_source`). With neither, it answers `deliverable` or `held` only when every address
//! gets that answer, and `depends-on-address` otherwise. Its `findings` are those of the
//! constraint lint on the origin's policy that bear on this verdict (see [`bearing`]).

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::State;
use axum::Json;
use oco_core::chrono::{DateTime, Utc};
use oco_core::constraint::{Finding, FindingKind};
use oco_core::model::{ComputerId, DeliveryPolicy, Job, JobId, JobState, Origin, PackageId};
use oco_core::plan::{plan, HoldReason};
use oco_core::store::{JobFilter, ListedJob};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::blocking;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, PageQuery, Paged};
use super::openapi::{BadRequest, Internal, NotFound};
use super::policy::Warning;
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(explain))
}

/// How much of each job's output a listing shows unless asked otherwise, in characters.
const LISTED_OUTPUT_CHARS: usize = 1_000;

/// The most of each job's output a listing shows when asked (`?output_chars=`): a page of the
/// longest listing stays within tens of megabytes whatever the outputs.
const MAX_LISTED_OUTPUT_CHARS: usize = 16_384;

/// `?origin=container:<id>|rule:<id>&computer=&package=&state=&after=&limit=&output_chars=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct JobsQuery {
    /// Only the jobs of this container or rule: `container:<id>` or `rule:<id>`.
    #[param(
        example = "container:1",
        pattern = r"^\s*(container|rule)\s*:\s*[+-]?[0-9]+\s*$"
    )]
    origin: Option<String>,
    /// Only the jobs of this computer.
    computer: Option<i64>,
    /// Only the jobs of this package.
    package: Option<i64>,
    /// Only the jobs in this state.
    #[param(inline)]
    state: Option<JobState>,
    /// The last id of the previous page.
    after: Option<i64>,
    /// How many jobs (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// How much of each job's output to show, in characters (default 1,000, at most 16,384).
    #[param(maximum = 16384)]
    output_chars: Option<usize>,
}

/// Jobs by id, each output cut to its first `output_chars` characters (1,000 by default, at
/// most 16,384) with `output_truncated` saying whether it was; `GET /jobs/{id}` has it whole.
#[utoipa::path(
    get,
    path = "/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = Paged<ListedJob>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> ApiResult<Json<Paged<ListedJob>>> {
    let output_chars = match query.output_chars {
        None => LISTED_OUTPUT_CHARS,
        Some(chars) if chars <= MAX_LISTED_OUTPUT_CHARS => chars,
        Some(chars) => {
            return Err(ApiError::invalid(
                "output_chars",
                format!("must be at most {MAX_LISTED_OUTPUT_CHARS}, got {chars}"),
            ))
        }
    };
    let filter = JobFilter {
        origin: query
            .origin
            .as_deref()
            .map(str::parse::<Origin>)
            .transpose()?,
        computer: query.computer.map(ComputerId),
        package: query.package.map(PackageId),
        state: query.state,
    };
    let paging = PageQuery {
        after: query.after,
        limit: query.limit,
    };
    let (page, limit) = (paging.probe()?, paging.limit()?);
    blocking(move || {
        let items = state
            .store()
            .list_jobs_abridged(&filter, page, output_chars)?;
        Ok(Json(Paged::of(items, limit, |listed| listed.job.id.0)))
    })
    .await
}

/// Shows a job, with its whole output.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job's id.", example = 1)),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn one(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<Job>> {
    blocking(move || Ok(Json(state.store().job(JobId(id))?))).await
}

/// `?address=<the agent's address>`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExplainQuery {
    /// The agent's address to plan for (IPv4 or IPv6); absent: that of the computer's last
    /// accepted hello, if any.
    #[param(value_type = Option<String>, example = "192.0.2.7")]
    address: Option<IpAddr>,
}

/// Whether a job would be handed out if its computer's agent polled now, and from which address
/// that was decided.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case", tag = "status")]
enum Explanation {
    /// It would be handed out.
    Deliverable {
        job: JobId,
        #[serde(flatten)]
        address: Address,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        findings: Vec<Warning>,
    },
    /// It is held, for this reason (the first that applies).
    Held {
        job: JobId,
        #[serde(flatten)]
        address: Address,
        reason: HoldReason,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        findings: Vec<Warning>,
    },
    /// No address was given and none is known, and the verdict differs between addresses (the
    /// origin's IP ranges decide); `?address=` tells.
    DependsOnAddress {
        job: JobId,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        findings: Vec<Warning>,
    },
    /// It is not pending: nothing is handed out.
    NotPending { job: JobId, state: JobState },
}

/// The address a verdict was decided for, and where it came from; both `null` when the verdict
/// is the same for every address.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
struct Address {
    /// The agent's address the verdict is for.
    #[schema(value_type = Option<String>, required = true)]
    address: Option<IpAddr>,
    /// Where the address came from.
    #[schema(required = true)]
    address_source: Option<AddressSource>,
}

/// Where `explain` took the agent's address from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum AddressSource {
    /// The request's `?address=`.
    Query,
    /// The address of the computer's last accepted hello.
    LastHello,
}

/// What the planner decides for one job: handed out, or held for a reason.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Deliverable,
    Held(HoldReason),
}

/// Whether a pending job would be handed out if its computer's agent polled now, and if not,
/// why.
#[utoipa::path(
    get,
    path = "/jobs/{id}/explain",
    operation_id = "explain_job",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job's id.", example = 1), ExplainQuery),
    responses(
        (status = 200, description = "The verdict.", body = Explanation),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn explain(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ExplainQuery>,
) -> ApiResult<Json<Explanation>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = JobId(id);
        let job = store.job(id)?;
        if !job.state.is_pending() {
            return Ok(Json(Explanation::NotPending {
                job: id,
                state: job.state,
            }));
        }
        let snapshot = store.planner_snapshot(job.computer)?;
        // Missing or corrupt: held whatever the address, and nothing to lint.
        let policy = snapshot
            .origins
            .get(&job.origin)
            .and_then(|origin| origin.policy.as_ref().ok());
        let verdict = |address: IpAddr| -> ApiResult<Verdict> {
            let planned = plan(&snapshot, now, address, state.settings());
            if planned.deliver.iter().any(|d| d.job.id == id) {
                return Ok(Verdict::Deliverable);
            }
            planned
                .held
                .into_iter()
                .find(|held| held.job.id == id)
                .map(|held| Verdict::Held(held.reason))
                .ok_or_else(|| {
                    ApiError::internal("explain", &"the planner neither delivered nor held the job")
                })
        };
        let known = match query.address {
            Some(address) => Some((address, AddressSource::Query)),
            None => store
                .credentials(job.computer)?
                .last_contact
                .map(|contact| (contact.address, AddressSource::LastHello)),
        };
        let (verdict, address) = match known {
            Some((address, source)) => (
                verdict(address)?,
                Address {
                    address: Some(address),
                    address_source: Some(source),
                },
            ),
            None => {
                // Only the origin's IP ranges tell addresses apart: one address they allow and
                // one they deny (where such exist) cover every address.
                let samples: Vec<IpAddr> = match policy {
                    Some(policy) => [true, false]
                        .into_iter()
                        .filter_map(|allowed| policy.ip_ranges.sample(allowed))
                        .collect(),
                    // Missing or corrupt: held whatever the address.
                    None => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
                };
                let verdicts = samples
                    .into_iter()
                    .map(verdict)
                    .collect::<ApiResult<Vec<_>>>()?;
                match verdicts.split_first() {
                    Some((first, rest)) if rest.iter().all(|other| other == first) => (
                        first.clone(),
                        Address {
                            address: None,
                            address_source: None,
                        },
                    ),
                    _ => {
                        return Ok(Json(Explanation::DependsOnAddress {
                            job: id,
                            findings: bearing(policy, None, now),
                        }))
                    }
                }
            }
        };
        let findings = bearing(policy, address.address, now);
        Ok(Json(match verdict {
            Verdict::Deliverable => Explanation::Deliverable {
                job: id,
                address,
                findings,
            },
            Verdict::Held(reason) => Explanation::Held {
                job: id,
                address,
                reason,
                findings,
            },
        }))
    })
    .await
}

/// The findings of the constraint lint on `policy` that bear on the verdict for an agent at
/// `address` at `now` (`None`: some address): a list that allows or denies everything, and an
/// entry that never applies although it covers that address or instant and would decide it the
/// other way. (A redundant entry, or one that never applies and would decide the same, changes
/// no verdict.)
fn bearing(
    policy: Option<&DeliveryPolicy>,
    address: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Vec<Warning> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    let opposite = |finding: &Finding| match finding.kind() {
        FindingKind::AllowsEverything | FindingKind::DeniesEverything => Some(None),
        FindingKind::Shadowed {
            move_before: Some(_),
            ..
        } => finding.entry_number().map(|number| Some(number - 1)),
        _ => None,
    };
    let mut found = Vec::new();
    let ip_text = policy.ip_ranges.to_string();
    let address = address.map(|address| match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    });
    for finding in policy.ip_ranges.lint() {
        let bears = match opposite(&finding) {
            None => false,
            Some(None) => true,
            Some(Some(entry)) => policy.ip_ranges.entries().get(entry).is_some_and(|entry| {
                address.is_none_or(|address| entry.network().contains(&address))
            }),
        };
        if bears {
            found.push(Warning::new("policy.ip_ranges", &ip_text, &finding));
        }
    }
    let time_text = policy.time_frames.to_string();
    let local = now.with_timezone(&policy.time_zone).naive_local();
    for finding in policy.time_frames.lint() {
        let bears = match opposite(&finding) {
            None => false,
            Some(None) => true,
            Some(Some(entry)) => policy
                .time_frames
                .entries()
                .get(entry)
                .is_some_and(|entry| entry.contains_local(local)),
        };
        if bears {
            found.push(Warning::new("policy.time_frames", &time_text, &finding));
        }
    }
    found
}
