//! The agent's side of the wire, over HTTP: request bodies as the OCO agent 1.2.0 writes them
//! (from [`oco_agent_protocol::agent`], re-exported here), signed, and sent over a new connection
//! per request; for tests and the load generator.
//!
//! ```
//! use oco_server_min::agent_api::client;
//!
//! let body = client::hello_body("test-uid", "testhost", 1700000000.5, &client::HelloData::minimal());
//! let request = client::http_request("POST", "127.0.0.1", "/api-agent.php", &body, "initial-agent-key");
//! let text = String::from_utf8(request).unwrap();
//! assert!(text.starts_with("POST /api-agent.php HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
//! assert!(text.contains(
//!     "x-oco-agent-signature: f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190\r\n"
//! ));
//! assert!(text.ends_with(r#""data": {"agent_version": "1.2.0"}}}"#));
//! ```

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use oco_agent_protocol::agent::{
    download_body, hello_body, job_state_body, plain_body, python_json, HelloData, JobState,
    Network,
};
pub use oco_agent_protocol::signature::{sign, verify, AGENT_SIGNATURE, SERVER_SIGNATURE};

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
    fn response_heads() {
        let (status, headers) = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\ncontent-length: 3",
        )
        .unwrap();
        assert_eq!(status, 401);
        assert_eq!(headers[1], ("content-length".into(), "3".into()));
    }
}
