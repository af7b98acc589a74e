//! The rate (and replay speed) search's bracket: a pure state machine over step outcomes — double
//! up from a pass, halve down from a fail or an inconclusive step, then bisect to the precision —
//! kept apart from the runs so its rules are tested without a server.

/// What one step says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// Every threshold held, at the planned pace.
    Pass,
    /// A threshold failed, at the planned pace.
    Fail,
    /// The tester set the pace: nothing is learned about the server.
    Inconclusive,
}

/// The rate search's state: bracket (×2 up from a pass, ÷2 down from a fail or an inconclusive
/// step), then bisect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bracket {
    /// Highest passing rate so far.
    pub(crate) lo: Option<f64>,
    /// Lowest failing rate so far.
    pub(crate) hi: Option<f64>,
    /// Lowest rate at which the tester set the pace: the search stays below it, but it is no
    /// failure of the server.
    pub(crate) tester_cap: Option<f64>,
    start: f64,
    max: f64,
    precision: f64,
    /// Below this a search that never passed gives up (the thresholds fail at any load).
    floor: f64,
    unit: Unit,
}

/// What the bracket searches over, for its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Events/s (`--find-max rate`).
    Rate,
    /// A replay's speed factor (`--find-max speed`).
    Speed,
}

/// Below this rate a search that never passed gives up (the thresholds fail at any load).
const MIN_RATE: f64 = 1.0;

impl Bracket {
    /// A search starting at `start` events/s, never above `max`, stopping when `hi ÷ lo − 1 ≤
    /// precision`.
    pub(crate) fn new(start: f64, max: f64, precision: f64) -> Self {
        Self {
            lo: None,
            hi: None,
            tester_cap: None,
            start: start.min(max),
            max,
            precision,
            floor: MIN_RATE,
            unit: Unit::Rate,
        }
    }

    /// The same search giving up below `floor` instead of 1 event/s.
    pub(crate) fn with_floor(self, floor: f64) -> Self {
        Self { floor, ..self }
    }

    /// The same search naming its values in `unit`.
    pub(crate) fn with_unit(self, unit: Unit) -> Self {
        Self { unit, ..self }
    }

    /// `v` as the messages name it: `1200 events/s` or `speed x2.500`.
    fn show(&self, v: f64) -> String {
        match self.unit {
            Unit::Rate => format!("{v:.0} events/s"),
            Unit::Speed => format!("speed x{v:.3}"),
        }
    }

    /// [`Self::show`] for a value at the bottom of the search, where a rate's tenths matter.
    fn show_low(&self, v: f64) -> String {
        match self.unit {
            Unit::Rate => format!("{v:.1} events/s"),
            Unit::Speed => self.show(v),
        }
    }

    /// The next rate to try, or `None` when the search is over.
    pub(crate) fn next(&self) -> Option<f64> {
        match (self.lo, self.upper()) {
            (None, None) => Some(self.start),
            (Some(lo), None) if lo >= self.max => None,
            (Some(lo), None) => Some((lo * 2.0).min(self.max)),
            (None, Some(hi)) if hi / 2.0 < self.floor => None,
            (None, Some(hi)) => Some(hi / 2.0),
            (Some(lo), Some(hi)) if hi / lo - 1.0 <= self.precision => None,
            (Some(lo), Some(hi)) => Some((lo + hi) / 2.0),
        }
    }

    /// Records the outcome at `rate`.
    pub(crate) fn record(&mut self, rate: f64, outcome: StepOutcome) {
        let lower = |v: Option<f64>| Some(v.map_or(rate, |v: f64| v.min(rate)));
        match outcome {
            StepOutcome::Pass => self.lo = Some(self.lo.map_or(rate, |l| l.max(rate))),
            StepOutcome::Fail => self.hi = lower(self.hi),
            StepOutcome::Inconclusive => self.tester_cap = lower(self.tester_cap),
        }
    }

    /// The lowest rate not to try again: a failure or the tester's cap, whichever is lower.
    fn upper(&self) -> Option<f64> {
        match (self.hi, self.tester_cap) {
            (Some(h), Some(c)) => Some(h.min(c)),
            (h, c) => h.or(c),
        }
    }

    /// Whether the search's upper end is the tester's, not a failure of the server.
    fn capped_by_tester(&self) -> bool {
        self.tester_cap
            .is_some_and(|c| self.hi.is_none_or(|h| c < h))
    }

    /// Why the search ended, for the report.
    pub(crate) fn ended_by(&self) -> String {
        if self.capped_by_tester() {
            let cap = self.tester_cap.unwrap_or_default();
            return match self.lo.map(|lo| self.show(lo)) {
                Some(lo) => format!(
                    "inconclusive above {lo}: the tester set the pace at {} (the server's limit is at least {lo}, not measured above)",
                    self.show(cap)
                ),
                None => format!(
                    "inconclusive: the tester set the pace down to {}, no step said anything of the server",
                    self.show_low(cap)
                ),
            };
        }
        let flag = match self.unit {
            Unit::Rate => "--max-rate",
            Unit::Speed => "--max-speed",
        };
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => format!(
                "bracketed: {} passes, {} fails (within {:.0}%)",
                self.show(lo),
                self.show(hi),
                self.precision * 100.0
            ),
            (Some(_), None) => format!("reached {flag} {}", self.max),
            (None, Some(hi)) => format!(
                "no passing {} (failed down to {})",
                match self.unit {
                    Unit::Rate => "rate",
                    Unit::Speed => "speed",
                },
                self.show_low(hi)
            ),
            (None, None) => "no step ran".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a bracket against a system that passes up to `ceiling` events/s.
    fn search(start: f64, ceiling: f64, max: f64) -> (Bracket, Vec<f64>) {
        let mut b = Bracket::new(start, max, 0.05);
        let mut tried = Vec::new();
        while let Some(r) = b.next() {
            assert!(tried.len() < 100, "bounded: {tried:?}");
            tried.push(r);
            b.record(
                r,
                if r <= ceiling {
                    StepOutcome::Pass
                } else {
                    StepOutcome::Fail
                },
            );
        }
        (b, tried)
    }

    #[test]
    fn brackets_up_then_bisects_to_the_precision() {
        let (b, tried) = search(1000.0, 5500.0, 1e9);
        assert_eq!(&tried[..4], &[1000.0, 2000.0, 4000.0, 8000.0], "doubling");
        let (lo, hi) = (b.lo.expect("lo"), b.hi.expect("hi"));
        assert!(lo <= 5500.0 && hi > 5500.0, "{lo}..{hi}");
        assert!(hi / lo - 1.0 <= 0.05, "{lo}..{hi}");
        assert!(b.ended_by().starts_with("bracketed"), "{}", b.ended_by());
    }

    #[test]
    fn a_speed_search_halves_below_one_and_names_speeds() {
        let mut b = Bracket::new(1.0, 1000.0, 0.05)
            .with_floor(0.001)
            .with_unit(Unit::Speed);
        let mut tried = Vec::new();
        while let Some(s) = b.next() {
            assert!(tried.len() < 100, "bounded: {tried:?}");
            tried.push(s);
            let passes = s <= 0.3;
            b.record(
                s,
                if passes {
                    StepOutcome::Pass
                } else {
                    StepOutcome::Fail
                },
            );
        }
        assert_eq!(&tried[..3], &[1.0, 0.5, 0.25], "halving below ×1");
        let (lo, hi) = (b.lo.expect("lo"), b.hi.expect("hi"));
        assert!(lo <= 0.3 && hi > 0.3 && hi / lo - 1.0 <= 0.05, "{lo}..{hi}");
        assert!(b.ended_by().contains("speed x0."), "{}", b.ended_by());
    }

    #[test]
    fn halves_down_when_the_first_rate_fails() {
        let (b, tried) = search(10_000.0, 900.0, 1e9);
        assert_eq!(&tried[..5], &[10_000.0, 5000.0, 2500.0, 1250.0, 625.0]);
        let lo = b.lo.expect("lo");
        assert!(lo <= 900.0 && b.hi.expect("hi") / lo - 1.0 <= 0.05);
    }

    #[test]
    fn stops_at_the_maximum_and_when_nothing_passes() {
        let (b, tried) = search(1000.0, 1e12, 3000.0);
        assert_eq!(tried, vec![1000.0, 2000.0, 3000.0]);
        assert_eq!(b.ended_by(), "reached --max-rate 3000");
        let (b, _) = search(100.0, 0.0, 1e9);
        assert!(b.lo.is_none() && b.ended_by().starts_with("no passing rate"));
    }

    /// A server that passes everything, a tester that cannot offer more than `tester` events/s:
    /// the search stays below the tester's cap and never calls the cap the server's limit.
    #[test]
    fn a_tester_limited_step_caps_the_search_without_failing_the_server() {
        let mut b = Bracket::new(1000.0, 1e9, 0.05);
        let mut tried = Vec::new();
        while let Some(r) = b.next() {
            assert!(tried.len() < 100, "bounded: {tried:?}");
            tried.push(r);
            let outcome = if r > 5000.0 {
                StepOutcome::Inconclusive
            } else {
                StepOutcome::Pass
            };
            b.record(r, outcome);
        }
        assert_eq!(&tried[..4], &[1000.0, 2000.0, 4000.0, 8000.0]);
        assert!(tried.iter().all(|r| *r <= 8000.0), "{tried:?}");
        assert_eq!(b.hi, None, "no failure recorded");
        let lo = b.lo.expect("lo");
        assert!((4000.0..=5000.0).contains(&lo), "{lo}");
        assert!(
            b.ended_by().starts_with("inconclusive above"),
            "{}",
            b.ended_by()
        );
        // A real failure below the tester's cap is the server's again.
        let cap = b.tester_cap.expect("cap");
        assert!(cap <= 8000.0 && cap / lo - 1.0 <= 0.05, "{lo}..{cap}");
        b.record((lo + cap) / 2.0, StepOutcome::Fail);
        assert!(b.ended_by().starts_with("bracketed"), "{}", b.ended_by());
    }
}
