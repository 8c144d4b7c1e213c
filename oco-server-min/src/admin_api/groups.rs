//! Computer groups and package groups: create, list, get, move under a parent, set members.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use oco_core::engine::{Engine, EngineError};
use oco_core::model::{
    ComputerGroup, ComputerGroupId, ComputerId, Name, PackageGroup, PackageGroupId, PackageId,
};
use oco_core::store::{Store, StoreResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{BadRequest, Busy, Conflict, Internal, NotFound, UnsupportedMediaType};
use super::{blocking, engine, heavy, HeavyGate};
use crate::observe::Created;
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_computer_groups, create_computer_group))
        .routes(routes!(computer_group))
        .routes(routes!(set_computer_group_parent))
        .routes(routes!(set_computer_group_members))
        .routes(routes!(list_package_groups, create_package_group))
        .routes(routes!(package_group))
        .routes(routes!(set_package_group_parent))
        .routes(routes!(set_package_group_members))
}

/// A group with its direct members (package groups: in order). Computer groups and package
/// groups have the same JSON: ids are integers.
#[derive(Debug, Serialize, ToSchema)]
struct GroupView<G, M> {
    /// Assigned by the store.
    #[schema(value_type = i64)]
    id: G,
    /// Unique among the groups of its kind.
    name: Name,
    /// The enclosing group; `null` at the top level.
    #[schema(value_type = Option<i64>, required = true)]
    parent: Option<G>,
    /// The direct members, by id: computers, or packages in order.
    #[schema(value_type = Vec<i64>)]
    members: Vec<M>,
}

/// A group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateGroup<G> {
    /// A name: one line, not blank, at most 255 characters.
    #[schema(example = "office")]
    name: String,
    /// The enclosing group; absent or `null`: top level.
    #[schema(value_type = Option<i64>)]
    parent: Option<G>,
}

/// The new parent (`null`: top level).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetParent<G> {
    /// The enclosing group; `null`: top level.
    #[schema(value_type = Option<i64>)]
    parent: Option<G>,
}

/// The new direct members (package groups: in order).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetMembers<M> {
    /// The members, by id (package groups: in order).
    #[schema(value_type = Vec<i64>)]
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

/// A computer group's path parameter.
const COMPUTER_GROUP: &str = "The computer group's id.";
/// A package group's path parameter.
const PACKAGE_GROUP: &str = "The package group's id.";

// Computer groups.

/// Lists computer groups by id, each with its direct members.
#[utoipa::path(
    get,
    path = "/computer-groups",
    operation_id = "list_computer_groups",
    tag = "groups",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of computer groups.", body = Paged<ComputerGroupView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list_computer_groups(
    state: State<AppState>,
    query: ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<ComputerGroupView>>> {
    list::<ComputerGroups>(state, query).await
}

/// Creates a computer group, without members.
#[utoipa::path(
    post,
    path = "/computer-groups",
    operation_id = "create_computer_group",
    tag = "groups",
    request_body = CreateGroup<ComputerGroupId>,
    responses(
        (status = 201, description = "The group created.", body = ComputerGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn create_computer_group(
    state: State<AppState>,
    body: Body<CreateGroup<ComputerGroupId>>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<ComputerGroupView>)> {
    create::<ComputerGroups>(state, body).await
}

/// Shows a computer group with its direct members.
#[utoipa::path(
    get,
    path = "/computer-groups/{id}",
    operation_id = "get_computer_group",
    tag = "groups",
    params(("id" = i64, Path, description = COMPUTER_GROUP, example = 1)),
    responses(
        (status = 200, description = "The group.", body = ComputerGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn computer_group(
    state: State<AppState>,
    id: ApiPath<i64>,
) -> ApiResult<Json<ComputerGroupView>> {
    one::<ComputerGroups>(state, id).await
}

/// Moves a computer group under another, or to the top level; re-evaluates the rules
/// concerned.
#[utoipa::path(
    put,
    path = "/computer-groups/{id}/parent",
    operation_id = "set_computer_group_parent",
    tag = "groups",
    params(("id" = i64, Path, description = COMPUTER_GROUP, example = 1)),
    request_body = SetParent<ComputerGroupId>,
    responses(
        (status = 200, description = "The group moved.", body = ComputerGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
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

/// Sets a computer group's direct members; re-evaluates the rules concerned.
#[utoipa::path(
    put,
    path = "/computer-groups/{id}/members",
    operation_id = "set_computer_group_members",
    tag = "groups",
    params(("id" = i64, Path, description = COMPUTER_GROUP, example = 1)),
    request_body = SetMembers<ComputerId>,
    responses(
        (status = 200, description = "The group with its new members, by id.", body = ComputerGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
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

/// Lists package groups by id, each with its direct members in order.
#[utoipa::path(
    get,
    path = "/package-groups",
    operation_id = "list_package_groups",
    tag = "groups",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of package groups.", body = Paged<PackageGroupView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list_package_groups(
    state: State<AppState>,
    query: ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<PackageGroupView>>> {
    list::<PackageGroups>(state, query).await
}

/// Creates a package group, without members.
#[utoipa::path(
    post,
    path = "/package-groups",
    operation_id = "create_package_group",
    tag = "groups",
    request_body = CreateGroup<PackageGroupId>,
    responses(
        (status = 201, description = "The group created.", body = PackageGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn create_package_group(
    state: State<AppState>,
    body: Body<CreateGroup<PackageGroupId>>,
) -> ApiResult<(StatusCode, Extension<Created>, Json<PackageGroupView>)> {
    create::<PackageGroups>(state, body).await
}

/// Shows a package group with its direct members in order.
#[utoipa::path(
    get,
    path = "/package-groups/{id}",
    operation_id = "get_package_group",
    tag = "groups",
    params(("id" = i64, Path, description = PACKAGE_GROUP, example = 1)),
    responses(
        (status = 200, description = "The group.", body = PackageGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn package_group(
    state: State<AppState>,
    id: ApiPath<i64>,
) -> ApiResult<Json<PackageGroupView>> {
    one::<PackageGroups>(state, id).await
}

/// Moves a package group under another, or to the top level; re-evaluates the rules
/// concerned.
#[utoipa::path(
    put,
    path = "/package-groups/{id}/parent",
    operation_id = "set_package_group_parent",
    tag = "groups",
    params(("id" = i64, Path, description = PACKAGE_GROUP, example = 1)),
    request_body = SetParent<PackageGroupId>,
    responses(
        (status = 200, description = "The group moved.", body = PackageGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
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

/// Sets a package group's direct members, in order; re-evaluates the rules concerned.
#[utoipa::path(
    put,
    path = "/package-groups/{id}/members",
    operation_id = "set_package_group_members",
    tag = "groups",
    params(("id" = i64, Path, description = PACKAGE_GROUP, example = 1)),
    request_body = SetMembers<PackageId>,
    responses(
        (status = 200, description = "The group with its new members.", body = PackageGroupView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
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
