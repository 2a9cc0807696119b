//! `vigilctl`: the command line for integrators and district staff, talking
//! to Vigil devices through the district's MQTT 5 broker (see `docs/mqtt.md`).
//!
//! Exit codes are listed in [`failure`] and in `vigilctl --help`.

mod cli;
mod cmd;
mod conn;
mod failure;
mod fleet;
mod os_job;
mod render;
mod request;
mod topics;
mod wait;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(result) = cmd::run_local(&cli) {
        return exit(result);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    exit(runtime.block_on(cmd::run(cli)))
}

fn exit(result: Result<(), failure::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
