//! `--find-max`: capacity search. Steps the connection count up (users scaled with it, so group
//! sizes stay the same) until a threshold fails; the answer is the highest passing step.

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::limits;
use crate::plan::{FindMax, Plan};
use crate::report::Report;
use crate::runner::{self, StopReason};

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Connections tried.
    pub connections: usize,
    /// Whether every threshold held.
    pub passed: bool,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// Deliveries per second.
    pub deliveries_per_sec: f64,
    /// Deliveries lost.
    pub lost: u64,
}

/// The search's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The highest connection count that passed.
    pub highest_passing: Option<usize>,
    /// Why the search ended.
    pub ended_by: String,
}

/// Runs the search; the returned report is the highest passing step's (or the first step's).
pub async fn find_max(
    plan: &Plan,
    fm: FindMax,
    stop: CancellationToken,
    reason: StopReason,
) -> Result<Report> {
    let mut steps = Vec::new();
    let mut best: Option<Report> = None;
    let mut first: Option<Report> = None;
    let mut n = plan.connections;
    let ended_by = loop {
        let mut p = plan.clone();
        p.connections = n;
        p.users = ((n as u128 * plan.users as u128 / plan.connections as u128) as usize).max(1);
        if let Err(e) = limits::check_fds(&p).and_then(|_| limits::check_ports(&p)) {
            break format!("machine limit before {n} connections: {e}");
        }
        let data = runner::run_once(&p, stop.clone(), reason.clone()).await?;
        let report = Report::build(&p, &data);
        eprintln!(
            "find-max: {n:>7} connections  {}  p99 {:.2} ms  {:.0} deliveries/s  lost {}",
            if report.passed { "pass" } else { "FAIL" },
            report.latency_us.p99 as f64 / 1000.0,
            report.throughput.deliveries_per_sec,
            report.deliveries.lost
        );
        steps.push(Step {
            connections: n,
            passed: report.passed,
            p99_ms: report.latency_us.p99 as f64 / 1000.0,
            deliveries_per_sec: report.throughput.deliveries_per_sec,
            lost: report.deliveries.lost,
        });
        let passed = report.passed;
        if first.is_none() {
            first = Some(report.clone());
        }
        if stop.is_cancelled() {
            break "stopped".into();
        }
        if !passed {
            break format!("a threshold failed at {n} connections");
        }
        best = Some(report);
        if n >= fm.limit {
            break format!("reached --max-connections {}", fm.limit);
        }
        n = (n + fm.step).min(fm.limit);
    };
    let highest_passing = steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.connections)
        .max();
    let mut report = match (best, first) {
        (Some(b), _) => b,
        (None, Some(f)) => f,
        (None, None) => return Err(crate::error::Error::Limit(ended_by)),
    };
    report.passed = highest_passing.is_some();
    report.find_max = Some(Summary {
        steps,
        highest_passing,
        ended_by,
    });
    Ok(report)
}
