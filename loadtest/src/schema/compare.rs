//! A report beside a baseline report: one row per metric, and which way it moved.

use serde::{Deserialize, Serialize};

use super::{better, Better, Report, METRICS};

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
}
