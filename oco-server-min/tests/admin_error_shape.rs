//! Every error status of the admin API carries the JSON error shape, routing and body errors
//! included; JSON routes refuse bodies of another content type.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{Api, TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;

/// Sends `method path` with the token, `body` and `content_type` (if any); the status, the
/// response's content type and its body as JSON (panicking if it is not).
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, Value) {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    let response = api
        .app
        .clone()
        .oneshot(builder.body(Body::from(body)).unwrap());
    let response = response.await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: not JSON: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    });
    (status, content_type, value)
}

use tower::ServiceExt;

/// Checks the status, the content type and the error shape; the `error` object.
#[track_caller]
fn json_error(answer: (StatusCode, Option<String>, Value), status: StatusCode) -> Value {
    let (got, content_type, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    let error = body["error"].clone();
    assert!(error["code"].is_string(), "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error
}

#[tokio::test]
async fn unknown_routes_are_a_json_404() {
    let api = Api::new();
    for path in ["/nothing", "/computers/1/nothing", "/"] {
        let error = json_error(
            send(&api, Method::GET, path, None, vec![]).await,
            StatusCode::NOT_FOUND,
        );
        assert_eq!(error["code"], "not-found", "{path}");
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_have_is_a_json_405() {
    let api = Api::new();
    for (method, path) in [
        (Method::DELETE, "/packages/1"),
        (Method::PUT, "/computers"),
        (Method::POST, "/jobs/1"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = api.app.clone().oneshot(request).await.unwrap();
        assert!(
            response.headers().contains_key(header::ALLOW),
            "{method} {path} keeps its Allow header"
        );
        let error = json_error(
            send(&api, method.clone(), path, None, vec![]).await,
            StatusCode::METHOD_NOT_ALLOWED,
        );
        assert_eq!(error["code"], "method-not-allowed", "{method} {path}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let api = Api::new();
    let big = vec![b' '; oco_server_min::BODY_LIMIT + 1];
    let error = json_error(
        send(
            &api,
            Method::POST,
            "/computers",
            Some("application/json"),
            big.clone(),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    assert_eq!(error["code"], "too-large");
    // Payload uploads have their own limit: see `admin_payloads.rs`.
}

#[tokio::test]
async fn the_payload_routes_download_and_405_keep_the_body_limit() {
    // Only the upload streams its body under its own limit; a download or another method sent
    // with a body is read under the admin API's.
    let api = Api::new();
    let big = vec![b' '; oco_server_min::BODY_LIMIT + 1];
    for method in [Method::GET, Method::POST] {
        let error = json_error(
            send(
                &api,
                method.clone(),
                "/packages/1/payload",
                None,
                big.clone(),
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        );
        assert_eq!(error["code"], "too-large", "{method}");
    }
}

#[tokio::test]
async fn a_json_route_refuses_another_content_type_with_a_415() {
    let api = Api::new();
    let body = br#"{"hostname": "pc1"}"#.to_vec();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let error = json_error(
            send(&api, Method::POST, "/computers", content_type, body.clone()).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        );
        assert_eq!(error["code"], "unsupported-media-type", "{content_type:?}");
    }
    // Nothing was created by the refused requests.
    let (_, _, list) = send(&api, Method::GET, "/computers", None, vec![]).await;
    assert_eq!(list["items"], serde_json::json!([]));
    for (i, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ]
    .into_iter()
    .enumerate()
    {
        let hostname = format!("pc-{i}");
        let body = serde_json::to_vec(&serde_json::json!({ "hostname": hostname })).unwrap();
        let (status, _, value) =
            send(&api, Method::POST, "/computers", Some(content_type), body).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {value}");
    }
    // A route whose body is optional takes an empty body without a content type.
    let (status, _, value) = send(&api, Method::POST, "/rules/1/evaluate", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{value}");
}

#[tokio::test]
async fn a_missing_token_is_a_json_401_even_on_an_unknown_route() {
    let api = Api::new();
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("/api/v1/packages/1")
        .body(Body::empty())
        .unwrap();
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}
