//! The Prometheus text exposition format (version 0.0.4) of a [`Snapshot`]: `# HELP`, `# TYPE`,
//! one sample a line. Ten lines of format do not need a metrics crate; the names and their
//! meaning are this file's.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::Snapshot;

/// The `Content-Type` of the page.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, µs (rendered in seconds, `+Inf` added):
/// sub-millisecond for a loopback run up to seconds for an overloaded server.
pub(crate) const LATENCY_BUCKETS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// One metric's `# HELP` and `# TYPE` lines, then `name value`.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The latency histogram: cumulative `_bucket{le=…}` counts, `_sum` in seconds, `_count`.
/// HdrHistogram keeps 3 significant digits, so a bucket's edge is exact to 0.1 %; the sum adds
/// each recorded bin's middle value.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut counts = vec![0u64; LATENCY_BUCKETS_US.len()];
    let mut sum_us = 0f64;
    for v in h.iter_recorded() {
        let at = h.lowest_equivalent(v.value_iterated_to());
        let n = v.count_at_value();
        sum_us += h.median_equivalent(at) as f64 * n as f64;
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|le| at <= *le) {
            counts[i] += n;
        }
    }
    let mut cumulative = 0;
    for (le, n) in LATENCY_BUCKETS_US.iter().zip(counts) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *le as f64 / 1e6
        );
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let _ = writeln!(out, "{name}_sum {}", sum_us / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.len());
}

/// The whole page.
pub(crate) fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    scalar(
        o,
        "loadtest_run_finished",
        "gauge",
        "1 when the figures are the finished run's report (final), 0 while a run goes.",
        u64::from(s.finished),
    );
    scalar(o, "loadtest_runs_started_total", "counter",
        "Runs this process began (--repeat and --find-max run several; each restarts the other counters).",
        s.runs);
    scalar(
        o,
        "loadtest_connections_attempted_total",
        "counter",
        "WebSocket connection attempts (while connecting: those finished).",
        s.attempted,
    );
    scalar(
        o,
        "loadtest_connections_established_total",
        "counter",
        "Connections that got connection_established.",
        s.established,
    );
    scalar(
        o,
        "loadtest_connections_failed_total",
        "counter",
        "Connection attempts that did not establish.",
        s.failed,
    );
    scalar(
        o,
        "loadtest_connections_open",
        "gauge",
        "Connections established and not closed by the server nor failed (0 once the run is over).",
        s.open,
    );
    scalar(
        o,
        "loadtest_events_published_total",
        "counter",
        "Events published.",
        s.published,
    );
    scalar(
        o,
        "loadtest_publish_errors_total",
        "counter",
        "Failed publish calls (requests or pipelines).",
        s.publish_errors,
    );
    scalar(
        o,
        "loadtest_deliveries_total",
        "counter",
        "Distinct events received by the healthy clients (rate() gives deliveries/s).",
        s.deliveries,
    );
    scalar(
        o,
        "loadtest_duplicates_total",
        "counter",
        "Copies of events a client had already received.",
        s.duplicates,
    );
    scalar(o, "loadtest_lost", "gauge",
        "Deliveries missing. While running: events not received although a later one of the same user arrived (a lower bound). Finished: the report's exact loss.",
        s.lost);
    scalar(
        o,
        "loadtest_resyncs_total",
        "counter",
        "resync frames received (the server's word that messages may have been missed).",
        s.resyncs,
    );
    if let Some((recovered, lost_silent)) = s.churn {
        scalar(
            o,
            "loadtest_churn_recovered_total",
            "counter",
            "Churn: events a reconnected client got back by replay (finished runs only).",
            recovered,
        );
        scalar(
            o,
            "loadtest_churn_lost_silent",
            "gauge",
            "Churn: events lost with no resync to say so (finished runs only).",
            lost_silent,
        );
    }
    histogram(
        o,
        "loadtest_delivery_latency_seconds",
        "Delivery latency from each event's intended send time (healthy clients).",
        &s.latency_us,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::new_histogram;
    use crate::measure::server_metrics::parse;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let mut s = Snapshot::default();
        let mut h = new_histogram();
        // 3 at 200 µs, 2 at 3 ms, 1 at 20 s (beyond every finite bucket).
        h.record_n(200, 3).expect("in range");
        h.record_n(3_000, 2).expect("in range");
        h.record(20_000_000).expect("in range");
        s.latency_us = h;
        s.deliveries = 6;
        let page = parse(&render(&s));
        let bucket =
            |le: &str| page[&format!("loadtest_delivery_latency_seconds_bucket{{le=\"{le}\"}}")];
        assert_eq!(bucket("0.0001"), 0.0);
        assert_eq!(bucket("0.00025"), 3.0);
        assert_eq!(bucket("0.0025"), 3.0);
        assert_eq!(bucket("0.005"), 5.0);
        assert_eq!(bucket("10"), 5.0);
        assert_eq!(bucket("+Inf"), 6.0);
        assert_eq!(page["loadtest_delivery_latency_seconds_count"], 6.0);
        let sum = page["loadtest_delivery_latency_seconds_sum"];
        let exact = 3.0 * 0.0002 + 2.0 * 0.003 + 20.0;
        assert!((sum - exact).abs() / exact < 0.001, "sum {sum} vs {exact}");
        assert_eq!(page["loadtest_deliveries_total"], 6.0);
    }

    #[test]
    fn every_metric_has_help_and_type_and_churn_only_when_known() {
        let mut s = Snapshot::default();
        let text = render(&s);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
        assert!(!text.contains("loadtest_churn_recovered_total"));
        s.churn = Some((7, 1));
        let page = parse(&render(&s));
        assert_eq!(page["loadtest_churn_recovered_total"], 7.0);
        assert_eq!(page["loadtest_churn_lost_silent"], 1.0);
    }
}
