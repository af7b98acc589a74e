//! `--markdown FILE`: a short summary for a CI job page (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab
//! MR notes): verdict, key figures, thresholds, and the per-process (merge), baseline, repeat,
//! server-metrics and capacity-search tables when present.

use std::fmt::Write;

use super::table::Table;
use super::{insecure, lag, num, sections, tester_limited, tls_line, INSECURE};
use crate::schema::Report;

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A table under its heading.
fn section(s: &mut String, table: &Table) {
    let _ = write!(s, "\n### {}\n\n{}", table.title, table.markdown());
}

/// Renders the summary.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let sign = match (r.passed, r.held_back_by_tester()) {
        (true, false) => "✅",
        (true, true) => "⚠️",
        (false, _) => "❌",
    };
    let verdict = format!("{} {sign}", r.verdict());
    let _ = writeln!(s, "## loadtest: {} — {verdict}\n", cell(&r.scenario));
    if insecure(r) {
        let _ = writeln!(s, "**Insecure:** {}\n", cell(INSECURE));
    }
    if let Some(p) = &r.partial {
        let _ = writeln!(s, "**Partial run:** {}\n", cell(p));
    }
    for why in tester_limited(r) {
        let _ = writeln!(s, "**Tester limited:** {}\n", cell(&why));
    }
    let l = &r.latency_us;
    let ms = |us: u64| us as f64 / 1000.0;
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| target | {} ({} publisher, {}) |",
        cell(&r.target),
        r.publisher,
        cell(&r.model)
    );
    let _ = writeln!(
        s,
        "| connections | {} / {} established |",
        r.connections.established, r.connections.attempted
    );
    let d = &r.deliveries;
    let _ = writeln!(
        s,
        "| deliveries | {} expected, {} received, {} lost, {} duplicated, {} reordered |",
        d.expected, d.received, d.lost, d.duplicated, d.reordered
    );
    let _ = writeln!(
        s,
        "| throughput | {:.0} deliveries/s (peak {:.0}/s) |",
        r.throughput.deliveries_per_sec, r.throughput.peak_deliveries_per_sec
    );
    let _ = writeln!(
        s,
        "| latency | p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms |",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max)
    );
    if let Some(tls) = tls_line(r) {
        let _ = writeln!(s, "| TLS | {} |", cell(&tls));
    }
    if let Some(q) = &r.events.publish_lag_ms {
        let _ = writeln!(s, "| publish lag | {} |", lag(q));
    }
    if let Some(q) = &r.tester.receive_lag_ms {
        let _ = writeln!(s, "| receive lag | {} |", lag(q));
    }
    if let Some(ns) = r.metric("server_ns_per_delivery") {
        let _ = writeln!(s, "| server CPU per delivery | {ns:.0} ns |");
    }
    for table in r.churn.iter().flat_map(sections::churn) {
        section(&mut s, &table);
    }
    if !r.per_process.is_empty() {
        section(&mut s, &sections::per_process(&r.per_process));
    }
    if !r.thresholds.is_empty() {
        section(&mut s, &sections::thresholds(&r.thresholds));
    }
    if let Some(b) = &r.baseline {
        let table = sections::baseline(b, "this run");
        let _ = write!(
            s,
            "\n### {} `{}`\n\n{}",
            table.title,
            cell(&b.source),
            table.markdown()
        );
    }
    if let Some(rep) = &r.repeat {
        section(&mut s, &sections::repeat(rep));
    }
    if let Some(m) = &r.server_metrics {
        section(&mut s, &sections::server_metrics(m));
    }
    if let Some(fm) = &r.find_max {
        let _ = writeln!(
            s,
            "\n### Capacity search\n\nHighest passing: **{}** ({})\n",
            num(fm.highest_passing),
            cell(&fm.ended_by)
        );
    }
    s
}
