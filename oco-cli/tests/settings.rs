//! Where `oco` finds the server and the token, through the binary: flags over the environment
//! over the config file, the default file's place, token files, and the refusal of files that
//! others may read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::{closed_port, Server, TOKEN};

/// Writes `text` to `path` with permission bits `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let server = Server::start();
    server.computer("pc1");
    let closed = format!("http://{}", closed_port());
    let config = server.home.path().join(".config/oco/config.toml");
    write(
        &config,
        &format!("server = \"{closed}\"\ntoken = \"{TOKEN}\"\n"),
        0o600,
    );

    // The file alone: its server, which is closed.
    server
        .oco_with(&[], &["computers", "list"])
        .fails_with(&format!("cannot talk to the server at {closed}/api/v1"));
    // The environment's server wins over the file's; the token still comes from the file.
    server
        .oco_with(&[("OCO_SERVER", &server.url)], &["computers", "list"])
        .ok();
    // The flag wins over the environment, either way round.
    server
        .oco_with(
            &[("OCO_SERVER", &closed)],
            &["--server", &server.url, "computers", "list"],
        )
        .ok();
    server
        .oco_with(
            &[("OCO_SERVER", &server.url)],
            &["--server", &closed, "computers", "list"],
        )
        .fails_with(&closed);
    // A token of a higher layer wins: a wrong one in the environment is used, and refused.
    server
        .oco_with(
            &[("OCO_SERVER", &server.url), ("OCO_TOKEN", "wrong")],
            &["computers", "list"],
        )
        .fails_with("HTTP 401");
    server
        .oco_with(
            &[("OCO_SERVER", &server.url), ("OCO_TOKEN", "wrong")],
            &["--token", TOKEN, "computers", "list"],
        )
        .ok();
}

#[test]
fn the_default_file_is_under_xdg_config_home_when_it_is_set() {
    let server = Server::start();
    let xdg = server.home.path().join("xdg");
    write(
        &xdg.join("oco/config.toml"),
        &format!("server = \"{}\"\ntoken = \"{TOKEN}\"\n", server.url),
        0o600,
    );
    server
        .oco_with(
            &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
            &["computers", "list"],
        )
        .ok();
    // Without it, ~/.config/oco/config.toml, which does not exist here.
    server
        .oco_with(&[], &["computers", "list"])
        .fails_with(&format!(
            "error: no server address: give --server URL, set OCO_SERVER, or put `server = \
             \"URL\"` in the config file {}/.config/oco/config.toml (not found)",
            server.home.path().display()
        ));
    server
        .oco_with(&[("OCO_SERVER", &server.url)], &["computers", "list"])
        .fails_with("error: no admin token: give --token or --token-file");
}

#[test]
fn a_named_config_file_must_exist_and_be_valid() {
    let server = Server::start();
    let missing = server.home.path().join("nowhere.toml");
    server
        .oco_with(
            &[],
            &["--config", missing.to_str().unwrap(), "computers", "list"],
        )
        .fails_with(&format!("cannot read {}", missing.display()));
    server
        .oco_with(
            &[("OCO_CONFIG", missing.to_str().unwrap())],
            &["computers", "list"],
        )
        .fails_with(&format!("cannot read {}", missing.display()));

    let typo = server.home.path().join("typo.toml");
    write(&typo, "servr = \"http://x\"\n", 0o600);
    server
        .oco_with(
            &[],
            &["--config", typo.to_str().unwrap(), "computers", "list"],
        )
        .fails_with("typo.toml is not a valid config file")
        .fails_with("unknown field `servr`");
}

#[cfg(unix)]
#[test]
fn a_file_holding_the_token_that_others_may_read_is_refused() {
    let server = Server::start();
    let config = server.home.path().join("shared.toml");
    write(
        &config,
        &format!("server = \"{}\"\ntoken = \"{TOKEN}\"\n", server.url),
        0o644,
    );
    let path = config.to_str().unwrap();
    server
        .oco_with(&[], &["--config", path, "computers", "list"])
        .fails_with(&format!(
            "{path} holds the admin token but others may access it (mode 0644); make it \
             private with `chmod 600 {path}`"
        ));
    write(
        &config,
        &format!("server = \"{}\"\ntoken = \"{TOKEN}\"\n", server.url),
        0o600,
    );
    server
        .oco_with(&[], &["--config", path, "computers", "list"])
        .ok();

    // A file with no token may be read by anyone.
    write(&config, &format!("server = \"{}\"\n", server.url), 0o644);
    server
        .oco_with(
            &[("OCO_TOKEN", TOKEN)],
            &["--config", path, "computers", "list"],
        )
        .ok();
}

#[test]
fn a_token_file_is_read_trimmed_and_found_beside_the_config_file() {
    let server = Server::start();
    let dir = server.home.path().join("conf");
    write(&dir.join("token"), &format!("{TOKEN}\n"), 0o600);
    let config = dir.join("config.toml");
    write(
        &config,
        &format!("server = \"{}\"\ntoken-file = \"token\"\n", server.url),
        0o644,
    );
    server
        .oco_with(
            &[],
            &["--config", config.to_str().unwrap(), "computers", "list"],
        )
        .ok();
    server
        .oco_with(
            &[("OCO_SERVER", &server.url)],
            &[
                "--token-file",
                dir.join("token").to_str().unwrap(),
                "computers",
                "list",
            ],
        )
        .ok();
    server
        .oco_with(
            &[
                ("OCO_SERVER", &server.url),
                ("OCO_TOKEN_FILE", dir.join("token").to_str().unwrap()),
            ],
            &["computers", "list"],
        )
        .ok();

    write(&dir.join("empty"), "\n", 0o600);
    server
        .oco_with(
            &[("OCO_SERVER", &server.url)],
            &[
                "--token-file",
                dir.join("empty").to_str().unwrap(),
                "computers",
                "list",
            ],
        )
        .fails_with("is empty");
    #[cfg(unix)]
    {
        write(&dir.join("token"), TOKEN, 0o640);
        server
            .oco_with(
                &[("OCO_SERVER", &server.url)],
                &[
                    "--token-file",
                    dir.join("token").to_str().unwrap(),
                    "computers",
                    "list",
                ],
            )
            .fails_with("others may access it (mode 0640)");
    }
    server
        .oco_with(
            &[
                ("OCO_SERVER", &server.url),
                ("OCO_TOKEN", TOKEN),
                ("OCO_TOKEN_FILE", "/x"),
            ],
            &["computers", "list"],
        )
        .fails_with("the environment gives both a token and a token file; give one");
}
