//! `oco`: see the `oco_cli` crate.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(oco_cli::run(std::env::args_os(), &|name| {
        std::env::var_os(name)
    }))
}
