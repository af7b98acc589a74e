//! Samples and stats: per-worker histograms and counters (merged with `add()` at the end, never a
//! shared aggregator), and the live counters the progress bar reads.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::clock::{Clock, TIMELINE_BUCKET};
use super::seq::Receipt;

use hdrhistogram::Histogram;

/// Highest latency recorded exactly, µs (longer values are clamped): one hour.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// A latency histogram in µs, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"))
}

/// Counters the progress bar reads; workers add to them in batches, not per frame.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Connections established.
    pub(crate) connected: AtomicU64,
    /// Connections failed.
    pub(crate) failed: AtomicU64,
    /// Deliveries received.
    pub(crate) received: AtomicU64,
    /// Events published.
    pub(crate) published: AtomicU64,
    /// Failed publish calls (`--metrics-listen`; rare, so counted as they happen).
    pub(crate) publish_errors: AtomicU64,
}

/// What one connection saw, kept for the final accounting against what was published.
#[derive(Debug, Clone)]
pub(crate) struct ConnResult {
    /// User index.
    pub(crate) user: usize,
    /// Whether it was a slow reader.
    pub(crate) slow: bool,
    /// Its sequence tracker.
    pub(crate) seq: super::seq::SeqTracker,
    /// Close code the server sent, if it closed the connection.
    pub(crate) closed: Option<u16>,
    /// Churn accounting (runs with churn or token refresh).
    pub(crate) recovery: Option<Box<super::recovery::Recovery>>,
}

/// One worker's samples.
#[derive(Debug, Clone)]
pub(crate) struct WorkerStats {
    /// Delivery latency, µs (healthy clients only: slow ones are late by design).
    pub(crate) latency_us: Histogram<u64>,
    /// Per-connection outcomes.
    pub(crate) conns: Vec<ConnResult>,
    /// Connection errors after establishment, by message.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Frames that were not events of this run.
    pub(crate) foreign: u64,
    /// `resync` frames: the server telling a client that it may have missed messages (its
    /// channel layer reconnected). Counted apart from `foreign`.
    pub(crate) resyncs: u64,
    /// Copies of already-received events (the live view of the connections' own counts).
    pub(crate) duplicated: u64,
    /// Events missing behind a later arrival of the same connection, now: a jump ahead adds the
    /// numbers it skipped, a late arrival takes one back (the live lower bound of the loss).
    pub(crate) gaps: u64,
    /// Connections whose receiving ended early: closed by the server, or failed.
    pub(crate) ended: u64,
    /// First and last receive, unix ns.
    pub(crate) first_rx_ns: u64,
    /// Last receive, unix ns.
    pub(crate) last_rx_ns: u64,
    /// Deliveries per [`TIMELINE_BUCKET`] since the clock's anchor.
    pub(crate) timeline: Vec<u64>,
    /// Latency per interval, by receive and by intended send time (charts, per-burst table).
    pub(crate) latency_times: super::latency_times::LatencyTimes,
}

impl WorkerStats {
    /// Empty stats with room for a `run_len` timeline.
    pub(crate) fn new(run_len: Duration) -> Self {
        let buckets = (run_len.as_millis() / TIMELINE_BUCKET.as_millis()) as usize + 2;
        Self {
            latency_us: new_histogram(),
            conns: Vec::new(),
            errors: BTreeMap::new(),
            foreign: 0,
            resyncs: 0,
            duplicated: 0,
            gaps: 0,
            ended: 0,
            first_rx_ns: u64::MAX,
            last_rx_ns: 0,
            timeline: vec![0; buckets],
            latency_times: Default::default(),
        }
    }

    /// Records one delivery received at `now_ns` that was meant to be sent at `ts_ns`.
    #[inline]
    pub(crate) fn delivery(&mut self, clock: &Clock, now_ns: u64, ts_ns: u64) {
        let us = now_ns.saturating_sub(ts_ns) / 1000;
        self.latency_us.saturating_record(us.max(1));
        self.latency_times.record(clock, now_ns, ts_ns, us);
        self.first_rx_ns = self.first_rx_ns.min(now_ns);
        self.last_rx_ns = self.last_rx_ns.max(now_ns);
        let bucket =
            (now_ns.saturating_sub(clock.start_ns()) / TIMELINE_BUCKET.as_nanos() as u64) as usize;
        if let Some(b) = self.timeline.get_mut(bucket) {
            *b += 1;
        } else if let Some(b) = self.timeline.last_mut() {
            *b += 1;
        }
    }

    /// Notes what [`SeqTracker::record`](super::SeqTracker::record) said of `seq`, the
    /// connection's highest number having been `max_before`: the live duplicate and gap counts
    /// (plain adds under the worker's lock, nothing per delivery beyond them).
    #[inline]
    pub(crate) fn receipt(&mut self, r: Receipt, max_before: u64, seq: u64) {
        match r {
            Receipt::InOrder => self.gaps += seq.saturating_sub(max_before + 1),
            Receipt::Reordered => self.gaps = self.gaps.saturating_sub(1),
            Receipt::Duplicate => self.duplicated += 1,
            Receipt::Invalid => {}
        }
    }

    /// Adds another worker's samples into this one.
    pub(crate) fn merge(&mut self, other: WorkerStats) {
        let _ = self.latency_us.add(&other.latency_us);
        self.latency_times.merge(&other.latency_times);
        self.conns.extend(other.conns);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.foreign += other.foreign;
        self.resyncs += other.resyncs;
        self.duplicated += other.duplicated;
        self.gaps += other.gaps;
        self.ended += other.ended;
        self.first_rx_ns = self.first_rx_ns.min(other.first_rx_ns);
        self.last_rx_ns = self.last_rx_ns.max(other.last_rx_ns);
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (a, b) in self.timeline.iter_mut().zip(other.timeline) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::SeqTracker;

    /// The live counts `--metrics-listen` serves: a jump ahead opens gaps, a late arrival
    /// closes one, a second copy is a duplicate; at the end the gaps are a lower bound of the
    /// loss (the missing tail is only known against what was published).
    #[test]
    fn receipts_keep_live_gap_and_duplicate_counts() {
        let mut seq = SeqTracker::new(10);
        let mut stats = WorkerStats::new(Duration::ZERO);
        let mut arrive = |n: u64| {
            let max_before = seq.max();
            let r = seq.record(n);
            stats.receipt(r, max_before, n);
            (stats.gaps, stats.duplicated)
        };
        assert_eq!(arrive(1), (0, 0));
        assert_eq!(arrive(4), (2, 0), "2 and 3 are missing behind 4");
        assert_eq!(arrive(3), (1, 0), "3 came late");
        assert_eq!(arrive(3), (1, 1), "3 again is a duplicate");
        assert_eq!(
            arrive(11),
            (1, 1),
            "outside the plan: not an event of this run"
        );
        assert_eq!(arrive(6), (2, 1));
        assert_eq!(seq.lost(8), 4, "gaps 2 and 5, tail 7 and 8");
    }
}
