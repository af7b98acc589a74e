//! loadtest: spawns thousands of authenticated WebSocket clients against courier (embedded in this
//! process by default, or an external server of the same protocol), fires `group_send` bursts or a
//! paced event rate, and accounts for every delivery exactly: received, lost, duplicated, reordered,
//! with latency measured from each event's intended send time (coordinated-omission-free).
//!
//! # Layout
//! The pipeline is `Opts → Plan → session (connect, receive, publish, drain) → stats → Report`
//! (STYLE.md §13). One name per job:
//!
//! Planning
//! - [`opts`]: the command line (clap) and its subcommands; every scenario value can be overridden.
//! - [`scenario`]: TOML scenario files (unknown keys rejected).
//! - [`plan`]: flags + scenario → a validated [`plan::Plan`], before any I/O.
//! - [`arrival`]: the [`arrival::ArrivalModel`] (burst or rate), resolved from flags over `[publish]`.
//! - [`threshold`]: `p99_ms<5` / `p99_ms<=1.2*baseline` checks and the metric names they may use.
//! - [`target`]: `ws://` and `http://` endpoint parsing and the loopback-only rule.
//! - [`limits`]: open-file and ephemeral-port pre-flight checks, saying what to change.
//! - [`tokens`]: simplejwt-format tokens (good, expired, refresh), minted or read from a file.
//!
//! One run
//! - [`session`]: one run of a plan from start to end, every phase bounded; its raw results.
//! - [`embedded_server`]: courier's library on 127.0.0.1:0 in its own runtime threads.
//! - [`connect`]: the connect phase (ramp, bounded concurrency, errors by class, handshake latency).
//! - [`client`]: one connection: tungstenite's upgrade, then frames read from the raw socket.
//! - [`wire`]: the WebSocket frame reader (reusable buffer, no copies) and masked client frames.
//! - [`worker`]: the receivers — one task per healthy connection, one set of stats per worker;
//!   [`slow`]: slow readers, which stall on purpose.
//! - [`frame`]: cheap borrowed parsing of server frames; [`seq`]: per-connection sequence
//!   accounting (gaps, duplicates, reordering).
//! - [`publisher`]: the [`publisher::Publisher`] trait (in-process hub, HTTP, Redis pub/sub and
//!   core) and [`publisher::lane`], which runs the arrival schedule through one publisher.
//! - [`broker`]: Redis URL/prefix and the embedded server's channel layer, kept in agreement.
//! - [`stats`]: per-worker histograms and counters, merged with `add()`; the run clock.
//! - [`latency_times`]: latency per 100 ms interval (by receive and by send time) for charts.
//! - `meters`: a session's CPU and RSS readings at its phase boundaries, its sampler and its
//!   `--server-metrics` scrapes; [`sampler`]: connections, server CPU and RSS over time;
//!   [`sysinfo`]: CPU and RSS from `/proc`.
//! - [`server_metrics`]: courier's Prometheus counters before/after, checked against the tester's.
//! - [`progress`]: live progress on a TTY.
//!
//! Around runs
//! - [`search`]: `--find-max connections|rate`, the capacity search over runs.
//! - [`significance`]: medians, min..max and bootstrap intervals for `--repeat` and `ab`.
//! - [`ab`]: `loadtest ab`, two server commands judged over interleaved rounds.
//! - [`baseline`]: a previous report beside this run (`--baseline`) and `loadtest compare`.
//! - [`sizing`]: `loadtest capacity`, a deployment sized from a report's measured costs.
//! - [`conform`]: `loadtest conform`, the protocol check suite against any server.
//! - [`segment`]: `--segment K/N` and `--start-at`, one run over many processes; raw histograms.
//! - [`barrier`]: `--barrier redis://…`, agents that start publishing together once all are ready.
//! - [`merge`]: `loadtest merge`, segment reports added up exactly and judged as one.
//! - [`report`]: the versioned report and its text, JSON, JUnit, HTML and Markdown renderings.

pub mod ab;
pub mod arrival;
pub mod barrier;
pub mod baseline;
pub mod broker;
pub mod client;
pub mod conform;
pub mod connect;
pub mod embedded_server;
pub mod error;
pub mod frame;
pub mod latency_times;
pub mod limits;
pub mod merge;
mod meters;
pub mod opts;
pub mod plan;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod search;
pub mod segment;
pub mod seq;
pub mod server_metrics;
pub mod session;
pub mod significance;
pub mod sizing;
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
/// Exit code when a `--barrier` timed out: not every agent got ready (nothing was published).
pub const EXIT_BARRIER: u8 = 3;
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
    let reason: session::StopReason = Arc::new(OnceLock::new());
    let ctrl_c = {
        let (stop, reason) = (stop.clone(), reason.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = reason.set("interrupted (Ctrl-C)".into());
                stop.cancel();
            }
        })
    };
    let report = run_plan(&plan, &stop, &reason).await?;
    ctrl_c.abort();
    write_outputs(
        &plan.outputs,
        plan.baseline.as_deref().map(|b| &b.report),
        &report,
    )?;
    let exit_code = if reason.get().is_some_and(|r| r.starts_with("interrupted")) {
        EXIT_INTERRUPTED
    } else if report.passed {
        EXIT_PASS
    } else {
        EXIT_FAIL
    };
    Ok(Outcome { report, exit_code })
}

/// Runs a validated plan: once, `--repeat` times, or the `--find-max` search. Writes nothing.
pub async fn run_plan(
    plan: &Plan,
    stop: &CancellationToken,
    reason: &session::StopReason,
) -> Result<Report> {
    if let Some(fm) = plan.find_max {
        return search::find_max(plan, fm, stop.clone(), reason.clone()).await;
    }
    if let Some(spec) = &plan.barrier {
        return run_with_barrier(plan, spec, stop, reason).await;
    }
    let mut reports = Vec::with_capacity(plan.repeat);
    for i in 0..plan.repeat {
        let data = session::run_once(plan, stop.clone(), reason.clone(), None).await?;
        let report = Report::build(plan, &data);
        if plan.repeat > 1 {
            eprintln!(
                "repeat: run {}/{}  p99 {:.2} ms  {:.0} deliveries/s  {}",
                i + 1,
                plan.repeat,
                report.latency_us.p99 as f64 / 1000.0,
                report.throughput.deliveries_per_sec,
                if report.passed { "pass" } else { "FAIL" }
            );
        }
        let partial = report.partial.is_some();
        reports.push(report);
        if partial {
            break;
        }
    }
    let mut report = reports.pop().ok_or_else(|| Error::Setup("no run".into()))?;
    if plan.repeat > 1 {
        reports.push(report.clone());
        report.repeat = Some(report::Repeated::from_reports(&reports));
        report.evaluate(plan);
    }
    Ok(report)
}

/// One `--barrier` run: take a slot in Redis (and with it the segment, when none was given), run,
/// and give the slot up when the run failed before the start (a timeout has given it up already).
async fn run_with_barrier(
    plan: &Plan,
    spec: &barrier::BarrierSpec,
    stop: &CancellationToken,
    reason: &session::StopReason,
) -> Result<Report> {
    let joined = barrier::join(spec, plan.segment).await?;
    eprintln!(
        "barrier: joined run id {} as segment {}",
        spec.run_id, joined.segment
    );
    let result = async {
        let mut mine = plan.clone();
        if mine.segment.is_none() {
            joined.segment.apply(&mut mine)?;
        }
        let data = session::run_once(&mine, stop.clone(), reason.clone(), Some(&joined)).await?;
        Ok(Report::build(&mine, &data))
    }
    .await;
    if result.is_err() {
        let _ = joined.leave().await;
    }
    result
}

/// Writes the requested files and prints the summary (or the JSON) of `report`; `baseline` goes
/// beside it in the HTML page.
pub(crate) fn write_outputs(
    o: &plan::Outputs,
    baseline: Option<&Report>,
    report: &Report,
) -> anyhow::Result<()> {
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
        write(p, &report::html::render(report, baseline))?;
    }
    if let Some(p) = &o.markdown {
        write(p, &report::markdown::render(report))?;
    }
    if o.print_json {
        println!("{json}");
    } else {
        print!("{}", report::text::render(report));
        if let Some(fm) = &report.find_max {
            let best = match (fm.over, fm.highest_passing) {
                (_, None) => "none".into(),
                (opts::SearchOver::Connections, Some(n)) => format!("{n:.0} connections"),
                (opts::SearchOver::Rate, Some(r)) => {
                    format!("{r:.0} events/s at {} connections", fm.connections)
                }
            };
            println!(
                "Capacity search: highest passing step {best} ({}; {} steps)",
                fm.ended_by,
                fm.steps.len()
            );
        }
    }
    Ok(())
}
