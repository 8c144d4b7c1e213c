//! Computer groups and package groups: create, list, get, move under a parent, set members.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use oco_core::engine::{Engine, EngineError};
use oco_core::model::{
    ComputerGroup, ComputerGroupId, ComputerId, Name, PackageGroup, PackageGroupId, PackageId,
};
use oco_core::store::{Store, StoreResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::{blocking, engine, heavy, HeavyGate};
use crate::observe::Created;
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
    fn create(
        engine: &Engine<Arc<dyn Store>>,
        name: Name,
        parent: Option<Self::Id>,
    ) -> Result<Self::Group, EngineError>;
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
        engine: &Engine<Arc<dyn Store>>,
        name: Name,
        parent: Option<Self::Id>,
    ) -> Result<ComputerGroup, EngineError> {
        engine.create_computer_group(name, parent)
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
        engine: &Engine<Arc<dyn Store>>,
        name: Name,
        parent: Option<Self::Id>,
    ) -> Result<PackageGroup, EngineError> {
        engine.create_package_group(name, parent)
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

// Both kinds.

async fn create<K: Kind>(
    State(state): State<AppState>,
    Body(input): Body<CreateGroup<K::Id>>,
) -> ApiResult<(
    StatusCode,
    Extension<Created>,
    Json<GroupView<K::Id, K::Member>>,
)> {
    let name = Name::new("name", &input.name)?;
    blocking(move || {
        // A new group has no members: no rule's computers or packages change.
        let group = K::create(&engine(&state), name, input.parent)?;
        let view = group_view::<K>(group, Vec::new());
        Ok((StatusCode::CREATED, Created::id(view.id), Json(view)))
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
        let id = ComputerGroupId(id);
        let old = view::<ComputerGroups>(state.store().as_ref(), id)?;
        engine(&state).set_computer_group_parent(id, input.parent, now)?;
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
        let id = ComputerGroupId(id);
        let old = view::<ComputerGroups>(state.store().as_ref(), id)?;
        engine(&state).set_computer_group_members(id, &input.members, now)?;
        // As the store keeps them: each once, by id.
        let members: BTreeSet<ComputerId> = input.members.into_iter().collect();
        Ok(Json(GroupView {
            members: members.into_iter().collect(),
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
        let id = PackageGroupId(id);
        let old = view::<PackageGroups>(state.store().as_ref(), id)?;
        engine(&state).set_package_group_parent(id, input.parent, now)?;
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
        let id = PackageGroupId(id);
        let old = view::<PackageGroups>(state.store().as_ref(), id)?;
        engine(&state).set_package_group_members(id, &input.members, now)?;
        Ok(Json(GroupView {
            members: input.members,
            ..old
        }))
    })
    .await
}
