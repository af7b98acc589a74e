//! The report schema's policy, held: `compare`, `merge` and `capacity` read a stored report of
//! today's version (two segments of a small embedded run with churn), and older reports (schema
//! 1, 2 and 3) still read, their missing figures "not measured" rather than zero.

mod common;

use std::path::PathBuf;

use common::loadtest;
use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

const TODAY_1: &str = "report-v4-segment-1of2.json";
const TODAY_2: &str = "report-v4-segment-2of2.json";
const SCHEMA_3_1: &str = "report-v3-segment-1of2.json";
const SCHEMA_3_2: &str = "report-v3-segment-2of2.json";
const SCHEMA_2_1: &str = "report-v2-segment-1of2.json";
const SCHEMA_2_2: &str = "report-v2-segment-2of2.json";
const SCHEMA_1: &str = "report-default.json";

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON output")
}

#[test]
fn the_stored_reports_are_of_today_s_version() {
    for name in [TODAY_1, TODAY_2] {
        let text = std::fs::read_to_string(fixture(name)).expect("read");
        let r: loadtest::Report = serde_json::from_str(&text).expect("a report");
        assert_eq!(
            r.schema_version,
            loadtest::schema::SCHEMA_VERSION,
            "{name}: a version bump stores a report of the new version beside the old"
        );
    }
}

#[test]
fn compare_merge_and_capacity_read_today_s_report() {
    let (a, b) = (fixture(TODAY_1), fixture(TODAY_2));
    let (code, out, err) = loadtest(&["compare", &a, &b, "--json"]);
    assert_eq!(code, 0, "{err}");
    let c = json(&out);
    let p99 = c["comparison"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["metric"] == "p99_ms")
        .expect("p99_ms row");
    assert!(
        p99["baseline"].is_number() && p99["current"].is_number(),
        "{p99}"
    );

    let (code, out, err) = loadtest(&["merge", &a, &b, "--print-json"]);
    assert_eq!(code, 0, "{err}");
    let m = json(&out);
    let received = |path: &str| {
        let r = json(&std::fs::read_to_string(path).expect("read"));
        r["deliveries"]["received"].as_u64().expect("received")
    };
    assert_eq!(
        m["deliveries"]["received"].as_u64(),
        Some(received(&a) + received(&b))
    );
    assert_eq!(m["per_process"].as_array().map(Vec::len), Some(2));
    let churn = |path: &str, key: &str| {
        let r = json(&std::fs::read_to_string(path).expect("read"));
        r["churn"][key].as_u64().expect("a churn figure")
    };
    for key in [
        "drops",
        "reconnects",
        "recovered",
        "recoveries",
        "replay_bytes",
    ] {
        assert_eq!(
            m["churn"][key].as_u64(),
            Some(churn(&a, key) + churn(&b, key)),
            "merged churn.{key}"
        );
    }

    let (code, out, err) = loadtest(&[
        "capacity",
        "--from",
        &a,
        "--connections",
        "1000",
        "--events-per-sec",
        "100",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["sizing"].is_object(), "{out}");
}

#[test]
fn an_older_report_reads_with_its_missing_figures_not_measured() {
    let (old, today) = (fixture(SCHEMA_1), fixture(TODAY_1));
    let (code, out, err) = loadtest(&["compare", &old, &today, "--json"]);
    assert_eq!(code, 0, "{err}");
    let c = json(&out);
    let resyncs = c["comparison"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["metric"] == "resyncs")
        .expect("resyncs row");
    assert!(
        resyncs["baseline"].is_null(),
        "not measured, not 0: {resyncs}"
    );
    assert_eq!(resyncs["movement"], "missing");

    // A schema-2 report measured no churn: its churn figures are missing, and two of them merge
    // without a churn section.
    let (code, out, err) = loadtest(&["compare", &fixture(SCHEMA_2_1), &today, "--json"]);
    assert_eq!(code, 0, "{err}");
    let c = json(&out);
    let lost_silent = c["comparison"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["metric"] == "lost_silent")
        .expect("lost_silent row");
    assert!(lost_silent["baseline"].is_null(), "{lost_silent}");
    assert_eq!(lost_silent["movement"], "missing");
    let (code, out, err) = loadtest(&[
        "merge",
        &fixture(SCHEMA_2_1),
        &fixture(SCHEMA_2_2),
        "--print-json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out).get("churn").is_none(), "not measured: absent");

    // Schema 3 had no TLS section: two of them merge into a report with none (a plain target),
    // and one still compares with today's.
    let (code, out, err) = loadtest(&[
        "merge",
        &fixture(SCHEMA_3_1),
        &fixture(SCHEMA_3_2),
        "--print-json",
    ]);
    assert_eq!(code, 0, "{err}");
    let merged = json(&out);
    assert!(merged.get("tls").is_none(), "{}", merged["tls"]);
    assert!(merged["churn"].is_object(), "schema 3's churn still merges");
    let (code, _, err) = loadtest(&["compare", &fixture(SCHEMA_3_1), &today, "--json"]);
    assert_eq!(code, 0, "{err}");

    // Merging needs the raw histograms a schema-1 report never had: said, not guessed.
    let (code, _, err) = loadtest(&["merge", &old, &today]);
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(err.contains("no raw histograms"), "{err}");
}
