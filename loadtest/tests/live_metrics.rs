//! `--metrics-listen`: the tester's own Prometheus endpoint answers during a run with values that
//! move, and ends with the JSON report's figures; a bad address is a clear usage error.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{loadtest, read_json, small_args, SMOKE};

/// Longest wait for any step of a run (generous for a loaded 2-core box).
const PATIENCE: Duration = Duration::from_secs(30);

/// The binary in the background, its stderr lines on a channel.
fn spawn(args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadtest");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The first stderr line containing `needle`.
fn line_with(rx: &Receiver<String>, needle: &str) -> String {
    let until = Instant::now() + PATIENCE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no stderr line with {needle:?}: {e}"),
        }
    }
}

/// The address in `metrics: serving http://ADDR/metrics`.
fn served_at(rx: &Receiver<String>) -> SocketAddr {
    let line = line_with(rx, "metrics: serving http://");
    let rest = line.split("http://").nth(1).expect("url");
    rest.trim_end_matches("/metrics").parse().expect("addr")
}

/// One `GET path` over a fresh socket: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

/// A scrape: every sample by name (labels included).
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// Waits for the tester to exit after its linger: a pass, or a pass the loaded machine held back
/// (`EXIT_TESTER_LIMITED`), never an error.
fn wait_exit(child: &mut Child) {
    let code = exit_code(child);
    let ok = [loadtest::EXIT_PASS, loadtest::EXIT_TESTER_LIMITED].map(i32::from);
    assert!(ok.contains(&code), "exit code {code}");
}

fn exit_code(child: &mut Child) -> i32 {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < until, "the tester did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn endpoint_moves_during_the_run_and_ends_at_the_reports_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    // 40 connections of 10 users, 300 events/s for 3 s: ~3,600 deliveries spread over 3 s.
    let (mut child, rx) = spawn(&small_args(
        &json,
        &[
            "--model",
            "rate",
            "--rate",
            "300",
            "--rate-duration",
            "3s",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-linger",
            "2s",
        ],
    ));
    let addr = served_at(&rx);

    // While it runs: deliveries rise between scrapes.
    let mut running = Vec::new();
    let until = Instant::now() + PATIENCE;
    while running.len() < 3 && Instant::now() < until {
        let m = scrape(addr);
        if m["loadtest_run_finished"] == 1.0 {
            break;
        }
        if m["loadtest_deliveries_total"] > running.last().copied().unwrap_or(0.0) {
            running.push(m["loadtest_deliveries_total"]);
            assert!(m["loadtest_events_published_total"] > 0.0, "{m:?}");
            assert_eq!(m["loadtest_connections_established_total"], 40.0);
            assert_eq!(m["loadtest_connections_open"], 40.0);
            assert_eq!(
                m["loadtest_delivery_latency_seconds_count"],
                m["loadtest_deliveries_total"]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        running.len() >= 2 && running.windows(2).all(|w| w[0] < w[1]),
        "deliveries rising during the run: {running:?}"
    );
    let (status, _) = get(addr, "/nope");
    assert_eq!(status, 404);

    // After it: the report's figures, served while the tester lingers.
    line_with(&rx, "metrics: run finished");
    let m = scrape(addr);
    let r = read_json(&json);
    let num = |v: &serde_json::Value| v.as_u64().expect("a count") as f64;
    assert_eq!(m["loadtest_run_finished"], 1.0);
    assert_eq!(m["loadtest_runs_started_total"], 1.0);
    assert_eq!(
        m["loadtest_deliveries_total"],
        num(&r["deliveries"]["received"])
    );
    assert!(m["loadtest_deliveries_total"] >= *running.last().expect("a scrape"));
    assert_eq!(
        m["loadtest_events_published_total"],
        num(&r["events"]["published"])
    );
    assert_eq!(m["loadtest_lost"], num(&r["deliveries"]["lost"]));
    assert_eq!(
        m["loadtest_duplicates_total"],
        num(&r["deliveries"]["duplicated"])
    );
    assert_eq!(
        m["loadtest_connections_attempted_total"],
        num(&r["connections"]["attempted"])
    );
    assert_eq!(m["loadtest_connections_open"], 0.0);
    assert_eq!(m["loadtest_publish_errors_total"], 0.0);
    let count = m["loadtest_delivery_latency_seconds_count"];
    assert_eq!(count, num(&r["deliveries"]["received"]));
    assert_eq!(
        m["loadtest_delivery_latency_seconds_bucket{le=\"+Inf\"}"],
        count
    );
    // The report's p50 (µs) lies in the first bucket holding half the deliveries, or below it.
    let p50_s = num(&r["latency_us"]["p50"]) / 1e6;
    let half = m
        .iter()
        .filter(|(k, v)| k.contains("_bucket{le=") && !k.contains("+Inf") && **v >= count / 2.0)
        .filter_map(|(k, _)| k.split('"').nth(1)?.parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    assert!(
        p50_s <= half * 1.001,
        "p50 {p50_s}s above the bucket {half}s"
    );
    wait_exit(&mut child);
}

#[test]
fn silent_scrapers_neither_stall_the_run_nor_keep_the_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let (mut child, rx) = spawn(&small_args(
        &json,
        &["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "5s"],
    ));
    let addr = served_at(&rx);
    // More silent connections than the endpoint serves at once: each is cut after its header
    // bound, and the run goes on regardless.
    let silent: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    line_with(&rx, "metrics: run finished");
    let m = scrape(addr);
    assert_eq!(m["loadtest_run_finished"], 1.0);
    let r = read_json(&json);
    assert_eq!(r["passed"], true, "{r}");
    drop(silent);
    wait_exit(&mut child);
}

#[test]
fn a_bad_address_is_a_usage_error_and_a_taken_port_a_setup_error() {
    let (code, _, stderr) = loadtest(&["-s", SMOKE, "--metrics-listen", "localhost:9464"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--metrics-listen \"localhost:9464\": not an IP:PORT"),
        "{stderr}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = taken.local_addr().expect("addr").to_string();
    let (code, _, stderr) = loadtest(&["-s", SMOKE, "--metrics-listen", &at]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-listen {at}: cannot listen")),
        "{stderr}"
    );
    let (code, _, stderr) = loadtest(&["-s", SMOKE, "--metrics-linger", "5s"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--metrics-linger needs --metrics-listen"),
        "{stderr}"
    );
}

#[test]
fn churn_and_repeat_runs_end_at_the_last_reports_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let (mut child, rx) = spawn(&small_args(
        &json,
        &[
            "--model",
            "rate",
            "--rate",
            "300",
            "--rate-duration",
            "2s",
            "--churn-fraction",
            "0.25",
            "--churn-every",
            "500ms",
            "--churn-away",
            "100ms..200ms",
            "--repeat",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-linger",
            "2s",
        ],
    ));
    let addr = served_at(&rx);
    line_with(&rx, "metrics: run finished");
    let m = scrape(addr);
    let r = read_json(&json);
    let num = |v: &serde_json::Value| v.as_u64().expect("a count") as f64;
    assert_eq!(m["loadtest_runs_started_total"], 2.0);
    assert_eq!(m["loadtest_run_finished"], 1.0);
    // The report of a --repeat run carries its last run's figures (and the medians beside them).
    assert_eq!(
        m["loadtest_deliveries_total"],
        num(&r["deliveries"]["received"])
    );
    assert_eq!(m["loadtest_lost"], num(&r["deliveries"]["lost"]));
    assert_eq!(
        m["loadtest_resyncs_total"],
        num(&r["deliveries"]["resyncs"])
    );
    let churn = &r["churn"];
    assert!(num(&churn["drops"]) > 0.0, "{churn}");
    assert_eq!(
        m["loadtest_churn_recovered_total"],
        num(&churn["recovered"])
    );
    assert_eq!(m["loadtest_churn_lost_silent"], num(&churn["lost_silent"]));
    wait_exit(&mut child);
}
