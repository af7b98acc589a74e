//! The Redis publishers end to end: the smoke scenario with the embedded courier on the matching
//! Redis layer, zero loss. Skips visibly when Redis is unreachable, unless `COURIER_REQUIRE_REDIS=1`.

mod common;
use common::process::PrivateRedis;
use common::redis_or_skip;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

impl PrivateRedis {
    /// `calls` of `command` in `INFO commandstats`, over a raw socket.
    fn calls(&self, command: &str) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s.write_all(b"INFO commandstats\r\n").expect("write");
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        // The reply is one bulk string; read until its last line (a short read ends it).
        while let Ok(n) = s.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n < buf.len() {
                break;
            }
        }
        let key = format!("cmdstat_{command}:calls=");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// `--redis-url a,b` (channels_redis `hosts`): the publisher and the embedded server's layer both
/// shard over the hosts, every host carries some of the traffic, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_publishers_shard_over_several_hosts_without_loss() {
    for (publisher, command) in [("redis-pubsub", "publish"), ("redis-core", "evalsha")] {
        let (Some(a), Some(b)) = (PrivateRedis::start(), PrivateRedis::start()) else {
            return;
        };
        let r = run_smoke(publisher, &format!("{},{}", a.url(), b.url())).await;
        assert_zero_loss(&r, publisher);
        for host in [&a, &b] {
            assert!(
                host.calls(command) > 0,
                "{publisher}: every host carries traffic ({command} on :{})",
                host.port
            );
        }
    }
}
