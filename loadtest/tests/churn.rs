//! The churn model end to end: clients that drop and come back, accounted exactly — resume on
//! loses nothing silently and recovers, resume off loses (the reference's behaviour), and with
//! redis-pubsub a client resumes on the *other* courier process.

mod common;

use common::{loadtest, passed, read_json, redis_or_skip, External, SMOKE};
use serde_json::Value;

/// 200 connections of 50 users under 1500 events/s (the shape of most runs here).
const SHAPE: (&str, &str, &str) = ("200", "50", "1500");

/// A small sustained stream of `(connections, users, events/s)` with 20 % of the connections
/// dropping about every second.
fn churn_args<'a>(
    json: &'a str,
    shape: (&'a str, &'a str, &'a str),
    extra: &[&'a str],
) -> Vec<&'a str> {
    let (connections, users, rate) = shape;
    let mut args = vec![
        "-s",
        SMOKE,
        "-c",
        connections,
        "-u",
        users,
        "--model",
        "rate",
        "--rate",
        rate,
        "--rate-duration",
        "3s",
        "--churn-fraction",
        "0.2",
        "--churn-every",
        "1s",
        "--churn-away",
        "100ms..300ms",
        "--drain-timeout",
        "3s",
        "--no-progress",
        "--json",
        json,
    ];
    args.extend_from_slice(extra);
    args
}

fn churn_of(report: &Value) -> &Value {
    report.get("churn").expect("a churn section")
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn resume_recovers_everything_and_without_it_events_are_lost_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let on = dir.path().join("on.json");
    let on_s = on.to_str().expect("utf-8");
    let (code, out, err) = loadtest(&churn_args(
        on_s,
        SHAPE,
        &["-t", "lost_silent==0", "-t", "recovery_p99_ms<5000"],
    ));
    assert!(passed(code, &on), "resume on passes:\n{out}\n{err}");
    let r = read_json(&on);
    assert_eq!(r["schema_version"], loadtest::schema::SCHEMA_VERSION);
    let c = churn_of(&r);
    assert_eq!(c["resume"], true);
    assert_eq!(n(c, "lost_silent"), 0, "{c}");
    assert_eq!(n(c, "unrecoverable"), 0, "{c}");
    assert!(
        n(c, "drops") >= 40,
        "every churner dropped at least once: {c}"
    );
    assert_eq!(n(c, "reconnects"), n(c, "drops"), "{c}");
    assert!(
        n(c, "recovered") > 0,
        "the replays brought events back: {c}"
    );
    assert!(n(c, "replay_bytes") > 0, "{c}");
    assert!(n(c, "recoveries") > 0, "{c}");
    let d = &r["deliveries"];
    assert_eq!(
        (n(d, "lost"), n(d, "duplicated"), n(d, "reordered")),
        (0, 0, 0),
        "{d}"
    );
    assert!(
        out.contains("Churn") && out.contains("lost_silent   0"),
        "{out}"
    );

    // The same run without positions: what the reference does, and the accounting must see it.
    let off = dir.path().join("off.json");
    let off_s = off.to_str().expect("utf-8");
    let (code, out, err) = loadtest(&churn_args(
        off_s,
        SHAPE,
        &[
            "--churn-resume",
            "off",
            "--churn-mode",
            "reset",
            "-t",
            "lost_silent==0",
        ],
    ));
    assert_eq!(
        code, 1,
        "lost_silent==0 fails without resume:\n{out}\n{err}"
    );
    let r = read_json(&off);
    let c = churn_of(&r);
    assert_eq!(c["resume"], false);
    assert!(n(c, "lost_silent") > 0, "{c}");
    assert_eq!(n(c, "recovered"), 0, "{c}");
    assert_eq!(
        n(c, "lost_silent"),
        n(&r["deliveries"], "lost"),
        "every loss is silent: {r}"
    );
    let listed = c["connections"].as_array().expect("connections");
    assert!(!listed.is_empty() && listed.len() <= 100, "{c}");
}

#[test]
fn stalled_clients_resume_and_tokens_are_refreshed_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("stall.json");
    let js = json.to_str().expect("utf-8");
    let (code, out, err) = loadtest(&churn_args(
        js,
        SHAPE,
        &[
            "--churn-mode",
            "stall",
            "--churn-stall",
            "200ms",
            "--token-lifetime",
            "3s",
            "--refresh-before",
            "2s",
            "-t",
            "lost_silent==0",
            "-t",
            "refresh_unanswered==0",
        ],
    ));
    assert!(passed(code, &json), "{out}\n{err}");
    let r = read_json(&json);
    let c = churn_of(&r);
    assert_eq!(c["mode"], "stall");
    assert!(n(c, "recovered") > 0, "{c}");
    assert!(n(c, "refreshes") >= 200, "every connection refreshed: {c}");
    assert_eq!(n(c, "refreshes"), n(c, "refreshed"), "{c}");
    assert_eq!(
        n(&r["deliveries"], "foreign"),
        0,
        "refreshed is not foreign"
    );
}

#[test]
fn churn_flags_are_checked_before_any_socket() {
    for (args, says) in [
        (&["--churn-fraction", "1.5"][..], "churn fraction"),
        (&["--churn-every", "1s"][..], "--churn-fraction"),
        (
            &["--churn-fraction", "0.1", "--churn-away", "2s..1s"][..],
            "minimum",
        ),
        (
            &["--churn-fraction", "0.1", "--churn-every", "10ms"][..],
            "at least",
        ),
        (&["--refresh-before", "2h"][..], "below the token lifetime"),
        (
            &[
                "--churn-fraction",
                "0.1",
                "--reconnect-target",
                "ws://127.0.0.1:1/ws/notifications/",
            ][..],
            "external --target",
        ),
    ] {
        let mut all = vec!["-s", SMOKE, "--no-progress"];
        all.extend_from_slice(args);
        let (code, _, err) = loadtest(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Two courier processes on one Redis (pub/sub layer, shared history), events published over
/// HTTP to the first: every reconnect goes to the other process and resumes there.
#[test]
fn a_client_resumes_on_the_other_process_with_redis_pubsub() {
    let Some(url) = redis_or_skip() else { return };
    let prefix = format!("lt-churn-{}", uuid::Uuid::new_v4().simple());
    let secret = "churn-secret";
    let start = || {
        let mut config = courier::Config::new(secret);
        config.layer = courier::config::LayerKind::RedisPubsub;
        config.redis.urls = vec![url.clone()];
        config.redis.prefix = prefix.clone();
        config.api_key = Some("churn-key".into());
        External::with_config(config)
    };
    let (a, b) = (start(), start());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("two.json");
    let js = json.to_str().expect("utf-8");
    let (ta, tb) = (a.target(), b.target());
    let extra = [
        "--target",
        &ta,
        "--reconnect-target",
        &tb,
        "--jwt-secret",
        secret,
        // Through courier's API, whose layer numbers every event in Redis (a channels_redis
        // `group_send` from Django writes no history: its events cannot be replayed).
        "--api-key",
        "churn-key",
        "-t",
        "lost_silent==0",
    ];
    let (code, out, err) = loadtest(&churn_args(js, ("100", "25", "500"), &extra));
    assert!(passed(code, &json), "{out}\n{err}");
    let r = read_json(&json);
    let c = churn_of(&r);
    assert!(n(c, "reconnects") >= 20, "{c}");
    assert!(
        n(c, "recovered") > 0,
        "replays served by the other process: {c}"
    );
    assert_eq!((n(c, "lost_silent"), n(c, "unrecoverable")), (0, 0), "{c}");
    let d = &r["deliveries"];
    // Once each: an event the resume read from the stream and that was still on its way to the
    // process is not sent again (it was, 2 runs in 5, before the hub kept each resumed member's
    // read head).
    assert_eq!(
        (n(d, "lost"), n(d, "reordered"), n(d, "duplicated")),
        (0, 0, 0),
        "{d}"
    );
}

/// A history too short for the time away: the server answers the resume with `position_expired`
/// and the events it could not replay are counted as signalled, not silent.
#[test]
fn what_the_history_cannot_serve_is_signalled_not_silent() {
    let secret = "churn-short-history";
    let mut config = courier::Config::new(secret);
    config.api_key = Some("k".into());
    config.history.size = 4;
    let server = External::with_config(config);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("short.json");
    let js = json.to_str().expect("utf-8");
    let target = server.target();
    let extra = [
        "--target",
        &target,
        "--jwt-secret",
        secret,
        "--api-key",
        "k",
        "--churn-away",
        "500ms..700ms",
        "-t",
        "lost_silent==0",
    ];
    // `--churn-away` comes from `extra` here, so the shared arguments must not repeat it.
    let args: Vec<&str> = churn_args(js, ("100", "25", "1000"), &[])
        .chunks(2)
        .filter(|kv| kv[0] != "--churn-away")
        .flatten()
        .copied()
        .chain(extra)
        .collect();
    let (code, out, err) = loadtest(&args);
    assert_eq!(code, 1, "the smoke scenario's lost==0 fails:\n{out}\n{err}");
    let r = read_json(&json);
    let held = r["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .find(|t| t["expr"] == "lost_silent==0")
        .expect("lost_silent threshold");
    assert_eq!(held["passed"], true, "{held}");
    let c = churn_of(&r);
    let d = &r["deliveries"];
    assert!(n(d, "resyncs") > 0, "position_expired was sent: {d}");
    assert!(n(c, "unrecoverable") > 0, "{c}");
    assert_eq!(n(c, "lost_silent"), 0, "{c}");
    assert_eq!(
        n(c, "unrecoverable"),
        n(d, "lost"),
        "every loss was announced: {r}"
    );
}
