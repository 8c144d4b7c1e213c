//! Serving HTTP/1.1 over TCP with a bound on everything a client can make the server hold: how
//! long it may take to send a request head, how long a request body or a response may stall,
//! how long a kept-alive connection may sit idle, and how many connections are open at once.
//!
//! [`serve`] is the server's accept loop; `main.rs` calls it with [`crate::app`] and the options
//! of [`crate::config`], and tests and embedders can call it with any router.
//!
//! A connection is, at any moment, in one of two phases:
//!
//! - **waiting** for a request head: since it was accepted (the whole head must arrive within
//!   [`ConnectionOptions::header_timeout`]), or since its last response was sent (it may then sit
//!   idle for [`ConnectionOptions::idle_timeout`] until the next request's first byte, after
//!   which the head must be complete within the header timeout);
//! - **busy** with a request whose head has arrived: its handler runs for as long as it takes,
//!   but a request body that brings no byte for [`ConnectionOptions::body_timeout`], or a response
//!   the client takes no byte of for as long, closes the connection. The body timeout is a
//!   per-read idle timeout, not a deadline for the whole body: an upload of many gigabytes is
//!   fine as long as it keeps moving.
//!
//! At [`ConnectionOptions::max_connections`] open connections the loop accepts one more and
//! makes room for it by closing the oldest connection that is *stalled*: waiting for a request
//! (idle or half a head), or busy with a request body that is not arriving. When every
//! connection is busy with a handler or a response, the new connection waits until one closes,
//! and the loop accepts nothing meanwhile. A client can thus hold many connections open, but
//! never lock others out: the slots it holds without using them are given to the next clients.
//!
//! When `shutdown` resolves, the listener is closed, stalled connections are closed at once, and
//! busy ones finish their request (a download being sent included) and close; after
//! [`ConnectionOptions::shutdown_grace`] those still open are cut off.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::routing::get;
//! use axum::Router;
//! use oco_server_min::connections::{serve, ConnectionOptions};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let options = ConnectionOptions {
//!     header_timeout: Duration::from_secs(5),
//!     ..ConnectionOptions::default()
//! };
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(serve(listener, app, options, async {
//!     let _ = stopped.await;
//! }));
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//! let mut reply = String::new();
//! client.read_to_string(&mut reply).await?;
//! assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("hello"));
//!
//! let _ = stop.send(());
//! server.await?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::observe::{suppressed_note, Throttle};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection cap when none is configured and the descriptor limit allows it: about 16 KiB
/// of memory each when idle, so 10,000 connections stay under 200 MB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Descriptors kept out of the connection budget: the database and its write-ahead log, the
/// listener, the log, a payload being written, the runtime's own.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The largest request head, in bytes (hyper's buffer limit): a larger one is refused with 431.
const MAX_HEAD: usize = 64 * 1024;

/// The first and the longest pause after a failed accept (the descriptors ran out, say).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// How long the loop waits at the limit before it looks again for a connection to close.
const ROOM_RETRY: Duration = Duration::from_millis(100);

/// The bounds on connections. `Default` gives the server's defaults but for
/// `max_connections`, which the server sizes from the descriptor limit (see [`max_connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// How long a request head may take to arrive, from the connection's start or from the
    /// first byte of a request on a kept-alive connection (10 s by default).
    pub header_timeout: Duration,
    /// How long a request body may bring no byte, and a response may have no byte taken by the
    /// client (30 s by default). Not a limit on a whole body's duration.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for the next request's first byte (30 s by
    /// default).
    pub idle_timeout: Duration,
    /// The most connections open at once ([`DEFAULT_MAX_CONNECTIONS`] by default).
    pub max_connections: usize,
    /// How long requests in flight may take to finish after the stop (60 s by default).
    pub shutdown_grace: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// The process's limit on open file descriptors (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The limit in force.
    pub soft: u64,
    /// The most the soft limit may be raised to.
    pub hard: u64,
}

/// Raises the soft descriptor limit to the hard one (at most 2²⁰, Linux's usual ceiling) and
/// returns the limits then in force.
///
/// # Errors
///
/// When the limits cannot be read or set.
pub fn raise_descriptor_limit() -> io::Result<DescriptorLimit> {
    let soft = rlimit::increase_nofile_limit(1 << 20)?;
    #[cfg(unix)]
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    #[cfg(not(unix))]
    let hard = soft;
    Ok(DescriptorLimit { soft, hard })
}

/// The most connections `limit` allows: every connection may hold a socket and a payload file
/// open at once, and [`RESERVED_DESCRIPTORS`] stay for the rest. At least 1.
pub fn max_connections_for(limit: DescriptorLimit) -> usize {
    let budget = limit.soft.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(budget).unwrap_or(usize::MAX).max(1)
}

/// The connection cap: `configured` if given and `limit` allows it, else what `limit` allows;
/// without `configured`, at most [`DEFAULT_MAX_CONNECTIONS`]. The second value is true when
/// `configured` was lowered to fit, which the caller should report.
pub fn max_connections(configured: Option<usize>, limit: DescriptorLimit) -> (usize, bool) {
    let allowed = max_connections_for(limit);
    match configured {
        Some(wanted) if wanted > allowed => (allowed, true),
        Some(wanted) => (wanted, false),
        None => (allowed.min(DEFAULT_MAX_CONNECTIONS), false),
    }
}

/// How many connections a [`serve_counted`] has open: what `/metrics` shows. Cheap to clone
/// (one `Arc`); clones count together.
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// The connections open now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `app` on `listener` within `options` until `shutdown` resolves, then stops as the
/// [module docs](self) say and returns once every connection is closed.
///
/// Handlers see the client's address as [`ConnectInfo<SocketAddr>`].
pub async fn serve<F>(listener: TcpListener, app: Router, options: ConnectionOptions, shutdown: F)
where
    F: Future<Output = ()>,
{
    serve_counted(listener, app, options, shutdown, OpenConnections::default()).await;
}

/// [`serve`], counting the open connections in `open_count`.
pub async fn serve_counted<F>(
    listener: TcpListener,
    app: Router,
    options: ConnectionOptions,
    shutdown: F,
    open_count: OpenConnections,
) where
    F: Future<Output = ()>,
{
    let max = options.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let open = Open::default();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut acceptor = Acceptor {
        listener: &listener,
        slots: &slots,
        open: &open,
        max,
        backoff: ACCEPT_BACKOFF.0,
        failures: Throttle::default(),
        full: Throttle::default(),
    };
    let mut shutdown = pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (stream, peer, permit) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = acceptor.next() => accepted,
        };
        while let Some(ended) = tasks.try_join_next() {
            report_panic(ended);
        }
        next_id += 1;
        let activity = Arc::new(Activity::new(stop.child_token()));
        open.insert(next_id, activity.clone());
        open_count.0.fetch_add(1, Ordering::Relaxed);
        let registered = Registered {
            open: open.clone(),
            id: next_id,
            count: open_count.clone(),
            _permit: permit,
        };
        tasks.spawn(connection(
            stream,
            peer,
            app.clone(),
            options,
            activity,
            registered,
        ));
    }
    // New connections are refused from here on.
    drop(listener);
    let stalled = open.count(|phase| phase.stalled());
    tracing::info!(
        "stopping: {} connection(s) open; {stalled} stalled ones closed, requests in flight finish",
        open.count(|_| true)
    );
    stop.cancel();
    let drained = async {
        while let Some(ended) = tasks.join_next().await {
            report_panic(ended);
        }
    };
    if tokio::time::timeout(options.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            "stopping: {} connection(s) still busy after {:?} are cut off",
            tasks.len(),
            options.shutdown_grace
        );
        tasks.shutdown().await;
    }
}

// The accept loop.

/// Accepts connections within the limit, making room and backing off as needed.
struct Acceptor<'a> {
    listener: &'a TcpListener,
    slots: &'a Arc<Semaphore>,
    open: &'a Open,
    max: usize,
    /// The pause after the next failed accept.
    backoff: Duration,
    failures: Throttle,
    full: Throttle,
}

impl Acceptor<'_> {
    /// The next connection and its slot. Cancel-safe: a connection accepted but not returned is
    /// closed.
    async fn next(&mut self) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = ACCEPT_BACKOFF.0;
                    accepted
                }
                // The client gave up before it was accepted: nothing to do with the server.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    if let Some(suppressed) = self.failures.ready() {
                        tracing::warn!(
                            "accepting a connection: {error}; retrying in {:?}{}",
                            self.backoff,
                            suppressed_note(suppressed)
                        );
                    }
                    // Out of descriptors, most likely: closing a stalled connection frees one.
                    self.open.close_one_stalled();
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            };
            // Nagle's algorithm would hold back the last segment of a streamed response.
            let _ = stream.set_nodelay(true);
            let permit = self.slot().await;
            return (stream, peer, permit);
        }
    }

    /// A free slot: at once, or after a stalled connection closed to make room, or after a busy
    /// one finished.
    async fn slot(&mut self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return permit;
            }
            let made_room = self.open.close_one_stalled();
            if let Some(suppressed) = self.full.ready() {
                if made_room {
                    tracing::warn!(
                        "{} connections open (the limit): closing stalled ones to make room{}",
                        self.max,
                        suppressed_note(suppressed)
                    );
                } else {
                    tracing::warn!(
                        "{} connections open (the limit), all busy: new connections wait{}",
                        self.max,
                        suppressed_note(suppressed)
                    );
                }
            }
            // A busy connection may turn idle meanwhile: look again after a moment.
            if let Ok(Ok(permit)) =
                tokio::time::timeout(ROOM_RETRY, self.slots.clone().acquire_owned()).await
            {
                return permit;
            }
        }
    }
}

/// Errors of one connection, not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn report_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        if error.is_panic() {
            tracing::error!("a connection's task panicked: {error}");
        }
    }
}

/// The open connections, by the order they were accepted in.
#[derive(Clone, Default)]
struct Open(Arc<Mutex<BTreeMap<u64, Arc<Activity>>>>);

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Activity>>> {
        // The map stays consistent whatever a panicking holder did: entries are whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: u64, activity: Arc<Activity>) {
        self.lock().insert(id, activity);
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn count(&self, mut filter: impl FnMut(&Phase) -> bool) -> usize {
        self.lock()
            .values()
            .filter(|activity| filter(&activity.phase()))
            .count()
    }

    /// Tells the oldest connection waiting for a request, else the oldest one whose request
    /// body is stalled, to close. False when there is none.
    fn close_one_stalled(&self) -> bool {
        let open = self.lock();
        let waiting = open.values().find(|activity| {
            let phase = activity.phase();
            !phase.closing && phase.waiting.is_some() && phase.send_stalled.is_none()
        });
        let victim = waiting.or_else(|| {
            open.values().find(|activity| {
                let phase = activity.phase();
                !phase.closing && phase.body_stalled.is_some()
            })
        });
        match victim {
            Some(activity) => {
                activity.update(|phase| phase.closing = true);
                activity.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in [`Open`] and its slot, both released when its task ends, however.
struct Registered {
    open: Open,
    id: u64,
    count: OpenConnections,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.remove(self.id);
        self.count.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// One connection.

/// What a connection is doing, as its socket, its request body and its service see it.
struct Activity {
    phase: Mutex<Phase>,
    /// Cancelled to stop the server or to make room: the connection closes once it is stalled.
    close: CancellationToken,
}

/// A connection's phase (see the [module docs](self)).
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests whose head has arrived and whose response is not sent in full.
    requests: usize,
    /// While no request is in flight: since when the connection waits, and for what.
    waiting: Option<Waiting>,
    /// Since when the request body has brought nothing while its handler waits for it.
    body_stalled: Option<Instant>,
    /// Since when the client has taken nothing of what the server writes.
    send_stalled: Option<Instant>,
    /// Told to close.
    closing: bool,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// For a request head to arrive in full.
    Head(Instant),
    /// Idle after a response, for the next request's first byte.
    Idle(Instant),
}

/// Why a connection was closed before its client closed it.
#[derive(Debug, Clone, Copy)]
enum Cut {
    HeaderTimeout,
    IdleTimeout,
    BodyTimeout,
    SendTimeout,
    Stalled,
}

impl Phase {
    /// Waiting for a request with nothing left to send, or for a request body that does not
    /// come.
    fn stalled(&self) -> bool {
        (self.waiting.is_some() && self.send_stalled.is_none()) || self.body_stalled.is_some()
    }

    /// The earliest timeout running, and what it is.
    fn deadline(&self, options: &ConnectionOptions) -> Option<(Instant, Cut)> {
        let waiting = self.waiting.map(|waiting| match waiting {
            Waiting::Head(since) => (since + options.header_timeout, Cut::HeaderTimeout),
            Waiting::Idle(since) => (since + options.idle_timeout, Cut::IdleTimeout),
        });
        let body = self
            .body_stalled
            .map(|since| (since + options.body_timeout, Cut::BodyTimeout));
        let send = self
            .send_stalled
            .map(|since| (since + options.body_timeout, Cut::SendTimeout));
        [waiting, body, send]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }
}

impl Activity {
    fn new(close: CancellationToken) -> Activity {
        Activity {
            phase: Mutex::new(Phase {
                requests: 0,
                waiting: Some(Waiting::Head(Instant::now())),
                body_stalled: None,
                send_stalled: None,
                closing: false,
            }),
            close,
        }
    }

    fn update<R>(&self, change: impl FnOnce(&mut Phase) -> R) -> R {
        // A phase is a few plain fields: whatever a panicking holder left is usable.
        change(&mut self.phase.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn phase(&self) -> Phase {
        self.update(|phase| *phase)
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn received(&self) {
        self.update(|phase| {
            if let Some(Waiting::Idle(_)) = phase.waiting {
                phase.waiting = Some(Waiting::Head(Instant::now()));
            }
        });
    }

    fn request_started(&self) {
        self.update(|phase| {
            phase.requests += 1;
            phase.waiting = None;
        });
    }

    fn request_finished(&self) {
        self.update(|phase| {
            phase.requests = phase.requests.saturating_sub(1);
            if phase.requests == 0 {
                phase.waiting = Some(Waiting::Idle(Instant::now()));
                phase.body_stalled = None;
            }
        });
    }

    fn body_pending(&self, pending: bool) {
        self.update(|phase| match (pending, phase.body_stalled) {
            (true, None) => phase.body_stalled = Some(Instant::now()),
            (false, Some(_)) => phase.body_stalled = None,
            _ => {}
        });
    }

    fn send_pending(&self, pending: bool) {
        self.update(|phase| match (pending, phase.send_stalled) {
            (true, None) => phase.send_stalled = Some(Instant::now()),
            (false, Some(_)) => phase.send_stalled = None,
            _ => {}
        });
    }
}

/// Serves one connection until it ends, times out, or is told to close while stalled.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    options: ConnectionOptions,
    activity: Arc<Activity>,
    _registered: Registered,
) {
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = Service {
        app,
        peer,
        activity: activity.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timeouts are this module's, which tell an idle connection from a slow head.
    builder
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut close = pin!(activity.close.clone().cancelled_owned());
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    let mut armed: Option<Instant> = None;
    let mut closing = false;
    // The phase changes inside `conn.poll` (reads, the service, bodies), all on this task: after
    // each poll the timers are set anew from it.
    let ended = poll_fn(|cx| loop {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(|error| error.to_string()));
        }
        if !closing && close.as_mut().poll(cx).is_ready() {
            closing = true;
            // Ends an idle connection, and a busy one after its response.
            conn.as_mut().graceful_shutdown();
            continue;
        }
        let phase = activity.phase();
        if closing && phase.stalled() {
            return Poll::Ready(Err(cut_message(Cut::Stalled)));
        }
        if let Some((deadline, cut)) = phase.deadline(&options) {
            if armed != Some(deadline) {
                timer.as_mut().reset(deadline);
                armed = Some(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(cut_message(cut)));
            }
        }
        return Poll::Pending;
    })
    .await;
    if let Err(why) = ended {
        tracing::debug!("connection from {peer} closed: {why}");
    }
}

fn cut_message(cut: Cut) -> String {
    match cut {
        Cut::HeaderTimeout => "the request head took longer than the header timeout",
        Cut::IdleTimeout => "idle for longer than the idle timeout",
        Cut::BodyTimeout => "the request body stalled for longer than the body timeout",
        Cut::SendTimeout => "the client took no data for longer than the body timeout",
        Cut::Stalled => "stalled while the server was stopping or full",
    }
    .to_string()
}

/// The socket, telling the connection's [`Activity`] when bytes arrive and when writes stall.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn sent<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.activity.send_pending(polled.is_pending());
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.sent(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.sent(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.sent(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.sent(polled)
    }
}

/// Hands each request to the router, with the client's address, a watched body, and a response
/// body that marks the request finished when it is sent or dropped.
#[derive(Clone)]
struct Service {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let in_flight = InFlight(self.activity.clone());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = RequestBody {
            inner: body,
            activity: self.activity.clone(),
        };
        let response = self.app.clone().oneshot(Request::from_parts(parts, body));
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| ResponseBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Marks its request finished when dropped: with its response body once sent, or with the
/// handler's future if the connection closes first.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A request body that tells its connection while the handler waits for bytes that do not come.
struct RequestBody {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.activity.body_pending(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Nobody waits for it any more.
        self.activity.body_pending(false);
    }
}

/// The router's response body, holding its request's [`InFlight`] mark.
struct ResponseBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_leaves_a_socket_and_a_file_per_connection() {
        let limit = |soft| DescriptorLimit { soft, hard: soft };
        assert_eq!(max_connections_for(limit(1024)), 480);
        assert_eq!(max_connections_for(limit(20_000)), 9_968);
        assert_eq!(max_connections_for(limit(10)), 1);
        assert_eq!(max_connections(None, limit(1024)), (480, false));
        assert_eq!(
            max_connections(None, limit(1 << 20)),
            (DEFAULT_MAX_CONNECTIONS, false)
        );
        assert_eq!(max_connections(Some(100), limit(1024)), (100, false));
        assert_eq!(max_connections(Some(5_000), limit(1024)), (480, true));
        assert_eq!(
            max_connections(Some(50_000), limit(1 << 20)),
            (50_000, false)
        );
    }

    #[test]
    fn the_earliest_timeout_wins() {
        let options = ConnectionOptions::default();
        let start = Instant::now();
        let mut phase = Phase {
            requests: 1,
            waiting: None,
            body_stalled: None,
            send_stalled: None,
            closing: false,
        };
        assert!(phase.deadline(&options).is_none());
        assert!(!phase.stalled());
        phase.send_stalled = Some(start);
        phase.body_stalled = Some(start + Duration::from_secs(1));
        let (at, cut) = phase.deadline(&options).unwrap();
        assert_eq!(at, start + options.body_timeout);
        assert!(matches!(cut, Cut::SendTimeout));
        assert!(phase.stalled());
        phase.waiting = Some(Waiting::Head(start));
        let (at, cut) = phase.deadline(&options).unwrap();
        assert_eq!(at, start + options.header_timeout);
        assert!(matches!(cut, Cut::HeaderTimeout));
    }
}
