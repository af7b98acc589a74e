//! The `loadtest` binary: parse flags, run (or `capacity`), print `Error: {e}` on failure, exit
//! with the verdict.

use std::process::ExitCode;

use clap::Parser;
use loadtest::opts::Command;
use loadtest::{Opts, EXIT_PASS, EXIT_USAGE};

fn main() -> ExitCode {
    let mut opts = Opts::parse();
    let offline = match opts.command.take() {
        Some(Command::Capacity(c)) => Some(loadtest::sizing::run(&c).map(|()| EXIT_PASS)),
        Some(Command::Compare(c)) => Some(loadtest::baseline::run(&c).map_err(Into::into)),
        None => None,
    };
    if let Some(result) = offline {
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        };
    }
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
