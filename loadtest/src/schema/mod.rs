//! The versioned JSON report as plain serde data: what `--json` writes and `compare`, `merge` and
//! `capacity` read back without the runtime. Imports nothing else of the crate.
//!
//! Schema policy: new fields are additive and optional on read (`#[serde(default)]`: a missing
//! field is "not measured", never zero); each change that adds fields bumps [`SCHEMA_VERSION`]
//! once; a field is never renamed or given another meaning under the same version.

mod churn;
mod compare;
mod metric;
mod pace;
mod search;
mod segments;
mod series;
mod server;
mod tls;

pub use churn::{Churn, ChurnConnection, MAX_LISTED};
pub use compare::{Comparison, Figure, Movement};
pub use metric::{better, metric_name, Better, Outcome, METRICS};
pub use pace::TesterLimit;
pub use search::{SearchOver, SearchStep, SearchSummary, StepParameters};
pub use segments::{ProcessFigures, Raw};
pub use series::{Bin, BurstRow, LatencyOverTime, Sample};
pub use server::{CrossCheck, ServerMetrics};
pub use tls::Tls;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the JSON report's shape; bumped on any incompatible change. 2: `find_max.steps`
/// hold `parameters`/`figures`/`failed` and `highest_passing` is a number of either unit; every
/// other change since 1 only added fields. 3 adds `churn` (absent: not measured), and is the
/// first version stamped on the pace fields (`events.lanes`, the publish and receive lags) that
/// were added under 2. 4 adds `tls` (absent: a plain target).
pub const SCHEMA_VERSION: u32 = 4;

// Every section with a `Default` reads a missing field as its default (`#[serde(default)]` on
// each), so a report written by an older or newer build still loads as a baseline.

/// Reads an optional section, treating one of an older or unknown shape as absent: a version-1
/// report still loads as a baseline (its other figures are what a comparison needs).
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// Connection counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connections {
    /// Attempts made.
    pub attempted: u64,
    /// Established (got `connection_established`).
    pub established: u64,
    /// Attempts that did not establish.
    pub failed: u64,
    /// Close codes received (handshake rejections and closes during the run), by code.
    pub closed_by_code: BTreeMap<String, u64>,
    /// Connect failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Handshake latency, ms.
    pub handshake_ms: Quantiles,
    /// Length of the connect phase, s.
    pub connect_secs: f64,
}

/// A few latency quantiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Delivery accounting (healthy clients; slow ones are in [`SlowClients`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Deliveries {
    /// Events published × connections of each user.
    pub expected: u64,
    /// Distinct events received.
    pub received: u64,
    /// Expected but never received (gaps and missing tails).
    pub lost: u64,
    /// Received more than once (all clients).
    pub duplicated: u64,
    /// Received after a later one (all clients).
    pub reordered: u64,
    /// Frames that were not events of this run.
    pub foreign: u64,
    /// `resync` frames received (the server's word that messages may have been missed); `None`
    /// in a report written before they were counted (schema 1): not measured, not zero.
    pub resyncs: Option<u64>,
}

/// The slow readers, reported apart from the healthy clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowClients {
    /// Slow connections established.
    pub connections: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Deliveries lost.
    pub lost: u64,
    /// Slow connections closed by the server, by code.
    pub closed_by_code: BTreeMap<String, u64>,
}

/// Throughput.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Throughput {
    /// Deliveries received ÷ (last receive − first intended send).
    pub deliveries_per_sec: f64,
    /// Events published ÷ publishing time.
    pub events_per_sec: f64,
    /// Highest deliveries/s over one timeline interval (100 ms).
    pub peak_deliveries_per_sec: f64,
}

/// Delivery latency from the intended send time, µs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Publishing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Events {
    /// Events published.
    pub published: u64,
    /// Failed publish calls by message.
    pub errors: BTreeMap<String, u64>,
    /// Publishing time, s.
    pub publish_secs: f64,
    /// How far behind its schedule the publisher sent, ms (rate and replay models: per event;
    /// burst model: per burst start). `None` in a report written before it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_lag_ms: Option<Quantiles>,
    /// Publishing lanes (requests in flight, each with a fixed slice of the users); merged: the
    /// sum over the segments. `None` in a report written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lanes: Option<u64>,
}

/// The tester's own cost.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tester {
    /// CPU of the tester's threads, percent of one core over the run.
    pub cpu_percent: f64,
    /// CPU of the tester's threads from the first intended send to the end of the drain, s: the
    /// same window as `server.delivery_cpu_seconds`, embedded server threads excluded, so both
    /// costs per delivery come from one report. `None` in a report written before the window
    /// was measured (schema 1).
    pub delivery_cpu_seconds: Option<f64>,
    /// Receive lag, ms: how late the tester's runtime (its receivers) ran a task that was due,
    /// from a 10 ms probe over the delivery window; large when the receive side is saturated.
    /// `None` in a report written before it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_lag_ms: Option<Quantiles>,
}

/// The server's cost, when it can be seen (embedded, or `--server-pid`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Server {
    /// Resident memory: embedded = this process's growth (server and clients), else the PID's RSS.
    pub rss_bytes: Option<u64>,
    /// `--server-pid` only: the server's RSS growth over the connect phase ÷ connections
    /// established (idle memory per connection; embedded runs share the process with the clients).
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU, percent of one core over the run (embedded: the server's threads and the publisher).
    pub cpu_percent: Option<f64>,
    /// CPU over the whole run, s (connect phase included).
    pub cpu_seconds: Option<f64>,
    /// CPU from the first intended send to the end of the drain, s: the cost of the deliveries
    /// (`loadtest capacity` divides it by deliveries received).
    pub delivery_cpu_seconds: Option<f64>,
}

/// The versioned report (`--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Shape version.
    pub schema_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// `embedded` or the URL.
    pub target: String,
    /// Publisher name.
    pub publisher: String,
    /// Arrival model, e.g. `burst 10x20/user every 100ms`.
    pub model: String,
    /// Users.
    pub users: u64,
    /// Set when the run stopped early (Ctrl-C, duration bound): the numbers are partial.
    pub partial: Option<String>,
    /// Wall time, s.
    pub duration_secs: f64,
    /// Connections.
    pub connections: Connections,
    /// Established connections per second of the connect phase.
    pub handshakes_per_sec: f64,
    /// Deliveries.
    pub deliveries: Deliveries,
    /// Slow readers (when the scenario has any).
    pub slow_clients: Option<SlowClients>,
    /// Publishing.
    pub events: Events,
    /// Throughput.
    pub throughput: Throughput,
    /// Latency, µs.
    pub latency_us: Latency,
    /// Latency curve: `[percentile, µs]` pairs, for plots.
    pub latency_curve: Vec<(f64, u64)>,
    /// Deliveries per second in each interval since the first intended send.
    pub timeline: Timeline,
    /// Latency percentiles per interval (p50/p90/p99 over time).
    #[serde(default)]
    pub latency_over_time: LatencyOverTime,
    /// Handshake latency distribution.
    #[serde(default)]
    pub handshake_distribution: Vec<Bin>,
    /// Burst model: one row per burst.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bursts: Vec<BurstRow>,
    /// Connections established, server CPU/RSS and open connections over time.
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// Tester cost.
    pub tester: Tester,
    /// Server cost.
    pub server: Server,
    /// Threshold outcomes.
    pub thresholds: Vec<Outcome>,
    /// All thresholds passed (and the run was not cut short).
    pub passed: bool,
    /// Whether the tester, not the server, set the pace (`None`: not measured, an older report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tester_limit: Option<TesterLimit>,
    /// `--find-max`: the steps tried and the highest passing one.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub find_max: Option<SearchSummary>,
    /// `--server-metrics`: courier's counters over the run beside the tester's, mismatches flagged.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_metrics: Option<ServerMetrics>,
    /// `--repeat N`: every metric's median and min..max over the runs (thresholds judge medians).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat: Option<Repeated>,
    /// `--baseline`: every metric of this run beside the baseline report's.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub baseline: Option<Comparison>,
    /// The raw histograms and the segment, so `loadtest merge` can add reports up exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Raw>,
    /// `loadtest merge`: each merged report's own figures, by segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_process: Vec<ProcessFigures>,
    /// Churn and token refresh (schema 3; `None`: the run had neither, or an older report).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub churn: Option<Churn>,
    /// TLS (schema 4; `None`: the target was plain `ws://`, or an older report).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<Tls>,
}

impl Report {
    /// `cpu_seconds` of delivery-window CPU ÷ deliveries received (healthy and slow clients), ns;
    /// `None` when nothing was received.
    pub fn cpu_per_delivery_ns(&self, cpu_seconds: f64) -> Option<f64> {
        let slow = self.slow_clients.as_ref().map_or(0, |s| s.received);
        let n = self.deliveries.received + slow;
        (n > 0).then(|| cpu_seconds * 1e9 / n as f64)
    }
}

/// Deliveries per second over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// Interval width, ms.
    pub interval_ms: u64,
    /// Deliveries/s in each interval.
    pub deliveries_per_sec: Vec<f64>,
    /// Start of the first interval (the first intended send), s since the run started.
    #[serde(default)]
    pub start_secs: f64,
}

/// `--repeat N`: the runs' figures. The rest of the report is the last run's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repeated {
    /// Runs made.
    pub runs: usize,
    /// One row per metric measured in every run.
    pub figures: Vec<RepeatedFigure>,
}

/// One metric over the repeated runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepeatedFigure {
    /// The metric (see [`METRICS`]).
    pub metric: String,
    /// Each run's value, in order.
    pub values: Vec<f64>,
    /// Median, min and max.
    #[serde(flatten)]
    pub spread: Spread,
}

impl Repeated {
    /// The row of `metric`.
    pub fn figure(&self, metric: &str) -> Option<&RepeatedFigure> {
        self.figures.iter().find(|f| f.metric == metric)
    }
}

/// Median, minimum and maximum of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}
