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

/// Runs segments `1..=n` of the smoke scenario at once, segment K against `servers[K-1]`'s
/// target with `extra[K-1]`'s flags; returns their reports.
fn run_segments(servers: &[&External], extra: &[Vec<String>], dir: &Path) -> Vec<PathBuf> {
    let n = servers.len();
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");
    let start_at =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock") + Duration::from_secs(3);
    let start_at = start_at.as_millis().to_string();
    let paths: Vec<PathBuf> = (1..=n).map(|k| dir.join(format!("seg{k}.json"))).collect();
    let children: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let segment = format!("{}/{n}", i + 1);
            Command::new(BIN)
                .args(["--no-progress", "--scenario", smoke, "--target"])
                .arg(servers[i].target())
                .args(["--jwt-secret", "s", "--api-key", "k", "--segment", &segment])
                .args(["--start-at", &start_at, "--json"])
                .arg(path)
                .args(extra.get(i).into_iter().flatten())
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
    let paths = run_segments(&[&server; 3], &[], dir.path());
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
    let h = loadtest::measure::decode(raw, "merged").expect("decodes");
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
fn the_merged_report_keeps_each_process_figures() {
    // Segment 1 has a courier of its own, watched (`--server-pid`: this test process, where the
    // couriers run; `--server-metrics`); segments 2 and 3 share another, unwatched.
    let (watched, other) = (External::start("s", "k"), External::start("s", "k"));
    let metrics = format!("http://{}/metrics", watched.addr);
    let pid = std::process::id().to_string();
    let extra = vec![vec![
        "--server-pid".to_string(),
        pid,
        "--server-metrics".into(),
        metrics,
    ]];
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = run_segments(&[&watched, &other, &other], &extra, dir.path());
    let segs: Vec<Value> = paths.iter().map(|p| report(p)).collect();
    let (json, md) = (dir.path().join("m.json"), dir.path().join("m.md"));
    let html = dir.path().join("m.html");
    // Given in reverse: the rows come out by segment.
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(paths.iter().rev().map(|p| p.to_str().expect("utf-8")));
    args.extend(["--json", json.to_str().expect("utf-8")]);
    args.extend(["--markdown", md.to_str().expect("utf-8")]);
    args.extend(["--html", html.to_str().expect("utf-8")]);
    let out = loadtest(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = report(&json);
    let rows = m["per_process"].as_array().expect("per_process");
    assert_eq!(rows.len(), 3, "{m:#}");
    let mut total = 0;
    for (k, (row, seg)) in rows.iter().zip(&segs).enumerate() {
        let received = seg["deliveries"]["received"].as_u64().expect("received");
        assert_eq!(row["segment"], format!("{}/3", k + 1));
        assert_eq!(row["target"], seg["target"]);
        assert_eq!(row["deliveries"], received);
        assert_eq!(row["lost"], 0);
        assert_eq!(
            row["deliveries_per_sec"],
            seg["throughput"]["deliveries_per_sec"]
        );
        let p99 = seg["latency_us"]["p99"].as_f64().expect("p99") / 1000.0;
        assert_eq!(row["p99_ms"].as_f64(), Some(p99));
        let tester = seg["tester"]["delivery_cpu_seconds"].as_f64().expect("cpu");
        let ns = row["tester_ns_per_delivery"].as_f64().expect("tester ns");
        assert!((ns - tester * 1e9 / received as f64).abs() < 1e-6, "{row}");
        total += received;
    }
    assert_eq!(total, EXPECTED);
    // The totals stay beside the rows: the tester's delivery CPU adds up over the processes.
    let tester_sum: f64 = segs
        .iter()
        .map(|r| r["tester"]["delivery_cpu_seconds"].as_f64().expect("cpu"))
        .sum();
    let merged_tester = m["tester"]["delivery_cpu_seconds"].as_f64().expect("cpu");
    assert!(
        (merged_tester - tester_sum).abs() < 1e-9,
        "{merged_tester} vs {tester_sum}"
    );
    // Server figures only where that process could see its server.
    let watched_row = &rows[0];
    let server_cpu = segs[0]["server"]["delivery_cpu_seconds"]
        .as_f64()
        .expect("cpu");
    let ns = watched_row["server_ns_per_delivery"]
        .as_f64()
        .expect("server ns");
    let received = watched_row["deliveries"].as_f64().expect("n");
    assert!(
        (ns - server_cpu * 1e9 / received).abs() < 1e-6,
        "{watched_row}"
    );
    assert_eq!(
        watched_row["server_rss_bytes"],
        segs[0]["server"]["rss_bytes"]
    );
    assert!(watched_row["server_rss_bytes"]
        .as_u64()
        .is_some_and(|b| b > 0));
    assert_eq!(
        watched_row["server_metrics_agree"], true,
        "{:#}",
        segs[0]["server_metrics"]
    );
    for row in &rows[1..] {
        for key in [
            "server_ns_per_delivery",
            "server_rss_bytes",
            "server_metrics_agree",
        ] {
            assert!(row[key].is_null(), "{key}: {row}");
        }
    }
    // The text and Markdown summaries show the same rows beside the totals.
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Per process")
        .skip(2)
        .take(3)
        .collect();
    assert_eq!(table.len(), 3, "{text}");
    for (row, line) in rows.iter().zip(&table) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], row["segment"].as_str().expect("segment"), "{line}");
        assert_eq!(cols[1], row["deliveries"].to_string(), "{line}");
        assert_eq!(
            cols[4],
            format!("{:.2}", row["p99_ms"].as_f64().expect("p99")),
            "{line}"
        );
    }
    assert!(
        table[0].contains("MiB") && table[0].contains("agree"),
        "{}",
        table[0]
    );
    assert!(table[1].contains(" - "), "{}", table[1]);
    let md = std::fs::read_to_string(&md).expect("markdown");
    let md_rows: Vec<&str> = md
        .lines()
        .skip_while(|l| *l != "### Per process")
        .skip(4) // the heading, a blank line, the header and its rule
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(md_rows.len(), 3, "{md}");
    assert!(
        md_rows[0].starts_with("| 1/3 |") && md_rows[0].contains("MiB"),
        "{md}"
    );
    // … and so does the HTML report: a header row and one row per process, in segment order.
    let html = std::fs::read_to_string(&html).expect("html");
    let section = html
        .split("<h2>Per process</h2>")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no per-process table: {html}"));
    let html_rows: Vec<&str> = section.split("<tr>").skip(2).collect();
    assert_eq!(html_rows.len(), 3, "{section}");
    for (k, row) in html_rows.iter().enumerate() {
        assert!(row.starts_with(&format!("<td>{}/3</td>", k + 1)), "{row}");
    }
    assert!(
        html_rows[0].contains("MiB") && html_rows[0].contains("agree"),
        "{section}"
    );
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
