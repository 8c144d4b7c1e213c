//! Extractors whose rejections are the admin API's JSON errors, and paging.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// A JSON body, decoded with serde; a mistake is a 400 naming the path of the field.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::malformed(None, rejection.body_text()))?;
        decode(&bytes).map(Body)
    }
}

/// Decodes `bytes` as JSON into `T`.
///
/// # Errors
///
/// 400 with serde's message and the path of the field it concerns.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        ApiError::malformed(Some(path), error.into_inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::malformed(None, error.to_string()))?;
    Ok(value)
}

/// Path parameters; a mistake is a 400.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::malformed(Some("path".into()), rejection.body_text()))
    }
}

/// Query parameters; a mistake is a 400.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::malformed(Some("query".into()), rejection.body_text()))
    }
}

/// The default page length.
pub const DEFAULT_LIMIT: usize = 100;
/// The longest page.
pub const MAX_LIMIT: usize = 1000;

/// `?after=<last id>&limit=<n>`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// The last id of the previous page.
    pub(crate) after: Option<i64>,
    /// How many items (default 100, at most 1000).
    pub(crate) limit: Option<usize>,
}

impl PageQuery {
    /// The page length asked for.
    ///
    /// # Errors
    ///
    /// 400 for 0 or more than [`MAX_LIMIT`].
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(limit) => Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
            )),
        }
    }

    /// The store page that reads one item more than asked, to know whether another page follows.
    ///
    /// # Errors
    ///
    /// As [`PageQuery::limit`].
    pub(crate) fn probe(&self) -> Result<oco_core::store::Page, ApiError> {
        Ok(oco_core::store::Page {
            after: self.after,
            limit: self.limit()? + 1,
        })
    }
}

/// One page of a listing: `{"items": [...], "next": <id to pass as after> | null}`.
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    /// The items, by id.
    pub items: Vec<T>,
    /// The `after` of the next page, `null` on the last.
    pub next: Option<i64>,
}

impl<T> Paged<T> {
    /// The page of `limit` items out of `items` (read with one item more than `limit`), `id` giving
    /// each item's id.
    pub fn of(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(id) } else { None };
        Paged { items, next }
    }

    /// The page of a listing held whole in memory, ordered by `id`.
    ///
    /// # Errors
    ///
    /// As [`PageQuery::limit`].
    pub(crate) fn slice(
        items: Vec<T>,
        query: &PageQuery,
        id: impl Fn(&T) -> i64,
    ) -> Result<Self, ApiError> {
        let limit = query.limit()?;
        let items: Vec<T> = items
            .into_iter()
            .filter(|item| query.after.is_none_or(|after| id(item) > after))
            .take(limit + 1)
            .collect();
        Ok(Paged::of(items, limit, id))
    }
}
