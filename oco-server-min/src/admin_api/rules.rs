//! Deployment rules: create, list, get, edit, enable/disable, evaluate on demand, renew, delete,
//! statistics.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::housekeeping::{statistics_of, ContainerStatistics};
use oco_core::model::resolve::resolve_package_group;
use oco_core::model::{
    check_text, ComputerGroupId, DeploymentRule, JobId, Name, Origin, PackageGroupId, RuleId,
    MAX_NOTES_CHARS,
};
use oco_core::rules::{Conflict, RuleEvent, RuleWorld, Scope};
use oco_core::store::{NewRule, RulePart, RuleSnapshot, Store};
use serde::{Deserialize, Serialize};

use super::containers::{apply_renewal, chosen_jobs, renew_inputs};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::patch::{null_is_default, Patch};
use super::policy::{policy_or_default, PolicyInput, Warning};
use super::{blocking, change_with_rules_in, heavy, list_page, HeavyGate};
use crate::rules::{Evaluated, CHUNK_COMPUTERS};
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

/// 409 with the family-version conflicts the world of `after` has and `before` has not.
///
/// # Errors
///
/// [`ApiError::family_conflicts`] when there are any.
pub(super) fn refuse_new_conflicts(before: &RuleWorld, after: &RuleSnapshot) -> ApiResult<()> {
    let current: BTreeSet<Conflict> = before.conflicts().into_iter().collect();
    let new: Vec<Conflict> = RuleWorld::from_snapshot(after)
        .conflicts()
        .into_iter()
        .filter(|conflict| !current.contains(conflict))
        .collect();
    if new.is_empty() {
        Ok(())
    } else {
        Err(ApiError::family_conflicts(new))
    }
}

/// The world of `snapshot`, and the snapshot without its jobs (what a conflict check needs, to
/// build the world after a change on): the jobs are moved into the world, not copied.
pub(super) fn world_and_rest(mut snapshot: RuleSnapshot) -> (RuleWorld, RuleSnapshot) {
    let jobs = std::mem::take(&mut snapshot.jobs);
    let mut world = RuleWorld::from_snapshot(&snapshot);
    world.set_jobs(jobs);
    (world, snapshot)
}

/// Adds to `snapshot` the packages of its rules that it lacks: a snapshot of a part of the world
/// holds the packages of the rules as they were, and a change may give a rule more (a rule that
/// takes another package group, a package group that gains members or moves).
///
/// # Errors
///
/// The store's.
pub(super) fn complete_packages(store: &dyn Store, snapshot: &mut RuleSnapshot) -> ApiResult<()> {
    let deploy = &snapshot.deploy;
    let missing: BTreeSet<_> = snapshot
        .rules
        .iter()
        .flat_map(|rule| {
            resolve_package_group(
                rule.package_group,
                &deploy.package_groups,
                &deploy.package_group_members,
            )
        })
        .filter(|id| !deploy.packages.contains_key(id))
        .collect();
    for id in missing {
        let package = store.package(id)?;
        snapshot.deploy.packages.insert(id, package);
    }
    Ok(())
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

/// A rule's statistics, as a container's (never `scheduled`), with its conflicts.
#[derive(Debug, Serialize)]
struct RuleStatistics {
    #[serde(flatten)]
    statistics: ContainerStatistics,
    conflicts: Vec<Conflict>,
}

/// 404 naming the field for a group the snapshot does not know.
fn check_groups(snapshot: &RuleSnapshot, rule: &DeploymentRule) -> ApiResult<()> {
    let deploy = &snapshot.deploy;
    if !deploy
        .computer_groups
        .iter()
        .any(|g| g.id == rule.computer_group)
    {
        return Err(ApiError::not_found(format!(
            "computer group {} not found",
            rule.computer_group
        ))
        .with_field("computer_group"));
    }
    if !deploy
        .package_groups
        .iter()
        .any(|g| g.id == rule.package_group)
    {
        return Err(
            ApiError::not_found(format!("package group {} not found", rule.package_group))
                .with_field("package_group"),
        );
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Body(input): Body<RuleInput>,
) -> ApiResult<(StatusCode, Json<Changed>)> {
    let now = state.clock().now();
    // The store assigns the id; conflicts name the new rule as rule 0.
    let (rule, warnings) = input.into_rule(RuleId(0), now, state.options().time_zone)?;
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let part = crate::rules::rules_part(store, &[&rule])?;
        // The world before needs no job (conflicts, and which rules to evaluate where): the
        // rule's jobs are read a chunk at a time as it is evaluated.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        check_groups(&snapshot, &rule)?;
        let (before, mut after) = world_and_rest(snapshot);
        after.rules.push(rule.clone());
        complete_packages(store, &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        let (rule, diffs) = change_with_rules_in(
            store,
            &part,
            &before,
            now,
            || Ok(store.create_rule(NewRule::from(rule))?),
            |rule| RuleEvent::RuleChanged { rule: rule.id },
            |rule| store.delete_rule(rule.id),
        )?;
        Ok((
            StatusCode::CREATED,
            Json(Changed {
                rule,
                evaluations: diffs,
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

/// Replaces rule `id` with `edit` applied to it, refusing new family conflicts, and
/// re-evaluates.
fn update(
    store: &dyn Store,
    id: RuleId,
    now: DateTime<Utc>,
    edit: impl FnOnce(&mut DeploymentRule) -> ApiResult<()>,
) -> ApiResult<Json<Changed>> {
    let old = store.rule(id)?;
    let mut new = old.clone();
    edit(&mut new)?;
    let part = crate::rules::rules_part(store, &[&old, &new])?;
    // Without jobs, as for a rule created.
    let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
    check_groups(&snapshot, &new)?;
    let (before, mut after) = world_and_rest(snapshot);
    match after.rules.iter_mut().find(|rule| rule.id == id) {
        Some(rule) => *rule = new.clone(),
        // Being deleted: it no longer takes part in evaluation.
        None => return Err(ApiError::not_found(format!("rule {id} is being deleted"))),
    }
    complete_packages(store, &mut after)?;
    refuse_new_conflicts(&before, &after)?;
    let ((), diffs) = change_with_rules_in(
        store,
        &part,
        &before,
        now,
        || Ok(store.update_rule(&new)?),
        |()| RuleEvent::RuleChanged { rule: id },
        |()| store.update_rule(&old),
    )?;
    Ok(Json(Changed {
        rule: new,
        evaluations: diffs,
        warnings: Vec::new(),
    }))
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
        let mut warnings = Vec::new();
        let Json(mut changed) = update(state.store().as_ref(), RuleId(id), now, |rule| {
            (*rule, warnings) =
                patch
                    .apply(&RuleInput::from(&*rule))?
                    .into_rule(rule.id, rule.created_at, zone)?;
            Ok(())
        })?;
        changed.warnings = warnings;
        Ok(Json(changed))
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
        update(state.store().as_ref(), RuleId(id), now, |rule| {
            rule.enabled = enabled;
            Ok(())
        })
    })
    .await
}

/// Evaluates `rule` in full and applies the diff, [`CHUNK_COMPUTERS`] computers at a time,
/// recomputing a chunk's diff if it lost a race with an agent report.
fn evaluate_fully(
    store: &dyn Store,
    rule: &DeploymentRule,
    now: DateTime<Utc>,
) -> ApiResult<Evaluated> {
    Ok(crate::rules::evaluate_rule_in_chunks(
        store,
        rule,
        now,
        CHUNK_COMPUTERS,
    )?)
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
        let evaluated = evaluate_fully(store, &rule, now)?;
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
        let store = state.store().as_ref();
        let id = RuleId(id);
        let rule = store.rule(id)?;
        let event = RuleEvent::RuleChanged { rule: id };
        let part = crate::rules::rules_part(store, &[&rule])?;
        let before = crate::rules::read_world(store, Some(&part.clone().without_jobs()))?;
        let deleting_already = !before.rules.contains_key(&id);
        store.delete_rule(id)?;
        // Retires its jobs (running ones are orphaned) and settles other rules' claims. A delete
        // cannot be undone; after a failure, deleting again finishes the retirement.
        crate::rules::reevaluate_in(store, &event, Some(&part), &before, now)?;
        if deleting_already {
            evaluate_fully(store, &rule, now)?;
        }
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
        let store = state.store().as_ref();
        let id = RuleId(id);
        store.rule(id)?;
        let jobs = chosen_jobs(store, Origin::Rule(id), input.jobs.as_deref())?;
        let (packages, computers) = renew_inputs(store, &jobs)?;
        let renewal = oco_core::deploy::renew_in_place(&jobs, &packages, &computers);
        let (renewal, _) = apply_renewal(store, renewal)?;
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
        let store = state.store().as_ref();
        let id = RuleId(id);
        let rule = store.rule(id)?;
        let summary = store.job_summary(Origin::Rule(id))?;
        Ok(Json(RuleStatistics {
            statistics: statistics_of(&summary, None, rule.created_at, now),
            conflicts: rule_conflicts(store, id)?,
        }))
    })
    .await
}

/// The conflicts a full evaluation of rule `id` reports, reading only the computers where it
/// can find one (`RuleWorld::conflict_candidates`) and no job.
fn rule_conflicts(store: &dyn Store, id: RuleId) -> ApiResult<Vec<Conflict>> {
    let rules = RuleWorld::from_snapshot(&store.rule_snapshot_part(&RulePart::default())?);
    if !rules.rules.contains_key(&id) {
        // Being deleted: it no longer takes part in evaluation.
        return Ok(Vec::new());
    }
    let enabled: Vec<&DeploymentRule> = rules
        .rules
        .values()
        .map(|r| &r.rule)
        .filter(|rule| rule.enabled || rule.id == id)
        .collect();
    let mut others = crate::rules::rule_members(store, &enabled)?;
    let members = others.remove(&id).unwrap_or_default();
    let candidates = rules.conflict_candidates(id, &members, &others);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let part = RulePart::computers(candidates.iter().copied()).without_jobs();
    let world = RuleWorld::from_snapshot(&store.rule_snapshot_part(&part)?);
    Ok(world.conflicts_of(id, &Scope::computers(candidates)))
}
