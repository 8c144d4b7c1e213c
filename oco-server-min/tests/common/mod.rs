//! Shared by the agent API tests: a server on a store with a fixed clock, seed helpers, and a test
//! agent that behaves like the OCO agent 1.2.0 (in-process through the router, or over a real
//! socket with a new connection per request).

// Each test crate uses a different part of this module, and `pub` here means "for the test
// crates".
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::Router;
use http_body_util::BodyExt;
use oco_core::chrono::{DateTime, Utc};
use oco_core::chrono_tz::Tz;
use oco_core::model::{
    Computer, ComputerId, ContainerId, DeliveryPolicy, DeploymentRule, FamilyId, JobContainer,
    JobId, Name, Origin, Package, PackageId, PostAction, Procedure, Schedule, SequenceMode,
    WolSettings,
};
use oco_core::store::{testkit, Change, ChangeSet, NewPackage, NewRule, Store};
use oco_core::Settings;
use oco_server_min::agent_api::client::{self, HttpResponse};
use oco_server_min::clock::FixedClock;
use oco_server_min::{AppState, Secrets, ServerOptions};
use serde_json::Value;
use tower::ServiceExt;

pub const GLOBAL_KEY: &str = "global-agent-key-for-tests";
pub const REGISTRATION_KEY: &str = "registration-key-for-tests";
pub const PATH: &str = "/api-agent.php";

/// The server's time in the tests: 100 s after `testkit::at(0)`.
pub fn now() -> DateTime<Utc> {
    testkit::at(100)
}

/// A server over `store` with a fixed clock and a payload directory of its own.
pub struct Server {
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub payloads: tempfile::TempDir,
}

impl Server {
    pub fn new(store: Arc<dyn Store>) -> Server {
        Server::with_options(store, |_| {})
    }

    pub fn with_options(store: Arc<dyn Store>, adjust: impl FnOnce(&mut ServerOptions)) -> Server {
        let payloads = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(now()));
        let mut options = ServerOptions {
            payload_dir: payloads.path().to_path_buf(),
            ..ServerOptions::default()
        };
        adjust(&mut options);
        let secrets = Secrets {
            admin_token: "admin".into(),
            agent_key: GLOBAL_KEY.into(),
            registration_key: Some(REGISTRATION_KEY.into()),
        };
        let state = AppState::new(
            store.clone(),
            clock.clone(),
            Settings::default(),
            options,
            secrets,
        )
        .unwrap();
        Server {
            state,
            store,
            clock,
            payloads,
        }
    }

    /// The router as agents on `peer` reach it.
    pub fn router(&self, peer: SocketAddr) -> Router {
        oco_server_min::app(self.state.clone()).layer(MockConnectInfo(peer))
    }

    /// The router as an agent on 127.0.0.1 reaches it.
    pub fn target(&self) -> Target {
        Target::Router(self.router(loopback()))
    }

    /// Serves on a real socket on 127.0.0.1; the task ends with the test's runtime.
    pub async fn serve(&self) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = oco_server_min::app(self.state.clone());
        tokio::spawn(oco_server_min::connections::serve(
            listener,
            app,
            oco_server_min::connections::ConnectionOptions::default(),
            std::future::pending(),
        ));
        Target::Socket(addr)
    }

    /// An admin API request (`path` under `/api/v1`) with the admin token and no body: the
    /// status and the JSON reply (`Null` when there is none).
    pub async fn admin(&self, method: &str, path: &str) -> (u16, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", "Bearer admin")
            .body(Body::empty())
            .unwrap();
        self.admin_request(request).await
    }

    /// [`Server::admin`] with a JSON body.
    pub async fn admin_json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", "Bearer admin")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.admin_request(request).await
    }

    async fn admin_request(&self, request: axum::http::Request<Body>) -> (u16, Value) {
        let response = self.router(loopback()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let reply = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, reply)
    }

    /// Writes `bytes` as the payload of `package`.
    pub fn put_payload(&self, package: PackageId, bytes: &[u8]) {
        std::fs::write(self.state.payload_path(package), bytes).unwrap();
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Seeding through the store.

pub fn computer(store: &dyn Store, hostname: &str) -> Computer {
    store
        .create_computer(testkit::new_computer(hostname))
        .unwrap()
}

/// A package running `command`, whose only success code is 0, without payload or post action.
pub fn plain_package(store: &dyn Store, family: &str, command: &str) -> Package {
    package(store, family, command, "0", false, PostAction::None)
}

/// A package whose install procedure is `command` with success codes `codes`.
pub fn package(
    store: &dyn Store,
    family: &str,
    command: &str,
    codes: &str,
    has_payload: bool,
    post_action: PostAction,
) -> Package {
    let family: FamilyId = match store.create_family(testkit::name(family)) {
        Ok(family) => family.id,
        Err(_) => {
            store
                .list_families(oco_core::store::Page::first(1000))
                .unwrap()
                .into_iter()
                .find(|f| f.name.as_str() == family)
                .unwrap()
                .id
        }
    };
    store
        .create_package(NewPackage {
            payload: has_payload.then_some(oco_core::model::Payload::Unknown),
            ..NewPackage::new(
                family,
                Name::new("version", "1.0").unwrap(),
                Procedure::new(command)
                    .with_success_codes(codes.parse().unwrap())
                    .with_post_action(post_action),
            )
        })
        .unwrap()
}

/// A policy without constraints.
pub fn policy(mode: SequenceMode) -> DeliveryPolicy {
    DeliveryPolicy::new(Tz::UTC).with_sequence_mode(mode)
}

/// A started, enabled container with `policy` and one job per (computer, package), sequences in
/// order.
pub fn container(
    store: &dyn Store,
    title: &str,
    policy: DeliveryPolicy,
    jobs: &[(ComputerId, &Package)],
) -> (ContainerId, Vec<JobId>) {
    let container = JobContainer {
        id: ContainerId(0),
        name: testkit::name(title),
        notes: String::new(),
        enabled: true,
        schedule: Schedule::new(testkit::at(0), None).unwrap(),
        policy,
        wol: WolSettings::default(),
        self_service: false,
        created_at: testkit::at(-60),
    };
    let jobs = jobs
        .iter()
        .zip(1..)
        .map(|((computer, package), sequence)| {
            testkit::job(
                Origin::Container(ContainerId(0)),
                *computer,
                package,
                sequence,
            )
        })
        .collect();
    let applied = store
        .apply(&ChangeSet {
            changes: vec![Change::CreateContainer { container, jobs }],
        })
        .unwrap();
    (applied.containers[0], applied.jobs)
}

/// An enabled rule without constraints installing `packages` (a package group "base", in
/// order) on `computers` (a computer group "all").
pub fn rule(store: &dyn Store, computers: &[ComputerId], packages: &[PackageId]) -> DeploymentRule {
    let computer_group = store
        .create_computer_group(testkit::name("all"), None)
        .unwrap();
    store
        .set_computer_group_members(computer_group.id, computers)
        .unwrap();
    let package_group = store
        .create_package_group(testkit::name("base"), None)
        .unwrap();
    store
        .set_package_group_members(package_group.id, packages)
        .unwrap();
    store
        .create_rule(
            NewRule::new(
                testkit::name("base"),
                computer_group.id,
                package_group.id,
                testkit::at(-10),
            )
            .with_policy(policy(SequenceMode::IgnoreFailed)),
        )
        .unwrap()
}

/// A zip archive holding one stored file (what `ZipFile.extractall` accepts).
pub fn zip(name: &str, content: &[u8]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let crc = crc32(content);
    let size = u32::try_from(content.len()).unwrap();
    let name_len = u16::try_from(name.len()).unwrap();
    let mut out = Vec::new();
    let header = |out: &mut Vec<u8>, central: bool| {
        if central {
            out.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 0]);
        } else {
            out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
        }
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        if central {
            // Comment length, disk, internal and external attributes, local header offset 0.
            out.extend_from_slice(&[0; 14]);
        }
    };
    header(&mut out, false);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(content);
    let central_start = u32::try_from(out.len()).unwrap();
    header(&mut out, true);
    out.extend_from_slice(name.as_bytes());
    let central_size = u32::try_from(out.len()).unwrap() - central_start;
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_start.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

// ---------------------------------------------------------------------------------------------
// Sending requests.

/// Where requests go: the router in-process, or a socket.
#[derive(Clone)]
pub enum Target {
    Router(Router),
    Socket(SocketAddr),
}

impl Target {
    /// Sends `body` with `verb`, content type and signature header as given.
    pub async fn send_raw(
        &self,
        verb: &str,
        content_type: &str,
        signature: &str,
        body: Vec<u8>,
    ) -> HttpResponse {
        match self {
            Target::Socket(addr) => {
                let request =
                    client::raw_request(verb, "127.0.0.1", PATH, content_type, signature, &body);
                client::exchange(*addr, &request).await.unwrap()
            }
            Target::Router(router) => {
                let request = axum::http::Request::builder()
                    .method(verb)
                    .uri(PATH)
                    .header("content-type", content_type)
                    .header(client::AGENT_SIGNATURE, signature)
                    .body(Body::from(body))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                HttpResponse {
                    status,
                    headers,
                    body: body.to_vec(),
                }
            }
        }
    }

    /// Sends `body` signed with `key`, as the agent does.
    pub async fn send(&self, verb: &str, body: Vec<u8>, key: &str) -> HttpResponse {
        let signature = client::sign(key, &body);
        self.send_raw(verb, "application/json", &signature, body)
            .await
    }
}

/// What can go wrong for the agent, as the agent sees it.
#[derive(Debug, PartialEq)]
pub enum AgentError {
    /// An HTTP error with its plain-text body.
    Status(u16, String),
    /// `Invalid server signature` / `Missing server signature`.
    Signature,
    /// `No timestamp in server response` or one not greater than the last.
    Timestamp,
}

/// One job of a hello reply, as the agent reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct WireJob(pub Value);

impl WireJob {
    pub fn id(&self) -> &Value {
        &self.0["id"]
    }
    pub fn container(&self) -> &Value {
        &self.0["container-id"]
    }
    pub fn package(&self) -> i64 {
        self.0["package-id"].as_i64().unwrap()
    }
    pub fn procedure(&self) -> &str {
        self.0["procedure"].as_str().unwrap()
    }
}

/// A Rust agent that behaves like the OCO agent 1.2.0.
pub struct TestAgent {
    pub target: Target,
    pub hostname: String,
    pub uid: String,
    /// The key it signs with (the global key until the server gives it one).
    pub agent_key: String,
    /// The server key it checks replies with, once it has one.
    pub server_key: Option<String>,
    /// The last server timestamp accepted (kept on disk by the real agent).
    pub last_server_timestamp: f64,
    /// Its own clock, for request timestamps.
    pub clock: f64,
}

/// What one agent cycle did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Reported (job id, state, return code) and got `job-succeeded`.
    Reported(Value, i64, Option<i64>, bool),
    /// Skipped a job because its container is on the ignore list.
    Skipped(Value),
}

impl TestAgent {
    pub fn new(target: Target, hostname: &str) -> TestAgent {
        TestAgent {
            target,
            hostname: hostname.into(),
            uid: format!("uid-of-{hostname}"),
            agent_key: GLOBAL_KEY.into(),
            server_key: None,
            last_server_timestamp: 0.0,
            // An hour behind the servers' fixed clock: thousands of requests stay behind it.
            clock: (now().timestamp() - 3_600) as f64,
        }
    }

    /// The next request timestamp (`round(time.time(), 4)`).
    pub fn tick(&mut self) -> f64 {
        self.clock += 0.5;
        self.clock
    }

    pub fn hello_body(&mut self) -> Vec<u8> {
        let timestamp = self.tick();
        client::hello_body(
            &self.uid,
            &self.hostname,
            timestamp,
            &client::HelloData::minimal(),
        )
    }

    /// Checks a JSON reply as the agent does and returns its `result`.
    pub fn accept(&mut self, response: &HttpResponse) -> Result<Value, AgentError> {
        if response.status != 200 {
            return Err(AgentError::Status(
                response.status,
                String::from_utf8_lossy(&response.body).into_owned(),
            ));
        }
        if let Some(key) = &self.server_key {
            if !response.signed_with(key) {
                return Err(AgentError::Signature);
            }
        }
        assert_eq!(response.header("content-type"), Some("application/json"));
        let reply: Value = serde_json::from_slice(&response.body).unwrap();
        let timestamp = reply["result"]["timestamp"]
            .as_f64()
            .ok_or(AgentError::Timestamp)?;
        if timestamp <= self.last_server_timestamp {
            return Err(AgentError::Timestamp);
        }
        self.last_server_timestamp = timestamp;
        Ok(reply["result"].clone())
    }

    /// Takes the keys of a hello reply as the agent does: the server key only if it has none,
    /// the agent key whenever it is not null.
    pub fn take_keys(&mut self, params: &Value) {
        if self.server_key.is_none() {
            if let Some(key) = params.get("server-key") {
                assert!(!key.is_null(), "a null server key corrupts a new agent");
                self.server_key = Some(key.as_str().unwrap().to_owned());
            }
        }
        if let Some(key) = params.get("agent-key").and_then(Value::as_str) {
            self.agent_key = key.to_owned();
        }
    }

    /// `oco.agent.hello`: the jobs handed out.
    pub async fn hello(&mut self) -> Result<Vec<WireJob>, AgentError> {
        let body = self.hello_body();
        let response = self.target.send("POST", body, &self.agent_key).await;
        let result = self.accept(&response)?;
        let params = &result["params"];
        self.take_keys(params);
        assert_eq!(params["update"], 0);
        assert!(params.get("update-passwords").is_none());
        assert!(params.get("events").is_none());
        Ok(params["software-jobs"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(WireJob)
            .collect())
    }

    pub fn report_body(
        &mut self,
        job: &Value,
        state: i64,
        return_code: Option<i64>,
        progress: Option<i64>,
        message: &str,
    ) -> Vec<u8> {
        let timestamp = self.tick();
        client::job_state_body(
            &self.uid,
            &self.hostname,
            timestamp,
            &client::JobState {
                job_id: job,
                state,
                return_code,
                download_progress: progress,
                message,
            },
        )
    }

    /// `oco.agent.update_job_state`: `job-succeeded`.
    pub async fn report(
        &mut self,
        job: &Value,
        state: i64,
        return_code: Option<i64>,
        progress: Option<i64>,
        message: &str,
    ) -> Result<bool, AgentError> {
        let body = self.report_body(job, state, return_code, progress, message);
        let response = self.target.send("POST", body, &self.agent_key).await;
        let result = self.accept(&response)?;
        let params = result["params"].as_object().expect("params is an object");
        Ok(params["job-succeeded"].as_bool().unwrap())
    }

    /// `oco.agent.download` (a GET with a body): the payload. Not signed, no timestamp.
    pub async fn download(&mut self, package: i64) -> Result<Vec<u8>, AgentError> {
        let timestamp = self.tick();
        let body = client::download_body(&self.uid, &self.hostname, timestamp, package);
        let response = self.target.send("GET", body, &self.agent_key).await;
        if response.status != 200 {
            return Err(AgentError::Status(
                response.status,
                String::from_utf8_lossy(&response.body).into_owned(),
            ));
        }
        assert_eq!(
            response.header("content-length"),
            Some(response.body.len().to_string().as_str())
        );
        Ok(response.body)
    }

    /// One agent cycle: hello, then each job in order as the agent runs it. A procedure
    /// `exit N` "returns" N; a download that fails, or is not a zip, is a -9999 report; in
    /// sequence mode a job that did not succeed puts its container on the ignore list.
    pub async fn cycle(&mut self) -> Result<Vec<Event>, AgentError> {
        let jobs = self.hello().await?;
        let mut events = Vec::new();
        let mut ignored: Vec<Value> = Vec::new();
        for job in jobs {
            if ignored.contains(job.container()) {
                events.push(Event::Skipped(job.id().clone()));
                continue;
            }
            let id = job.id().clone();
            let (state, code, output) = match self.run(&job).await {
                Ok(code) => (3, Some(code), format!("ran {}\n", job.procedure())),
                Err(message) => (-1, Some(-9999), message),
            };
            let succeeded = self.report(&id, state, code, None, &output).await?;
            events.push(Event::Reported(id, state, code, succeeded));
            if job.0["sequence-mode"] == 1 && !succeeded {
                ignored.push(job.container().clone());
            }
        }
        Ok(events)
    }

    /// Downloads (with progress reports) and "executes" a job; the return code, or the message
    /// of the exception the real agent would raise.
    async fn run(&mut self, job: &WireJob) -> Result<i64, String> {
        let id = job.id().clone();
        if job.0["download"] == true {
            self.report(&id, 1, None, Some(0), "")
                .await
                .map_err(|e| format!("{e:?}"))?;
            let payload = match self.download(job.package()).await {
                Ok(payload) => payload,
                Err(AgentError::Status(code, _)) => {
                    return Err(format!("{code} Client Error: for url: {PATH}"))
                }
                Err(other) => return Err(format!("{other:?}")),
            };
            if !payload.starts_with(b"PK") {
                return Err("File is not a zip file".into());
            }
            self.report(&id, 1, None, Some(101), "")
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        self.report(&id, 2, None, Some(100), "")
            .await
            .map_err(|e| format!("{e:?}"))?;
        let code = job
            .procedure()
            .strip_prefix("exit ")
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Ok(code)
    }
}
