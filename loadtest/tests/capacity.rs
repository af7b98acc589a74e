//! `loadtest capacity` on a fixture report (a real default-scenario run, arrays trimmed).

use std::process::Command;

fn capacity(extra: &[&str]) -> (i32, String, String) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report-default.json"
    );
    let mut args = vec![
        "capacity",
        "--from",
        fixture,
        "--connections",
        "100000",
        "--events-per-sec",
        "2000",
        "--fd-limit",
        "66560",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(&args)
        .output()
        .expect("run loadtest");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn text_output_states_the_sizing_and_its_assumptions() {
    let (code, out, err) = capacity(&["--fanout", "5"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "10000 deliveries/s",
        "cores:",
        "memory:",
        "processes:      2",
        "fd limit 66560",
        "50% target utilisation",
        "Assumptions:",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in:\n{out}");
    }
}

#[test]
fn json_output_matches_the_report_figures() {
    let (code, out, err) = capacity(&["--json", "--utilisation", "0.25"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let m = &v["measured"];
    // The fixture: 1,000,000 deliveries over 5000 connections of 500 users.
    assert_eq!(m["deliveries"], 1_000_000);
    assert_eq!(m["fanout"], 10.0);
    let s = &v["sizing"];
    assert_eq!(s["deliveries_per_sec"], 20_000.0);
    assert_eq!(s["processes"], 2, "100k over 65536 per process");
    let cpu = m["server_cpu_seconds"].as_f64().expect("cpu");
    let busy = 20_000.0 * cpu / 1_000_000.0;
    assert!((s["busy_cores"].as_f64().expect("busy") - busy).abs() < 1e-9);
    assert_eq!(s["cores"], ((busy / 0.25).ceil() as u64).max(1));
}

#[test]
fn a_report_without_server_figures_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.json");
    std::fs::write(
        &path,
        r#"{"server": {"rss_bytes": null, "cpu_percent": null}}"#,
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["capacity", "--from"])
        .arg(&path)
        .args(["--connections", "10", "--events-per-sec", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server-pid"));
}
