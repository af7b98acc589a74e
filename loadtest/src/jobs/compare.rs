//! `loadtest compare BASE.json NEW.json`: two stored reports side by side, thresholds judged on the
//! second. Reads the reports as schema data only (no runtime).

use serde::Serialize;

use crate::cli::CompareOpts;
use crate::error::{Error, Result, EXIT_FAIL, EXIT_PASS};
use crate::plan::{Baseline, Threshold};
use crate::report::render::text::{render_outcomes, render_table};
use crate::schema::{Comparison, Outcome};

/// The result of `loadtest compare`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompareResult {
    /// The table.
    pub(crate) comparison: Comparison,
    /// Threshold outcomes on NEW.
    pub(crate) thresholds: Vec<Outcome>,
    /// Every threshold held.
    pub(crate) passed: bool,
}

/// Compares two reports and checks the thresholds on the second. A threshold naming an unknown
/// metric, or a metric either report lacks, is a usage error: never a silent pass.
pub(crate) fn compare(base: &Baseline, new: &Baseline, exprs: &[String]) -> Result<CompareResult> {
    let thresholds = exprs
        .iter()
        .map(|e| Threshold::parse(e))
        .collect::<Result<Vec<_>>>()?;
    for t in &thresholds {
        t.baseline_value(Some(&base.report))?;
        if new.report.metric(t.metric).is_none() {
            return Err(Error::Threshold {
                expr: t.expr.clone(),
                msg: format!("{} has no value for {}", new.source, t.metric),
            });
        }
    }
    let outcomes: Vec<_> = thresholds
        .iter()
        .map(|t| t.check(new.report.metric(t.metric), Some(&base.report)))
        .collect();
    Ok(CompareResult {
        comparison: Comparison::new(&base.source, &base.report, &new.report),
        passed: outcomes.iter().all(|o| o.passed),
        thresholds: outcomes,
    })
}

/// Runs `loadtest compare`: prints the table (or JSON) and returns the exit code (0 or 1).
pub(crate) async fn run(o: &CompareOpts) -> anyhow::Result<u8> {
    let base = Baseline::load(&o.base)?;
    let new = Baseline::load(&o.new)?;
    let r = compare(&base, &new, &o.thresholds)?;
    if o.json {
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| Error::Setup(format!("serializing: {e}")))?;
        println!("{text}");
    } else {
        println!(
            "{} (scenario {}) → {} (scenario {})",
            base.source, base.report.scenario, new.source, new.report.scenario
        );
        print!("{}", render_table(&r.comparison, "new"));
        if !r.thresholds.is_empty() {
            println!("Thresholds");
            print!("{}", render_outcomes(&r.thresholds));
            println!("Verdict         {}", if r.passed { "PASS" } else { "FAIL" });
        }
    }
    Ok(if r.passed { EXIT_PASS } else { EXIT_FAIL })
}
