//! JUnit XML: one test case per threshold, for CI systems that read JUnit.

use super::escape;
use crate::schema::Report;

/// Renders the thresholds as a JUnit test suite.
pub fn render(r: &Report) -> String {
    let failures =
        r.thresholds.iter().filter(|t| !t.passed).count() + usize::from(r.partial.is_some());
    let tests = r.thresholds.len() + usize::from(r.partial.is_some());
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"loadtest.{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        escape(&r.scenario),
        r.duration_secs
    );
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
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}
