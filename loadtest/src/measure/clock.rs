//! The run clock and the width of the over-time buckets: what the stats and the per-interval
//! latency both stamp their samples with.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Width of one bucket of the deliveries-over-time series.
pub(crate) const TIMELINE_BUCKET: Duration = Duration::from_millis(100);

/// The run's clock: unix nanoseconds from one anchor plus a monotonic offset, so the intended send
/// time stamped by a publisher and the receive time read by a client are on the same scale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor: Instant,
    anchor_unix_ns: u64,
}

impl Clock {
    /// A clock anchored now.
    pub(crate) fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            anchor: Instant::now(),
            anchor_unix_ns: unix,
        }
    }

    /// Unix ns now.
    pub(crate) fn now_ns(&self) -> u64 {
        self.anchor_unix_ns + self.anchor.elapsed().as_nanos() as u64
    }

    /// Unix ns at `at`.
    pub(crate) fn at_ns(&self, at: Instant) -> u64 {
        self.anchor_unix_ns + at.saturating_duration_since(self.anchor).as_nanos() as u64
    }

    /// Unix ns of the anchor.
    pub(crate) fn start_ns(&self) -> u64 {
        self.anchor_unix_ns
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
