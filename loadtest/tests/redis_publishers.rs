//! The Redis publishers end to end: the smoke scenario with the embedded courier on the matching
//! Redis layer, zero loss. Skips visibly when Redis is unreachable, unless `COURIER_REQUIRE_REDIS=1`.

mod common;
use common::redis_or_skip;

use clap::Parser;
use serde_json::Value;

async fn run_smoke(publisher: &str, url: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let prefix = format!(
        "loadtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");
    let argv = [
        "loadtest",
        "--no-progress",
        "--scenario",
        smoke,
        "--json",
        json.to_str().expect("utf-8 path"),
        "--publisher",
        publisher,
        "--redis-url",
        url,
        "--redis-prefix",
        &prefix,
        // Small batches: several pipelines per burst, and events of one user across batches.
        "--batch",
        "64",
    ];
    let outcome = loadtest::run(loadtest::Opts::parse_from(argv))
        .await
        .expect("run");
    let text = std::fs::read_to_string(&json).expect("json written");
    let report: Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(outcome.exit_code, loadtest::EXIT_PASS, "{report:#}");
    report
}

fn assert_zero_loss(r: &Value, publisher: &str) {
    assert_eq!(r["publisher"], publisher);
    let d = &r["deliveries"];
    let expected = d["expected"].as_u64().expect("expected");
    // smoke: 50 users × 3 bursts × 5 events, 4 connections each.
    assert_eq!(expected, 50 * 15 * 4, "{d}");
    assert_eq!(d["received"], expected, "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["reordered"], 0, "{d}");
    assert_eq!(
        r["events"]["errors"].as_object().map(|o| o.len()),
        Some(0),
        "{}",
        r["events"]
    );
    assert!(r["server"]["delivery_cpu_seconds"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_publisher_reaches_the_pubsub_layer_without_loss() {
    let Some(url) = redis_or_skip() else { return };
    let r = run_smoke("redis-pubsub", &url).await;
    assert_zero_loss(&r, "redis-pubsub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_core_publisher_reaches_the_core_layer_without_loss() {
    let Some(url) = redis_or_skip() else { return };
    let r = run_smoke("redis-core", &url).await;
    assert_zero_loss(&r, "redis-core");
}

#[test]
fn a_redis_publisher_with_the_memory_layer_is_refused() {
    let opts = loadtest::Opts::parse_from([
        "loadtest",
        "--publisher",
        "redis-core",
        "--server-layer",
        "memory",
    ]);
    let e = loadtest::Plan::from_opts(&opts).expect_err("mismatch");
    assert!(e.to_string().contains("--server-layer redis-core"), "{e}");
}
