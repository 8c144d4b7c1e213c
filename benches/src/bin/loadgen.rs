//! The server load generator of `benches/PERFORMANCE.md` (the server rows): simulated OCO agents
//! that poll `oco-server-min` with signed `oco.agent.hello` calls, or send
//! `oco.agent.update_job_state` progress reports, and measure what the server sustains.
//!
//! - `loadgen seed --data-dir DIR [--small]` writes `DIR/oco.db` with the fixed seed of the
//!   SQLite rows ([`oco_benches::sqlite::seed`]: 20,000 computers `lg-00001`…, the 1,000 polled
//!   ones with 20 Waiting jobs each, 1M jobs; `--small`: 2,000 computers, 100 polled, 50,000
//!   jobs). Every computer gets its own agent key and server key, derived from its hostname and a
//!   fixed salt ([`derive_key`]), so no key exchange (TOFU) happens during a run and the generator
//!   knows every key. The polled computers' containers are opened to loopback agents at any time
//!   (see [`open_polled_containers`]), so a hello hands out the 20 jobs.
//! - `loadgen run --url http://127.0.0.1:PORT/api-agent.php --method hello|report ...` runs
//!   `--concurrency` agents for `--warmup` + `--duration` seconds. The polled computers are shared
//!   out round-robin (agent `a` of `n` takes computers `a`, `a + n`, …, so no computer ever has
//!   two requests in flight) and each agent polls its computers in turn. Every request is what
//!   the OCO agent 1.2.0 sends: Python `json.dumps` formatting, its headers, the
//!   `x-oco-agent-signature` HMAC, a timestamp that strictly increases per computer (the run's
//!   start in units of 10⁻⁴ s plus a per-computer counter), and a new connection per request
//!   unless `--keep-alive`. Against a server on IPv4 loopback each agent connects from its own
//!   address (127.0.1.1, 127.0.1.2, …; see [`source_address`]), as real agents come from hosts
//!   of their own. `report` first sends one hello per computer to learn its job ids, then
//!   reports Executing (state 2) with output on them in turn, which the server accepts every time.
//!   Every response must be a 200 with a valid `x-oco-server-signature` (the computer's server
//!   key) and a `result.timestamp` above the previous one of that computer; anything else is
//!   counted as an error, by kind. Given `--server-pid`, the server's CPU time (utime + stime of
//!   `/proc/PID/stat`, read at the start and end of the measured window) per request and its
//!   memory (`VmRSS`, `VmHWM`) are reported.
//!
//! Run it through `benches/loadgen.sh`, which pins the server and the generator to different
//! cores. By hand: `cargo run --release -p oco-benches --bin loadgen -- --help`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use hmac::{Hmac, Mac};
use oco_benches::sqlite::{seed, SeedCase, SEED_1M, SEED_TEST};
use oco_benches::SHORT_IP_LIST;
use oco_core::constraint::{IpRanges, TimeFrames};
use oco_core::model::Schedule;
use oco_core::store::{AgentCredentials, Change, ChangeSet, Page, Store};
use oco_store_sqlite::{Options, SqliteStore};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;
type HmacSha256 = Hmac<Sha256>;

/// The salt every computer's keys are derived from (see [`derive_key`]).
const KEY_SALT: &[u8] = b"oco-loadgen fixed key salt 1";

/// The job output an Executing report carries (already a JSON string body, ASCII).
const REPORT_OUTPUT: &str = "Extracting package archive...\\nRunning the installer (silent)\\n\
     Copying files: 412 of 977\\nRegistering components\\n";

/// How long one request may take before it counts as an I/O error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Load generator for oco-server-min: simulated, signing OCO agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Writes DIR/oco.db with the fixed seed and every computer's keys.
    Seed {
        /// The server's data directory (created if missing; must not hold an oco.db yet).
        #[arg(long)]
        data_dir: PathBuf,
        /// The scaled-down seed: 2,000 computers, 100 polled, 50,000 jobs.
        #[arg(long)]
        small: bool,
    },
    /// Runs simulated agents against a server and reports what it sustained.
    Run(RunArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// The agent API's URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080/api-agent.php")]
    url: String,
    /// What the agents send.
    #[arg(long, value_enum, default_value_t = Method::Hello)]
    method: Method,
    /// Simulated agents with a request in flight each.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// One connection per agent, kept alive (the OCO agent opens a new one per request).
    #[arg(long)]
    keep_alive: bool,
    /// The server's process id: report its CPU time per request and its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server was seeded with `seed --small` (100 polled computers instead of 1,000).
    #[arg(long)]
    small: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// Signed `oco.agent.hello` polls.
    Hello,
    /// `oco.agent.update_job_state` progress reports (state 2 with output).
    Report,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Seed { data_dir, small } => seed_data_dir(&data_dir, small),
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(args))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The clock: a load generator measures time, so it reads the clock (here only).

#[allow(clippy::disallowed_methods)]
fn instant_now() -> Instant {
    Instant::now()
}

/// The wall clock in units of 10⁻⁴ s since the epoch (the agent's `round(time.time(), 4)`).
#[allow(clippy::disallowed_methods)]
fn epoch_ticks() -> Result<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH)?;
    Ok(u64::try_from(since.as_micros() / 100)?)
}

// ---------------------------------------------------------------------------------------------
// Keys, seed.

/// The `n`-th computer's hostname (`lg-00001` is the first), as the seed names it.
fn hostname(n: usize) -> String {
    format!("lg-{n:05}")
}

/// The hostnames of the polled computers of `case`: every 20th computer.
fn polled_hostnames(case: SeedCase) -> Vec<String> {
    (1..=case.polled())
        .map(|i| hostname(i * oco_benches::sqlite::POLLED_ONE_IN))
        .collect()
}

/// A computer's `kind` key (`agent` or `server`): 30 characters of `[0-9a-z]` like OCO's keys,
/// the HMAC-SHA256 of `kind/hostname` under [`KEY_SALT`].
fn derive_key(kind: &str, hostname: &str) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut mac = keyed(KEY_SALT);
    mac.update(kind.as_bytes());
    mac.update(b"/");
    mac.update(hostname.as_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..30]
        .iter()
        .map(|&b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The credentials the seed stores for `hostname`: its own agent and server keys, no hello yet.
fn seeded_credentials(hostname: &str) -> AgentCredentials {
    AgentCredentials {
        agent_key: Some(derive_key("agent", hostname)),
        previous_agent_key: None,
        server_key: Some(derive_key("server", hostname)),
        ..AgentCredentials::default()
    }
}

fn seed_data_dir(dir: &Path, small: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("oco.db");
    if path.exists() {
        return Err(format!("{} exists already: seed an empty directory", path.display()).into());
    }
    let case = if small { SEED_TEST } else { SEED_1M };
    let started = instant_now();
    // One connection, the writer: closing it checkpoints the write-ahead log into the file, so
    // the server starts on a settled database.
    let options = Options {
        readers: 0,
        ..Options::default()
    };
    let store = SqliteStore::open_with(&path, &options)?;
    let seeded = seed(&store, case)?;
    let opened = open_polled_containers(&store)?;
    for &id in &seeded.computers {
        let computer = store.computer(id)?;
        store.set_credentials(id, &seeded_credentials(computer.hostname.as_str()))?;
    }
    drop(store);
    println!(
        "seeded {}: {} computers ({} polled), {} jobs, {opened} containers opened to loopback \
         agents, every computer keyed; {:.1} s",
        path.display(),
        case.computers,
        case.polled(),
        case.jobs(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens the polled computers' containers to the generator: their policies allow loopback
/// agents (the seed's short IP list plus `127.0.0.0/8, ::1`) at any time (no time frames), and
/// their schedules never end. The seed's jobs are held otherwise: its time frames are Berlin
/// office hours and its IP list names no loopback address, and a hello that hands out no jobs
/// would be neither the load of `PERFORMANCE.md` nor a source of job ids for the reports.
/// Returns how many containers were changed.
fn open_polled_containers(store: &dyn Store) -> Result<usize> {
    let ranges: IpRanges = format!("{SHORT_IP_LIST}, 127.0.0.0/8, ::1").parse()?;
    let mut changes = ChangeSet::default();
    for mut container in store.list_containers(Page::first(1_000))? {
        container.policy.ip_ranges = ranges.clone();
        container.policy.time_frames = TimeFrames::default();
        container.schedule = Schedule::new(container.schedule.start(), None)?;
        changes.push(Change::UpdateContainer { container });
    }
    let count = changes.changes.len();
    store.apply(&changes)?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// The agent's wire format.

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error type exists for fixed-size MACs only.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Lower-case hex of the HMAC of `body` under the prepared `key` (the agent's `hexdigest()`).
fn sign(key: &HmacSha256, body: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut mac = key.clone();
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// `value` as Python's `repr(float)` writes it (`json.dumps` uses it): the shortest decimal that
/// reads back as the same float, with `.0` on whole numbers. (Valid for the magnitudes used
/// here: Python switches to an exponent at 1e16 and below 1e-4.)
fn python_float(value: f64, out: &mut String) {
    let start = out.len();
    let _ = write!(out, "{value}");
    if !out[start..].contains(['.', 'e', 'N', 'n']) {
        out.push_str(".0");
    }
}

/// `text` as a JSON string the way Python's `json.dumps` writes it (`ensure_ascii`).
fn python_str(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The agent's JSON-RPC envelope, as `json.dumps` writes it; `data` is already encoded.
fn envelope(method: &str, uid: &str, hostname: &str, timestamp: f64, data: &str, out: &mut String) {
    out.push_str("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
    python_str(method, out);
    out.push_str(", \"params\": {\"uid\": ");
    python_str(uid, out);
    out.push_str(", \"hostname\": ");
    python_str(hostname, out);
    out.push_str(", \"timestamp\": ");
    python_float(timestamp, out);
    out.push_str(", \"data\": ");
    out.push_str(data);
    out.push_str("}}");
}

/// The `data` of a hello as the agent 1.2.0 sends it on Linux (one network, no service checks,
/// no battery).
fn hello_data(n: usize) -> String {
    let (high, low) = ((n / 256) % 256, n % 256);
    format!(
        "{{\"agent_version\": \"1.2.0\", \"networks\": [{{\"addr\": \"127.0.{high}.{low}\", \
         \"netmask\": \"255.0.0.0\", \"broadcast\": \"127.255.255.255\", \
         \"mac\": \"52:54:00:0c:{high:02x}:{low:02x}\", \"interface\": \"eth0\"}}], \
         \"services\": null, \"uptime\": 86417.25, \"battery_level\": false, \
         \"battery_status\": false, \"force_update\": false}}"
    )
}

/// The `data` of an Executing report with output on the job with wire id `job_id` (JSON).
fn report_data(job_id: &str) -> String {
    format!(
        "{{\"job-id\": {job_id}, \"state\": 2, \"return-code\": null, \"message\": \
         \"{REPORT_OUTPUT}\"}}"
    )
}

/// The request head the agent (python-requests 2.31) sends before `body`.
fn request(target: &Target, signature: &[u8; 64], body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.host.as_bytes());
    out.extend_from_slice(
        b"\r\nUser-Agent: python-requests/2.31.0\r\nAccept-Encoding: gzip, deflate\r\n\
          Accept: */*\r\nConnection: keep-alive\r\ncontent-type: application/json\r\n\
          x-oco-agent-signature: ",
    );
    out.extend_from_slice(signature);
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The value of `result.timestamp` in a response body: the number after its only `"timestamp"`
/// key (job objects have none).
fn result_timestamp(body: &[u8]) -> Option<f64> {
    let key = b"\"timestamp\"";
    let at = body.windows(key.len()).rposition(|w| w == key)? + key.len();
    let rest = &body[at..];
    let start = rest.iter().position(|&b| b != b':' && b != b' ')?;
    let len = rest[start..]
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
        .unwrap_or(rest.len() - start);
    std::str::from_utf8(&rest[start..start + len])
        .ok()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

/// Where requests go.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    /// The `Host` header.
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let with_port = if host.contains(':') && !host.ends_with(']') {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        Ok(Target {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A response read into a buffer: offsets of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    /// The `x-oco-server-signature` value.
    signature: Option<(usize, usize)>,
    /// The body.
    body: (usize, usize),
    /// The server will close the connection.
    close: bool,
}

fn io_error(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// What a response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// The `x-oco-server-signature` value, as offsets into the head.
    signature: Option<(usize, usize)>,
    /// The `Content-Length`.
    length: usize,
    /// The server will close the connection.
    close: bool,
}

/// Parses a response head (`head` ends before the blank line).
fn parse_head(head: &[u8]) -> std::io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|e| io_error(format!("response head: {e}")))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io_error(format!("bad status line {status_line:?}")))?;
    let (mut signature, mut length, mut close) = (None, None, status_line.starts_with("HTTP/1.0"));
    let mut offset = status_line.len() + 2;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value_start = offset + name.len() + 1 + (value.len() - value.trim_start().len());
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| io_error(format!("bad content-length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("x-oco-server-signature") {
                signature = Some((value_start, value_start + value.len()));
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(io_error(format!("unsupported transfer-encoding {value}")));
            }
        }
        offset += line.len() + 2;
    }
    let length = length.ok_or_else(|| io_error("response without content-length".into()))?;
    Ok(Head {
        status,
        signature,
        length,
        close,
    })
}

/// Reads one response from `stream` into `buf`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Response> {
    buf.clear();
    let mut scanned = 0;
    let head_end = loop {
        if let Some(at) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            break scanned + at;
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(io_error("response head too large".into()));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    };
    let Head {
        status,
        signature,
        length,
        close,
    } = parse_head(&buf[..head_end])?;
    let body_start = head_end + 4;
    while buf.len() < body_start + length {
        buf.reserve(body_start + length - buf.len());
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    if buf.len() > body_start + length {
        return Err(io_error("bytes after the response body".into()));
    }
    Ok(Response {
        status,
        signature,
        body: (body_start, body_start + length),
        close,
    })
}

/// The address agent number `index` connects from: its own loopback address (127.0.1.1,
/// 127.0.1.2, …) when the server is on IPv4 loopback, else the system's choice.
///
/// Real agents each come from a host of their own. From one address, a new connection per
/// request leaves thousands of the client's sockets in TIME_WAIT, and `connect` then searches the
/// ephemeral port range for a free port, which stalls the whole generator for milliseconds at a
/// time: those stalls were most of the hello p99 measured before.
fn source_address(server: SocketAddr, index: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            // 127.0.1.1 … 127.0.1.254, 127.0.2.1 …: neither 0 nor 255 in the last byte.
            let third = u8::try_from(1 + index / 254).ok()?;
            let fourth = u8::try_from(1 + index % 254).ok()?;
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, third, fourth)))
        }
        _ => None,
    }
}

/// Sends `request` on `conn` (connecting first if there is none, from `source` if given) and
/// reads the response.
async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    source: Option<IpAddr>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<Response> {
    let stream = match conn {
        Some(stream) => stream,
        None => {
            let stream = match source {
                Some(source) => {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind(SocketAddr::new(source, 0))?;
                    socket.connect(addr).await?
                }
                None => TcpStream::connect(addr).await?,
            };
            // As urllib3 does.
            stream.set_nodelay(true)?;
            conn.insert(stream)
        }
    };
    stream.write_all(request).await?;
    read_response(stream, buf).await
}

// ---------------------------------------------------------------------------------------------
// Simulated agents.

/// One computer as its agent knows it.
struct Computer {
    /// Its number: `lg-00020` is 20.
    number: usize,
    hostname: String,
    uid: String,
    /// Its agent key, prepared.
    agent_key: HmacSha256,
    /// Its server key, prepared.
    server_key: HmacSha256,
    /// Requests sent: the timestamp is the run's start plus this, in 10⁻⁴ s.
    sent: u64,
    /// The last `result.timestamp` accepted.
    last_server_timestamp: f64,
    /// Wire ids of its jobs (JSON), from a hello.
    jobs: Vec<String>,
    next_job: usize,
}

impl Computer {
    fn new(n: usize, hostname: String) -> Computer {
        Computer {
            number: n,
            uid: format!("4c4c4544-0030-4810-8052-{n:012}"),
            agent_key: keyed(derive_key("agent", &hostname).as_bytes()),
            server_key: keyed(derive_key("server", &hostname).as_bytes()),
            hostname,
            sent: 0,
            last_server_timestamp: 0.0,
            jobs: Vec::new(),
            next_job: 0,
        }
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Not a 200.
    Status(u16),
    /// A missing or wrong server signature.
    Signature,
    /// No `result.timestamp`, or one not above the last.
    Timestamp,
    /// A hello reply offering keys: the seed's keys were not taken.
    KeyExchange,
    /// Connecting, writing, reading or parsing failed, or the request timed out.
    Io,
}

/// What one agent measured.
#[derive(Debug, Default)]
struct Tally {
    /// Successful requests that ended in the window.
    ok: u64,
    /// Their latencies, in nanoseconds.
    latencies: Vec<u64>,
    /// Failed requests that ended in the window, by kind: status, signature, timestamp, keys, I/O.
    failures: [u64; 5],
    /// Failed requests outside the window.
    failures_outside: u64,
    /// The first few failures, described.
    samples: Vec<String>,
}

impl Tally {
    fn fail(&mut self, failure: Failure, measured: bool, describe: impl FnOnce() -> String) {
        let kind = match failure {
            Failure::Status(_) => 0,
            Failure::Signature => 1,
            Failure::Timestamp => 2,
            Failure::KeyExchange => 3,
            Failure::Io => 4,
        };
        if measured {
            self.failures[kind] += 1;
        } else {
            self.failures_outside += 1;
        }
        if self.samples.len() < 3 {
            self.samples.push(describe());
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.latencies.extend(other.latencies);
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a += b;
        }
        self.failures_outside += other.failures_outside;
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }

    fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }
}

/// What every agent shares.
struct Plan {
    target: Target,
    keep_alive: bool,
    /// The run's start, in 10⁻⁴ s since the epoch (the base of every agent timestamp).
    base_ticks: u64,
}

/// One agent's connection and buffers.
struct Agent {
    plan: Arc<Plan>,
    /// Where its connections come from (see [`source_address`]).
    source: Option<IpAddr>,
    conn: Option<TcpStream>,
    body: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Agent {
    /// Agent number `index` of the run.
    fn new(plan: Arc<Plan>, index: usize) -> Agent {
        Agent {
            source: source_address(plan.target.addr, index),
            plan,
            conn: None,
            body: String::with_capacity(1024),
            request: Vec::with_capacity(2048),
            response: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends one `method` call for `computer` and checks the reply. On success the response
    /// body is `self.response[range]`.
    async fn call(
        &mut self,
        computer: &mut Computer,
        method: Method,
    ) -> Result<(usize, usize), (Failure, String)> {
        computer.sent += 1;
        // Exact: both are far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let timestamp = (self.plan.base_ticks + computer.sent) as f64 / 1e4;
        self.body.clear();
        match method {
            Method::Hello => {
                envelope(
                    "oco.agent.hello",
                    &computer.uid,
                    &computer.hostname,
                    timestamp,
                    &hello_data(computer.number),
                    &mut self.body,
                );
            }
            Method::Report => {
                let job = &computer.jobs[computer.next_job % computer.jobs.len()];
                computer.next_job += 1;
                envelope(
                    "oco.agent.update_job_state",
                    &computer.uid,
                    &computer.hostname,
                    timestamp,
                    &report_data(job),
                    &mut self.body,
                );
            }
        }
        let signature = sign(&computer.agent_key, self.body.as_bytes());
        request(
            &self.plan.target,
            &signature,
            self.body.as_bytes(),
            &mut self.request,
        );
        let exchanged = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(
                &mut self.conn,
                self.plan.target.addr,
                self.source,
                &self.request,
                &mut self.response,
            ),
        )
        .await;
        let response = match exchanged {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.conn = None;
                return Err((Failure::Io, format!("{}: {e}", computer.hostname)));
            }
            Err(_) => {
                self.conn = None;
                return Err((Failure::Io, format!("{}: timed out", computer.hostname)));
            }
        };
        if response.close || !self.plan.keep_alive {
            // The OCO agent closes its connection after every call.
            self.conn = None;
        }
        let (start, end) = response.body;
        let body = &self.response[start..end];
        if response.status != 200 {
            return Err((
                Failure::Status(response.status),
                format!(
                    "{}: status {}: {}",
                    computer.hostname,
                    response.status,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ));
        }
        let expected = sign(&computer.server_key, body);
        if response
            .signature
            .is_none_or(|(s, e)| self.response[s..e] != expected)
        {
            return Err((
                Failure::Signature,
                format!("{}: missing or wrong server signature", computer.hostname),
            ));
        }
        match result_timestamp(body) {
            Some(t) if t > computer.last_server_timestamp => computer.last_server_timestamp = t,
            other => {
                return Err((
                    Failure::Timestamp,
                    format!(
                        "{}: result.timestamp {other:?} not above {}",
                        computer.hostname, computer.last_server_timestamp
                    ),
                ))
            }
        }
        if method == Method::Hello
            && body
                .windows(b"\"agent-key\"".len())
                .any(|w| w == b"\"agent-key\"")
        {
            return Err((
                Failure::KeyExchange,
                format!("{}: the hello reply offers new keys", computer.hostname),
            ));
        }
        Ok((start, end))
    }

    /// One hello per computer, keeping the wire ids of the jobs it hands out.
    async fn learn_jobs(&mut self, computers: &mut [Computer]) -> Result<()> {
        for computer in computers {
            let (start, end) = self
                .call(computer, Method::Hello)
                .await
                .map_err(|(_, message)| message)?;
            let reply: serde_json::Value = serde_json::from_slice(&self.response[start..end])?;
            let jobs = reply
                .pointer("/result/params/software-jobs")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| format!("{}: no software-jobs in the hello", computer.hostname))?;
            computer.jobs = jobs
                .iter()
                .filter_map(|job| job.get("id"))
                .map(serde_json::Value::to_string)
                .collect();
            if computer.jobs.is_empty() {
                return Err(format!(
                    "{}: the hello handed out no jobs (was the server seeded with `loadgen \
                     seed`, and are the reports of an earlier run final?)",
                    computer.hostname
                )
                .into());
            }
        }
        Ok(())
    }

    /// Calls `method` for each computer in turn until `window.1`; what ends in the window counts.
    async fn load(
        mut self,
        mut computers: Vec<Computer>,
        method: Method,
        window: (Instant, Instant),
    ) -> Tally {
        let mut tally = Tally::default();
        let mut index = 0;
        loop {
            let started = instant_now();
            if started >= window.1 || computers.is_empty() {
                break;
            }
            let count = computers.len();
            let computer = &mut computers[index % count];
            index += 1;
            let outcome = self.call(computer, method).await;
            let ended = instant_now();
            let measured = ended >= window.0 && ended < window.1;
            match outcome {
                Ok(_) if measured => {
                    tally.ok += 1;
                    tally
                        .latencies
                        .push(u64::try_from((ended - started).as_nanos()).unwrap_or(u64::MAX));
                }
                Ok(_) => {}
                Err((failure, message)) => {
                    tally.fail(failure, measured, || message);
                    if failure == Failure::Io {
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
        tally
    }
}

// ---------------------------------------------------------------------------------------------
// The server process.

/// User + system CPU time of process `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after = stat.rsplit_once(')').ok_or("unexpected /proc/PID/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts with field 3 (state): utime is field 14, stime field 15.
    let field =
        |n: usize| -> Result<u64> { Ok(fields.get(n - 3).ok_or("short /proc/PID/stat")?.parse()?) };
    Ok(field(14)? + field(15)?)
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_kib(pid: &str) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let value = |key: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(key))
            .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))?;
        Ok(line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?)
    };
    Ok((value("VmRSS:")?, value("VmHWM:")?))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be run).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU ticks of the server and of this process at both ends of the window, and the server's
/// memory at its end.
#[derive(Debug, Default)]
struct Samples {
    server: Option<(u64, u64)>,
    client: Option<(u64, u64)>,
    memory: Option<(u64, u64)>,
}

/// Reads the CPU counters at `window.0` and `window.1`, on a thread of its own so that busy
/// agents do not delay the readings.
fn sample(
    pid: Option<u32>,
    window: (Instant, Instant),
) -> std::thread::JoinHandle<Result<Samples>> {
    std::thread::spawn(move || {
        let pid = pid.map(|p| p.to_string());
        let read = |who: Option<&str>| who.map(cpu_ticks).transpose();
        std::thread::sleep(window.0.saturating_duration_since(instant_now()));
        let (server0, client0) = (read(pid.as_deref())?, read(Some("self"))?);
        std::thread::sleep(window.1.saturating_duration_since(instant_now()));
        let (server1, client1) = (read(pid.as_deref())?, read(Some("self"))?);
        Ok(Samples {
            server: server0.zip(server1),
            client: client0.zip(client1),
            memory: pid.as_deref().map(memory_kib).transpose()?,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// The run.

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank; the index is below the length.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    #[allow(clippy::cast_precision_loss)]
    let ms = sorted[rank - 1] as f64 / 1e6;
    ms
}

async fn run(args: RunArgs) -> Result<()> {
    if args.concurrency == 0 || args.duration <= 0.0 || args.warmup < 0.0 {
        return Err("--concurrency and --duration must be positive, --warmup not negative".into());
    }
    let case = if args.small { SEED_TEST } else { SEED_1M };
    let plan = Arc::new(Plan {
        target: Target::parse(&args.url)?,
        keep_alive: args.keep_alive,
        base_ticks: epoch_ticks()?,
    });
    // Agent `a` takes computers a, a + n, a + 2n…: no computer has two requests in flight.
    let mut shares: Vec<Vec<Computer>> = (0..args.concurrency).map(|_| Vec::new()).collect();
    for (i, name) in polled_hostnames(case).into_iter().enumerate() {
        let n = (i + 1) * oco_benches::sqlite::POLLED_ONE_IN;
        shares[i % args.concurrency].push(Computer::new(n, name));
    }
    shares.retain(|share| !share.is_empty());

    if args.method == Method::Report {
        let started = instant_now();
        let mut tasks = Vec::new();
        for (index, mut share) in shares.into_iter().enumerate() {
            let plan = plan.clone();
            tasks.push(tokio::spawn(async move {
                let result = Agent::new(plan, index).learn_jobs(&mut share).await;
                result.map(|()| share)
            }));
        }
        shares = Vec::new();
        for task in tasks {
            shares.push(task.await??);
        }
        let jobs: usize = shares.iter().flatten().map(|c| c.jobs.len()).sum();
        println!(
            "setup: one hello per computer handed out {jobs} jobs ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let start = instant_now();
    let window = (
        start + Duration::from_secs_f64(args.warmup),
        start + Duration::from_secs_f64(args.warmup + args.duration),
    );
    let sampler = sample(args.server_pid, window);
    let mut tasks = Vec::new();
    for (index, share) in shares.into_iter().enumerate() {
        let agent = Agent::new(plan.clone(), index);
        tasks.push(tokio::spawn(agent.load(share, args.method, window)));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    let samples = sampler
        .join()
        .map_err(|_| "the sampling thread panicked")??;
    report(&args, case, &mut tally, &samples);
    if tally.ok == 0 {
        return Err("no request succeeded in the measured window".into());
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn report(args: &RunArgs, case: SeedCase, tally: &mut Tally, samples: &Samples) {
    tally.latencies.sort_unstable();
    let total = tally.ok + tally.failed();
    let rate = tally.ok as f64 / args.duration;
    let (p50, p99) = (
        percentile(&tally.latencies, 0.50),
        percentile(&tally.latencies, 0.99),
    );
    let max = tally.latencies.last().map_or(f64::NAN, |&n| n as f64 / 1e6);
    let what = match args.method {
        Method::Hello => "signed hello polls",
        Method::Report => "update_job_state reports (state 2 with output)",
    };
    let connection = if args.keep_alive {
        "keep-alive"
    } else {
        "new connection per request"
    };
    println!(
        "{what}, {connection}: {} agents over {} polled computers, {} s measured after {} s of \
         warm-up",
        args.concurrency,
        case.polled(),
        args.duration,
        args.warmup
    );
    println!(
        "  succeeded {} ({rate:.0}/s); failed {} (status {}, signature {}, timestamp {}, keys \
         offered {}, I/O {}); {} more outside the window",
        tally.ok,
        tally.failed(),
        tally.failures[0],
        tally.failures[1],
        tally.failures[2],
        tally.failures[3],
        tally.failures[4],
        tally.failures_outside
    );
    for sample in &tally.samples {
        println!("  e.g. {sample}");
    }
    println!("  latency p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms");
    let hz = clock_ticks_per_second() as f64;
    let mut cpu_ms = f64::NAN;
    if let Some((before, after)) = samples.server {
        let seconds = (after - before) as f64 / hz;
        cpu_ms = seconds * 1e3 / total.max(1) as f64;
        println!(
            "  server CPU {seconds:.2} s over the window ({:.0} % of one core): {cpu_ms:.4} ms \
             per request",
            100.0 * seconds / args.duration
        );
    }
    if let Some((before, after)) = samples.client {
        let seconds = (after - before) as f64 / hz;
        println!(
            "  generator CPU {seconds:.2} s ({:.0} % of one core)",
            100.0 * seconds / args.duration
        );
    }
    let (mut rss, mut hwm) = (f64::NAN, f64::NAN);
    if let Some((r, h)) = samples.memory {
        (rss, hwm) = (r as f64 / 1024.0, h as f64 / 1024.0);
        println!("  server memory: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB");
    }
    println!(
        "RESULT method={} keep_alive={} concurrency={} ok={} failed={} per_s={rate:.0} \
         p50_ms={p50:.3} p99_ms={p99:.3} server_cpu_ms={cpu_ms:.4} rss_mib={rss:.1} \
         hwm_mib={hwm:.1}",
        match args.method {
            Method::Hello => "hello",
            Method::Report => "report",
        },
        args.keep_alive,
        args.concurrency,
        tally.ok,
        tally.failed(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn each_agent_has_its_own_loopback_address() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let sources: Vec<IpAddr> = (0..1_000)
            .map(|i| source_address(server, i).unwrap())
            .collect();
        assert_eq!(sources[0], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(sources[254], IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1)));
        let distinct: std::collections::BTreeSet<_> = sources.iter().collect();
        assert_eq!(distinct.len(), sources.len());
        assert!(sources.iter().all(|ip| ip.is_loopback()));
        assert_eq!(source_address("[::1]:8080".parse().unwrap(), 3), None);
        assert_eq!(source_address("192.0.2.7:80".parse().unwrap(), 3), None);
    }

    /// The test vector of the protocol reference (§1.2), request side.
    #[test]
    fn the_request_envelope_and_signature_match_the_reference_vector() {
        let mut body = String::new();
        envelope(
            "oco.agent.hello",
            "test-uid",
            "testhost",
            1700000000.5,
            "{\"agent_version\": \"1.2.0\"}",
            &mut body,
        );
        assert_eq!(
            body,
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"oco.agent.hello\", \"params\": \
             {\"uid\": \"test-uid\", \"hostname\": \"testhost\", \"timestamp\": 1700000000.5, \
             \"data\": {\"agent_version\": \"1.2.0\"}}}"
        );
        let signature = sign(&keyed(b"initial-agent-key"), body.as_bytes());
        assert_eq!(
            &signature[..],
            b"f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190"
        );
    }

    /// The same vector, response side.
    #[test]
    fn the_server_signature_check_matches_the_reference_vector() {
        let body = b"{\"id\": 1, \"error\": null, \"result\": {\"success\": true, \"params\": \
            {\"update\": 0, \"software-jobs\": []}, \"timestamp\": 1700000001.25}}";
        let signature = sign(&keyed(b"serverkey0123456789abcdefghijkl"), body);
        assert_eq!(
            &signature[..],
            b"b47f21d9c67663f6f52f2abd2290a888eb7e767c57e2695913ec36c7d59dc249"
        );
        assert_eq!(result_timestamp(body), Some(1700000001.25));
        assert_eq!(result_timestamp(b"{\"timestamp\":17.5}"), Some(17.5));
        assert_eq!(result_timestamp(b"{\"result\":{}}"), None);
    }

    #[test]
    fn floats_and_strings_are_written_as_python_writes_them() {
        let show = |value: f64| {
            let mut out = String::new();
            python_float(value, &mut out);
            out
        };
        assert_eq!(show(1795555740.6228), "1795555740.6228");
        assert_eq!(show(1795555740.0), "1795555740.0");
        assert_eq!(show(86417.25), "86417.25");
        // Ticks of 10⁻⁴ s read back as `round(time.time(), 4)` shows them.
        #[allow(clippy::cast_precision_loss)]
        let ticks = |n: u64| show(n as f64 / 1e4);
        assert_eq!(ticks(17_955_557_406_228), "1795555740.6228");
        assert_eq!(ticks(17_955_557_406_230), "1795555740.623");
        let mut out = String::new();
        python_str("a\"b\\c\nd\té€😀", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\t\\u00e9\\u20ac\\ud83d\\ude00\"");
        // The fixed output is the JSON form of plain ASCII lines.
        let mut out = String::new();
        python_str(&REPORT_OUTPUT.replace("\\n", "\n"), &mut out);
        assert_eq!(out, format!("\"{REPORT_OUTPUT}\""));
    }

    #[test]
    fn keys_are_deterministic_and_shaped_like_ocos() {
        let key = derive_key("agent", "lg-00020");
        assert_eq!(key, derive_key("agent", "lg-00020"));
        assert_eq!(key.len(), 30);
        assert!(key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_ne!(key, derive_key("server", "lg-00020"));
        assert_ne!(key, derive_key("agent", "lg-00040"));
        let credentials = seeded_credentials("lg-00020");
        assert_eq!(credentials.agent_key.as_deref(), Some(key.as_str()));
        assert_eq!(credentials.last_hello, None);
        assert_eq!(polled_hostnames(SEED_TEST)[..2], ["lg-00020", "lg-00040"]);
        assert_eq!(polled_hostnames(SEED_1M).len(), 1_000);
    }

    #[test]
    fn response_heads_are_parsed() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
            X-Oco-Server-Signature:  abc \r\ncontent-length: 12";
        let parsed = parse_head(head).unwrap();
        assert_eq!(
            (parsed.status, parsed.length, parsed.close),
            (200, 12, false)
        );
        let (s, e) = parsed.signature.unwrap();
        assert_eq!(&head[s..e], b"abc");
        let parsed =
            parse_head(b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0")
                .unwrap();
        assert_eq!(
            (parsed.status, parsed.signature, parsed.close),
            (401, None, true)
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK").is_err());
    }

    #[test]
    fn the_seed_overlay_hands_the_polled_jobs_out() {
        use oco_core::store::MemoryStore;
        let store = MemoryStore::new();
        let case = SeedCase {
            computers: 40,
            rule_members: 10,
            rule_packages: 20,
            deploy_packages: 5,
        };
        let seeded = seed(&store, case).unwrap();
        assert_eq!(open_polled_containers(&store).unwrap(), 4);
        for container in store.list_containers(Page::first(10)).unwrap() {
            assert_eq!(container.policy.time_frames, TimeFrames::default());
            assert!(container
                .policy
                .ip_ranges
                .allows("127.0.0.1".parse().unwrap()));
            assert_eq!(container.schedule.end(), None);
        }
        let snapshot = store.planner_snapshot(seeded.polled[0]).unwrap();
        assert_eq!(snapshot.jobs.len(), 20);
    }

    /// A stand-in server that checks what the generator sends and answers like the agent API:
    /// 401 on a bad signature or a timestamp not above the last hello, else a signed reply.
    async fn fake_server(listener: TcpListener) {
        let last = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(1));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (last, clock) = (last.clone(), clock.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: head, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at;
                        }
                        if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    };
                    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .unwrap()
                            .trim()
                            .to_owned()
                    };
                    assert_eq!(header("content-type:"), "application/json");
                    let length: usize = header("Content-Length:").parse().unwrap();
                    while buf.len() < head_end + 4 + length {
                        stream.read_buf(&mut buf).await.unwrap();
                    }
                    let body: Vec<u8> = buf
                        .drain(..head_end + 4 + length)
                        .skip(head_end + 4)
                        .collect();
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let hostname = request["params"]["hostname"].as_str().unwrap().to_owned();
                    let timestamp = request["params"]["timestamp"].as_f64().unwrap();
                    let agent_key = keyed(derive_key("agent", &hostname).as_bytes());
                    let signed =
                        sign(&agent_key, &body) == header("x-oco-agent-signature:").as_bytes();
                    let is_hello = request["method"] == "oco.agent.hello";
                    let fresh = {
                        let mut last = last.lock().unwrap();
                        let previous = last.get(&hostname).copied().unwrap_or(0.0);
                        if is_hello && timestamp > previous {
                            last.insert(hostname.clone(), timestamp);
                        }
                        !is_hello || timestamp > previous
                    };
                    let reply = if !signed || !fresh {
                        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 23\r\n\r\nAgent timestamp too old".to_vec()
                    } else {
                        let now = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let params = if is_hello {
                            "{\"update\":0,\"software-jobs\":[{\"id\":7,\"download\":false},{\"id\":\"8.2\"}]}"
                        } else {
                            "{\"job-succeeded\":false}"
                        };
                        let body = format!(
                            "{{\"id\":1,\"error\":null,\"result\":{{\"success\":true,\"params\":{params},\"timestamp\":{now}.5}}}}"
                        );
                        let server_key = keyed(derive_key("server", &hostname).as_bytes());
                        let signature = sign(&server_key, body.as_bytes());
                        let mut reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-oco-server-signature: {}\r\ncontent-length: {}\r\n\r\n",
                            String::from_utf8_lossy(&signature),
                            body.len()
                        )
                        .into_bytes();
                        reply.extend_from_slice(body.as_bytes());
                        reply
                    };
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    async fn against_fake_server(method: Method, keep_alive: bool) -> Tally {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(fake_server(listener));
        let plan = Arc::new(Plan {
            target: Target::parse(&format!("http://{addr}/api-agent.php")).unwrap(),
            keep_alive,
            base_ticks: epoch_ticks().unwrap(),
        });
        let mut computers: Vec<Computer> = polled_hostnames(SEED_TEST)
            .into_iter()
            .take(3)
            .enumerate()
            .map(|(i, name)| Computer::new((i + 1) * 20, name))
            .collect();
        if method == Method::Report {
            Agent::new(plan.clone(), 0)
                .learn_jobs(&mut computers)
                .await
                .unwrap();
            assert_eq!(computers[0].jobs, ["7", "\"8.2\""]);
        }
        let start = instant_now();
        let window = (start, start + Duration::from_millis(300));
        Agent::new(plan, 1).load(computers, method, window).await
    }

    #[tokio::test]
    async fn hellos_and_reports_pass_the_checks_of_a_server() {
        for (method, keep_alive) in [
            (Method::Hello, false),
            (Method::Hello, true),
            (Method::Report, false),
        ] {
            let tally = against_fake_server(method, keep_alive).await;
            assert!(tally.ok > 10, "{method:?}: {tally:?}");
            assert_eq!(tally.failed() + tally.failures_outside, 0, "{tally:?}");
            assert_eq!(tally.latencies.len() as u64, tally.ok);
        }
    }

    #[tokio::test]
    async fn a_replayed_hello_is_counted_as_a_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(fake_server(listener));
        let plan = Arc::new(Plan {
            target: Target::parse(&format!("http://{addr}/api-agent.php")).unwrap(),
            keep_alive: false,
            base_ticks: epoch_ticks().unwrap(),
        });
        let mut agent = Agent::new(plan, 0);
        let mut computer = Computer::new(20, "lg-00020".into());
        agent.call(&mut computer, Method::Hello).await.unwrap();
        computer.sent -= 1;
        let (failure, message) = agent.call(&mut computer, Method::Hello).await.unwrap_err();
        assert_eq!(failure, Failure::Status(401), "{message}");
    }
}
