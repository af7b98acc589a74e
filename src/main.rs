//! The `courier` server binary: parse flags, init tracing, bind, serve until Ctrl-C/SIGTERM.

use clap::Parser;
use courier::cli::Cli;
use courier::{server, shutdown, AppState};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("courier=info")),
        )
        .init();
    let cli = Cli::parse();
    let listen = cli.listen;
    let result = async {
        let state = AppState::new(cli.into_config()?)?;
        let listener = server::bind(listen)?;
        tracing::info!(addr = %listener.local_addr()?, layer = state.hub().layer().name(), "courier listening");
        server::run(listener, state.clone(), shutdown::signal()).await?;
        // Tidy broker state (core layer: remove this process's group memberships).
        state.hub().layer().close().await;
        Ok::<(), courier::Error>(())
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
