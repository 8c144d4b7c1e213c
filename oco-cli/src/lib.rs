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
use std::path::PathBuf;

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
    /// The file to upload is not a regular file (a directory, a device).
    #[error("{} is not a regular file", .path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// The file to upload does not start as a zip archive, which the server would refuse.
    #[error(
        "{} is not a zip archive (it does not start with `PK\\x03\\x04`); a payload is the \
         archive the agent unpacks",
        .path.display()
    )]
    NotAZip {
        /// The file.
        path: PathBuf,
    },
    /// The file to upload grew or shrank while it was sent.
    #[error(
        "{} changed while it was sent: {announced} bytes were announced, {read} read; upload \
         it again",
        .path.display()
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Its length when the upload started.
        announced: u64,
        /// What was read of it.
        read: u64,
    },
    /// The server recorded another digest than the file's.
    #[error(
        "the server recorded the payload of package {package} with SHA-256 {recorded}, but {} \
         has {local}; upload it again",
        .path.display()
    )]
    DigestMismatch {
        /// The package.
        package: i64,
        /// The file.
        path: PathBuf,
        /// The digest the server recorded (`(none)` if it recorded none).
        recorded: String,
        /// The file's digest.
        local: String,
    },
    /// A package was created, and its payload's upload then failed.
    #[error(
        "package {package} was created, but uploading its payload failed: {source}; upload it \
         with `oco packages upload {package} FILE`"
    )]
    PayloadNotUploaded {
        /// The created package.
        package: i64,
        /// Why the upload failed.
        source: Box<Failure>,
    },
    /// A successful answer without a field the client needs.
    #[error("the server's answer has no {what}: {answer}")]
    Unexpected {
        /// The field, in words.
        what: &'static str,
        /// The answer, as JSON.
        answer: String,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_local_failure_says_what_to_do() {
        let path = PathBuf::from("/tmp/p.zip");
        let cases = [
            (
                Failure::NotAFile {
                    path: "/tmp".into(),
                },
                "/tmp is not a regular file",
            ),
            (
                Failure::NotAZip { path: path.clone() },
                "/tmp/p.zip is not a zip archive (it does not start with `PK\\x03\\x04`); a \
                 payload is the archive the agent unpacks",
            ),
            (
                Failure::FileChanged {
                    path: path.clone(),
                    announced: 10,
                    read: 12,
                },
                "/tmp/p.zip changed while it was sent: 10 bytes were announced, 12 read; upload \
                 it again",
            ),
            (
                Failure::DigestMismatch {
                    package: 3,
                    path: path.clone(),
                    recorded: "ab".into(),
                    local: "cd".into(),
                },
                "the server recorded the payload of package 3 with SHA-256 ab, but /tmp/p.zip \
                 has cd; upload it again",
            ),
            (
                Failure::PayloadNotUploaded {
                    package: 4,
                    source: Box::new(Failure::NotAZip { path }),
                },
                "package 4 was created, but uploading its payload failed: /tmp/p.zip is not a \
                 zip archive (it does not start with `PK\\x03\\x04`); a payload is the archive \
                 the agent unpacks; upload it with `oco packages upload 4 FILE`",
            ),
            (
                Failure::Unexpected {
                    what: "token",
                    answer: "{}".into(),
                },
                "the server's answer has no token: {}",
            ),
        ];
        for (failure, message) in cases {
            assert_eq!(failure.to_string(), message);
        }
    }

    #[test]
    fn requests_keep_the_servers_words() {
        let failure = Failure::from(client::Error::Api {
            status: 404,
            code: "not-found".into(),
            message: "computer 9 not found".into(),
            field: None,
            detail: serde_json::Value::Null,
        });
        assert_eq!(
            failure.to_string(),
            "HTTP 404 not-found: computer 9 not found"
        );
        let failure = Failure::from(client::Error::Api {
            status: 400,
            code: "invalid".into(),
            message: "must be between 1 and 1000, got 0".into(),
            field: Some("limit".into()),
            detail: serde_json::Value::Null,
        });
        assert_eq!(
            failure.to_string(),
            "HTTP 400 invalid: must be between 1 and 1000, got 0 (field `limit`)"
        );
    }
}
