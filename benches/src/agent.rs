//! The OCO agent's side of the wire, shared by the load generators (`src/bin/loadgen.rs`,
//! `src/bin/hostile.rs`): the seeded computers' names and keys, the agent's JSON-RPC envelope as
//! Python's `json.dumps` writes it, its HMAC signatures, and a minimal HTTP/1.1 client over
//! tokio's TCP stream.
//!
//! # Examples
//!
//! ```
//! use oco_benches::agent::{envelope, keyed, sign};
//!
//! let mut body = String::new();
//! envelope("oco.agent.hello", "uid", "pc1", 1700000000.5, "{}", &mut body);
//! assert!(body.starts_with("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"oco.agent.hello\""));
//! assert_eq!(sign(&keyed(b"key"), body.as_bytes()).len(), 64);
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use oco_core::store::AgentCredentials;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sqlite::SeedCase;

/// What the generators' fallible functions return.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;
/// HMAC-SHA256, the agent's and the server's signature.
pub type HmacSha256 = Hmac<Sha256>;

/// The salt every computer's keys are derived from (see [`derive_key`]).
pub const KEY_SALT: &[u8] = b"oco-loadgen fixed key salt 1";

/// The job output an Executing report carries (already a JSON string body, ASCII).
pub const REPORT_OUTPUT: &str = "Extracting package archive...\\nRunning the installer (silent)\\n\
     Copying files: 412 of 977\\nRegistering components\\n";

/// The largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

#[allow(clippy::disallowed_methods)]
/// The wall clock in units of 10⁻⁴ s since the epoch (the agent's `round(time.time(), 4)`).
pub fn epoch_ticks() -> Result<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH)?;
    Ok(u64::try_from(since.as_micros() / 100)?)
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// The `n`-th computer's hostname (`lg-00001` is the first), as the seed names it.
pub fn hostname(n: usize) -> String {
    format!("lg-{n:05}")
}

/// The hostnames of the polled computers of `case`: every 20th computer.
pub fn polled_hostnames(case: SeedCase) -> Vec<String> {
    (1..=case.polled())
        .map(|i| hostname(i * crate::sqlite::POLLED_ONE_IN))
        .collect()
}

/// A computer's `kind` key (`agent` or `server`): 30 characters of `[0-9a-z]` like OCO's keys,
/// the HMAC-SHA256 of `kind/hostname` under [`KEY_SALT`].
pub fn derive_key(kind: &str, hostname: &str) -> String {
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
pub fn seeded_credentials(hostname: &str) -> AgentCredentials {
    AgentCredentials {
        agent_key: Some(derive_key("agent", hostname)),
        previous_agent_key: None,
        server_key: Some(derive_key("server", hostname)),
        ..AgentCredentials::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The agent's wire format.

/// `key` prepared for HMAC-SHA256.
pub fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error type exists for fixed-size MACs only.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Lower-case hex of the HMAC of `body` under the prepared `key` (the agent's `hexdigest()`).
pub fn sign(key: &HmacSha256, body: &[u8]) -> [u8; 64] {
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
pub fn python_float(value: f64, out: &mut String) {
    let start = out.len();
    let _ = write!(out, "{value}");
    if !out[start..].contains(['.', 'e', 'N', 'n']) {
        out.push_str(".0");
    }
}

/// `text` as a JSON string the way Python's `json.dumps` writes it (`ensure_ascii`).
pub fn python_str(text: &str, out: &mut String) {
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
pub fn envelope(
    method: &str,
    uid: &str,
    hostname: &str,
    timestamp: f64,
    data: &str,
    out: &mut String,
) {
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
pub fn hello_data(n: usize) -> String {
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
pub fn report_data(job_id: &str) -> String {
    format!(
        "{{\"job-id\": {job_id}, \"state\": 2, \"return-code\": null, \"message\": \
         \"{REPORT_OUTPUT}\"}}"
    )
}

/// The request head the agent (python-requests 2.31) sends before `body`.
pub fn request(target: &Target, signature: &[u8; 64], body: &[u8], out: &mut Vec<u8>) {
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
pub fn result_timestamp(body: &[u8]) -> Option<f64> {
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
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// The agent API's path.
    pub path: String,
}

impl Target {
    /// The target of an `http://host:port/path` URL.
    pub fn parse(url: &str) -> Result<Target> {
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
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `x-oco-server-signature` value.
    pub signature: Option<(usize, usize)>,
    /// The body.
    pub body: (usize, usize),
    /// The server will close the connection.
    pub close: bool,
}

/// An I/O error of kind `InvalidData` saying `message`.
pub fn io_error(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// What a response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The `x-oco-server-signature` value, as offsets into the head.
    pub signature: Option<(usize, usize)>,
    /// The `Content-Length`.
    pub length: usize,
    /// The server will close the connection.
    pub close: bool,
}

/// Parses a response head (`head` ends before the blank line).
pub fn parse_head(head: &[u8]) -> std::io::Result<Head> {
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
pub async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Response> {
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
pub fn source_address(server: SocketAddr, index: usize) -> Option<IpAddr> {
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

/// The address computer `number` connects from when it opens a connection of its own for each
/// request (as the OCO agent does) to a server on IPv4 loopback: 127.A.B.C, none of the bytes 0
/// or 255, so about 16 million computers each have one. A computer keeps its address from run
/// to run, as a real agent keeps its host's, so that a server may rely on it (the hello cache
/// plans for an address).
pub fn computer_address(server: SocketAddr, number: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let byte = |value: usize| u8::try_from(1 + value % 254).ok();
            Some(IpAddr::V4(Ipv4Addr::new(
                127,
                u8::try_from(1 + number / (254 * 254)).ok()?,
                byte(number / 254)?,
                byte(number)?,
            )))
        }
        _ => None,
    }
}

/// Sends `request` on `conn` (connecting first if there is none, from `source` if given) and
/// reads the response.
pub async fn exchange(
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
// Measuring.

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
pub fn memory_kib(pid: &str) -> Result<(u64, u64)> {
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

/// The `p`-quantile (0 < p ≤ 1, nearest rank) of `sorted` nanoseconds, in milliseconds; NaN if
/// there are none.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_computer_has_its_own_loopback_address() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        for number in (0..1_100_000).step_by(7).chain([64_515, 64_516, 64_517]) {
            let address = computer_address(server, number).unwrap();
            let IpAddr::V4(v4) = address else {
                panic!("{address}")
            };
            assert!(v4.is_loopback(), "{address}");
            assert!(
                v4.octets()[1..].iter().all(|&b| b != 0 && b != 255),
                "{address}"
            );
            assert!(seen.insert(address), "{number} shares {address}");
        }
        assert_eq!(computer_address("[::1]:8080".parse().unwrap(), 1), None);
    }

    use super::*;
    use crate::sqlite::{SEED_1M, SEED_TEST};

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
}
