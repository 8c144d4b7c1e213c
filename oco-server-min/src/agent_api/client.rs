//! The agent's side of the wire: request bodies as the OCO agent 1.2.0 writes them, signed, and
//! sent over a new connection per request; for tests and the load generator.
//!
//! Bodies are Python `json.dumps` output (separators `", "` and `": "`, non-ASCII escaped as
//! `\uXXXX`, keys in the agent's order), so that what a server verifies is byte for byte what
//! the real agent sends.
//!
//! ```
//! use oco_server_min::agent_api::client;
//!
//! let body = client::hello_body("test-uid", "testhost", 1700000000.5, &client::HelloData::minimal());
//! assert_eq!(
//!     String::from_utf8(body.clone()).unwrap(),
//!     r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#
//! );
//! assert_eq!(
//!     client::sign("initial-agent-key", &body),
//!     "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190"
//! );
//! ```

use std::io;
use std::net::SocketAddr;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::signature::{sign, verify, AGENT_SIGNATURE, SERVER_SIGNATURE};

/// `value` as Python's `json.dumps(value)` writes it (default settings).
///
/// # Errors
///
/// If `value` cannot be serialised as JSON (a map with non-string keys, a failing `Serialize`).
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

/// The body of an `oco.agent.hello`.
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

/// The bytes of an HTTP/1.1 request as python-requests 2.31 sends it, signed with `key`.
pub fn http_request(verb: &str, host: &str, path: &str, body: &[u8], key: &str) -> Vec<u8> {
    let signature = sign(key, body);
    raw_request(verb, host, path, "application/json", &signature, body)
}

/// The bytes of an HTTP/1.1 request with the given content type and signature header, for
/// requests a real agent would not send.
pub fn raw_request(
    verb: &str,
    host: &str,
    path: &str,
    content_type: &str,
    signature: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut request = format!(
        "{verb} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: python-requests/2.31.0\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\
         content-type: {content_type}\r\n{AGENT_SIGNATURE}: {signature}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is signed with `server_key` in [`SERVER_SIGNATURE`].
    pub fn signed_with(&self, server_key: &str) -> bool {
        self.header(SERVER_SIGNATURE)
            .is_some_and(|signature| verify(server_key, &self.body, signature))
    }
}

/// Sends `request` on a new connection to `addr` and reads the response, as the agent does (one
/// connection per call). A server that answers before reading the whole body (a body over its
/// limit) is still heard: a failed write is ignored if a response can be read.
///
/// # Errors
///
/// Connection failures, or a response that is not HTTP/1.1 as this parser knows it.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let written = stream.write_all(request).await;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let (header_end, head) = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break (end + 4, parse_head(&buffer[..end])?);
        }
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(error) => return Err(written.err().unwrap_or(error)),
        };
        if n == 0 {
            written?;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response headers",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let (status, headers) = head;
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    let mut body = buffer.split_off(header_end);
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside the response body",
                    ));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body).await?;
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers))
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

    #[test]
    fn response_heads() {
        let (status, headers) = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\ncontent-length: 3",
        )
        .unwrap();
        assert_eq!(status, 401);
        assert_eq!(headers[1], ("content-length".into(), "3".into()));
    }
}
