//! The report's over-time series and distributions, built from a session's data: latency
//! percentiles per interval, the handshake latency distribution, and the per-burst table.

use crate::measure::TIMELINE_BUCKET;
use crate::plan::{ArrivalModel, Plan};
use crate::schema::{Bin, BurstRow, LatencyOverTime};
use crate::session::RunData;

/// Most points in an over-time series: intervals are merged to stay under it.
const MAX_POINTS: usize = 120;
/// Bins of the handshake latency distribution.
const HANDSHAKE_BINS: usize = 24;

fn ms(us: Option<f64>) -> Option<f64> {
    us.map(|u| (u / 1000.0 * 1000.0).round() / 1000.0)
}

/// Latency percentiles over time, from the first intended send to the last receive.
pub(crate) fn latency_over_time(d: &RunData) -> LatencyOverTime {
    let bins = &d.stats.latency_times.by_receive;
    let bucket = TIMELINE_BUCKET.as_nanos() as u64;
    let first = (d.publish_start_ns.saturating_sub(d.clock.start_ns()) / bucket) as usize;
    let last = bins.len().max(first);
    let merge = (last - first).div_ceil(MAX_POINTS).max(1);
    let mut out = LatencyOverTime {
        interval_ms: TIMELINE_BUCKET.as_millis() as u64 * merge as u64,
        start_secs: first as f64 * TIMELINE_BUCKET.as_secs_f64(),
        ..LatencyOverTime::default()
    };
    let mut at = first;
    while at < last {
        let (n, q) = bins.summary(at..at + merge, &[0.5, 0.9, 0.99]);
        out.deliveries.push(n);
        out.p50_ms.push(ms(q[0]));
        out.p90_ms.push(ms(q[1]));
        out.p99_ms.push(ms(q[2]));
        at += merge;
    }
    out
}

/// The handshake latency distribution in log-spaced bins from the fastest to the slowest.
pub(crate) fn handshake_distribution(h: &hdrhistogram::Histogram<u64>) -> Vec<Bin> {
    if h.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = (h.min().max(1) as f64, h.max().max(1) as f64);
    let step = (hi / lo).max(1.0001).powf(1.0 / HANDSHAKE_BINS as f64);
    let mut below = 0;
    (1..=HANDSHAKE_BINS)
        .map(|i| {
            let edge = if i == HANDSHAKE_BINS {
                h.max()
            } else {
                (lo * step.powi(i as i32)) as u64
            };
            let upto = h.count_between(0, edge);
            let count = upto.saturating_sub(below);
            below = upto;
            Bin {
                le_ms: edge as f64 / 1000.0,
                count,
            }
        })
        .collect()
}

/// One row per burst (burst model with bursts at least one interval apart; else empty).
pub(crate) fn bursts(plan: &Plan, d: &RunData) -> Vec<BurstRow> {
    let ArrivalModel::Burst {
        bursts, interval, ..
    } = plan.arrival
    else {
        return Vec::new();
    };
    if interval < TIMELINE_BUCKET {
        return Vec::new();
    }
    let bucket = TIMELINE_BUCKET.as_nanos() as u64;
    let bins = &d.stats.latency_times.by_send;
    (0..bursts)
        .map(|b| {
            let ts = d.publish_start_ns + interval.as_nanos() as u64 * b;
            let at = (ts.saturating_sub(d.clock.start_ns()) / bucket) as usize;
            let (n, q) = bins.summary(at..at + 1, &[0.5, 0.99, 1.0]);
            BurstRow {
                burst: b + 1,
                start_secs: ts.saturating_sub(d.clock.start_ns()) as f64 / 1e9,
                deliveries: n,
                p50_ms: ms(q[0]),
                p99_ms: ms(q[1]),
                max_ms: ms(q[2]),
            }
        })
        .collect()
}
