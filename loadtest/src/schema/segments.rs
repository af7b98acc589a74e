//! What `loadtest merge` needs from each segment's report (its raw histograms) and keeps of each
//! in the merged one (its own figures).

use serde::{Deserialize, Serialize};

use super::Report;

/// What a report carries for `loadtest merge`: the segment and the raw histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Raw {
    /// `K/N`, when the run was a segment.
    pub segment: Option<String>,
    /// The start every segment agreed on, unix ms: `--start-at`, or the `--barrier`'s (on Redis's
    /// clock).
    pub start_at_ms: Option<u64>,
    /// This process's first intended send, unix ms on its own clock (merged: the earliest).
    #[serde(default)]
    pub first_send_ms: Option<u64>,
    /// Delivery latency, µs: HdrHistogram V2 + DEFLATE, base64.
    pub latency_us: String,
    /// Handshake latency, µs: the same encoding.
    pub handshake_us: String,
    /// Publish lag, µs: the same encoding (`None`: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_lag_us: Option<String>,
    /// Receive lag, µs: the same encoding (`None`: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lag_us: Option<String>,
    /// TLS handshake latency, µs: the same encoding (`None`: a plain target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_us: Option<String>,
}

/// One merged report's own figures (`per_process` in the merged report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// `K/N`, or `#I` (the report's 1-based position in the merge) when it was not a segment.
    pub segment: String,
    /// Its target.
    pub target: String,
    /// Deliveries received (healthy and slow clients).
    pub deliveries: u64,
    /// Deliveries lost (healthy clients).
    pub lost: u64,
    /// Its deliveries/s (first intended send → last receive).
    pub deliveries_per_sec: f64,
    /// Its p99 latency, ms.
    pub p99_ms: f64,
    /// Its tester's CPU per delivery over the delivery window, ns.
    pub tester_ns_per_delivery: Option<f64>,
    /// Its server's CPU per delivery, ns (embedded, or `--server-pid`).
    pub server_ns_per_delivery: Option<f64>,
    /// Its server's RSS (embedded: the process's growth), bytes.
    pub server_rss_bytes: Option<u64>,
    /// `--server-metrics`: whether every cross-check with that server agreed.
    pub server_metrics_agree: Option<bool>,
}

impl ProcessFigures {
    /// The figures of `r`, the `i`-th (0-based) report of a merge.
    pub fn of(r: &Report, i: usize) -> Self {
        let slow = r.slow_clients.as_ref().map_or(0, |s| s.received);
        Self {
            segment: r
                .raw
                .as_ref()
                .and_then(|raw| raw.segment.clone())
                .unwrap_or_else(|| format!("#{}", i + 1)),
            target: r.target.clone(),
            deliveries: r.deliveries.received + slow,
            lost: r.deliveries.lost,
            deliveries_per_sec: r.throughput.deliveries_per_sec,
            p99_ms: r.latency_us.p99 as f64 / 1000.0,
            // An older report has no delivery window (or, before it was optional, 0 there).
            tester_ns_per_delivery: r
                .tester
                .delivery_cpu_seconds
                .filter(|cpu| *cpu > 0.0)
                .and_then(|cpu| r.cpu_per_delivery_ns(cpu)),
            server_ns_per_delivery: r.measured("server_ns_per_delivery"),
            server_rss_bytes: r.server.rss_bytes,
            server_metrics_agree: r.server_metrics.as_ref().map(|m| m.agree),
        }
    }
}
