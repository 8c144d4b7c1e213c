//! Jobs: list with filters and paging, get one, explain why one is held.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use oco_core::model::{ComputerId, Job, JobId, JobState, Origin, PackageId};
use oco_core::plan::{plan, HoldReason};
use oco_core::store::JobFilter;
use serde::{Deserialize, Serialize};

use super::blocking;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, PageQuery, Paged};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(one))
        .route("/jobs/{id}/explain", get(explain))
}

/// `?origin=container:<id>|rule:<id>&computer=&package=&state=&after=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    origin: Option<String>,
    computer: Option<i64>,
    package: Option<i64>,
    state: Option<JobState>,
    after: Option<i64>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> ApiResult<Json<Paged<Job>>> {
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
        let items = state.store().list_jobs(&filter, page)?;
        Ok(Json(Paged::of(items, limit, |j| j.id.0)))
    })
    .await
}

async fn one(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<Job>> {
    blocking(move || Ok(Json(state.store().job(JobId(id))?))).await
}

/// `?address=<the agent's address>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    address: Option<IpAddr>,
}

/// Whether a job would be handed out if its computer's agent polled now.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
enum Explanation {
    /// It would be handed out.
    Deliverable { job: JobId, address: Option<IpAddr> },
    /// It is held, for this reason (the first that applies).
    Held {
        job: JobId,
        address: Option<IpAddr>,
        reason: HoldReason,
    },
    /// Its origin's IP ranges decide, and the agent's address was not given (`?address=`).
    DependsOnAddress { job: JobId },
    /// It is not pending: nothing is handed out.
    NotPending { job: JobId, state: JobState },
}

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
        // Unknown address: the unspecified one, which only a range decision can tell apart.
        let address = query.address;
        let planned = plan(
            &snapshot,
            now,
            address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            state.settings(),
        );
        if planned.deliver.iter().any(|d| d.job.id == id) {
            return Ok(Json(Explanation::Deliverable { job: id, address }));
        }
        let reason = planned
            .held
            .into_iter()
            .find(|held| held.job.id == id)
            .map(|held| held.reason)
            .ok_or_else(|| {
                ApiError::internal("explain", &"the planner neither delivered nor held the job")
            })?;
        Ok(Json(match (reason, address) {
            (HoldReason::IpDenied, None) => Explanation::DependsOnAddress { job: id },
            (reason, address) => Explanation::Held {
                job: id,
                address,
                reason,
            },
        }))
    })
    .await
}
