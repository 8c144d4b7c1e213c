//! The admin API's conventions: how durations and origins are spelt, what a deploy answers, how
//! the token is presented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use admin_support::{error, Api, TOKEN};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use oco_core::chrono::Duration;
use serde_json::{json, Value};

/// A computer, a package and a container deploying it there; the deploy's answer.
async fn deployed(api: &Api) -> Value {
    let pc = api.computer("pc1", "").await;
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "roll-out"}, "computers": [pc], "packages": [package]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn durations_are_seconds() {
    let api = Api::new();
    let created = deployed(&api).await;
    let id = created["container"]["id"].as_i64().unwrap();
    api.clock.advance(Duration::milliseconds(30_129));
    let (status, statistics) = api.get(&format!("/containers/{id}/statistics")).await;
    assert_eq!(status, StatusCode::OK, "{statistics}");
    assert_eq!(
        statistics["total_runtime"],
        json!({"duration": 30.129, "running": true})
    );
    api.clock.advance(Duration::milliseconds(871));
    let (_, statistics) = api.get(&format!("/containers/{id}/statistics")).await;
    assert_eq!(statistics["total_runtime"]["duration"], json!(31));
}

#[tokio::test]
async fn an_origin_is_spelt_the_same_in_bodies_and_filters() {
    let api = Api::new();
    let created = deployed(&api).await;
    let id = created["container"]["id"].as_i64().unwrap();
    let job = created["jobs"][0]["id"].as_i64().unwrap();
    let (_, got) = api.get(&format!("/jobs/{job}")).await;
    assert_eq!(got["origin"], format!("container:{id}"));
    // What a body says is what the filter takes.
    let origin = got["origin"].as_str().unwrap();
    let found = api.jobs(&format!("origin={origin}")).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], job);
    assert_eq!(api.jobs("origin=rule:1").await.len(), 0);
    let err = error(
        &api.get("/jobs?origin=container%201").await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["field"], "origin");
    assert_eq!(
        err["message"],
        "`container 1` is not an origin: `container:<id>` or `rule:<id>`"
    );
}

#[tokio::test]
async fn a_deploy_lists_each_job_with_its_computer_package_and_sequence() {
    let api = Api::new();
    let pcs = [api.computer("pc1", "").await, api.computer("pc2", "").await];
    let base = api.family("base").await;
    let base = api.package(base, "1", "keep-others").await;
    let app = api.family("app").await;
    let (_, app) = api
        .post(
            "/packages",
            json!({"family": app, "version": "1", "dependencies": [base]}),
        )
        .await;
    let app = app["id"].as_i64().unwrap();
    let (status, created) = api
        .post(
            "/containers/deploy",
            json!({"container": {"name": "roll-out"}, "computers": pcs, "packages": [app]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let jobs = created["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4, "{created}");
    let mut seen: Vec<(i64, i64, i64)> = Vec::new();
    for job in jobs {
        let (_, stored) = api.get(&format!("/jobs/{}", job["id"])).await;
        assert_eq!(stored["computer"], job["computer"]);
        assert_eq!(stored["package"], job["package"]);
        assert_eq!(stored["sequence"], job["sequence"]);
        assert_eq!(job.as_object().unwrap().len(), 4, "{job}");
        seen.push((
            job["computer"].as_i64().unwrap(),
            job["package"].as_i64().unwrap(),
            job["sequence"].as_i64().unwrap(),
        ));
    }
    seen.sort_unstable();
    // The dependency comes first on each computer; sequences count from 1.
    let expected = {
        let mut expected = vec![
            (pcs[0], base, 1),
            (pcs[0], app, 2),
            (pcs[1], base, 1),
            (pcs[1], app, 2),
        ];
        expected.sort_unstable();
        expected
    };
    assert_eq!(seen, expected);

    api.put(
        &format!("/computers/{}/assignments/{base}", pcs[1]),
        json!(null),
    )
    .await;
    let (status, removed) = api
        .post(
            "/containers/uninstall",
            json!({"container": {"name": "remove"},
                   "assignments": [{"computer": pcs[1], "package": base}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{removed}");
    let job = &removed["jobs"][0];
    assert_eq!(job["computer"], pcs[1]);
    assert_eq!(job["package"], base);
    assert!(job["id"].is_i64(), "{removed}");
}

#[tokio::test]
async fn the_authorization_scheme_is_case_insensitive() {
    let api = Api::new();
    let send = |auth: String| {
        let request = Request::builder()
            .uri("/api/v1/computers")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap();
        api.send(request)
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, _) = send(format!("{scheme} {TOKEN}")).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
        let (status, _) = send(format!("{scheme}  {TOKEN}")).await;
        assert_eq!(status, StatusCode::OK, "{scheme} with two spaces");
        let (status, _) = send(format!("{scheme} wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{scheme} wrong");
    }
    for refused in [
        format!("Bearer{TOKEN}"),
        format!("Basic {TOKEN}"),
        TOKEN.to_owned(),
    ] {
        let (status, _) = send(refused.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    }
}
