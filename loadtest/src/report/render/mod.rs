//! Laying a report out: text, Markdown, HTML (with its SVG charts) and JUnit, plus the number,
//! change and escape helpers they share.

pub(crate) mod chart;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod text;

use crate::schema::{Figure, Movement, ProcessFigures};

/// Escapes text for HTML and XML (element content and double-quoted attributes).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number for a table: integers stay integers, fractions get three decimals.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        // -0.0 (a counter difference) reads as 0.
        Some(0.0) => "0".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// A change for a table: `+6.2% worse`.
pub fn change(f: &Figure) -> String {
    let word = match f.movement {
        Movement::Same => "same",
        Movement::Better => "better",
        Movement::Worse => "worse",
        Movement::Changed => "changed",
        Movement::Missing => "missing",
    };
    match f.change_pct {
        Some(p) if f.movement != Movement::Same => format!("{p:+.1}% {word}"),
        _ => word.into(),
    }
}

/// The per-process table's columns, one copy for the text, Markdown and HTML reports.
pub const PROCESS_COLUMNS: [&str; 10] = [
    "segment",
    "deliveries",
    "lost",
    "deliveries/s",
    "p99 ms",
    "tester ns/dlv",
    "server ns/dlv",
    "server RSS",
    "metrics",
    "target",
];

/// The row of `p` under [`PROCESS_COLUMNS`], `-` where its report did not measure the figure.
pub fn process_cells(p: &ProcessFigures) -> [String; 10] {
    let ns = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    [
        p.segment.clone(),
        p.deliveries.to_string(),
        p.lost.to_string(),
        format!("{:.0}", p.deliveries_per_sec),
        format!("{:.2}", p.p99_ms),
        ns(p.tester_ns_per_delivery),
        ns(p.server_ns_per_delivery),
        p.server_rss_bytes.map_or("-".into(), |b| {
            format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
        }),
        match p.server_metrics_agree {
            Some(true) => "agree",
            Some(false) => "DIFF",
            None => "-",
        }
        .into(),
        p.target.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(Some(200.0)), "200");
        assert_eq!(num(Some(12.3456)), "12.346");
        assert_eq!(num(Some(123456.789)), "123456.8");
        assert_eq!(num(None), "n/a");
    }
}
