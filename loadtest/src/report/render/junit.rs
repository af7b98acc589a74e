//! JUnit XML: one test case per threshold, for CI systems that read JUnit.

use super::{escape, insecure, tester_limited, INSECURE};
use crate::schema::Report;

/// Renders the thresholds as a JUnit test suite.
pub fn render(r: &Report) -> String {
    // A report that measured the tester's pace has one more case: "tester kept pace".
    let limited = tester_limited(r);
    let pace = r.tester_limit.is_some() || !limited.is_empty();
    let failures = r.thresholds.iter().filter(|t| !t.passed).count()
        + usize::from(r.partial.is_some())
        + usize::from(!limited.is_empty());
    // An `--insecure` run has a "certificate verified" case, skipped: marked, not failed.
    let unverified = insecure(r);
    let tests = r.thresholds.len()
        + usize::from(r.partial.is_some())
        + usize::from(pace)
        + usize::from(unverified);
    // Only then a `skipped` count, so the XML of every other run stays as it was.
    let skipped = if unverified { " skipped=\"1\"" } else { "" };
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"loadtest.{}\" tests=\"{tests}\" failures=\"{failures}\"{skipped} time=\"{:.3}\">\n",
        escape(&r.scenario),
        r.duration_secs
    );
    if unverified {
        s.push_str(&format!(
            "  <testcase classname=\"loadtest.{}\" name=\"TLS certificate verified\"><skipped message=\"{}\"/></testcase>\n",
            escape(&r.scenario),
            escape(INSECURE)
        ));
    }
    for t in &r.thresholds {
        let actual = t.actual.map_or("not measured".into(), |a| a.to_string());
        s.push_str(&format!(
            "  <testcase classname=\"loadtest.{}\" name=\"{}\">",
            escape(&r.scenario),
            escape(&t.expr)
        ));
        if !t.passed {
            s.push_str(&format!(
                "<failure message=\"{} (actual {})\"/>",
                escape(&t.expr),
                escape(&actual)
            ));
        }
        s.push_str("</testcase>\n");
    }
    if let Some(why) = &r.partial {
        s.push_str(&format!("  <testcase classname=\"loadtest.{}\" name=\"complete run\"><failure message=\"{}\"/></testcase>\n", escape(&r.scenario), escape(why)));
    }
    if pace {
        s.push_str(&format!(
            "  <testcase classname=\"loadtest.{}\" name=\"tester kept pace\">",
            escape(&r.scenario)
        ));
        if !limited.is_empty() {
            s.push_str(&format!(
                "<failure message=\"tester limited: {}\"/>",
                escape(&limited.join("; "))
            ));
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}
