//! The built binary as a process, for the tests that run it: starting it and reading its log,
//! a small HTTP/1.1 client, a test agent that signs like the OCO agent, and an administrator.

// Test fixtures fail by panicking; not every test file uses every helper. The test agent's
// timestamps are wall-clock epochs, as the real agent's are.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    dead_code,
    unreachable_pub
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const BINARY: &str = env!("CARGO_BIN_EXE_oco-server-min");

// The server process.

/// A running server, its log collected from stderr.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
    pub reader: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0` unless `env` or `args` say
    /// otherwise) and waits until it listens.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, listening) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let collected = log.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = found.send(addr.parse::<SocketAddr>().unwrap());
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match listening.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                let _ = reader.join();
                panic!(
                    "the server did not listen ({status}); its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// Sends `signal` (`-TERM`, `-INT`), waits for the exit and returns its status and the log.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
        let status = wait_for_exit(&mut self.child, Duration::from_secs(30));
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status, log + &stdout)
    }

    /// Waits until the log has `count` lines containing `text`.
    pub fn wait_for_log(&self, text: &str, count: usize) {
        for _ in 0..500 {
            if self.log.lock().unwrap().matches(text).count() >= count {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no {count} × `{text}` in the log after 10 s:\n{}",
            self.log.lock().unwrap()
        );
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and returns its log.
    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log()
    }

    pub fn stop(self) -> (ExitStatus, String) {
        self.stop_with("-TERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let mut waited = Duration::ZERO;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if waited > timeout {
            let _ = child.kill();
            panic!("the server did not exit within {timeout:?} of the signal");
        }
        thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
}

/// Runs the binary to completion (for options that make it exit at once).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = Command::new(BINARY);
    command.args(args).stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status,
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The three secrets in the data directory's secrets file.
pub fn secrets(dir: &Path) -> (String, String, String) {
    let text = std::fs::read_to_string(dir.join("oco-secrets.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let get = |key: &str| table[key].as_str().unwrap().to_string();
    (
        get("admin-token"),
        get("agent-key"),
        get("registration-key"),
    )
}

pub fn assert_no_secret_in(log: &str, dir: &Path) {
    let (admin, agent, registration) = secrets(dir);
    for (name, secret) in [
        ("admin token", admin),
        ("agent key", agent),
        ("registration key", registration),
    ] {
        assert!(!log.contains(&secret), "the {name} is in the log:\n{log}");
    }
}

// A small HTTP/1.1 client: one request per connection, as the OCO agent makes them.

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(addr, method, path, headers, body).unwrap()
}

/// [`http`], failing rather than panicking when the connection is refused or cut off, or no
/// whole response head comes back (a server killed mid-request).
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no whole response head"))?;
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// The full cycle through the admin API and the agent API.

/// An OCO agent as the real one speaks: signed JSON-RPC, increasing timestamps, TOFU keys.
pub struct Agent {
    pub addr: SocketAddr,
    pub path: String,
    pub hostname: String,
    pub key: String,
    pub server_key: Option<String>,
    pub last_timestamp: f64,
    /// `result.timestamp` of the last JSON reply, as written in the body.
    pub last_reply: String,
}

impl Agent {
    /// An agent for `hostname` on the server at `addr`, signing with `key`.
    pub fn new(addr: SocketAddr, hostname: &str, key: &str) -> Agent {
        Agent {
            addr,
            path: "/api-agent.php".into(),
            hostname: hostname.into(),
            key: key.into(),
            server_key: None,
            last_timestamp: 0.0,
            last_reply: String::new(),
        }
    }

    pub fn timestamp(&mut self) -> f64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let rounded = (now * 10_000.0).round() / 10_000.0;
        self.last_timestamp = rounded.max(self.last_timestamp + 0.001);
        self.last_timestamp
    }

    pub fn body(&mut self, method: &str, params: Value) -> Vec<u8> {
        let mut all = json!({
            "uid": "4c4c4544-0000-1111-2222-333333333333",
            "hostname": self.hostname,
            "timestamp": self.timestamp(),
        });
        for (key, value) in params.as_object().unwrap() {
            all[key] = value.clone();
        }
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": all}))
            .unwrap()
    }

    pub fn send(&mut self, verb: &str, body: &[u8]) -> Response {
        self.try_send(verb, body).unwrap()
    }

    /// [`Agent::send`], failing when the server cuts the request off (a killed process).
    pub fn try_send(&mut self, verb: &str, body: &[u8]) -> std::io::Result<Response> {
        let signature = sign(&self.key, body);
        try_http(
            self.addr,
            verb,
            &self.path.clone(),
            &[
                ("content-type", "application/json"),
                ("x-oco-agent-signature", &signature),
            ],
            body,
        )
    }

    /// A JSON-RPC call; checks the reply's signature once a server key is known.
    pub fn call(&mut self, method: &str, data: Value) -> Value {
        let body = self.body(method, json!({ "data": data }));
        let response = self.send("POST", &body);
        assert_eq!(response.status, 200, "{method}: {}", response.text());
        if let Some(key) = &self.server_key {
            assert_eq!(
                response.header("x-oco-server-signature"),
                Some(sign(key, &response.body).as_str()),
                "{method}: server signature"
            );
        }
        let reply = response.json();
        assert!(reply["result"]["timestamp"].is_f64(), "{reply}");
        let text = response.text();
        let written = text.rsplit("\"timestamp\":").next().unwrap_or_default();
        self.last_reply = written.trim_end_matches('}').to_string();
        reply["result"]["params"].clone()
    }

    /// A hello, taking the keys it hands out.
    pub fn hello(&mut self) -> Value {
        let params = self.call(
            "oco.agent.hello",
            json!({"agent_version": "1.2.0", "networks": [], "services": null,
                   "uptime": 10.0, "battery_level": false, "battery_status": false,
                   "force_update": false}),
        );
        if let Some(key) = params["agent-key"].as_str() {
            self.key = key.to_string();
        }
        if self.server_key.is_none() {
            self.server_key = params["server-key"].as_str().map(String::from);
        }
        params
    }
}

pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An administrator with the token.
pub struct Admin {
    pub addr: SocketAddr,
    pub authorization: String,
}

impl Admin {
    pub fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Response {
        http(
            self.addr,
            method,
            &format!("/api/v1{path}"),
            &[
                ("authorization", &self.authorization),
                ("content-type", content_type),
            ],
            body,
        )
    }

    pub fn json(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self.request(method, path, "application/json", body.as_bytes());
        assert_eq!(
            response.status,
            expected,
            "{method} {path}: {}",
            response.text()
        );
        response.json()
    }
}

/// The smallest zip archive: an empty one (its end-of-central-directory record).
pub fn empty_zip() -> Vec<u8> {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend_from_slice(&[0; 18]);
    zip
}
