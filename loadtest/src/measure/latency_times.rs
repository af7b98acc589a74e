//! Latency over time: per-interval latency counts in log-spaced bins, by receive time (for the
//! p50/p90/p99-over-time chart) and by intended send time (for the per-burst table).
//!
//! A full HdrHistogram per 100 ms interval would cost ~30 KiB each; bins 10 % wide cost 1 KiB
//! per interval that saw a delivery, and give percentiles within ±5 %, plenty for a chart. The
//! exact whole-run percentiles still come from the HdrHistogram in [`super::stats`].

use super::clock::{Clock, TIMELINE_BUCKET};

/// Bin growth factor: bin `i` holds latencies in [1.1^i, 1.1^(i+1)) µs.
const GROWTH: f64 = 1.1;
/// Bins: 1.1^231 µs ≈ 1 hour, the longest latency recorded (longer ones go to the last bin).
const BINS: usize = 232;
/// Intervals kept: one hour of 100 ms intervals. A later time (or a bogus `ts` from a broken
/// server) counts in the last one, so memory stays bounded whatever the frames say.
const MAX_INTERVALS: usize = 36_000;

/// Latency bins per interval of one time axis, allocated on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bins {
    intervals: Vec<Vec<u32>>,
}

fn bin_of(us: u64) -> usize {
    ((us.max(1) as f64).ln() / GROWTH.ln()) as usize
}

/// The bin's middle value, µs.
fn bin_value(i: usize) -> f64 {
    GROWTH.powf(i as f64 + 0.5)
}

impl Bins {
    /// Counts one latency in interval `at`.
    pub(crate) fn record(&mut self, at: usize, us: u64) {
        let at = at.min(MAX_INTERVALS - 1);
        if self.intervals.len() <= at {
            self.intervals.resize_with(at + 1, Vec::new);
        }
        let bins = &mut self.intervals[at];
        if bins.is_empty() {
            bins.resize(BINS, 0);
        }
        bins[bin_of(us).min(BINS - 1)] += 1;
    }

    /// Adds another's counts.
    pub(crate) fn merge(&mut self, other: &Bins) {
        for (at, bins) in other.intervals.iter().enumerate() {
            for (i, n) in bins.iter().enumerate().filter(|(_, n)| **n > 0) {
                if self.intervals.len() <= at {
                    self.intervals.resize_with(at + 1, Vec::new);
                }
                let mine = &mut self.intervals[at];
                if mine.is_empty() {
                    mine.resize(BINS, 0);
                }
                mine[i] += n;
            }
        }
    }

    /// Intervals recorded (the last one with data, plus one).
    pub(crate) fn len(&self) -> usize {
        self.intervals
            .iter()
            .rposition(|b| !b.is_empty())
            .map_or(0, |p| p + 1)
    }

    /// Deliveries and the `qs` quantiles (µs) over intervals `range` merged; `None` quantiles
    /// when the range saw nothing.
    pub(crate) fn summary(
        &self,
        range: std::ops::Range<usize>,
        qs: &[f64],
    ) -> (u64, Vec<Option<f64>>) {
        let mut merged = vec![0u64; BINS];
        // A range past the last recorded interval is clamped (those intervals saw nothing).
        let end = range.end.min(self.intervals.len());
        for bins in self
            .intervals
            .get(range.start.min(end)..end)
            .unwrap_or_default()
        {
            for (m, n) in merged.iter_mut().zip(bins) {
                *m += u64::from(*n);
            }
        }
        let total: u64 = merged.iter().sum();
        let quantiles = qs
            .iter()
            .map(|q| {
                if total == 0 {
                    return None;
                }
                let rank = ((q * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                merged.iter().enumerate().find_map(|(i, n)| {
                    seen += n;
                    (seen >= rank).then(|| bin_value(i))
                })
            })
            .collect();
        (total, quantiles)
    }
}

/// Latency by receive interval and by intended-send interval ([`TIMELINE_BUCKET`] wide).
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyTimes {
    /// By the interval the delivery was received in.
    pub(crate) by_receive: Bins,
    /// By the interval the event was meant to be sent in (a burst's start).
    pub(crate) by_send: Bins,
}

impl LatencyTimes {
    /// Records a delivery received at `now_ns`, meant for `ts_ns`, `us` late.
    #[inline]
    pub(crate) fn record(&mut self, clock: &Clock, now_ns: u64, ts_ns: u64, us: u64) {
        let width = TIMELINE_BUCKET.as_nanos() as u64;
        let at = |ns: u64| (ns.saturating_sub(clock.start_ns()) / width) as usize;
        self.by_receive.record(at(now_ns), us);
        self.by_send.record(at(ts_ns), us);
    }

    /// Adds another worker's.
    pub(crate) fn merge(&mut self, other: &LatencyTimes) {
        self.by_receive.merge(&other.by_receive);
        self.by_send.merge(&other.by_send);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bin_width() {
        let mut b = Bins::default();
        for us in 1..=10_000u64 {
            b.record(3, us);
        }
        let (n, q) = b.summary(0..10, &[0.5, 0.9, 0.99]);
        assert_eq!(n, 10_000);
        for (got, want) in q.iter().zip([5000.0, 9000.0, 9900.0]) {
            let got = got.expect("quantile");
            assert!((got / want - 1.0).abs() < 0.06, "{got} vs {want}");
        }
        assert_eq!(b.summary(0..3, &[0.5]).1, vec![None], "empty intervals");
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (Bins::default(), Bins::default());
        a.record(0, 100);
        b.record(0, 100);
        b.record(5, 1_000_000_000_000);
        a.merge(&b);
        assert_eq!(a.summary(0..1, &[0.5]).0, 2);
        assert_eq!(
            a.summary(5..6, &[1.0]).0,
            1,
            "an hour or more goes to the last bin"
        );
    }
}
