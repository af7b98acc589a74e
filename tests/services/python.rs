//! The Django-side peer of the interop tests: the real channels_redis (PyPI) in the venv
//! `tests/peers/venv.sh` creates, driven through `tests/peers/channels_peer.py`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use courier::config::LayerKind;
use tokio::process::{Child, Command};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The venv's python, created once per test binary (tests run in parallel threads). Without
/// python3/PyPI: `None` with a visible skip, unless `CI` or `COURIER_REQUIRE_REDIS=1` is set,
/// which makes that a failure.
pub fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(format!("{ROOT}/tests/peers/venv.sh"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(
                !ci && !super::required(),
                "channels_redis venv is required in CI but could not be made: {e}"
            );
            eprintln!("SKIPPED: no Python with channels_redis ({e}); run tests/peers/venv.sh");
            None
        }
    }
}

/// `channels_peer.py MODE --layer core|pubsub --url U… --prefix P`, stdout piped, killed on drop.
/// `urls` are the layer's `hosts`, in order.
pub fn peer(
    python: &PathBuf,
    mode: &str,
    kind: LayerKind,
    urls: &[String],
    prefix: &str,
) -> Command {
    let layer = if kind == LayerKind::RedisCore {
        "core"
    } else {
        "pubsub"
    };
    let mut cmd = Command::new(python);
    cmd.arg(format!("{ROOT}/tests/peers/channels_peer.py"))
        .args([mode, "--layer", layer, "--prefix", prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for url in urls {
        cmd.args(["--url", url]);
    }
    cmd
}

/// Waits (bounded) for a peer to exit and asserts it succeeded.
pub async fn exits_ok(mut child: Child) {
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("peer exits")
        .expect("wait");
    assert!(status.success(), "peer failed: {status}");
}
