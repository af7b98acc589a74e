//! `--model replay`: a recorded trace replayed at a speed factor against a courier that records
//! its own trace — the second trace must have the first's per-second counts (scaled), each run
//! user's events in the order, types and sizes the mapping gives, and every event must reach every
//! connection of its user (0 lost). Bad traces and flag combinations are refused up front.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use common::External;
use loadtest::plan::{ArrivalModel, Plan, Trace};
use loadtest::{Opts, Report};
use serde_json::Value;
use tokio::sync::Mutex;

/// Held by each test that runs the tester in this process (they share two cores).
static SERIAL: Mutex<()> = Mutex::const_new(());

const SECRET: &str = "replay-secret";
const API_KEY: &str = "replay-key";

/// Trace users in order of first appearance (so trace user `i` is `USERS[i]`); two kinds of id.
const USERS: [&str; 6] = [
    "user_50", "user_7", "user_abc", "user_3", "user_61", "user_12",
];
/// Events in each second of the test trace.
const PER_SECOND: [usize; 4] = [6, 14, 3, 9];
const KINDS: [&str; 3] = ["new_message", "friend_request", "order.shipped"];

/// A 4-second trace: the first event at 0, the others at 0.1–0.6 s into their second (so a
/// replayed second's events sit well inside its scaled bin), users cycling with a stride that
/// mixes them, three types, sizes 90–400 bytes, and two events of a non-user group (skipped).
fn write_trace(path: &Path) -> Vec<(u64, usize, &'static str, u64)> {
    let mut events = Vec::new();
    let mut n = 0usize;
    for (s, &count) in PER_SECOND.iter().enumerate() {
        for j in 0..count {
            let offset = if n == 0 {
                0
            } else {
                100_000 + 500_000 * j as u64 / count as u64
            };
            // The first six events introduce the users in order.
            let user = if n < USERS.len() {
                n
            } else {
                (n * 5) % USERS.len()
            };
            let kind = KINDS[n % 3];
            let bytes = 90 + (n as u64 * 37) % 310;
            events.push((s as u64 * 1_000_000 + offset, user, kind, bytes));
            n += 1;
        }
    }
    let mut text = String::new();
    for (i, (t, user, kind, bytes)) in events.iter().enumerate() {
        let t_us = 1_765_000_000_000_000 + t;
        text.push_str(&format!(
            "{{\"t_us\":{t_us},\"group\":\"{}\",\"type\":\"{kind}\",\"bytes\":{bytes}}}\n",
            USERS[*user]
        ));
        if i == 3 || i == 20 {
            text.push_str(&format!(
                "{{\"t_us\":{t_us},\"group\":\"room_1\",\"type\":\"x\",\"bytes\":5}}\n"
            ));
        }
    }
    std::fs::write(path, text).expect("write trace");
    events
}

/// A courier on its own runtime recording every publish to `trace`.
fn courier_tracing(trace: &Path) -> External {
    let mut config = courier::Config::new(SECRET);
    config.api_key = Some(API_KEY.into());
    config.trace = Some(courier::config::TraceConfig {
        path: trace.to_path_buf(),
        sample: 1.0,
        max_bytes: 1 << 20,
    });
    External::with_config(config)
}

async fn run(argv: &[&str]) -> (Report, u8) {
    let mut all = vec!["loadtest", "--no-progress"];
    all.extend_from_slice(argv);
    let done = loadtest::run(Opts::parse_from(all)).await.expect("run");
    (done.report, done.exit_code)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("courier's trace")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_reproduces_the_traces_seconds_order_types_sizes_and_fan_out() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("monday.jsonl");
    let events = write_trace(&input);
    let recorded = dir.path().join("replayed.jsonl");
    let server = courier_tracing(&recorded);
    let target = server.target();
    let trace = input.to_str().expect("utf-8");
    // 6 trace users onto 4 run users of 2 connections: trace users 4 and 5 fold onto 0 and 1.
    let (report, code) = run(&[
        "--target",
        &target,
        "--jwt-secret",
        SECRET,
        "--api-key",
        API_KEY,
        "--publisher",
        "http",
        "--batch",
        "5",
        "-c",
        "8",
        "-u",
        "4",
        "--model",
        "replay",
        "--trace",
        trace,
        "--replay-speed",
        "2",
        "--drain-timeout",
        "5s",
        "-t",
        "lost==0",
        "-t",
        "reordered==0",
        "-t",
        "duplicated==0",
    ])
    .await;
    drop(server); // writes out the rest of courier's trace

    let total = events.len() as u64;
    assert_eq!(code, loadtest::EXIT_PASS, "{:?}", report.thresholds);
    assert_eq!(report.events.published, total);
    // Fan-out: every event reached both connections of its run user.
    assert_eq!(report.deliveries.expected, total * 2);
    assert_eq!(report.deliveries.received, total * 2);
    assert_eq!(
        (
            report.deliveries.lost,
            report.deliveries.duplicated,
            report.deliveries.reordered
        ),
        (0, 0, 0)
    );
    assert!(
        report.events.publish_lag_ms.is_some(),
        "an open model: lag per event"
    );
    assert!(
        report.tester_limit.is_some(),
        "the tester-limited rule applies"
    );
    assert!(
        report.model.contains("2 events of other groups skipped"),
        "{}",
        report.model
    );

    // What courier saw: the trace's seconds at half the time, exactly.
    let seen = lines(&recorded);
    assert_eq!(seen.len(), events.len(), "every event once");
    let t0 = seen[0]["t_us"].as_u64().expect("t_us");
    let mut per_bin = vec![0usize; PER_SECOND.len()];
    for l in &seen {
        let rel = l["t_us"].as_u64().expect("t_us") - t0;
        let bin = (rel * 2 / 1_000_000) as usize; // replayed at x2: a trace second is 0.5 s
        per_bin[bin] += 1;
    }
    assert_eq!(per_bin, PER_SECOND, "per-second counts after scaling");

    // Each run user's stream: its trace users' events merged by time, with their types and sizes.
    let mut expected: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (_, user, kind, bytes) in &events {
        let run_user = Trace::run_user(*user as u32, 4);
        // Minted user ids are index + 1.
        let group = format!("user_{}", run_user + 1);
        expected
            .entry(group)
            .or_default()
            .push(((*kind).into(), *bytes));
    }
    let mut got: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for l in &seen {
        let group = l["group"].as_str().expect("group").to_owned();
        let kind = l["type"].as_str().expect("type").to_owned();
        got.entry(group)
            .or_default()
            .push((kind, l["bytes"].as_u64().expect("bytes")));
    }
    assert_eq!(
        got, expected,
        "each user's events in order, with the recorded type and size"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_max_searches_over_the_speed() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("short.jsonl");
    // Half a second of trace: 20 events of 5 users.
    let text: String = (0..20)
        .map(|i| {
            format!(
                "{{\"t_us\":{},\"group\":\"user_{}\",\"type\":\"new_message\",\"bytes\":100}}\n",
                1_000_000 + i * 25_000,
                i % 5
            )
        })
        .collect();
    std::fs::write(&input, text).expect("write");
    let (report, _) = run(&[
        "-c",
        "10",
        "-u",
        "5",
        "--model",
        "replay",
        "--trace",
        input.to_str().expect("utf-8"),
        "--find-max",
        "speed",
        "--max-speed",
        "4",
        "-t",
        "lost==0",
    ])
    .await;
    let fm = report.find_max.expect("a search summary");
    let speeds: Vec<Option<f64>> = fm.steps.iter().map(|s| s.parameters.speed).collect();
    assert_eq!(
        speeds,
        [Some(1.0), Some(2.0), Some(4.0)],
        "doubling to --max-speed"
    );
    assert!(fm.steps.iter().all(|s| s.parameters.rate.is_none()));
    assert_eq!(fm.highest_passing, Some(4.0));
    assert_eq!(fm.ended_by, "reached --max-speed 4");
    assert_eq!(
        report.deliveries.received, 40,
        "the best step: 20 events x 2 connections"
    );
}

fn plan(argv: &[&str]) -> Result<Plan, String> {
    let mut all = vec!["loadtest", "-c", "4", "-u", "2"];
    all.extend_from_slice(argv);
    Plan::from_opts(&Opts::parse_from(all)).map_err(|e| e.to_string())
}

#[test]
fn bad_traces_and_flags_are_refused_before_anything_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.jsonl");
    write_trace(&good);
    let good = good.to_str().expect("utf-8");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"t_us\":1,\"group\":\"user_1\",\"type\":\"a\",\"bytes\":1}\nnot json\n",
    )
    .expect("write");
    let bad = bad.to_str().expect("utf-8");

    let e = plan(&["--model", "replay", "--trace", bad]).expect_err("malformed");
    assert!(e.contains("bad.jsonl:2:"), "names the line: {e}");
    let e = plan(&["--model", "replay"]).expect_err("no trace");
    assert!(e.contains("--trace"), "{e}");
    let e = plan(&["--trace", good]).expect_err("not replay");
    assert!(e.contains("--model replay"), "{e}");
    let e = plan(&["--model", "replay", "--trace", good, "--replay-speed", "0"]).expect_err("0");
    assert!(e.contains("replay_speed"), "{e}");
    let e = plan(&["--model", "replay", "--trace", good, "--segment", "1/2"]).expect_err("seg");
    assert!(e.contains("--segment"), "{e}");
    let e = plan(&["--model", "replay", "--trace", good, "--duration", "3s"]).expect_err("long");
    assert!(
        e.contains("the replay takes 3s 544ms") && e.contains("--duration"),
        "{e}"
    );
    let e = plan(&["--find-max", "speed", "-t", "lost==0"]).expect_err("burst");
    assert!(e.contains("replay"), "{e}");

    let p = plan(&["--model", "replay", "--trace", good, "--replay-speed", "3"]).expect("valid");
    let ArrivalModel::Replay { trace, speed } = &p.arrival else {
        panic!("a replay plan: {:?}", p.arrival)
    };
    assert_eq!(*speed, 3.0);
    assert_eq!(trace.per_second(), PER_SECOND.map(|n| n as u64));
    assert_eq!(p.total_events(), 32);
    // 6 trace users on 2 run users: 0, 2, 4 → run user 0; 1, 3, 5 → run user 1.
    assert_eq!(p.events_for_user(0) + p.events_for_user(1), 32);
    assert_eq!(
        p.events_for_user(0),
        trace.per_user[0] + trace.per_user[2] + trace.per_user[4]
    );
}

#[test]
fn the_shipped_replay_scenario_reads_its_sample_trace() {
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/replay.toml");
    let p = Plan::from_opts(&Opts::parse_from([
        "loadtest",
        "-s",
        scenario.to_str().expect("utf-8"),
    ]))
    .expect("valid");
    let ArrivalModel::Replay { trace, speed } = &p.arrival else {
        panic!("replay.toml replays: {:?}", p.arrival)
    };
    assert_eq!(*speed, 3.0);
    assert_eq!(trace.per_user.len(), 200, "every user of the push appears");
    assert_eq!(p.connections / p.users, 2);
}
