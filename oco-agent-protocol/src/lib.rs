//! `oco-agent-protocol`: the server side of the OCO agent 1.2.0 wire protocol, without HTTP,
//! async or I/O.
//!
//! It sits beside [`oco_core`] the way quinn-proto sits beside quinn: the protocol's rules, its
//! bytes and its hello cache, for any driver to move over any transport. It reads no clock (`now`
//! is an argument), opens no socket or file, and reads no random source unless asked to (the
//! feature `os-random` adds [`keys`]`::OsKeys`).
//!
//! - [`signature`]: the HMAC-SHA256 signatures of request and reply bodies.
//! - [`keys`]: where agent and server keys come from ([`keys::KeySource`]), and the
//!   trust-on-first-use decision of a hello ([`keys::decide_hello`]).
//! - [`timestamp`]: reply timestamps that strictly increase for each agent.
//! - [`wire`]: the JSON the agent sends and the server replies, as types.
//! - [`cache`]: the hello cache, a [`Store`](oco_core::store::Store) decorator that keeps what
//!   each polling computer's hello hands out, in its wire form.
//! - [`agent`]: the agent's side, request bodies byte for byte as the real agent writes them.
//! - [`service`]: [`AgentService`](service::AgentService), the whole server side: one request's
//!   body, signature header, address and time in, its status, body and signature header out.
//!
//! A transport moves bytes between its connections and the service. The server's HTTP endpoint
//! (`oco-server-min`, on axum) is one; `examples/examples/agent_over_std_net.rs` in the
//! workspace is another, on `std::net` with a thread per connection and no async runtime
//! (`cargo run -p oco-examples --example agent_over_std_net`).
//!
//! # Examples
//!
//! A hello as the agent signs it, verified the way the server does, and the timestamp of its
//! reply (the test vectors of the protocol reference, §1.2):
//!
//! ```
//! use oco_agent_protocol::agent::{hello_body, HelloData};
//! use oco_agent_protocol::signature::{sign, verify};
//! use oco_agent_protocol::timestamp::next_reply;
//! use oco_agent_protocol::wire::Head;
//! use oco_core::chrono::{TimeZone, Utc};
//!
//! let body = hello_body("test-uid", "testhost", 1700000000.5, &HelloData::minimal());
//! let signature = sign("initial-agent-key", &body);
//! assert_eq!(signature, "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190");
//!
//! // The server's side: the signature over the exact bytes, then what the request says.
//! assert!(verify("initial-agent-key", &body, &signature));
//! assert!(!verify("another-key", &body, &signature));
//! let head: Head<'_> = serde_json::from_slice(&body)?;
//! assert_eq!((head.method.as_ref(), head.params.hostname.as_ref()), ("oco.agent.hello", "testhost"));
//!
//! // The reply's timestamp: the server's clock, above the last reply, with six decimals.
//! let now = Utc.timestamp_opt(1_700_000_001, 250_000_000).unwrap();
//! let issued = next_reply(now, None);
//! assert_eq!(issued, 1_700_000_001.250_001);
//! assert!(next_reply(now, Some(issued)) > issued);
//!
//! // The reply of the reference, signed with the computer's server key.
//! let reply = br#"{"id": 1, "error": null, "result": {"success": true, "params": {"update": 0, "software-jobs": []}, "timestamp": 1700000001.25}}"#;
//! assert_eq!(
//!     sign("serverkey0123456789abcdefghijkl", reply),
//!     "b47f21d9c67663f6f52f2abd2290a888eb7e767c57e2695913ec36c7d59dc249"
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! One hello and one report answered by [`AgentService::handle`](service::AgentService::handle)
//! on an in-memory store: the agent gets its job, runs it, and hears that it succeeded, each
//! reply signed with the server key the hello gave it.
//!
//! ```
//! use std::sync::Arc;
//!
//! use oco_agent_protocol::agent::{hello_body, job_state_body, HelloData, JobState};
//! use oco_agent_protocol::cache::CachedStore;
//! use oco_agent_protocol::keys::CountingKeys;
//! use oco_agent_protocol::service::{AgentService, Body, Request, ServiceConfig, Status};
//! use oco_agent_protocol::signature::{sign, verify};
//! use oco_core::chrono::{Duration, TimeZone, Utc};
//! use oco_core::deploy::{ContainerSettings, DeployRequest};
//! use oco_core::engine::Engine;
//! use oco_core::model::{DeliveryPolicy, Name, Procedure};
//! use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
//! use serde_json::Value;
//!
//! // A computer with one job, in memory; every write goes through the hello cache.
//! let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20));
//! let service = AgentService::new(
//!     Engine::new(store.clone()),
//!     ServiceConfig::new("global-agent-key"),
//!     Arc::new(CountingKeys::new()), // predictable keys; a server uses `keys::OsKeys`
//! );
//! let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
//! let pc = store.create_computer(NewComputer::new(Name::hostname("hostname", "pc1")?))?;
//! let family = store.create_family(Name::new("name", "Editor")?)?;
//! let install = Procedure::new("sh ./install.sh");
//! let package = store.create_package(NewPackage::new(family.id, Name::new("version", "1.0")?, install))?;
//! let container = ContainerSettings::new(Name::new("name", "Editor 1.0")?, now, DeliveryPolicy::default());
//! let request = DeployRequest::new(container).with_computers([pc.id]).with_packages([package.id]);
//! service.engine().deploy(&request, now)?;
//!
//! // The agent's first hello, signed with the global key: its keys and its job.
//! let hello = hello_body("uid", "pc1", 1_700_000_000.5, &HelloData::minimal());
//! let response = service.handle(Request {
//!     signature: sign("global-agent-key", &hello),
//!     body: hello,
//!     address: Ok("10.0.0.7".parse()?),
//!     now: now + Duration::seconds(1),
//! });
//! assert_eq!(response.status, Status::Ok);
//! let Body::Json(bytes) = &response.body else { unreachable!("a hello is answered in JSON") };
//! let reply: Value = serde_json::from_slice(bytes)?;
//! let params = &reply["result"]["params"];
//! let agent_key = params["agent-key"].as_str().unwrap_or_default();
//! let server_key = params["server-key"].as_str().unwrap_or_default();
//! assert!(verify(server_key, bytes, response.signature.as_deref().unwrap_or_default()));
//! let job = &params["software-jobs"][0];
//! assert_eq!(job["procedure"], "sh ./install.sh");
//!
//! // The job ran; its report is signed with the agent's new key.
//! let done = JobState {
//!     job_id: &job["id"],
//!     state: 3,
//!     return_code: Some(0),
//!     download_progress: None,
//!     message: "installed\n",
//! };
//! let report = job_state_body("uid", "pc1", 1_700_000_030.5, &done);
//! let response = service.handle(Request {
//!     signature: sign(agent_key, &report),
//!     body: report,
//!     address: Ok("10.0.0.7".parse()?),
//!     now: now + Duration::seconds(31),
//! });
//! assert_eq!(response.status, Status::Ok);
//! let Body::Json(bytes) = &response.body else { unreachable!("a report is answered in JSON") };
//! assert!(verify(server_key, bytes, response.signature.as_deref().unwrap_or_default()));
//! let answer: Value = serde_json::from_slice(bytes)?;
//! assert_eq!(answer["result"]["params"]["job-succeeded"], true);
//! // Every reply's timestamp is above the one before.
//! assert!(answer["result"]["timestamp"].as_f64() > reply["result"]["timestamp"].as_f64());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod agent;
pub mod cache;
pub mod keys;
pub mod service;
pub mod signature;
pub mod timestamp;
pub mod wire;
