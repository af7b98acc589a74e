//! A self-contained HTML page (inline SVG, no scripts, no external assets): summary, thresholds,
//! the baseline beside every figure, and charts over time — latency p50/p90/p99, deliveries/s,
//! connections, server CPU and RSS — plus the handshake distribution, the latency percentile
//! curve and the per-burst table, with the baseline's curves dashed when one is given.

use std::fmt::Write;

use super::chart::{bar_chart, line_chart, Series, XAxis, COLORS};
use super::table::Table;
use super::{escape, insecure, lag, sections, tester_limited, tls_line, INSECURE};
use crate::schema::{LatencyOverTime, Report, Sample};

/// Position on a "nines" axis: 90, 99, 99.9 … evenly spaced.
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        5.2
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

fn summary_rows(r: &Report) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("target", r.target.clone()),
        ("publisher", r.publisher.clone()),
        ("model", r.model.clone()),
        (
            "connections",
            format!(
                "{} established / {} attempted",
                r.connections.established, r.connections.attempted
            ),
        ),
        (
            "deliveries",
            format!(
                "{} expected, {} received, {} lost, {} duplicated, {} reordered",
                r.deliveries.expected,
                r.deliveries.received,
                r.deliveries.lost,
                r.deliveries.duplicated,
                r.deliveries.reordered
            ),
        ),
        (
            "throughput",
            format!("{:.0} deliveries/s", r.throughput.deliveries_per_sec),
        ),
        (
            "latency",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.latency_us.p50 as f64 / 1e3,
                r.latency_us.p99 as f64 / 1e3,
                r.latency_us.max as f64 / 1e3
            ),
        ),
        (
            "tester CPU",
            format!("{:.0}% of one core", r.tester.cpu_percent),
        ),
        (
            "server CPU",
            r.server
                .cpu_percent
                .map_or("n/a".into(), |p| format!("{p:.0}% of one core")),
        ),
    ];
    if let Some(tls) = tls_line(r) {
        rows.push(("TLS", tls));
    }
    if insecure(r) {
        rows.push(("insecure", INSECURE.into()));
    }
    if let Some(q) = &r.events.publish_lag_ms {
        rows.push(("publish lag", lag(q)));
    }
    if let Some(q) = &r.tester.receive_lag_ms {
        rows.push(("receive lag", lag(q)));
    }
    rows.extend(
        tester_limited(r)
            .into_iter()
            .map(|why| ("tester limited", why)),
    );
    rows.push(("verdict", r.verdict().into()));
    rows
}

/// A table under its heading.
fn section(s: &mut String, table: &Table) {
    let _ = writeln!(s, "<h2>{}</h2>", escape(&table.title));
    s.push_str(&table.html());
}

fn latency_over_time<'a>(r: &'a Report, base: Option<&'a Report>) -> Vec<Series<'a>> {
    let l = &r.latency_over_time;
    let at = |l: &LatencyOverTime, i: usize, shift: f64| {
        l.start_secs + shift + i as f64 * l.interval_ms as f64 / 1000.0
    };
    let line = |name, color, v: &[Option<f64>]| Series {
        name,
        points: v
            .iter()
            .enumerate()
            .map(|(i, y)| (at(l, i, 0.0), *y))
            .collect(),
        color,
        dashed: false,
    };
    let mut out = vec![
        line("p50", COLORS[0], &l.p50_ms),
        line("p90", COLORS[1], &l.p90_ms),
        line("p99", COLORS[2], &l.p99_ms),
    ];
    if let Some(b) = base.filter(|b| !b.latency_over_time.p99_ms.is_empty()) {
        let bl = &b.latency_over_time;
        // Aligned on the first intended send.
        let shift = l.start_secs - bl.start_secs;
        out.push(Series {
            name: "baseline p99",
            points: bl
                .p99_ms
                .iter()
                .enumerate()
                .map(|(i, y)| (at(bl, i, shift), *y))
                .collect(),
            color: COLORS[2],
            dashed: true,
        });
    }
    out
}

fn deliveries_over_time<'a>(r: &'a Report, base: Option<&'a Report>) -> Vec<Series<'a>> {
    let line = |rep: &Report, shift: f64, name, color, dashed| Series {
        name,
        points: rep
            .timeline
            .deliveries_per_sec
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = rep.timeline.start_secs
                    + shift
                    + i as f64 * rep.timeline.interval_ms as f64 / 1000.0;
                (t, Some(*v))
            })
            .collect(),
        color,
        dashed,
    };
    let mut out = vec![line(r, 0.0, "this run", COLORS[0], false)];
    if let Some(b) = base {
        let shift = r.timeline.start_secs - b.timeline.start_secs;
        out.push(line(b, shift, "baseline", COLORS[0], true));
    }
    out
}

fn samples_series<'a>(
    r: &'a Report,
    name: &'a str,
    color: &'a str,
    f: impl Fn(&Sample) -> Option<f64>,
) -> Option<Series<'a>> {
    let points: Vec<(f64, Option<f64>)> = r.samples.iter().map(|s| (s.t_secs, f(s))).collect();
    points.iter().any(|p| p.1.is_some()).then_some(Series {
        name,
        points,
        color,
        dashed: false,
    })
}

/// Renders the page; `base` is the `--baseline` report, whose curves are overlaid.
pub fn render(r: &Report, base: Option<&Report>) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>loadtest report</title>\n<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}td,th{padding:2px 10px;text-align:left}.FAIL{color:#b00}.PASS{color:#070}svg{display:block;margin-bottom:1em}</style></head><body>\n");
    let _ = writeln!(
        s,
        "<h1>loadtest: {}</h1>\n<p>{}</p>",
        escape(&r.scenario),
        escape(&r.description)
    );
    s.push_str("<table>\n");
    for (k, v) in summary_rows(r) {
        // `PASS (tester limited)` is styled as its first word.
        let class = match k {
            "verdict" => v.split(' ').next().unwrap_or_default(),
            "tester limited" | "insecure" => "FAIL",
            _ => "",
        };
        let _ = writeln!(
            s,
            "<tr><td>{k}</td><td class=\"{class}\">{}</td></tr>",
            escape(&v)
        );
    }
    s.push_str("</table>\n");
    if let Some(p) = &r.partial {
        let _ = writeln!(s, "<p class=\"FAIL\">PARTIAL: {}</p>", escape(p));
    }
    if !r.thresholds.is_empty() {
        section(&mut s, &sections::thresholds(&r.thresholds));
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            s,
            "<h2>Against baseline {} (scenario {})</h2>",
            escape(&b.source),
            escape(&b.scenario)
        );
        s.push_str(&sections::baseline(b, "this run").html());
    }
    if let Some(rep) = &r.repeat {
        section(&mut s, &sections::repeat(rep));
    }
    for table in r.churn.iter().flat_map(sections::churn) {
        section(&mut s, &table);
    }
    if !r.per_process.is_empty() {
        section(&mut s, &sections::per_process(&r.per_process));
    }
    if let Some(m) = &r.server_metrics {
        let _ = writeln!(s, "<h2>Server metrics ({})</h2>", escape(&m.source));
        s.push_str(&sections::server_metrics(m).html());
    }
    if let Some(fm) = &r.find_max {
        section(&mut s, &sections::capacity_search(fm));
    }
    let lot = latency_over_time(r, base);
    s.push_str(&line_chart(
        "Latency percentiles over time (from intended send time)",
        "ms",
        XAxis::Time,
        &lot,
    ));
    s.push_str(&line_chart(
        "Deliveries per second over time",
        "deliveries/s",
        XAxis::Time,
        &deliveries_over_time(r, base),
    ));
    let conns: Vec<Series> = [
        samples_series(r, "established (tester)", COLORS[0], |x| {
            Some(x.established as f64)
        }),
        samples_series(r, "open (server)", COLORS[1], |x| x.server_open),
    ]
    .into_iter()
    .flatten()
    .collect();
    s.push_str(&line_chart(
        "Connections over time",
        "connections",
        XAxis::Time,
        &conns,
    ));
    if let Some(cpu) = samples_series(r, "server CPU", COLORS[3], |x| x.server_cpu_percent) {
        s.push_str(&line_chart(
            "Server CPU over time",
            "% of one core",
            XAxis::Time,
            &[cpu],
        ));
    }
    let rss_label = if r.target == "embedded" {
        "process RSS (server and clients)"
    } else {
        "server RSS"
    };
    if let Some(rss) = samples_series(r, rss_label, COLORS[3], |x| {
        x.server_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
    }) {
        s.push_str(&line_chart("Memory over time", "MiB", XAxis::Time, &[rss]));
    }
    let bins: Vec<(String, u64)> = r
        .handshake_distribution
        .iter()
        .map(|b| (format!("{:.1} ms", b.le_ms), b.count))
        .collect();
    s.push_str(&bar_chart(
        "Handshake latency distribution (upper edge of each bin)",
        "handshakes",
        &bins,
    ));
    let curve = |rep: &Report| -> Vec<(f64, Option<f64>)> {
        rep.latency_curve
            .iter()
            .map(|(p, us)| (nines(*p), Some(*us as f64 / 1000.0)))
            .collect()
    };
    let mut curves = vec![Series {
        name: "this run",
        points: curve(r),
        color: COLORS[0],
        dashed: false,
    }];
    if let Some(b) = base {
        curves.push(Series {
            name: "baseline",
            points: curve(b),
            color: COLORS[0],
            dashed: true,
        });
    }
    let nine_ticks = [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
        .iter()
        .map(|p| (nines(*p), format!("p{p}")))
        .collect();
    s.push_str(&line_chart(
        "Latency by percentile (ms, from intended send time)",
        "ms",
        XAxis::Fixed(nine_ticks),
        &curves,
    ));
    if !r.bursts.is_empty() {
        section(&mut s, &sections::bursts(r));
    }
    s.push_str("</body></html>\n");
    s
}
