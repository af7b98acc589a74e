//! `--server-metrics`: courier's counters scraped before and after a run and checked against the
//! tester's figures.

mod common;
use common::{loadtest, read_json, small_run, SMOKE};

#[test]
fn embedded_counters_agree_with_the_tester() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let (code, out, err) = small_run(
        &json,
        &[
            "--server-metrics",
            "embedded",
            "-t",
            "server_metrics_mismatches==0",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Server metrics (http://127.0.0.1:"), "{out}");
    let v = read_json(&json);
    let m = &v["server_metrics"];
    assert_eq!(m["agree"], true, "{m}");
    assert_eq!(
        m["delta"]["courier_deliveries_total"].as_f64(),
        v["deliveries"]["received"].as_f64(),
        "every delivery the server queued was received"
    );
    assert_eq!(
        m["delta"]["courier_handshakes_total{result=\"accepted\"}"].as_f64(),
        Some(40.0)
    );
    let checks = m["checks"].as_array().expect("checks");
    assert!(checks.len() >= 3 && checks.iter().all(|c| c["agrees"] == true));
}

#[test]
fn bad_sources_are_usage_errors() {
    for args in [
        &[
            "-s",
            SMOKE,
            "--server-metrics",
            "https://127.0.0.1:1/metrics",
        ][..],
        &[
            "-s",
            SMOKE,
            "--server-metrics",
            "http://192.0.2.1:9/metrics",
        ],
        &[
            "--target",
            "ws://127.0.0.1:9/ws/notifications/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
            "--server-metrics",
            "embedded",
        ],
    ] {
        let (code, _, err) = loadtest(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("Error:"), "{err}");
    }
    // Nothing listening: a setup error naming the URL, before any client connects.
    let (code, _, err) = loadtest(&[
        "-s",
        SMOKE,
        "--server-metrics",
        "http://127.0.0.1:9/metrics",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--server-metrics http://127.0.0.1:9/metrics"),
        "{err}"
    );
}
