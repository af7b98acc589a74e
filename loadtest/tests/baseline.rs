//! `--baseline` and `loadtest compare`: the baseline beside every figure, relative thresholds, and
//! usage errors (exit 2) for an unknown metric or a baseline that lacks the metric.

mod common;
use common::{loadtest, read_json as read, small_run};

use serde_json::Value;

#[test]
fn baseline_figures_and_relative_thresholds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base.json");
    let new = dir.path().join("new.json");
    let html = dir.path().join("new.html");
    assert_eq!(small_run(&base, &[]).0, 0);
    let (code, out, err) = small_run(
        &new,
        &[
            "--baseline",
            base.to_str().expect("utf-8"),
            "-t",
            "received>=1*baseline",
            "-t",
            "deliveries_per_sec>=0.000001*baseline",
            "--html",
            html.to_str().expect("utf-8"),
            "--markdown",
            dir.path().join("new.md").to_str().expect("utf-8"),
            // Bursts at least one 100 ms interval apart get a per-burst table.
            "--burst-interval",
            "100ms",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Against baseline") && out.contains("this run"),
        "{out}"
    );
    let r = read(&new);
    let b = read(&base);
    // Per-burst rows and latency over time account for every delivery.
    let bursts = r["bursts"].as_array().expect("bursts");
    assert_eq!(bursts.len(), 3, "smoke has 3 bursts");
    let per_burst: u64 = bursts
        .iter()
        .map(|b| b["deliveries"].as_u64().expect("n"))
        .sum();
    assert_eq!(
        per_burst,
        r["deliveries"]["received"].as_u64().expect("received")
    );
    let lot = &r["latency_over_time"];
    let over_time: u64 = lot["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|n| n.as_u64().expect("n"))
        .sum();
    assert_eq!(over_time, per_burst);
    assert!(lot["p99_ms"]
        .as_array()
        .is_some_and(|v| v.iter().any(|x| x.as_f64().is_some())));
    assert!(r["samples"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(!r["handshake_distribution"]
        .as_array()
        .expect("bins")
        .is_empty());
    let figures = r["baseline"]["figures"].as_array().expect("figures");
    let received = figures
        .iter()
        .find(|f| f["metric"] == "received")
        .expect("received row");
    let f = |v: &Value| v.as_f64().expect("number");
    assert_eq!(f(&received["baseline"]), f(&b["deliveries"]["received"]));
    assert_eq!(f(&received["current"]), f(&r["deliveries"]["received"]));
    assert_eq!(received["movement"], "same");
    let t = r["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .find(|t| t["expr"] == "received>=1*baseline")
        .expect("relative threshold");
    assert_eq!(f(&t["baseline"]), f(&b["deliveries"]["received"]));
    assert_eq!(t["passed"], true);
    let page = std::fs::read_to_string(html).expect("html");
    for needle in [
        "Against baseline",
        "Latency percentiles over time",
        "Deliveries per second over time",
        "Connections over time",
        "Handshake latency distribution",
        "Per burst",
        "stroke-dasharray",
    ] {
        assert!(page.contains(needle), "the HTML has {needle}");
    }
    let md = std::fs::read_to_string(dir.path().join("new.md")).expect("markdown");
    assert!(md.starts_with("## loadtest: smoke — PASS"), "{md}");
    assert!(
        md.contains("| `received>=1*baseline` |") && md.contains("### Against baseline"),
        "{md}"
    );

    // compare: a passing and a failing relative threshold.
    let (base_s, new_s) = (base.to_str().expect("utf-8"), new.to_str().expect("utf-8"));
    let (code, out, _) = loadtest(&["compare", base_s, new_s, "-t", "lost<=baseline"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deliveries_per_sec") && out.contains("PASS"),
        "{out}"
    );
    let (code, out, _) = loadtest(&["compare", base_s, new_s, "-t", "received>1.5*baseline"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  received>1.5*baseline"), "{out}");
    let (code, out, _) = loadtest(&["compare", base_s, new_s, "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert!(v["comparison"]["figures"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
}

#[test]
fn unknown_or_missing_metrics_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base.json");
    assert_eq!(small_run(&base, &[]).0, 0);
    // The same report with its RSS removed: a baseline that lacks server_rss_mb.
    let mut v = read(&base);
    v["server"]["rss_bytes"] = Value::Null;
    let no_rss = dir.path().join("no-rss.json");
    std::fs::write(&no_rss, v.to_string()).expect("write");
    let (base_s, no_rss_s) = (
        base.to_str().expect("utf-8"),
        no_rss.to_str().expect("utf-8"),
    );

    let (code, _, err) = loadtest(&["compare", base_s, base_s, "-t", "p98_ms<=baseline"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown metric"), "{err}");
    let (code, _, err) = loadtest(&["compare", no_rss_s, base_s, "-t", "server_rss_mb<=baseline"]);
    assert_eq!(code, 2);
    assert!(err.contains("baseline report has no value"), "{err}");
    let (code, _, err) = loadtest(&["compare", base_s, no_rss_s, "-t", "server_rss_mb<100000"]);
    assert_eq!(code, 2, "the judged report lacks the metric");
    assert!(err.contains("no value for server_rss_mb"), "{err}");
    let json = dir.path().join("x.json");
    let (code, _, err) = small_run(
        &json,
        &["--baseline", no_rss_s, "-t", "server_rss_mb<=2*baseline"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(!json.exists(), "nothing ran");
    let (code, _, err) = small_run(&json, &["-t", "p99_ms<=baseline"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs --baseline"), "{err}");
    let (code, _, err) = loadtest(&["compare", base_s, "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("Error:"), "{err}");
}
