//! Building a [`Report`] from a session's raw data, and judging it: thresholds, the baseline
//! beside it, the `--repeat` figures.

use std::collections::BTreeMap;

use super::{pace, series};
use crate::measure::server_metrics::TesterFigures;
use crate::measure::significance::spread;
use crate::measure::{encode, TIMELINE_BUCKET};
use crate::plan::{ArrivalModel, Plan, Target, Threshold};
use crate::schema::{
    Comparison, Connections, Deliveries, Events, Latency, Quantiles, Raw, Repeated, RepeatedFigure,
    Report, Server, SlowClients, Tester, Throughput, Timeline, Tls, METRICS, SCHEMA_VERSION,
};
use crate::session::RunData;

fn model_text(plan: &Plan) -> String {
    match plan.arrival {
        ArrivalModel::Burst {
            bursts,
            per_user,
            interval,
        } => {
            format!(
                "burst {bursts}x{per_user}/user every {}",
                humantime::format_duration(interval)
            )
        }
        ArrivalModel::Rate { per_sec, length } => format!(
            "rate {per_sec}/s for {}",
            humantime::format_duration(length)
        ),
        ArrivalModel::Replay { ref trace, speed } => {
            let files: Vec<String> = trace
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let skipped = match trace.skipped {
                0 => String::new(),
                n => format!(", {n} events of other groups skipped"),
            };
            format!(
                "replay {} x{speed}: {} events of {} trace users over {}{skipped}",
                files.join(" + "),
                trace.events.len(),
                trace.per_user.len(),
                humantime::format_duration(std::time::Duration::from_millis(
                    trace.span().as_millis() as u64
                )),
            )
        }
    }
}

/// The TLS section, when the target is `wss://`.
fn tls(plan: &Plan, handshake_us: &hdrhistogram::Histogram<u64>) -> Option<Tls> {
    let client = plan.tls.as_ref()?;
    if !matches!(&plan.target, Target::External(e) if e.is_tls()) {
        return None; // only an `https://` --server-metrics spoke TLS
    }
    Some(Tls {
        insecure: client.insecure(),
        trust: client.trust().to_owned(),
        handshake_ms: Quantiles::of_us(handshake_us),
    })
}

pub(crate) fn curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
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

impl Quantiles {
    /// p50/p99/max in ms of a µs histogram (zeros when empty).
    pub(crate) fn of_us(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl Latency {
    /// The quantiles of a µs histogram (zeros when empty).
    pub(crate) fn of(lat: &hdrhistogram::Histogram<u64>) -> Self {
        if lat.is_empty() {
            return Self::default();
        }
        Self {
            p50: lat.value_at_quantile(0.5),
            p90: lat.value_at_quantile(0.9),
            p99: lat.value_at_quantile(0.99),
            p999: lat.value_at_quantile(0.999),
            max: lat.max(),
            mean: lat.mean(),
        }
    }
}

impl Report {
    /// Builds the report and evaluates the plan's thresholds.
    pub(crate) fn build(plan: &Plan, d: &RunData) -> Self {
        let c = &d.connect;
        let established = c.conns.len() as u64 + d.stats.conns.len() as u64;
        let mut closed_by_code: BTreeMap<String, u64> = c
            .closed_by_code
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut deliveries = Deliveries {
            foreign: d.stats.foreign,
            resyncs: Some(d.stats.resyncs),
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
        let tls = tls(plan, &c.tls_handshake_us);
        let connections = Connections {
            attempted: c.attempted,
            established,
            failed: c.attempted.saturating_sub(established),
            closed_by_code,
            errors: c.errors.clone(),
            handshake_ms: Quantiles::of_us(h),
            connect_secs: c.elapsed.as_secs_f64(),
        };
        let lat = &d.stats.latency_us;
        let latency_us = Latency::of(lat);
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
            peak_deliveries_per_sec: 0.0,
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
            start_secs: first as f64 * TIMELINE_BUCKET.as_secs_f64(),
        };
        let mut throughput = throughput;
        throughput.peak_deliveries_per_sec = timeline
            .deliveries_per_sec
            .iter()
            .copied()
            .fold(0.0, f64::max);
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            scenario: plan.scenario.clone(),
            description: plan.description.clone(),
            target: plan.target_text(),
            publisher: plan.publisher.name().into(),
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
                publish_lag_ms: Some(Quantiles::of_us(&d.published.lag_us)),
                lanes: Some(d.published.lanes as u64),
            },
            throughput,
            latency_us,
            latency_curve: curve(lat),
            timeline,
            latency_over_time: series::latency_over_time(d),
            handshake_distribution: series::handshake_distribution(&c.handshake_us),
            bursts: series::bursts(plan, d),
            samples: d.costs.samples.clone(),
            tester: Tester {
                cpu_percent: d.costs.tester_cpu.as_secs_f64() / wall * 100.0,
                delivery_cpu_seconds: Some(d.costs.tester_cpu_delivering.as_secs_f64()),
                receive_lag_ms: d.costs.receive_lag_us.as_ref().map(Quantiles::of_us),
            },
            server: Server {
                rss_bytes: d.costs.server_rss,
                rss_per_connection_bytes: d.costs.server_rss_per_conn,
                cpu_percent: d.costs.server_cpu.map(|c| c.as_secs_f64() / wall * 100.0),
                cpu_seconds: d.costs.server_cpu.map(|c| c.as_secs_f64()),
                delivery_cpu_seconds: d.costs.server_cpu_delivering.map(|c| c.as_secs_f64()),
            },
            thresholds: Vec::new(),
            passed: false,
            tester_limit: None,
            find_max: None,
            baseline: None,
            repeat: None,
            server_metrics: None,
            per_process: Vec::new(),
            churn: super::churn::churn(plan, d, &d.user_ids),
            tls: tls.clone(),
            raw: Some(Raw {
                segment: plan.segment.map(|s| s.to_string()),
                start_at_ms: d.start_at_ms,
                first_send_ms: Some(d.publish_start_ns / 1_000_000),
                latency_us: encode(lat),
                handshake_us: encode(h),
                publish_lag_us: Some(encode(&d.published.lag_us)),
                receive_lag_us: d.costs.receive_lag_us.as_ref().map(encode),
                tls_handshake_us: tls.as_ref().map(|_| encode(&c.tls_handshake_us)),
            }),
        };
        let open_model = plan.arrival.is_open();
        report.tester_limit = Some(pace::tester_limit(&report, open_model));
        if let Some((source, before, after)) = &d.costs.server_metrics {
            let slow = report.slow_clients.as_ref();
            let t = TesterFigures {
                events: report.events.published,
                received: report.deliveries.received + slow.map_or(0, |s| s.received),
                lost: report.deliveries.lost + slow.map_or(0, |s| s.lost),
                closes: report.connections.closed_by_code.clone(),
            };
            report.server_metrics =
                Some(crate::schema::ServerMetrics::new(source, before, after, &t));
        }
        report.evaluate(plan);
        report
    }

    /// Checks the plan's thresholds (against the plan's baseline where relative), sets the
    /// verdict and puts the baseline's figures beside this run's.
    pub(crate) fn evaluate(&mut self, plan: &Plan) {
        let base = plan.baseline.as_deref();
        self.judge(&plan.thresholds, base.map(|b| &b.report));
        self.baseline = base.map(|b| Comparison::new(&b.source, &b.report, self));
    }

    /// Evaluates `thresholds` (relative ones against `baseline`) and sets the verdict (a partial
    /// run never passes).
    pub(crate) fn judge(&mut self, thresholds: &[Threshold], baseline: Option<&Report>) {
        self.thresholds = thresholds
            .iter()
            .map(|t| t.check(self.metric(t.metric), baseline))
            .collect();
        self.passed = self.partial.is_none() && self.thresholds.iter().all(|t| t.passed);
    }
}

impl Repeated {
    /// Collects every metric that all `reports` measured.
    pub(crate) fn from_reports(reports: &[Report]) -> Self {
        let figures = METRICS
            .iter()
            .filter_map(|(name, _, _)| {
                let values: Option<Vec<f64>> = reports.iter().map(|r| r.measured(name)).collect();
                let values = values?;
                let spread = spread(&values)?;
                Some(RepeatedFigure {
                    metric: (*name).into(),
                    values,
                    spread,
                })
            })
            .collect();
        Self {
            runs: reports.len(),
            figures,
        }
    }
}
