//! The tester's own pace: how many publishing lanes a plan gets (sized from its rate up front),
//! and the `[diagnostics]` throttles that slow the tester on purpose, so a test can show that the
//! report marks a run the tester, not the server, held back.

use std::time::Duration;

use super::build::duration;
use super::scenario::DiagnosticsSection;
use super::{ArrivalModel, DEFAULT_LANES};
use crate::error::Result;

/// Full batches per second one lane is sized for. A lane keeps one request in flight (a user's
/// events stay on one lane, in order), so it sustains 1 ÷ round trip requests/s; sizing for 20
/// leaves a full batch 50 ms — about twice what a 500-event `POST /api/notify` took at 60k
/// events/s on the 2-core box of issue 19, where 2 lanes fell 3.8 s behind a 5 s schedule.
pub const LANE_BATCHES_PER_SEC: f64 = 20.0;
/// Most lanes a sized plan gets: each is a connection to the server (and a task here).
pub const MAX_LANES: usize = 32;

/// Lanes for `arrival` with `batch` events per request when the scenario gives none: a rate plan
/// gets `ceil(rate ÷ (batch × LANE_BATCHES_PER_SEC))`, at least [`DEFAULT_LANES`], at most
/// [`MAX_LANES`]; a replay is sized the same way from the trace's peak second at its speed; a
/// burst plan gets [`DEFAULT_LANES`] (a burst is sent as fast as the lanes go).
/// Fixed before the run: adding a lane mid-run would move users between lanes and could reorder
/// one user's events, which the clients would charge to the server.
pub fn lanes_for(arrival: &ArrivalModel, batch: usize) -> usize {
    let per_sec = match arrival {
        ArrivalModel::Rate { per_sec, .. } => *per_sec,
        ArrivalModel::Replay { trace, speed } => trace.peak_per_sec() as f64 * speed,
        ArrivalModel::Burst { .. } => return DEFAULT_LANES,
    };
    let lanes = (per_sec / (batch.max(1) as f64 * LANE_BATCHES_PER_SEC)).ceil();
    // `as` saturates (and maps NaN to 0), so any rate lands in the clamp.
    (lanes as usize).clamp(DEFAULT_LANES, MAX_LANES)
}

/// `[diagnostics]`: throttles that make the tester the bottleneck on purpose. They exist to test
/// the "tester limited" mark; a real measurement leaves them at zero (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Added to every publish call, as if each request took this much longer.
    pub publish_delay: Duration,
    /// CPU each delivery costs a receiver (a busy wait), as if the clients had work to do.
    pub receive_cost: Duration,
}

impl Diagnostics {
    /// The scenario's `[diagnostics]` section, parsed.
    pub(crate) fn resolve(d: &DiagnosticsSection) -> Result<Self> {
        Ok(Self {
            publish_delay: duration(
                None,
                d.publish_delay.as_deref(),
                "diagnostics.publish_delay",
                Duration::ZERO,
            )?,
            receive_cost: duration(
                None,
                d.receive_cost.as_deref(),
                "diagnostics.receive_cost",
                Duration::ZERO,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_grow_with_the_rate_within_bounds() {
        let rate = |per_sec| ArrivalModel::Rate {
            per_sec,
            length: Duration::from_secs(5),
        };
        assert_eq!(lanes_for(&rate(1000.0), 500), DEFAULT_LANES);
        // Issue 19's run: 60k/s in batches of 500 is 120 requests/s, 6 lanes of 20.
        assert_eq!(lanes_for(&rate(60_000.0), 500), 6);
        assert_eq!(lanes_for(&rate(1e9), 500), MAX_LANES);
        assert_eq!(lanes_for(&rate(f64::NAN), 500), DEFAULT_LANES);
    }
}
