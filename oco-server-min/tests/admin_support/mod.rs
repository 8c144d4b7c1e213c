//! What the admin API tests share: an in-process server on a store, with a fixed clock.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use oco_core::chrono::{DateTime, TimeZone, Utc};
use oco_core::store::{MemoryStore, Store};
use oco_core::Settings;
use oco_server_min::clock::FixedClock;
use oco_server_min::{app, AppState, Secrets, ServerOptions};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The admin token of the test servers.
pub const TOKEN: &str = "test-admin-token";

/// Tuesday 2026-11-24 12:00 UTC.
pub fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

/// An in-process server.
pub struct Api {
    pub app: Router,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub dir: tempfile::TempDir,
}

impl Api {
    /// A server on an empty in-memory store.
    pub fn new() -> Api {
        Api::on(Arc::new(MemoryStore::new()))
    }

    /// A server on `store`.
    pub fn on(store: Arc<dyn Store>) -> Api {
        Api::with_options(store, |_| {})
    }

    /// A server on `store` with the options `configure` sets (the payload directory is set
    /// before it, in a temporary directory).
    pub fn with_options(store: Arc<dyn Store>, configure: impl FnOnce(&mut ServerOptions)) -> Api {
        let clock = Arc::new(FixedClock::new(noon()));
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions {
            payload_dir: dir.path().join("payloads"),
            ..ServerOptions::default()
        };
        configure(&mut options);
        let secrets = Secrets {
            admin_token: TOKEN.into(),
            agent_key: "agent-key".into(),
            registration_key: None,
        };
        let state = AppState::new(
            store.clone(),
            clock.clone(),
            Settings::default(),
            options,
            secrets,
        )
        .unwrap();
        Api {
            app: app(state),
            store,
            clock,
            dir,
        }
    }

    /// Sends `request` as is.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    /// Sends a request with the admin token and a raw body.
    pub async fn raw(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        self.raw_as(TOKEN, method, path, body).await
    }

    /// Sends a request with `token` and a raw body.
    pub async fn raw_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Sends a JSON request with the admin token; the response as JSON (`null` if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    /// Sends a JSON request with `token`; the response as JSON (`null` if empty).
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let (status, bytes) = self.raw_as(token, method, path, body).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Posts and expects `status`; the id of the answer (or of `answer.pointer`).
    pub async fn create(&self, path: &str, body: Value) -> i64 {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {value}");
        value["id"]
            .as_i64()
            .or_else(|| value["rule"]["id"].as_i64())
            .or_else(|| value["container"]["id"].as_i64())
            .unwrap_or_else(|| panic!("no id in {value}"))
    }

    pub async fn computer(&self, hostname: &str, os: &str) -> i64 {
        self.create("/computers", json!({"hostname": hostname, "os": os}))
            .await
    }

    pub async fn family(&self, name: &str) -> i64 {
        self.create("/package-families", json!({"name": name}))
            .await
    }

    pub async fn package(&self, family: i64, version: &str, upgrade: &str) -> i64 {
        self.create(
            "/packages",
            json!({"family": family, "version": version, "upgrade_behavior": upgrade,
                   "install": {"command": format!("install {version}")}}),
        )
        .await
    }

    pub async fn computer_group(&self, name: &str, members: &[i64]) -> i64 {
        let id = self.create("/computer-groups", json!({"name": name})).await;
        let (status, value) = self
            .put(
                &format!("/computer-groups/{id}/members"),
                json!({"members": members}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        id
    }

    pub async fn package_group(&self, name: &str, members: &[i64]) -> i64 {
        let id = self.create("/package-groups", json!({"name": name})).await;
        let (status, value) = self
            .put(
                &format!("/package-groups/{id}/members"),
                json!({"members": members}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        id
    }

    /// The jobs the listing returns for `query`.
    pub async fn jobs(&self, query: &str) -> Vec<Value> {
        let (status, value) = self.get(&format!("/jobs?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value["items"].as_array().unwrap().clone()
    }
}

/// The `error` object of an error answer, checking its status.
#[track_caller]
pub fn error(answer: &(StatusCode, Value), status: StatusCode) -> Value {
    assert_eq!(answer.0, status, "{}", answer.1);
    answer.1["error"].clone()
}
