//! The admin API's OpenAPI document (`GET /api/v1/openapi.json`): served without a token; every
//! route of the router in it and every operation in it routed, both ways (from the router's own
//! table and by requests); and the server's real answers, successes and errors, valid against
//! it, with every documented operation's success seen at least once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use admin_support::{Api, TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The prefix the document's paths are relative to (its `servers`).
const PREFIX: &str = "/api/v1";

/// The methods an operation may have.
const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// The document as the server serves it, without a token.
async fn document(api: &Api) -> Value {
    let request = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let (status, bytes) = api.send(request).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&bytes).unwrap()
}

/// Every (method, path) of the document, the method in upper case.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// Every (method, path) the router of `api` serves under [`PREFIX`], read from its table.
///
/// axum does not list a router's routes, but its `Debug` form shows them: each route's id with
/// its path (`RouteId(3): "/api/v1/computers"`) and its method router with the `Allow` header
/// it answers a 405 with (`allow_header: Bytes(b"GET,HEAD,POST")`). `HEAD` is left out: axum
/// answers it for every `GET`. A route registered as a service (no method router) fails the
/// test, since its methods cannot be known.
fn routed(api: &Api) -> BTreeSet<(String, String)> {
    let debug = format!("{:?}", api.app);
    // The fallback router's table follows; only the routes' table is wanted.
    let table = debug
        .split_once("fallback_router:")
        .map_or(debug.as_str(), |(routes, _)| routes);
    let mut paths = BTreeMap::new();
    let mut methods = BTreeMap::new();
    for part in table.split("RouteId(").skip(1) {
        let (id, rest) = part.split_once(')').unwrap();
        let id: u32 = id.parse().unwrap();
        if let Some(path) = rest.strip_prefix(": \"") {
            paths.insert(id, path.split_once('"').unwrap().0.to_owned());
        } else if let Some(router) = rest.strip_prefix(": MethodRouter(") {
            let allow = router
                .split_once("allow_header: Bytes(b\"")
                .unwrap_or_else(|| panic!("route {id}: no Allow header in {router}"))
                .1;
            let allow = allow.split_once('"').unwrap().0;
            methods.insert(id, allow.to_owned());
        } else {
            panic!("route {id} is not a method router: {rest:.200}");
        }
    }
    assert!(
        paths.len() > 30 && paths.len() == methods.len(),
        "the router's Debug form changed: {} paths, {} method routers",
        paths.len(),
        methods.len()
    );
    let mut operations = BTreeSet::new();
    for (id, path) in paths {
        let Some(path) = path.strip_prefix(PREFIX) else {
            continue;
        };
        for method in methods[&id].split(',').filter(|m| *m != "HEAD") {
            operations.insert((method.to_owned(), path.to_owned()));
        }
    }
    operations
}

/// `path` (a document path) with every parameter replaced by 1.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `method path` with the admin token and an empty JSON object as the body; the status and the
/// error message, if any.
async fn probe(api: &Api, method: &str, path: &str) -> (StatusCode, String) {
    probe_as(api, Some(TOKEN), method, path).await
}

/// [`probe`] with `token`, or with none.
async fn probe_as(
    api: &Api,
    token: Option<&str>,
    method: &str,
    path: &str,
) -> (StatusCode, String) {
    let mut request = Request::builder();
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .method(method)
        .uri(format!("{PREFIX}{}", concrete(path)))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, bytes) = api.send(request).await;
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, message)
}

/// Every documented operation but the document itself needs a token (401 without one, as the
/// document says), and a read-only token may only read (403 otherwise, as it says too).
#[tokio::test]
async fn every_operation_needs_a_token_and_a_read_only_one_may_only_read() {
    let api = Api::new();
    let doc = document(&api).await;
    let (status, made) = api
        .post("/tokens", json!({"name": "viewer", "access": "read-only"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let viewer = made["token"].as_str().unwrap();
    let mut checked = 0;
    for (method, path) in documented(&doc) {
        if path == "/openapi.json" {
            continue;
        }
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let (status, message) = probe_as(&api, None, &method, &path).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {message}"
        );
        assert!(
            operation["responses"].get("401").is_some(),
            "{method} {path}"
        );
        if method != "GET" {
            let (status, message) = probe_as(&api, Some(viewer), &method, &path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {message}");
            assert!(
                operation["responses"].get("403").is_some(),
                "{method} {path}"
            );
        } else {
            assert!(
                operation["responses"].get("403").is_none(),
                "{method} {path}"
            );
        }
        checked += 1;
    }
    assert!(checked > 50, "{checked} operations");
    // Nothing the read-only token asked for was done.
    assert_eq!(
        api.store
            .list_admin_tokens(oco_core::store::Page::first(10))
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_needs_no_token() {
    let api = Api::new();
    let doc = document(&api).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], PREFIX);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/openapi.json"]["get"]["security"], json!([]));
    // A wrong token does not matter either, and the answer is JSON with the request id.
    let response = api
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .header(header::AUTHORIZATION, "Bearer wrong")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    // Everything else still needs the token.
    let (status, _) = api
        .send(
            Request::get("/api/v1/computers")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let api = Api::new();
    let doc = document(&api).await;
    let documented = documented(&doc);
    let routed = routed(&api);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without documentation: {undocumented:?}; documented operations without a \
         route: {unrouted:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler_and_no_other_method_does() {
    let api = Api::new();
    let doc = document(&api).await;
    let documented = documented(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        // The documented methods first, so that a path with no route at all says so.
        let mut methods = METHODS.map(str::to_uppercase);
        methods.sort_by_key(|method| !documented.contains(&(method.clone(), path.clone())));
        for method in methods {
            let (status, message) = probe(&api, &method, path).await;
            if documented.contains(&(method.clone(), path.clone())) {
                // The fallback's 404 or routing's 405 would mean no handler took it.
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED
                        && message != "no such admin API route",
                    "{method} {path} is documented but not routed: {status} {message}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not documented but answered: {message}"
                );
            }
        }
    }
    // And a path the document does not have is the fallback's.
    let (status, message) = probe(&api, "GET", "/computers/{id}/nothing").await;
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::NOT_FOUND, "no such admin API route")
    );
}

/// Sends requests to an in-process server and checks each answer against the document: its
/// status is one the operation lists, its body is valid against that response's schema, its
/// content type is the documented one, and it carries `x-request-id`. A JSON request body the
/// server accepted must be valid against the documented request body too: what the server
/// takes, the document must allow.
struct Checker {
    api: Api,
    doc: Value,
    /// (method, document path, status) of every answer checked.
    seen: BTreeSet<(String, String, u16)>,
}

impl Checker {
    async fn new() -> Checker {
        let api = Api::new();
        let doc = document(&api).await;
        Checker {
            api,
            doc,
            seen: BTreeSet::new(),
        }
    }

    /// The document path `path` (concrete, without the prefix and query) is an instance of
    /// for `method`: the one with the most literal segments.
    fn template(&self, method: &str, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| item.get(method.to_lowercase()).is_some())
            .map(|(template, _)| template)
            .filter(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(part, segment)| part.starts_with('{') || part == segment)
            })
            .max_by_key(|template| template.split('/').filter(|p| !p.starts_with('{')).count())
            .unwrap_or_else(|| panic!("{method} {path} is not in the document"))
            .clone()
    }

    /// Follows a `$ref` to a reusable response.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').unwrap();
                self.doc.pointer(pointer).unwrap()
            }
            None => value,
        }
    }

    /// Sends `method path` with the admin token (unless `token` is false) and `body` of
    /// `content_type`; checks the answer and returns it (JSON, `null` for none or binary).
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: bool,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{PREFIX}{path}"))
            .header(header::CONTENT_TYPE, content_type);
        if token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        }
        let response = self
            .api
            .app
            .clone()
            .oneshot(request.body(Body::from(body.clone())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();

        let bare = path.split_once('?').map_or(path, |(bare, _)| bare);
        let template = self.template(method.as_str(), bare);
        let operation = &self.doc["paths"][&template][method.as_str().to_lowercase()];
        let answer = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{method} {path}: status {status} is not documented: {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        let answer = self.resolve(answer).clone();
        if status.is_success() && content_type.ends_with("json") && !body.is_empty() {
            let schema = &operation["requestBody"]["content"][content_type]["schema"];
            assert!(
                !schema.is_null(),
                "{method} {path}: no request body of {content_type} documented"
            );
            let sent: Value = serde_json::from_slice(&body).unwrap();
            self.validate(schema, &sent, &format!("{method} {path}'s request"));
        }
        assert!(
            headers.contains_key("x-request-id"),
            "{method} {path}: no x-request-id"
        );
        for (name, header) in answer["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                assert!(
                    headers.contains_key(name.as_str()),
                    "{method} {path}: {status} without its header {name}"
                );
            }
        }
        let value = match answer["content"].as_object() {
            None => {
                assert!(bytes.is_empty(), "{method} {path}: {status} has a body");
                Value::Null
            }
            Some(content) => {
                let (media, described) = content.iter().next().unwrap();
                let received = headers[header::CONTENT_TYPE].to_str().unwrap();
                assert_eq!(received, media, "{method} {path}: {status}'s content type");
                if media == "application/json" {
                    let value: Value = serde_json::from_slice(&bytes).unwrap();
                    self.validate(&described["schema"], &value, &format!("{method} {path}"));
                    value
                } else {
                    Value::Null
                }
            }
        };
        self.seen
            .insert((method.to_string(), template, status.as_u16()));
        (status, value)
    }

    /// Checks `value` against `schema` (resolved within the document).
    fn validate(&self, schema: &Value, value: &Value, what: &str) {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|error| panic!("{what}: the schema does not compile: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match the document:\n{}\n{value:#}",
            errors.join("\n")
        );
    }

    async fn json(&mut self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        self.send(method, path, "application/json", body, true)
            .await
    }

    /// Checks the answer and that its status is `expected`.
    async fn expect(&mut self, method: Method, path: &str, body: Value, expected: u16) -> Value {
        let (status, value) = self.json(method.clone(), path, body).await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {value}");
        value
    }
}

/// A scenario that answers every documented operation's success and the errors handlers make,
/// each answer checked against the document.
#[tokio::test]
async fn the_servers_answers_match_the_document() {
    use Method as M;
    let mut c = Checker::new().await;
    // The document itself, and a request without a token.
    c.send(
        M::GET,
        "/openapi.json",
        "application/json",
        Vec::new(),
        false,
    )
    .await;
    let (status, _) = c
        .send(M::GET, "/computers", "application/json", Vec::new(), false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Computers.
    let pc1 = c
        .expect(
            M::POST,
            "/computers",
            json!({"hostname": "pc1", "os": "Windows", "macs": ["00-1A-2B-3C-4D-5E"]}),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let pc2 = c
        .expect(M::POST, "/computers", json!({"hostname": "pc2"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(M::POST, "/computers", json!({"hostname": "PC1"}), 409)
        .await;
    c.expect(M::POST, "/computers", json!({"hostname": "bad host"}), 400)
        .await;
    c.expect(M::POST, "/computers", json!({"hostname": 1}), 400)
        .await;
    c.send(M::POST, "/computers", "text/plain", b"pc3".to_vec(), true)
        .await;
    c.expect(M::GET, "/computers?limit=1", Value::Null, 200)
        .await;
    c.expect(M::GET, "/computers?limit=0", Value::Null, 400)
        .await;
    c.expect(M::GET, "/computers?color=red", Value::Null, 400)
        .await;
    c.expect(M::GET, &format!("/computers/{pc1}"), Value::Null, 200)
        .await;
    c.expect(M::GET, "/computers/999", Value::Null, 404).await;
    c.expect(M::GET, "/computers/x", Value::Null, 400).await;
    let patch = serde_json::to_vec(&json!({"os": "Linux", "macs": null})).unwrap();
    let (status, _) = c
        .send(
            M::PATCH,
            &format!("/computers/{pc2}"),
            "application/merge-patch+json",
            patch,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.expect(
        M::PATCH,
        &format!("/computers/{pc2}"),
        json!({"hostname": null}),
        400,
    )
    .await;
    c.expect(
        M::POST,
        &format!("/computers/{pc1}/agent/reset"),
        Value::Null,
        200,
    )
    .await;

    // Groups.
    let office = c
        .expect(M::POST, "/computer-groups", json!({"name": "office"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(
        M::POST,
        "/computer-groups",
        json!({"name": "top", "parent": null}),
        201,
    )
    .await;
    let floor = c
        .expect(
            M::POST,
            "/computer-groups",
            json!({"name": "floor", "parent": office}),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(
        M::POST,
        "/computer-groups",
        json!({"name": "x", "parent": 99}),
        400,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/computer-groups/{office}/members"),
        json!({"members": [pc1, pc2]}),
        200,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/computer-groups/{office}/parent"),
        json!({"parent": floor}),
        400,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/computer-groups/{floor}/parent"),
        json!({"parent": null}),
        200,
    )
    .await;
    c.expect(M::GET, "/computer-groups", Value::Null, 200).await;
    c.expect(
        M::GET,
        &format!("/computer-groups/{office}"),
        Value::Null,
        200,
    )
    .await;
    c.expect(M::GET, "/computer-groups/99", Value::Null, 404)
        .await;

    // Families and packages, with a payload.
    let family = c
        .expect(M::POST, "/package-families", json!({"name": "editor"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(M::POST, "/package-families", json!({"name": "editor"}), 409)
        .await;
    c.expect(M::GET, "/package-families", Value::Null, 200)
        .await;
    c.expect(
        M::GET,
        &format!("/package-families/{family}"),
        Value::Null,
        200,
    )
    .await;
    let package = |version: &str, upgrade: &str| {
        json!({"family": family, "version": version, "upgrade_behavior": upgrade,
               "install": {"command": format!("setup {version}"), "success_codes": "0, 3010",
                           "post_action": "restart"},
               "compatibility": {"os": ["Windows", "Linux"]}})
    };
    let v1 = c
        .expect(M::POST, "/packages", package("1", "implicit-remove"), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let v2 = c
        .expect(M::POST, "/packages", package("2", "implicit-remove"), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(M::POST, "/packages", package("2", "keep-others"), 409)
        .await;
    let mut unknown_family = package("3", "keep-others");
    unknown_family["family"] = json!(99);
    c.expect(M::POST, "/packages", unknown_family, 404).await;
    let shell = c
        .expect(M::POST, "/package-families", json!({"name": "shell"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let mut linux_only = package("linux", "keep-others");
    linux_only["family"] = json!(shell);
    linux_only["compatibility"] = json!({"os": ["Linux"]});
    let linux = c.expect(M::POST, "/packages", linux_only, 201).await["id"]
        .as_i64()
        .unwrap();
    c.expect(M::GET, "/packages", Value::Null, 200).await;
    c.expect(M::GET, &format!("/packages/{v1}"), Value::Null, 200)
        .await;
    c.expect(
        M::PATCH,
        &format!("/packages/{v1}"),
        json!({"install": {"success_codes": "*"}}),
        200,
    )
    .await;
    c.expect(
        M::PATCH,
        &format!("/packages/{v1}"),
        json!({"dependencies": [v1]}),
        400,
    )
    .await;
    let (status, _) = c
        .send(
            M::PUT,
            &format!("/packages/{v1}/payload"),
            "application/zip",
            common::zip("setup.exe", b"an installer"),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .send(
            M::PUT,
            &format!("/packages/{v2}/payload"),
            "application/zip",
            b"MZ not a zip".to_vec(),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    c.expect(M::GET, &format!("/packages/{v1}/payload"), Value::Null, 200)
        .await;
    c.expect(M::GET, &format!("/packages/{v2}/payload"), Value::Null, 404)
        .await;

    // Package groups.
    let tools = c
        .expect(M::POST, "/package-groups", json!({"name": "tools"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let newer = c
        .expect(M::POST, "/package-groups", json!({"name": "newer"}), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    c.expect(
        M::PUT,
        &format!("/package-groups/{tools}/members"),
        json!({"members": [v1]}),
        200,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/package-groups/{newer}/members"),
        json!({"members": [v2]}),
        200,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/package-groups/{newer}/parent"),
        json!({"parent": null}),
        200,
    )
    .await;
    c.expect(M::GET, "/package-groups", Value::Null, 200).await;
    c.expect(
        M::GET,
        &format!("/package-groups/{tools}"),
        Value::Null,
        200,
    )
    .await;

    // Assignments.
    c.expect(
        M::PUT,
        &format!("/computers/{pc2}/assignments/{v1}"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::GET,
        &format!("/computers/{pc2}/assignments"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::PUT,
        &format!("/computers/{pc2}/assignments/99"),
        Value::Null,
        404,
    )
    .await;

    // Containers: a deploy whose policy the lint warns about, one whose policy does not
    // parse, an uninstall, and the rest.
    let deployed = c
        .expect(
            M::POST,
            "/containers/deploy",
            json!({"container": {"name": "rollout", "end": "2026-12-24T00:00:00Z",
                                 "policy": {"ip_ranges": "10.0.0.0/8, !10.66.0.0/16",
                                            "time_frames": "MON-FRI 18:00-06:00",
                                            "time_zone": "Europe/Berlin"},
                                 "wol": {"wake": true}},
                   "computers": [pc1, pc2], "packages": [v1, linux]}),
            201,
        )
        .await;
    assert!(deployed["warnings"].is_array(), "{deployed}");
    let container = deployed["container"]["id"].as_i64().unwrap();
    let error = c
        .expect(
            M::POST,
            "/containers/deploy",
            json!({"container": {"name": "bad", "policy": {"ip_ranges": "10.0.0.0/33"}},
                   "computers": [pc1], "packages": [v1]}),
            400,
        )
        .await;
    assert_eq!(error["error"]["code"], "invalid-constraint", "{error}");
    c.expect(
        M::POST,
        "/containers/deploy",
        json!({"container": {"name": "nothing"}}),
        400,
    )
    .await;
    c.expect(
        M::POST,
        "/containers/deploy",
        json!({"container": {"name": "gone"}, "computers": [99], "packages": [v1]}),
        404,
    )
    .await;
    c.expect(
        M::POST,
        "/containers/uninstall",
        json!({"container": {"name": "removal"},
               "assignments": [{"computer": pc2, "package": v1}]}),
        201,
    )
    .await;
    c.expect(M::GET, "/containers", Value::Null, 200).await;
    c.expect(
        M::GET,
        &format!("/containers/{container}"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::PATCH,
        &format!("/containers/{container}"),
        json!({"end": null, "policy": {"priority": 5, "ip_ranges": "0.0.0.0/0, ::/0"}}),
        200,
    )
    .await;
    c.expect(
        M::PATCH,
        &format!("/containers/{container}"),
        json!({"policy": {"priority": 500}}),
        400,
    )
    .await;
    c.expect(
        M::POST,
        &format!("/containers/{container}/disable"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::POST,
        &format!("/containers/{container}/enable"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::GET,
        &format!("/containers/{container}/statistics"),
        Value::Null,
        200,
    )
    .await;
    c.expect(
        M::POST,
        &format!("/containers/{container}/renew"),
        json!({"into": "again"}),
        400,
    )
    .await;
    c.expect(
        M::POST,
        &format!("/containers/{container}/renew"),
        json!({}),
        200,
    )
    .await;

    // Jobs, and why they are (not) handed out.
    let jobs = c.expect(M::GET, "/jobs", Value::Null, 200).await;
    c.expect(
        M::GET,
        &format!("/jobs?origin=container:{container}&state=waiting&output_chars=10"),
        Value::Null,
        200,
    )
    .await;
    c.expect(M::GET, "/jobs?state=lost", Value::Null, 400).await;
    let items = jobs["items"].as_array().unwrap();
    let job_of = |computer: i64, package: i64| {
        items
            .iter()
            .find(|job| {
                job["origin"] == format!("container:{container}")
                    && job["computer"] == computer
                    && job["package"] == package
            })
            .unwrap_or_else(|| panic!("no job for {computer}, {package} in {jobs}"))["id"]
            .as_i64()
            .unwrap()
    };
    let waiting = job_of(pc1, v1);
    let incompatible = job_of(pc1, linux);
    c.expect(M::GET, &format!("/jobs/{waiting}"), Value::Null, 200)
        .await;
    c.expect(M::GET, "/jobs/999", Value::Null, 404).await;
    for (query, status) in [
        ("", "held"),
        ("?address=10.1.2.3", "held"),
        ("?address=2001:db8::1", "held"),
    ] {
        let verdict = c
            .expect(
                M::GET,
                &format!("/jobs/{waiting}/explain{query}"),
                Value::Null,
                200,
            )
            .await;
        assert_eq!(verdict["status"], status, "{verdict}");
    }
    let verdict = c
        .expect(
            M::GET,
            &format!("/jobs/{incompatible}/explain"),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(verdict["status"], "not-pending", "{verdict}");
    c.expect(
        M::GET,
        &format!("/jobs/{waiting}/explain?address=nowhere"),
        Value::Null,
        400,
    )
    .await;
    // Deliverable, and depending on the address.
    let open = c
        .expect(
            M::POST,
            "/containers/deploy",
            json!({"container": {"name": "lan", "policy": {"ip_ranges": "10.0.0.0/8"}},
                   "computers": [pc2], "packages": [v1], "force_reinstall": true}),
            201,
        )
        .await;
    let lan_job = open["jobs"][0]["id"].as_i64().unwrap();
    for (query, status) in [
        ("?address=10.1.2.3", "deliverable"),
        ("", "depends-on-address"),
    ] {
        let verdict = c
            .expect(
                M::GET,
                &format!("/jobs/{lan_job}/explain{query}"),
                Value::Null,
                200,
            )
            .await;
        assert_eq!(verdict["status"], status, "{verdict}");
    }

    // Rules, with a family conflict refused.
    let rule = c
        .expect(
            M::POST,
            "/rules",
            json!({"name": "tools", "computer_group": office, "package_group": tools,
                   "policy": {"sequence_mode": "abort-after-failed", "post_action_timeout": null}}),
            201,
        )
        .await["rule"]["id"]
        .as_i64()
        .unwrap();
    let conflict = c
        .expect(
            M::POST,
            "/rules",
            json!({"name": "newer", "computer_group": office, "package_group": newer}),
            409,
        )
        .await;
    assert_eq!(conflict["error"]["code"], "family-conflict", "{conflict}");
    c.expect(
        M::POST,
        "/rules",
        json!({"name": "x", "computer_group": 99, "package_group": tools}),
        404,
    )
    .await;
    c.expect(M::GET, "/rules", Value::Null, 200).await;
    c.expect(M::GET, &format!("/rules/{rule}"), Value::Null, 200)
        .await;
    c.expect(
        M::PATCH,
        &format!("/rules/{rule}"),
        json!({"notes": "for the office", "policy": {"ip_ranges": "10.0.0.0/8, 10.1.0.0/16"}}),
        200,
    )
    .await;
    c.expect(M::POST, &format!("/rules/{rule}/disable"), Value::Null, 200)
        .await;
    c.expect(M::POST, &format!("/rules/{rule}/enable"), Value::Null, 200)
        .await;
    c.expect(
        M::POST,
        &format!("/rules/{rule}/evaluate"),
        Value::Null,
        200,
    )
    .await;
    c.expect(M::POST, &format!("/rules/{rule}/renew"), json!({}), 200)
        .await;
    c.expect(
        M::GET,
        &format!("/rules/{rule}/statistics"),
        Value::Null,
        200,
    )
    .await;

    // Tokens.
    let token = c
        .expect(
            M::POST,
            "/tokens",
            json!({"name": "dashboard", "access": "read-only"}),
            201,
        )
        .await;
    let token_id = token["id"].as_i64().unwrap();
    c.expect(M::POST, "/tokens", json!({"name": "dashboard"}), 409)
        .await;
    c.expect(M::GET, "/tokens", Value::Null, 200).await;
    c.expect(M::GET, &format!("/tokens/{token_id}"), Value::Null, 200)
        .await;
    c.expect(M::DELETE, &format!("/tokens/{token_id}"), Value::Null, 204)
        .await;
    c.expect(M::DELETE, &format!("/tokens/{token_id}"), Value::Null, 404)
        .await;

    // Housekeeping, and the deletions.
    c.expect(M::GET, "/housekeeping", Value::Null, 200).await;
    c.expect(M::DELETE, &format!("/rules/{rule}"), Value::Null, 204)
        .await;
    c.expect(
        M::DELETE,
        &format!("/containers/{container}"),
        Value::Null,
        204,
    )
    .await;
    c.expect(
        M::DELETE,
        &format!("/computers/{pc2}/assignments/{v1}"),
        Value::Null,
        204,
    )
    .await;
    c.expect(M::DELETE, &format!("/computers/{pc1}"), Value::Null, 200)
        .await;
    c.expect(M::DELETE, &format!("/computers/{pc1}"), Value::Null, 404)
        .await;

    // Every operation's success was seen.
    let successes: BTreeSet<(String, String)> = c
        .seen
        .iter()
        .filter(|(_, _, status)| (200..300).contains(status))
        .map(|(method, path, _)| (method.clone(), path.clone()))
        .collect();
    let missing: Vec<_> = documented(&c.doc).difference(&successes).cloned().collect();
    assert!(missing.is_empty(), "no success seen for {missing:?}");
}
