//! Computer groups and package groups: create, list, get, move under a parent, set members.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oco_core::model::{
    ComputerGroup, ComputerGroupId, ComputerId, Name, PackageGroup, PackageGroupId, PackageId,
};
use oco_core::rules::RuleEvent;
use oco_core::store::{Store, StoreError, StoreResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::rules::{complete_packages, refuse_new_conflicts, world_and_rest};
use super::{blocking, change_with_rules, change_with_rules_in, heavy, HeavyGate};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/computer-groups",
            get(list::<ComputerGroups>).post(create::<ComputerGroups>),
        )
        .route("/computer-groups/{id}", get(one::<ComputerGroups>))
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
            get(list::<PackageGroups>).post(create::<PackageGroups>),
        )
        .route("/package-groups/{id}", get(one::<PackageGroups>))
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

/// What differs between computer groups and package groups where they are handled alike.
trait Kind: Send + 'static {
    type Id: Copy + PartialEq + std::fmt::Display + DeserializeOwned + Serialize + Send;
    type Member: Serialize + Send;
    type Group;
    /// For messages: `computer group`.
    const WHAT: &'static str;
    fn id(raw: i64) -> Self::Id;
    fn raw(id: Self::Id) -> i64;
    /// Every group with its direct members.
    fn groups(store: &dyn Store) -> StoreResult<Listing<Self>>;
    fn create(store: &dyn Store, name: Name, parent: Option<Self::Id>) -> StoreResult<Self::Group>;
    /// A group's id, name and parent.
    fn parts(group: Self::Group) -> (Self::Id, Name, Option<Self::Id>);
}

/// Every group of a kind with its direct members, as the store lists them.
type Listing<K> = Vec<(<K as Kind>::Group, Vec<<K as Kind>::Member>)>;

struct ComputerGroups;
struct PackageGroups;

impl Kind for ComputerGroups {
    type Id = ComputerGroupId;
    type Member = ComputerId;
    type Group = ComputerGroup;
    const WHAT: &'static str = "computer group";
    fn id(raw: i64) -> Self::Id {
        ComputerGroupId(raw)
    }
    fn raw(id: Self::Id) -> i64 {
        id.0
    }
    fn groups(store: &dyn Store) -> StoreResult<Vec<(ComputerGroup, Vec<ComputerId>)>> {
        store.computer_groups()
    }
    fn create(
        store: &dyn Store,
        name: Name,
        parent: Option<Self::Id>,
    ) -> StoreResult<ComputerGroup> {
        store.create_computer_group(name, parent)
    }
    fn parts(group: ComputerGroup) -> (Self::Id, Name, Option<Self::Id>) {
        (group.id, group.name, group.parent)
    }
}

impl Kind for PackageGroups {
    type Id = PackageGroupId;
    type Member = PackageId;
    type Group = PackageGroup;
    const WHAT: &'static str = "package group";
    fn id(raw: i64) -> Self::Id {
        PackageGroupId(raw)
    }
    fn raw(id: Self::Id) -> i64 {
        id.0
    }
    fn groups(store: &dyn Store) -> StoreResult<Vec<(PackageGroup, Vec<PackageId>)>> {
        store.package_groups()
    }
    fn create(
        store: &dyn Store,
        name: Name,
        parent: Option<Self::Id>,
    ) -> StoreResult<PackageGroup> {
        store.create_package_group(name, parent)
    }
    fn parts(group: PackageGroup) -> (Self::Id, Name, Option<Self::Id>) {
        (group.id, group.name, group.parent)
    }
}

/// `group` with `members`, as the API shows it.
fn group_view<K: Kind>(group: K::Group, members: Vec<K::Member>) -> GroupView<K::Id, K::Member> {
    let (id, name, parent) = K::parts(group);
    GroupView {
        id,
        name,
        parent,
        members,
    }
}

/// Every group of kind `K`.
fn all<K: Kind>(store: &dyn Store) -> StoreResult<Vec<GroupView<K::Id, K::Member>>> {
    Ok(K::groups(store)?
        .into_iter()
        .map(|(group, members)| group_view::<K>(group, members))
        .collect())
}

/// One group of kind `K`, or 404.
fn view<K: Kind>(store: &dyn Store, id: K::Id) -> ApiResult<GroupView<K::Id, K::Member>> {
    all::<K>(store)?
        .into_iter()
        .find(|group| group.id == id)
        .ok_or_else(|| ApiError::not_found(format!("{} {id} not found", K::WHAT)))
}

/// The store's `Invalid` for an unknown parent or a cycle, naming the field.
fn field_error(field: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |error| match error {
        StoreError::Invalid { reason } => ApiError::invalid(field, reason),
        other => other.into(),
    }
}

// Both kinds.

async fn create<K: Kind>(
    State(state): State<AppState>,
    Body(input): Body<CreateGroup<K::Id>>,
) -> ApiResult<(StatusCode, Json<GroupView<K::Id, K::Member>>)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        // A new group has no members: no rule's computers or packages change.
        let group =
            K::create(state.store().as_ref(), name, input.parent).map_err(field_error("parent"))?;
        Ok((
            StatusCode::CREATED,
            Json(group_view::<K>(group, Vec::new())),
        ))
    })
    .await
}

async fn list<K: Kind>(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<GroupView<K::Id, K::Member>>>> {
    blocking(move || {
        let items = all::<K>(state.store().as_ref())?;
        Ok(Json(Paged::slice(items, &query, |g| K::raw(g.id))?))
    })
    .await
}

async fn one<K: Kind>(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<GroupView<K::Id, K::Member>>> {
    blocking(move || Ok(Json(view::<K>(state.store().as_ref(), K::id(id))?))).await
}

// Computer groups.

async fn set_computer_group_parent(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetParent<ComputerGroupId>>,
) -> ApiResult<Json<ComputerGroupView>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = ComputerGroupId(id);
        let old = view::<ComputerGroups>(store, id)?;
        // The members of the moved group and its subgroups join or leave the rules of its old
        // and new ancestors; nobody else does.
        let moved = crate::rules::computer_group_members(store, id)?;
        let event = RuleEvent::ComputerGroupsChanged {
            computers: Some(moved.into_iter().collect()),
        };
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
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = ComputerGroupId(id);
        let old = view::<ComputerGroups>(store, id)?;
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

async fn set_package_group_parent(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Body(input): Body<SetParent<PackageGroupId>>,
) -> ApiResult<Json<PackageGroupView>> {
    let now = state.clock().now();
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = PackageGroupId(id);
        let old = view::<PackageGroups>(store, id)?;
        let part = crate::rules::package_group_part(store, id, Some(input.parent))?;
        // The rules' jobs are read a chunk at a time as they are evaluated.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        let (before, mut after) = world_and_rest(snapshot);
        if let Some(group) = after.deploy.package_groups.iter_mut().find(|g| g.id == id) {
            group.parent = input.parent;
        }
        complete_packages(store, &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        change_with_rules_in(
            store,
            &part,
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
    heavy(HeavyGate::of(&state), move || {
        let store = state.store().as_ref();
        let id = PackageGroupId(id);
        let old = view::<PackageGroups>(store, id)?;
        let part = crate::rules::package_group_part(store, id, None)?;
        // As for a move.
        let snapshot = store.rule_snapshot_part(&part.clone().without_jobs())?;
        for &member in &input.members {
            if !snapshot.deploy.packages.contains_key(&member) {
                store.package(member).map_err(|error| match error {
                    StoreError::NotFound { .. } => {
                        ApiError::not_found(format!("package {member} not found"))
                            .with_field("members")
                    }
                    other => other.into(),
                })?;
            }
        }
        let (before, mut after) = world_and_rest(snapshot);
        after
            .deploy
            .package_group_members
            .insert(id, input.members.clone());
        complete_packages(store, &mut after)?;
        refuse_new_conflicts(&before, &after)?;
        change_with_rules_in(
            store,
            &part,
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
