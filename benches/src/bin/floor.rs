//! The floor server: only the OCO agent protocol's own work for a hello, no storage, no planner.
//! It is the baseline of the fleet row of `benches/PERFORMANCE.md`: what `oco-server-min` spends
//! per hello beyond it is the cost of its store, its cache and its planner.
//!
//! Per request it does what any server of the protocol must: HTTP/1.1 (axum on hyper, as
//! `oco-server-min`; a new connection per request works, keep-alive too), the body read up to
//! [`BODY_LIMIT`], `Content-Type: application/json` checked, the JSON-RPC envelope parsed
//! (`method`, `params.hostname`, `params.timestamp`; the rest skipped), the agent's clock checked
//! (at most [`MAX_CLOCK_SKEW`] ahead), the `x-oco-agent-signature` HMAC-SHA256 of the exact body
//! verified (constant-time) with the computer's agent key, the timestamp checked against the
//! computer's last hello (strictly increasing), and a reply of `oco-server-min`'s exact shape —
//! `{"id":1,"error":null,"result":{"success":true,"params":{"update":0,"software-jobs":[…]},
//! "timestamp":…}}`, the timestamp strictly increasing per computer (microseconds) — signed in
//! `x-oco-server-signature` with the computer's server key.
//!
//! It knows the computers of the fleet seed (`loadgen seed --fleet`; hostnames `fl-0000001`…,
//! see `oco_benches::fleet`) and nothing else: their keys are derived from their hostnames as
//! the seed derives them (`derive_key`), when a computer first calls, and kept with its last
//! timestamps in a sharded in-memory map (about 150 bytes a computer; a computer is only added
//! once its signature is valid). A deliverable computer's hello hands out 20 job objects of the
//! fields and sizes `oco-server-min` sends for it (the same procedures, in the same order), every
//! other computer's none, so that `loadgen run --fleet` passes all its checks. Other methods are
//! refused with 400: the floor answers hellos only.
//!
//! `floor --listen 127.0.0.1:0` logs `listening on http://ADDR` as `oco-server-min` does, and
//! stops on SIGTERM or SIGINT, exiting 0. Run through `benches/loadgen.sh --fleet`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::Parser;
use hmac::Mac;
use oco_benches::agent::{derive_key, keyed, sign, Result};
use oco_benches::fleet::{fleet_number, install_command, Class, CHUNK, DELIVERABLE_JOBS};
use serde::{Deserialize, Serialize};

/// The largest request body read, as `oco-server-min`'s default `--agent-body-limit`.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How far ahead of the server's clock an agent's timestamp may be, in seconds (as
/// `oco-server-min`'s default `--max-clock-skew`).
const MAX_CLOCK_SKEW: f64 = 600.0;

/// Shards of the computers' map.
const SHARDS: usize = 64;

/// The length of a derived key.
const KEY_LEN: usize = 30;

#[derive(Parser, Debug)]
#[command(about = "The floor server: the OCO agent protocol's own work for a hello, no storage")]
struct Cli {
    /// Where to listen (port 0: any free port, logged).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The agent API's path.
    #[arg(long, default_value = "/api-agent.php")]
    agent_path: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(cli))
}

async fn serve(cli: Cli) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    println!(
        "listening on http://{} (the floor: hellos at {})",
        listener.local_addr()?,
        cli.agent_path
    );
    let app = Router::new()
        .route(&cli.agent_path, post(hello))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Arc::new(Floor::new()));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    println!("stopped");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// State.

/// What the floor keeps of a computer.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Its agent key, then its server key.
    keys: [u8; 2 * KEY_LEN],
    /// The timestamp of its last hello.
    last_hello: f64,
    /// Its last reply's timestamp, in microseconds since the epoch.
    last_reply: u64,
}

/// The computers seen, and the procedures of the deliverable computers' jobs.
struct Floor {
    shards: Vec<Mutex<HashMap<Box<str>, Known>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Package `k`'s install command, for `k` in `0..20`.
    procedures: Vec<String>,
}

impl Floor {
    fn new() -> Floor {
        Floor {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            procedures: (0..DELIVERABLE_JOBS).map(install_command).collect(),
        }
    }

    fn shard(&self, hostname: &str) -> &Mutex<HashMap<Box<str>, Known>> {
        // The remainder is below SHARDS.
        #[allow(clippy::cast_possible_truncation)]
        &self.shards[(self.hasher.hash_one(hostname) % SHARDS as u64) as usize]
    }
}

/// `hostname`'s agent and server keys, as the seed stores them.
fn derived_keys(hostname: &str) -> [u8; 2 * KEY_LEN] {
    let mut keys = [0; 2 * KEY_LEN];
    keys[..KEY_LEN].copy_from_slice(derive_key("agent", hostname).as_bytes());
    keys[KEY_LEN..].copy_from_slice(derive_key("server", hostname).as_bytes());
    keys
}

#[allow(clippy::disallowed_methods)]
/// The wall clock in microseconds since the epoch.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// The wire.

/// The envelope: what the floor reads of a request (the rest is skipped).
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Params<'a>,
}

#[derive(Debug, Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    hostname: Cow<'a, str>,
    timestamp: f64,
}

/// `oco-server-min`'s reply shape.
#[derive(Debug, Serialize)]
struct Reply<'a> {
    id: u8,
    error: Option<()>,
    result: ReplyResult<'a>,
}

#[derive(Debug, Serialize)]
struct ReplyResult<'a> {
    success: bool,
    params: HelloParams<'a>,
    timestamp: f64,
}

#[derive(Debug, Serialize)]
struct HelloParams<'a> {
    update: u8,
    #[serde(rename = "software-jobs")]
    software_jobs: Vec<SoftwareJob<'a>>,
}

/// A job object, with `oco-server-min`'s fields.
#[derive(Debug, Serialize)]
struct SoftwareJob<'a> {
    id: u64,
    #[serde(rename = "container-id")]
    container_id: u64,
    #[serde(rename = "package-id")]
    package_id: u64,
    download: bool,
    procedure: &'a str,
    #[serde(rename = "sequence-mode")]
    sequence_mode: u8,
    restart: Option<u32>,
    shutdown: Option<u32>,
    exit: Option<u32>,
}

/// The jobs a hello of fleet computer `n` hands out: a deliverable computer's 20 in the order
/// the planner hands them out (its containers by priority: the third, the second, the first,
/// the fourth; five packages each), none for the others.
fn jobs_of(n: usize, procedures: &[String]) -> Vec<SoftwareJob<'_>> {
    if Class::of(n) != Class::Deliverable {
        return Vec::new();
    }
    let per = DELIVERABLE_JOBS / 4;
    let chunk = (n / CHUNK) as u64;
    [2, 1, 0, 3]
        .into_iter()
        .flat_map(|container: usize| {
            (container * per..(container + 1) * per).map(move |k| (container, k))
        })
        .map(|(container, k)| SoftwareJob {
            id: (n * DELIVERABLE_JOBS + k) as u64,
            container_id: 4 * chunk + container as u64 + 1,
            package_id: k as u64 + 1,
            download: true,
            procedure: &procedures[k],
            sequence_mode: u8::from(container == 1),
            restart: (k % 9 == 0).then_some(5),
            shutdown: None,
            exit: None,
        })
        .collect()
}

/// A refusal: plain text with its status, as `oco-server-min` sends it.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, message.into()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The 32 bytes of a signature of 64 lower-case hex digits.
fn parse_signature(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// The endpoint.

async fn hello(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes) != Some(b"application/json") {
        return refuse(StatusCode::BAD_REQUEST, "Content type mismatch");
    }
    let Some(signature) = headers
        .get("x-oco-agent-signature")
        .and_then(|value| parse_signature(value.as_bytes()))
    else {
        return refuse(StatusCode::UNAUTHORIZED, "Missing or malformed signature");
    };
    let envelope: Envelope<'_> = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, format!("Invalid request: {error}")),
    };
    let now = now_micros();
    #[allow(clippy::cast_precision_loss)]
    let ahead = envelope.params.timestamp - now as f64 / 1e6;
    if ahead.is_nan() || ahead > MAX_CLOCK_SKEW {
        return refuse(StatusCode::UNAUTHORIZED, "Agent timestamp too far ahead");
    }
    if envelope.method != "oco.agent.hello" {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Unknown method `{}` (the floor answers hellos only)",
                envelope.method
            ),
        );
    }
    let hostname = &*envelope.params.hostname;
    let Some(n) = fleet_number(hostname) else {
        return refuse(StatusCode::UNAUTHORIZED, "Unknown computer");
    };
    let shard = floor.shard(hostname);
    let known = shard
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(hostname)
        .map(|known| known.keys);
    let keys = known.unwrap_or_else(|| derived_keys(hostname));
    let mut mac = keyed(&keys[..KEY_LEN]);
    mac.update(&body);
    if mac.verify_slice(&signature).is_err() {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid signature");
    }
    let reply_micros = {
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(hostname.into()).or_insert(Known {
            keys,
            last_hello: f64::NEG_INFINITY,
            last_reply: 0,
        });
        if envelope.params.timestamp <= entry.last_hello {
            return refuse(StatusCode::UNAUTHORIZED, "Agent timestamp too old");
        }
        entry.last_hello = envelope.params.timestamp;
        entry.last_reply = now.max(entry.last_reply + 1);
        entry.last_reply
    };
    #[allow(clippy::cast_precision_loss)]
    let reply = Reply {
        id: 1,
        error: None,
        result: ReplyResult {
            success: true,
            params: HelloParams {
                update: 0,
                software_jobs: jobs_of(n, &floor.procedures),
            },
            timestamp: reply_micros as f64 / 1e6,
        },
    };
    let body = match serde_json::to_vec(&reply) {
        Ok(body) => body,
        Err(error) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding a reply: {error}"),
            )
        }
    };
    let signature = sign(&keyed(&keys[KEY_LEN..]), &body);
    let mut response = Response::new(axum::body::Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_bytes(&signature) {
        headers.insert("x-oco-server-signature", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse_from_lower_case_hex_only() {
        let hex = sign(&keyed(b"key"), b"body");
        let bytes = parse_signature(&hex).unwrap();
        let mut mac = keyed(b"key");
        mac.update(b"body");
        assert!(mac.verify_slice(&bytes).is_ok());
        assert_eq!(parse_signature(&hex[..63]), None);
        assert_eq!(parse_signature(&hex.to_ascii_uppercase()), None);
        assert_eq!(parse_signature(&[b'g'; 64]), None);
    }

    #[test]
    fn deliverable_computers_get_20_jobs_and_the_others_none() {
        let procedures: Vec<String> = (0..DELIVERABLE_JOBS).map(install_command).collect();
        for n in 1..=80 {
            let jobs = jobs_of(n, &procedures);
            assert_eq!(jobs.len(), Class::of(n).handed_out(), "{n}");
        }
        let jobs = jobs_of(40, &procedures);
        let packages: Vec<u64> = jobs.iter().map(|job| job.package_id).collect();
        assert_eq!(packages[..6], [11, 12, 13, 14, 15, 6]);
        let json = serde_json::to_string(&jobs[0]).unwrap();
        assert!(
            json.starts_with("{\"id\":810,\"container-id\":3,\"package-id\":11,\"download\":true,\"procedure\":\"dropboxx64-4.10.110-setup.exe"),
            "{json}"
        );
        assert!(
            json.ends_with("\"sequence-mode\":0,\"restart\":null,\"shutdown\":null,\"exit\":null}")
        );
    }

    #[test]
    fn keys_are_the_seeds() {
        let keys = derived_keys("fl-0000020");
        assert_eq!(
            &keys[..KEY_LEN],
            derive_key("agent", "fl-0000020").as_bytes()
        );
        assert_eq!(
            &keys[KEY_LEN..],
            derive_key("server", "fl-0000020").as_bytes()
        );
    }
}
