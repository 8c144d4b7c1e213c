//! `oco-server-min`: the thin server that OCO agents talk to.
//!
//! **Not implemented yet.** The agent wire protocol, the admin API and housekeeping arrive in a
//! later step. Until then the binary says so and exits with status 2, so that nobody mistakes it
//! for a server.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "oco-server-min {}: the server is not implemented yet; \
         it arrives with the server milestone (see README.md).",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
