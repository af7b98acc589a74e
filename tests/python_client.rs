//! Interop ("Done when" of issue 3): a client in another language — Python `websockets` with a
//! PyJWT token shaped like simplejwt's — gets exactly PROTOCOL.md's frames. The checks live in
//! `tests/peers/python-client-check.py`; this test runs them against a server on port 0.
//!
//! The Python packages go into a venv under the cargo target dir. Without python3 or PyPI the test
//! is skipped with a visible message, unless `CI=true`, where a skip would hide a regression.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::process::Command;

const PIP_TIMEOUT: Duration = Duration::from_secs(180);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command with a timeout; `Ok(stdout)` on success, `Err(description)` otherwise.
async fn run(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = child.map_err(|e| format!("{what}: {e}"))?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| format!("{what}: timed out after {limit:?}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{what}: {}\n{text}", out.status))
    }
}

/// A python with `websockets` and `jwt` importable: the venv's, created and filled if needed.
async fn python_with_deps() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-client-venv");
    let python = venv.join("bin").join("python");
    let has_deps = |p: &Path| {
        let mut c = Command::new(p);
        c.args(["-c", "import websockets.asyncio.client, jwt"]);
        c
    };
    if run(&mut has_deps(&python), SCRIPT_TIMEOUT).await.is_ok() {
        return Ok(python);
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        PIP_TIMEOUT,
    )
    .await?;
    let pip = [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "websockets>=13",
        "PyJWT>=2",
    ];
    run(Command::new(&python).args(pip), PIP_TIMEOUT).await?;
    run(&mut has_deps(&python), SCRIPT_TIMEOUT).await?;
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_gets_the_protocol_frames() {
    let python = match python_with_deps().await {
        Ok(p) => p,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED python interop check (python3/PyPI unavailable; set CI=true to fail):\n{e}");
            return;
        }
        Err(e) => panic!("python interop check cannot run under CI=true: {e}"),
    };
    let srv = spawn_server(config()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/python-client-check.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--url", &srv.ws_url()])
        .args(["--http", &format!("http://{}", srv.addr)])
        .args(["--secret", SECRET, "--api-key", API_KEY]);
    match run(&mut cmd, SCRIPT_TIMEOUT).await {
        Ok(out) => {
            eprintln!("{out}");
            assert!(out.contains("all checks passed"), "{out}");
        }
        Err(e) => panic!("python client check failed:\n{e}"),
    }
    srv.stop().await;
}
