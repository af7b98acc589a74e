//! `--barrier`: tester processes meet in the real Redis (unique run ids, keys removed after) and
//! start publishing at one instant; a missing agent fails the run within its timeout with exit 3.
//! The Redis tests skip visibly when Redis is unreachable, unless `COURIER_REQUIRE_REDIS=1`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use common::{loadtest, read_json, redis_or_skip, External, SMOKE};
use loadtest::jobs::run::barrier::START_LEAD;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_loadtest");
/// The smoke scenario: 50 users × 3 bursts × 5 events, 4 connections each.
const EXPECTED: u64 = 50 * 15 * 4;

fn run_id() -> String {
    format!(
        "lt-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Removes a run's keys when dropped, so a failing assert leaves nothing behind either.
struct Keys {
    url: String,
    names: Vec<String>,
}

impl Keys {
    fn of(url: &str, id: &str) -> Self {
        let names = ["agents", "ready", "start"]
            .map(|k| format!("loadtest:barrier:{{{id}}}:{k}"))
            .to_vec();
        Self {
            url: url.into(),
            names,
        }
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .expect("url")
            .get_connection()
            .expect("connect to Redis")
    }

    /// The slots (segment numbers) held in the agents hash.
    fn slots(&self) -> Vec<String> {
        let keys: Vec<String> = redis::cmd("HKEYS")
            .arg(&self.names[0])
            .query(&mut self.conn())
            .expect("HKEYS");
        keys.into_iter().filter(|k| k != "n").collect()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Ok(c) = redis::Client::open(self.url.as_str()) {
            if let Ok(mut c) = c.get_connection() {
                let _: redis::RedisResult<u64> = redis::cmd("DEL").arg(&self.names).query(&mut c);
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[test]
fn three_agents_start_together_and_merge_exactly() {
    let Some(url) = redis_or_skip() else { return };
    let id = run_id();
    let keys = Keys::of(&url, &id);
    let server = External::start("s", "k");
    let target = server.target();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths: Vec<PathBuf> = (1..=3)
        .map(|k| dir.path().join(format!("a{k}.json")))
        .collect();
    let launched = unix_ms();
    let mut last_launch = launched;
    // No --segment: each agent takes the first free one, in the order they join. The third comes
    // later than the start lead: the first two must wait for it, not start on their own.
    let children: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            if i == 2 {
                std::thread::sleep(START_LEAD + Duration::from_millis(500));
                last_launch = unix_ms();
            }
            Command::new(BIN)
                .args(["--no-progress", "--scenario", SMOKE, "--target", &target])
                .args(["--jwt-secret", "s", "--api-key", "k"])
                .args(["--barrier", &url, "--agents", "3", "--run-id", &id])
                .args(["--barrier-timeout", "20s", "--json"])
                .arg(path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn an agent")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "an agent failed: {stderr}");
        assert!(stderr.contains("agents ready"), "{stderr}");
    }
    let reports: Vec<Value> = paths.iter().map(|p| read_json(p)).collect();
    let mut segments: Vec<String> = reports
        .iter()
        .map(|r| r["raw"]["segment"].as_str().expect("segment").to_owned())
        .collect();
    segments.sort();
    assert_eq!(segments, ["1/3", "2/3", "3/3"], "one slot each");
    // One agreed start, set by the last agent to arrive (a lead in the future of its arrival) …
    let starts: Vec<u64> = reports
        .iter()
        .map(|r| r["raw"]["start_at_ms"].as_u64().expect("start_at_ms"))
        .collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
    let lead = START_LEAD.as_millis() as u64;
    assert!(
        (last_launch + lead..unix_ms()).contains(&starts[0]),
        "{starts:?}, last agent launched at {last_launch}"
    );
    // … and every agent's first intended send on it (one machine: no clock offset to speak of).
    for r in &reports {
        let first = r["raw"]["first_send_ms"].as_u64().expect("first_send_ms");
        assert!(first.abs_diff(starts[0]) <= 5, "{first} vs {}", starts[0]);
    }

    let merged = dir.path().join("merged.json");
    let mut args = vec!["merge"];
    args.extend(paths.iter().map(|p| p.to_str().expect("utf-8")));
    args.extend(["--json", merged.to_str().expect("utf-8"), "-t", "lost==0"]);
    let (code, _, stderr) = loadtest(&args);
    assert_eq!(code, 0, "{stderr}");
    let m = read_json(&merged);
    let d = &m["deliveries"];
    assert_eq!(d["expected"], EXPECTED, "{d}");
    assert_eq!(d["received"], EXPECTED, "{d}");
    for key in ["lost", "duplicated", "reordered", "foreign"] {
        assert_eq!(d[key], 0, "{key}: {d}");
    }
    assert_eq!(m["raw"]["start_at_ms"], starts[0]);

    // The id is spent: a late or repeated launch with it is refused at once, before connecting.
    let again = Instant::now();
    let (code, _, stderr) = loadtest(&[
        "--no-progress",
        "-c",
        "20",
        "-u",
        "5",
        "--barrier",
        &url,
        "--agents",
        "3",
        "--run-id",
        &id,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already started"), "{stderr}");
    assert!(again.elapsed() < Duration::from_secs(10));
    drop(keys);
}

#[test]
fn a_missing_agent_fails_within_the_timeout_with_exit_3() {
    let Some(url) = redis_or_skip() else { return };
    let id = run_id();
    let keys = Keys::of(&url, &id);
    let t0 = Instant::now();
    let (code, stdout, stderr) = loadtest(&[
        "--no-progress",
        "-s",
        SMOKE,
        "-c",
        "20",
        "-u",
        "5",
        "--barrier",
        &url,
        "--agents",
        "2",
        "--run-id",
        &id,
        "--barrier-timeout",
        "1s",
    ]);
    let took = t0.elapsed();
    assert_eq!(code, i32::from(loadtest::EXIT_BARRIER), "{stdout}{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_default();
    assert!(line.contains("barrier timed out after 1s"), "{stderr}");
    assert!(line.contains("1 of 2 agents ready"), "{line}");
    assert!(line.contains("never joined: 2/2"), "{line}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(15), "no hang: {took:?}");
    // Nothing was published and the agent gave its slot up: the id is reusable.
    assert!(stdout.is_empty(), "no report: {stdout}");
    assert_eq!(keys.slots(), Vec::<String>::new());
    let left: u64 = redis::cmd("EXISTS")
        .arg(&keys.names)
        .query(&mut keys.conn())
        .expect("EXISTS");
    assert_eq!(left, 0, "the last agent out removes the run's keys");
    drop(keys);
}

#[test]
fn two_agents_claiming_one_segment_are_refused() {
    let Some(url) = redis_or_skip() else { return };
    let id = run_id();
    let keys = Keys::of(&url, &id);
    // A first agent holds 1/2 (it waits for 2/2, which never comes) …
    let first = Command::new(BIN)
        .args(["--no-progress", "-s", SMOKE, "-c", "20", "-u", "5"])
        .args(["--segment", "1/2", "--barrier", &url, "--agents", "2"])
        .args(["--run-id", &id, "--barrier-timeout", "3s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while keys.slots().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(keys.slots(), ["1"]);
    // … so a second with the same segment is a usage error, and one with another N too.
    for (seg, agents, says) in [
        ("1/2", "2", "segment 1/2"),
        ("1/3", "3", "different --agents"),
    ] {
        let (code, _, stderr) = loadtest(&[
            "--no-progress",
            "-c",
            "20",
            "-u",
            "5",
            "--segment",
            seg,
            "--barrier",
            &url,
            "--agents",
            agents,
            "--run-id",
            &id,
        ]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let out = first.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3));
    drop(keys);
}

#[test]
fn barrier_flags_are_checked_before_any_io() {
    let plan = |args: &[&str]| {
        let opts =
            loadtest::Opts::parse_from(std::iter::once("loadtest").chain(args.iter().copied()));
        loadtest::Plan::from_opts(&opts)
    };
    // Nothing listens on port 1: none of these get as far as connecting.
    let url = "redis://127.0.0.1:1";
    let cases: &[(&[&str], &str)] = &[
        (&["--barrier", url, "--run-id", "x"], "--agents"),
        (&["--barrier", url, "--agents", "2"], "--run-id"),
        (
            &["--barrier", url, "--agents", "2", "--run-id", "a b"],
            "--run-id",
        ),
        (
            &[
                "--barrier",
                url,
                "--agents",
                "2",
                "--run-id",
                "x",
                "--segment",
                "1/3",
            ],
            "one agent per segment",
        ),
        (
            &[
                "--barrier",
                url,
                "--agents",
                "9",
                "--run-id",
                "x",
                "-c",
                "8",
                "-u",
                "8",
            ],
            "8 users",
        ),
        (
            &[
                "--barrier",
                url,
                "--agents",
                "2",
                "--run-id",
                "x",
                "--repeat",
                "2",
            ],
            "--repeat",
        ),
        (
            &["--barrier", "http://x", "--agents", "2", "--run-id", "x"],
            "--barrier",
        ),
    ];
    for (args, says) in cases {
        let e = plan(args).expect_err("refused");
        assert!(matches!(e, loadtest::Error::Usage(_)), "{args:?}: {e}");
        assert!(e.to_string().contains(says), "{args:?}: {e}");
    }
    let ok = plan(&["--barrier", url, "--agents", "2", "--run-id", "r-1.x_2"]).expect("plan");
    let b = ok.barrier.expect("barrier");
    assert_eq!(b.timeout, loadtest::plan::DEFAULT_BARRIER_TIMEOUT);
    assert!(b.key_ttl > ok.duration + b.timeout);
    // Mutually exclusive with --start-at, and its flags need --barrier: clap refuses (exit 2).
    let at = (unix_ms() + 5000).to_string();
    for args in [
        vec![
            "--barrier",
            url,
            "--agents",
            "2",
            "--run-id",
            "x",
            "--start-at",
            &at,
        ],
        vec!["--agents", "2"],
    ] {
        let (code, _, stderr) = loadtest(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
    // Redis unreachable: a setup error (exit 2), not a hang.
    let (code, _, stderr) = loadtest(&[
        "-c",
        "4",
        "-u",
        "2",
        "--barrier",
        url,
        "--agents",
        "2",
        "--run-id",
        "x",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Error: --barrier redis://127.0.0.1:1"),
        "{stderr}"
    );
}
