//! loadtest: spawns thousands of authenticated WebSocket clients against courier (embedded in this
//! process by default, or an external server of the same protocol), fires `group_send` bursts or a
//! paced event rate, and accounts for every delivery exactly: received, lost, duplicated, reordered,
//! with latency measured from each event's intended send time (coordinated-omission-free).
//!
//! # Layout
//! The pipeline is `Opts → Plan → workers → stats → Report` (STYLE.md §13):
//! - [`opts`]: the command line (clap); every scenario value can be overridden by a flag.
//! - [`scenario`]: TOML scenario files (unknown keys rejected).
//! - [`plan`]: flags + scenario → a validated [`plan::Plan`], before any I/O.
//! - [`arrival`]: the burst and rate arrival models, resolved from flags over `[publish]`.
//! - [`threshold`]: `p99_ms<5`-style checks and the metric names they may use.
//! - [`target`]: `ws://` target parsing and the loopback-only rule.
//! - [`limits`]: open-file and ephemeral-port pre-flight checks, saying what to change.
//! - [`tokens`]: simplejwt-format tokens, minted or read from a file.
//! - [`embedded`]: courier's library on 127.0.0.1:0 in its own runtime threads.
//! - [`client`]: one connection: tungstenite's upgrade, then frames read from the raw socket.
//! - [`wire`]: the WebSocket frame reader (reusable buffer, no copies) and masked client frames.
//! - [`connect`]: the connect phase (ramp, bounded concurrency, errors by class, handshake latency).
//! - [`frame`]: cheap borrowed parsing of server frames.
//! - [`seq`]: per-connection sequence accounting (gaps, duplicates, reordering).
//! - [`worker`]: receivers — one task per healthy connection, one set of stats per worker.
//! - [`slow`]: slow readers, which stall on purpose.
//! - [`publisher`]: the [`publisher::Publisher`] trait (embedded, HTTP, Redis pub/sub and core).
//! - [`broker`]: Redis URL/prefix and the embedded server's channel layer, kept in agreement.
//! - [`driver`]: arrival models (burst, rate) → stamped events → publisher lanes.
//! - [`stats`]: per-worker histograms and counters, merged with `add()`; the run clock.
//! - [`sysinfo`]: CPU and RSS from `/proc`.
//! - [`progress`]: live progress on a TTY.
//! - [`runner`]: one run from start to end; [`findmax`]: the capacity search.
//! - [`report`]: the versioned report and its text, JSON, JUnit and HTML renderings.
//! - [`capacity`]: `loadtest capacity`, a deployment sized from a report's measured costs.

pub mod arrival;
pub mod broker;
pub mod capacity;
pub mod client;
pub mod connect;
pub mod driver;
pub mod embedded;
pub mod error;
pub mod findmax;
pub mod frame;
pub mod limits;
pub mod opts;
pub mod plan;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seq;
pub mod slow;
pub mod stats;
pub mod sysinfo;
pub mod target;
pub mod threshold;
pub mod tokens;
pub mod wire;
pub mod worker;

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};
pub use opts::Opts;
pub use plan::Plan;
pub use report::Report;

/// Exit code when every threshold passed.
pub const EXIT_PASS: u8 = 0;
/// Exit code when a threshold failed or the run was cut short by its duration bound.
pub const EXIT_FAIL: u8 = 1;
/// Exit code for usage and setup errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C (a partial report is still printed).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The result of a run: the report and the exit code it earns.
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// [`EXIT_PASS`], [`EXIT_FAIL`] or [`EXIT_INTERRUPTED`].
    pub exit_code: u8,
}

/// Validates `opts`, runs the plan (or the capacity search), writes the requested outputs and
/// prints the summary. Errors are usage or setup errors (exit 2).
pub async fn run(opts: Opts) -> anyhow::Result<Outcome> {
    let plan = Plan::from_opts(&opts)?;
    let stop = CancellationToken::new();
    let reason: runner::StopReason = Arc::new(OnceLock::new());
    let ctrl_c = {
        let (stop, reason) = (stop.clone(), reason.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = reason.set("interrupted (Ctrl-C)".into());
                stop.cancel();
            }
        })
    };
    let report = match plan.find_max {
        Some(fm) => findmax::find_max(&plan, fm, stop.clone(), reason.clone()).await?,
        None => {
            let data = runner::run_once(&plan, stop.clone(), reason.clone()).await?;
            Report::build(&plan, &data)
        }
    };
    ctrl_c.abort();
    write_outputs(&plan, &report)?;
    let exit_code = if reason.get().is_some_and(|r| r.starts_with("interrupted")) {
        EXIT_INTERRUPTED
    } else if report.passed {
        EXIT_PASS
    } else {
        EXIT_FAIL
    };
    Ok(Outcome { report, exit_code })
}

fn write_outputs(plan: &Plan, report: &Report) -> anyhow::Result<()> {
    let o = &plan.outputs;
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let write = |path: &std::path::Path, text: &str| -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    if let Some(p) = &o.json {
        write(p, &json)?;
    }
    if let Some(p) = &o.junit {
        write(p, &report::junit::render(report))?;
    }
    if let Some(p) = &o.html {
        write(p, &report::html::render(report))?;
    }
    if o.print_json {
        println!("{json}");
    } else {
        print!("{}", report::text::render(report));
        if let Some(fm) = &report.find_max {
            println!(
                "Capacity search: highest passing step {} ({})",
                fm.highest_passing
                    .map_or("none".into(), |n| format!("{n} connections")),
                fm.ended_by
            );
        }
    }
    Ok(())
}
