//! Restarts during churn (issue 16 item 6): when the server ends the connections — courier
//! restarted, or its Redis killed and restarted — every resuming client comes back with its
//! position and is either replayed or told (`resync`); nothing is lost silently.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{CourierProcess, PrivateRedis};
use common::{read_json, External, SMOKE};
use serde_json::Value;

/// Starts the tester in the background: `connections` of `users` under `rate` events/s for
/// `secs`, 20 % churning every second, reports to `json`; `extra` names the servers.
fn start_tester(
    json: &Path,
    (connections, users, rate, secs): (&str, &str, &str, &str),
    extra: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["-s", SMOKE, "-c", connections, "-u", users])
        .args(["--model", "rate", "--rate", rate, "--rate-duration", secs])
        .args(["--churn-fraction", "0.2", "--churn-every", "1s"])
        .args(["--churn-away", "100ms..300ms", "--drain-timeout", "5s"])
        .args(["--duration", "40s", "--no-progress", "-t", "lost_silent==0"])
        .arg("--json")
        .arg(json)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadtest")
}

/// Waits for the tester; its report (the output on failure to read it).
fn finish(child: Child, json: &Path) -> Value {
    let out = child.wait_with_output().expect("loadtest");
    assert!(
        json.exists(),
        "no report (exit {:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(json)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Sum of a `{kind: count}` object.
fn total(v: &Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// The churn section without its per-connection rows, for the log.
fn summary(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("connections");
        m.remove("recovery_us");
    }
    c
}

/// Whether the report's `lost_silent==0` threshold held.
fn lost_silent_threshold_held(r: &Value) -> bool {
    r["thresholds"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["expr"] == "lost_silent==0"))
        .is_some_and(|t| t["passed"] == true)
}

/// Memory layer, courier (a real process) stopped with SIGTERM mid-stream and started again on
/// the same port: its history is gone (a new epoch), so every client, churner or not, comes back
/// with its old position and is told exactly once (`epoch_changed`); events published while it
/// was down were refused, never accepted, and are not counted as lost.
#[test]
fn a_courier_restart_tells_every_resuming_client_once_and_loses_nothing_silently() {
    let secret = "faults-restart";
    let mut courier = CourierProcess::start(&["--jwt-secret", secret, "--api-key", "k"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("restart.json");
    let target = courier.target();
    let extra = [
        "--target",
        &target,
        "--jwt-secret",
        secret,
        "--api-key",
        "k",
    ];
    let tester = start_tester(&json, ("200", "50", "1000", "6s"), &extra);
    // Connected and a couple of seconds into the stream.
    std::thread::sleep(Duration::from_millis(2500));
    let down = courier.restart();
    let r = finish(tester, &json);
    let c = &r["churn"];
    eprintln!("courier down {down:?}: {}", summary(c));
    assert!(lost_silent_threshold_held(&r), "{}", r["thresholds"]);
    assert_eq!(n(c, "lost_silent"), 0, "{c}");
    // Every connection was either closed by the stop (1001) or away at that moment, and every
    // one came back to the new process: one `epoch_changed` each (a `resync` moves the client's
    // position to the new epoch, so a second one cannot happen).
    assert_eq!(
        c["resyncs"],
        serde_json::json!({"epoch_changed": 200}),
        "{c}"
    );
    let closes = total(&c["server_closes"]);
    assert!(closes >= 160, "every connected client saw the stop: {c}");
    assert_eq!(
        c["server_closes"]["1001"].as_u64(),
        Some(closes),
        "a graceful stop closes with 1001: {c}"
    );
    assert_eq!(n(c, "reconnects"), n(c, "drops") + closes, "{c}");
    let d = &r["deliveries"];
    assert_eq!((n(d, "duplicated"), n(d, "reordered")), (0, 0), "{d}");
    assert_eq!(n(d, "resyncs"), 200, "{d}");
    // What is missing was refused while courier was down (each such event missed by the 4
    // connections of its user), or taken by the old process in its last moments and announced.
    assert_eq!(
        n(d, "lost"),
        n(c, "unrecoverable") + 4 * n(c, "never_accepted"),
        "{r}"
    );
}

/// redis-pubsub, two courier processes on a private Redis that is killed and restarted empty
/// mid-stream: clients closed 4008 (or told `broker_reconnected`) resume, on the other process,
/// and every missing event is covered by a `resync`; none silent.
#[test]
fn a_redis_restart_replays_or_tells_every_client() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let secret = "faults-redis";
    let start = || {
        let mut config = courier::Config::new(secret);
        config.layer = courier::config::LayerKind::RedisPubsub;
        config.redis.urls = vec![redis.url()];
        config.api_key = Some("k".into());
        External::with_config(config)
    };
    let (a, b) = (start(), start());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("redis.json");
    let (ta, tb) = (a.target(), b.target());
    let extra = [
        "--target",
        &ta,
        "--reconnect-target",
        &tb,
        "--jwt-secret",
        secret,
        "--api-key",
        "k",
    ];
    let tester = start_tester(&json, ("100", "25", "500", "6s"), &extra);
    std::thread::sleep(Duration::from_millis(2500));
    redis.crash_and_restart(Duration::from_secs(1));
    let r = finish(tester, &json);
    let c = &r["churn"];
    eprintln!("{}", summary(c));
    assert!(lost_silent_threshold_held(&r), "{}", r["thresholds"]);
    assert_eq!(n(c, "lost_silent"), 0, "{c}");
    assert!(
        total(&c["resyncs"]) + total(&c["server_closes"]) >= 100,
        "every client was told or closed: {c}"
    );
    let d = &r["deliveries"];
    assert_eq!(n(d, "reordered"), 0, "{d}");
}
