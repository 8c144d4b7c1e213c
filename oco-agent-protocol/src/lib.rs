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

pub mod agent;
pub mod cache;
pub mod keys;
pub mod service;
pub mod signature;
pub mod timestamp;
pub mod wire;
