//! The `courier` server binary: parse flags, init logging, bind, serve until Ctrl-C/SIGTERM.

use clap::Parser;
use courier::cli::{Cli, LogFormat};
use courier::{server, shutdown, AppState};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("courier=info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let (listen, admin, reuse_port) = (cli.listen, cli.admin_listen, cli.reuse_port);
    // One descriptor per connection: take the hard limit (the server sizes its budget from it).
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    let result = async {
        let state = AppState::new(cli.into_config()?)?;
        let listener = server::bind(listen, reuse_port)?;
        let admin = admin.map(|a| server::bind(a, false)).transpose()?;
        tracing::info!(addr = %listener.local_addr()?, layer = state.hub().layer().name(), "courier listening");
        server::run_with_admin(listener, admin, state, shutdown::signal()).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
