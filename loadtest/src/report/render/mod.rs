//! Laying a report out: text, Markdown, HTML (with its SVG charts) and JUnit. Each table is
//! built once (`sections.rs`, in the model of `table.rs`); the layouts add headings and figures
//! around them, and share the number, change and escape helpers below.

pub(crate) mod chart;
pub mod html;
pub mod junit;
pub mod markdown;
mod sections;
mod table;
pub mod text;

use crate::schema::{Figure, Movement, Quantiles, Report};

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

/// A lag (publish or receive) for a summary: `p99 1.20 ms, max 3.40 ms`.
pub(crate) fn lag(q: &Quantiles) -> String {
    format!("p99 {:.2} ms, max {:.2} ms", q.p99, q.max)
}

/// The lines that say the tester set the pace (empty when it did not, or was not measured).
pub(crate) fn tester_limited(r: &Report) -> Vec<String> {
    let mut lines: Vec<String> = r
        .tester_limit
        .iter()
        .flat_map(|t| t.reasons.iter().cloned())
        .collect();
    if let Some(at) = r.find_max.as_ref().and_then(|f| f.tester_limited_at) {
        lines.push(format!(
            "capacity search: the tester set the pace at {}; the highest passing step is a lower bound of the server's limit",
            num(Some(at))
        ));
    }
    lines
}

/// The mark of an `--insecure` run, the same words in every layout.
pub(crate) const INSECURE: &str =
    "--insecure: the server's certificate was not verified; these figures prove nothing about a verified deployment";

/// The TLS line of a summary: `handshake p50 … ms, p99 … ms, max … ms (trust: …)`.
pub(crate) fn tls_line(r: &Report) -> Option<String> {
    r.tls.as_ref().map(|t| {
        let q = &t.handshake_ms;
        format!(
            "handshake p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (trust: {})",
            q.p50, q.p99, q.max, t.trust
        )
    })
}

/// Whether the run skipped certificate checks.
pub(crate) fn insecure(r: &Report) -> bool {
    r.tls.as_ref().is_some_and(|t| t.insecure)
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
