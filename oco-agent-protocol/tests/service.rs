//! The agent protocol's service (`oco_agent_protocol::service::AgentService`) without HTTP: body
//! bytes, signature, address and `now` in; status, body bytes and signature out. On a
//! `MemoryStore` with counting keys, so every exchange gives the same bytes: the test vectors of
//! the protocol reference (§1.2), its example exchange (§2.5), registration, the minimal
//! methods, reply timestamps across two services sharing a store, and lost races.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::net::IpAddr;
use std::sync::Arc;

use oco_agent_protocol::agent::{
    download_body, hello_body, job_state_body, plain_body, HelloData, JobState as AgentJobState,
};
use oco_agent_protocol::cache::CachedStore;
use oco_agent_protocol::keys::CountingKeys;
use oco_agent_protocol::service::{
    AgentService, Body, Exchange, Outcome, PayloadRef, Request, Response, ServiceConfig, Status,
};
use oco_agent_protocol::signature::{sign, verify};
use oco_core::chrono::{DateTime, Duration, TimeZone, Utc};
use oco_core::deploy::{ContainerSettings, DeployRequest};
use oco_core::engine::{Engine, Operation, Progress, Step, Write, Written};
use oco_core::model::{
    Computer, ComputerId, DeliveryPolicy, JobId, JobState, Name, Package, PackageId, Payload,
    Procedure, SequenceMode,
};
use oco_core::store::{MemoryStore, NewComputer, NewPackage, Page, Store, StoreError};
use proptest::prelude::*;
use serde_json::{json, Value};

const GLOBAL_KEY: &str = "initial-agent-key";
const REGISTRATION_KEY: &str = "registration0123456789abcdefgh";

/// The hello of the reference's vector (§1.2), and its signature with [`GLOBAL_KEY`].
const VECTOR_HELLO: &str = r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#;
const VECTOR_SIGNATURE: &str = "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190";

/// The instant `millis` milliseconds after the epoch.
fn at_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).unwrap()
}

/// 2023-11-14 22:13:20.5 UTC: the agent's clock in the vector.
const START_MILLIS: i64 = 1_700_000_000_500;

fn address() -> IpAddr {
    "10.9.8.7".parse().unwrap()
}

fn new_store() -> Arc<CachedStore> {
    Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20))
}

fn service(store: &Arc<CachedStore>, config: ServiceConfig) -> AgentService {
    AgentService::new(
        Engine::new(store.clone()),
        config,
        Arc::new(CountingKeys::new()),
    )
}

fn computer(store: &dyn Store, hostname: &str) -> Computer {
    store
        .create_computer(NewComputer::new(
            Name::hostname("hostname", hostname).unwrap(),
        ))
        .unwrap()
}

/// A package of its own family running `command`, only 0 counting as success, with a payload or
/// not.
fn package(store: &dyn Store, family: &str, command: &str, payload: bool) -> Package {
    let family = store
        .create_family(Name::new("name", family).unwrap())
        .unwrap();
    store
        .create_package(NewPackage {
            payload: payload.then_some(Payload::Unknown),
            ..NewPackage::new(
                family.id,
                Name::new("version", "1.0").unwrap(),
                Procedure::new(command),
            )
        })
        .unwrap()
}

/// Deploys `packages` to `computer` in one container with `mode`, open since a minute before
/// the agent's first request; returns each package's job, in order.
fn deploy(
    service: &AgentService,
    computer: ComputerId,
    packages: &[&Package],
    mode: SequenceMode,
) -> Vec<JobId> {
    let start = at_millis(START_MILLIS) - Duration::minutes(1);
    let policy = DeliveryPolicy::default().with_sequence_mode(mode);
    let settings = ContainerSettings::new(Name::new("name", "roll-out").unwrap(), start, policy);
    let request = DeployRequest::new(settings)
        .with_computers([computer])
        .with_packages(packages.iter().map(|package| package.id));
    let deployed = service.engine().deploy(&request, start).unwrap();
    packages
        .iter()
        .map(|package| {
            deployed
                .jobs
                .iter()
                .find(|job| job.package == package.id)
                .unwrap()
                .id
        })
        .collect()
}

fn request(body: &[u8], signature: &str, now: DateTime<Utc>) -> Request<Vec<u8>> {
    Request {
        body: body.to_vec(),
        signature: signature.to_owned(),
        address: Ok(address()),
        now,
    }
}

/// The JSON body of a 200.
fn json_body(response: &Response) -> (&[u8], Value) {
    assert_eq!(response.status, Status::Ok, "{response:?}");
    let Body::Json(bytes) = &response.body else {
        panic!("a JSON body expected: {response:?}");
    };
    (bytes, serde_json::from_slice(bytes).unwrap())
}

/// The plain-text refusal of a response with `status`.
fn refusal(response: &Response, status: Status) -> &str {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.signature, None);
    match &response.body {
        Body::Text(text) => text,
        other => panic!("a text body expected: {other:?}"),
    }
}

/// `result.timestamp` as the reply writes it.
fn timestamp_text(body: &[u8]) -> &str {
    let text = std::str::from_utf8(body).unwrap();
    let (_, rest) = text.rsplit_once("\"timestamp\":").unwrap();
    rest.split([',', '}']).next().unwrap()
}

/// An agent as the OCO agent 1.2.0 behaves: it signs with the global key until the server gives
/// it one, keeps the first server key it gets and checks every reply's signature with it, and
/// refuses a reply whose timestamp is not above the last it accepted.
struct Agent {
    hostname: String,
    key: String,
    server_key: Option<String>,
    last_reply: f64,
    /// Its clock, in milliseconds.
    millis: i64,
    /// How far the server's clock is from the agent's, in milliseconds.
    server_offset: i64,
}

impl Agent {
    fn new(hostname: &str) -> Agent {
        Agent {
            hostname: hostname.into(),
            key: GLOBAL_KEY.into(),
            server_key: None,
            last_reply: 0.0,
            millis: START_MILLIS,
            server_offset: 750,
        }
    }

    fn timestamp(&self) -> f64 {
        self.millis as f64 / 1000.0
    }

    /// The server's clock at this request.
    fn now(&self) -> DateTime<Utc> {
        at_millis(self.millis + self.server_offset)
    }

    /// Sends `body`, signed with the agent's key: the response as the service gives it.
    fn send(&mut self, service: &AgentService, body: &[u8]) -> Response {
        let response = service.handle(request(body, &sign(&self.key, body), self.now()));
        self.millis += 1000;
        response
    }

    /// Accepts a reply as the agent does: signed with the server key (once it has one), its
    /// timestamp above the last one accepted. Returns `result.params`.
    fn accept(&mut self, response: &Response) -> Value {
        let (bytes, reply) = json_body(response);
        if let Some(key) = &self.server_key {
            let signature = response.signature.as_deref().expect("a signed reply");
            assert!(verify(key, bytes, signature), "signed with {key}");
        }
        let timestamp = reply["result"]["timestamp"].as_f64().unwrap();
        assert!(
            timestamp > self.last_reply,
            "{timestamp} after {}",
            self.last_reply
        );
        self.last_reply = timestamp;
        reply["result"]["params"].clone()
    }

    /// A hello, its keys taken: the jobs handed out.
    fn hello(&mut self, service: &AgentService) -> Vec<Value> {
        let body = hello_body(
            "uid",
            &self.hostname.clone(),
            self.timestamp(),
            &HelloData::minimal(),
        );
        let response = self.send(service, &body);
        let params = self.accept(&response);
        if self.server_key.is_none() {
            self.server_key = params["server-key"].as_str().map(str::to_owned);
        }
        if let Some(key) = params["agent-key"].as_str() {
            self.key = key.to_owned();
        }
        assert_eq!(params["update"], 0);
        params["software-jobs"].as_array().unwrap().clone()
    }

    /// A job's state: the response.
    fn report_response(
        &mut self,
        service: &AgentService,
        job: JobId,
        state: i64,
        return_code: Option<i64>,
        download_progress: Option<i64>,
        message: &str,
    ) -> Response {
        let id = json!(job.0);
        let state = AgentJobState {
            job_id: &id,
            state,
            return_code,
            download_progress,
            message,
        };
        let body = job_state_body("uid", &self.hostname.clone(), self.timestamp(), &state);
        self.send(service, &body)
    }

    /// A job's state, accepted: `job-succeeded`.
    fn report(
        &mut self,
        service: &AgentService,
        job: JobId,
        state: i64,
        return_code: Option<i64>,
        download_progress: Option<i64>,
        message: &str,
    ) -> bool {
        let response =
            self.report_response(service, job, state, return_code, download_progress, message);
        self.accept(&response)["job-succeeded"].as_bool().unwrap()
    }

    fn download(&mut self, service: &AgentService, package: PackageId) -> Response {
        let body = download_body("uid", &self.hostname.clone(), self.timestamp(), package.0);
        self.send(service, &body)
    }

    /// `update`, `events` or `passwords`, accepted: the reply's bytes and params.
    fn minimal(&mut self, service: &AgentService, method: &str) -> (Vec<u8>, Value) {
        let body = plain_body(method, "uid", &self.hostname.clone(), self.timestamp());
        let response = self.send(service, &body);
        let params = self.accept(&response);
        (json_body(&response).0.to_vec(), params)
    }
}

// ---------------------------------------------------------------------------------------------
// §1.2: the test vectors.

#[test]
fn the_hello_vector_is_a_first_contact_of_a_registered_computer() {
    let store = new_store();
    computer(store.as_ref(), "testhost");
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let body = VECTOR_HELLO.as_bytes();
    assert_eq!(sign(GLOBAL_KEY, body), VECTOR_SIGNATURE);
    let now = at_millis(1_700_000_001_250);

    let response = service.handle(request(body, VECTOR_SIGNATURE, now));
    let (bytes, reply) = json_body(&response);
    assert_eq!(
        reply,
        json!({"id": 1, "error": null, "result": {"success": true, "params": {
            "server-key": CountingKeys::nth(2), "agent-key": CountingKeys::nth(1),
            "update": 0, "software-jobs": []
        }, "timestamp": reply["result"]["timestamp"]}})
    );
    // Signed over the exact bytes with the new server key.
    let signature = response.signature.as_deref().unwrap();
    assert!(verify(&CountingKeys::nth(2), bytes, signature));
    assert!(!verify(GLOBAL_KEY, bytes, signature));
    assert_eq!(response.content_type(), "application/json");
    // At least the server's clock, written with six decimals.
    let timestamp = timestamp_text(bytes);
    assert_eq!(timestamp.split_once('.').unwrap().1.len(), 6, "{timestamp}");
    assert!(timestamp.parse::<f64>().unwrap() >= 1_700_000_001.25);
    assert_eq!(response.method, Some("oco.agent.hello"));
    assert_eq!(response.hostname.as_deref(), Some("testhost"));
    assert_eq!(response.registered, None);
    assert_eq!(
        response.outcome,
        Outcome::Hello {
            delivered: 0,
            held: 0,
            cached: false,
            keys_sent: true
        }
    );

    // The same bytes again: a replay.
    let again = service.handle(request(body, VECTOR_SIGNATURE, now + Duration::seconds(1)));
    assert_eq!(
        refusal(&again, Status::Unauthorized),
        "Agent timestamp too old"
    );

    // A later hello, signed wrongly: a digit flipped, or the right digest in upper case.
    let later = VECTOR_HELLO.replace("1700000000.5", "1700000000.75");
    let signature = sign(GLOBAL_KEY, later.as_bytes());
    let mut flipped = signature.clone().into_bytes();
    flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_ne!(signature.to_uppercase(), signature);
    for wrong in [flipped, signature.to_uppercase()] {
        let refused = service.handle(request(later.as_bytes(), &wrong, now));
        assert_eq!(refusal(&refused, Status::Unauthorized), "Invalid signature");
    }
    // The refusals changed nothing: signed rightly, the later hello is answered.
    let answered = service.handle(request(later.as_bytes(), &signature, now));
    assert_eq!(answered.status, Status::Ok);
}

// ---------------------------------------------------------------------------------------------
// §2.5: the example exchange.

#[test]
fn the_example_exchange_hands_out_two_jobs_and_judges_their_reports() {
    let store = new_store();
    let pc = computer(store.as_ref(), "build-vm");
    let install = package(store.as_ref(), "installer", "sh ./install.sh", true);
    let echo = package(store.as_ref(), "echo", "sh -c 'echo hi; exit 3'", false);
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let jobs = deploy(
        &service,
        pc.id,
        &[&install, &echo],
        SequenceMode::IgnoreFailed,
    );
    let mut agent = Agent::new("build-vm");

    let handed_out = agent.hello(&service);
    assert_eq!(agent.key, CountingKeys::nth(1));
    assert_eq!(agent.server_key, Some(CountingKeys::nth(2)));
    assert_eq!(handed_out.len(), 2);
    for ((job, package), download) in handed_out.iter().zip([&install, &echo]).zip([true, false]) {
        let expected = [jobs[0], jobs[1]][usize::from(!download)];
        assert_eq!(job["id"], json!(expected.0));
        assert_eq!(job["package-id"], json!(package.id.0));
        assert_eq!(job["download"], download);
        assert_eq!(job["procedure"], package.install.command.as_str());
        assert_eq!(job["sequence-mode"], 0);
        for action in ["restart", "shutdown", "exit"] {
            assert_eq!(job[action], Value::Null);
        }
    }

    // The first job: downloaded, unpacked, run, with output on the way.
    agent.report(&service, jobs[0], 1, None, Some(0), "");
    let download = agent.download(&service, install.id);
    assert_eq!(download.status, Status::Ok);
    assert_eq!(
        download.body,
        Body::Payload(PayloadRef {
            package: install.id
        })
    );
    assert_eq!(download.content_type(), "application/octet-stream");
    assert_eq!(
        download.outcome,
        Outcome::Download {
            package: install.id
        }
    );
    agent.report(&service, jobs[0], 1, None, Some(101), "");
    agent.report(&service, jobs[0], 2, None, Some(100), "");
    agent.report(&service, jobs[0], 2, None, None, "partial output so far\n");
    assert_eq!(store.job(jobs[0]).unwrap().state, JobState::Executing);
    assert!(agent.report(&service, jobs[0], 3, Some(0), None, "installed ok\n"));
    let done = store.job(jobs[0]).unwrap();
    assert_eq!(
        (done.state, done.return_code),
        (JobState::Succeeded, Some(0))
    );

    // The second: finished with 3, which is not a success code.
    assert!(!agent.report(&service, jobs[1], 3, Some(3), None, "hi\n"));
    let failed = store.job(jobs[1]).unwrap();
    assert_eq!(
        (failed.state, failed.return_code),
        (JobState::Failed, Some(3))
    );

    // Nothing left: nothing handed out, no download.
    assert!(agent.hello(&service).is_empty());
    let refused = agent.download(&service, install.id);
    assert_eq!(
        refusal(&refused, Status::BadRequest),
        format!("No pending job for package {}", install.id)
    );
}

#[test]
fn a_failure_in_an_abort_after_failed_container_fails_the_rest_with_minus_8888() {
    let store = new_store();
    let pc = computer(store.as_ref(), "build-vm");
    let first = package(store.as_ref(), "first", "exit 1", false);
    let second = package(store.as_ref(), "second", "exit 0", false);
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let jobs = deploy(
        &service,
        pc.id,
        &[&first, &second],
        SequenceMode::AbortAfterFailed,
    );
    let mut agent = Agent::new("build-vm");

    let handed_out = agent.hello(&service);
    assert_eq!(handed_out.len(), 2);
    assert!(handed_out.iter().all(|job| job["sequence-mode"] == 1));
    assert!(!agent.report(&service, jobs[0], 3, Some(1), None, ""));

    let aborted = store.job(jobs[1]).unwrap();
    assert_eq!(
        (aborted.state, aborted.return_code),
        (JobState::Failed, Some(-8888))
    );
    assert!(agent.hello(&service).is_empty());
}

#[test]
fn an_agent_error_fails_the_job() {
    let store = new_store();
    let pc = computer(store.as_ref(), "build-vm");
    let app = package(store.as_ref(), "app", "sh ./install.sh", true);
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let jobs = deploy(&service, pc.id, &[&app], SequenceMode::IgnoreFailed);
    let mut agent = Agent::new("build-vm");
    assert_eq!(agent.hello(&service).len(), 1);

    let message = "400 Client Error: Bad Request for url: http://127.0.0.1:18765/api-agent.php";
    assert!(!agent.report(&service, jobs[0], -1, Some(-9999), None, message));
    let failed = store.job(jobs[0]).unwrap();
    assert_eq!(
        (failed.state, failed.return_code),
        (JobState::Failed, Some(-9999))
    );
    assert!(agent.hello(&service).is_empty());
}

#[test]
fn a_download_needs_a_pending_job_of_its_package() {
    let store = new_store();
    let pc = computer(store.as_ref(), "build-vm");
    let deployed = package(store.as_ref(), "deployed", "sh ./install.sh", true);
    let other = package(store.as_ref(), "other", "sh ./install.sh", true);
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    deploy(&service, pc.id, &[&deployed], SequenceMode::IgnoreFailed);
    let mut agent = Agent::new("build-vm");
    agent.hello(&service);

    let payload = agent.download(&service, deployed.id);
    let Body::Payload(reference) = &payload.body else {
        panic!("a payload expected: {payload:?}");
    };
    assert_eq!(reference.package, deployed.id);
    assert_eq!(reference.file_name(), format!("{}.zip", deployed.id.0));
    // What the transport answers when the file is not there.
    let missing = reference.missing();
    assert_eq!(
        refusal(&missing, Status::BadRequest),
        format!("No payload for package {}", deployed.id)
    );

    let refused = agent.download(&service, other.id);
    assert_eq!(
        refusal(&refused, Status::BadRequest),
        format!("No pending job for package {}", other.id)
    );
    assert_eq!(refused.method, Some("oco.agent.download"));
}

// ---------------------------------------------------------------------------------------------
// Registration.

#[test]
fn an_unknown_computer_registers_only_when_registration_is_on() {
    let store = new_store();
    let off = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let body = hello_body("uid", "newhost", 1_700_000_000.5, &HelloData::minimal());
    let now = at_millis(START_MILLIS + 750);
    for key in [GLOBAL_KEY, REGISTRATION_KEY] {
        let refused = off.handle(request(&body, &sign(key, &body), now));
        assert_eq!(
            refusal(&refused, Status::Unauthorized),
            "Client self-registration is disabled"
        );
    }
    assert_eq!(store.computer_by_hostname("newhost").unwrap(), None);

    let on = service(
        &store,
        ServiceConfig::new(GLOBAL_KEY).with_registration(REGISTRATION_KEY),
    );
    // With registration on, the registration key is what registers; the global key does not.
    let refused = on.handle(request(&body, &sign(GLOBAL_KEY, &body), now));
    assert_eq!(refusal(&refused, Status::Unauthorized), "Invalid signature");
    assert_eq!(store.computer_by_hostname("newhost").unwrap(), None);

    let response = on.handle(request(&body, &sign(REGISTRATION_KEY, &body), now));
    let (bytes, reply) = json_body(&response);
    let registered = store.computer_by_hostname("newhost").unwrap().unwrap();
    assert_eq!(response.registered, Some(registered.id));
    let params = &reply["result"]["params"];
    assert_eq!(params["agent-key"], CountingKeys::nth(1));
    assert_eq!(params["server-key"], CountingKeys::nth(2));
    assert_eq!(params["software-jobs"], json!([]));
    let signature = response.signature.as_deref().unwrap();
    assert!(verify(&CountingKeys::nth(2), bytes, signature));
    let stored = store.credentials(registered.id).unwrap();
    assert_eq!(stored.agent_key, Some(CountingKeys::nth(1)));
    assert_eq!(stored.last_hello, Some(1_700_000_000.5));
}

#[test]
fn two_racing_registrations_make_one_computer() {
    let store = new_store();
    let service = service(
        &store,
        ServiceConfig::new(GLOBAL_KEY).with_registration(REGISTRATION_KEY),
    );
    let hello = |timestamp: f64| {
        let body = hello_body("uid", "newhost", timestamp, &HelloData::minimal());
        let signature = sign(REGISTRATION_KEY, &body);
        service.exchange(request(&body, &signature, at_millis(START_MILLIS + 750)))
    };
    let (mut first, mut second) = (hello(1_700_000_000.5), hello(1_700_000_000.75));
    // Both find no computer and ask to create it; the first creation wins.
    let registration = |exchange: &mut Exchange<Vec<u8>>| match exchange.resume(store.as_ref()) {
        Step::Write(Write::CreateComputer(computer)) => computer,
        other => panic!("a registration expected: {other:?}"),
    };
    let (one, other) = (registration(&mut first), registration(&mut second));
    let created = Written::Created(store.create_computer(one));
    let duplicate = Written::Created(store.create_computer(other));
    assert!(matches!(
        duplicate,
        Written::Created(Err(StoreError::Duplicate { .. }))
    ));
    assert!(matches!(first.written(created), Progress::Resume));
    assert!(matches!(second.written(duplicate), Progress::Resume));
    // Both go on as the hello of the computer registered.
    let first = finish(store.as_ref(), first);
    let second = finish(store.as_ref(), second);
    let registered = store.computer_by_hostname("newhost").unwrap().unwrap();
    assert_eq!(store.list_computers(Page::first(10)).unwrap().len(), 1);
    for response in [&first, &second] {
        assert_eq!(response.status, Status::Ok, "{response:?}");
        assert_eq!(response.registered, Some(registered.id));
    }
}

/// Runs an exchange on to its end on `store`.
fn finish(store: &dyn Store, exchange: Exchange<Vec<u8>>) -> Response {
    oco_core::engine::run(store, exchange)
}

// ---------------------------------------------------------------------------------------------
// The minimal methods.

#[test]
fn update_events_and_passwords_get_empty_params_and_later_timestamps() {
    let store = new_store();
    computer(store.as_ref(), "pc1");
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let mut agent = Agent::new("pc1");
    agent.hello(&service);
    let mut last = agent.last_reply;
    for method in [
        "oco.agent.update",
        "oco.agent.events",
        "oco.agent.passwords",
    ]
    .repeat(2)
    {
        let (bytes, params) = agent.minimal(&service, method);
        assert_eq!(params, json!({}), "{method}");
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("update-passwords"), "{text}");
        // `Agent::accept` checked it against the last one.
        assert!(agent.last_reply > last);
        last = agent.last_reply;
    }

    // Another computer's agent, not known: refused.
    let mut stranger = Agent::new("pc2");
    let body = plain_body("oco.agent.update", "uid", "pc2", stranger.timestamp());
    let refused = stranger.send(&service, &body);
    assert_eq!(refusal(&refused, Status::Unauthorized), "Unknown computer");
}

// ---------------------------------------------------------------------------------------------
// Reply timestamps across two services sharing one store.

/// One request of the agent, answered by one of two services.
#[derive(Debug, Clone)]
enum Call {
    Hello,
    /// `update`, `events` or `passwords`.
    Minimal(usize),
    /// A progress report of the agent's job.
    Report,
    /// The service is replaced by a new one over the same store (a restart: it remembers no
    /// reply).
    Restart,
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        2 => Just(Call::Hello),
        2 => (0..3usize).prop_map(Call::Minimal),
        3 => Just(Call::Report),
        1 => Just(Call::Restart),
    ]
}

proptest! {
    /// For every interleaving of one agent's hellos, minimal requests and reports between two
    /// services over one store ("two processes"), whose clocks differ and may step back, the
    /// reply timestamps the agent sees strictly increase.
    #[test]
    fn reply_timestamps_increase_across_two_services(
        calls in prop::collection::vec(
            (0..2usize, call(), 1..2_000i64, -1_500..1_500i64),
            1..40,
        ),
        skew in -3_000..3_000i64,
    ) {
        let store = new_store();
        timestamps_increase([store.clone(), store], &calls, skew)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same with two processes on one PostgreSQL database, each with its own store and hello
    /// cache (skipped, saying so, without `OCO_TEST_POSTGRES`).
    #[test]
    fn reply_timestamps_increase_across_two_processes_on_postgres(
        calls in prop::collection::vec(
            (0..2usize, call(), 1..2_000i64, -1_500..1_500i64),
            1..30,
        ),
        skew in -1_000..1_000i64,
    ) {
        let test = "reply_timestamps_increase_across_two_processes_on_postgres";
        let Some((stores, schema)) = postgres::two_processes(test) else {
            return Ok(());
        };
        let result = timestamps_increase(stores, &calls, skew);
        drop(schema);
        result?;
    }
}

/// Plays `calls` of one agent against two services on `stores` (the second's clock `skew` ms off
/// the first's), failing if a reply timestamp does not increase.
fn timestamps_increase(
    stores: [Arc<CachedStore>; 2],
    calls: &[(usize, Call, i64, i64)],
    skew: i64,
) -> Result<(), TestCaseError> {
    let pc = computer(stores[0].as_ref(), "pc1");
    let app = package(stores[0].as_ref(), "app", "sh ./install.sh", false);
    let config = ServiceConfig::new(GLOBAL_KEY);
    let mut services = [
        service(&stores[0], config.clone()),
        service(&stores[1], config.clone()),
    ];
    let jobs = deploy(&services[0], pc.id, &[&app], SequenceMode::IgnoreFailed);
    let mut agent = Agent::new("pc1");
    // The first contact, on the first service.
    prop_assert_eq!(agent.hello(&services[0]).len(), 1);
    let mut report = 0;
    for (process, call, advance, jitter) in calls.iter().cloned() {
        agent.millis += advance;
        // The second service's clock is `skew` off the first's; each request's clock is off
        // by a jitter too, so a service's clock may step back.
        agent.server_offset = jitter + if process == 1 { skew } else { 0 };
        let service = &services[process];
        match call {
            Call::Hello => {
                agent.hello(service);
            }
            Call::Minimal(method) => {
                let methods = [
                    "oco.agent.update",
                    "oco.agent.events",
                    "oco.agent.passwords",
                ];
                agent.minimal(service, methods[method]);
            }
            Call::Report => {
                report += 1;
                let message = format!("output {report}\n");
                agent.report(service, jobs[0], 2, None, None, &message);
            }
            Call::Restart => {
                services[process] = self::service(&stores[process], config.clone());
            }
        }
    }
    Ok(())
}

/// Two "processes" on the PostgreSQL database of `OCO_TEST_POSTGRES`: each a store of its own
/// on one fresh schema, in a hello cache that knows other processes write.
mod postgres {
    use std::sync::Arc;

    use oco_agent_protocol::cache::CachedStore;
    use oco_store_postgres::testing::{env_or_skip, TestSchema};
    use oco_store_postgres::{Options, PgStore};

    pub(super) fn two_processes(test: &str) -> Option<([Arc<CachedStore>; 2], TestSchema)> {
        let url = env_or_skip(test, &["OCO_TEST_POSTGRES"])?.remove(0);
        let schema = TestSchema::create(&url).unwrap();
        let options = Options {
            schema: Some(schema.name().to_owned()),
            max_connections: 2,
            ..Options::default()
        };
        let open = || {
            let store = PgStore::connect_with(&url, &options).unwrap();
            Arc::new(CachedStore::shared(Arc::new(store), 1 << 20))
        };
        let stores = [open(), open()];
        Some((stores, schema))
    }
}

// ---------------------------------------------------------------------------------------------
// An exchange driven step by step.

/// Drives `exchange` on `store`, answering its first `conflicts` writes with a lost race instead
/// of performing them: the response, and the writes performed.
fn drive_losing(
    store: &dyn Store,
    mut exchange: Exchange<Vec<u8>>,
    mut conflicts: usize,
) -> (Response, usize) {
    let mut performed = 0;
    loop {
        let write = match exchange.resume(store) {
            Step::Done(response) => return (response, performed),
            Step::Write(write) => write,
        };
        let written = if conflicts > 0 {
            conflicts -= 1;
            Written::Applied(Err(StoreError::Conflict {
                what: "a concurrent request won".into(),
            }))
        } else {
            performed += 1;
            match write {
                Write::Apply(set) => Written::Applied(store.apply(&set)),
                Write::CreateComputer(computer) => {
                    Written::Created(store.create_computer(computer))
                }
            }
        };
        if let Progress::Done(response) = exchange.written(written) {
            return (response, performed);
        }
    }
}

#[test]
fn a_hello_that_loses_a_race_is_decided_again_and_written_once() {
    let store = new_store();
    let pc = computer(store.as_ref(), "testhost");
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let now = at_millis(1_700_000_001_250);

    let mut exchange = service.exchange(request(VECTOR_HELLO.as_bytes(), VECTOR_SIGNATURE, now));
    let Step::Write(Write::Apply(_lost)) = exchange.resume(store.as_ref()) else {
        panic!("a hello writes");
    };
    let conflict = Written::Applied(Err(StoreError::Conflict {
        what: "credentials".into(),
    }));
    assert!(matches!(exchange.written(conflict), Progress::Resume));
    // Nothing was written by the lost attempt.
    assert_eq!(store.credentials(pc.id).unwrap().last_hello, None);
    let (response, writes) = drive_losing(store.as_ref(), exchange, 0);
    assert_eq!(writes, 1);

    let (bytes, reply) = json_body(&response);
    let params = &reply["result"]["params"];
    let stored = store.credentials(pc.id).unwrap();
    // The keys sent are the keys stored: those of the attempt that was written.
    assert_eq!(params["agent-key"].as_str(), stored.agent_key.as_deref());
    assert_eq!(params["server-key"].as_str(), stored.server_key.as_deref());
    assert!(verify(
        stored.server_key.as_deref().unwrap(),
        bytes,
        response.signature.as_deref().unwrap()
    ));
    assert_eq!(stored.last_hello, Some(1_700_000_000.5));
    // The reservation covers the reply.
    let timestamp = reply["result"]["timestamp"].as_f64().unwrap();
    assert!(stored.last_reply.unwrap() >= timestamp);
}

#[test]
fn a_report_that_loses_a_race_is_decided_again_and_written_once() {
    let store = new_store();
    let pc = computer(store.as_ref(), "build-vm");
    let app = package(store.as_ref(), "app", "exit 0", false);
    let service = service(&store, ServiceConfig::new(GLOBAL_KEY));
    let jobs = deploy(&service, pc.id, &[&app], SequenceMode::IgnoreFailed);
    let mut agent = Agent::new("build-vm");
    agent.hello(&service);

    let id = json!(jobs[0].0);
    let state = AgentJobState {
        job_id: &id,
        state: 3,
        return_code: Some(0),
        download_progress: None,
        message: "done\n",
    };
    let body = job_state_body("uid", "build-vm", agent.timestamp(), &state);
    let exchange = service.exchange(request(&body, &sign(&agent.key, &body), agent.now()));
    let (response, writes) = drive_losing(store.as_ref(), exchange, 2);
    assert_eq!(writes, 1);
    assert_eq!(agent.accept(&response)["job-succeeded"], true);
    let job = store.job(jobs[0]).unwrap();
    assert_eq!((job.state, job.return_code), (JobState::Succeeded, Some(0)));
}
