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

mod process;

use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use process::*;

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
        "--metrics-public",
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

#[test]
fn json_logs_carry_the_version_the_configuration_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--log-format",
            "json",
            "--admin-heavy-concurrency",
            "3",
        ],
        &[],
    );
    let (admin_token, _, _) = secrets(&data);
    let listed = http(
        server.addr,
        "GET",
        "/api/v1/computers",
        &[
            ("authorization", &format!("Bearer {admin_token}")),
            ("x-request-id", "probe-1"),
        ],
        b"",
    );
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.header("x-request-id"), Some("probe-1"));
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_no_secret_in(&log, &data);

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or("").to_owned();
    let start = lines
        .iter()
        .map(message)
        .find(|message| message.contains("starting; configuration:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        start.starts_with(&format!("oco-server-min {}", env!("CARGO_PKG_VERSION"))),
        "{start}"
    );
    // The effective configuration, an option's value included.
    assert!(start.contains("admin_heavy_concurrency: 3"), "{start}");
    let access = lines
        .iter()
        .find(|line| line["target"] == "oco_server_min::access" && line["span"]["id"] == "probe-1")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["path"], "/api/v1/computers");
    assert_eq!(access["fields"]["token"], "admin");
}
