//! Thresholds: `METRIC OP BOUND` checks (`p99_ms<5`, `lost==0`, `p99_ms<=1.2*baseline`) that decide
//! the verdict and exit code.
//!
//! Metric names are checked when parsed: an unknown name is a usage error, never a silent pass. A
//! bound relative to a baseline needs a baseline report that has the metric (else a usage error too).

use crate::error::{Error, Result};
use crate::schema::{metric_name, Outcome, Report};

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

/// The right-hand side of a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A fixed number: `p99_ms<5`.
    Value(f64),
    /// A factor of the baseline report's value of the same metric: `p99_ms<=1.2*baseline`.
    Baseline(f64),
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written (trimmed).
    pub expr: String,
    /// The metric's name, one of [`crate::schema::METRICS`].
    pub metric: &'static str,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: Bound,
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
        let rhs = expr[pos + sym.len()..].trim();
        let metric = metric_name(name).map_err(err)?;
        let number = |text: &str| -> Result<f64> {
            let text = text.trim();
            let v: f64 = text
                .replace('_', "")
                .parse()
                .map_err(|_| err(format!("{text:?} is not a number")))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(err("the bound must be finite".into()))
            }
        };
        // `F*baseline`, `baseline*F` or `baseline` (= 1*baseline); anything else is a number.
        let bound = match rhs.split_once('*') {
            Some((f, b)) if b.trim() == "baseline" => Bound::Baseline(number(f)?),
            Some((b, f)) if b.trim() == "baseline" => Bound::Baseline(number(f)?),
            _ if rhs == "baseline" => Bound::Baseline(1.0),
            _ => Bound::Value(number(rhs)?),
        };
        Ok(Self {
            expr: expr.to_owned(),
            metric,
            op,
            bound,
        })
    }

    /// The baseline value this threshold needs, if its bound is relative: a usage error when there
    /// is no baseline or the baseline lacks the metric (a relative check must never pass silently).
    pub fn baseline_value(&self, baseline: Option<&Report>) -> Result<Option<f64>> {
        let Bound::Baseline(_) = self.bound else {
            return Ok(None);
        };
        let err = |msg: &str| Error::Threshold {
            expr: self.expr.clone(),
            msg: msg.into(),
        };
        let base = baseline.ok_or_else(|| err("a relative bound needs --baseline BASE.json"))?;
        base.metric(self.metric).map(Some).ok_or_else(|| {
            err(&format!(
                "the baseline report has no value for {}",
                self.metric
            ))
        })
    }

    /// Checks the threshold against a measured value (and, for a relative bound, the baseline's);
    /// an unmeasured metric or a missing baseline value fails.
    pub fn check(&self, actual: Option<f64>, baseline: Option<&Report>) -> Outcome {
        let base = baseline.and_then(|b| b.metric(self.metric));
        let bound = match self.bound {
            Bound::Value(v) => Some(v),
            Bound::Baseline(f) => base.map(|b| f * b),
        };
        let passed = actual.zip(bound).is_some_and(|(a, b)| self.op.holds(a, b));
        Outcome {
            expr: self.expr.clone(),
            actual,
            bound,
            baseline: matches!(self.bound, Bound::Baseline(_))
                .then_some(base)
                .flatten(),
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
        assert_eq!(
            (t.metric, t.op, t.bound),
            ("p99_ms", Op::Lt, Bound::Value(5.0))
        );
        assert_eq!(Threshold::parse(" lost == 0 ").expect("parse").op, Op::Eq);
        assert_eq!(Threshold::parse("p99_ms<=2.5").expect("parse").op, Op::Le);
        assert_eq!(
            Threshold::parse("deliveries_per_sec>1_000_000")
                .expect("parse")
                .bound,
            Bound::Value(1e6)
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
            "p99_ms<0.9*basline",
            "p99_ms<x*baseline",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn checks() {
        let t = Threshold::parse("lost==0").expect("parse");
        assert!(t.check(Some(0.0), None).passed);
        assert!(!t.check(Some(1.0), None).passed);
        assert!(!t.check(None, None).passed, "an unmeasured metric fails");
    }

    #[test]
    fn relative_bounds_parse_in_either_order() {
        for (expr, f) in [
            ("deliveries_per_sec>=0.9*baseline", 0.9),
            ("p99_ms <= baseline * 1.2", 1.2),
            ("lost<=baseline", 1.0),
        ] {
            assert_eq!(
                Threshold::parse(expr).expect(expr).bound,
                Bound::Baseline(f)
            );
        }
    }
}
