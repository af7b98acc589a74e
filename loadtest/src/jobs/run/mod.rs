//! `loadtest [flags]`: one run of the plan, `--repeat` runs, the `--find-max` capacity search
//! (`find_max.rs`), or one agent of a `--barrier` run ([`barrier`]); then the outputs. With
//! `--metrics-listen`, every run is served live while it goes and its report's figures after.

pub mod barrier;
mod bracket;
mod find_max;

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::cli::Opts;
use crate::error::{Error, Result, EXIT_INTERRUPTED};
use crate::measure::exposition::{serve, Exposition};
use crate::plan::{BarrierSpec, Plan};
use crate::report::{exit_code, write_outputs};
use crate::schema::{Repeated, Report, TesterLimit};
use crate::session::{self, NoGate, RunData, StopReason};

/// The end of a run: the report and the exit code it earns.
pub struct Finished {
    /// The report.
    pub report: Report,
    /// [`crate::EXIT_PASS`], [`crate::EXIT_FAIL`], [`crate::EXIT_TESTER_LIMITED`] or
    /// [`EXIT_INTERRUPTED`].
    pub exit_code: u8,
}

/// `loadtest [flags]`: the job's entry, the exit code of [`finish`].
pub(crate) async fn run(opts: &Opts) -> anyhow::Result<u8> {
    finish(opts).await.map(|f| f.exit_code)
}

/// Validates `opts`, runs the plan (or the capacity search), writes the requested outputs and
/// prints the summary. Errors are usage or setup errors (exit 2).
pub async fn finish(opts: &Opts) -> anyhow::Result<Finished> {
    let plan = Plan::from_opts(opts)?;
    let (exposition, listening) = match plan.metrics_listen {
        Some(m) => {
            let exposition = Exposition::on();
            let listening = serve(m.addr, exposition.clone()).await?;
            eprintln!("metrics: serving http://{}/metrics", listening.addr);
            (exposition, Some((listening, m.linger)))
        }
        None => (Exposition::off(), None),
    };
    let stop = CancellationToken::new();
    let reason: StopReason = Arc::new(OnceLock::new());
    let ctrl_c = {
        let (stop, reason) = (stop.clone(), reason.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = reason.set("interrupted (Ctrl-C)".into());
                stop.cancel();
            }
        })
    };
    let report = run_plan(&plan, &stop, &reason, &exposition).await?;
    ctrl_c.abort();
    write_outputs(
        &plan.outputs,
        plan.baseline.as_deref().map(|b| &b.report),
        &report,
    )?;
    if let Some((listening, linger)) = listening.filter(|(_, l)| !l.is_zero()) {
        // The final figures stay up so a scraper gets them; Ctrl-C ends the wait.
        eprintln!(
            "metrics: run finished; serving the final figures at http://{}/metrics for {}",
            listening.addr,
            humantime::format_duration(linger)
        );
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    let exit_code = if reason.get().is_some_and(|r| r.starts_with("interrupted")) {
        EXIT_INTERRUPTED
    } else {
        exit_code(&report)
    };
    Ok(Finished { report, exit_code })
}

/// Runs a validated plan: once, `--repeat` times, or the `--find-max` search. Writes nothing.
pub(crate) async fn run_plan(
    plan: &Plan,
    stop: &CancellationToken,
    reason: &StopReason,
    exposition: &Exposition,
) -> Result<Report> {
    if let Some(fm) = plan.find_max {
        return find_max::find_max(plan, fm, stop.clone(), reason.clone(), exposition).await;
    }
    if let Some(spec) = &plan.barrier {
        return run_with_barrier(plan, spec, stop, reason, exposition).await;
    }
    let mut reports = Vec::with_capacity(plan.repeat);
    for i in 0..plan.repeat {
        let data =
            session::run_once(plan, stop.clone(), reason.clone(), &NoGate, exposition).await?;
        let report = report_of(plan, &data, exposition);
        if plan.repeat > 1 {
            eprintln!(
                "repeat: run {}/{}  p99 {:.2} ms  {:.0} deliveries/s  {}",
                i + 1,
                plan.repeat,
                report.latency_us.p99 as f64 / 1000.0,
                report.throughput.deliveries_per_sec,
                report.verdict()
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
        report.repeat = Some(Repeated::from_reports(&reports));
        // Any run the tester held back holds the figures back.
        report.tester_limit = TesterLimit::any(
            reports
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("run {}", i + 1), r.tester_limit.as_ref())),
        );
        report.evaluate(plan);
    }
    Ok(report)
}

/// One `--barrier` run: take a slot in Redis (and with it the segment, when none was given), run,
/// and give the slot up when the run failed before the start (a timeout has given it up already).
async fn run_with_barrier(
    plan: &Plan,
    spec: &BarrierSpec,
    stop: &CancellationToken,
    reason: &StopReason,
    exposition: &Exposition,
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
        let data =
            session::run_once(&mine, stop.clone(), reason.clone(), &joined, exposition).await?;
        Ok(report_of(&mine, &data, exposition))
    }
    .await;
    if result.is_err() {
        let _ = joined.leave().await;
    }
    result
}

/// The report of one session; `--metrics-listen`'s endpoint serves its figures from then on, so
/// the last values scraped are the report's.
fn report_of(plan: &Plan, data: &RunData, exposition: &Exposition) -> Report {
    let report = Report::build(plan, data);
    exposition.settle(&report);
    report
}
