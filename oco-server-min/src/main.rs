//! `oco-server-min`: parses the options, opens the store and serves (see the crate docs).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "oco-server-min {}: the server's binary is being wired up (see README.md).",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
