//! Package payloads: a missing file is a JSON 404, and an upload cut off at any store call
//! never leaves a package saying it has a payload without the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::sync::Arc;

use admin_support::{error, Api};
use axum::http::{Method, StatusCode};
use oco_core::model::PackageId;
use oco_core::store::testkit;
use oco_core::store::{FailingStore, MemoryStore, Store};

const ZIP: &[u8] = b"PK\x03\x04 pretend archive";

#[tokio::test]
async fn a_missing_payload_file_is_a_json_404() {
    let api = Api::new();
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let path = format!("/packages/{package}/payload");
    let (status, _) = api.raw(Method::PUT, &path, ZIP.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let file = api
        .dir
        .path()
        .join("payloads")
        .join(format!("{package}.zip"));
    std::fs::remove_file(file).unwrap();

    let err = error(&api.get(&path).await, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not-found");
    assert_eq!(err["field"], "payload");
    assert_eq!(
        err["message"],
        format!("the payload file of package {package} is missing on the server; upload it again")
    );
    // Uploading again repairs it.
    let (status, _) = api.raw(Method::PUT, &path, ZIP.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, bytes) = api.raw(Method::GET, &path, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, ZIP);
}

/// A store with one package and no payload.
fn seeded() -> (MemoryStore, PackageId) {
    let store = MemoryStore::new();
    let family = store.create_family(testkit::name("editor")).unwrap();
    let mut package = testkit::package(family.id, "1", vec![]);
    package.has_payload = false;
    let package = store.create_package(package).unwrap();
    (store, package.id)
}

/// Every store call of an upload fails in turn, and every call after it too (the server dying
/// there): whenever the package says it has a payload, the whole file is in place, and no
/// temporary file is left.
#[tokio::test]
async fn an_upload_cut_off_anywhere_never_leaves_a_row_without_its_file() {
    let calls = {
        let (store, package) = seeded();
        let failing = Arc::new(FailingStore::fail_from(store, u64::MAX));
        let api = Api::on(failing.clone());
        let path = format!("/packages/{package}/payload");
        let (status, _) = api.raw(Method::PUT, &path, ZIP.to_vec()).await;
        assert_eq!(status, StatusCode::OK);
        failing.calls()
    };
    assert!(
        calls >= 2,
        "the upload reads and writes the package: {calls} calls"
    );
    for from in 1..=calls {
        let (store, package) = seeded();
        let failing = Arc::new(FailingStore::fail_from(store, from));
        let api = Api::on(failing.clone());
        let path = format!("/packages/{package}/payload");
        let (status, body) = api.raw(Method::PUT, &path, ZIP.to_vec()).await;
        assert!(
            status.is_server_error(),
            "call {from}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let row = failing.inner().package(package).unwrap();
        let dir = api.dir.path().join("payloads");
        let file = dir.join(format!("{package}.zip"));
        if row.has_payload {
            assert_eq!(
                std::fs::read(&file).ok().as_deref(),
                Some(ZIP),
                "call {from}: the row says it has a payload"
            );
        }
        let partials = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(".partial")
                    })
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(partials, 0, "call {from}");
    }
}

#[test]
fn stale_partial_uploads_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path();
    for name in [
        ".4.zip.77.0.partial",
        ".4.zip.78.3.partial",
        "4.zip",
        "5.zip",
        ".keep",
    ] {
        std::fs::write(payloads.join(name), b"x").unwrap();
    }
    std::fs::create_dir(payloads.join(".dir.partial")).unwrap();
    let removed = oco_server_min::payloads::remove_partials(payloads).unwrap();
    assert_eq!(
        removed,
        [
            payloads.join(".4.zip.77.0.partial"),
            payloads.join(".4.zip.78.3.partial")
        ]
    );
    let mut left: Vec<_> = std::fs::read_dir(payloads)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".dir.partial", ".keep", "4.zip", "5.zip"]);
    assert_eq!(
        oco_server_min::payloads::remove_partials(&payloads.join("missing")).unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
}
