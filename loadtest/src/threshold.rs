//! Thresholds: `METRIC OP NUMBER` checks (`p99_ms<5`, `lost==0`) that decide the verdict and exit code.
//!
//! Metric names are checked when parsed: an unknown name is a usage error, never a silent pass.

use serde::Serialize;

use crate::error::{Error, Result};

/// Every metric a threshold may name, with its meaning (shown in errors and the README).
pub const METRICS: &[(&str, &str)] = &[
    ("p50_ms", "delivery latency p50, ms"),
    ("p90_ms", "delivery latency p90, ms"),
    ("p99_ms", "delivery latency p99, ms"),
    ("p999_ms", "delivery latency p99.9, ms"),
    ("max_ms", "delivery latency max, ms"),
    ("p50_us", "delivery latency p50, µs"),
    ("p99_us", "delivery latency p99, µs"),
    ("handshake_p99_ms", "handshake latency p99, ms"),
    ("expected", "deliveries expected (healthy clients)"),
    ("received", "deliveries received (healthy clients)"),
    ("lost", "deliveries lost by healthy clients"),
    ("duplicated", "deliveries duplicated (all clients)"),
    ("reordered", "deliveries out of order (all clients)"),
    ("slow_lost", "deliveries lost by slow (non-reading) clients"),
    ("slow_closed", "slow clients closed by the server"),
    ("established", "connections established"),
    ("failed", "connections that failed to establish"),
    (
        "closed",
        "established healthy connections closed by the server before the end",
    ),
    ("publish_errors", "publish calls that failed"),
    (
        "handshakes_per_sec",
        "connections established per second of the connect phase",
    ),
    (
        "deliveries_per_sec",
        "deliveries / (last receive − first intended send)",
    ),
    (
        "peak_deliveries_per_sec",
        "highest deliveries/s over one 100 ms interval",
    ),
    ("events_per_sec", "events published per second"),
    (
        "tester_cpu_percent",
        "the tester's own CPU, percent of one core",
    ),
    ("server_rss_mb", "server resident memory, MiB"),
    (
        "rss_per_connection_bytes",
        "server RSS growth over the connect phase / connections (needs --server-pid)",
    ),
];

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
            Op::Eq => actual == bound,
            Op::Ne => actual != bound,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written (trimmed).
    pub expr: String,
    /// The metric's name, one of [`METRICS`].
    pub metric: &'static str,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub value: f64,
}

/// One threshold's outcome, as it appears in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The expression.
    pub expr: String,
    /// The measured value (`null` when the metric was not measured, which fails).
    pub actual: Option<f64>,
    /// Whether the check held.
    pub passed: bool,
}

impl Threshold {
    /// Parses `METRIC OP NUMBER`; spaces are allowed around the operator.
    pub fn parse(expr: &str) -> Result<Self> {
        let expr = expr.trim();
        let err = |msg: String| Error::Threshold {
            expr: expr.to_owned(),
            msg,
        };
        // Two-character operators first, so `<=` is not read as `<`.
        const OPS: [(&str, Op); 6] = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (pos, sym, op) = OPS
            .iter()
            .filter_map(|(sym, op)| expr.find(sym).map(|p| (p, *sym, *op)))
            .min_by_key(|(p, sym, _)| (*p, std::cmp::Reverse(sym.len())))
            .ok_or_else(
                || err("expected METRIC OP NUMBER with OP one of < <= > >= == !=".into()),
            )?;
        let name = expr[..pos].trim();
        let number = expr[pos + sym.len()..].trim();
        let metric = METRICS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == name)
            .ok_or_else(|| {
                let known: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
                err(format!(
                    "unknown metric {name:?}; known: {}",
                    known.join(", ")
                ))
            })?;
        let value: f64 = number
            .replace('_', "")
            .parse()
            .map_err(|_| err(format!("{number:?} is not a number")))?;
        if !value.is_finite() {
            return Err(err("the bound must be finite".into()));
        }
        Ok(Self {
            expr: expr.to_owned(),
            metric,
            op,
            value,
        })
    }

    /// Checks the threshold against a measured value; an unmeasured metric fails.
    pub fn check(&self, actual: Option<f64>) -> Outcome {
        let passed = actual.is_some_and(|a| self.op.holds(a, self.value));
        Outcome {
            expr: self.expr.clone(),
            actual,
            passed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operators_and_spaces() {
        let t = Threshold::parse("p99_ms<5").expect("parse");
        assert_eq!((t.metric, t.op, t.value), ("p99_ms", Op::Lt, 5.0));
        assert_eq!(Threshold::parse(" lost == 0 ").expect("parse").op, Op::Eq);
        assert_eq!(Threshold::parse("p99_ms<=2.5").expect("parse").op, Op::Le);
        assert_eq!(
            Threshold::parse("deliveries_per_sec>1_000_000")
                .expect("parse")
                .value,
            1e6
        );
        assert_eq!(Threshold::parse("failed!=1").expect("parse").op, Op::Ne);
        assert_eq!(
            Threshold::parse("established>=10").expect("parse").op,
            Op::Ge
        );
    }

    #[test]
    fn unknown_metric_is_an_error() {
        let e = Threshold::parse("p98_ms<5").expect_err("unknown");
        assert!(e.to_string().contains("unknown metric"), "{e}");
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "p99_ms",
            "p99_ms<",
            "p99_ms<abc",
            "<5",
            "lost=0",
            "p99_ms<inf",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn checks() {
        let t = Threshold::parse("lost==0").expect("parse");
        assert!(t.check(Some(0.0)).passed);
        assert!(!t.check(Some(1.0)).passed);
        assert!(!t.check(None).passed, "an unmeasured metric fails");
    }
}
