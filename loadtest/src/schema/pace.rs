//! Who set the pace of a run: the report's "tester limited" mark and the verdict read with it.
//! The rule that sets the mark lives with the report's judging (`report::pace`); this is its data.

use serde::{Deserialize, Serialize};

use super::Report;

/// Whether the tester, not the server, set the pace: its publisher fell behind the schedule, or
/// its receive side could not read promptly. Then the run's figures are what the tester could
/// offer and observe — a lower bound of the server's, not its capacity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TesterLimit {
    /// The tester set the pace.
    pub limited: bool,
    /// One line per cause (empty when not limited).
    pub reasons: Vec<String>,
}

impl TesterLimit {
    /// The mark with `reasons` (limited when there is any).
    pub fn new(reasons: Vec<String>) -> Self {
        Self {
            limited: !reasons.is_empty(),
            reasons,
        }
    }
}

impl TesterLimit {
    /// Several runs' marks as one (the runs of `--repeat`, the segments of a merge): limited when
    /// any is, each reason prefixed with its run's `label`; `None` when none was measured.
    pub fn any<'a>(
        marks: impl IntoIterator<Item = (String, Option<&'a TesterLimit>)>,
    ) -> Option<Self> {
        let mut measured = false;
        let mut reasons = Vec::new();
        for (label, mark) in marks {
            let Some(mark) = mark else { continue };
            measured = true;
            reasons.extend(mark.reasons.iter().map(|r| format!("{label}: {r}")));
        }
        measured.then(|| Self::new(reasons))
    }
}

impl Report {
    /// Whether the run is marked tester limited (`false` for a report written before the mark
    /// existed: not measured).
    pub fn tester_limited(&self) -> bool {
        self.tester_limit.as_ref().is_some_and(|t| t.limited)
    }

    /// Whether the tester held this report's figures back: the run is marked, or a `--find-max`
    /// search could not look above the step where the tester set the pace.
    pub fn held_back_by_tester(&self) -> bool {
        self.tester_limited()
            || self
                .find_max
                .as_ref()
                .is_some_and(|f| f.tester_limited_at.is_some())
    }

    /// The verdict as the summaries print it: `PASS` or `FAIL`, with ` (tester limited)` when
    /// the tester set the pace, so a pass is never read as the server's figure.
    pub fn verdict(&self) -> &'static str {
        match (self.passed, self.held_back_by_tester()) {
            (true, false) => "PASS",
            (true, true) => "PASS (tester limited)",
            (false, false) => "FAIL",
            (false, true) => "FAIL (tester limited)",
        }
    }
}
