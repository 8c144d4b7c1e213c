//! Extractors whose rejections are the admin API's JSON errors, and paging.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// A JSON body, decoded with serde; a mistake is a 400 naming the path of the field.
///
/// A non-empty body must say it is JSON (`application/json`, parameters and `+json` types
/// included), or the request is a 415 before it is parsed: a form or text body that happens to
/// parse as JSON was not meant as one. An empty body needs no content type.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(request.headers());
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        if !json && !bytes.is_empty() {
            return Err(ApiError::unsupported_media_type());
        }
        decode(&bytes).map(Body)
    }
}

/// A body as bytes, whatever its type (payload archives); over the limit is a 413.
#[derive(Debug)]
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large()
                } else {
                    ApiError::malformed(None, rejection.body_text())
                }
            })
    }
}

/// Middleware: reads the whole request body (up to the limit) before anything answers.
///
/// A handler that needs no body (a `GET`, an `enable`) or an answer made before the handler
/// (a 404, a 405, a refused body) would otherwise leave the body unread, and hyper then closes
/// the connection with the client's bytes still unread, which the kernel answers with a TCP
/// reset that may destroy the response before the client reads it. Read first, the request
/// is answered normally and the connection stays usable. Routes that stream their body (payload
/// uploads) are not behind it. Over the limit is a 413.
pub(crate) async fn read_whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limited = Request::from_parts(parts.clone(), body);
    match RawBody::from_request(limited, &()).await {
        Ok(RawBody(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(error) => error.into_response(),
    }
}

/// Reads and drops up to `limit` bytes of `body`, holding one frame at a time.
///
/// A refused request's body is read so that the answer is not lost to a reset (see
/// [`read_whole_body`]), without keeping what a client that is not even authenticated sends.
pub(crate) async fn discard(mut body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut read = 0_usize;
    while read <= limit {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len()),
            None | Some(Err(_)) => return,
        }
    }
}

/// Whether the content type is JSON: `application/json` or `application/<anything>+json`, in
/// any case, with or without parameters.
pub(crate) fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
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
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The longest page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// `?after=<last id>&limit=<n>`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The last id of the previous page.
    pub(crate) after: Option<i64>,
    /// How many items (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
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
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Paged<T> {
    /// The items, by id.
    pub items: Vec<T>,
    /// The `after` of the next page, `null` on the last.
    #[schema(required = true)]
    pub next: Option<i64>,
}

impl<T> Paged<T> {
    /// The page of `limit` items out of `items` (read with one item more than `limit`), `id` giving
    /// each item's id.
    pub(crate) fn of(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Self {
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
