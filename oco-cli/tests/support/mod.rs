//! What the client's tests share: the real server on a loopback port in the test process, the
//! real `oco` binary run against it, and the admin API for arranging data.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use oco_core::chrono::{DateTime, TimeZone, Utc};
use oco_core::engine::Engine;
use oco_core::model::{ComputerId, JobId};
use oco_core::report::{AgentReport, ReportedState};
use oco_core::store::{MemoryStore, Store};
use oco_core::Settings;
use oco_server_min::clock::FixedClock;
use oco_server_min::{app, AppState, Secrets, ServerOptions};
use serde_json::Value;

/// The admin token of the test servers.
pub const TOKEN: &str = "cli-test-admin-token";

/// Tuesday 2026-11-24 12:00 UTC, the servers' time.
pub fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

/// A server on loopback, serving until dropped.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    /// An empty home directory for the client: no user's config file is read.
    pub home: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// A server on an empty in-memory store.
    pub fn start() -> Server {
        Server::with_options(|_| {})
    }

    /// A server with the options `configure` sets (after the payload directory).
    pub fn with_options(configure: impl FnOnce(&mut ServerOptions)) -> Server {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions {
            payload_dir: dir.path().join("payloads"),
            ..ServerOptions::default()
        };
        configure(&mut options);
        let secrets = Secrets {
            admin_token: TOKEN.into(),
            agent_key: "agent-key".into(),
            registration_key: None,
        };
        let state = AppState::new(
            store.clone(),
            Arc::new(FixedClock::new(noon())),
            Settings::default(),
            options,
            secrets,
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = axum::serve(listener, app(state).into_make_service());
                tokio::select! {
                    result = serve => result.unwrap(),
                    _ = stopped => {}
                }
            });
        });
        Server {
            url: format!("http://{addr}"),
            store,
            dir,
            home: tempfile::tempdir().unwrap(),
            stop: Some(stop),
        }
    }

    /// The directory of the server's payloads.
    pub fn payload_dir(&self) -> PathBuf {
        self.dir.path().join("payloads")
    }

    /// Runs `oco args` with this server and token in the environment.
    pub fn oco(&self, args: &[&str]) -> Run {
        self.oco_with(&[("OCO_SERVER", &self.url), ("OCO_TOKEN", TOKEN)], args)
    }

    /// Runs `oco args` with only `env` (and a home of its own) in the environment.
    pub fn oco_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        oco(self.home.path(), env, args)
    }

    /// `POST /api/v1{path}` with the admin token; the answer, which must be a success.
    pub fn post(&self, path: &str, body: Value) -> Value {
        let mut response = ureq::post(format!("{}/api/v1{path}", self.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// `PUT /api/v1{path}` with the admin token; the answer, which must be a success.
    pub fn put(&self, path: &str, body: Value) -> Value {
        let mut response = ureq::put(format!("{}/api/v1{path}", self.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|error| panic!("PUT {path}: {error}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// `GET /api/v1{path}` with the admin token; the answer, which must be a success.
    pub fn get(&self, path: &str) -> Value {
        let mut response = ureq::get(format!("{}/api/v1{path}", self.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// Creates a computer; its id.
    pub fn computer(&self, hostname: &str) -> i64 {
        self.post(
            "/computers",
            serde_json::json!({"hostname": hostname, "os": "Linux"}),
        )["id"]
            .as_i64()
            .unwrap()
    }

    /// Creates a family and a package of it (install `sh ./install.sh`, success code 0); the
    /// package's id.
    pub fn package(&self, family: &str, version: &str) -> i64 {
        let family = self.post("/package-families", serde_json::json!({"name": family}))["id"]
            .as_i64()
            .unwrap();
        self.post(
            "/packages",
            serde_json::json!({"family": family, "version": version,
                "install": {"command": "sh ./install.sh"}}),
        )["id"]
            .as_i64()
            .unwrap()
    }

    /// Reports job `job` of `computer` as its agent would: finished with `return_code`, which
    /// the server judges against the package's success codes.
    pub fn finish(&self, computer: i64, job: i64, return_code: i64) {
        let attempt = self.store.job(JobId(job)).unwrap().attempt;
        let report = AgentReport::new(JobId(job), attempt, ReportedState::Succeeded)
            .with_return_code(return_code)
            .with_output(format!("exit {return_code}\n"));
        Engine::new(self.store.clone())
            .report(ComputerId(computer), report, noon())
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What a run of `oco` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.stdout))
    }

    /// Asserts the run succeeded; itself.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    /// Asserts the run failed with status 1 and that stderr says `text`; itself.
    #[track_caller]
    pub fn fails_with(self, text: &str) -> Run {
        assert_eq!(self.code, 1, "{self:#?}");
        assert!(self.stderr.contains(text), "no `{text}` in {self:#?}");
        self
    }
}

/// Runs the `oco` binary with `args`, `home` as its home and only `env` besides.
pub fn oco(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = command(home, env, args).output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The command that runs `oco args` with `home` and `env`, its output piped.
pub fn command(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oco"));
    command
        .args(args)
        .env_clear()
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A loopback address where nothing listens.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A zip archive holding one stored (uncompressed) file `name` with `content`.
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
    // Local file header.
    out.extend_from_slice(b"PK\x03\x04");
    out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(content);
    let directory_start = u32::try_from(out.len()).unwrap();
    // Central directory entry.
    out.extend_from_slice(b"PK\x01\x02");
    out.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    let directory_size = u32::try_from(out.len()).unwrap() - directory_start;
    // End of central directory.
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&directory_size.to_le_bytes());
    out.extend_from_slice(&directory_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
