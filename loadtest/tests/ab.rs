//! `loadtest ab` and `--repeat`: servers started and stopped by the tester, interleaved rounds,
//! the per-metric summary, and setup failures (exit 2) that still stop what was started.

mod common;
use common::process::courier_bin;
use common::{loadtest, read_json, small_run, SMOKE};

/// Whether a process with this command line fragment is alive.
fn running(fragment: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .contains(fragment)
        })
}

#[test]
fn ab_runs_interleaved_rounds_and_stops_its_servers() {
    let courier = courier_bin();
    let secret = format!("ab-test-{}", std::process::id());
    let cmd = format!(
        "{} --listen 127.0.0.1:{{port}} --jwt-secret {secret} --api-key k",
        courier.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("ab.json");
    let (code, out, err) = loadtest(&[
        "ab",
        "--a",
        &cmd,
        "--b",
        &cmd,
        "--rounds",
        "3",
        "-s",
        SMOKE,
        "--jwt-secret",
        &secret,
        "--api-key",
        "k",
        "-m",
        "expected",
        "-m",
        "deliveries_per_sec",
        "--json",
        json.to_str().expect("utf-8"),
        "--",
        "-c",
        "40",
        "-u",
        "10",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("AB BA AB") && out.contains("Verdict"), "{out}");
    assert_eq!(
        err.matches("(discarded)").count(),
        2,
        "one warm-up each: {err}"
    );
    let v = read_json(&json);
    let expected = &v["metrics"][0];
    assert_eq!(expected["metric"], "expected");
    assert_eq!(expected["a"].as_array().expect("a").len(), 3);
    // Same scenario, same plan: the same deliveries expected from both servers.
    assert_eq!(expected["ratio"]["median"], 1.0);
    assert_eq!(expected["verdict"], "no_significant_change");
    assert!(!running(&secret), "every server it started is stopped");
}

#[test]
fn ab_setup_failure_is_exit_2_and_stops_a() {
    let courier = courier_bin();
    let secret = format!("ab-fail-{}", std::process::id());
    let a = format!(
        "{} --listen 127.0.0.1:{{port}} --jwt-secret {secret}",
        courier.display()
    );
    let (code, _, err) = loadtest(&[
        "ab",
        "--a",
        &a,
        "--b",
        "sh -c 'echo broken; exit 3'",
        "--jwt-secret",
        &secret,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server B") && err.contains("broken"), "{err}");
    assert!(!running(&secret), "A was stopped");
    let (code, _, err) = loadtest(&[
        "ab",
        "--a",
        "x",
        "--b",
        "y",
        "--jwt-secret",
        "s",
        "-m",
        "p98_ms",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown metric"), "{err}");
}

#[test]
fn repeat_reports_medians_and_judges_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let (code, out, err) = small_run(&json, &["--repeat", "3", "-t", "received==600"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Over 3 runs"), "{out}");
    let v = read_json(&json);
    let rep = &v["repeat"];
    assert_eq!(rep["runs"], 3);
    let figures = rep["figures"].as_array().expect("figures");
    let received = figures
        .iter()
        .find(|f| f["metric"] == "received")
        .expect("received");
    assert_eq!(received["values"].as_array().expect("values").len(), 3);
    assert_eq!(received["median"], 600.0);
    let p99 = figures
        .iter()
        .find(|f| f["metric"] == "p99_ms")
        .expect("p99");
    let (lo, med, hi) = (
        p99["min"].as_f64().expect("min"),
        p99["median"].as_f64().expect("median"),
        p99["max"].as_f64().expect("max"),
    );
    assert!(lo <= med && med <= hi, "{p99}");
}
