//! What an operator sees: `/healthz` and `/readyz`, the request id of every response, the
//! access log's line per admin request, the audit line per admin write, and the warning of a
//! refused token.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Request, Response};
use common::{loopback, Server};
use http_body_util::BodyExt;
use oco_core::store::{FailingStore, MemoryStore};
use oco_server_min::observe::SchemaCheck;
use serde_json::Value;
use tower::ServiceExt;

async fn send(server: &Server, request: Request<Body>) -> (Response<Body>, Value) {
    let response = server.router(loopback()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn request_id(response: &Response<Body>) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("every response has a request id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    let (response, body) = send(&server, get("/healthz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_checks_the_store_and_its_schema() {
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let server = Server::with_options(Arc::new(MemoryStore::new()), |options| {
        options.schema_check = Some(SchemaCheck(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })));
    });
    let (response, body) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(body["status"], "ready");
    // A second probe right after reuses the result: the database is asked once a second.
    let (response, _) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(checks.load(Ordering::SeqCst), 1);

    let server = Server::with_options(Arc::new(MemoryStore::new()), |options| {
        options.schema_check = Some(SchemaCheck(Arc::new(|| {
            Err("the database's schema is version 9; this build runs on version 8".into())
        })));
    });
    let (response, body) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(body["status"], "unready");
    assert!(
        body["error"].as_str().unwrap().contains("version 9"),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_is_503_when_the_store_fails() {
    let failing = Arc::new(FailingStore::fail_from(MemoryStore::new(), u64::MAX));
    let server = Server::new(failing.clone());
    failing.restart(1);
    let (response, body) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the database does not answer"),
        "{body}"
    );
    // The process itself is up.
    let (response, _) = send(&server, get("/healthz")).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = Server::new(Arc::new(MemoryStore::new()));
    let admin = || {
        Request::get("/api/v1/computers")
            .header("authorization", "Bearer admin")
            .body(Body::empty())
            .unwrap()
    };
    let (first, _) = send(&server, admin()).await;
    let (second, _) = send(&server, admin()).await;
    assert_ne!(request_id(&first), request_id(&second));
    // Refusals and unknown paths too.
    let (refused, _) = send(&server, get("/api/v1/computers")).await;
    assert_eq!(refused.status(), 401);
    let (unknown, _) = send(&server, get("/nowhere")).await;
    assert_eq!(unknown.status(), 404);
    let ids = [request_id(&refused), request_id(&unknown)];
    assert_ne!(ids[0], ids[1]);

    // A proxy's id is kept; one that is not a plain token is replaced.
    let with_id = |id: &str| {
        Request::get("/healthz")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let (kept, _) = send(&server, with_id("lb-7f3a.2")).await;
    assert_eq!(request_id(&kept), "lb-7f3a.2");
    let (replaced, _) = send(&server, with_id("forged\" line")).await;
    let id = request_id(&replaced);
    assert!(!id.contains("forged") && !id.is_empty(), "{id}");
}

/// Log lines written while the guard lives, on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first of `lines` that contains every one of `parts`.
fn line_with(lines: &[String], parts: &[&str]) -> Option<String> {
    lines
        .iter()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .cloned()
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The log of this test binary, at INFO: one subscriber for all its tests (a subscriber of one
/// thread misses lines while tests on other threads decide which lines are wanted at all), each
/// test finding its own lines by their request ids.
fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

#[tokio::test]
async fn admin_requests_are_logged_with_their_id_and_token() {
    let captured = log();
    let server = Server::new(Arc::new(MemoryStore::new()));

    let create = Request::post("/api/v1/computers")
        .header("authorization", "Bearer admin")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"hostname": "pc1"}"#))
        .unwrap();
    let (created, created_body) = send(&server, create).await;
    assert_eq!(created.status(), 201);
    let (refused, _) = send(&server, get("/api/v1/computers")).await;
    assert_eq!(refused.status(), 401);
    let wrong_token = Request::get("/api/v1/computers")
        .header("authorization", "Bearer guessed")
        .body(Body::empty())
        .unwrap();
    let (again, _) = send(&server, wrong_token).await;
    assert_eq!(again.status(), 401);
    let (health, _) = send(&server, get("/healthz")).await;
    let delete = |id: &str| {
        Request::delete(format!("/api/v1/computers/{id}"))
            .header("authorization", "Bearer admin")
            .body(Body::empty())
            .unwrap()
    };
    let (deleted, _) = send(&server, delete(&created_body["id"].to_string())).await;
    assert_eq!(deleted.status(), 200);
    let (missing, _) = send(&server, delete("999")).await;
    assert_eq!(missing.status(), 404);

    let lines = captured.lines();
    let line_of = |id: &str| line_with(&lines, &[id, "oco_server_min::access"]);
    let line = line_of(&request_id(&created)).unwrap_or_else(|| panic!("{lines:#?}"));
    for part in [
        "INFO",
        "method=POST",
        "path=/api/v1/computers",
        "status=201",
        "token=\"admin\"",
        "latency_ms=",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    let line = line_of(&request_id(&refused)).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        line.contains("status=401") && line.contains("token=\"-\""),
        "{line}"
    );
    // A refusal is a warning too, at most one a minute: the second is only in the access log.
    let warned = |id: &str| line_with(&lines, &[id, "WARN"]).is_some();
    assert!(warned(&request_id(&refused)), "{lines:#?}");
    assert!(
        line_with(
            &lines,
            &[
                &request_id(&refused),
                "refused an admin request to GET /api/v1/computers: no bearer token"
            ]
        )
        .is_some(),
        "{lines:#?}"
    );
    assert!(!warned(&request_id(&again)), "{lines:#?}");
    assert!(line_of(&request_id(&again)).is_some(), "{lines:#?}");
    // Each successful write has an audit line saying what changed; a failed one has none.
    let audit = |id: &str| line_with(&lines, &[id, "oco_server_min::audit"]);
    let id = created_body["id"].to_string();
    let line = audit(&request_id(&created)).unwrap_or_else(|| panic!("{lines:#?}"));
    for part in [
        "token=\"admin\"".to_string(),
        "resource=\"computers\"".into(),
        format!("id=\"{id}\""),
        "operation=create".into(),
    ] {
        assert!(line.contains(&part), "{part} in {line}");
    }
    let line = audit(&request_id(&deleted)).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        line.contains(&format!("id=\"{id}\"")) && line.contains("operation=delete"),
        "{line}"
    );
    assert!(audit(&request_id(&missing)).is_none(), "{lines:#?}");
    assert!(audit(&request_id(&refused)).is_none(), "{lines:#?}");
    // Health probes are logged at DEBUG only.
    assert!(line_of(&request_id(&health)).is_none(), "{lines:#?}");
}

#[tokio::test]
async fn the_audit_and_access_lines_name_the_token_used() {
    let captured = log();
    let server = Server::new(Arc::new(MemoryStore::new()));
    let post = |token: &str, path: &str, body: &str| {
        Request::post(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (made, token) = send(
        &server,
        post("admin", "/api/v1/tokens", r#"{"name": "deploy-bot"}"#),
    )
    .await;
    assert_eq!(made.status(), 201, "{token}");
    let (viewer, viewer_body) = send(
        &server,
        post(
            "admin",
            "/api/v1/tokens",
            r#"{"name": "wallboard", "access": "read-only"}"#,
        ),
    )
    .await;
    assert_eq!(viewer.status(), 201);
    let secret = token["token"].as_str().unwrap();
    let (created, _) = send(
        &server,
        post(secret, "/api/v1/computers", r#"{"hostname": "pc7"}"#),
    )
    .await;
    assert_eq!(created.status(), 201);
    let (refused, _) = send(
        &server,
        post(
            viewer_body["token"].as_str().unwrap(),
            "/api/v1/computers",
            r#"{"hostname": "pc8"}"#,
        ),
    )
    .await;
    assert_eq!(refused.status(), 403);

    let lines = captured.lines();
    let audit = |id: &str| line_with(&lines, &[id, "oco_server_min::audit"]);
    let line = audit(&request_id(&made)).unwrap_or_else(|| panic!("{lines:#?}"));
    for part in [
        "token=\"admin\"".to_string(),
        "resource=\"tokens\"".into(),
        format!("id=\"{}\"", token["id"]),
        "operation=create".into(),
    ] {
        assert!(line.contains(&part), "{part} in {line}");
    }
    assert!(!line.contains(secret), "no secret in the log: {line}");
    let line = audit(&request_id(&created)).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(line.contains("token=\"deploy-bot\""), "{line}");
    assert!(audit(&request_id(&refused)).is_none(), "{lines:#?}");
    let line = line_with(&lines, &[&request_id(&refused), "oco_server_min::access"])
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        line.contains("status=403") && line.contains("token=\"wallboard\""),
        "{line}"
    );
}

/// A database that hangs: the probe fails after the timeout, and later probes do not start
/// another check (another blocked thread) until the hung one returns.
#[tokio::test]
async fn a_hung_readiness_check_holds_one_thread() {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let server = Server::with_options(Arc::new(MemoryStore::new()), |options| {
        options.schema_check = Some(SchemaCheck(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            // The first check hangs until the test lets it go.
            if counted.load(Ordering::SeqCst) == 1 {
                let _ = released.lock().unwrap().recv();
            }
            Ok(())
        })));
    });
    // The probe waits out the 2-s timeout.
    let (response, body) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    assert!(
        body["error"].as_str().unwrap().contains("within 2 s"),
        "{body}"
    );
    // Past the second the result is reused for, the hung check is still running.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (response, body) = send(&server, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    assert!(
        body["error"].as_str().unwrap().contains("still waiting"),
        "{body}"
    );
    assert_eq!(checks.load(Ordering::SeqCst), 1, "no second check started");

    release.send(()).unwrap();
    // Once the hung check returns, the next probe checks again.
    let mut ready = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (response, _) = send(&server, get("/readyz")).await;
        if response.status() == 200 {
            ready = true;
            break;
        }
    }
    assert!(ready, "ready again once the database answers");
    assert_eq!(checks.load(Ordering::SeqCst), 2);
}

/// An agent request has no span at INFO; its refusal line names the request id itself.
#[tokio::test]
async fn an_agent_refusal_names_its_request_id() {
    let captured = log();
    let server = Server::new(Arc::new(MemoryStore::new()));
    let refused = Request::post("/api-agent.php")
        .header("content-type", "text/plain")
        .header("x-oco-agent-signature", "0")
        .header("x-request-id", "agent-refusal-1")
        .body(Body::from("{}"))
        .unwrap();
    let (response, _) = send(&server, refused).await;
    assert_eq!(response.status(), 400);
    assert_eq!(request_id(&response), "agent-refusal-1");
    let lines = captured.lines();
    let line = line_with(&lines, &["agent request refused", "agent-refusal-1"])
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        line.contains("WARN") && line.contains("request=\"agent-refusal-1\""),
        "{line}"
    );
}
