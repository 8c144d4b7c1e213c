//! Heavy admin operations run under a bounded number of permits: one beyond them waits, and
//! past the configured wait it is refused with 503, a JSON error and `Retry-After`, while light
//! requests go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gated;

use gated::{Gated, Held};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oco_core::chrono::{TimeZone, Utc};
use oco_core::model::{ContainerId, Origin};
use oco_core::store::testkit;
use oco_core::Settings;
use oco_server_min::clock::FixedClock;
use oco_server_min::{app, AppState, Secrets, ServerOptions};
use serde_json::Value;
use tower::ServiceExt;

async fn get(router: &axum::Router, path: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::get(format!("/api/v1{path}"))
        .header("authorization", "Bearer admin")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_request_beyond_the_permits_waits_then_gets_503() {
    let store = Arc::new(Gated::new(Held::JobSummary));
    let (entered_rx, release_tx) = store.hold_next();
    let fixture = testkit::fixture(store.as_ref());
    let job = testkit::job(
        Origin::Container(ContainerId(0)),
        fixture.computers[0].id,
        &fixture.other,
        1,
    );
    let (container, _) = testkit::create_container(store.as_ref(), "c", vec![job]);
    let options = ServerOptions {
        admin_heavy_concurrency: 1,
        admin_heavy_wait: Duration::from_millis(300),
        payload_dir: std::env::temp_dir(),
        ..ServerOptions::default()
    };
    let state = AppState::new(
        store,
        Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
        )),
        Settings::default(),
        options,
        Secrets {
            admin_token: "admin".into(),
            agent_key: "agent-key".into(),
            registration_key: None,
        },
    )
    .unwrap();
    let router = app(state);
    let path = format!("/containers/{container}/statistics");

    // The first holds the only permit until released.
    let first = tokio::spawn({
        let (router, path) = (router.clone(), path.clone());
        async move { get(&router, &path).await }
    });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();

    let (status, retry, body) = get(&router, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "busy", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("waited 0.3 s"), "{message}");
    // Light requests do not wait for heavy ones.
    let (status, _, body) = get(&router, &format!("/containers/{container}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    release_tx.send(()).unwrap();
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counts"]["waiting"], 1);
    let (status, _, body) = get(&router, &path).await;
    assert_eq!(status, StatusCode::OK, "the permit is back: {body}");
}
