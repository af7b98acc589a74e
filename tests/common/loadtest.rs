//! Runs the load tester's binary against a server a test started (`cargo test` at the workspace
//! root builds it beside courier's).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// How to get the binary when [`binary`] finds none.
pub const HINT: &str = "run `cargo test` at the workspace root (it builds the loadtest binary)";

/// The `loadtest` binary beside courier's, if it was built.
pub fn binary() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_BIN_EXE_courier")).with_file_name("loadtest");
    path.exists().then_some(path)
}

/// What a run printed and reported.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The JSON report (`Value::Null` when none was written).
    pub report: Value,
}

/// Runs `binary` with `args` plus `--json` into `dir` and `--no-progress`.
pub async fn run(binary: &Path, dir: &Path, args: &[&str]) -> Run {
    let json = dir.join(format!("report-{}.json", uuid::Uuid::new_v4().simple()));
    let out = tokio::process::Command::new(binary)
        .args(args)
        .arg("--no-progress")
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .expect("run loadtest");
    let report = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}
