//! Deployment rules: create, list, get, edit, enable/disable, evaluate on demand, renew, delete,
//! statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::engine::{Evaluated, RuleStatistics};
use oco_core::model::{
    check_text, ComputerGroupId, DeploymentRule, JobId, Name, PackageGroupId, RuleId,
    MAX_NOTES_CHARS,
};
use oco_core::store::NewRule;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{
    BadRequest, Busy, Conflict, Internal, MergePatch, NotFound, UnsupportedMediaType,
};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, engine, heavy, list_page, HeavyGate};
use crate::observe::Created;
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one, edit, remove))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(evaluate))
        .routes(routes!(renew))
        .routes(routes!(statistics))
}

/// A rule to create, and a rule's editable form (a `PATCH` is a JSON merge patch of it).
/// Absent or `null` fields take their defaults: no notes, enabled, the default policy in the
/// server's zone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleInput {
    /// One line, not blank, at most 255 characters.
    #[schema(example = "office tools")]
    name: String,
    /// Free text, at most 10,000 characters.
    #[serde(default, deserialize_with = "null_is_default")]
    #[schema(nullable)]
    notes: String,
    /// A disabled rule's jobs are held and it claims nothing; absent or `null`: enabled.
    #[serde(default)]
    enabled: Option<bool>,
    /// Whose computers.
    computer_group: ComputerGroupId,
    /// Which packages, in order.
    package_group: PackageGroupId,
    /// How its jobs are delivered; absent or `null`: the default policy.
    #[serde(default)]
    policy: Option<PolicyInput>,
}

/// A `PATCH` body: a JSON merge patch of [`RuleInput`].
type RulePatch = MergePatch<RuleInput>;

impl From<&DeploymentRule> for RuleInput {
    fn from(rule: &DeploymentRule) -> Self {
        RuleInput {
            name: rule.name.as_str().to_owned(),
            notes: rule.notes.clone(),
            enabled: Some(rule.enabled),
            computer_group: rule.computer_group,
            package_group: rule.package_group,
            policy: Some(PolicyInput::from(&rule.policy)),
        }
    }
}

impl RuleInput {
    /// The rule with these fields, keeping `id` and `created_at`, and the constraint lint's
    /// warnings on its policy.
    fn into_rule(
        self,
        id: RuleId,
        created_at: DateTime<Utc>,
        zone: Tz,
    ) -> ApiResult<(DeploymentRule, Vec<Warning>)> {
        let (policy, warnings) = policy_or_default(self.policy, zone, "policy")?;
        let rule = DeploymentRule {
            id,
            name: Name::new("name", &self.name)?,
            notes: {
                check_text("notes", &self.notes, MAX_NOTES_CHARS, true)?;
                self.notes
            },
            enabled: self.enabled.unwrap_or(true),
            computer_group: self.computer_group,
            package_group: self.package_group,
            policy,
            created_at,
        };
        Ok((rule, warnings))
    }
}

/// Which failed-like jobs of the rule to renew in place (absent: all).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RuleRenewal)]
struct RenewInput {
    /// The jobs to renew, by id; absent or `null`: every failed or expired job of the rule.
    #[serde(default)]
    jobs: Option<Vec<JobId>>,
}

/// What renewing a rule's jobs did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RuleRenewed)]
struct Renewed {
    /// The jobs renewed.
    renewed: Vec<JobId>,
    /// Jobs left as they are because their package no longer fits their computer.
    incompatible: Vec<JobId>,
    /// Jobs not renewed for another reason (not failed or expired, …).
    skipped: Vec<JobId>,
}

/// A rule, what re-evaluating the rules after its change did, and the constraint lint's
/// warnings on its policy (on a create or an edit).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChangedRule)]
struct Changed {
    /// The rule.
    rule: DeploymentRule,
    /// What re-evaluating each rule the change concerns did, in rule order.
    evaluations: Vec<Evaluated>,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// A rule's path parameter.
const RULE: &str = "The rule's id.";

/// Creates a deployment rule and evaluates it.
#[utoipa::path(
    post,
    path = "/rules",
    operation_id = "create_rule",
    tag = "rules",
    request_body = RuleInput,
    responses(
        (status = 201, description = "The rule and what evaluating it did.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Body(input): Body<RuleInput>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<Changed>)> {
    let now = state.clock().now();
    // The store assigns the id.
    let (rule, warnings) = input.into_rule(RuleId(0), now, state.options().time_zone)?;
    heavy(HeavyGate::of(&state), move || {
        let created = engine(&state).create_rule(NewRule::from(rule), now)?;
        Ok((
            StatusCode::CREATED,
            Created::id(created.value.id),
            Json(Changed {
                rule: created.value,
                evaluations: created.evaluations,
                warnings,
            }),
        ))
    })
    .await
}

/// Lists deployment rules by id.
#[utoipa::path(
    get,
    path = "/rules",
    operation_id = "list_rules",
    tag = "rules",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of rules.", body = Paged<DeploymentRule>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<DeploymentRule>>> {
    list_page(
        state,
        &query,
        |store, page| store.list_rules(page),
        |r| r.id.0,
    )
    .await
}

/// Shows a deployment rule.
#[utoipa::path(
    get,
    path = "/rules/{id}",
    operation_id = "get_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 200, description = "The rule.", body = DeploymentRule),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DeploymentRule>> {
    blocking(move || Ok(Json(state.store().rule(RuleId(id))?))).await
}

/// Applies a merge patch to the rule and re-evaluates it.
#[utoipa::path(
    patch,
    path = "/rules/{id}",
    operation_id = "update_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    request_body(content(
        (RulePatch = "application/merge-patch+json"),
        (RulePatch = "application/json"),
    )),
    responses(
        (status = 200, description = "The rule and what re-evaluating it did.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn edit(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    patch: Patch,
) -> ApiResult<Json<Changed>> {
    let now = state.clock().now();
    let zone = state.options().time_zone;
    heavy(HeavyGate::of(&state), move || {
        let old = state.store().rule(RuleId(id))?;
        let (new, warnings) =
            patch
                .apply(&RuleInput::from(&old))?
                .into_rule(old.id, old.created_at, zone)?;
        let updated = engine(&state).update_rule(new, now)?;
        Ok(Json(Changed {
            rule: updated.value,
            evaluations: updated.evaluations,
            warnings,
        }))
    })
    .await
}

/// Enables a rule and re-evaluates it.
#[utoipa::path(
    post,
    path = "/rules/{id}/enable",
    operation_id = "enable_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 200, description = "The rule and what re-evaluating it did.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn enable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Changed>> {
    set_enabled(state, id, true).await
}

/// Disables a rule (its jobs are held, it claims nothing) and re-evaluates it.
#[utoipa::path(
    post,
    path = "/rules/{id}/disable",
    operation_id = "disable_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 200, description = "The rule and what re-evaluating it did.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn disable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Changed>> {
    set_enabled(state, id, false).await
}

async fn set_enabled(state: AppState, id: i64, enabled: bool) -> ApiResult<Json<Changed>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let changed = engine(&state).set_rule_enabled(RuleId(id), enabled, now)?;
        Ok(Json(Changed {
            rule: changed.value,
            evaluations: changed.evaluations,
            warnings: Vec::new(),
        }))
    })
    .await
}

/// Evaluates a rule now, in full.
#[utoipa::path(
    post,
    path = "/rules/{id}/evaluate",
    operation_id = "evaluate_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 200, description = "The rule and what evaluating it did.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn evaluate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Changed>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = RuleId(id);
        let rule = store.rule(id)?;
        let evaluated = engine(&state).evaluate_rule(&rule, now)?;
        Ok(Json(Changed {
            rule,
            evaluations: vec![evaluated],
            warnings: Vec::new(),
        }))
    })
    .await
}

/// Deletes a rule; its jobs that have not started are deleted, running ones orphaned.
#[utoipa::path(
    delete,
    path = "/rules/{id}",
    operation_id = "delete_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        engine(&state).delete_rule(RuleId(id), now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Renews a rule's failed and expired jobs in place.
#[utoipa::path(
    post,
    path = "/rules/{id}/renew",
    operation_id = "renew_rule",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    request_body = RenewInput,
    responses(
        (status = 200, description = "What was renewed.", body = Renewed),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn renew(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<RenewInput>,
) -> ApiResult<Json<Renewed>> {
    heavy(HeavyGate::of(&state), move || {
        let renewal = engine(&state).renew_rule(RuleId(id), input.jobs.as_deref())?;
        Ok(Json(Renewed {
            renewed: renewal.renewed,
            incompatible: renewal.incompatible,
            skipped: renewal.skipped,
        }))
    })
    .await
}

/// A rule's progress (status, runtimes, jobs in each state) and its conflicts.
#[utoipa::path(
    get,
    path = "/rules/{id}/statistics",
    operation_id = "rule_statistics",
    tag = "rules",
    params(("id" = i64, Path, description = RULE, example = 1)),
    responses(
        (status = 200, description = "The rule's statistics.", body = RuleStatistics),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn statistics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RuleStatistics>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        Ok(Json(engine(&state).rule_statistics(RuleId(id), now)?))
    })
    .await
}
