//! The text, Markdown, HTML and JUnit renderings of two fixed reports, held against stored
//! goldens, so moving the renderers cannot change a byte of what they print.
//! `UPDATE_GOLDEN=1 cargo test -p loadtest --test render_golden` rewrites the goldens.

use std::path::{Path, PathBuf};

use loadtest::report::render::{html, junit, markdown, text};
use loadtest::Report;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Report {
    let text = std::fs::read_to_string(fixture(name)).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is a report")
}

/// Compares `actual` with the golden `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn check(name: &str, actual: &str) {
    let path = fixture("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("read golden");
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .map_or(expected.lines().count().min(actual.lines().count()), |i| i);
        panic!(
            "{name} differs from its golden at line {}:\n  golden: {:?}\n  now:    {:?}",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

/// Every section present: partial, slow readers, per-process, server metrics, repeat, baseline,
/// thresholds (passed, failed, not measured), capacity search, bursts, samples.
#[test]
fn every_section_renders_as_before() {
    let r = load("report-golden.json");
    let base = load("report-golden-baseline.json");
    check("full.txt", &text::render(&r));
    check("full.md", &markdown::render(&r));
    check("full.html", &html::render(&r, Some(&base)));
    check("full.junit.xml", &junit::render(&r));
}

/// A plain run's report, as an older build wrote it (schema 1, fields missing).
#[test]
fn a_plain_report_renders_as_before() {
    let r = load("report-default.json");
    check("default.txt", &text::render(&r));
    check("default.md", &markdown::render(&r));
    check("default.html", &html::render(&r, None));
    check("default.junit.xml", &junit::render(&r));
}

/// The JSON written back is the same document (field names, order and values).
#[test]
fn the_json_round_trips() {
    let text = std::fs::read_to_string(fixture("report-golden.json")).expect("read fixture");
    let r: Report = serde_json::from_str(&text).expect("report");
    check(
        "full.json",
        &serde_json::to_string_pretty(&r).expect("serialize"),
    );
}
