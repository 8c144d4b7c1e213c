//! The built binary, end to end: options and `--help`, first and second start (the secrets file),
//! serving over a real socket, and a graceful stop on SIGTERM with status 0. `full_cycle` drives
//! a deploy → poll → download → report → statistics cycle over HTTP like an administrator with
//! curl and an OCO agent would.
//!
//! The server runs with `--listen 127.0.0.1:0`; the test reads the port from its log line
//! `listening on http://ADDR`.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    // The test agent's timestamps are wall-clock epochs, as the real agent's are.
    clippy::disallowed_methods
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

const BINARY: &str = env!("CARGO_BIN_EXE_oco-server-min");

// The server process.

/// A running server, its log collected from stderr.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0` unless `env` or `args` say
    /// otherwise) and waits until it listens.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
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
    fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
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
    fn wait_for_log(&self, text: &str, count: usize) {
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

    fn stop(self) -> (ExitStatus, String) {
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

fn wait_for_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
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
fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
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
fn secrets(dir: &Path) -> (String, String, String) {
    let text = std::fs::read_to_string(dir.join("oco-secrets.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let get = |key: &str| table[key].as_str().unwrap().to_string();
    (
        get("admin-token"),
        get("agent-key"),
        get("registration-key"),
    )
}

fn assert_no_secret_in(log: &str, dir: &Path) {
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
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
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
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
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

// Tests that need only this branch.

#[test]
fn help_documents_every_option() {
    let (status, stdout, _) = run(&["--help"], &[]);
    assert!(status.success());
    for option in [
        "--config",
        "--listen",
        "--data-dir",
        "--agent-path",
        "--time-zone",
        "--trusted-proxy",
        "--wol-target",
        "--housekeeping-interval",
        "--self-registration",
        "--synchronous",
        "--header-timeout",
        "--body-timeout",
        "--idle-timeout",
        "--max-connections",
        "--shutdown-grace",
        "--log",
        "OCO_LISTEN",
        "127.0.0.1:8080",
        "255.255.255.255:9",
    ] {
        assert!(stdout.contains(option), "{option} missing from --help");
    }
}

#[test]
fn bad_options_exit_with_status_2_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oco.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nwol-targets = []\n").unwrap();
    let (status, _, stderr) = run(&["--config", config.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `wol-targets`"), "{stderr}");

    let (status, _, stderr) = run(&["--time-zone", "Mars/Olympus"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an IANA time zone"), "{stderr}");

    // Nothing was created for a start that did not happen.
    assert!(!dir.path().join("oco-secrets.toml").exists());
}

#[test]
fn first_start_creates_the_secrets_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    let server = Server::start(&["--listen", "127.0.0.1:0", "--data-dir", data_arg], &[]);
    // It serves HTTP: the admin API refuses a request without the token.
    let response = http(server.addr, "GET", "/api/v1/computers", &[], b"");
    assert_eq!(response.status, 401, "{response:?}");
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");

    let secrets_file = data.join("oco-secrets.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (admin, agent, registration) = secrets(&data);
    assert!(admin.len() >= 32);
    assert_eq!(agent.len(), 30);
    assert_eq!(registration.len(), 30);
    assert!(data.join("oco.db").exists());
    assert!(data.join("payloads").is_dir());
    assert!(
        log.contains(&format!("see {}", secrets_file.display())),
        "where the secrets are is not in the log:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    assert_no_secret_in(&log, &data);

    // An upload a crash interrupted left its temporary file, last written ten minutes ago; the
    // next start removes it and keeps the payloads and a partial upload written just now
    // (another process sharing the directory may be writing it).
    let payloads = data.join("payloads");
    let interrupted = payloads.join(".3.zip.4242.0.partial");
    std::fs::write(&interrupted, b"PK\x03\x04 half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&interrupted)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    std::fs::write(payloads.join(".3.zip.4343.0.partial"), b"PK\x03\x04 new").unwrap();
    std::fs::write(payloads.join("3.zip"), b"PK\x03\x04 whole").unwrap();

    let before = std::fs::read_to_string(&secrets_file).unwrap();
    let server = Server::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_arg,
            "--self-registration",
        ],
        &[],
    );
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(std::fs::read_to_string(&secrets_file).unwrap(), before);
    assert!(!log.contains("created the admin token"), "{log}");
    assert_no_secret_in(&log, &data);
    let mut left: Vec<_> = std::fs::read_dir(&payloads)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, [".3.zip.4343.0.partial", "3.zip"], "{log}");
    assert!(log.contains("removed 1 interrupted upload(s)"), "{log}");
}

#[test]
fn options_from_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = dir.path().join("oco.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\nlisten = \"127.0.0.1:1\"\nhousekeeping-interval = 1\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    // The environment's address beats the file's (port 1 would fail).
    let server = Server::start(
        &[],
        &[
            ("OCO_CONFIG", config.to_str().unwrap()),
            ("OCO_LISTEN", "127.0.0.1:0"),
            ("OCO_LOG", "info"),
        ],
    );
    // Housekeeping runs at once and then every second (the file's interval).
    server.wait_for_log("housekeeping run", 2);
    let (status, log) = server.stop_with("-INT");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(data.join("oco-secrets.toml").exists(), "{log}");
}

// The full cycle through the admin API and the agent API.

/// An OCO agent as the real one speaks: signed JSON-RPC, increasing timestamps, TOFU keys.
struct Agent {
    addr: SocketAddr,
    path: String,
    hostname: String,
    key: String,
    server_key: Option<String>,
    last_timestamp: f64,
    /// `result.timestamp` of the last JSON reply, as written in the body.
    last_reply: String,
}

impl Agent {
    /// An agent for `hostname` on the server at `addr`, signing with `key`.
    fn new(addr: SocketAddr, hostname: &str, key: &str) -> Agent {
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

    fn timestamp(&mut self) -> f64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let rounded = (now * 10_000.0).round() / 10_000.0;
        self.last_timestamp = rounded.max(self.last_timestamp + 0.001);
        self.last_timestamp
    }

    fn body(&mut self, method: &str, params: Value) -> Vec<u8> {
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

    fn send(&mut self, verb: &str, body: &[u8]) -> Response {
        let signature = sign(&self.key, body);
        http(
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
    fn call(&mut self, method: &str, data: Value) -> Value {
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
    fn hello(&mut self) -> Value {
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

fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An administrator with the token.
struct Admin {
    addr: SocketAddr,
    authorization: String,
}

impl Admin {
    fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Response {
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

    fn json(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> Value {
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
fn empty_zip() -> Vec<u8> {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend_from_slice(&[0; 18]);
    zip
}

#[test]
fn full_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let server = Server::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--wol-target",
            "127.0.0.1:9",
        ],
        &[],
    );
    let (admin_token, agent_key, _) = secrets(&data);
    let admin = Admin {
        addr: server.addr,
        authorization: format!("Bearer {admin_token}"),
    };

    // Without the token: 401.
    let response = http(server.addr, "GET", "/api/v1/computers", &[], b"");
    assert_eq!(response.status, 401);

    // An administrator creates a computer and a package with a payload, and deploys it.
    let computer = admin.json(
        "POST",
        "/computers",
        Some(json!({"hostname": "pc-e2e", "os": "Linux", "macs": ["02:00:00:aa:bb:cc"]})),
        201,
    );
    let computer_id = computer["id"].as_i64().unwrap();
    let family = admin.json(
        "POST",
        "/package-families",
        Some(json!({"name": "hello"})),
        201,
    );
    let package = admin.json(
        "POST",
        "/packages",
        Some(json!({
            "family": family["id"],
            "version": "1.0",
            "install": {"command": "sh ./install.sh", "success_codes": "0"},
            "uninstall": {"command": "sh ./uninstall.sh"},
        })),
        201,
    );
    let package_id = package["id"].as_i64().unwrap();
    let zip = empty_zip();
    let uploaded = admin.request(
        "PUT",
        &format!("/packages/{package_id}/payload"),
        "application/zip",
        &zip,
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    assert_eq!(uploaded.json()["payload"]["size"], 22);
    assert_eq!(
        uploaded.json()["payload"]["sha256"],
        "8739c76e681f900923b900c9df0ef75cf421d39cabb54650c4b9ad19b6a76d85",
        "the SHA-256 of an empty archive"
    );
    let deployed = admin.json(
        "POST",
        "/containers/deploy",
        Some(json!({
            "container": {"name": "hello 1.0"},
            "computers": [computer_id],
            "packages": [package_id],
        })),
        201,
    );
    let container_id = deployed["container"]["id"].as_i64().unwrap();
    assert_eq!(deployed["jobs"].as_array().unwrap().len(), 1);

    // The agent's first hello, signed with the global key: new keys and the job.
    let mut agent = Agent::new(server.addr, "pc-e2e", &agent_key);
    let hello = agent.hello();
    assert_eq!(hello["update"], 0);
    assert_ne!(agent.key, agent_key, "a per-computer agent key");
    assert!(agent.server_key.is_some(), "a server key: {hello}");
    let jobs = hello["software-jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{hello}");
    let job = &jobs[0];
    assert_eq!(job["procedure"], "sh ./install.sh");
    assert_eq!(job["download"], true);
    assert_eq!(job["package-id"], package_id);
    assert_eq!(job["container-id"], container_id);
    assert_eq!(job["restart"], Value::Null);
    let job_id = job["id"].clone();

    // A replayed hello is refused.
    let replay = agent.body(
        "oco.agent.hello",
        json!({"data": {"agent_version": "1.2.0"}}),
    );
    assert_eq!(agent.send("POST", &replay).status, 200);
    let again = agent.send("POST", &replay);
    assert_eq!(again.status, 401);
    assert_eq!(again.text(), "Agent timestamp too old");

    // Download (GET with a JSON body), then the reports the agent makes around a job.
    let download = agent.body("oco.agent.download", json!({"package-id": package_id}));
    let payload = agent.send("GET", &download);
    assert_eq!(payload.status, 200, "{}", payload.text());
    assert_eq!(payload.body, zip);
    for (state, return_code, message) in [
        (1, Value::Null, ""),
        (2, Value::Null, ""),
        (2, Value::Null, "installing\n"),
    ] {
        agent.call(
            "oco.agent.update_job_state",
            json!({"job-id": job_id, "state": state, "return-code": return_code,
                   "message": message}),
        );
    }
    let last = agent.call(
        "oco.agent.update_job_state",
        json!({"job-id": job_id, "state": 3, "return-code": 0, "message": "installed\n"}),
    );
    assert_eq!(last["job-succeeded"], true);
    // The next poll has nothing to do.
    assert_eq!(agent.hello()["software-jobs"], json!([]));

    // The administrator sees the job finished and the container succeeded.
    let jobs = admin.json(
        "GET",
        &format!("/jobs?origin=container:{container_id}"),
        None,
        200,
    );
    let items = jobs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{jobs}");
    assert_eq!(items[0]["state"], "succeeded");
    assert_eq!(items[0]["return_code"], 0);
    let statistics = admin.json(
        "GET",
        &format!("/containers/{container_id}/statistics"),
        None,
        200,
    );
    assert_eq!(statistics["status"], "succeeded", "{statistics}");
    assert_eq!(statistics["counts"]["succeeded"], 1);
    let housekeeping = admin.json("GET", "/housekeeping", None, 200);
    assert!(
        housekeeping["runs"].as_u64().unwrap() >= 1,
        "{housekeeping}"
    );

    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_no_secret_in(&log, &data);
    assert!(
        !log.contains(&agent.key),
        "the computer's agent key is in the log"
    );
}

/// Twenty restarts half a second apart: the first reply after each is within a second of the
/// wall clock, and the agent's replies keep increasing, also as the agent reads them back from
/// its timestamp file, which it rewrites without truncating it.
#[test]
fn reply_timestamps_stay_on_the_wall_clock_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let start = || Server::start(&["--listen", "127.0.0.1:0", "--data-dir", &data], &[]);
    let mut server = start();
    let (admin_token, agent_key, _) = secrets(dir.path());
    let admin = Admin {
        addr: server.addr,
        authorization: format!("Bearer {admin_token}"),
    };
    admin.json(
        "POST",
        "/computers",
        Some(json!({"hostname": "pc-clock"})),
        201,
    );
    let mut agent = Agent::new(server.addr, "pc-clock", &agent_key);
    // The agent's timestamp file: each value written over the previous one, not truncated.
    let mut file: Vec<u8> = Vec::new();
    let mut last = 0.0;
    for restart in 0..20 {
        if restart > 0 {
            let (status, log) = server.stop_with("-TERM");
            assert!(status.success(), "{log}");
            thread::sleep(Duration::from_millis(500));
            server = start();
            agent.addr = server.addr;
        }
        agent.hello();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let sent: f64 = agent.last_reply.parse().unwrap();
        assert!(sent > last, "restart {restart}: {sent} after {last}");
        assert!(
            sent <= wall + 1.0,
            "restart {restart}: {sent} is {} s ahead of the clock",
            sent - wall
        );
        let written = agent.last_reply.as_bytes();
        if file.len() < written.len() {
            file.resize(written.len(), b' ');
        }
        file[..written.len()].copy_from_slice(written);
        let read_back: f64 = std::str::from_utf8(&file).unwrap().trim().parse().unwrap();
        assert_eq!(
            read_back, sent,
            "restart {restart}: the file reads {read_back}"
        );
        last = sent;
    }
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success(), "{log}");
}

/// The data directory holds every agent's keys and the installers: a new one is its owner's
/// only (0700, the database and payloads 0600); an existing one others can read is reported.
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let (admin_token, _, _) = secrets(&data);
    let admin = Admin {
        addr: server.addr,
        authorization: format!("Bearer {admin_token}"),
    };
    let family = admin.json(
        "POST",
        "/package-families",
        Some(json!({"name": "app"})),
        201,
    );
    let package = admin.json(
        "POST",
        "/packages",
        Some(json!({"family": family["id"], "version": "1",
                    "install": {"command": "sh ./install.sh"}})),
        201,
    );
    let id = package["id"].as_i64().unwrap();
    let uploaded = admin.request(
        "PUT",
        &format!("/packages/{id}/payload"),
        "application/zip",
        &empty_zip(),
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("payloads")), 0o700);
    for name in ["oco.db", "oco.db-wal", "oco.db-shm", "oco-secrets.toml"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    for payload in std::fs::read_dir(data.join("payloads")).unwrap() {
        let path = payload.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success(), "{log}");
    assert!(!log.contains("can be read by other users"), "{log}");

    // Opened up by hand: the next start says so.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("{} can be read by other users", data.display())),
        "{log}"
    );
}
