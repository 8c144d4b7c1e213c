//! Deployment rules: create, list, get, edit, enable/disable, evaluate on demand, renew, delete,
//! statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::engine::{Evaluated, RuleStatistics};
use oco_core::model::{
    check_text, ComputerGroupId, DeploymentRule, JobId, Name, PackageGroupId, RuleId,
    MAX_NOTES_CHARS,
};
use oco_core::store::NewRule;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, engine, heavy, list_page, HeavyGate};
use crate::observe::Created;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/rules", get(list).post(create))
        .route("/rules/{id}", get(one).patch(edit).delete(remove))
        .route("/rules/{id}/enable", post(enable))
        .route("/rules/{id}/disable", post(disable))
        .route("/rules/{id}/evaluate", post(evaluate))
        .route("/rules/{id}/renew", post(renew))
        .route("/rules/{id}/statistics", get(statistics))
}

/// A rule to create, and a rule's editable form (see [`super::patch`]). Absent or `null`
/// fields take their defaults: no notes, enabled, the default policy in the server's zone.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleInput {
    name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    notes: String,
    #[serde(default)]
    enabled: Option<bool>,
    computer_group: ComputerGroupId,
    package_group: PackageGroupId,
    #[serde(default)]
    policy: Option<PolicyInput>,
}

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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewInput {
    #[serde(default)]
    jobs: Option<Vec<JobId>>,
}

/// A rule, what re-evaluating the rules after its change did, and the constraint lint's
/// warnings on its policy (on a create or an edit).
#[derive(Debug, Serialize)]
struct Changed {
    rule: DeploymentRule,
    evaluations: Vec<Evaluated>,
    /// Present only when the lint found something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

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

async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DeploymentRule>> {
    blocking(move || Ok(Json(state.store().rule(RuleId(id))?))).await
}

/// Applies a merge patch to the rule.
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

async fn enable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Changed>> {
    set_enabled(state, id, true).await
}

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

async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        engine(&state).delete_rule(RuleId(id), now)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn renew(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<RenewInput>,
) -> ApiResult<Json<serde_json::Value>> {
    heavy(HeavyGate::of(&state), move || {
        let renewal = engine(&state).renew_rule(RuleId(id), input.jobs.as_deref())?;
        Ok(Json(serde_json::json!({
            "renewed": renewal.renewed,
            "incompatible": renewal.incompatible,
            "skipped": renewal.skipped,
        })))
    })
    .await
}

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
