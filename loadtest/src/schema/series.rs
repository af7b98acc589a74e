//! The report's series and distributions, for charts: latency over time, the handshake
//! distribution, the per-burst table and the sampler's readings.

use serde::{Deserialize, Serialize};

/// Latency percentiles per interval, by receive time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencyOverTime {
    /// Interval width, ms (a multiple of 100 ms, so a long run stays under 120 points).
    pub interval_ms: u64,
    /// Start of the first interval, s since the run started.
    pub start_secs: f64,
    /// Deliveries received in each interval.
    pub deliveries: Vec<u64>,
    /// Median, ms (`null`: nothing received in that interval).
    pub p50_ms: Vec<Option<f64>>,
    /// 90th percentile, ms.
    pub p90_ms: Vec<Option<f64>>,
    /// 99th percentile, ms.
    pub p99_ms: Vec<Option<f64>>,
}

/// One bin of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Upper edge, ms.
    pub le_ms: f64,
    /// Values in (previous edge, this edge].
    pub count: u64,
}

/// One burst of the burst model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurstRow {
    /// Burst number, from 1.
    pub burst: u64,
    /// Scheduled start, s since the run started.
    pub start_secs: f64,
    /// Deliveries of this burst's events (healthy clients).
    pub deliveries: u64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Highest latency bin, ms.
    pub max_ms: Option<f64>,
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_secs: f64,
    /// Connections established so far (tester side).
    pub established: u64,
    /// Open connections as the server counts them (`--server-metrics`).
    pub server_open: Option<f64>,
    /// Server CPU since the previous sample, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// Server RSS (embedded: the whole process, clients included).
    pub server_rss_bytes: Option<u64>,
}
