//! `--segment K/N` + `--start-at` + `loadtest merge`: three tester processes share one run of the
//! smoke scenario against one courier, and the merged report accounts for it exactly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::External;
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_loadtest");
/// The smoke scenario: 50 users × 3 bursts × 5 events, 4 connections each.
const EXPECTED: u64 = 50 * 15 * 4;

fn loadtest(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run loadtest")
}

fn report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("report written");
    serde_json::from_str(&text).expect("valid json")
}

/// Runs segments `1..=n` of the smoke scenario at once against `server`; returns their reports.
fn run_segments(server: &External, n: usize, dir: &Path) -> Vec<PathBuf> {
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");
    let start_at =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock") + Duration::from_secs(3);
    let start_at = start_at.as_millis().to_string();
    let target = server.target();
    let paths: Vec<PathBuf> = (1..=n).map(|k| dir.join(format!("seg{k}.json"))).collect();
    let children: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let segment = format!("{}/{n}", i + 1);
            Command::new(BIN)
                .args(["--no-progress", "--scenario", smoke, "--target", &target])
                .args(["--jwt-secret", "s", "--api-key", "k", "--segment", &segment])
                .args(["--start-at", &start_at, "--json"])
                .arg(path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn a segment")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success(), "a segment failed");
    }
    paths
}

#[test]
fn three_segments_merge_into_one_exact_run() {
    let server = External::start("s", "k");
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = run_segments(&server, 3, dir.path());
    let segs: Vec<Value> = paths.iter().map(|p| report(p)).collect();
    // Each process took a disjoint third of the users and their connections.
    let users: Vec<u64> = segs
        .iter()
        .map(|r| r["users"].as_u64().expect("users"))
        .collect();
    assert_eq!(users, [16, 17, 17]);
    for (k, r) in segs.iter().enumerate() {
        assert_eq!(r["raw"]["segment"], format!("{}/3", k + 1));
        assert!(r["raw"]["latency_us"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
    }

    let merged_path = dir.path().join("merged.json");
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(paths.iter().map(|p| p.to_str().expect("utf-8")));
    args.extend([
        "--json",
        merged_path.to_str().expect("utf-8"),
        "-t",
        "received==3000",
    ]);
    let out = loadtest(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = report(&merged_path);
    assert_eq!(m["users"], 50);
    assert_eq!(m["connections"]["established"], 200);
    let d = &m["deliveries"];
    assert_eq!(d["expected"], EXPECTED, "{d}");
    assert_eq!(d["received"], EXPECTED, "{d}");
    // One courier served all three: overlapping users would show up as foreign or duplicated.
    for key in ["lost", "duplicated", "reordered", "foreign"] {
        assert_eq!(d[key], 0, "{key}: {d}");
    }
    // Histograms were added, not averaged: the merged one holds every delivery.
    let raw = m["raw"]["latency_us"].as_str().expect("raw");
    let h = loadtest::segment::decode(raw, "merged").expect("decodes");
    assert_eq!(h.len(), EXPECTED);
    assert_eq!(m["latency_us"]["max"], h.max());
    // Thresholds judge the merged run only: each segment alone received a third.
    assert_eq!(m["thresholds"][0]["expr"], "received==3000");
    assert_eq!(m["passed"], true);
    let seg_received: u64 = segs
        .iter()
        .map(|r| r["deliveries"]["received"].as_u64().expect("n"))
        .sum();
    assert_eq!(seg_received, EXPECTED);

    // A missing segment makes the merge partial (exit 1); a repeated one is refused (exit 2).
    let (one, two) = (
        paths[0].to_str().expect("utf-8"),
        paths[1].to_str().expect("utf-8"),
    );
    let partial = loadtest(&["merge", one, two, "--print-json"]);
    assert_eq!(partial.status.code(), Some(1));
    let p: Value = serde_json::from_slice(&partial.stdout).expect("json");
    assert!(
        p["partial"].as_str().is_some_and(|s| s.contains("3/3")),
        "{}",
        p["partial"]
    );
    let twice = loadtest(&["merge", one, one]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).starts_with("Error: "));
}

#[test]
fn bad_segments_are_usage_errors() {
    for bad in ["0/3", "4/3", "x"] {
        let out = loadtest(&["--segment", bad, "-c", "10", "-u", "5"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--segment"),
            "{bad}"
        );
    }
    let out = loadtest(&["--segment", "1/4", "-c", "3", "-u", "3"]);
    assert_eq!(out.status.code(), Some(2), "more segments than users");
    let out = loadtest(&["--start-at", "5", "-c", "3"]);
    assert_eq!(out.status.code(), Some(2), "seconds given for milliseconds");
}
