//! The "tester limited" mark (issue 19): a publisher throttled on purpose and a receive side
//! starved of CPU are each marked, with their lag; a normal small run is not; `--find-max rate`
//! calls a tester-limited step inconclusive, never the server's limit; `merge` marks the whole
//! when a segment is marked, and older reports read the mark as not measured. The runs take
//! turns ([`SERIAL`]): side by side on a small box, the starved one would starve the others too.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use common::loadtest;
use loadtest::{Report, EXIT_PASS, EXIT_TESTER_LIMITED};
use tokio::sync::Mutex;

/// Held by each test that runs the tester in this process.
static SERIAL: Mutex<()> = Mutex::const_new(());

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

/// Runs `scenario` with `extra` flags in this process: its report and exit code.
async fn run(scenario: &str, extra: &[&str]) -> (Report, u8) {
    let mut argv = vec!["loadtest", "--no-progress", "--scenario", scenario];
    argv.extend_from_slice(extra);
    let done = loadtest::run(loadtest::Opts::parse_from(argv))
        .await
        .expect("run");
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
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");

    // (c) A normal small run over HTTP keeps its schedule: measured, not marked. Its lanes are
    // sized from the rate: 500/s in batches of 5 is 100 requests/s, 5 lanes of 20.
    let normal = scenario(
        dir.path(),
        "publisher = \"http\"\nrate = 500\nrate_duration = \"1s\"\nbatch = 5",
        "",
    );
    let (r, code) = run(&normal, &[]).await;
    let lag = r.events.publish_lag_ms.expect("publish lag measured");
    let rx = r.tester.receive_lag_ms.expect("receive lag measured");
    assert!(lag.p99 < 100.0, "publish lag {lag:?}");
    assert!(rx.p99 < 100.0, "receive lag {rx:?}");
    assert!(!r.tester_limited(), "{}", reasons(&r));
    assert_eq!(r.events.lanes, Some(5));
    assert_eq!(r.deliveries.reordered, 0, "users keep their lane");
    assert_eq!(r.metric("tester_limited"), Some(0.0));
    assert_eq!((r.verdict(), code), ("PASS", EXIT_PASS));

    // (a) One lane whose every request takes 20 ms more: 100 requests of 5 events need 2 s for
    // a 1 s schedule, so the publisher ends ~1 s behind — the tester's pace, not the server's.
    let throttled = scenario(
        dir.path(),
        "publisher = \"http\"\nrate = 500\nrate_duration = \"1s\"\nbatch = 5\nlanes = 1",
        "[diagnostics]\npublish_delay = \"20ms\"",
    );
    let (r, code) = run(&throttled, &[]).await;
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
    assert_eq!(
        r.events.lanes,
        Some(1),
        "the scenario's lanes are kept as given"
    );
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
    let (r, code) = run(&starved, &[]).await;
    let rx = r.tester.receive_lag_ms.expect("receive lag measured");
    assert!(rx.p99 > 100.0, "receive lag {rx:?}");
    assert!(r.tester_limited(), "marked");
    let why = reasons(&r);
    assert!(why.contains("receive side saturated"), "{why}");
    assert!(!why.contains("publisher"), "{why}");
    assert_eq!(r.metric("receive_lag_p99_ms"), Some(rx.p99));
    assert_eq!(code, if r.passed { EXIT_TESTER_LIMITED } else { 1 });
}

/// One lane whose requests take 20 ms more offers at most ~250 events/s: a rate search from
/// 100/s meets the tester's limit, calls those steps inconclusive, and reports the highest
/// passing rate as a lower bound of the server's (exit 4), never a tester-limited step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_max_rate_treats_a_tester_limited_step_as_inconclusive() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = scenario(
        dir.path(),
        "publisher = \"http\"\nrate = 100\nrate_duration = \"500ms\"\nbatch = 5\nlanes = 1",
        "[diagnostics]\npublish_delay = \"20ms\"",
    );
    let (report, code) = run(
        &path,
        &[
            "--find-max",
            "rate",
            "--precision",
            "0.5",
            "--max-steps",
            "6",
        ],
    )
    .await;
    let fm = report.find_max.as_ref().expect("find_max");
    let at = fm.tester_limited_at.expect("the tester's limit was met");
    let best = fm.highest_passing.expect("100 events/s passes");
    assert!(best < at, "{best} < {at}");
    for st in &fm.steps {
        let rate = st.parameters.rate.expect("rate");
        // The server never failed here: each step passed or said nothing of the server.
        assert!(st.passed || st.inconclusive.is_some(), "{st:?}");
        if st.inconclusive.is_some() {
            assert!(rate >= at, "{rate} vs {at}");
            assert!(st.figures["publish_lag_p99_ms"] > 100.0, "{st:?}");
        }
    }
    assert!(
        fm.ended_by.starts_with("inconclusive above"),
        "{}",
        fm.ended_by
    );
    assert!(report.held_back_by_tester());
    assert_eq!(report.verdict(), "PASS (tester limited)");
    assert_eq!(code, EXIT_TESTER_LIMITED);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Stored reports written before the mark read it as not measured; a merge of segments is marked
/// when any segment is, and its reason names the segment.
#[test]
fn merge_marks_the_run_when_any_segment_is_marked() {
    let old: Report = serde_json::from_str(
        &std::fs::read_to_string(fixture("report-default.json")).expect("read"),
    )
    .expect("an older report");
    assert!(old.tester_limit.is_none() && old.events.publish_lag_ms.is_none());
    assert_eq!(
        old.metric("publish_lag_p99_ms"),
        None,
        "not measured, not 0"
    );
    assert_eq!(old.metric("tester_limited"), None);

    let dir = tempfile::tempdir().expect("tempdir");
    let segments: Vec<String> = ["report-v2-segment-1of2.json", "report-v2-segment-2of2.json"]
        .iter()
        .map(|name| fixture(name).display().to_string())
        .collect();
    let (code, out, err) = loadtest(&["merge", &segments[0], &segments[1], "--print-json"]);
    assert_eq!(code, EXIT_PASS as i32, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(
        m.get("tester_limit").is_none(),
        "not measured: {}",
        m["tester_limit"]
    );

    let mut marked: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&segments[0]).expect("read")).expect("json");
    marked["tester_limit"] = serde_json::json!({
        "limited": true,
        "reasons": ["publisher behind schedule: publish lag p99 900 ms"],
    });
    let marked_path = dir.path().join("marked.json");
    std::fs::write(&marked_path, marked.to_string()).expect("write");
    let (code, out, err) = loadtest(&[
        "merge",
        marked_path.to_str().expect("utf-8"),
        &segments[1],
        "--print-json",
    ]);
    assert_eq!(code, EXIT_TESTER_LIMITED as i32, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(m["tester_limit"]["limited"], true, "{}", m["tester_limit"]);
    assert_eq!(
        m["tester_limit"]["reasons"][0],
        "segment 1/2: publisher behind schedule: publish lag p99 900 ms"
    );
}
