//! loadtest: spawns thousands of authenticated WebSocket clients against courier (embedded in this
//! process by default, or an external server of the same protocol), fires `group_send` bursts or a
//! paced event rate, and accounts for every delivery exactly: received, lost, duplicated, reordered,
//! with latency measured from each event's intended send time (coordinated-omission-free).
//!
//! # Layout
//! The pipeline is `Opts → Plan → session (connect, receive, publish, drain) → stats → Report`
//! (STYLE.md §13), in layers: each imports only the layers listed before it, never one after
//! (`layering.rs`, a unit test, fails naming the file and line that breaks the rule). Commands sit
//! on top, as k6's `cmd/` does; the engine below them never names a command, so adding one is a
//! file under `jobs/` and a clap struct under `cli/`.
//!
//! Leaves
//! - `error`: the one error type, `usage()` and the exit codes (re-exported here).
//! - `net`: client sockets, plain or TLS (`Stream`, the run's [`TlsClient`]), and HTTP/1.1 client
//!   helpers (one connection, one request). `plan` uses it to build the TLS client once.
//!
//! Layers, bottom up
//! 1. [`schema`]: the versioned JSON report as plain serde data — sections, metric names and the
//!    direction each improves, search steps, raw histograms, comparisons, per-process figures,
//!    the server cross-check. It imports nothing else of the crate, so `compare`, `merge` and
//!    `capacity` read reports without the runtime.
//! 2. `cli`: every clap struct, no logic (ripgrep's low-level arguments, `uv-cli`).
//! 3. [`plan`]: flags + scenario → a validated [`Plan`], opening no socket; the settings of
//!    `--find-max`, `--segment`, `--barrier`, `--baseline`, `--server-metrics`, the thresholds,
//!    the channel layer, the machine's limits and a replay's trace (read and mapped: parsing is
//!    planning) live here, so no job defines what the plan holds.
//! 4. [`measure`]: the run clock, per-worker stats and histograms, sequence and churn
//!    accounting, `/proc` readings, the sampler, server-metrics scrapes, the statistics of
//!    repeated runs, and the tester's own live Prometheus endpoint (`--metrics-listen`).
//! 5. [`session`]: one run — embedded server, tokens, connect phase, receivers (churning ones
//!    drop, reconnect and refresh their token), publishers, drain. Whatever must hold publishing
//!    back (a `--barrier`) enters through the session's own `session::StartGate` trait, so the
//!    session never imports a job.
//! 6. [`report`]: a session's data → the [`Report`], judged; [`report::render`] builds each of
//!    its tables once as data (title, columns, rows, notes) and lays them out as text, Markdown,
//!    HTML and JUnit.
//! 7. [`jobs`]: one module per command, named after it — `run` (with `--repeat`, `--find-max`,
//!    `--barrier`), `ab`, `compare`, `merge`, `capacity`, `conform`, `trace-gen` — each entered as
//!    `async fn run(&Args) -> anyhow::Result<u8>` (the exit code).
//!
//! Where this cut differs from the proposal in issue 17, and why: `cli` sits above `schema`
//! because `--find-max`'s value is the report's [`schema::SearchOver`] (one enum for the flag and
//! the report); `measure` sits above `plan` because the sampler and the scrapes take the plan's
//! endpoints; the thresholds' parser is a plan type (a plan holds parsed thresholds) while metric
//! names, directions and outcomes are schema data; `--segment`'s arithmetic is plan, its raw
//! histograms schema, their codec measure. `cli` may not use `error` (it has no logic to fail);
//! `schema` uses nothing at all, so a report is readable without the runtime.

mod cli;
mod error;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod measure;
mod net;
pub mod plan;
pub mod report;
pub mod schema;
pub mod session;

pub use cli::Opts;
pub use error::{
    Error, Result, EXIT_BARRIER, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, EXIT_TESTER_LIMITED,
    EXIT_USAGE,
};
pub use jobs::run::Finished;
pub use net::{Stream, TlsClient};
pub use plan::Plan;
pub use schema::Report;

/// Validates `opts`, runs the plan (or the capacity search), writes the requested outputs and
/// prints the summary: the report and its exit code. Errors are usage or setup errors (exit 2).
pub async fn run(opts: Opts) -> anyhow::Result<Finished> {
    jobs::run::finish(&opts).await
}
