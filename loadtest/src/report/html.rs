//! A self-contained HTML page: summary table, the latency percentile curve and deliveries/s over
//! time as inline SVG (no scripts, no external assets).

use std::fmt::Write;

use super::Report;

const W: f64 = 640.0;
const H: f64 = 240.0;
const PAD: f64 = 48.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of `points` (x, y) with axis labels.
fn chart(title: &str, points: &[(f64, f64)], x_ticks: &[(f64, String)], y_label: &str) -> String {
    let mut s = format!("<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n", escape(title));
    if points.is_empty() {
        s.push_str("<text x=\"20\" y=\"40\">no data</text></svg>\n");
        return s;
    }
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0).max(1e-9) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - y / y1 * (H - 2.0 * PAD);
    let _ = writeln!(s, "<rect x=\"{PAD}\" y=\"{PAD}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#ccc\"/>", W - 2.0 * PAD, H - 2.0 * PAD);
    for i in 0..=4 {
        let y = y1 * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            PAD - 4.0,
            sy(y) + 3.0,
            fmt_num(y)
        );
    }
    for (x, label) in x_ticks {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            sx(*x),
            H - PAD + 14.0,
            escape(label)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{}\" font-size=\"10\">{}</text>",
        PAD - 10.0,
        escape(y_label)
    );
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    );
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

/// Renders the page.
pub fn render(r: &Report) -> String {
    // Latency curve on a "nines" axis: x = -log10(1 - p), so 90, 99, 99.9 … are evenly spaced.
    let nines = |p: f64| {
        if p >= 100.0 {
            5.2
        } else {
            -(1.0 - p / 100.0).log10()
        }
    };
    let lat: Vec<(f64, f64)> = r
        .latency_curve
        .iter()
        .map(|(p, us)| (nines(*p), *us as f64 / 1000.0))
        .collect();
    let lat_ticks: Vec<(f64, String)> = [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
        .iter()
        .map(|p| (nines(*p), format!("p{p}")))
        .collect();
    let step = r.timeline.interval_ms as f64 / 1000.0;
    let tl: Vec<(f64, f64)> = r
        .timeline
        .deliveries_per_sec
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 * step, *v))
        .collect();
    let end = tl.last().map_or(0.0, |p| p.0);
    let tl_ticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            (
                end * i as f64 / 4.0,
                format!("{:.1}s", end * i as f64 / 4.0),
            )
        })
        .collect();
    let rows = [
        ("target", r.target.clone()),
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
            "verdict",
            if r.passed {
                "PASS".into()
            } else {
                "FAIL".into()
            },
        ),
    ];
    let mut s = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>loadtest report</title>\n<style>body{font-family:sans-serif;max-width:720px;margin:2em auto}td{padding:2px 10px}.FAIL{color:#b00}.PASS{color:#070}</style></head><body>\n");
    let _ = writeln!(
        s,
        "<h1>loadtest: {}</h1>\n<p>{}</p>\n<table>",
        escape(&r.scenario),
        escape(&r.description)
    );
    for (k, v) in rows {
        let class = if k == "verdict" { v.as_str() } else { "" };
        let _ = writeln!(
            s,
            "<tr><td>{k}</td><td class=\"{class}\">{}</td></tr>",
            escape(&v)
        );
    }
    s.push_str("</table>\n");
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            s,
            "<h2>Against baseline {} (scenario {})</h2>\n<table><tr><th>metric</th><th>baseline</th><th>this run</th><th>change</th></tr>",
            escape(&b.source),
            escape(&b.scenario)
        );
        for f in &b.figures {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.metric,
                crate::baseline::num(f.baseline),
                crate::baseline::num(f.current),
                crate::baseline::change(f)
            );
        }
        s.push_str("</table>\n");
    }
    for t in &r.thresholds {
        let _ = writeln!(
            s,
            "<div class=\"{0}\">{0}: {1}</div>",
            if t.passed { "PASS" } else { "FAIL" },
            escape(&t.expr)
        );
    }
    s.push_str(&chart(
        "Latency by percentile (ms, from intended send time)",
        &lat,
        &lat_ticks,
        "ms",
    ));
    s.push_str(&chart(
        "Deliveries per second over time",
        &tl,
        &tl_ticks,
        "deliveries/s",
    ));
    s.push_str("</body></html>\n");
    s
}
