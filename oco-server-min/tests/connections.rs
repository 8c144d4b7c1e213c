//! The bounds of `connections::serve` over real sockets, with timeouts of a second or two: a half
//! request head, an idle kept-alive connection and a stalled request body are closed after their
//! timeouts while a slow but moving body is not; at the connection cap a new connection takes the
//! place of a stalled one, or waits while every one is busy; a stop closes idle and stalled
//! connections at once and lets a request in flight finish, within the grace.
//!
//! Each test asserts a lower bound (the connection stays open until its timeout) and a generous
//! upper bound, so that a loaded machine does not fail them.

// Tests may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use oco_server_min::connections::{serve, ConnectionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Long enough never to fire in a test that is not about it.
const NEVER: Duration = Duration::from_secs(600);

/// How long a closed connection may take to be seen closed on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn options() -> ConnectionOptions {
    ConnectionOptions {
        header_timeout: NEVER,
        body_timeout: NEVER,
        idle_timeout: NEVER,
        max_connections: 100,
        shutdown_grace: NEVER,
    }
}

/// A server of three routes: `GET /hello`, `POST /echo` (the body's length) and `GET /wait`,
/// which answers once `gate` hands it a permit.
struct TestServer {
    addr: SocketAddr,
    gate: Arc<Semaphore>,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

impl TestServer {
    async fn start(options: ConnectionOptions) -> TestServer {
        let gate = Arc::new(Semaphore::new(0));
        let waiting = gate.clone();
        let app = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/wait",
                get(move || {
                    let gate = waiting.clone();
                    async move {
                        gate.acquire().await.unwrap().forget();
                        "done"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let served = tokio::spawn(serve(listener, app, options, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            gate,
            stop: Some(stop),
            served,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Signals the stop and returns the task that ends when `serve` returns.
    fn stop(&mut self) -> &mut JoinHandle<()> {
        let _ = self.stop.take().unwrap().send(());
        &mut self.served
    }
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Reads one response (headers and a Content-Length body) within `SLACK`; the connection stays
/// open.
async fn response(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let read = tokio::time::timeout(SLACK, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(read > 0, "closed before a whole response");
        raw.extend_from_slice(&buf[..read]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |len| len.trim().parse().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Waits until the server closes `stream` (end of file or a reset), discarding what it sends;
/// panics after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) {
    let mut buf = [0; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {within:?}");
}

/// Asserts that nothing happens on `stream` (no byte, no close) for `period`.
async fn quiet_for(stream: &mut TcpStream, period: Duration) {
    let mut buf = [0; 1];
    let read = tokio::time::timeout(period, stream.read(&mut buf)).await;
    assert!(read.is_err(), "the server answered or closed: {read:?}");
}

#[tokio::test]
async fn a_half_request_head_is_closed_after_the_header_timeout() {
    let server = TestServer::start(ConnectionOptions {
        header_timeout: Duration::from_secs(1),
        ..options()
    })
    .await;
    let mut half = server.connect().await;
    let mut silent = server.connect().await;
    let started = Instant::now();
    half.write_all(b"GET /hello HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    quiet_for(&mut half, Duration::from_millis(700)).await;
    closed_within(&mut half, SLACK).await;
    // A connection that sends nothing gets no longer.
    closed_within(&mut silent, SLACK).await;
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A whole head in time is answered.
    let mut whole = server.connect().await;
    whole
        .write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    assert!(response(&mut whole).await.ends_with("hello"));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(ConnectionOptions {
        idle_timeout: Duration::from_secs(1),
        ..options()
    })
    .await;
    let mut stream = server.connect().await;
    // Requests within the idle timeout keep the connection.
    for _ in 0..3 {
        stream
            .write_all(get_request("/hello").as_bytes())
            .await
            .unwrap();
        assert!(response(&mut stream).await.ends_with("hello"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_since = Instant::now();
    closed_within(&mut stream, SLACK).await;
    assert!(idle_since.elapsed() >= Duration::from_millis(400));

    // The header timeout (10 minutes here) holds once a request's first byte arrives.
    let mut stream = server.connect().await;
    stream
        .write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    response(&mut stream).await;
    stream.write_all(b"GET /hel").await.unwrap();
    quiet_for(&mut stream, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_stalled_body_is_closed_after_the_body_timeout_and_a_slow_one_is_not() {
    let server = TestServer::start(ConnectionOptions {
        body_timeout: Duration::from_secs(1),
        ..options()
    })
    .await;
    let head = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\n";

    let mut stalled = server.connect().await;
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(b"0123456789").await.unwrap();
    quiet_for(&mut stalled, Duration::from_millis(700)).await;
    closed_within(&mut stalled, SLACK).await;

    // Two seconds in all, but never a second without a byte: the timeout is per read.
    let mut slow = server.connect().await;
    slow.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..5 {
        slow.write_all(b"0123").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(response(&mut slow).await.ends_with("\r\n\r\n20"));
}

#[tokio::test]
async fn at_the_cap_a_new_connection_takes_the_place_of_an_idle_one() {
    let server = TestServer::start(ConnectionOptions {
        max_connections: 2,
        ..options()
    })
    .await;
    let mut oldest = server.connect().await;
    let mut younger = server.connect().await;
    // A kept-alive connection, idle after a response.
    younger
        .write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    response(&mut younger).await;

    let mut new = server.connect().await;
    new.write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    assert!(response(&mut new).await.ends_with("hello"));
    // The oldest stalled connection made room; the other one still works.
    closed_within(&mut oldest, SLACK).await;
    younger
        .write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    assert!(response(&mut younger).await.ends_with("hello"));
}

#[tokio::test]
async fn at_the_cap_a_new_connection_waits_while_every_one_is_busy() {
    let server = TestServer::start(ConnectionOptions {
        max_connections: 2,
        ..options()
    })
    .await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = server.connect().await;
        stream
            .write_all(get_request("/wait").as_bytes())
            .await
            .unwrap();
        busy.push(stream);
    }
    // The handlers run; a third connection is not served meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = server.connect().await;
    third
        .write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    quiet_for(&mut third, Duration::from_millis(500)).await;

    // One handler finishes; its client closes the connection: the third is served.
    server.gate.add_permits(1);
    let mut done = None;
    for (index, stream) in busy.iter_mut().enumerate() {
        let mut buf = [0; 1];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(500), stream.peek(&mut buf)).await
        {
            assert!(read.unwrap() > 0);
            done = Some(index);
            break;
        }
    }
    let finished = busy.remove(done.expect("one request finished"));
    assert!(response(&mut { finished }).await.ends_with("done"));
    assert!(response(&mut third).await.ends_with("hello"));
    server.gate.add_permits(1);
    assert!(response(&mut busy[0]).await.ends_with("done"));
}

#[tokio::test]
async fn a_stop_closes_idle_and_stalled_connections_at_once_and_lets_a_request_finish() {
    let mut server = TestServer::start(ConnectionOptions {
        shutdown_grace: Duration::from_secs(30),
        ..options()
    })
    .await;
    let mut idle = server.connect().await;
    idle.write_all(get_request("/hello").as_bytes())
        .await
        .unwrap();
    response(&mut idle).await;
    let mut half_head = server.connect().await;
    half_head
        .write_all(b"GET /hello HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut stalled_body = server.connect().await;
    stalled_body
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123")
        .await
        .unwrap();
    let mut in_flight = server.connect().await;
    in_flight
        .write_all(get_request("/wait").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let addr = server.addr;
    let gate = server.gate.clone();
    let served = server.stop();
    for stream in [&mut idle, &mut half_head, &mut stalled_body] {
        closed_within(stream, Duration::from_secs(2)).await;
    }
    // The listener is closed: nothing new is accepted.
    assert!(TcpStream::connect(addr).await.is_err());
    // The request in flight is still served, then its connection closes and `serve` returns.
    assert!(!served.is_finished());
    gate.add_permits(1);
    let answer = response(&mut in_flight).await;
    assert!(answer.ends_with("done"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    closed_within(&mut in_flight, SLACK).await;
    tokio::time::timeout(SLACK, served)
        .await
        .expect("serve returned")
        .unwrap();
}

#[tokio::test]
async fn a_stop_cuts_off_requests_still_running_after_the_grace() {
    let mut server = TestServer::start(ConnectionOptions {
        shutdown_grace: Duration::from_secs(1),
        ..options()
    })
    .await;
    let mut in_flight = server.connect().await;
    in_flight
        .write_all(get_request("/wait").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    let served = server.stop();
    quiet_for(&mut in_flight, Duration::from_millis(700)).await;
    tokio::time::timeout(SLACK, served)
        .await
        .expect("serve returned after the grace")
        .unwrap();
    assert!(stopped_at.elapsed() >= Duration::from_millis(900));
    closed_within(&mut in_flight, SLACK).await;
}
