//! Metric names, the direction in which each improves, and how each is read from a report: the
//! vocabulary shared by thresholds, baseline comparisons, `--repeat` and `ab`.

use serde::{Deserialize, Serialize};

use super::Report;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller is better (latency, loss, cost).
    Lower,
    /// Larger is better (throughput, connections established).
    Higher,
    /// A count that describes the run rather than judges it (deliveries expected).
    Neither,
}

/// The direction of `metric` (a name from [`METRICS`]; unknown names are [`Better::Neither`]).
pub fn better(metric: &str) -> Better {
    METRICS
        .iter()
        .find(|(n, _, _)| *n == metric)
        .map_or(Better::Neither, |(_, _, b)| *b)
}

/// Checks that `name` is one of [`METRICS`], returning its static name.
pub fn metric_name(name: &str) -> std::result::Result<&'static str, String> {
    METRICS
        .iter()
        .map(|(n, _, _)| *n)
        .find(|n| *n == name)
        .ok_or_else(|| {
            let known: Vec<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
            format!("unknown metric {name:?}; known: {}", known.join(", "))
        })
}

/// Every metric a threshold may name, with its meaning (shown in errors and the README) and which
/// direction is better (for baseline comparisons and A/B verdicts).
pub const METRICS: &[(&str, &str, Better)] = &[
    ("p50_ms", "delivery latency p50, ms", Better::Lower),
    ("p90_ms", "delivery latency p90, ms", Better::Lower),
    ("p99_ms", "delivery latency p99, ms", Better::Lower),
    ("p999_ms", "delivery latency p99.9, ms", Better::Lower),
    ("max_ms", "delivery latency max, ms", Better::Lower),
    ("p50_us", "delivery latency p50, µs", Better::Lower),
    ("p99_us", "delivery latency p99, µs", Better::Lower),
    (
        "handshake_p99_ms",
        "handshake latency p99, ms",
        Better::Lower,
    ),
    (
        "expected",
        "deliveries expected (healthy clients)",
        Better::Neither,
    ),
    (
        "received",
        "deliveries received (healthy clients)",
        Better::Higher,
    ),
    ("lost", "deliveries lost by healthy clients", Better::Lower),
    (
        "duplicated",
        "deliveries duplicated (all clients)",
        Better::Lower,
    ),
    (
        "reordered",
        "deliveries out of order (all clients)",
        Better::Lower,
    ),
    (
        "slow_lost",
        "deliveries lost by slow (non-reading) clients",
        Better::Neither,
    ),
    (
        "slow_closed",
        "slow clients closed by the server",
        Better::Neither,
    ),
    ("established", "connections established", Better::Higher),
    (
        "failed",
        "connections that failed to establish",
        Better::Lower,
    ),
    (
        "closed",
        "established healthy connections closed by the server before the end",
        Better::Lower,
    ),
    ("publish_errors", "publish calls that failed", Better::Lower),
    (
        "resyncs",
        "resync frames received (the server's word that messages may be missing)",
        Better::Lower,
    ),
    (
        "lost_silent",
        "churn: events missing that no resync announced (must be 0 with resume)",
        Better::Lower,
    ),
    (
        "unrecoverable",
        "churn: events missing inside a range a resync announced",
        Better::Lower,
    ),
    (
        "recovered",
        "churn: events received in a replay after a resumed reconnect",
        Better::Neither,
    ),
    (
        "reconnects",
        "churn: reconnects established",
        Better::Neither,
    ),
    (
        "reconnect_failures",
        "churn: reconnect attempts that failed",
        Better::Lower,
    ),
    (
        "recovery_p50_ms",
        "churn: reconnect start to caught up, p50, ms",
        Better::Lower,
    ),
    (
        "recovery_p99_ms",
        "churn: reconnect start to caught up, p99, ms",
        Better::Lower,
    ),
    (
        "replay_bytes",
        "churn: bytes of the recovered events' frames",
        Better::Neither,
    ),
    (
        "refresh_unanswered",
        "token refreshes sent without a refreshed answer",
        Better::Lower,
    ),
    (
        "handshakes_per_sec",
        "connections established per second of the connect phase",
        Better::Higher,
    ),
    (
        "deliveries_per_sec",
        "deliveries / (last receive − first intended send)",
        Better::Higher,
    ),
    (
        "peak_deliveries_per_sec",
        "highest deliveries/s over one 100 ms interval",
        Better::Higher,
    ),
    (
        "events_per_sec",
        "events published per second",
        Better::Higher,
    ),
    (
        "publish_lag_p99_ms",
        "publisher behind its schedule, p99, ms",
        Better::Lower,
    ),
    (
        "publish_lag_max_ms",
        "publisher behind its schedule, max, ms",
        Better::Lower,
    ),
    (
        "receive_lag_p99_ms",
        "tester's receive side: how late a due task ran, p99, ms",
        Better::Lower,
    ),
    (
        "tester_limited",
        "1 when the tester, not the server, set the pace (publisher or receive side), else 0",
        Better::Lower,
    ),
    (
        "tester_cpu_percent",
        "the tester's own CPU, percent of one core",
        Better::Lower,
    ),
    (
        "server_rss_mb",
        "server resident memory, MiB",
        Better::Lower,
    ),
    (
        "rss_per_connection_bytes",
        "server RSS growth over the connect phase / connections (needs --server-pid)",
        Better::Lower,
    ),
    (
        "server_cpu_percent",
        "server CPU, percent of one core over the run",
        Better::Lower,
    ),
    (
        "server_metrics_mismatches",
        "--server-metrics cross-checks where courier's counters and the tester's disagree",
        Better::Lower,
    ),
    (
        "server_ns_per_delivery",
        "server CPU from first send to end of drain / deliveries, ns",
        Better::Lower,
    ),
];

/// One threshold's outcome, as it appears in the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The expression.
    pub expr: String,
    /// The measured value (`null` when the metric was not measured, which fails).
    pub actual: Option<f64>,
    /// The bound it was checked against (a relative bound resolved against the baseline).
    #[serde(default)]
    pub bound: Option<f64>,
    /// The baseline's value of the metric, for a relative bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Whether the check held.
    pub passed: bool,
}

impl Report {
    /// The value of a threshold metric (see [`METRICS`]): the median over the
    /// runs of a `--repeat` report, else this run's.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match &self.repeat {
            Some(r) => r.figure(name).map(|f| f.spread.median),
            None => self.measured(name),
        }
    }

    /// The value of a threshold metric in this one run.
    pub fn measured(&self, name: &str) -> Option<f64> {
        let l = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let slow = self.slow_clients.as_ref();
        Some(match name {
            "p50_ms" => ms(l.p50),
            "p90_ms" => ms(l.p90),
            "p99_ms" => ms(l.p99),
            "p999_ms" => ms(l.p999),
            "max_ms" => ms(l.max),
            "p50_us" => l.p50 as f64,
            "p99_us" => l.p99 as f64,
            "handshake_p99_ms" => self.connections.handshake_ms.p99,
            "expected" => self.deliveries.expected as f64,
            "received" => self.deliveries.received as f64,
            "lost" => self.deliveries.lost as f64,
            "duplicated" => self.deliveries.duplicated as f64,
            "reordered" => self.deliveries.reordered as f64,
            "resyncs" => self.deliveries.resyncs? as f64,
            "slow_lost" => slow.map_or(0, |s| s.lost) as f64,
            "slow_closed" => slow.map_or(0, |s| s.closed_by_code.values().sum()) as f64,
            "established" => self.connections.established as f64,
            "failed" => self.connections.failed as f64,
            "closed" => {
                let all: u64 = self.connections.closed_by_code.values().sum();
                let slow_closed: u64 = slow.map_or(0, |s| s.closed_by_code.values().sum());
                let at_connect: u64 = self
                    .connections
                    .errors
                    .iter()
                    .filter(|(k, _)| k.starts_with("closed "))
                    .map(|(_, v)| v)
                    .sum();
                all.saturating_sub(slow_closed + at_connect) as f64
            }
            "publish_errors" => self.events.errors.values().sum::<u64>() as f64,
            "lost_silent" => self.churn.as_ref()?.lost_silent as f64,
            "unrecoverable" => self.churn.as_ref()?.unrecoverable as f64,
            "recovered" => self.churn.as_ref()?.recovered as f64,
            "reconnects" => self.churn.as_ref()?.reconnects as f64,
            "reconnect_failures" => self.churn.as_ref()?.reconnect_failures as f64,
            // No resumed reconnect caught up: not measured (a bound on it fails), not 0.
            "recovery_p50_ms" => {
                self.churn
                    .as_ref()
                    .filter(|c| c.recoveries > 0)?
                    .recovery_ms
                    .p50
            }
            "recovery_p99_ms" => {
                self.churn
                    .as_ref()
                    .filter(|c| c.recoveries > 0)?
                    .recovery_ms
                    .p99
            }
            "replay_bytes" => self.churn.as_ref()?.replay_bytes as f64,
            "refresh_unanswered" => {
                let c = self.churn.as_ref()?;
                c.refreshes.saturating_sub(c.refreshed) as f64
            }
            "handshakes_per_sec" => self.handshakes_per_sec,
            "deliveries_per_sec" => self.throughput.deliveries_per_sec,
            "peak_deliveries_per_sec" => self.throughput.peak_deliveries_per_sec,
            "events_per_sec" => self.throughput.events_per_sec,
            "publish_lag_p99_ms" => self.events.publish_lag_ms?.p99,
            "publish_lag_max_ms" => self.events.publish_lag_ms?.max,
            "receive_lag_p99_ms" => self.tester.receive_lag_ms?.p99,
            "tester_limited" => f64::from(u8::from(self.tester_limit.as_ref()?.limited)),
            "tester_cpu_percent" => self.tester.cpu_percent,
            "server_rss_mb" => self.server.rss_bytes? as f64 / (1024.0 * 1024.0),
            "rss_per_connection_bytes" => self.server.rss_per_connection_bytes?,
            "server_cpu_percent" => self.server.cpu_percent?,
            "server_metrics_mismatches" => {
                let m = self.server_metrics.as_ref()?;
                m.checks.iter().filter(|c| !c.agrees).count() as f64
            }
            "server_ns_per_delivery" => {
                let received = self.deliveries.received + slow.map_or(0, |s| s.received);
                let cpu = self
                    .server
                    .delivery_cpu_seconds
                    .or(self.server.cpu_seconds)?;
                (received > 0).then(|| cpu * 1e9 / received as f64)?
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_a_direction() {
        assert_eq!(better("p99_ms"), Better::Lower);
        assert_eq!(better("deliveries_per_sec"), Better::Higher);
        let mut names: Vec<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "metric names are unique");
    }
}
