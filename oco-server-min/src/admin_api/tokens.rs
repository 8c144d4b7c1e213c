//! Admin API tokens: list, show, create (the secret is answered once) and revoke.
//!
//! A token is stored as its name, its access and the SHA-256 digest of its secret; a request's
//! bearer token is hashed and looked up by digest ([`authenticate`](super::authenticate)) in a
//! copy of the stored tokens ([`TokenCache`]), so that requests with wrong tokens cost at most
//! ten database reads a second: a token created or revoked through this process counts at once;
//! through another, a new token works within 0.1 s and a revoked one is refused within a second. The
//! secrets file's `admin-token` becomes the full-access token `admin` when the store holds no
//! full-access token ([`seed`]): at the first start, and again should every one be revoked.
//! Revoking the last full-access token through the API is refused, so the API cannot lock its
//! administrators out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::{Extension, Json};
use oco_core::chrono::{DateTime, Utc};
use oco_core::model::{Name, Sha256Digest, TokenId};
use oco_core::store::{AdminToken, NewAdminToken, Page, Store, StoreError, TokenAccess};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::blocking;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Body, PageQuery, Paged};
use super::openapi::{BadRequest, Conflict, Internal, NotFound, UnsupportedMediaType};
use crate::observe::Created;
use crate::AppState;

/// The most tokens a store holds: creating one more is refused (409).
pub const MAX_ADMIN_TOKENS: usize = 1000;

/// The length of a created token's secret: 43 characters of `[0-9a-z]`, about 222 bits.
const SECRET_LEN: usize = 43;

/// What a created token's secret starts with, so that secret scanners and people recognise it.
const SECRET_PREFIX: &str = "oco_";

/// The name of the token the secrets file's `admin-token` is stored as.
pub(crate) const FIRST_TOKEN_NAME: &str = "admin";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one, revoke))
}

/// How long a copy of the stored tokens answers before it is read again: how late a revocation
/// through another process may hold here.
pub(crate) const TOKEN_REFRESH: Duration = Duration::from_secs(1);

/// How old a copy may be and still answer that a token is unknown: how late a token created
/// through another process may work here. Wrong tokens thus read the database at most ten times
/// a second.
pub(crate) const UNKNOWN_REFRESH: Duration = Duration::from_millis(100);

/// The stored tokens by digest, as last read, and when. One read at a time: requests that find
/// the copy stale while it is being read wait for that read.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    copy: tokio::sync::Mutex<Option<(Instant, Arc<ByDigest>)>>,
}

/// The stored tokens by the digest of their secrets.
type ByDigest = HashMap<Sha256Digest, AdminToken>;

impl TokenCache {
    /// The token whose secret has `digest`, if any: found in a copy at most [`TOKEN_REFRESH`]
    /// old, or not found in one at most [`UNKNOWN_REFRESH`] old.
    pub(crate) async fn find(
        &self,
        state: &AppState,
        digest: &Sha256Digest,
    ) -> ApiResult<Option<AdminToken>> {
        let mut copy = self.copy.lock().await;
        let fresh = copy
            .as_ref()
            .filter(|(read, tokens)| {
                let age = read.elapsed();
                age < UNKNOWN_REFRESH || (age < TOKEN_REFRESH && tokens.contains_key(digest))
            })
            .map(|(_, tokens)| tokens.clone());
        let tokens = match fresh {
            Some(tokens) => tokens,
            None => {
                let store = state.store().clone();
                let tokens = blocking(move || {
                    Ok(all(store.as_ref())?
                        .into_iter()
                        .map(|token| (token.digest, token))
                        .collect::<HashMap<_, _>>())
                })
                .await?;
                let tokens = Arc::new(tokens);
                *copy = Some((Instant::now(), tokens.clone()));
                tokens
            }
        };
        Ok(tokens.get(digest).cloned())
    }

    /// Drops the copy: a token was created or revoked here.
    async fn forget(&self) {
        *self.copy.lock().await = None;
    }
}

/// The SHA-256 digest of a token's secret: what the store keeps and looks up.
pub(crate) fn digest(secret: &str) -> Sha256Digest {
    Sha256Digest(Sha256::digest(secret.as_bytes()).into())
}

/// A token as the API shows it: never its digest, and its secret only when created. No
/// `Debug`: it may hold the secret.
#[derive(Serialize, ToSchema)]
struct TokenView {
    id: TokenId,
    /// Unique among tokens; the access and audit logs name the token of each request by it.
    name: Name,
    /// `full`, or `read-only` (only `GET` and `HEAD`).
    access: TokenAccess,
    created: DateTime<Utc>,
    /// The secret, for `Authorization: Bearer <token>`: in the answer to the creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "oco_0123456789abcdefghijklmnopqrstuvwxyz0123456")]
    token: Option<String>,
}

impl From<AdminToken> for TokenView {
    fn from(token: AdminToken) -> Self {
        TokenView {
            id: token.id,
            name: token.name,
            access: token.access,
            created: token.created,
            token: None,
        }
    }
}

/// A token to create; the server makes its secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    /// A name: one line of at most 255 characters, unique among tokens.
    #[schema(example = "grafana")]
    name: String,
    /// `full` (the default), or `read-only`.
    #[serde(default = "full")]
    #[schema(default = "full")]
    access: TokenAccess,
}

fn full() -> TokenAccess {
    TokenAccess::Full
}

/// The tokens, by id (never their secrets).
#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of tokens.", body = Paged<TokenView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<TokenView>>> {
    let (page, limit) = (query.probe()?, query.limit()?);
    blocking(move || {
        let items = state.store().list_admin_tokens(page)?;
        let items = items.into_iter().map(TokenView::from).collect();
        Ok(Json(Paged::of(items, limit, |t: &TokenView| t.id.0)))
    })
    .await
}

/// One token (never its secret).
#[utoipa::path(
    get,
    path = "/tokens/{id}",
    operation_id = "get_token",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id.", example = 1)),
    responses(
        (status = 200, description = "The token.", body = TokenView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenView>> {
    blocking(move || Ok(Json(find(state.store().as_ref(), TokenId(id))?.into()))).await
}

/// A new token with a random secret, answered once: the server keeps only its digest.
#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = TokenInput,
    responses(
        (status = 201, description = "The token created, with its secret.", body = TokenView),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Body(input): Body<TokenInput>,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, HeaderValue); 1],
    Extension<Created>,
    Json<TokenView>,
)> {
    let name = Name::new("name", &input.name)?;
    let now = state.clock().now();
    let view = blocking({
        let state = state.clone();
        move || {
            let store = state.store().as_ref();
            if all(store)?.len() >= MAX_ADMIN_TOKENS {
                return Err(ApiError::conflict(format!(
                    "there are {MAX_ADMIN_TOKENS} tokens already, the most kept; revoke one first"
                )));
            }
            let secret = format!(
                "{SECRET_PREFIX}{}",
                crate::secrets::random_key(SECRET_LEN)
                    .map_err(|error| ApiError::internal("token secret", &error))?
            );
            let new = NewAdminToken {
                name,
                access: input.access,
                digest: digest(&secret),
                created: now,
            };
            let token = store.create_admin_token(new).map_err(|error| match error {
                StoreError::Duplicate { .. } => ApiError::from(error).with_field("name"),
                error => error.into(),
            })?;
            let mut view = TokenView::from(token);
            view.token = Some(secret);
            Ok(view)
        }
    })
    .await;
    state.admin_tokens().forget().await;
    let view = view?;
    // The secret is in this answer only: no cache may keep it.
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((
        StatusCode::CREATED,
        no_store,
        Created::id(view.id),
        Json(view),
    ))
}

/// Revokes a token: its next request is refused. The last full-access token cannot be revoked
/// (409).
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id.", example = 1)),
    responses(
        (status = 204, description = "The token is revoked."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
    ),
)]
async fn revoke(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let store = state.store().clone();
    let revoked = blocking(move || {
        // The store keeps the last full-access token, checked in its deleting write.
        match store.delete_admin_token(TokenId(id)) {
            Ok(()) => Ok(StatusCode::NO_CONTENT),
            Err(StoreError::Invalid { reason }) => Err(ApiError::conflict(reason)),
            Err(error) => Err(error.into()),
        }
    })
    .await;
    state.admin_tokens().forget().await;
    revoked
}

/// The token `id`; 404 if there is none.
fn find(store: &dyn Store, id: TokenId) -> ApiResult<AdminToken> {
    all(store)?
        .into_iter()
        .find(|token| token.id == id)
        .ok_or_else(|| ApiError::not_found(format!("admin token {id} not found")))
}

/// Every token (at most [`MAX_ADMIN_TOKENS`], and a few more that processes created at once).
fn all(store: &dyn Store) -> Result<Vec<AdminToken>, StoreError> {
    store.list_admin_tokens(Page::first(MAX_ADMIN_TOKENS + 100))
}

/// Makes sure the store holds a full-access token: if it holds none, stores the secrets file's
/// `admin_token` as [`FIRST_TOKEN_NAME`] (or `admin-2`, … should that name be taken by a
/// read-only token). Returns what it did, for the log: `Some(name)` if it stored a token.
///
/// # Errors
///
/// A store error, or a secret that is empty or stored already as a read-only token.
pub(crate) fn seed(
    store: &dyn Store,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Option<Name>, String> {
    let tokens = all(store).map_err(|e| format!("reading the admin tokens: {e}"))?;
    if tokens.iter().any(|token| token.access == TokenAccess::Full) {
        return Ok(None);
    }
    if secret.is_empty() {
        return Err(
            "the store holds no full-access admin token, and the secrets file's \
                    admin-token is empty"
                .into(),
        );
    }
    let digest = digest(secret);
    for attempt in 1..=20 {
        let name = if attempt == 1 {
            FIRST_TOKEN_NAME.to_owned()
        } else {
            format!("{FIRST_TOKEN_NAME}-{attempt}")
        };
        let name = Name::new("name", &name).map_err(|e| e.to_string())?;
        let new = NewAdminToken {
            name: name.clone(),
            access: TokenAccess::Full,
            digest,
            created: now,
        };
        match store.create_admin_token(new) {
            Ok(_) => return Ok(Some(name)),
            Err(StoreError::Duplicate { .. }) => {
                // Another process seeding at once stored it; or the name is taken.
                match store.admin_token_by_digest(&digest) {
                    Ok(Some(token)) if token.access == TokenAccess::Full => return Ok(None),
                    Ok(Some(_)) => {
                        return Err("the secrets file's admin-token is stored as a read-only \
                                    token, and the store holds no full-access token"
                            .into())
                    }
                    Ok(None) => continue,
                    Err(e) => return Err(format!("reading the admin tokens: {e}")),
                }
            }
            Err(e) => return Err(format!("storing the first admin token: {e}")),
        }
    }
    Err(
        "the store holds no full-access admin token, and the names admin to admin-20 are all \
         taken"
            .into(),
    )
}
