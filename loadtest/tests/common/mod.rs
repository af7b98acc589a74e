//! Helpers shared by the tests that run the `loadtest` binary.

#![allow(dead_code)] // each test file uses a part

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The smoke scenario (200 connections, 3 bursts; flags shrink it further).
pub const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");

/// Runs the binary: exit code, stdout, stderr.
pub fn loadtest(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .output()
        .expect("run loadtest");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a JSON file the binary wrote.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// A small embedded run (smoke, 40 connections of 10 users) writing its JSON report to `json`;
/// extra flags appended (not `-c`/`-u`: clap refuses a flag given twice).
pub fn small_run(json: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "-s",
        SMOKE,
        "-c",
        "40",
        "-u",
        "10",
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    loadtest(&args)
}
