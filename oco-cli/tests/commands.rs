//! The `oco` binary against the real server on loopback: every command, its table and its JSON,
//! and its errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};

use oco_core::model::{JobId, JobState, PackageId, Payload};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{closed_port, command, zip, Server, TOKEN};

/// The lines of `text` split into their columns (runs of two or more spaces).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn computers_list_as_an_aligned_table_and_as_the_apis_json() {
    let server = Server::start();
    for hostname in ["pc-1", "build-server", "pc-3"] {
        server.computer(hostname);
    }

    let table = server.oco(&["computers", "list"]).ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(
        lines[0].starts_with("ID  HOSTNAME      OS     OS VERSION"),
        "{}",
        lines[0]
    );
    // Aligned: every row's hostname starts where the header's does.
    let column = lines[0].find("HOSTNAME").unwrap();
    for (line, hostname) in lines[1..].iter().zip(["pc-1", "build-server", "pc-3"]) {
        assert_eq!(line.find(hostname), Some(column), "{line}");
    }
    assert_eq!(rows(&table.stdout)[2][..3], ["2", "build-server", "Linux"]);

    let listed = server.oco(&["computers", "list", "--json"]).ok().json();
    assert_eq!(listed, server.get("/computers")["items"]);
}

#[test]
fn listings_follow_pages_up_to_the_limit_and_say_what_follows() {
    let server = Server::start();
    for i in 1..=1005 {
        server.computer(&format!("pc{i}"));
    }

    // Two pages (1,000 and 5): every computer once, in order.
    let all = server
        .oco(&["--json", "computers", "list", "--limit", "5000"])
        .ok();
    let ids: Vec<i64> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=1005).collect::<Vec<_>>());
    assert_eq!(all.stderr, "");

    // Cut by the default limit, with the way on.
    let capped = server.oco(&["computers", "list"]).ok();
    assert_eq!(capped.stdout.lines().count(), 1001);
    assert_eq!(
        capped.stderr,
        "showing 1000 computers; more follow: --after 1000, or a larger --limit\n"
    );
    let rest = server
        .oco(&["computers", "list", "--after", "1000", "--limit", "3"])
        .ok();
    let hostnames: Vec<String> = rows(&rest.stdout)[1..]
        .iter()
        .map(|row| row[1].clone())
        .collect();
    assert_eq!(hostnames, ["pc1001", "pc1002", "pc1003"]);
    assert!(rest.stderr.contains("--after 1003"), "{}", rest.stderr);
}

#[test]
fn an_empty_listing_says_so_on_stderr_and_is_an_empty_array_in_json() {
    let server = Server::start();
    let run = server.oco(&["rules", "list"]).ok();
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        ("", "no rules\n")
    );
    let run = server.oco(&["rules", "list", "--json"]).ok();
    assert_eq!(run.json(), json!([]));
}

#[test]
fn show_prints_the_fields_or_the_json_and_an_unknown_id_is_the_servers_404() {
    let server = Server::start();
    let id = server.computer("pc-042");

    let shown = server.oco(&["computers", "show", &id.to_string()]).ok();
    let fields = rows(&shown.stdout);
    assert_eq!(fields[0], ["id", "1"]);
    assert!(fields.contains(&vec!["hostname".to_owned(), "pc-042".to_owned()]));
    assert!(fields.contains(&vec!["agent".to_owned(), "-".to_owned()]));

    let json = server
        .oco(&["computers", "show", "1", "--json"])
        .ok()
        .json();
    assert_eq!(json, server.get("/computers/1"));

    server
        .oco(&["computers", "show", "99"])
        .fails_with("error: HTTP 404 not-found: computer 99 not found");
}

#[test]
fn a_package_is_created_with_its_procedures_and_listed() {
    let server = Server::start();
    let created = server.oco(&["families", "create", "hello"]).ok();
    assert_eq!(created.stdout, "created package family 1: hello\n");

    let run = server
        .oco(&[
            "packages",
            "create",
            "--family",
            "1",
            "--version",
            "1.0",
            "--install",
            "sh ./install.sh",
            "--install-codes",
            "0,3010",
            "--install-post-action",
            "restart",
            "--uninstall",
            "sh ./uninstall.sh",
            "--upgrade-behavior",
            "implicit-remove",
            "--os",
            "Linux,Windows",
        ])
        .ok();
    assert_eq!(run.stdout, "created package 1: family 1 version 1.0\n");
    let package = server.get("/packages/1");
    assert_eq!(
        package["install"],
        json!({"command": "sh ./install.sh", "success_codes": "0, 3010", "post_action": "restart"})
    );
    assert_eq!(package["uninstall"]["command"], "sh ./uninstall.sh");
    assert_eq!(package["upgrade_behavior"], "implicit-remove");
    assert_eq!(package["compatibility"]["os"], json!(["Linux", "Windows"]));

    let listed = server.oco(&["packages", "list"]).ok();
    assert_eq!(
        rows(&listed.stdout)[1],
        ["1", "1", "1.0", "-", "implicit-remove", "sh ./install.sh"]
    );

    // The server's refusal names the field.
    server
        .oco(&[
            "packages",
            "create",
            "--family",
            "1",
            "--version",
            "2",
            "--upgrade-behavior",
            "sideways",
        ])
        .fails_with("HTTP 400 malformed")
        .fails_with("(field `upgrade_behavior`)");
}

/// Bytes that do not repeat in any short period: a corruption or a reordering shows in the
/// digest.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn an_upload_of_several_megabytes_arrives_whole() {
    let server = Server::start();
    let package = server.package("big", "1");
    let archive = zip("data.bin", &noise(6 * 1024 * 1024 + 7));
    let path = server.dir.path().join("big.zip");
    std::fs::write(&path, &archive).unwrap();
    let digest: String = Sha256::digest(&archive)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let run = server
        .oco(&[
            "packages",
            "upload",
            &package.to_string(),
            path.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "uploaded {} to package {package}: {} bytes, sha256 {digest}\n",
            path.display(),
            archive.len()
        )
    );
    // Not a terminal: no progress bar drawn.
    assert_eq!(run.stderr, "");

    let stored = server.store.package(PackageId(package)).unwrap();
    let Some(Payload::Known { size, sha256 }) = stored.payload else {
        panic!("no payload: {stored:?}");
    };
    assert_eq!(size, archive.len() as u64);
    assert_eq!(sha256.to_string(), digest);
    let on_disk = std::fs::read(server.payload_dir().join(format!("{package}.zip"))).unwrap();
    assert!(on_disk == archive, "the stored payload differs");
}

#[test]
fn create_with_a_payload_uploads_it_and_answers_the_package_in_json() {
    let server = Server::start();
    server.oco(&["families", "create", "tools"]).ok();
    let archive = zip("install.sh", b"echo installed\n");
    let path = server.dir.path().join("tools.zip");
    std::fs::write(&path, &archive).unwrap();
    let run = server
        .oco(&[
            "--json",
            "packages",
            "create",
            "--family",
            "1",
            "--version",
            "2.0",
            "--payload",
            path.to_str().unwrap(),
        ])
        .ok();
    let package = run.json();
    assert_eq!(package["payload"]["size"], archive.len());
    assert_eq!(package, server.get("/packages/1"));
}

#[test]
fn uploads_the_server_would_refuse_are_refused_with_its_reason() {
    let server = Server::with_options(|options| options.max_payload_size = 1024 * 1024);
    let package = server.package("p", "1");
    let dir = server.dir.path();

    let text = dir.join("notes.txt");
    std::fs::write(&text, "not an archive").unwrap();
    server
        .oco(&["packages", "upload", "1", text.to_str().unwrap()])
        .fails_with("notes.txt is not a zip archive");

    let small = dir.join("small.zip");
    std::fs::write(&small, zip("a", b"a")).unwrap();
    server
        .oco(&["packages", "upload", "7", small.to_str().unwrap()])
        .fails_with("HTTP 404 not-found");

    // Over the server's limit: refused from the announced length, before the body.
    let big = dir.join("big.zip");
    std::fs::write(&big, zip("a", &noise(2 * 1024 * 1024))).unwrap();
    server
        .oco(&[
            "packages",
            "upload",
            &package.to_string(),
            big.to_str().unwrap(),
        ])
        .fails_with("HTTP 413 too-large: the payload is over the limit of 1048576 bytes");
    assert!(server
        .store
        .package(PackageId(package))
        .unwrap()
        .payload
        .is_none());

    server
        .oco(&[
            "packages",
            "upload",
            "1",
            dir.join("missing.zip").to_str().unwrap(),
        ])
        .fails_with("cannot read");
}

/// Deploys `packages` to `computers` through `oco`; the container's id.
fn deploy(server: &Server, name: &str, computers: &[i64], packages: &[i64], extra: &[&str]) -> i64 {
    let computers = computers.iter().map(i64::to_string).collect::<Vec<_>>();
    let packages = packages.iter().map(i64::to_string).collect::<Vec<_>>();
    let (computers, packages) = (computers.join(","), packages.join(","));
    let mut args = vec![
        "--json",
        "containers",
        "deploy",
        "--name",
        name,
        "--computer",
        &computers,
        "--package",
        &packages,
    ];
    args.extend_from_slice(extra);
    server.oco(&args).ok().json()["container"]["id"]
        .as_i64()
        .unwrap()
}

/// Reads lines of `reader` until one contains `text`; every line read.
fn read_until(reader: &mut impl BufRead, text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the watch ended before `{text}`: {lines:#?}");
        let found = line.contains(text);
        lines.push(line);
        if found {
            return lines;
        }
    }
}

#[test]
fn watch_follows_a_container_until_its_jobs_end_and_lists_the_failures() {
    let server = Server::start();
    let pcs: Vec<i64> = ["pc1", "pc2", "pc3"]
        .iter()
        .map(|h| server.computer(h))
        .collect();
    let package = server.package("hello", "1.0");

    let deployed = server
        .oco(&[
            "containers",
            "deploy",
            "--name",
            "hello 1.0",
            "--computer",
            "1,2,3",
            "--package",
            &package.to_string(),
        ])
        .ok();
    let lines = rows(&deployed.stdout);
    assert_eq!(lines[0], ["created container 1 \"hello 1.0\" with 3 jobs"]);
    assert_eq!(lines[1], ["JOB", "COMPUTER", "PACKAGE", "SEQUENCE"]);
    assert_eq!(lines[3], ["2", "2", "1", "1"]);

    let mut child = command(
        server.home.path(),
        &[("OCO_SERVER", &server.url), ("OCO_TOKEN", TOKEN)],
        &["containers", "watch", "1", "--interval", "0.05"],
    )
    .spawn()
    .unwrap();
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    read_until(
        &mut progress,
        "container 1 \"hello 1.0\": 0/3 ended; waiting 3",
    );

    server.finish(pcs[0], 1, 0);
    server.finish(pcs[1], 2, 1); // success codes are 0: a failure
    let seen = read_until(&mut progress, "failed: job 2");
    assert_eq!(
        seen.last().unwrap(),
        "failed: job 2 on pc2 (computer 2), package 1, return code 1\n"
    );
    server.finish(pcs[2], 3, 0);
    read_until(&mut progress, "3/3 ended; succeeded 2, failed 1");

    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3), "failed jobs: status 3");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines = rows(&stdout);
    assert_eq!(
        lines[0],
        ["container 1 \"hello 1.0\" failed: 3 jobs, succeeded 2, failed 1"]
    );
    assert_eq!(
        lines[1],
        ["JOB", "COMPUTER", "HOSTNAME", "PACKAGE", "STATE", "RC"]
    );
    assert_eq!(lines[2], ["2", "2", "pc2", "1", "failed", "1"]);
    assert_eq!(lines.len(), 3);

    // Once ended, a watch answers at once; its JSON has the statistics and the failures.
    let run = server.oco(&["--json", "containers", "watch", "1"]);
    assert_eq!(run.code, 3, "{run:#?}");
    let watched = run.json();
    assert_eq!(watched["container"]["name"], "hello 1.0");
    assert_eq!(watched["statistics"]["status"], "failed");
    assert_eq!(watched["statistics"]["counts"]["succeeded"], 2);
    assert_eq!(watched["failures"].as_array().unwrap().len(), 1);
    assert_eq!(watched["failures"][0]["return_code"], 1);
    assert_eq!(watched["failures"][0]["computer"], 2);
}

#[test]
fn a_container_whose_jobs_all_succeed_watches_to_status_zero() {
    let server = Server::start();
    let pc = server.computer("pc1");
    let package = server.package("p", "1");
    let container = deploy(&server, "ok", &[pc], &[package], &[]);
    server.finish(pc, 1, 0);
    let run = server
        .oco(&["containers", "watch", &container.to_string()])
        .ok();
    assert_eq!(
        run.stdout,
        "container 1 \"ok\" succeeded: 1 job, succeeded 1\n"
    );
    assert_eq!(run.stderr, "container 1 \"ok\": 1/1 ended; succeeded 1\n");

    // A disabled container is watched too, with a word on why it may not move.
    let disabled = deploy(&server, "off", &[pc], &[package], &["--disabled"]);
    server.finish(pc, 2, 0);
    let run = server
        .oco(&["containers", "watch", &disabled.to_string()])
        .ok();
    assert!(
        run.stderr.starts_with(
            "container 2 is disabled: its jobs are not handed out until it is enabled\n"
        ),
        "{}",
        run.stderr
    );
    server
        .oco(&["containers", "watch", "42"])
        .fails_with("HTTP 404 not-found");
}

#[test]
fn deploy_with_watch_follows_the_new_container() {
    let server = Server::start();
    let pc = server.computer("pc1");
    let package = server.package("p", "1");
    // The job is finished while the watch looks; the deploy itself is what `oco` does.
    let mut child = command(
        server.home.path(),
        &[("OCO_SERVER", &server.url), ("OCO_TOKEN", TOKEN)],
        &[
            "containers",
            "deploy",
            "--name",
            "now",
            "--computer",
            &pc.to_string(),
            "--package",
            &package.to_string(),
            "--watch",
            "--interval",
            "0.05",
        ],
    )
    .spawn()
    .unwrap();
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    read_until(&mut progress, "0/1 ended; waiting 1");
    server.finish(pc, 1, 7);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("created container 1 \"now\" with 1 job\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("container 1 \"now\" failed: 1 job, failed 1\n"),
        "{stdout}"
    );
}

#[test]
fn deploy_sends_the_policy_and_shows_the_lints_warnings() {
    let server = Server::start();
    let pc = server.computer("pc1");
    let package = server.package("p", "1");
    let run = server
        .oco(&[
            "containers",
            "deploy",
            "--name",
            "evening",
            "--computer",
            &pc.to_string(),
            "--package",
            &package.to_string(),
            "--priority",
            "-5",
            "--sequence-mode",
            "abort-after-failed",
            "--ip-ranges",
            "10.0.0.0/8, !10.66.0.0/16",
            "--time-zone",
            "Europe/Berlin",
            "--post-action-timeout",
            "none",
            "--end",
            "2026-12-31T00:00:00Z",
            "--wake",
        ])
        .ok();
    assert!(
        run.stderr.starts_with(
            "warning: container.policy.ip_ranges\n  entry 2 `!10.66.0.0/16` never applies"
        ),
        "{}",
        run.stderr
    );
    let container = server.get("/containers/1");
    assert_eq!(container["policy"]["priority"], -5);
    assert_eq!(container["policy"]["sequence_mode"], "abort-after-failed");
    assert_eq!(container["policy"]["time_zone"], "Europe/Berlin");
    assert_eq!(container["policy"]["post_action_timeout"], Value::Null);
    assert_eq!(container["schedule"]["end"], "2026-12-31T00:00:00Z");
    assert_eq!(container["wol"]["wake"], true);

    // A constraint that does not parse: the server's message once, then its caret rendering.
    let refused = server.oco(&[
        "containers",
        "deploy",
        "--name",
        "bad",
        "--computer",
        "1",
        "--package",
        "1",
        "--time-frames",
        "Mon-Fri 25:00",
    ]);
    assert_eq!(refused.code, 1);
    assert_eq!(
        refused.stderr,
        "error: HTTP 400 invalid-constraint: entry 1 `Mon-Fri 25:00`: hour 25 is out of range; \
         hours are 0 to 23, and `24:00` may end a window (field `container.policy.time_frames`)\n  \
         Mon-Fri 25:00\n          ^^\n"
    );

    let listed = server.oco(&["containers", "list"]).ok();
    let row = &rows(&listed.stdout)[1];
    assert_eq!(row[..3], ["1", "evening", "true"]);
    assert_eq!(row[4], "2026-12-31T00:00:00Z");
    assert_eq!(row[5], "-5");
}

#[test]
fn explain_says_why_a_job_is_held_and_for_which_address() {
    let server = Server::start();
    let pc = server.computer("pc1");
    let package = server.package("p", "1");
    deploy(&server, "later", &[pc], &[package], &["--disabled"]);

    let run = server.oco(&["jobs", "explain", "1"]).ok();
    assert_eq!(
        run.stdout,
        "job 1 is held: its container or rule is disabled\n  the same for every address\n"
    );
    let run = server
        .oco(&["jobs", "explain", "1", "--address", "192.0.2.7"])
        .ok();
    assert_eq!(
        run.stdout,
        "job 1 is held: its container or rule is disabled\n  decided for 192.0.2.7, the \
         address given\n"
    );
    let explained = server
        .oco(&["--json", "jobs", "explain", "1", "--address", "192.0.2.7"])
        .ok()
        .json();
    assert_eq!(explained, server.get("/jobs/1/explain?address=192.0.2.7"));
    assert_eq!(explained["reason"]["reason"], "disabled");

    // Held by the IP ranges for one address, deliverable for another.
    deploy(
        &server,
        "lan",
        &[pc],
        &[package],
        &["--ip-ranges", "10.0.0.0/8"],
    );
    let run = server
        .oco(&["jobs", "explain", "2", "--address", "192.0.2.7"])
        .ok();
    assert!(
        run.stdout
            .starts_with("job 2 is held: the IP ranges do not allow"),
        "{}",
        run.stdout
    );
    let run = server
        .oco(&["jobs", "explain", "2", "--address", "10.1.2.3"])
        .ok();
    assert!(
        run.stdout.starts_with("job 2 is deliverable"),
        "{}",
        run.stdout
    );
    let run = server.oco(&["jobs", "explain", "2"]).ok();
    assert!(
        run.stdout
            .starts_with("job 2 is held or not depending on the agent's address"),
        "{}",
        run.stdout
    );

    server.finish(pc, 2, 0);
    let run = server.oco(&["jobs", "explain", "2"]).ok();
    assert_eq!(
        run.stdout,
        "job 2 is not pending (succeeded): nothing is handed out\n"
    );
    server
        .oco(&["jobs", "explain", "9"])
        .fails_with("HTTP 404 not-found");
    server
        .oco(&["jobs", "explain", "1", "--address", "not-an-ip"])
        .fails_with("HTTP 400 malformed");
}

#[test]
fn jobs_list_with_the_apis_filters_and_show_with_the_whole_output() {
    let server = Server::start();
    let pcs = [server.computer("pc1"), server.computer("pc2")];
    let package = server.package("p", "1");
    deploy(&server, "c", &pcs, &[package], &[]);
    server.finish(pcs[0], 1, 0);
    server.finish(pcs[1], 2, 2);

    let failed = server
        .oco(&["jobs", "list", "--container", "1", "--state", "failed"])
        .ok();
    let lines = rows(&failed.stdout);
    assert_eq!(
        lines[0],
        ["ID", "ORIGIN", "COMPUTER", "PACKAGE", "KIND", "STATE", "RC", "ATTEMPT", "FINISHED"]
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1][..8],
        ["2", "container:1", "2", "1", "install", "failed", "2", "1"]
    );
    let on_pc1 = server
        .oco(&["--json", "jobs", "list", "--computer", "1"])
        .ok()
        .json();
    assert_eq!(on_pc1.as_array().unwrap().len(), 1);
    assert_eq!(on_pc1[0]["state"], "succeeded");
    assert_eq!(on_pc1[0]["output"], "exit 0\n");

    let shown = server.oco(&["jobs", "show", "2"]).ok();
    assert!(shown.stdout.starts_with("id    "), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("\noutput:\n  exit 2\n"),
        "{}",
        shown.stdout
    );
    server
        .oco(&["jobs", "list", "--state", "sideways"])
        .fails_with("HTTP 400 malformed");
}

#[test]
fn renew_puts_failed_jobs_back_in_place_or_into_a_new_container() {
    let server = Server::start();
    let pcs = [server.computer("pc1"), server.computer("pc2")];
    let package = server.package("p", "1");
    deploy(&server, "c", &pcs, &[package], &[]);
    server.finish(pcs[0], 1, 0);
    server.finish(pcs[1], 2, 1);

    let run = server.oco(&["containers", "renew", "1", "--job", "1"]).ok();
    assert_eq!(
        run.stdout,
        "renewed 0 jobs\nskipped 1 (not failed, or its package or computer is gone): 1\n"
    );
    let run = server.oco(&["containers", "renew", "1"]).ok();
    assert_eq!(
        run.stdout,
        "renewed 1 job: 2\nskipped 1 (not failed, or its package or computer is gone): 1\n"
    );
    let job = server.store.job(JobId(2)).unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Waiting, 2));

    server.finish(pcs[1], 2, 1);
    let renewed = server
        .oco(&["--json", "containers", "renew", "1", "--into", "again"])
        .ok()
        .json();
    assert_eq!(renewed["renewed"], json!([2]));
    assert_eq!(renewed["container"], 2);
    assert_eq!(server.get("/containers/2")["name"], "again");
    server
        .oco(&["containers", "renew", "5"])
        .fails_with("HTTP 404");
}

#[test]
fn rules_are_listed_shown_and_their_failed_jobs_renewed() {
    let server = Server::start();
    let pc = server.computer("pc1");
    let package = server.package("p", "1");
    let computers = server.post("/computer-groups", json!({"name": "lab"}))["id"].clone();
    server.put(
        &format!("/computer-groups/{computers}/members"),
        json!({"members": [pc]}),
    );
    let packages = server.post("/package-groups", json!({"name": "base"}))["id"].clone();
    server.put(
        &format!("/package-groups/{packages}/members"),
        json!({"members": [package]}),
    );
    server.post(
        "/rules",
        json!({"name": "lab base", "computer_group": computers, "package_group": packages}),
    );
    let jobs = server.get("/jobs?origin=rule:1");
    let job = jobs["items"][0]["id"].as_i64().unwrap();
    server.finish(pc, job, 9);

    let listed = server.oco(&["rules", "list"]).ok();
    assert_eq!(
        rows(&listed.stdout)[1][..6],
        ["1", "lab base", "true", "1", "1", "0"]
    );
    let shown = server.oco(&["rules", "show", "1", "--json"]).ok().json();
    assert_eq!(shown, server.get("/rules/1"));

    let run = server.oco(&["rules", "renew", "1"]).ok();
    assert_eq!(run.stdout, format!("renewed 1 job: {job}\n"));
    assert_eq!(
        server.store.job(JobId(job)).unwrap().state,
        JobState::Waiting
    );
}

#[test]
fn a_wrong_token_is_the_servers_401() {
    let server = Server::start();
    server
        .oco_with(
            &[("OCO_SERVER", &server.url), ("OCO_TOKEN", "wrong")],
            &["computers", "list"],
        )
        .fails_with("error: HTTP 401 unauthorized: a valid admin token is required");
    // A listing refused at once leaves stdout empty, not half an array.
    let run = server
        .oco_with(
            &[("OCO_SERVER", &server.url), ("OCO_TOKEN", "wrong")],
            &["--json", "jobs", "list"],
        )
        .fails_with("HTTP 401");
    assert_eq!(run.stdout, "");
}

#[test]
fn an_unreachable_server_or_a_bad_address_is_a_clear_error() {
    let server = Server::start();
    let closed = format!("http://{}", closed_port());
    server
        .oco_with(
            &[("OCO_SERVER", &closed), ("OCO_TOKEN", TOKEN)],
            &["computers", "list"],
        )
        .fails_with(&format!(
            "error: cannot talk to the server at {closed}/api/v1/computers?limit=1000: \
             connection refused"
        ));
    for bad in ["127.0.0.1:8080", "ftp://example.org", "http://"] {
        server
            .oco_with(
                &[("OCO_SERVER", bad), ("OCO_TOKEN", TOKEN)],
                &["computers", "list"],
            )
            .fails_with(&format!(
                "error: the server address `{bad}` is not an http:// or https:// URL with a host"
            ));
    }
}

/// A server of one answer: accepts connections and answers each with `answer`, after reading
/// the request's head.
fn fake_server(answer: impl Fn(&mut std::net::TcpStream) + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            answer(&mut stream);
        }
    });
    format!("http://{addr}")
}

#[test]
fn answers_that_are_not_the_apis_are_errors_not_panics() {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let run = |url: &str, args: &[&str]| {
        let mut all = vec!["--server", url, "--token", "t"];
        all.extend_from_slice(args);
        support::oco(home.path(), &[], &all)
    };

    let html = fake_server(|stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html>hi</ht>",
        );
    });
    let out = run(&html, &["computers", "show", "1"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("/api/v1/computers/1 is not JSON"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("<html>hi</ht>"), "{}", out.stderr);

    let proxy_error = fake_server(|stream| {
        let _ =
            stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway");
    });
    let out = run(&proxy_error, &["computers", "list"]);
    assert!(out.stderr.contains("HTTP 502 from"), "{}", out.stderr);
    assert!(out.stderr.contains(": Bad Gateway"), "{}", out.stderr);

    let moved = fake_server(|stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 301 Moved\r\nLocation: https://elsewhere.example/api/v1/computers\r\n\
              Content-Length: 0\r\n\r\n",
        );
    });
    let out = run(&moved, &["computers", "list"]);
    assert!(
        out.stderr
            .contains("redirects to https://elsewhere.example/api/v1/computers"),
        "{}",
        out.stderr
    );

    // Listings that are not the API's: no `items`, or a `next` that would page forever.
    let shapeless = fake_server(|stream| {
        let body = br#"{"computers":[]}"#;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    });
    let out = run(&shapeless, &["computers", "list"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("is not the API's: a page has `items` and `next`"),
        "{}",
        out.stderr
    );
    let stuck = fake_server(|stream| {
        let body = br#"{"items":[{"id":1}],"next":1}"#;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    });
    let out = run(&stuck, &["computers", "list", "--limit", "100000"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("`next` (1) does not advance past 1"),
        "{}",
        out.stderr
    );

    // 65 MiB of a JSON string: read up to the cap, then refused.
    let huge = fake_server(|stream| {
        let length = 65 * 1024 * 1024;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n\""
        );
        let _ = stream.write_all(head.as_bytes());
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..65 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let out = run(&huge, &["computers", "show", "1"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("is over 64 MiB"), "{}", out.stderr);

    // A server that never answers: the read timeout ends the wait.
    let silent = fake_server(|stream| {
        let mut buf = [0u8; 1];
        let _ = std::io::Read::read(stream, &mut buf);
    });
    let out = run(&silent, &["--read-timeout", "0.3", "computers", "list"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn usage_mistakes_are_status_two_and_help_is_status_zero() {
    let home = tempfile::tempdir().unwrap();
    let out = support::oco(home.path(), &[], &["computers", "show", "one"]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("invalid value 'one'"), "{}", out.stderr);
    let out = support::oco(
        home.path(),
        &[],
        &["containers", "watch", "1", "--interval", "0"],
    );
    assert_eq!(out.code, 2, "{out:#?}");
    let out = support::oco(home.path(), &[], &["--help"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Exit status: 0 done"), "{}", out.stdout);
}

#[test]
fn tokens_are_listed_created_once_used_and_revoked() {
    let server = Server::start();
    let listed = server.oco(&["tokens", "list"]).ok();
    let lines = rows(&listed.stdout);
    assert_eq!(lines[0], ["ID", "NAME", "ACCESS", "CREATED"]);
    assert_eq!(lines[1], ["1", "admin", "full", "2026-11-24T12:00:00Z"]);

    // The secret alone on stdout, for `TOKEN=$(oco tokens create …)`.
    let created = server
        .oco(&["tokens", "create", "grafana", "--read-only"])
        .ok();
    let secret = created.stdout.trim_end().to_owned();
    assert!(
        secret.starts_with("oco_") && !secret.contains(' '),
        "{secret}"
    );
    assert_eq!(created.stdout, format!("{secret}\n"));
    assert_eq!(
        created.stderr,
        "created token 2 \"grafana\" (read-only); its secret above is shown only now\n"
    );

    // A read-only token reads, and is refused any change.
    let as_grafana = [
        ("OCO_SERVER", server.url.as_str()),
        ("OCO_TOKEN", secret.as_str()),
    ];
    server.oco_with(&as_grafana, &["tokens", "list"]).ok();
    server
        .oco_with(&as_grafana, &["families", "create", "x"])
        .fails_with("error: HTTP 403 forbidden: the token `grafana` is read-only");

    let shown = server.oco(&["--json", "tokens", "show", "2"]).ok().json();
    assert_eq!(shown, server.get("/tokens/2"));
    assert_eq!(shown["access"], "read-only");
    assert!(
        shown.get("token").is_none(),
        "the secret is shown once: {shown}"
    );

    let full = server
        .oco(&["--json", "tokens", "create", "ci"])
        .ok()
        .json();
    assert_eq!(
        (full["id"].clone(), full["access"].clone()),
        (json!(3), json!("full"))
    );
    assert!(full["token"].as_str().unwrap().starts_with("oco_"));

    assert_eq!(
        server.oco(&["tokens", "revoke", "2"]).ok().stdout,
        "revoked token 2\n"
    );
    server
        .oco_with(&as_grafana, &["tokens", "list"])
        .fails_with("HTTP 401 unauthorized");
    server
        .oco(&["tokens", "revoke", "2"])
        .fails_with("HTTP 404 not-found");
    server
        .oco(&["tokens", "create", "ci"])
        .fails_with("HTTP 409 duplicate")
        .fails_with("(field `name`)");

    // The last full-access token stays.
    server.oco(&["tokens", "revoke", "3"]).ok();
    server
        .oco(&["tokens", "revoke", "1"])
        .fails_with("HTTP 409 conflict");
    let left: Vec<String> = rows(&server.oco(&["tokens", "list"]).ok().stdout)[1..]
        .iter()
        .map(|row| row[1].clone())
        .collect();
    assert_eq!(left, ["admin"]);
}
