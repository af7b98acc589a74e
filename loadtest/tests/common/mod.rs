//! Helpers shared by the tests that run the `loadtest` binary.

#![allow(dead_code)] // each test file uses a part

pub mod process;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
/// A run passed: exit 0, or exit 4 — passed, but marked tester limited (on a loaded 2-core box
/// the tester can fall behind its own schedule; what these tests check is delivery, not pace).
#[allow(dead_code)]
pub fn passed(code: i32, json: &Path) -> bool {
    code == 0 || (code == 4 && read_json(json)["tester_limit"]["limited"] == true)
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// A small embedded run (smoke, 40 connections of 10 users) writing its JSON report to `json`;
/// extra flags appended (not `-c`/`-u`: clap refuses a flag given twice).
pub fn small_run(json: &Path, extra: &[&str]) -> (i32, String, String) {
    loadtest(&small_args(json, extra))
}

/// The flags of [`small_run`]: smoke, 40 connections of 10 users, no progress, the JSON report
/// to `json`, then `extra`.
pub fn small_args<'a>(json: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
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
    args
}

/// `REDIS_URL`, default the local one.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `PING` over a raw socket (the loadtest crate has no Redis client of its own).
pub fn redis_answers(url: &str) -> bool {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    let Some(addr) = host_port.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
}

/// The Redis URL, or `None` after printing why the test is skipped.
pub fn redis_or_skip() -> Option<String> {
    let url = redis_url();
    if redis_answers(&url) {
        return Some(url);
    }
    if std::env::var("COURIER_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("Redis at {url} is unreachable and COURIER_REQUIRE_REDIS=1");
    }
    eprintln!("SKIPPED: Redis at {url} is unreachable (set REDIS_URL; COURIER_REQUIRE_REDIS=1 makes this a failure)");
    None
}

/// A courier server in its own runtime on its own thread: a separate server from the tester's view.
pub struct External {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl External {
    pub fn start(secret: &str, api_key: &str) -> Self {
        let mut config = courier::Config::new(secret);
        config.api_key = Some(api_key.into());
        Self::with_config(config)
    }

    /// A courier with this configuration (a channel layer, a token grace, …).
    pub fn with_config(config: courier::Config) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // A Redis layer spawns its tasks where the state is built: in the server's runtime.
        let state = {
            let _guard = rt.enter();
            courier::AppState::new(config).expect("state")
        };
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let stop = tokio_util::sync::CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                courier::server::run(listener, state, shutdown)
                    .await
                    .expect("serve");
            });
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The `ws://` URL of its notifications endpoint.
    pub fn target(&self) -> String {
        format!("ws://{}/ws/notifications/", self.addr)
    }
}

impl Drop for External {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
