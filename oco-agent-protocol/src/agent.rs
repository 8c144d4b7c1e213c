//! The agent's side of the wire: request bodies as the OCO agent 1.2.0 writes them, for tests,
//! examples and load generators.
//!
//! Bodies are Python `json.dumps` output (separators `", "` and `": "`, non-ASCII escaped as
//! `\uXXXX`, keys in the agent's order), so that what a server verifies is byte for byte what
//! the real agent sends. Sign them with [`sign`](crate::signature::sign) and the agent's key.
//!
//! ```
//! use oco_agent_protocol::agent::{hello_body, HelloData};
//! use oco_agent_protocol::signature::sign;
//!
//! let body = hello_body("test-uid", "testhost", 1700000000.5, &HelloData::minimal());
//! assert_eq!(
//!     String::from_utf8(body.clone()).unwrap(),
//!     r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#
//! );
//! assert_eq!(
//!     sign("initial-agent-key", &body),
//!     "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190"
//! );
//! ```

use std::io;

use serde::Serialize;

/// `value` as Python's `json.dumps(value)` writes it (default settings).
///
/// # Errors
///
/// If `value` cannot be serialised as JSON (a map with non-string keys, a failing `Serialize`).
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::agent::python_json;
///
/// let value = serde_json::json!({"hostname": "pc-é", "jobs": [1, 2]});
/// assert_eq!(python_json(&value)?, br#"{"hostname": "pc-\u00e9", "jobs": [1, 2]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// The `data` of a hello. [`HelloData::minimal`] is the smallest; the real agent also sends its
/// networks, uptime and battery state.
#[derive(Debug, Clone, Serialize)]
pub struct HelloData {
    /// The agent's version.
    pub agent_version: String,
    /// Network interfaces (`addr`, `netmask`, `broadcast`, `mac`, `interface`), if sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Network>>,
}

impl HelloData {
    /// `{"agent_version": "1.2.0"}`.
    pub fn minimal() -> Self {
        HelloData {
            agent_version: "1.2.0".into(),
            networks: None,
        }
    }
}

/// A network interface as the agent reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    /// Address.
    pub addr: String,
    /// Netmask.
    pub netmask: String,
    /// Broadcast address.
    pub broadcast: String,
    /// MAC address.
    pub mac: String,
    /// Interface name.
    pub interface: String,
}

/// The body of an `oco.agent.hello`; see the [module](self) for an example.
pub fn hello_body(uid: &str, hostname: &str, timestamp: f64, data: &HelloData) -> Vec<u8> {
    body(
        "oco.agent.hello",
        uid,
        hostname,
        timestamp,
        Some(data),
        None,
    )
}

/// One job's state in an `oco.agent.update_job_state`. `job_id` is echoed as the hello gave it
/// (a number or a string).
#[derive(Debug, Clone, Serialize)]
pub struct JobState<'a> {
    /// The job's id as received.
    #[serde(rename = "job-id")]
    pub job_id: &'a serde_json::Value,
    /// 1 downloading, 2 executing, 3 finished, -1 error.
    pub state: i64,
    /// `null` until the end.
    #[serde(rename = "return-code")]
    pub return_code: Option<i64>,
    /// Sent with download reports only.
    #[serde(rename = "download-progress", skip_serializing_if = "Option::is_none")]
    pub download_progress: Option<i64>,
    /// The output so far (always sent).
    pub message: &'a str,
}

/// The body of an `oco.agent.update_job_state`.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::agent::{job_state_body, JobState};
///
/// let job_id = serde_json::json!(41);
/// let state = JobState {
///     job_id: &job_id,
///     state: 3,
///     return_code: Some(0),
///     download_progress: None,
///     message: "done",
/// };
/// assert_eq!(
///     String::from_utf8(job_state_body("uid", "pc1", 1.5, &state)).unwrap(),
///     r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.update_job_state", "params": {"uid": "uid", "hostname": "pc1", "timestamp": 1.5, "data": {"job-id": 41, "state": 3, "return-code": 0, "message": "done"}}}"#
/// );
/// ```
pub fn job_state_body(uid: &str, hostname: &str, timestamp: f64, state: &JobState<'_>) -> Vec<u8> {
    body(
        "oco.agent.update_job_state",
        uid,
        hostname,
        timestamp,
        Some(state),
        None,
    )
}

/// The body of an `oco.agent.download` (sent as a GET).
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::agent::download_body;
///
/// assert_eq!(
///     String::from_utf8(download_body("uid", "pc1", 2.0, 3)).unwrap(),
///     r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.download", "params": {"uid": "uid", "hostname": "pc1", "timestamp": 2.0, "package-id": 3}}"#
/// );
/// ```
pub fn download_body(uid: &str, hostname: &str, timestamp: f64, package_id: i64) -> Vec<u8> {
    body::<()>(
        "oco.agent.download",
        uid,
        hostname,
        timestamp,
        None,
        Some(package_id),
    )
}

/// The body of a call without data the server needs (`oco.agent.update`, `events`,
/// `passwords`), with an empty `data` object.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::agent::plain_body;
///
/// assert_eq!(
///     String::from_utf8(plain_body("oco.agent.events", "uid", "pc1", 2.5)).unwrap(),
///     r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.events", "params": {"uid": "uid", "hostname": "pc1", "timestamp": 2.5, "data": {}}}"#
/// );
/// ```
pub fn plain_body(method: &str, uid: &str, hostname: &str, timestamp: f64) -> Vec<u8> {
    body(
        method,
        uid,
        hostname,
        timestamp,
        Some(&serde_json::Map::new()),
        None,
    )
}

// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Envelope<'a, P> {
    jsonrpc: &'static str,
    id: u8,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct Params<'a, D> {
    uid: &'a str,
    hostname: &'a str,
    timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a D>,
    #[serde(rename = "package-id", skip_serializing_if = "Option::is_none")]
    package_id: Option<i64>,
}

fn body<D: Serialize>(
    method: &str,
    uid: &str,
    hostname: &str,
    timestamp: f64,
    data: Option<&D>,
    package_id: Option<i64>,
) -> Vec<u8> {
    let envelope = Envelope {
        jsonrpc: "2.0",
        id: 1,
        method,
        params: Params {
            uid,
            hostname,
            timestamp,
            data,
            package_id,
        },
    };
    // Plain structs of strings and numbers always serialise; a non-finite timestamp becomes
    // `null`, as serde_json writes it.
    python_json(&envelope).unwrap_or_default()
}

/// Formats JSON as Python's `json.dumps` with default settings.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // ensure_ascii: everything outside printable ASCII is a \uXXXX escape (UTF-16 units).
        let mut start = 0;
        for (index, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..index])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = index + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

    use super::*;

    #[test]
    fn python_formatting() {
        let value = serde_json::json!({"a": [1, 2.5, null, true], "b": "é😀\u{7f}\n\"x\""});
        assert_eq!(
            String::from_utf8(python_json(&value).unwrap()).unwrap(),
            r#"{"a": [1, 2.5, null, true], "b": "\u00e9\ud83d\ude00\u007f\n\"x\""}"#
        );
    }

    #[test]
    fn report_and_download_bodies() {
        let id = serde_json::json!("41.2");
        let body = job_state_body(
            "u",
            "h",
            1.5,
            &JobState {
                job_id: &id,
                state: 1,
                return_code: None,
                download_progress: Some(0),
                message: "",
            },
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.update_job_state", "params": {"uid": "u", "hostname": "h", "timestamp": 1.5, "data": {"job-id": "41.2", "state": 1, "return-code": null, "download-progress": 0, "message": ""}}}"#
        );
        assert_eq!(
            String::from_utf8(download_body("u", "h", 2.0, 3)).unwrap(),
            r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.download", "params": {"uid": "u", "hostname": "h", "timestamp": 2.0, "package-id": 3}}"#
        );
    }
}
