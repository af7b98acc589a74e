//! The `courier` binary itself: flags and env reach the server, bad configuration is refused with
//! exit code 2, and SIGTERM closes every client with 1001 and exits 0.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A free loopback port (bound and released; the binary binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn courier() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    // Only what the test passes: no COURIER_* from the environment running the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("COURIER_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Waits (bounded) until the child accepts TCP connections on `addr`.
async fn wait_listening(child: &mut Child, addr: SocketAddr) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "courier exited before listening"
        );
        assert!(start.elapsed() < WAIT, "courier did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) for the child to exit and returns its exit code.
async fn wait_exit(child: &mut Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("courier did not exit");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_zero() {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = courier()
        .args(["--listen", &addr.to_string(), "--shutdown-timeout", "2s"])
        .env("COURIER_JWT_SECRET", SECRET)
        .spawn()
        .expect("spawn courier");
    wait_listening(&mut child, addr).await;

    let mut ws = ws_connect(addr, &token_for(json!("7"))).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "connection_established", "message": "Connected as 7", "user_id": 7})
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    expect_close(&mut ws, 1001, "going away").await;
    assert_eq!(
        wait_exit(&mut child).await,
        Some(0),
        "exit status after SIGTERM"
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_with_exit_code_2() {
    let cases: [(&[&str], &str); 3] = [
        (&[], "--jwt-secret"),
        (&["--jwt-secret", ""], "--jwt-secret"),
        (
            &["--jwt-secret", "s", "--max-connections", "0"],
            "--max-connections",
        ),
    ];
    for (args, mentions) in cases {
        let out = courier()
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run courier");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Error: configuration") && stderr.contains(mentions),
            "{args:?}: {stderr}"
        );
    }
}
