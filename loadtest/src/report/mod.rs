//! The report: raw run data → a versioned, serializable [`Report`], plus its renderings
//! (text, JSON, JUnit, HTML) and threshold evaluation.

pub mod html;
pub mod junit;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::Plan;
use crate::runner::RunData;
use crate::stats::TIMELINE_BUCKET;
use crate::threshold::Outcome;

/// Version of the JSON report's shape; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Connection counts.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Delivery accounting (healthy clients; slow ones are in [`SlowClients`]).
#[derive(Debug, Clone, Default, Serialize)]
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
}

/// The slow readers, reported apart from the healthy clients.
#[derive(Debug, Clone, Default, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Throughput {
    /// Deliveries received ÷ (last receive − first intended send).
    pub deliveries_per_sec: f64,
    /// Events published ÷ publishing time.
    pub events_per_sec: f64,
}

/// Delivery latency from the intended send time, µs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct Events {
    /// Events published.
    pub published: u64,
    /// Failed publish calls by message.
    pub errors: BTreeMap<String, u64>,
    /// Publishing time, s.
    pub publish_secs: f64,
}

/// The tester's own cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tester {
    /// CPU of the tester's threads, percent of one core over the run.
    pub cpu_percent: f64,
}

/// The server's cost, when it can be seen (embedded, or `--server-pid`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Server {
    /// Resident memory: embedded = this process's growth (server and clients), else the PID's RSS.
    pub rss_bytes: Option<u64>,
    /// CPU, percent of one core over the run (embedded: the server's threads and the publisher).
    pub cpu_percent: Option<f64>,
}

/// The versioned report (`--json`).
#[derive(Debug, Clone, Serialize)]
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
    /// Tester cost.
    pub tester: Tester,
    /// Server cost.
    pub server: Server,
    /// Threshold outcomes.
    pub thresholds: Vec<Outcome>,
    /// All thresholds passed (and the run was not cut short).
    pub passed: bool,
    /// `--find-max`: the steps tried and the highest passing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub find_max: Option<crate::findmax::Summary>,
}

/// Deliveries per second over time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Interval width, ms.
    pub interval_ms: u64,
    /// Deliveries/s in each interval.
    pub deliveries_per_sec: Vec<f64>,
}

fn model_text(plan: &Plan) -> String {
    match plan.arrival {
        crate::plan::Arrival::Burst {
            bursts,
            per_user,
            interval,
        } => {
            format!(
                "burst {bursts}x{per_user}/user every {}",
                humantime::format_duration(interval)
            )
        }
        crate::plan::Arrival::Rate { per_sec, length } => format!(
            "rate {per_sec}/s for {}",
            humantime::format_duration(length)
        ),
    }
}

fn curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    // Evenly spaced in "nines": 0, 90, 99, 99.9, 99.99, 99.999, with 10 points per decade.
    (0..=50)
        .map(|i| {
            let p = 1.0 - 10f64.powf(-(i as f64) / 10.0);
            (
                (p * 100.0 * 1000.0).round() / 1000.0,
                h.value_at_quantile(p),
            )
        })
        .chain(std::iter::once((100.0, h.max())))
        .collect()
}

impl Report {
    /// Builds the report and evaluates the plan's thresholds.
    pub fn build(plan: &Plan, d: &RunData) -> Self {
        let c = &d.connect;
        let established = c.conns.len() as u64 + d.stats.conns.len() as u64;
        let mut closed_by_code: BTreeMap<String, u64> = c
            .closed_by_code
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut deliveries = Deliveries {
            foreign: d.stats.foreign,
            ..Deliveries::default()
        };
        let mut slow = SlowClients::default();
        for conn in &d.stats.conns {
            let published = d.published.per_user.get(conn.user).copied().unwrap_or(0);
            let lost = conn.seq.lost(published);
            let received = published.saturating_sub(lost);
            deliveries.duplicated += conn.seq.duplicated;
            deliveries.reordered += conn.seq.reordered;
            let code = conn.closed.map(|c| c.to_string());
            if conn.slow {
                slow.connections += 1;
                slow.expected += published;
                slow.received += received;
                slow.lost += lost;
                if let Some(code) = &code {
                    *slow.closed_by_code.entry(code.clone()).or_default() += 1;
                }
            } else {
                deliveries.expected += published;
                deliveries.received += received;
                deliveries.lost += lost;
            }
            if let Some(code) = code {
                *closed_by_code.entry(code).or_default() += 1;
            }
        }
        let h = &c.handshake_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let connections = Connections {
            attempted: c.attempted,
            established,
            failed: c.attempted.saturating_sub(established),
            closed_by_code,
            errors: c.errors.clone(),
            handshake_ms: if h.is_empty() {
                Quantiles::default()
            } else {
                Quantiles {
                    p50: ms(h.value_at_quantile(0.5)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                }
            },
            connect_secs: c.elapsed.as_secs_f64(),
        };
        let lat = &d.stats.latency_us;
        let latency_us = if lat.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: lat.value_at_quantile(0.5),
                p90: lat.value_at_quantile(0.9),
                p99: lat.value_at_quantile(0.99),
                p999: lat.value_at_quantile(0.999),
                max: lat.max(),
                mean: lat.mean(),
            }
        };
        let span = d.stats.last_rx_ns.saturating_sub(d.publish_start_ns) as f64 / 1e9;
        let all_received = deliveries.received + slow.received;
        let throughput = Throughput {
            deliveries_per_sec: if span > 0.0 {
                all_received as f64 / span
            } else {
                0.0
            },
            events_per_sec: if d.published.elapsed.is_zero() {
                0.0
            } else {
                d.published.events as f64 / d.published.elapsed.as_secs_f64()
            },
        };
        let wall = d.wall.as_secs_f64().max(1e-9);
        let bucket = TIMELINE_BUCKET.as_nanos() as u64;
        let first = (d.publish_start_ns.saturating_sub(d.clock.start_ns()) / bucket) as usize;
        let last = d
            .stats
            .timeline
            .iter()
            .rposition(|v| *v > 0)
            .map_or(first, |p| p + 1);
        let per_sec = 1e9 / bucket as f64;
        let timeline = Timeline {
            interval_ms: TIMELINE_BUCKET.as_millis() as u64,
            deliveries_per_sec: d
                .stats
                .timeline
                .get(first..last.max(first))
                .unwrap_or_default()
                .iter()
                .map(|v| *v as f64 * per_sec)
                .collect(),
        };
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            scenario: plan.scenario.clone(),
            description: plan.description.clone(),
            target: plan.target_text(),
            publisher: format!("{:?}", plan.publisher).to_lowercase(),
            model: model_text(plan),
            users: plan.users as u64,
            partial: d.stop_reason.clone(),
            duration_secs: wall,
            handshakes_per_sec: if c.elapsed.is_zero() {
                0.0
            } else {
                established as f64 / c.elapsed.as_secs_f64()
            },
            connections,
            deliveries,
            slow_clients: (slow.connections > 0).then_some(slow),
            events: Events {
                published: d.published.events,
                errors: d.published.errors.clone(),
                publish_secs: d.published.elapsed.as_secs_f64(),
            },
            throughput,
            latency_us,
            latency_curve: curve(lat),
            timeline,
            tester: Tester {
                cpu_percent: d.tester_cpu.as_secs_f64() / wall * 100.0,
            },
            server: Server {
                rss_bytes: d.server_rss,
                cpu_percent: d.server_cpu.map(|c| c.as_secs_f64() / wall * 100.0),
            },
            thresholds: Vec::new(),
            passed: false,
            find_max: None,
        };
        report.thresholds = plan
            .thresholds
            .iter()
            .map(|t| t.check(report.metric(t.metric)))
            .collect();
        report.passed = report.partial.is_none() && report.thresholds.iter().all(|t| t.passed);
        report
    }

    /// The value of a threshold metric (see [`crate::threshold::METRICS`]).
    pub fn metric(&self, name: &str) -> Option<f64> {
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
            "handshakes_per_sec" => self.handshakes_per_sec,
            "deliveries_per_sec" => self.throughput.deliveries_per_sec,
            "events_per_sec" => self.throughput.events_per_sec,
            "tester_cpu_percent" => self.tester.cpu_percent,
            "server_rss_mb" => self.server.rss_bytes? as f64 / (1024.0 * 1024.0),
            _ => return None,
        })
    }
}
