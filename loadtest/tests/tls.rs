//! `wss://` targets and `https://` publish and metrics URLs, through a TLS-terminating proxy in
//! front of a plain courier, with a private CA made at test time: a verified run delivers
//! everything; a certificate from another CA or for another name stops the run with a clear
//! error (exit 2) unless `--insecure`, which every report format then marks.

mod common;

use std::path::Path;

use common::tls::{Ca, TlsProxy};
use common::{loadtest, read_json, small_args, External};
use serde_json::Value;

const SECRET: &str = "tls-secret";
const KEY: &str = "tls-key";

/// A courier, a proxy in front of it with `cert_names` signed by `signer`, and the CA file of
/// `trusted` written into `dir`.
fn setup(
    signer: &Ca,
    cert_names: &[&str],
    trusted: &Ca,
    dir: &Path,
) -> (External, TlsProxy, String) {
    let server = External::start(SECRET, KEY);
    let proxy = TlsProxy::start(server.addr, &signer.server_cert(cert_names));
    let ca = trusted.write_pem(dir);
    (server, proxy, ca.to_str().expect("utf-8").to_owned())
}

/// A small run (40 connections, 10 users) against `target` with `extra` flags.
fn run(target: &str, dir: &Path, extra: &[&str]) -> (i32, String, String, std::path::PathBuf) {
    let json = dir.join("report.json");
    let mut flags = vec!["--target", target, "--jwt-secret", SECRET, "--api-key", KEY];
    flags.extend_from_slice(extra);
    let args = small_args(&json, &flags);
    let (code, out, err) = loadtest(&args);
    (code, out, err, json)
}

fn assert_everything_delivered(r: &Value) {
    let d = &r["deliveries"];
    assert_eq!(r["connections"]["established"], 40, "{}", r["connections"]);
    assert!(d["expected"].as_u64().unwrap_or(0) > 0, "{d}");
    assert_eq!(d["received"], d["expected"], "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(r["publisher"], "http");
}

#[test]
fn wss_and_https_with_a_private_ca_deliver_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("loadtest test CA");
    let (server, proxy, ca_file) = setup(&ca, &["127.0.0.1", "localhost"], &ca, dir.path());
    let metrics = format!("https://{}/metrics", proxy.addr);
    let (code, out, err, json) = run(
        &proxy.target(),
        dir.path(),
        &["--ca-cert", &ca_file, "--server-metrics", &metrics],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let r = read_json(&json);
    assert_everything_delivered(&r);
    let tls = &r["tls"];
    assert_eq!(tls["insecure"], false, "{tls}");
    assert!(
        tls["trust"].as_str().unwrap_or("").contains("--ca-cert"),
        "{tls}"
    );
    let p50 = tls["handshake_ms"]["p50"].as_f64().unwrap_or(0.0);
    assert!(p50 > 0.0, "TLS handshake latency is measured: {tls}");
    assert!(
        r["connections"]["handshake_ms"]["p50"]
            .as_f64()
            .unwrap_or(0.0)
            >= p50,
        "the WebSocket handshake includes the TLS one"
    );
    // The https:// scrapes saw the run's connections through the proxy.
    assert!(r["server_metrics"].is_object(), "{}", r["server_metrics"]);
    assert!(r["tester"]["delivery_cpu_seconds"].as_f64().is_some());
    assert!(out.contains("TLS           handshake p50"), "{out}");
    assert!(
        out.contains("ns / delivery"),
        "tester CPU per delivery: {out}"
    );
    assert!(!out.contains("INSECURE"), "{out}");
    drop((proxy, server));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (trusted, other) = (Ca::new("trusted CA"), Ca::new("another CA"));
    let (server, proxy, ca_file) = setup(&other, &["127.0.0.1"], &trusted, dir.path());
    let (code, out, err, json) = run(&proxy.target(), dir.path(), &["--ca-cert", &ca_file]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Error: --target wss://"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(
        err.contains("--ca-cert FILE"),
        "the error says what to do: {err}"
    );
    assert!(!json.exists(), "no run, no report");

    // Without --ca-cert the built-in roots do not know a private CA either.
    let (code, _, err, _) = run(&proxy.target(), dir.path(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    drop((proxy, server));
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("loadtest test CA");
    let (server, proxy, ca_file) = setup(&ca, &["courier.example", "10.9.8.7"], &ca, dir.path());
    let (code, out, err, _) = run(&proxy.target(), dir.path(), &["--ca-cert", &ca_file]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Error: --target wss://"), "{err}");
    assert!(
        err.contains("not valid for name \"127.0.0.1\""),
        "the error names the address the certificate lacks: {err}"
    );
    assert!(
        err.contains("connect by a name or address the certificate carries"),
        "{err}"
    );
    drop((proxy, server));
}

#[test]
fn insecure_accepts_any_certificate_and_every_report_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (trusted, other) = (Ca::new("trusted CA"), Ca::new("another CA"));
    let (server, proxy, _) = setup(&other, &["courier.example"], &trusted, dir.path());
    let (md, junit, html) = (
        dir.path().join("r.md"),
        dir.path().join("r.xml"),
        dir.path().join("r.html"),
    );
    let (code, out, err, json) = run(
        &proxy.target(),
        dir.path(),
        &[
            "--insecure",
            "--markdown",
            md.to_str().expect("utf-8"),
            "--junit",
            junit.to_str().expect("utf-8"),
            "--html",
            html.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let r = read_json(&json);
    assert_everything_delivered(&r);
    assert_eq!(r["tls"]["insecure"], true, "{}", r["tls"]);
    assert!(out.contains("INSECURE      --insecure"), "{out}");
    let read = |p: &Path| std::fs::read_to_string(p).expect("report file");
    assert!(read(&md).contains("**Insecure:** --insecure"));
    assert!(
        read(&junit).contains("name=\"TLS certificate verified\"><skipped message=\"--insecure")
    );
    assert!(read(&html).contains("<td>insecure</td><td class=\"FAIL\">--insecure"));
    drop((proxy, server));
}

#[test]
fn tls_flags_without_a_tls_url_are_refused() {
    let server = External::start(SECRET, KEY);
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err, _) = run(&server.target(), dir.path(), &["--insecure"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("apply to wss:// and https:// URLs"), "{err}");
    let missing = dir.path().join("missing.pem");
    let proxy_less = format!("wss://{}/ws/notifications/", server.addr);
    let (code, _, err, _) = run(
        &proxy_less,
        dir.path(),
        &["--ca-cert", missing.to_str().expect("utf-8")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--ca-cert") && err.contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn conform_passes_over_wss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("loadtest test CA");
    let (server, proxy, ca_file) = setup(&ca, &["127.0.0.1"], &ca, dir.path());
    let target = proxy.target();
    let (code, out, err) = loadtest(&[
        "conform",
        "--target",
        &target,
        "--jwt-secret",
        SECRET,
        "--api-key",
        KEY,
        "--ca-cert",
        &ca_file,
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains(" 0 failed"), "{out}");
    assert!(out.contains("PASS  connection_established"), "{out}");

    // A certificate it does not trust stops the suite once, before any check.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("mkdir");
    let other = Ca::new("another CA").write_pem(&other_dir);
    let (code, out, err) = loadtest(&[
        "conform",
        "--target",
        &target,
        "--jwt-secret",
        SECRET,
        "--ca-cert",
        other.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    drop((proxy, server));
}

#[test]
fn merged_segments_keep_the_tls_handshakes_and_the_insecure_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("loadtest test CA");
    let (server, proxy, ca_file) = setup(&ca, &["127.0.0.1"], &ca, dir.path());
    let mut reports = Vec::new();
    for (k, flags) in [
        ("1/2", vec!["--ca-cert", &ca_file]),
        ("2/2", vec!["--insecure"]),
    ] {
        let seg_dir = dir.path().join(k.replace('/', "of"));
        std::fs::create_dir(&seg_dir).expect("mkdir");
        let mut extra = vec!["--segment", k];
        extra.extend_from_slice(&flags);
        let (code, out, err, json) = run(&proxy.target(), &seg_dir, &extra);
        assert_eq!(code, 0, "segment {k}:\n{out}\n{err}");
        reports.push(json.to_str().expect("utf-8").to_owned());
    }
    let (code, out, err) = loadtest(&["merge", &reports[0], &reports[1], "--print-json"]);
    assert_eq!(code, 0, "{err}");
    let m: Value = serde_json::from_str(&out).expect("json");
    let tls = &m["tls"];
    assert_eq!(
        tls["insecure"], true,
        "one insecure segment marks the run: {tls}"
    );
    let trust = tls["trust"].as_str().unwrap_or("");
    assert!(
        trust.contains("--ca-cert") && trust.contains("--insecure"),
        "{trust}"
    );
    assert!(
        tls["handshake_ms"]["p50"].as_f64().unwrap_or(0.0) > 0.0,
        "{tls}"
    );
    assert!(
        m["raw"]["tls_handshake_us"].is_string(),
        "merged histogram kept"
    );
    drop((proxy, server));
}
