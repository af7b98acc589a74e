//! The `loadtest` binary: parse flags, run a scenario or a subcommand, print `Error: {e}` on
//! failure, exit with the verdict.

use std::process::ExitCode;

use clap::Parser;
use loadtest::opts::Command;
use loadtest::{Opts, EXIT_PASS, EXIT_USAGE};

fn main() -> ExitCode {
    let mut opts = Opts::parse();
    let command = opts.command.take();
    // The offline subcommands need no runtime.
    let result = match command {
        Some(Command::Capacity(c)) => loadtest::sizing::run(&c).map(|()| EXIT_PASS),
        Some(Command::Compare(c)) => loadtest::baseline::run(&c).map_err(Into::into),
        Some(Command::Merge(m)) => loadtest::merge::run(&m),
        online => match tokio::runtime::Builder::new_multi_thread()
            .thread_name("loadtest")
            .enable_all()
            .build()
        {
            Err(e) => Err(anyhow::anyhow!("starting the runtime: {e}")),
            Ok(rt) => rt.block_on(async move {
                match online {
                    Some(Command::Conform(c)) => loadtest::conform::run(&c).await,
                    Some(Command::Ab(c)) => loadtest::ab::run(&c).await,
                    _ => loadtest::run(opts).await.map(|o| o.exit_code),
                }
            }),
        },
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
