//! `oco`, the administrators' command-line client of an oco server's admin API.
//!
//! The binary lists and shows computers, packages, containers, rules, jobs and tokens; creates
//! packages and streams their payloads to the server with a progress bar; deploys, and watches
//! a container until its jobs are done; explains why a job is held; renews failed jobs. It
//! speaks only the documented admin API (`/api/v1`, JSON with a bearer token), so it works
//! against any server of that API. Tables for people by default, the API's JSON with `--json`.
//!
//! The library holds what the binary is made of, for tests and for reuse: [`config`] finds the
//! server and the token (flags, then the environment, then a config file), [`client`] makes the
//! requests, [`table`] renders human output, and [`run`] is the whole program.
//!
//! # Examples
//!
//! Where the settings come from: the flags win over the environment, which wins over the file.
//!
//! ```
//! use oco_cli::config::{resolve, Layer, Origin, TokenSource};
//! use oco_cli::table::Table;
//!
//! let flags = Layer { server: Some("http://127.0.0.1:8080".into()), ..Layer::default() };
//! let env = Layer { token: Some("secret".into()), ..Layer::default() };
//! let resolved = resolve(&flags, &env, None, None)?;
//! assert_eq!(resolved.server.1, Origin::Flag);
//! assert_eq!(resolved.token, (TokenSource::Value("secret".into()), Origin::Env));
//!
//! // What `oco computers list` prints, from the API's items.
//! let mut table = Table::new(["ID", "HOSTNAME", "OS"]).align_right(&["ID"]);
//! table.row(["1", "pc-042", "Linux"]);
//! assert_eq!(table.render(), "ID  HOSTNAME  OS\n 1  pc-042    Linux\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! And the program itself, as `main` runs it (here without a server to talk to):
//!
//! ```
//! let status = oco_cli::run(["oco", "computers", "list"], &|_| None);
//! assert_eq!(status, oco_cli::exit::FAILURE); // no server address anywhere
//! ```
//!
//! # Exit status
//!
//! [`exit::SUCCESS`] (0), [`exit::FAILURE`] (1: a refusal, an unreachable server, a bad
//! setting, a file that cannot be read), [`exit::USAGE`] (2: a mistake on the command line),
//! [`exit::JOBS_FAILED`] (3: `containers watch` saw the container end with failed, expired or
//! incompatible jobs).

pub mod cli;
pub mod client;
mod commands;
pub mod config;
pub mod table;
mod upload;
mod watch;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

/// The exit statuses of `oco`.
pub mod exit {
    /// Done.
    pub const SUCCESS: u8 = 0;
    /// An error: the server refused the request, could not be reached, or answered something
    /// unusable; a setting is missing or wrong; a local file cannot be read.
    pub const FAILURE: u8 = 1;
    /// A mistake on the command line (clap's status for usage errors).
    pub const USAGE: u8 = 2;
    /// `containers watch` (or `deploy --watch`): the container's jobs all ended, and at least
    /// one of them failed, expired or was incompatible.
    pub const JOBS_FAILED: u8 = 3;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A request failed.
    #[error(transparent)]
    Request(#[from] client::Error),
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Something else, said in words.
    #[error("{0}")]
    Other(String),
}

/// Runs `oco` with `args` (the program's name first) and the environment `env` reads;
/// returns the exit status ([`exit`]). Output goes to stdout, errors and progress to stderr.
pub fn run<I, T>(args: I, env: &dyn Fn(&str) -> Option<OsString>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let _ = error.print();
            return if error.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match commands::run(&cli, env, &mut out).and_then(|status| {
        out.flush()?;
        Ok(status)
    }) {
        Ok(status) => status,
        // The reader went away (`oco jobs list | head`): nothing more to say.
        Err(Failure::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            exit::SUCCESS
        }
        Err(failure) => {
            report(&failure);
            exit::FAILURE
        }
    }
}

/// Writes `failure` to stderr: the message, then the server's caret rendering or conflicts.
fn report(failure: &Failure) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {failure}");
    if let Failure::Request(client::Error::Api {
        detail, message, ..
    }) = failure
    {
        if let Some(rendered) = detail.get("rendered").and_then(|v| v.as_str()) {
            // The rendering repeats the message above the text and its caret line.
            let rendered = rendered.strip_prefix(message.as_str()).unwrap_or(rendered);
            for line in rendered.trim_start_matches('\n').lines() {
                let _ = writeln!(err, "  {line}");
            }
        }
        if let Some(conflicts) = detail.get("conflicts") {
            let text = serde_json::to_string_pretty(conflicts).unwrap_or_default();
            let _ = writeln!(err, "conflicts:");
            for line in text.lines() {
                let _ = writeln!(err, "  {line}");
            }
        }
    }
}

/// Writes a note to stderr; a stderr that cannot be written is no reason to fail.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
