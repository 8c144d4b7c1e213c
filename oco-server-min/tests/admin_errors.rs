//! The admin API's errors: 400 naming the field, 404, 409, 401.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{error, Api, TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn bad_json_is_a_400() {
    let api = Api::new();
    let (status, body) = api
        .raw(Method::POST, "/computers", b"{\"hostname\": ".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "malformed");
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_name_the_field() {
    let api = Api::new();
    let err = error(
        &api.post("/computers", json!({"hostname": "pc1", "colour": "red"}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{err}"
    );

    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "x", "policy": {"priority": "high"}}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "container.policy.priority", "{err}");

    let err = error(
        &api.post("/computers", json!({"hostname": "pc1", "macs": ["zz"]}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "macs[0]");

    let err = error(
        &api.post("/computers", json!({"hostname": "  "})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "hostname");

    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "x", "policy": {"priority": 101}}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "container.policy.priority");
}

#[tokio::test]
async fn a_bad_constraint_is_a_400_with_its_position() {
    let api = Api::new();
    let input = "10.0.0.0/8, 10.0.0.1/24";
    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "x", "policy": {"ip_ranges": input}}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["code"], "invalid-constraint");
    assert_eq!(err["field"], "container.policy.ip_ranges");
    assert_eq!(err["position"], json!({"start": 12, "end": 23}));
    assert_eq!(
        err["rendered"],
        "entry 2 `10.0.0.1/24`: host bits are set below the prefix length; did you mean \
         `10.0.0.0/24`?\n10.0.0.0/8, 10.0.0.1/24\n            ^^^^^^^^^^^"
    );

    let err = error(
        &api.post(
            "/rules",
            json!({"name": "r", "computer_group": 1, "package_group": 1,
                   "policy": {"time_frames": "MON-FRI 25:00-06:00"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "policy.time_frames");
    assert!(err["position"]["start"].is_u64());
}

#[tokio::test]
async fn success_codes_and_schedules_name_their_field() {
    let api = Api::new();
    let family = api.family("f").await;
    let err = error(
        &api.post(
            "/packages",
            json!({"family": family, "version": "1", "install": {"success_codes": "0, x"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "install.success_codes");
    let err = error(
        &api.post(
            "/packages",
            json!({"family": family, "version": "1", "uninstall": {"success_codes": ""}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "uninstall.success_codes");
    assert_eq!(
        err["message"],
        "lists no code; write the codes that count as success (`0` usually), or `*` for every code"
    );
    let err = error(
        &api.post(
            "/packages",
            json!({"family": family, "version": "1", "install": {"success_codes": " , "}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "install.success_codes");
    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "x", "start": "2026-11-24T12:00:00Z", "end": "2026-11-24T11:00:00Z"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "container.end");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let api = Api::new();
    for path in [
        "/computers/9",
        "/computer-groups/9",
        "/package-groups/9",
        "/package-families/9",
        "/packages/9",
        "/containers/9",
        "/rules/9",
        "/jobs/9",
        "/jobs/9/explain",
        "/containers/9/statistics",
        "/rules/9/statistics",
        "/computers/9/assignments",
    ] {
        let err = error(&api.get(path).await, StatusCode::NOT_FOUND);
        assert_eq!(err["code"], "not-found", "{path}");
    }
    for (path, message) in [
        ("/computer-groups/9", "computer group 9 not found"),
        ("/package-groups/9", "package group 9 not found"),
    ] {
        let err = error(&api.get(path).await, StatusCode::NOT_FOUND);
        assert_eq!(err["message"], message);
    }
    error(
        &api.patch("/packages/9", json!({})).await,
        StatusCode::NOT_FOUND,
    );
    error(&api.delete("/rules/9").await, StatusCode::NOT_FOUND);
    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "x"}, "computers": [9]}),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(err["field"], "computers");
    let err = error(
        &api.post("/packages", json!({"family": 9, "version": "1"}))
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(err["field"], "family");
}

#[tokio::test]
async fn duplicate_names_are_409() {
    let api = Api::new();
    api.computer("pc1", "").await;
    let err = error(
        &api.post("/computers", json!({"hostname": "PC1"})).await,
        StatusCode::CONFLICT,
    );
    assert_eq!(err["code"], "duplicate");
    assert_eq!(err["field"], "hostname");
    api.family("editor").await;
    error(
        &api.post("/package-families", json!({"name": "editor"}))
            .await,
        StatusCode::CONFLICT,
    );
}

#[tokio::test]
async fn an_empty_deploy_is_a_400() {
    let api = Api::new();
    let err = error(
        &api.post(
            "/containers/deploy",
            json!({"container": {"name": "nothing"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["code"], "no-jobs");
}

#[tokio::test]
async fn without_or_with_a_wrong_token_is_401() {
    let api = Api::new();
    let request = |auth: Option<&str>| {
        let mut builder = Request::builder().uri("/api/v1/computers");
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        builder.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(TOKEN),
        Some("Basic dGVzdA=="),
        Some("Bearer "),
    ] {
        let (status, body) = api.send(request(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = api.send(request(Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(status, StatusCode::OK);
    // Unknown routes are not revealed to callers without the token either.
    let unknown = Request::builder()
        .uri("/api/v1/nothing")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(unknown).await.0, StatusCode::UNAUTHORIZED);
}
