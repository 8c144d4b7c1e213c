//! `/metrics`: behind a token unless made public, and counting what it says it counts.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::*;
use http_body_util::BodyExt;
use oco_core::model::{PostAction, SequenceMode};
use oco_core::store::{FailingStore, MemoryStore};
use oco_server_min::connections::{serve_counted, ConnectionOptions, OpenConnections};
use oco_server_min::housekeeping::run_once;
use serde_json::json;
use tower::ServiceExt;

/// `GET /metrics` with `token` (if any): the status, the content type and the text.
async fn scrape(server: &Server, token: Option<&str>) -> (u16, String, String) {
    let mut request = Request::get("/metrics");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = server
        .router(loopback())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The value of the sample `series` (its name and labels as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

async fn metrics_of(server: &Server) -> String {
    let (status, _, text) = scrape(server, Some("admin")).await;
    assert_eq!(status, 200, "{text}");
    text
}

#[tokio::test]
async fn metrics_need_a_token_unless_public() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    let (status, _, body) = scrape(&server, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = scrape(&server, Some("guessed")).await;
    assert_eq!(status, 401);

    // A read-only token is enough.
    let (status, made) = server
        .admin_json(
            "POST",
            "/tokens",
            json!({"name": "prometheus", "access": "read-only"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (status, content_type, text) = scrape(&server, made["token"].as_str()).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains("# TYPE oco_http_requests_total counter"),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"oco_build_info{version="0.1.0"}"#),
        Some(1.0)
    );

    let public = Server::with_options(Arc::new(MemoryStore::new()), |options| {
        options.metrics_public = true;
    });
    let (status, _, text) = scrape(&public, None).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn requests_are_counted_by_route_pattern_method_and_status() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    for _ in 0..3 {
        assert_eq!(server.admin("GET", "/computers").await.0, 200);
    }
    assert_eq!(server.admin("GET", "/computers/41").await.0, 404);
    assert_eq!(server.admin("GET", "/computers/42").await.0, 404);
    assert_eq!(server.admin("GET", "/no/such/thing-7f3a").await.0, 404);

    let text = metrics_of(&server).await;
    let requests = |labels: &str| sample(&text, &format!("oco_http_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"route="/api/v1/computers",method="GET",status="200""#),
        Some(3.0)
    );
    // One series for every id: the route's pattern, not the path.
    assert_eq!(
        requests(r#"route="/api/v1/computers/{id}",method="GET",status="404""#),
        Some(2.0)
    );
    assert_eq!(
        requests(r#"route="unmatched",method="GET",status="404""#),
        Some(1.0)
    );
    assert!(!text.contains("thing-7f3a"), "no raw path becomes a label");
    assert_eq!(
        sample(
            &text,
            r#"oco_http_request_duration_seconds_count{route="/api/v1/computers",method="GET"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"oco_http_request_duration_seconds_bucket{le="+Inf",route="/api/v1/computers",method="GET"}"#
        )
        .or_else(|| sample(
            &text,
            r#"oco_http_request_duration_seconds_bucket{route="/api/v1/computers",method="GET",le="+Inf"}"#
        )),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test]
async fn agent_hellos_jobs_reports_and_commits_are_counted() {
    let store: Arc<dyn oco_core::store::Store> = Arc::new(MemoryStore::new());
    let pc = computer(store.as_ref(), "pc1");
    let ok = package(store.as_ref(), "ok", "exit 0", "0", false, PostAction::None);
    let bad = plain_package(store.as_ref(), "bad", "exit 3");
    let (_, jobs) = container(
        store.as_ref(),
        "c",
        policy(SequenceMode::IgnoreFailed),
        &[(pc.id, &ok), (pc.id, &bad)],
    );
    let server = Server::new(store.clone());
    let mut agent = TestAgent::new(server.target(), "pc1");
    let handed = agent.hello().await.unwrap();
    assert_eq!(handed.len(), 2);
    // The same outlook again: answered from the hello cache.
    agent.hello().await.unwrap();
    let id = |i: usize| json!(jobs[i].0);
    agent.report(&id(0), 1, None, Some(0), "").await.unwrap();
    agent
        .report(&id(0), 3, Some(0), None, "done\n")
        .await
        .unwrap();
    agent
        .report(&id(1), 3, Some(3), None, "no\n")
        .await
        .unwrap();
    // A stale progress report after the end: answered, ignored.
    agent.report(&id(0), 2, None, None, "late\n").await.unwrap();

    // A refused one (a signature the server does not know) under its own status.
    let body = agent.hello_body();
    let refused = server
        .target()
        .send_raw("POST", "application/json", "not-a-signature", body)
        .await;
    assert_ne!(refused.status, 200);
    let refused_series = format!(
        r#"oco_http_requests_total{{route="/api-agent.php",method="POST",status="{}"}}"#,
        refused.status
    );

    let text = metrics_of(&server).await;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}: {text}"));
    assert_eq!(value(&refused_series), 1.0);
    assert_eq!(value(r#"oco_agent_requests_total{kind="refused"}"#), 1.0);
    assert_eq!(value(r#"oco_agent_requests_total{kind="hello"}"#), 2.0);
    // Every agent request is a request of the agent route, too.
    assert_eq!(
        value(r#"oco_http_requests_total{route="/api-agent.php",method="POST",status="200"}"#),
        6.0
    );
    // The latency is by route and method: the refusal's is in it.
    assert_eq!(
        value(r#"oco_http_request_duration_seconds_count{route="/api-agent.php",method="POST"}"#),
        7.0
    );
    assert_eq!(value(r#"oco_agent_requests_total{kind="report"}"#), 4.0);
    assert_eq!(value("oco_jobs_handed_out_total"), 4.0);
    assert_eq!(
        value(r#"oco_hello_cache_lookups_total{result="hit"}"#)
            + value(r#"oco_hello_cache_lookups_total{result="miss"}"#),
        2.0
    );
    assert_eq!(
        value(r#"oco_job_reports_total{outcome="downloading"}"#),
        1.0
    );
    assert_eq!(value(r#"oco_job_reports_total{outcome="succeeded"}"#), 1.0);
    assert_eq!(value(r#"oco_job_reports_total{outcome="failed"}"#), 1.0);
    assert_eq!(value(r#"oco_job_reports_total{outcome="ignored"}"#), 1.0);
    // Hellos and reports went through the group commit.
    assert!(value("oco_commit_batch_size_count") >= 1.0, "{text}");
    assert!(value("oco_commit_batch_size_sum") >= value("oco_commit_batch_size_count"));
    assert_eq!(
        value("oco_commit_duration_seconds_count"),
        value("oco_commit_batch_size_count")
    );
}

#[tokio::test]
async fn housekeeping_runs_are_counted_with_their_effects() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    run_once(&server.state, &[]).await.unwrap();
    run_once(&server.state, &[]).await.unwrap();
    let text = metrics_of(&server).await;
    assert_eq!(
        sample(&text, r#"oco_housekeeping_runs_total{result="ok"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"oco_housekeeping_effects_total{effect="purged"}"#),
        Some(0.0)
    );

    let failing = Arc::new(FailingStore::fail_from(MemoryStore::new(), u64::MAX));
    let server = Server::new(failing.clone());
    failing.restart(1);
    assert!(run_once(&server.state, &[]).await.is_err());
    let text = server.state.metrics().render();
    assert_eq!(
        sample(&text, r#"oco_housekeeping_runs_total{result="error"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn open_connections_are_shown() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = OpenConnections::default();
    server.state.metrics().watch_connections(open.clone());
    tokio::spawn(serve_counted(
        listener,
        oco_server_min::app(server.state.clone()),
        ConnectionOptions::default(),
        std::future::pending(),
        open.clone(),
    ));
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let shown = |n: f64| {
        let text = server.state.metrics().render();
        sample(&text, "oco_open_connections") == Some(n)
    };
    wait_until(|| shown(2.0)).await;
    drop((first, second));
    wait_until(|| shown(0.0)).await;
}

/// Waits until `done` holds, polling, for at most 10 s.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not reached in 10 s");
}
