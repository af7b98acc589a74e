//! The "tester limited" mark (issue 19): a publisher throttled on purpose and a receive side
//! starved of CPU are each marked, with their lag; a normal small run is not. The cases run one
//! after another: run side by side on a small box, the starved one would starve the others too.

use std::path::Path;

use clap::Parser;
use loadtest::{Report, EXIT_PASS, EXIT_TESTER_LIMITED};

/// A small embedded run: 20 connections of 10 users, the rate model, and `extra` TOML appended
/// (sections the case needs: `[publish]` keys, `[diagnostics]`).
fn scenario(dir: &Path, publish: &str, extra: &str) -> String {
    let text = format!(
        r#"name = "pace"
thresholds = ["lost==0", "reordered==0", "duplicated==0"]

[run]
target = "embedded"
duration = "20s"
drain_timeout = "10s"

[clients]
connections = 20
users = 10

[publish]
model = "rate"
payload_bytes = 16
{publish}

{extra}
"#
    );
    let path = dir.join("pace.toml");
    std::fs::write(&path, text).expect("write scenario");
    path.to_str().expect("utf-8 path").to_owned()
}

async fn run(scenario: &str) -> (Report, u8) {
    let opts = loadtest::Opts::parse_from(["loadtest", "--no-progress", "--scenario", scenario]);
    let done = loadtest::run(opts).await.expect("run");
    (done.report, done.exit_code)
}

fn reasons(r: &Report) -> String {
    r.tester_limit
        .as_ref()
        .map(|t| t.reasons.join("; "))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tester_says_when_it_set_the_pace() {
    let dir = tempfile::tempdir().expect("tempdir");

    // (c) A normal small run over HTTP keeps its schedule: measured, not marked.
    let normal = scenario(
        dir.path(),
        "publisher = \"http\"\nrate = 500\nrate_duration = \"1s\"",
        "",
    );
    let (r, code) = run(&normal).await;
    let lag = r.events.publish_lag_ms.expect("publish lag measured");
    let rx = r.tester.receive_lag_ms.expect("receive lag measured");
    assert!(lag.p99 < 100.0, "publish lag {lag:?}");
    assert!(rx.p99 < 100.0, "receive lag {rx:?}");
    assert!(!r.tester_limited(), "{}", reasons(&r));
    assert_eq!(r.metric("tester_limited"), Some(0.0));
    assert_eq!((r.verdict(), code), ("PASS", EXIT_PASS));

    // (a) One lane whose every request takes 20 ms more: 100 requests of 5 events need 2 s for
    // a 1 s schedule, so the publisher ends ~1 s behind — the tester's pace, not the server's.
    let throttled = scenario(
        dir.path(),
        "publisher = \"http\"\nrate = 500\nrate_duration = \"1s\"\nbatch = 5\nlanes = 1",
        "[diagnostics]\npublish_delay = \"20ms\"",
    );
    let (r, code) = run(&throttled).await;
    let lag = r.events.publish_lag_ms.expect("publish lag measured");
    assert!(lag.p99 > 300.0 && lag.max >= lag.p99, "publish lag {lag:?}");
    assert!(r.tester_limited(), "marked");
    assert!(
        reasons(&r).contains("publisher behind schedule"),
        "{}",
        reasons(&r)
    );
    assert_eq!(r.metric("publish_lag_p99_ms"), Some(lag.p99));
    assert_eq!(r.metric("tester_limited"), Some(1.0));
    // Still every event, in order: one lane keeps each user's order.
    assert_eq!(r.deliveries.received, r.deliveries.expected);
    assert_eq!(r.deliveries.reordered, 0);
    assert!(r.passed, "the thresholds held");
    assert_eq!(r.verdict(), "PASS (tester limited)");
    assert_eq!(code, EXIT_TESTER_LIMITED);
    let text = loadtest::report::render::text::render(&r);
    assert!(
        text.contains("TESTER LIMITED publisher behind schedule"),
        "{text}"
    );
    assert!(
        text.contains("Verdict         PASS (tester limited)"),
        "{text}"
    );
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["tester_limit"]["limited"], true);
    assert!(json["events"]["publish_lag_ms"]["p99"].as_f64().is_some());
    assert!(json["raw"]["publish_lag_us"].is_string());

    // (b) Every delivery costs its receiver 50 ms of CPU: 100 deliveries a second want 5 cores of
    // the runtime's 2, so due tasks wait. The embedded publisher runs on the server's runtime,
    // so only the receive side can set the mark.
    let starved = scenario(
        dir.path(),
        "publisher = \"embedded\"\nrate = 50\nrate_duration = \"1s\"",
        "[diagnostics]\nreceive_cost = \"50ms\"",
    );
    let (r, code) = run(&starved).await;
    let rx = r.tester.receive_lag_ms.expect("receive lag measured");
    assert!(rx.p99 > 100.0, "receive lag {rx:?}");
    assert!(r.tester_limited(), "marked");
    let why = reasons(&r);
    assert!(why.contains("receive side saturated"), "{why}");
    assert!(!why.contains("publisher"), "{why}");
    assert_eq!(r.metric("receive_lag_p99_ms"), Some(rx.p99));
    assert_eq!(code, if r.passed { EXIT_TESTER_LIMITED } else { 1 });
}
