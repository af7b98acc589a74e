//! End-to-end runs of the smoke scenario: embedded, and against a separately started courier.

use std::path::PathBuf;

use clap::Parser;
use common::External;
use serde_json::Value;

mod common;

fn smoke() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml").to_owned()
}

fn json_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("report.json")
}

/// Runs the loadtest library with `args` and returns the JSON report it wrote, and its exit code.
async fn run(args: &[&str]) -> (Value, u8) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = json_path(&dir);
    let mut argv = vec![
        "loadtest",
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8 path"),
    ];
    argv.extend_from_slice(args);
    let outcome = loadtest::run(loadtest::Opts::parse_from(argv))
        .await
        .expect("run");
    let text = std::fs::read_to_string(&json).expect("json written");
    (
        serde_json::from_str(&text).expect("valid json"),
        outcome.exit_code,
    )
}

fn assert_healthy(r: &Value, connections: u64) {
    assert_eq!(r["schema_version"], loadtest::schema::SCHEMA_VERSION);
    for key in [
        "scenario",
        "target",
        "connections",
        "handshakes_per_sec",
        "deliveries",
        "throughput",
        "latency_us",
        "tester",
        "server",
        "thresholds",
        "passed",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    let c = &r["connections"];
    assert_eq!(c["attempted"], connections);
    assert_eq!(c["established"], connections, "{c}");
    assert_eq!(c["failed"], 0);
    assert!(c["closed_by_code"].is_object());
    let d = &r["deliveries"];
    assert!(d["expected"].as_u64().expect("expected") > 0);
    assert_eq!(d["received"], d["expected"], "{d}");
    for k in ["lost", "duplicated", "reordered"] {
        assert_eq!(d[k], 0, "{k}: {d}");
    }
    let l = &r["latency_us"];
    let q: Vec<u64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| l[k].as_u64().expect("latency field"))
        .collect();
    assert!(
        q[0] > 0 && q.windows(2).all(|w| w[0] <= w[1]),
        "percentiles ordered: {q:?}"
    );
    assert!(r["throughput"]["deliveries_per_sec"].as_f64().expect("dps") > 0.0);
    assert!(r["throughput"]["events_per_sec"].as_f64().expect("eps") > 0.0);
    let t = &r["tester"];
    let whole_run = t["cpu_percent"].as_f64().expect("tester cpu") / 100.0
        * r["duration_secs"].as_f64().expect("duration");
    let window = t["delivery_cpu_seconds"]
        .as_f64()
        .expect("tester delivery cpu");
    // The delivery window is part of the run (1 ms of slack for /proc rounding).
    assert!(
        window > 0.0 && window <= whole_run + 1e-3,
        "tester delivery CPU {window} s within the run's {whole_run} s"
    );
    assert!(r["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .all(|t| t["passed"] == true && t["expr"].is_string()));
    assert_eq!(r["passed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_embedded_loses_nothing() {
    let (r, code) = run(&["--scenario", &smoke()]).await;
    assert_healthy(&r, 200);
    assert_eq!(code, 0);
    assert_eq!(r["target"], "embedded");
    assert!(
        r["server"]["rss_bytes"].as_u64().is_some(),
        "embedded server RSS is reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_rate_model_over_http_embedded() {
    let (r, code) = run(&[
        "--scenario",
        &smoke(),
        "--publisher",
        "http",
        "--model",
        "rate",
        "--rate",
        "2000",
        "--rate-duration",
        "500ms",
        "-c",
        "100",
        "-u",
        "25",
    ])
    .await;
    assert_healthy(&r, 100);
    assert_eq!(code, 0);
    assert_eq!(r["publisher"], "http");
    assert_eq!(r["events"]["published"], 1000);
}

/// Runs the smoke scenario against `server` with `args` appended; see [`run`].
async fn run_smoke_against(server: &External, args: &[&str]) -> (Value, u8) {
    let scenario = smoke();
    let target = server.target();
    let mut argv = vec!["--scenario", scenario.as_str(), "--target", target.as_str()];
    argv.extend_from_slice(args);
    run(&argv).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_against_a_separate_server() {
    let server = External::start("test-secret", "test-key");
    let (r, code) = run_smoke_against(
        &server,
        &["--jwt-secret", "test-secret", "--api-key", "test-key"],
    )
    .await;
    assert_healthy(&r, 200);
    assert_eq!(code, 0);
    assert_eq!(r["target"], server.target().as_str());
    assert_eq!(r["publisher"], "http");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_counted_as_4001_closes() {
    let server = External::start("right", "k");
    let (r, code) = run_smoke_against(
        &server,
        &["-c=20", "-u=5", "--jwt-secret=wrong", "--api-key=k"],
    )
    .await;
    assert_eq!(r["connections"]["established"], 0);
    assert_eq!(r["connections"]["failed"], 20);
    assert_eq!(r["connections"]["closed_by_code"]["4001"], 20);
    assert_eq!(code, 1, "failed==0 threshold fails");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_file_against_a_separate_server() {
    let server = External::start("file-secret", "k");
    let dir = tempfile::tempdir().expect("tempdir");
    let minted = loadtest::session::tokens::mint("file-secret", 0, 5).expect("mint");
    let map: serde_json::Map<String, Value> = minted
        .user_ids
        .iter()
        .zip(&minted.tokens)
        .map(|(id, t)| (id.to_string(), Value::from(t.as_str())))
        .collect();
    let file = dir.path().join("tokens.json");
    std::fs::write(&file, Value::Object(map).to_string()).expect("write tokens");
    let (r, code) = run_smoke_against(
        &server,
        &[
            "-c=20",
            "-u=5",
            "--api-key=k",
            "--tokens-file",
            file.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_healthy(&r, 20);
    assert_eq!(code, 0);
    drop(server);
}
