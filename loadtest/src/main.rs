//! The `loadtest` binary: parse flags, run, print `Error: {e}` on failure, exit with the verdict.

use std::process::ExitCode;

use clap::Parser;
use loadtest::{Opts, EXIT_USAGE};

fn main() -> ExitCode {
    let opts = Opts::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("loadtest")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(loadtest::run(opts)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
