//! Package payloads: streamed to disk with their size and SHA-256 recorded on the package,
//! checked to be zip archives, bounded by `max_payload_size`; a refused, failed or interrupted
//! upload leaves neither a file nor a change of the package; a missing file is a JSON 404, and
//! an upload cut off at any store call never leaves a package saying it has a payload without
//! the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use admin_support::{error, Api, TOKEN};
use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use oco_core::model::{PackageId, Payload, Sha256Digest};
use oco_core::store::testkit;
use oco_core::store::{FailingStore, MemoryStore, Store};
use oco_server_min::payloads::WriteFault;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A stored archive of one small file.
fn archive() -> Vec<u8> {
    common::zip("a.txt", b"ok")
}

type Sender = http_body_util::channel::Sender<Bytes, io::Error>;

/// A body sent in chunks by `feed` (on a task of its own) as the server reads it.
fn chunked<F, Fut>(feed: F) -> Body
where
    F: FnOnce(Sender) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, body) = http_body_util::channel::Channel::<Bytes, io::Error>::new(2);
    tokio::spawn(feed(sender));
    Body::new(body)
}

/// A body of `bytes` in chunks of `size` bytes.
fn in_chunks(bytes: Vec<u8>, size: usize) -> Body {
    chunked(move |mut sender| async move {
        for chunk in bytes.chunks(size) {
            if sender
                .send_data(Bytes::copy_from_slice(chunk))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// `PUT /packages/{package}/payload` with `body`, announcing `length` if given; the status
/// and the JSON answer.
async fn upload(api: &Api, package: i64, body: Body, length: Option<u64>) -> (StatusCode, Value) {
    let mut request = Request::put(format!("/api/v1/packages/{package}/payload"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/zip");
    if let Some(length) = length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    let (status, bytes) = api.send(request.body(body).unwrap()).await;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// The names in the payload directory, sorted.
fn files(api: &Api) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(payload_dir(api))
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn payload_dir(api: &Api) -> PathBuf {
    api.dir.path().join("payloads")
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A package with `bytes` uploaded as its payload; its id and JSON.
async fn with_payload(api: &Api, bytes: &[u8]) -> (i64, Value) {
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, answer) = upload(api, package, Body::from(bytes.to_vec()), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (package, answer)
}

/// Asserts that `package` still has `bytes` as its payload, file and row, and that no other
/// file is in the payload directory.
async fn assert_unchanged(api: &Api, package: i64, bytes: &[u8]) {
    let (_, row) = api.get(&format!("/packages/{package}")).await;
    assert_eq!(
        row["payload"],
        json!({"size": bytes.len(), "sha256": sha256(bytes)})
    );
    assert_eq!(files(api), [format!("{package}.zip")]);
    let stored = std::fs::read(payload_dir(api).join(format!("{package}.zip"))).unwrap();
    assert!(stored == bytes, "the stored payload changed");
}

#[tokio::test]
async fn an_upload_shows_its_size_and_sha256_and_downloads_as_sent() {
    let api = Api::new();
    let first = common::zip("setup.exe", &[7u8; 300_000]);
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let (status, answer) = upload(&api, package, in_chunks(first.clone(), 4096), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let expected = json!({"size": first.len(), "sha256": sha256(&first)});
    assert_eq!(answer["payload"], expected);
    let (_, row) = api.get(&format!("/packages/{package}")).await;
    assert_eq!(row["payload"], expected);
    let (_, listed) = api.get("/packages").await;
    assert_eq!(listed["items"][0]["payload"], expected);
    assert_eq!(
        api.store.package(PackageId(package)).unwrap().payload,
        Some(Payload::new(
            first.len() as u64,
            sha256(&first).parse::<Sha256Digest>().unwrap()
        ))
    );
    let (status, downloaded) = api
        .raw(Method::GET, &format!("/packages/{package}/payload"), vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(downloaded == first, "the download differs from the upload");

    // Uploading another archive replaces the file and the digest.
    let second = common::zip("setup.exe", b"version two");
    let (status, answer) = upload(
        &api,
        package,
        Body::from(second.clone()),
        Some(second.len() as u64),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["payload"]["sha256"], sha256(&second));
    assert_unchanged(&api, package, &second).await;
    let (_, downloaded) = api
        .raw(Method::GET, &format!("/packages/{package}/payload"), vec![])
        .await;
    assert_eq!(downloaded, second);
}

#[tokio::test]
async fn what_is_not_a_zip_archive_is_refused_with_the_reason() {
    let api = Api::new();
    let (package, _) = with_payload(&api, &archive()).await;
    let mut truncated = common::zip("setup.exe", b"an installer");
    truncated.truncate(truncated.len() - 10);
    let no_end = "not a zip archive: no end of central directory record (is the archive \
                  truncated, or not a zip?)";
    let no_head =
        "not a zip archive: the body must be a zip archive (raw bytes), which starts with `PK`";
    let mut miscounted = archive();
    let end = miscounted.len() - 22;
    miscounted[end + 10] = 2;
    // Bytes cut out of the middle: the end records and the directory are whole.
    let mut cut = common::zip("setup.exe", b"an installer");
    cut.drain(40..46);
    let cases: [(&[u8], &str); 6] = [
        (&truncated, no_end),
        (b"PK\x03\x04 and then anything at all", no_end),
        (b"MZ\x90\x00 an installer, not zipped", no_head),
        (b"PK", no_head),
        (
            &miscounted,
            "not a zip archive: entry 1 of the central directory runs past the directory's end",
        ),
        (
            &cut,
            "not a zip archive: entry 0 of the central directory places its data outside the \
             archive (at offset 0; are bytes missing or added before the directory?)",
        ),
    ];
    for (body, message) in cases {
        let answer = upload(&api, package, Body::from(body.to_vec()), None).await;
        let err = error(&answer, StatusCode::BAD_REQUEST);
        assert_eq!(err["message"], message);
        assert_eq!(err["field"], "payload");
        assert_eq!(err["code"], "invalid");
        assert_unchanged(&api, package, &archive()).await;
    }
    let answer = upload(&api, package, Body::empty(), None).await;
    assert_eq!(error(&answer, StatusCode::BAD_REQUEST)["message"], no_head);
    assert_unchanged(&api, package, &archive()).await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_a_413_and_leaves_nothing() {
    let limit = 1024;
    let api = Api::with_options(Arc::new(MemoryStore::new()), |options| {
        options.max_payload_size = limit;
    });
    let (package, _) = with_payload(&api, &archive()).await;
    let too_large = format!("the payload is over the limit of {limit} bytes (--max-payload-size)");

    // Announced: refused before the body is read (reading it would be a cut-off upload).
    let unread = chunked(|sender| async move {
        sender.abort(io::Error::other("the body was read"));
    });
    let answer = upload(&api, package, unread, Some(limit + 1)).await;
    let err = error(&answer, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["message"], too_large);
    assert_eq!(err["code"], "too-large");
    assert_unchanged(&api, package, &archive()).await;

    // Not announced: refused once it grows past the limit.
    let big = common::zip("setup.exe", &[1u8; 1000]);
    assert!(big.len() as u64 > limit);
    let answer = upload(&api, package, in_chunks(big.clone(), 100), None).await;
    assert_eq!(
        error(&answer, StatusCode::PAYLOAD_TOO_LARGE)["message"],
        too_large
    );
    assert_unchanged(&api, package, &archive()).await;

    // A body longer than it announced is refused too, and one of exactly the limit passes.
    let answer = upload(&api, package, Body::from(big), Some(100)).await;
    error(&answer, StatusCode::PAYLOAD_TOO_LARGE);
    assert_unchanged(&api, package, &archive()).await;
    let limit = usize::try_from(limit).unwrap();
    let mut exact = common::zip("setup.exe", &[1u8; 900]);
    let comment = limit - exact.len();
    let at = exact.len() - 2;
    exact[at..].copy_from_slice(&u16::try_from(comment).unwrap().to_le_bytes());
    exact.resize(limit, b'c');
    let (status, answer) = upload(&api, package, in_chunks(exact.clone(), 100), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_unchanged(&api, package, &exact).await;
}

/// The upload route is bounded by `max_payload_size`, not by the 64 MiB limit of the JSON
/// routes: an archive larger than that passes, streamed in chunks.
#[tokio::test]
async fn an_upload_may_be_larger_than_the_json_body_limit() {
    let api = Api::new();
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let size = oco_server_min::BODY_LIMIT + 1024 * 1024;
    // One stored entry of `size` bytes of zeros, generated as it is sent, hashed on the way.
    let (head, tail) = stored_zip_around(size);
    let mut hasher = Sha256::new();
    hasher.update(&head);
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..size / zeros.len() {
        hasher.update(&zeros);
    }
    hasher.update(&tail);
    let digest = format!("{:x}", hasher.finalize());
    let total = head.len() + size + tail.len();
    let body = chunked(move |mut sender| async move {
        let zeros = Bytes::from(vec![0u8; 1024 * 1024]);
        let mut chunks = vec![Bytes::from(head)];
        chunks.extend(std::iter::repeat_n(zeros, size / (1024 * 1024)));
        chunks.push(Bytes::from(tail));
        for chunk in chunks {
            if sender.send_data(chunk).await.is_err() {
                return;
            }
        }
    });
    let (status, answer) = upload(&api, package, body, Some(total as u64)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["payload"], json!({"size": total, "sha256": digest}));
    let stored = payload_dir(&api).join(format!("{package}.zip"));
    assert_eq!(std::fs::metadata(stored).unwrap().len(), total as u64);
}

/// The local header before, and the central directory and end record after, one stored entry
/// of `size` zero bytes (`size` a multiple of 1 MiB, under 4 GiB; its CRC is not checked).
fn stored_zip_around(size: usize) -> (Vec<u8>, Vec<u8>) {
    let size32 = u32::try_from(size).unwrap();
    let mut head = b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    head.extend_from_slice(&size32.to_le_bytes());
    head.extend_from_slice(&size32.to_le_bytes());
    head.extend_from_slice(b"\x05\x00\x00\x00zeros");
    let mut tail =
        b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    tail.extend_from_slice(&size32.to_le_bytes());
    tail.extend_from_slice(&size32.to_le_bytes());
    tail.extend_from_slice(
        b"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00zeros",
    );
    let directory = u32::try_from(tail.len()).unwrap();
    let offset = u32::try_from(head.len() + size).unwrap();
    tail.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    tail.extend_from_slice(&directory.to_le_bytes());
    tail.extend_from_slice(&offset.to_le_bytes());
    tail.extend_from_slice(b"\x00\x00");
    (head, tail)
}

/// A full disk is a 507 naming it, another write error a 500 naming the write; either leaves
/// the previous payload and the package as they were, and no temporary file.
#[tokio::test]
async fn a_failing_write_is_a_507_or_500_and_leaves_nothing() {
    let cases = [
        (
            io::ErrorKind::StorageFull,
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient-storage",
            "writing the payload: the server's disk is full; nothing was changed",
        ),
        (
            io::ErrorKind::Other,
            StatusCode::INTERNAL_SERVER_ERROR,
            "write-failed",
            "writing the payload failed on the server (see the server log); nothing was changed",
        ),
    ];
    for (kind, status, code, message) in cases {
        for after in [0, 1000] {
            let store = Arc::new(MemoryStore::new());
            let api = Api::with_options(store.clone(), |options| {
                options.payload_write_fault = Some(WriteFault { after, kind });
            });
            let family = api.family("editor").await;
            let package = api.package(family, "1", "keep-others").await;
            // The previous payload, put in place as an upload would.
            std::fs::create_dir_all(payload_dir(&api)).unwrap();
            std::fs::write(payload_dir(&api).join(format!("{package}.zip")), archive()).unwrap();
            let mut row = store.package(PackageId(package)).unwrap();
            row.payload = Some(Payload::new(
                archive().len() as u64,
                sha256(&archive()).parse().unwrap(),
            ));
            store.update_package(&row).unwrap();

            let big = common::zip("setup.exe", &[3u8; 200_000]);
            let answer = upload(&api, package, in_chunks(big, 8192), None).await;
            let err = error(&answer, status);
            assert_eq!(err["code"], code, "{kind:?} after {after}");
            assert_eq!(err["message"], message, "{kind:?} after {after}");
            assert_unchanged(&api, package, &archive()).await;
        }
    }
}

/// A client that goes away mid-upload leaves no file and no change.
#[tokio::test]
async fn an_upload_cut_off_by_the_client_leaves_nothing() {
    let api = Api::new();
    let (package, _) = with_payload(&api, &archive()).await;
    let body = chunked(|mut sender| async move {
        let mut started = b"PK\x03\x04".to_vec();
        started.resize(10_000, b'x');
        sender.send_data(Bytes::from(started)).await.unwrap();
        for _ in 0..10 {
            sender
                .send_data(Bytes::from(vec![b'x'; 10_000]))
                .await
                .unwrap();
        }
        sender.abort(io::Error::from(io::ErrorKind::ConnectionReset));
    });
    let answer = upload(&api, package, body, Some(1_000_000)).await;
    let err = error(&answer, StatusCode::BAD_REQUEST);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("the upload was cut off before its end"),
        "{err}"
    );
    assert_unchanged(&api, package, &archive()).await;
}

/// Over a real socket: a client that closes its connection halfway through the body leaves no
/// temporary file once the server has noticed.
#[tokio::test]
async fn a_connection_closed_mid_upload_leaves_no_file() {
    use tokio::io::AsyncWriteExt;
    let api = Api::new();
    let (package, _) = with_payload(&api, &archive()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/packages/{package}/payload HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/zip\r\n\
         Content-Length: 10000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"PK\x03\x04").await.unwrap();
    stream.write_all(&[0u8; 500_000]).await.unwrap();
    stream.flush().await.unwrap();
    // Wait until the upload's temporary file exists, then go away.
    let partial = |api: &Api| files(api).iter().any(|name| name.ends_with(".partial"));
    wait_until(|| partial(&api), "the upload to start").await;
    drop(stream);
    wait_until(|| !partial(&api), "the temporary file to be removed").await;
    assert_unchanged(&api, package, &archive()).await;
}

/// Polls `condition` every 10 ms, for at most 10 s.
async fn wait_until(condition: impl Fn() -> bool, what: &str) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("waited 10 s for {what}");
}

#[tokio::test]
async fn a_missing_payload_file_is_a_json_404() {
    let api = Api::new();
    let family = api.family("editor").await;
    let package = api.package(family, "1", "keep-others").await;
    let path = format!("/packages/{package}/payload");
    let (status, _) = api.raw(Method::PUT, &path, archive()).await;
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
    let (status, _) = api.raw(Method::PUT, &path, archive()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, bytes) = api.raw(Method::GET, &path, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, archive());
}

/// A store with one package and no payload.
fn seeded() -> (MemoryStore, PackageId) {
    let store = MemoryStore::new();
    let family = store.create_family(testkit::name("editor")).unwrap();
    let mut package = testkit::package(family.id, "1", vec![]);
    package.payload = None;
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
        failing.restart(u64::MAX);
        let path = format!("/packages/{package}/payload");
        let (status, _) = api.raw(Method::PUT, &path, archive()).await;
        assert_eq!(status, StatusCode::OK);
        failing.calls()
    };
    assert!(
        calls >= 2,
        "the upload reads and writes the package: {calls} calls"
    );
    for from in 1..=calls {
        let (store, package) = seeded();
        let failing = Arc::new(FailingStore::fail_from(store, u64::MAX));
        let api = Api::on(failing.clone());
        failing.restart(from);
        let path = format!("/packages/{package}/payload");
        let (status, body) = api.raw(Method::PUT, &path, archive()).await;
        assert!(
            status.is_server_error(),
            "call {from}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let row = failing.inner().package(package).unwrap();
        let dir = api.dir.path().join("payloads");
        let file = dir.join(format!("{package}.zip"));
        if row.has_payload() {
            assert_eq!(
                std::fs::read(&file).ok().as_deref(),
                Some(archive().as_slice()),
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

/// A store with one package whose payload `previous` is in place, row and file.
fn seeded_with(previous: &[u8]) -> (MemoryStore, PackageId) {
    let store = MemoryStore::new();
    let family = store.create_family(testkit::name("editor")).unwrap();
    let mut package = testkit::package(family.id, "1", vec![]);
    package.payload = Some(Payload::new(
        previous.len() as u64,
        sha256(previous).parse().unwrap(),
    ));
    let package = store.create_package(package).unwrap();
    (store, package.id)
}

/// Replacing a payload while one store call fails (each in turn): the upload fails, and the
/// file in place is the one whose size and digest the row records (the previous one put back
/// when the row was not changed).
#[tokio::test]
async fn a_replacement_failing_at_any_store_call_leaves_the_file_the_row_describes() {
    let previous = common::zip("setup.exe", b"version one");
    let next = common::zip("setup.exe", b"version two");
    let calls = {
        let (store, package) = seeded_with(&previous);
        let failing = Arc::new(FailingStore::fail_from(store, u64::MAX));
        let api = Api::on(failing.clone());
        failing.restart(u64::MAX);
        std::fs::create_dir_all(payload_dir(&api)).unwrap();
        std::fs::write(payload_dir(&api).join(format!("{package}.zip")), &previous).unwrap();
        let (status, _) = upload(&api, package.0, Body::from(next.clone()), None).await;
        assert_eq!(status, StatusCode::OK);
        failing.calls()
    };
    for nth in 1..=calls {
        let (store, package) = seeded_with(&previous);
        let failing = Arc::new(FailingStore::fail_nth(store, 0));
        let api = Api::on(failing.clone());
        failing.restart(nth);
        std::fs::create_dir_all(payload_dir(&api)).unwrap();
        std::fs::write(payload_dir(&api).join(format!("{package}.zip")), &previous).unwrap();
        let (status, answer) = upload(&api, package.0, Body::from(next.clone()), None).await;
        assert!(status.is_server_error(), "call {nth}: {status} {answer}");
        let row = failing.inner().package(package).unwrap();
        let file = std::fs::read(payload_dir(&api).join(format!("{package}.zip"))).unwrap();
        assert_eq!(
            row.payload
                .and_then(|payload| payload.sha256())
                .map(|d| d.to_string()),
            Some(sha256(&file)),
            "call {nth}: the file in place is the one the row describes"
        );
        assert_eq!(files(&api), [format!("{package}.zip")], "call {nth}");
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
    // Another process's upload in progress: written a moment ago.
    let in_progress = payloads.join(".4.zip.79.0.partial");
    std::fs::write(&in_progress, b"x").unwrap();
    let written = std::fs::metadata(&in_progress).unwrap().modified().unwrap();
    let idle = Duration::from_secs(60);
    let set_written = |name: &str, at: std::time::SystemTime| {
        let file = std::fs::File::options()
            .write(true)
            .open(payloads.join(name))
            .unwrap();
        file.set_modified(at).unwrap();
    };
    // The abandoned ones were last written two minutes before.
    set_written(".4.zip.77.0.partial", written - Duration::from_secs(120));
    set_written(".4.zip.78.3.partial", written - Duration::from_secs(61));
    let now = written + Duration::from_secs(1);
    let remove =
        |dir: &std::path::Path| oco_server_min::payloads::remove_partials(dir, now, idle).unwrap();
    let removed = remove(payloads);
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
    assert_eq!(
        left,
        [
            ".4.zip.79.0.partial",
            ".dir.partial",
            ".keep",
            "4.zip",
            "5.zip"
        ]
    );
    assert_eq!(remove(&payloads.join("missing")), Vec::<PathBuf>::new());
}
