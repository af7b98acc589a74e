//! `--find-max`: the capacity search. Over connections, steps the count up (users scaled with it,
//! so group sizes stay the same) until a threshold fails. Over rate, at a fixed connection count,
//! brackets the highest sustained event rate at which every threshold holds (doubling up, or
//! halving down when the first rate fails), then bisects the bracket to `--precision`. Over speed,
//! the same bracket runs over a replay's `--replay-speed` ("how many times Monday's traffic").
//!
//! A step the tester set the pace of (`report::pace`) is inconclusive: neither the server's pass
//! nor its failure. It never becomes `highest_passing`; it ends a connections search and caps a
//! rate search (no higher rate is tried: a tester that cannot offer this rate cannot offer more),
//! which goes on bisecting below it. The summary's `tester_limited_at` then says that the highest
//! passing step is a lower bound of the server's limit, not the limit.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::measure::Exposition;
use crate::plan::{limits, ArrivalModel, FindMax, Plan, MIN_REPLAY_SPEED};
use crate::schema::{Report, SearchOver, SearchStep, SearchSummary, StepParameters};
use crate::session::{self, StopReason};

use super::bracket::{Bracket, StepOutcome, Unit};

/// Figures recorded for every step, besides the thresholds' own metrics.
const STEP_FIGURES: &[&str] = &[
    "p50_ms",
    "p99_ms",
    "deliveries_per_sec",
    "events_per_sec",
    "lost",
    "failed",
    "publish_lag_p99_ms",
    "receive_lag_p99_ms",
];

/// Runs the search; the returned report is the highest passing step's (or the first step's), with
/// the [`SearchSummary`] in `find_max`.
pub(crate) async fn find_max(
    plan: &Plan,
    fm: FindMax,
    stop: CancellationToken,
    reason: StopReason,
    exposition: &Exposition,
) -> Result<Report> {
    let mut search = Search {
        plan,
        stop,
        reason,
        exposition,
        steps: Vec::new(),
        best: None,
        first: None,
        tester_limited_at: None,
    };
    let ended_by = match fm.over {
        SearchOver::Connections => search.over_connections(fm).await?,
        SearchOver::Rate => search.over_rate(fm).await?,
        SearchOver::Speed => search.over_speed(fm).await?,
    };
    let highest_passing = search.best.as_ref().map(|(value, _)| *value);
    let mut report = match (search.best, search.first) {
        (Some((_, b)), _) => b,
        (None, Some(f)) => f,
        (None, None) => return Err(Error::Limit(ended_by)),
    };
    report.passed = highest_passing.is_some();
    report.find_max = Some(SearchSummary {
        over: fm.over,
        steps: search.steps,
        highest_passing,
        tester_limited_at: search.tester_limited_at,
        connections: plan.connections,
        ended_by,
    });
    Ok(report)
}

struct Search<'a> {
    plan: &'a Plan,
    stop: CancellationToken,
    reason: StopReason,
    /// `--metrics-listen`: serves each step while it runs.
    exposition: &'a Exposition,
    steps: Vec<SearchStep>,
    /// The highest passing value (connections or rate) and its report.
    best: Option<(f64, Report)>,
    first: Option<Report>,
    /// The lowest value at which the tester set the pace.
    tester_limited_at: Option<f64>,
}

impl Search<'_> {
    /// Runs one step with `p`; records it and returns what it says about the server.
    async fn step(&mut self, p: Plan, value: f64) -> Result<StepOutcome> {
        let data = session::run_once(
            &p,
            self.stop.clone(),
            self.reason.clone(),
            &session::NoGate,
            self.exposition,
        )
        .await?;
        let report = super::report_of(&p, &data, self.exposition);
        let (rate, speed) = match p.arrival {
            ArrivalModel::Rate { per_sec, .. } => (Some(per_sec), None),
            ArrivalModel::Replay { speed, .. } => (None, Some(speed)),
            ArrivalModel::Burst { .. } => (None, None),
        };
        let figures: BTreeMap<String, f64> = STEP_FIGURES
            .iter()
            .copied()
            .chain(p.thresholds.iter().map(|t| t.metric))
            .filter_map(|m| report.metric(m).map(|v| (m.to_owned(), v)))
            .collect();
        let failed: Vec<String> = report
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.expr.clone())
            .collect();
        let inconclusive = report
            .tester_limit
            .as_ref()
            .filter(|t| t.limited)
            .map(|t| t.reasons.join("; "));
        let outcome = match (&inconclusive, report.passed) {
            (Some(_), _) => StepOutcome::Inconclusive,
            (None, true) => StepOutcome::Pass,
            (None, false) => StepOutcome::Fail,
        };
        eprintln!(
            "find-max: {:>7} connections  {}{}  {}  p99 {:.2} ms  {:.0} deliveries/s  lost {}{}",
            p.connections,
            rate.map_or(String::new(), |r| format!("{r:.0} events/s")),
            speed.map_or(String::new(), |s| format!("speed x{s:.3}")),
            match outcome {
                StepOutcome::Pass => "pass",
                StepOutcome::Fail => "FAIL",
                StepOutcome::Inconclusive => "INCONCLUSIVE (tester limited)",
            },
            report.latency_us.p99 as f64 / 1000.0,
            report.throughput.deliveries_per_sec,
            report.deliveries.lost,
            if failed.is_empty() {
                String::new()
            } else {
                format!("  failed: {}", failed.join(", "))
            }
        );
        self.steps.push(SearchStep {
            parameters: StepParameters {
                connections: p.connections,
                users: p.users,
                rate,
                speed,
            },
            figures,
            passed: report.passed,
            failed,
            inconclusive,
        });
        if self.first.is_none() {
            self.first = Some(report.clone());
        }
        match outcome {
            StepOutcome::Pass if self.best.as_ref().is_none_or(|(v, _)| value > *v) => {
                self.best = Some((value, report));
            }
            StepOutcome::Inconclusive => {
                let at = self.tester_limited_at.map_or(value, |v| v.min(value));
                self.tester_limited_at = Some(at);
            }
            _ => {}
        }
        Ok(outcome)
    }

    async fn over_connections(&mut self, fm: FindMax) -> Result<String> {
        let plan = self.plan;
        let mut n = plan.connections;
        loop {
            let mut p = plan.clone();
            p.connections = n;
            p.users = ((n as u128 * plan.users as u128 / plan.connections as u128) as usize).max(1);
            if let Err(e) = limits::check_fds(&p).and_then(|_| limits::check_ports(&p)) {
                return Ok(format!("machine limit before {n} connections: {e}"));
            }
            let outcome = self.step(p, n as f64).await?;
            if self.stop.is_cancelled() {
                return Ok("stopped".into());
            }
            match outcome {
                StepOutcome::Pass => {}
                StepOutcome::Fail => return Ok(format!("a threshold failed at {n} connections")),
                StepOutcome::Inconclusive => {
                    return Ok(format!(
                        "inconclusive: the tester set the pace at {n} connections (the server's limit is above the highest passing step)"
                    ))
                }
            }
            if n >= fm.limit {
                return Ok(format!("reached --max-connections {}", fm.limit));
            }
            n = n.saturating_add(fm.step).min(fm.limit);
        }
    }

    async fn over_rate(&mut self, fm: FindMax) -> Result<String> {
        let ArrivalModel::Rate { per_sec, length } = self.plan.arrival else {
            return Err(Error::Usage(
                "--find-max rate needs the rate model (--model rate)".into(),
            ));
        };
        let with_rate = |r: f64| {
            let mut p = self.plan.clone();
            p.arrival = ArrivalModel::Rate { per_sec: r, length };
            p
        };
        let bracket = Bracket::new(per_sec, fm.max_rate, fm.precision);
        self.bracketed(bracket, fm, with_rate).await
    }

    /// The rate search's bracket over a replay's speed: the trace's shape stays, its pace scales.
    async fn over_speed(&mut self, fm: FindMax) -> Result<String> {
        let ArrivalModel::Replay { ref trace, speed } = self.plan.arrival else {
            return Err(Error::Usage(
                "--find-max speed needs the replay model (--model replay)".into(),
            ));
        };
        let with_speed = |s: f64| {
            let mut p = self.plan.clone();
            p.arrival = ArrivalModel::Replay {
                trace: trace.clone(),
                speed: s,
            };
            p
        };
        let bracket = Bracket::new(speed, fm.max_speed, fm.precision)
            .with_floor(MIN_REPLAY_SPEED)
            .with_unit(Unit::Speed);
        self.bracketed(bracket, fm, with_speed).await
    }

    /// Runs `bracket` to its end (or `--max-steps`), each step the plan `plan_at` gives.
    async fn bracketed(
        &mut self,
        mut bracket: Bracket,
        fm: FindMax,
        plan_at: impl Fn(f64) -> Plan,
    ) -> Result<String> {
        let mut steps = 0;
        while let Some(v) = bracket.next() {
            if steps == fm.max_steps {
                return Ok(format!("--max-steps {} reached", fm.max_steps));
            }
            steps += 1;
            let outcome = self.step(plan_at(v), v).await?;
            if self.stop.is_cancelled() {
                return Ok("stopped".into());
            }
            bracket.record(v, outcome);
        }
        Ok(bracket.ended_by())
    }
}
