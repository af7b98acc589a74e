//! The figures one scrape serves: added up from a running session's counters, or taken from the
//! finished run's report.

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;

use crate::measure::{decode, new_histogram, Live};
use crate::schema::Report;

/// What the endpoint serves. Deliveries, loss, duplicates and latency are the healthy clients'
/// (the report's `deliveries` section; slow readers are late by design and reported apart).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The figures are the finished run's report (`loadtest_run_finished`).
    pub(crate) finished: bool,
    /// Runs begun by this process.
    pub(crate) runs: u64,
    /// Connection attempts: finished ones while connecting, every one in the report.
    pub(crate) attempted: u64,
    /// Connections established.
    pub(crate) established: u64,
    /// Attempts that did not establish.
    pub(crate) failed: u64,
    /// Established and neither closed by the server nor failed; 0 once the run is over.
    pub(crate) open: u64,
    /// Connections the server closed or that failed while receiving (what `open` subtracts).
    pub(crate) ended: u64,
    /// Events published.
    pub(crate) published: u64,
    /// Failed publish calls.
    pub(crate) publish_errors: u64,
    /// Distinct events received.
    pub(crate) deliveries: u64,
    /// Copies of events already received.
    pub(crate) duplicates: u64,
    /// During the run, events a connection has not received although a later one of its user
    /// has arrived (a lower bound: a late arrival lowers it, a missing tail is not yet counted);
    /// once finished, the report's exact loss (gaps and missing tails).
    pub(crate) lost: u64,
    /// `resync` frames received.
    pub(crate) resyncs: u64,
    /// Delivery latency from the intended send, µs.
    pub(crate) latency_us: Histogram<u64>,
    /// Churn's settled figures, (recovered, lost_silent): only in a finished run's report, as
    /// both are decided against what was published.
    pub(crate) churn: Option<(u64, u64)>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            finished: false,
            runs: 0,
            attempted: 0,
            established: 0,
            failed: 0,
            open: 0,
            ended: 0,
            published: 0,
            publish_errors: 0,
            deliveries: 0,
            duplicates: 0,
            lost: 0,
            resyncs: 0,
            latency_us: new_histogram(),
            churn: None,
        }
    }
}

impl Snapshot {
    /// The session-wide live counters; the workers' figures are added by
    /// [`Snapshot::add_worker`].
    pub(crate) fn of_live(live: &Live) -> Self {
        let established = live.connected.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        Self {
            attempted: established + failed,
            established,
            failed,
            published: live.published.load(Ordering::Relaxed),
            publish_errors: live.publish_errors.load(Ordering::Relaxed),
            ..Self::default()
        }
    }

    /// A finished run's figures, exactly as its report states them (the latency histogram is
    /// the report's raw one).
    pub(crate) fn of_report(r: &Report) -> Self {
        let latency_us = r
            .raw
            .as_ref()
            .and_then(|raw| decode(&raw.latency_us, "raw.latency_us").ok())
            .unwrap_or_else(new_histogram);
        Self {
            finished: true,
            runs: 0,
            attempted: r.connections.attempted,
            established: r.connections.established,
            failed: r.connections.failed,
            open: 0,
            ended: 0,
            published: r.events.published,
            publish_errors: r.events.errors.values().sum(),
            deliveries: r.deliveries.received,
            duplicates: r.deliveries.duplicated,
            lost: r.deliveries.lost,
            resyncs: r.deliveries.resyncs.unwrap_or(0),
            latency_us,
            churn: r.churn.as_ref().map(|c| (c.recovered, c.lost_silent)),
        }
    }
}
