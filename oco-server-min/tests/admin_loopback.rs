//! The admin API over a real socket: requests with bodies their handlers do not need are still
//! answered, never cut off with a TCP reset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{Api, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves `api` on a loopback port.
async fn serve(api: &Api) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `method path` with the token and a body of `size` bytes, as raw HTTP/1.1.
fn request(method: &str, path: &str, size: usize, close: bool) -> Vec<u8> {
    let mut bytes = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {size}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    // JSON white space: a body a JSON route could parse, were it read.
    bytes.extend(std::iter::repeat_n(b' ', size));
    bytes
}

/// Reads one response (status line, headers, `Content-Length` bytes); its status code.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let status: u16 = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends each request on one connection, one after the other; their statuses.
async fn exchange(addr: SocketAddr, requests: &[Vec<u8>]) -> std::io::Result<Vec<u16>> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut statuses = Vec::new();
    for request in requests {
        stream.write_all(request).await?;
        // Give the server time to answer and close before the client reads: the reset, if any,
        // arrives first.
        tokio::time::sleep(Duration::from_millis(2)).await;
        statuses.push(read_response(&mut stream).await?);
    }
    Ok(statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_unneeded_bodies_are_answered_not_reset() {
    let api = Api::new();
    let pc = api.computer("pc1", "").await;
    let addr = serve(&api).await;
    const SIZE: usize = 100 * 1024;
    for round in 0..20 {
        for (method, path, expected) in [
            ("GET", "/computers".to_owned(), 200),
            ("GET", format!("/computers/{pc}"), 200),
            ("GET", "/nothing".to_owned(), 404),
            ("DELETE", "/jobs/1".to_owned(), 405),
            ("GET", "/housekeeping".to_owned(), 200),
            ("POST", "/containers/1/enable".to_owned(), 404),
            ("GET", "/packages/1/payload".to_owned(), 404),
            ("DELETE", "/packages/1/payload".to_owned(), 405),
        ] {
            // Twice on one connection: the first answer must leave it usable.
            let requests = [
                request(method, &path, SIZE, false),
                request(method, &path, SIZE, true),
            ];
            let statuses = exchange(addr, &requests)
                .await
                .unwrap_or_else(|error| panic!("round {round}: {method} {path}: {error}"));
            assert_eq!(statuses, [expected, expected], "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_with_a_body_is_answered_not_reset() {
    let api = Api::new();
    let addr = serve(&api).await;
    for round in 0..20 {
        let refused = |close| {
            let mut bytes = request("GET", "/computers", 100 * 1024, close);
            let at = bytes
                .windows(TOKEN.len())
                .position(|w| w == TOKEN.as_bytes())
                .unwrap();
            bytes[at] ^= 1;
            bytes
        };
        let statuses = exchange(addr, &[refused(false), refused(true)])
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        assert_eq!(statuses, [401, 401]);
    }
}
