//! Servers in their own processes, for the tests that stop and start them: the courier binary
//! and a throwaway `redis-server`, each on a free port it keeps across restarts, each killed by
//! PID on drop (never by name; never the shared Redis on 6379).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_answers;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls until something accepts on 127.0.0.1:`port` (at most `bound`).
pub fn wait_port(port: u16, bound: Duration) -> bool {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The courier binary beside the tester's (built here if `cargo test -p loadtest` did not).
pub fn courier_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_loadtest")).with_file_name("courier");
    if !bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "courier", "--bin", "courier"])
            .status()
            .expect("cargo build");
        assert!(ok.success(), "building courier");
    }
    bin
}

/// A courier process on a fixed port, restartable there.
pub struct CourierProcess {
    child: Child,
    /// Where it listens.
    pub port: u16,
    args: Vec<String>,
}

impl CourierProcess {
    /// Starts `courier --listen 127.0.0.1:PORT ARGS…` on a free port and waits until it accepts.
    pub fn start(args: &[&str]) -> Self {
        let port = free_port();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let child = Self::spawn(port, &args);
        Self { child, port, args }
    }

    fn spawn(port: u16, args: &[String]) -> Child {
        let child = Command::new(courier_bin())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn courier");
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "courier on {port}"
        );
        child
    }

    /// The `ws://` URL of its notifications endpoint.
    pub fn target(&self) -> String {
        format!("ws://127.0.0.1:{}/ws/notifications/", self.port)
    }

    /// SIGTERM (a graceful stop: close 1001 to every connection), waits for the exit, and starts
    /// it again on the same port; returns how long it was not listening.
    pub fn restart(&mut self) -> Duration {
        let down = Instant::now();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM to courier {pid}");
        let until = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < until, "courier {pid} did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Self::spawn(self.port, &self.args);
        down.elapsed()
    }
}

impl Drop for CourierProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway `redis-server` on a free port, killed by PID on drop (never the shared one).
pub struct PrivateRedis {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl PrivateRedis {
    /// Starts one, or `None` after printing why (unless Redis is required: then it fails).
    pub fn start() -> Option<Self> {
        let port = free_port();
        let child = match Self::spawn(port) {
            Ok(c) => c,
            Err(e) if std::env::var("COURIER_REQUIRE_REDIS").is_ok_and(|v| v == "1") => {
                panic!("redis-server: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: redis-server: {e}");
                return None;
            }
        };
        let redis = Self { child, port };
        redis.wait_up();
        Some(redis)
    }

    fn spawn(port: u16) -> std::io::Result<Child> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    fn wait_up(&self) {
        for _ in 0..100 {
            if redis_answers(&self.url()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server did not answer");
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL (an outage: nothing flushed, every connection cut), `down` away, then an empty
    /// Redis again on the same port.
    pub fn crash_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = Self::spawn(self.port).expect("redis-server again");
        self.wait_up();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
