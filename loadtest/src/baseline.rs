//! Baselines: a previous run's report beside this one (`--baseline`), the reference values of
//! relative thresholds (`p99_ms<=1.2*baseline`), and `loadtest compare BASE.json NEW.json`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::Report;
use crate::threshold::{better, Better, Threshold, METRICS};

/// A baseline report and where it came from.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The path as given, for the reader.
    pub source: String,
    /// The report.
    pub report: Report,
}

impl Baseline {
    /// Reads a JSON report written by `--json`; an unreadable or foreign file is a usage error.
    pub fn load(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("baseline {source}: {e}")))?;
        let report: Report = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "baseline {source}: not a loadtest JSON report ({e})"
            ))
        })?;
        Ok(Self { source, report })
    }
}

/// How a figure moved against the baseline, given which way its metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Equal to the baseline.
    Same,
    /// Moved the better way.
    Better,
    /// Moved the worse way.
    Worse,
    /// Moved, and the metric has no better direction (a count describing the run).
    Changed,
    /// One side has no value.
    Missing,
}

/// One metric, this run beside the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The metric's name (see [`METRICS`]).
    pub metric: String,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// This run's value.
    pub current: Option<f64>,
    /// (current − baseline) ÷ baseline × 100; `None` when a side is missing or the baseline is 0.
    pub change_pct: Option<f64>,
    /// Better, worse, same…
    pub movement: Movement,
}

impl Figure {
    /// Compares two values of `metric`.
    pub fn new(metric: &str, baseline: Option<f64>, current: Option<f64>) -> Self {
        let (change_pct, movement) = match (baseline, current) {
            (Some(b), Some(c)) => {
                let pct = (b != 0.0).then(|| (c - b) / b.abs() * 100.0);
                let movement = match (c.partial_cmp(&b), better(metric)) {
                    (Some(std::cmp::Ordering::Equal), _) => Movement::Same,
                    (_, Better::Neither) => Movement::Changed,
                    (Some(std::cmp::Ordering::Less), Better::Lower)
                    | (Some(std::cmp::Ordering::Greater), Better::Higher) => Movement::Better,
                    _ => Movement::Worse,
                };
                (pct, movement)
            }
            _ => (None, Movement::Missing),
        };
        Self {
            metric: metric.into(),
            baseline,
            current,
            change_pct,
            movement,
        }
    }
}

/// Every metric either report has, side by side (the JSON report's `baseline` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Where the baseline came from.
    pub source: String,
    /// The baseline's scenario name.
    pub scenario: String,
    /// One row per metric, in [`METRICS`] order.
    pub figures: Vec<Figure>,
}

impl Comparison {
    /// Compares `current` with `base` over every metric that either has.
    pub fn new(source: &str, base: &Report, current: &Report) -> Self {
        let figures = METRICS
            .iter()
            .map(|(name, _, _)| Figure::new(name, base.metric(name), current.metric(name)))
            .filter(|f| f.baseline.is_some() || f.current.is_some())
            .collect();
        Self {
            source: source.into(),
            scenario: base.scenario.clone(),
            figures,
        }
    }

    /// The baseline's and this run's value of `metric`, when it is in the table.
    pub fn figure(&self, metric: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.metric == metric)
    }
}

/// A number for a table: integers stay integers, fractions get three decimals.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        // -0.0 (a counter difference) reads as 0.
        Some(0.0) => "0".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// A change for a table: `+6.2% worse`.
pub fn change(f: &Figure) -> String {
    let word = match f.movement {
        Movement::Same => "same",
        Movement::Better => "better",
        Movement::Worse => "worse",
        Movement::Changed => "changed",
        Movement::Missing => "missing",
    };
    match f.change_pct {
        Some(p) if f.movement != Movement::Same => format!("{p:+.1}% {word}"),
        _ => word.into(),
    }
}

/// The side-by-side table, as in the text report and `loadtest compare`.
pub fn render_table(c: &Comparison, current_label: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<26} {:>14} {:>14}   change",
        "metric", "baseline", current_label
    );
    for f in &c.figures {
        let _ = writeln!(
            s,
            "  {:<26} {:>14} {:>14}   {}",
            f.metric,
            num(f.baseline),
            num(f.current),
            change(f)
        );
    }
    s
}

/// `loadtest compare BASE.json NEW.json [-t EXPR]…`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOpts {
    /// The baseline report (`--json` of an earlier run).
    pub base: PathBuf,
    /// The report to judge.
    pub new: PathBuf,
    /// Check on NEW, absolute (`lost==0`) or relative (`p99_ms<=1.2*baseline`); repeatable.
    #[arg(long = "threshold", short = 't')]
    pub thresholds: Vec<String>,
    /// Print the comparison and outcomes as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The result of `loadtest compare`.
#[derive(Debug, Clone, Serialize)]
pub struct CompareResult {
    /// The table.
    pub comparison: Comparison,
    /// Threshold outcomes on NEW.
    pub thresholds: Vec<crate::threshold::Outcome>,
    /// Every threshold held.
    pub passed: bool,
}

/// Compares two reports and checks the thresholds on the second. A threshold naming an unknown
/// metric, or a metric either report lacks, is a usage error: never a silent pass.
pub fn compare(base: &Baseline, new: &Baseline, exprs: &[String]) -> Result<CompareResult> {
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

/// Renders threshold outcomes, one line each (shared with the run's text report).
pub fn render_outcomes(outcomes: &[crate::threshold::Outcome]) -> String {
    let mut s = String::new();
    for t in outcomes {
        let actual = t
            .actual
            .map_or("not measured".into(), |a| format!("{a:.3}"));
        let bound = match (t.baseline, t.bound) {
            (Some(b), Some(v)) => format!("   bound {} (baseline {})", num(Some(v)), num(Some(b))),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:4}  {:34} actual {actual}{bound}",
            if t.passed { "ok" } else { "FAIL" },
            t.expr
        );
    }
    s
}

/// Runs `loadtest compare`: prints the table (or JSON) and returns the exit code (0 or 1).
pub fn run(o: &CompareOpts) -> Result<u8> {
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
    Ok(if r.passed {
        crate::EXIT_PASS
    } else {
        crate::EXIT_FAIL
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movement_follows_the_metric_direction() {
        assert_eq!(
            Figure::new("p99_ms", Some(10.0), Some(12.0)).movement,
            Movement::Worse
        );
        assert_eq!(
            Figure::new("p99_ms", Some(10.0), Some(8.0)).movement,
            Movement::Better
        );
        let f = Figure::new("deliveries_per_sec", Some(100.0), Some(90.0));
        assert_eq!(f.movement, Movement::Worse);
        assert!((f.change_pct.expect("pct") + 10.0).abs() < 1e-9);
        assert_eq!(
            Figure::new("expected", Some(1.0), Some(2.0)).movement,
            Movement::Changed
        );
        assert_eq!(
            Figure::new("lost", Some(0.0), Some(0.0)).movement,
            Movement::Same
        );
        let zero = Figure::new("lost", Some(0.0), Some(3.0));
        assert_eq!((zero.change_pct, zero.movement), (None, Movement::Worse));
        assert_eq!(
            Figure::new("lost", None, Some(0.0)).movement,
            Movement::Missing
        );
    }

    #[test]
    fn a_stored_report_loads_as_a_baseline() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-default.json");
        let b = Baseline::load(&path).expect("fixture loads");
        let c = Comparison::new(&b.source, &b.report, &b.report);
        let p99 = c.figure("p99_ms").expect("p99 row");
        assert_eq!(p99.baseline, b.report.metric("p99_ms"));
        assert_eq!(p99.movement, Movement::Same);
        assert!(Baseline::load(Path::new("Cargo.toml")).is_err(), "not JSON");
        // A version-1 report with the old find_max shape still loads, without its search.
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        v["find_max"] = serde_json::json!({"steps": [{"connections": 5}], "highest_passing": 5});
        let r: Report = serde_json::from_value(v).expect("loads");
        assert!(r.find_max.is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(Some(200.0)), "200");
        assert_eq!(num(Some(12.3456)), "12.346");
        assert_eq!(num(Some(123456.789)), "123456.8");
        assert_eq!(num(None), "n/a");
    }
}
