//! The text summary printed at the end of a run.

use std::fmt::Write;

use super::sections;
use super::{insecure, lag, tester_limited, tls_line, INSECURE};
use crate::schema::{Comparison, Outcome, Report};

fn count_map(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Renders the report as an aligned text table.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let c = &r.connections;
    let d = &r.deliveries;
    let l = &r.latency_us;
    let ms = |us: u64| us as f64 / 1000.0;
    let _ = writeln!(s, "loadtest: {} — {}", r.scenario, r.description);
    let _ = writeln!(
        s,
        "  target        {}   publisher {}   {}   {} users",
        r.target, r.publisher, r.model, r.users
    );
    if insecure(r) {
        let _ = writeln!(s, "  INSECURE      {INSECURE}");
    }
    if let Some(why) = &r.partial {
        let _ = writeln!(s, "  PARTIAL       stopped early: {why}");
    }
    for why in tester_limited(r) {
        let _ = writeln!(s, "  TESTER LIMITED {why}");
    }
    let _ = writeln!(s, "  duration      {:.2} s", r.duration_secs);
    let _ = writeln!(s, "Connections");
    let _ = writeln!(
        s,
        "  established   {} / {} attempted, {} failed  ({:.2} s, {:.0} handshakes/s)",
        c.established, c.attempted, c.failed, c.connect_secs, r.handshakes_per_sec
    );
    let _ = writeln!(
        s,
        "  handshake     p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        c.handshake_ms.p50, c.handshake_ms.p99, c.handshake_ms.max
    );
    if let Some(tls) = tls_line(r) {
        let _ = writeln!(s, "  TLS           {tls}");
    }
    let _ = writeln!(s, "  errors        {}", count_map(&c.errors));
    let _ = writeln!(s, "  close codes   {}", count_map(&c.closed_by_code));
    let _ = writeln!(s, "Deliveries (healthy clients)");
    let _ = writeln!(s, "  expected      {}", d.expected);
    let _ = writeln!(s, "  received      {}", d.received);
    let _ = writeln!(
        s,
        "  lost          {}   duplicated {}   reordered {}   foreign {}   resyncs {}",
        d.lost,
        d.duplicated,
        d.reordered,
        d.foreign,
        d.resyncs.map_or("n/a".into(), |n| n.to_string())
    );
    if let Some(sl) = &r.slow_clients {
        let _ = writeln!(s, "Slow readers (reported apart)");
        let _ = writeln!(
            s,
            "  connections   {}   expected {}   received {}   lost {}",
            sl.connections, sl.expected, sl.received, sl.lost
        );
        let _ = writeln!(s, "  close codes   {}", count_map(&sl.closed_by_code));
    }
    let _ = writeln!(s, "Publishing");
    let _ = writeln!(
        s,
        "  events        {} in {:.2} s ({:.0} events/s)   errors: {}",
        r.events.published,
        r.events.publish_secs,
        r.throughput.events_per_sec,
        count_map(&r.events.errors)
    );
    if let Some(q) = &r.events.publish_lag_ms {
        let lanes = r
            .events
            .lanes
            .map_or(String::new(), |n| format!("   ({n} lanes)"));
        let _ = writeln!(s, "  lag           {} behind schedule{lanes}", lag(q));
    }
    let _ = writeln!(
        s,
        "Throughput      {:.0} deliveries/s (first send → last receive), peak {:.0}/s over 100 ms",
        r.throughput.deliveries_per_sec, r.throughput.peak_deliveries_per_sec
    );
    let _ = writeln!(s, "Latency (from intended send time)");
    let _ = writeln!(
        s,
        "  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   max {:.2} ms",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max)
    );
    let _ = writeln!(s, "Cost");
    let delivering = |cpu: f64| match r.cpu_per_delivery_ns(cpu) {
        Some(ns) => format!("   {cpu:.3} s delivering ({ns:.0} ns / delivery)"),
        None => format!("   {cpu:.3} s delivering"),
    };
    let _ = writeln!(
        s,
        "  tester CPU    {:.0}% of one core{}",
        r.tester.cpu_percent,
        r.tester
            .delivery_cpu_seconds
            .map(delivering)
            .unwrap_or_default()
    );
    let server_cpu = r.server.cpu_percent.map_or("n/a".into(), |p| {
        let window = r.server.delivery_cpu_seconds.map(delivering);
        format!("{p:.0}% of one core{}", window.unwrap_or_default())
    });
    let rss = r
        .server
        .rss_bytes
        .map_or("n/a (give --server-pid)".into(), |b| {
            if r.target == "embedded" {
                format!("+{} (process growth: server and clients)", mib(b))
            } else {
                mib(b)
            }
        });
    if let Some(q) = &r.tester.receive_lag_ms {
        let _ = writeln!(
            s,
            "  receive lag   {} (how late the receivers' runtime ran)",
            lag(q)
        );
    }
    let _ = writeln!(s, "  server CPU    {server_cpu}");
    let _ = writeln!(s, "  server RSS    {rss}");
    if let Some(b) = r.server.rss_per_connection_bytes {
        let _ = writeln!(
            s,
            "  RSS / conn    {b:.0} bytes (server growth over the connect phase)"
        );
    }
    // The figures read as lines; the connections' table needs its header.
    for (i, table) in r.churn.iter().flat_map(sections::churn).enumerate() {
        let _ = writeln!(s, "{}", table.title);
        s.push_str(&table.text(i > 0));
    }
    if !r.per_process.is_empty() {
        let table = sections::per_process(&r.per_process);
        let _ = writeln!(s, "{}", table.title);
        s.push_str(&table.text(true));
    }
    if let Some(m) = &r.server_metrics {
        let _ = writeln!(s, "Server metrics ({}, change over the run)", m.source);
        s.push_str(&sections::server_metrics(m).text(false));
        let counters: Vec<String> = m
            .delta
            .iter()
            .filter(|(k, v)| {
                **v != 0.0
                    && (k.contains("drops") || k.contains("queue_full") || k.contains("closes"))
            })
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !counters.is_empty() {
            let _ = writeln!(s, "  counters      {}", counters.join(", "));
        }
    }
    if let Some(rep) = &r.repeat {
        let _ = writeln!(
            s,
            "Over {} runs (median, min..max; thresholds judge the median; the sections above are the last run's)",
            rep.runs
        );
        s.push_str(&sections::repeat(rep).text(false));
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(s, "Against baseline {} (scenario {})", b.source, b.scenario);
        s.push_str(&render_table(b, "this run"));
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(s, "Thresholds");
        s.push_str(&render_outcomes(&r.thresholds));
    }
    let _ = writeln!(s, "Verdict         {}", r.verdict());
    s
}

/// The side-by-side table, as in the text report and `loadtest compare`; `current_label` heads
/// this side's column.
pub(crate) fn render_table(c: &Comparison, current_label: &'static str) -> String {
    sections::baseline(c, current_label).text(true)
}

/// Renders threshold outcomes, one line each (shared with `loadtest compare`): the thresholds
/// table ([`sections::thresholds`]) in the text layout.
pub(crate) fn render_outcomes(outcomes: &[Outcome]) -> String {
    sections::thresholds(outcomes).text(false)
}
