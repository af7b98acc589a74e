//! `--markdown FILE`: a short summary for a CI job page (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab
//! MR notes): verdict, key figures, thresholds, and the per-process (merge), baseline, repeat,
//! server-metrics and capacity-search tables when present.

use std::fmt::Write;

use super::{change, num, process_cells, PROCESS_COLUMNS};
use crate::schema::Report;

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders the summary.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let verdict = if r.passed { "PASS ✅" } else { "FAIL ❌" };
    let _ = writeln!(s, "## loadtest: {} — {verdict}\n", cell(&r.scenario));
    if let Some(p) = &r.partial {
        let _ = writeln!(s, "**Partial run:** {}\n", cell(p));
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
    if let Some(ns) = r.metric("server_ns_per_delivery") {
        let _ = writeln!(s, "| server CPU per delivery | {ns:.0} ns |");
    }
    if !r.per_process.is_empty() {
        let columns = PROCESS_COLUMNS;
        let _ = writeln!(
            s,
            "\n### Per process\n\n| {} |\n|{}",
            columns.join(" | "),
            "---|".repeat(columns.len())
        );
        for p in &r.per_process {
            let cells: Vec<String> = process_cells(p).iter().map(|c| cell(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(
            s,
            "\n### Thresholds\n\n| | threshold | actual | bound |\n|---|---|---|---|"
        );
        for t in &r.thresholds {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} |",
                if t.passed { "✅" } else { "❌" },
                cell(&t.expr),
                num(t.actual),
                num(t.bound)
            );
        }
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            s,
            "\n### Against baseline `{}`\n\n| metric | baseline | this run | change |\n|---|---|---|---|",
            cell(&b.source)
        );
        for f in &b.figures {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                f.metric,
                num(f.baseline),
                num(f.current),
                change(f)
            );
        }
    }
    if let Some(rep) = &r.repeat {
        let _ = writeln!(
            s,
            "\n### Over {} runs\n\n| metric | median | min..max |\n|---|---|---|",
            rep.runs
        );
        for f in &rep.figures {
            let n = |v| num(Some(v));
            let _ = writeln!(
                s,
                "| {} | {} | {}..{} |",
                f.metric,
                n(f.spread.median),
                n(f.spread.min),
                n(f.spread.max)
            );
        }
    }
    if let Some(m) = &r.server_metrics {
        let _ = writeln!(
            s,
            "\n### Server metrics\n\n| | figure | tester | server |\n|---|---|---|---|"
        );
        for c in &m.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                if c.agrees { "✅" } else { "❌" },
                cell(&c.what),
                num(Some(c.tester)),
                num(Some(c.server))
            );
        }
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
