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
        &["-s", SMOKE, "--server-metrics", "wss://127.0.0.1:1/metrics"][..],
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

/// Against a separately started courier (its own runtime, reached over sockets like any server),
/// scraped by URL, and with slow readers so drops and 4008 closes are part of the cross-check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_server_by_url() {
    use clap::Parser;
    let server = loadtest::session::embedded_server::EmbeddedServer::start(
        Some(8),
        None,
        courier::config::LayerKind::Memory,
        courier::config::RedisConfig::default(),
    )
    .await
    .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let target = format!("ws://{}/ws/notifications/", server.addr);
    let metrics = format!("http://{}/metrics", server.addr);
    let key = server.api_key().expect("key");
    let opts = loadtest::Opts::parse_from([
        "loadtest",
        "-s",
        SMOKE,
        "-c",
        "40",
        "-u",
        "10",
        "--slow-fraction",
        "0.25",
        "--events-per-burst",
        "40",
        "--payload-bytes",
        "20000",
        "--batch",
        "10",
        "--target",
        &target,
        "--jwt-secret",
        &server.secret,
        "--api-key",
        &key,
        "--server-metrics",
        &metrics,
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    loadtest::run(opts).await.expect("run");
    let v = read_json(&json);
    let m = &v["server_metrics"];
    assert_eq!(m["source"], metrics.as_str());
    let slow_closed: u64 = v["slow_clients"]["closed_by_code"]
        .as_object()
        .map_or(0, |c| c.values().filter_map(|n| n.as_u64()).sum());
    // 20 KB frames into an 8-frame queue: every slow reader is closed as a slow consumer, and
    // the server's 4008 count must match what the slow clients saw.
    assert!(slow_closed > 0, "{}", v["slow_clients"]);
    let check = m["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["what"] == "closes with code 4008")
        .expect("a 4008 cross-check");
    assert_eq!(check["agrees"], true, "{check}");
    assert_eq!(m["agree"], true, "{m}");
    server.stop().await;
}
