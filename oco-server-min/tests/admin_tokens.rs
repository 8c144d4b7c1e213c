//! Named admin tokens: created and revoked through the API without a restart, stored only as
//! digests, read-only ones refused every change, and the secrets file's token as the first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::sync::Arc;

use admin_support::{error, Api, TOKEN};
use axum::http::{Method, StatusCode};
use oco_core::model::Sha256Digest;
use oco_core::store::{MemoryStore, Page, Store, TokenAccess};
use oco_server_min::MAX_ADMIN_TOKENS;
use serde_json::json;
use sha2::Digest as _;

/// Creates a token; its id and secret.
async fn token(api: &Api, name: &str, access: &str) -> (i64, String) {
    let (status, body) = api
        .post("/tokens", json!({"name": name, "access": access}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

fn digest(secret: &str) -> Sha256Digest {
    Sha256Digest(sha2::Sha256::digest(secret.as_bytes()).into())
}

#[tokio::test]
async fn the_secrets_file_token_is_the_first_full_token_named_admin() {
    let api = Api::new();
    let (status, list) = api.get("/tokens").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let first = &list["items"][0];
    assert_eq!(first["name"], "admin");
    assert_eq!(first["access"], "full");
    assert_eq!(first["created"], "2026-11-24T12:00:00Z");
    assert_eq!(
        first.get("token"),
        None,
        "a listing shows no secret: {first}"
    );
    // Stored as the digest of the secret, never the secret.
    let stored = api.store.list_admin_tokens(Page::first(10)).unwrap();
    assert_eq!(stored[0].digest, digest(TOKEN));
}

#[tokio::test]
async fn a_created_token_is_shown_once_works_at_once_and_is_stored_as_its_digest() {
    let api = Api::new();
    let (status, created) = api.post("/tokens", json!({"name": "ci-pipeline"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["access"], "full", "full by default: {created}");
    let secret = created["token"].as_str().unwrap();
    assert!(secret.starts_with("oco_") && secret.len() == 47, "{secret}");

    let id = created["id"].as_i64().unwrap();
    let (status, shown) = api.get(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["name"], "ci-pipeline");
    assert_eq!(shown.get("token"), None, "shown once only: {shown}");

    let stored = api
        .store
        .admin_token_by_digest(&digest(secret))
        .unwrap()
        .expect("stored by its digest");
    assert_eq!(stored.name.as_str(), "ci-pipeline");

    let (status, pc) = api
        .call_as(
            secret,
            Method::POST,
            "/computers",
            Some(json!({"hostname": "pc1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pc}");

    let (_, other) = api.post("/tokens", json!({"name": "other"})).await;
    assert_ne!(other["token"], created["token"], "secrets are random");
}

#[tokio::test]
async fn a_read_only_token_reads_and_is_refused_every_change() {
    let api = Api::new();
    api.computer("pc1", "Windows").await;
    let (_, secret) = token(&api, "grafana", "read-only").await;

    let (status, list) = api.call_as(&secret, Method::GET, "/computers", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, _) = api.call_as(&secret, Method::GET, "/tokens", None).await;
    assert_eq!(status, StatusCode::OK);

    for (method, path, body) in [
        (Method::POST, "/computers", Some(json!({"hostname": "pc2"}))),
        (Method::DELETE, "/computers/1", None),
        (Method::PATCH, "/computers/1", Some(json!({"os": "Linux"}))),
        (Method::POST, "/tokens", Some(json!({"name": "mine"}))),
    ] {
        let answer = api.call_as(&secret, method.clone(), path, body).await;
        let error = error(&answer, StatusCode::FORBIDDEN);
        assert_eq!(error["code"], "forbidden", "{method} {path}");
        assert!(
            error["message"].as_str().unwrap().contains("grafana"),
            "{error}"
        );
    }
    let (_, list) = api.get("/computers").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing changed"
    );
    assert_eq!(list["items"][0]["os"], "Windows");
    assert_eq!(
        api.store.list_admin_tokens(Page::first(10)).unwrap().len(),
        2
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_its_next_request() {
    let api = Api::new();
    let (id, secret) = token(&api, "laptop", "full").await;
    let (status, _) = api.call_as(&secret, Method::GET, "/computers", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api.delete(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let answer = api.call_as(&secret, Method::GET, "/computers", None).await;
    assert_eq!(
        error(&answer, StatusCode::UNAUTHORIZED)["code"],
        "unauthorized"
    );

    let answer = api.delete(&format!("/tokens/{id}")).await;
    assert_eq!(error(&answer, StatusCode::NOT_FOUND)["code"], "not-found");
}

#[tokio::test]
async fn the_last_full_token_cannot_be_revoked() {
    let api = Api::new();
    let (_, list) = api.get("/tokens").await;
    let admin = list["items"][0]["id"].as_i64().unwrap();
    token(&api, "dashboard", "read-only").await;

    let answer = api.delete(&format!("/tokens/{admin}")).await;
    let error = error(&answer, StatusCode::CONFLICT);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("last full-access token"),
        "{error}"
    );

    // With another full token, the first may go; the secrets file's token is then refused.
    let (_, second) = token(&api, "second", "full").await;
    let (status, _) = api
        .call_as(&second, Method::DELETE, &format!("/tokens/{admin}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = api.get("/tokens").await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn names_are_checked_and_unique() {
    let api = Api::new();
    token(&api, "ops", "full").await;
    let answer = api.post("/tokens", json!({"name": "ops"})).await;
    let error_ = error(&answer, StatusCode::CONFLICT);
    assert_eq!(error_["code"], "duplicate");
    assert_eq!(error_["field"], "name");

    let answer = api.post("/tokens", json!({"name": "  "})).await;
    assert_eq!(error(&answer, StatusCode::BAD_REQUEST)["field"], "name");
    let answer = api
        .post("/tokens", json!({"name": "x", "access": "admin"}))
        .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    let answer = api
        .post("/tokens", json!({"name": "x", "secret": "mine"}))
        .await;
    assert_eq!(
        answer.0,
        StatusCode::BAD_REQUEST,
        "no chosen secrets: {}",
        answer.1
    );
    assert_eq!(
        api.store.list_admin_tokens(Page::first(10)).unwrap().len(),
        2
    );
}

#[tokio::test]
async fn tokens_are_bounded() {
    let api = Api::new();
    for n in 1..MAX_ADMIN_TOKENS {
        token(&api, &format!("t{n}"), "read-only").await;
    }
    let answer = api.post("/tokens", json!({"name": "one-more"})).await;
    let error = error(&answer, StatusCode::CONFLICT);
    assert!(
        error["message"].as_str().unwrap().contains("revoke one"),
        "{error}"
    );
    assert_eq!(
        api.store
            .list_admin_tokens(Page::first(2 * MAX_ADMIN_TOKENS))
            .unwrap()
            .len(),
        MAX_ADMIN_TOKENS
    );
}

#[tokio::test]
async fn a_restart_keeps_tokens_and_the_revoked_file_token_revoked() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let api = Api::on(store.clone());
    let (_, list) = api.get("/tokens").await;
    let admin = list["items"][0]["id"].as_i64().unwrap();
    let (_, second) = token(&api, "second", "full").await;
    api.call_as(&second, Method::DELETE, &format!("/tokens/{admin}"), None)
        .await;

    // A restart: the created token still works, the revoked file token stays revoked.
    let api = Api::on(store.clone());
    let (status, _) = api.call_as(&second, Method::GET, "/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.get("/tokens").await.0, StatusCode::UNAUTHORIZED);
}

/// A store with no full-access token (one edited by hand: the API and the stores keep the last)
/// gets the file's token at the next start, under another name if a read-only token holds
/// `admin`.
#[tokio::test]
async fn the_file_token_takes_another_name_when_a_read_only_token_holds_admin() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .create_admin_token(oco_core::store::NewAdminToken {
            name: oco_core::model::Name::new("name", "admin").unwrap(),
            access: TokenAccess::ReadOnly,
            digest: digest("some other secret"),
            created: admin_support::noon(),
        })
        .unwrap();
    let api = Api::on(store.clone());
    let (status, list) = api.get("/tokens").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"][1]["name"], "admin-2");
    assert_eq!(list["items"][1]["access"], "full");
}
