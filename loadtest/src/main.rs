//! The `loadtest` binary: parse flags, run a scenario or a subcommand, print `Error: {e}` on
//! failure, exit with the verdict.

use std::process::ExitCode;

use clap::Parser;
use loadtest::{Opts, EXIT_USAGE};

fn main() -> ExitCode {
    let opts = Opts::parse();
    let result = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("loadtest")
        .enable_all()
        .build()
    {
        Err(e) => Err(anyhow::anyhow!("starting the runtime: {e}")),
        Ok(rt) => rt.block_on(loadtest::jobs::dispatch(opts)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            let code = e.downcast_ref::<loadtest::Error>();
            ExitCode::from(code.map_or(EXIT_USAGE, loadtest::Error::exit_code))
        }
    }
}
