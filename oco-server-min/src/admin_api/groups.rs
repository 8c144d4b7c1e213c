//! Computer groups and package groups: create, list, get, move under a parent, set members.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oco_core::model::{ComputerGroupId, ComputerId, Name, PackageGroupId, PackageId};
use oco_core::rules::{RuleEvent, RuleWorld};
use oco_core::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::rules::refuse_new_conflicts;
use super::{blocking, change_with_rules};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/computer-groups",
            get(list_computer_groups).post(create_computer_group),
        )
        .route("/computer-groups/{id}", get(computer_group))
        .route(
            "/computer-groups/{id}/parent",
            put(set_computer_group_parent),
        )
        .route(
            "/computer-groups/{id}/members",
            put(set_computer_group_members),
        )
        .route(
            "/package-groups",
            get(list_package_groups).post(create_package_group),
        )
        .route("/package-groups/{id}", get(package_group))
        .route("/package-groups/{id}/parent", put(set_package_group_parent))
        .route(
            "/package-groups/{id}/members",
            put(set_package_group_members),
        )
}

/// A group with its direct members (package groups: in order).
#[derive(Debug, Serialize)]
struct GroupView<G, M> {
    id: G,
    name: Name,
    parent: Option<G>,
    members: Vec<M>,
}

/// A group to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup<G> {
    name: String,
    parent: Option<G>,
}

/// The new parent (`null`: top level).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetParent<G> {
    parent: Option<G>,
}

/// The new direct members (package groups: in order).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMembers<M> {
    members: Vec<M>,
}

type ComputerGroupView = GroupView<ComputerGroupId, ComputerId>;
type PackageGroupView = GroupView<PackageGroupId, PackageId>;

fn computer_group_view(store: &dyn Store, id: ComputerGroupId) -> ApiResult<ComputerGroupView> {
    store
        .computer_groups()?
        .into_iter()
        .find(|(group, _)| group.id == id)
        .map(|(group, members)| GroupView {
            id: group.id,
            name: group.name,
            parent: group.parent,
            members,
        })
        .ok_or_else(|| ApiError::not_found(format!("computer group {id} not found")))
}

fn package_group_view(store: &dyn Store, id: PackageGroupId) -> ApiResult<PackageGroupView> {
    store
        .package_groups()?
        .into_iter()
        .find(|(group, _)| group.id == id)
        .map(|(group, members)| GroupView {
            id: group.id,
            name: group.name,
            parent: group.parent,
            members,
        })
        .ok_or_else(|| ApiError::not_found(format!("package group {id} not found")))
}

/// The store's `Invalid` for an unknown parent or a cycle, naming the field.
fn field_error(field: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |error| match error {
        StoreError::Invalid { reason } => ApiError::invalid(field, reason),
        other => other.into(),
    }
}

// Computer groups.

async fn create_computer_group(
    State(state): State<AppState>,
    Body(input): Body<CreateGroup<ComputerGroupId>>,
) -> ApiResult<(StatusCode, Json<ComputerGroupView>)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        // A new group has no members: no rule's computers change.
        let group = state
            .store()
            .create_computer_group(name, input.parent)
            .map_err(field_error("parent"))?;
        Ok((
            StatusCode::CREATED,
            Json(GroupView {
                id: group.id,
                name: group.name,
                parent: group.parent,
                members: Vec::new(),
            }),
        ))
    })
    .await
}

async fn list_computer_groups(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<ComputerGroupView>>> {
    blocking(move || {
        let items = state
            .store()
            .computer_groups()?
            .into_iter()
            .map(|(group, members)| GroupView {
                id: group.id,
                name: group.name,
                parent: group.parent,
                members,
            })
            .collect();
        Ok(Json(Paged::slice(items, &query, |g| g.id.0)?))
    })
    .await
}

async fn computer_group(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ComputerGroupView>> {
    blocking(move || {
        Ok(Json(computer_group_view(
            state.store().as_ref(),
            ComputerGroupId(id),
        )?))
    })
    .await
}

async fn set_computer_group_parent(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetParent<ComputerGroupId>>,
) -> ApiResult<Json<ComputerGroupView>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = ComputerGroupId(id);
        let old = computer_group_view(store, id)?;
        // The members of the moved group join or leave the ancestors' rules: compare every rule.
        let event = RuleEvent::ComputerGroupsChanged { computers: None };
        let before = crate::rules::world_for(store, &event)?;
        change_with_rules(
            store,
            &before,
            now,
            || {
                store
                    .set_computer_group_parent(id, input.parent)
                    .map_err(field_error("parent"))
            },
            |()| event.clone(),
            |()| store.set_computer_group_parent(id, old.parent),
        )?;
        Ok(Json(GroupView {
            parent: input.parent,
            ..old
        }))
    })
    .await
}

async fn set_computer_group_members(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetMembers<ComputerId>>,
) -> ApiResult<Json<ComputerGroupView>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = ComputerGroupId(id);
        let old = computer_group_view(store, id)?;
        let (was, will): (BTreeSet<_>, BTreeSet<_>) = (
            old.members.iter().copied().collect(),
            input.members.iter().copied().collect(),
        );
        let moved: Vec<ComputerId> = was.symmetric_difference(&will).copied().collect();
        let event = RuleEvent::ComputerGroupsChanged {
            computers: Some(moved),
        };
        let before = crate::rules::world_for(store, &event)?;
        change_with_rules(
            store,
            &before,
            now,
            || {
                store
                    .set_computer_group_members(id, &input.members)
                    .map_err(field_error("members"))
            },
            |()| event.clone(),
            |()| store.set_computer_group_members(id, &old.members),
        )?;
        // As the store keeps them: each once, by id.
        Ok(Json(GroupView {
            members: will.into_iter().collect(),
            ..old
        }))
    })
    .await
}

// Package groups.

async fn create_package_group(
    State(state): State<AppState>,
    Body(input): Body<CreateGroup<PackageGroupId>>,
) -> ApiResult<(StatusCode, Json<PackageGroupView>)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        // A new group has no members: no rule's packages change.
        let group = state
            .store()
            .create_package_group(name, input.parent)
            .map_err(field_error("parent"))?;
        Ok((
            StatusCode::CREATED,
            Json(GroupView {
                id: group.id,
                name: group.name,
                parent: group.parent,
                members: Vec::new(),
            }),
        ))
    })
    .await
}

async fn list_package_groups(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<PackageGroupView>>> {
    blocking(move || {
        let items = state
            .store()
            .package_groups()?
            .into_iter()
            .map(|(group, members)| GroupView {
                id: group.id,
                name: group.name,
                parent: group.parent,
                members,
            })
            .collect();
        Ok(Json(Paged::slice(items, &query, |g| g.id.0)?))
    })
    .await
}

async fn package_group(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PackageGroupView>> {
    blocking(move || {
        Ok(Json(package_group_view(
            state.store().as_ref(),
            PackageGroupId(id),
        )?))
    })
    .await
}

async fn set_package_group_parent(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetParent<PackageGroupId>>,
) -> ApiResult<Json<PackageGroupView>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = PackageGroupId(id);
        let old = package_group_view(store, id)?;
        let snapshot = store.rule_snapshot()?;
        let before = RuleWorld::from_snapshot(&snapshot);
        let mut after = snapshot;
        if let Some(group) = after.deploy.package_groups.iter_mut().find(|g| g.id == id) {
            group.parent = input.parent;
        }
        refuse_new_conflicts(&before, &after)?;
        change_with_rules(
            store,
            &before,
            now,
            || {
                store
                    .set_package_group_parent(id, input.parent)
                    .map_err(field_error("parent"))
            },
            |()| RuleEvent::PackageGroupsChanged,
            |()| store.set_package_group_parent(id, old.parent),
        )?;
        Ok(Json(GroupView {
            parent: input.parent,
            ..old
        }))
    })
    .await
}

async fn set_package_group_members(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetMembers<PackageId>>,
) -> ApiResult<Json<PackageGroupView>> {
    let now = state.clock().now();
    blocking(move || {
        let store = state.store().as_ref();
        let id = PackageGroupId(id);
        let old = package_group_view(store, id)?;
        let snapshot = store.rule_snapshot()?;
        if let Some(unknown) = input
            .members
            .iter()
            .find(|p| !snapshot.deploy.packages.contains_key(p))
        {
            return Err(
                ApiError::not_found(format!("package {unknown} not found")).with_field("members")
            );
        }
        let before = RuleWorld::from_snapshot(&snapshot);
        let mut after = snapshot;
        after
            .deploy
            .package_group_members
            .insert(id, input.members.clone());
        refuse_new_conflicts(&before, &after)?;
        change_with_rules(
            store,
            &before,
            now,
            || {
                store
                    .set_package_group_members(id, &input.members)
                    .map_err(field_error("members"))
            },
            |()| RuleEvent::PackageGroupsChanged,
            |()| store.set_package_group_members(id, &old.members),
        )?;
        Ok(Json(GroupView {
            members: input.members,
            ..old
        }))
    })
    .await
}
