//! Helpers for the tests that need real services: Redis (shared or private) and PostgreSQL.
//!
//! A service that does not answer skips the test with a visible message, unless
//! `COURIER_REQUIRE_REDIS=1` (set by CI), which turns the skip into a failure.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod cluster;
pub mod python;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The shared Redis, `REDIS_URL` or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The PostgreSQL test database, `COURIER_TEST_PG_URL` or the local default (trust auth).
pub fn pg_url() -> String {
    std::env::var("COURIER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a missing service must fail the test (CI) rather than skip it.
pub fn required() -> bool {
    std::env::var("COURIER_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v == "true")
}

/// Skips (returns `false`, with a message) or fails when `what` is unavailable.
pub fn available(what: &str, ok: bool, detail: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        !required(),
        "{what} is required (COURIER_REQUIRE_REDIS=1) but unavailable: {detail}"
    );
    eprintln!("SKIPPED: {what} unavailable ({detail}); set COURIER_REQUIRE_REDIS=1 to make this a failure");
    false
}

/// `true` when Redis answers PING at `url` within a second.
pub async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Some(_))
    )
}

/// The shared Redis, if it answers (else skip/fail as [`available`] says).
pub async fn shared_redis() -> Option<String> {
    let url = redis_url();
    let ok = redis_answers(&url).await;
    available("Redis", ok, &url).then_some(url)
}

/// A key prefix no other test uses, so tests run in parallel on one Redis.
pub fn unique_prefix() -> String {
    format!(
        "courier-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A throwaway `redis-server` on a free port, killed by PID on drop. Never touches the shared one.
pub struct PrivateRedis {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Where it keeps `dump.rdb` (`SAVE` writes it, a restart loads it); `None`: nothing kept.
    dir: Option<std::path::PathBuf>,
}

impl PrivateRedis {
    /// Starts one on a free port, or `None` (skip/fail) when `redis-server` is not installed.
    pub async fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut redis = Self {
            child: None,
            port,
            dir: None,
        };
        let started = redis.spawn().await;
        available(
            "redis-server binary",
            started.is_ok(),
            &started.err().unwrap_or_default(),
        )
        .then_some(redis)
    }

    /// One that loads `dump.rdb` from a temporary directory on every (re)start: `SAVE` takes a
    /// snapshot, and a restart after a kill restores it — older than what was written since.
    pub async fn start_with_snapshots() -> Option<Self> {
        let mut redis = Self::start().await?;
        let dir = std::env::temp_dir().join(format!("courier-redis-{}", redis.port));
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        redis.dir = Some(dir);
        redis.restart().await;
        Some(redis)
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(dir) = &self.dir {
            cmd.arg("--dir").arg(dir);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.child = Some(child);
        for _ in 0..100 {
            if redis_answers(&self.url()).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("private redis-server did not answer".into())
    }

    /// Kills it (SIGKILL, by PID): connections drop at once, nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await.expect("private redis-server restarts");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
