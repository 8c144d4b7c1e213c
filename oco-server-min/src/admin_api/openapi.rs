//! The admin API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json` without a token.
//!
//! Each handler carries a `#[utoipa::path]` annotation (method, path, parameters, body,
//! responses), and each resource's `routes()` registers its handlers with `utoipa_axum`'s
//! `routes!`, which takes the method and path from that annotation for both axum's router and the
//! document: a route cannot be served without being described. Bodies are described by the types
//! the handlers decode and encode (`utoipa::ToSchema`, which reads their serde attributes; the
//! model types' schemas come from oco-core's feature `openapi`). What the layers around the
//! handlers add to every operation is added here, beside them: the 401 of a missing or wrong
//! token (`authenticate`), the 413 of a body over the limit (`read_whole_body`), and the
//! `x-request-id` header of every response (`observe::request_context`).
//!
//! The error responses that handlers answer are the reusable responses below, each with the
//! error shape ([`ErrorResponse`](super::error::ErrorResponse)); an operation lists those it
//! can answer.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToResponse, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::error::ErrorResponse;
use crate::AppState;

/// The document's route: `GET /openapi.json`, answered from the [`Document`] extension.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(
        routes!(openapi_json).layer(axum::middleware::from_fn(super::extract::read_whole_body)),
    )
}

/// The document as served, made once when the router is built.
#[derive(Debug, Clone)]
pub(super) struct Document(Arc<str>);

impl Document {
    /// `api` with what the layers add to every operation, and the server, security and info
    /// that the annotations do not give, rendered as JSON.
    ///
    /// # Errors
    ///
    /// serde_json's, if the document does not render (it is plain data).
    pub(super) fn finish(mut api: OpenApi) -> serde_json::Result<Document> {
        api.info = utoipa::openapi::InfoBuilder::new()
            .title("oco admin API")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(DESCRIPTION))
            .build();
        api.servers = Some(vec![utoipa::openapi::Server::new(super::PREFIX)]);
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token: made at `POST /tokens` (the first is `admin-token` \
                         in the server's secrets file).",
                    ))
                    .build(),
            ),
        );
        for (name, response) in [
            Unauthorized::response(),
            Forbidden::response(),
            TooLarge::response(),
            BadRequest::response(),
            NotFound::response(),
            Conflict::response(),
            UnsupportedMediaType::response(),
            Internal::response(),
            Busy::response(),
            InsufficientStorage::response(),
        ] {
            components.responses.insert(name.to_owned(), response);
        }
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert(REQUEST_ID.into(), request_id_header());
            }
        }
        components
            .schemas
            .insert(ErrorResponse::name().into_owned(), ErrorResponse::schema());
        let mut nested = Vec::new();
        ErrorResponse::schemas(&mut nested);
        components.schemas.extend(nested);
        api.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        for item in api.paths.paths.values_mut() {
            for (operation, reads) in [
                (&mut item.get, true),
                (&mut item.put, false),
                (&mut item.post, false),
                (&mut item.delete, false),
                (&mut item.patch, false),
            ] {
                if let Some(operation) = operation {
                    add_layer_responses(operation, reads);
                }
            }
        }
        let mut json = serde_json::to_value(&api)?;
        require_headers(&mut json);
        Ok(Document(serde_json::to_string(&json)?.into()))
    }
}

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// The header of a request's id, on every response.
const REQUEST_ID: &str = "x-request-id";

const DESCRIPTION: &str = "The administrators' API of the oco server: JSON over HTTP, \
    authenticated with the admin token as `Authorization: Bearer <token>`. Errors have the shape \
    `{\"error\": {\"code\", \"message\", \"field\"?, …}}`. Listings page with \
    `?after=<last id>&limit=<n>` and answer `{\"items\", \"next\"}`. `PATCH` bodies are JSON \
    merge patches of the body that creates the resource. Every response carries the request's \
    id in `x-request-id`.";

/// Adds what the layers around every handler answer: 401 (unless the operation needs no token),
/// 403 (a read-only token's request that does not only `reads`), 413, and the request id header
/// on every response.
fn add_layer_responses(operation: &mut Operation, reads: bool) {
    let public = operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.is_empty());
    let responses = &mut operation.responses.responses;
    if !public {
        responses
            .entry("401".into())
            .or_insert_with(|| reference(Unauthorized::response().0));
        if !reads {
            responses
                .entry("403".into())
                .or_insert_with(|| reference(Forbidden::response().0));
        }
    }
    responses
        .entry("413".into())
        .or_insert_with(|| reference(TooLarge::response().0));
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .insert(REQUEST_ID.into(), request_id_header());
        }
    }
}

/// A reference to the reusable response `name`.
fn reference(name: &str) -> RefOr<Response> {
    RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
}

fn request_id_header() -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "The request's id (the client's own when it sent a well-formed one), also in every \
             log line about the request.",
        ))
        .build()
}

/// Marks the headers the server always sends as required (utoipa's `Header` has no such
/// field): the request id on every response, `Retry-After` on a 503.
fn require_headers(json: &mut serde_json::Value) {
    fn visit(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(members) => {
                if let Some(serde_json::Value::Object(headers)) = members.get_mut("headers") {
                    for (name, header) in headers.iter_mut() {
                        if name == REQUEST_ID || name.eq_ignore_ascii_case("retry-after") {
                            if let serde_json::Value::Object(header) = header {
                                header.insert("required".into(), true.into());
                            }
                        }
                    }
                }
                members.values_mut().for_each(visit);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    for section in ["paths", "components"] {
        if let Some(value) = json.get_mut(section) {
            visit(value);
        }
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "openapi",
    security(),
    responses(
        (status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json",
         body = inline(Object)),
    ),
)]
async fn openapi_json(Extension(document): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.to_string(),
    )
}

/// Any JSON object (the document itself).
#[expect(dead_code, reason = "only its schema is used, in the annotation")]
struct Object;

impl PartialSchema for Object {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for Object {}

/// A zip archive as a request or response body: raw bytes.
pub(super) struct ZipArchive;

impl PartialSchema for ZipArchive {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("A zip archive, raw bytes."))
            .into()
    }
}

impl ToSchema for ZipArchive {}

/// A JSON merge patch (RFC 7396) of `T`, the body that creates the resource: `T`'s members,
/// none required (a member left out stays as it is), at any depth; `null` clears an optional
/// member (see `patch.rs`).
pub(super) struct MergePatch<T>(PhantomData<T>);

impl<T: ToSchema> PartialSchema for MergePatch<T> {
    fn schema() -> RefOr<Schema> {
        let mut schema = T::schema();
        optional_members(&mut schema);
        schema
    }
}

impl<T: ToSchema> ToSchema for MergePatch<T> {
    fn name() -> Cow<'static, str> {
        format!("{}Patch", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(schemas);
    }
}

/// Drops `required` from an object schema and from the objects inlined in it.
fn optional_members(schema: &mut RefOr<Schema>) {
    if let RefOr::T(schema) = schema {
        match schema {
            Schema::Object(object) => {
                object.required.clear();
                object.properties.values_mut().for_each(optional_members);
            }
            Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(optional_members),
            Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(optional_members),
            _ => {}
        }
    }
}

/// Declares a reusable error response: its name, status text and description.
macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $description:expr) => {
        $(#[$doc])*
        pub(super) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error(ResponseBuilder::new().description($description)).into())
            }
        }
    };
}

/// `builder` with the error shape as its JSON body.
fn error(builder: ResponseBuilder) -> ResponseBuilder {
    builder.content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(ErrorResponse::name()))),
    )
}

error_response!(
    /// 401.
    Unauthorized,
    "No admin token, or a wrong one (`unauthorized`)."
);
error_response!(
    /// 403.
    Forbidden,
    "A read-only token asked for something other than `GET` or `HEAD` (`forbidden`)."
);
error_response!(
    /// 413.
    TooLarge,
    "The body is over the limit: 64 MiB, or `--max-payload-size` for a payload (`too-large`)."
);
error_response!(
    /// 400.
    BadRequest,
    "Invalid input, naming the field: a body, path or query that does not decode \
     (`malformed`), a value the model refuses (`invalid`), a constraint that does not parse \
     (`invalid-constraint`, with `position` and `rendered`), or a deploy without jobs \
     (`no-jobs`)."
);
error_response!(
    /// 404.
    NotFound,
    "An unknown id, in the path or naming the field of the body that refers to it \
     (`not-found`)."
);
error_response!(
    /// 409.
    Conflict,
    "The change would break a rule of the data or lost a race with another change: \
     `duplicate` (naming the field), `conflict` (a dependency cycle, conflicting versions, data \
     that kept changing), `family-conflict` (with `conflicts`), `not-assigned`."
);
error_response!(
    /// 415.
    UnsupportedMediaType,
    "A non-empty body whose `Content-Type` is not JSON (`application/json` or \
     `application/*+json`) (`unsupported-media-type`)."
);
error_response!(
    /// 500.
    Internal,
    "The server failed; nothing was changed, and the server's log says why (`internal`, \
     `write-failed`)."
);
error_response!(
    /// 507.
    InsufficientStorage,
    "The disk of the payload directory is full; nothing was changed (`insufficient-storage`)."
);

/// 503 with `Retry-After`.
pub(super) struct Busy;

impl<'r> ToResponse<'r> for Busy {
    fn response() -> (&'r str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("Seconds to wait before trying again."))
            .build();
        (
            "Busy",
            error(
                ResponseBuilder::new()
                    .description(
                        "Heavy admin operations (re-evaluating rules, deploying, statistics) are \
                         all busy and this one waited too long for its turn; nothing was \
                         changed (`busy`).",
                    )
                    .header("retry-after", retry_after),
            )
            .into(),
        )
    }
}
