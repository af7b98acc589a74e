//! The usual deployment, tested: nginx (`docs/deploy/nginx.conf`) terminating TLS in front of two
//! courier processes (`docs/deploy/courier*.env`) on the redis-pubsub layer. A `wss://` client
//! is greeted through nginx, gets what either courier publishes, is limited per forwarded address,
//! and sees the graceful stop's 1001; the documented unit and kernel settings agree with courier.
//!
//! Skipped with a message without `nginx` or Redis, a failure under `COURIER_REQUIRE_REDIS=1`.

mod common;
mod services;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::nginx::{deploy_dir, env_file, missing, Deployment, Wss};
use common::{metric, next_json, next_message, post_json, token_for, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// The deployment on the shared Redis under a private prefix, or `None` (skipped).
async fn deployment() -> Option<Deployment> {
    let why = missing();
    if !services::available("nginx", why.is_none(), &why.unwrap_or_default()) {
        return None;
    }
    let url = services::shared_redis().await?;
    Some(Deployment::start(&url, &services::unique_prefix()).await)
}

/// The path of the notifications endpoint with a token for `user`.
fn ws_path(user: u64) -> String {
    format!("/ws/notifications/?token={}", token_for(json!(user)))
}

/// Publishes `kind` to `user` through courier `n`'s own API until `ws` receives it (the pub/sub
/// subscription of a new connection takes a moment to reach the other courier).
async fn until_received(dep: &Deployment, n: usize, user: u64, ws: &mut Wss, kind: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let body = json!({"user_id": user, "type": kind, "data": {"from": n}});
        let r = post_json(dep.couriers[n].addr, "/api/notify", &body).await;
        assert_eq!(r.status, 202, "{r:?}");
        let got = tokio::time::timeout(Duration::from_millis(200), next_json(ws)).await;
        if let Ok(frame) = got {
            assert_eq!(frame, json!({"type": kind, "data": {"from": n}}));
            return;
        }
    }
    panic!("what courier {n} published never reached the client through nginx");
}

/// One HTTPS request through nginx; the status code.
async fn https_status(dep: &Deployment, method: &str, path: &str) -> u16 {
    let mut tls = dep.tls_from(Ipv4Addr::LOCALHOST).await;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        dep.https
    );
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    // nginx closes without a TLS close_notify sometimes; what was read is enough.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"))
}

/// A counter summed over both couriers' `/metrics` (admin listeners).
async fn counter(dep: &Deployment, series: &str) -> f64 {
    let mut sum = 0.0;
    for c in &dep.couriers {
        sum += metric(&common::metrics(c.admin).await, series).unwrap_or(0.0);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_nginx_reaches_both_couriers_and_each_forwarded_client_is_limited() {
    let Some(dep) = deployment().await else {
        return;
    };
    let client = Ipv4Addr::new(127, 0, 0, 2);
    let mut ws = dep
        .wss_from(client, &ws_path(31), &[])
        .await
        .expect("through nginx");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    assert_eq!(hello["user_id"], 31);
    // Whichever courier nginx picked, what either publishes arrives (one of them over Redis).
    until_received(&dep, 0, 31, &mut ws, "from_first").await;
    until_received(&dep, 1, 31, &mut ws, "from_second").await;

    // The publish API and /metrics are not exposed through nginx.
    assert_eq!(https_status(&dep, "POST", "/api/notify").await, 404);
    assert_eq!(https_status(&dep, "GET", "/metrics").await, 404);

    // Per-IP limit: client 127.0.0.3 (forwarded by nginx, whose own address is trusted) spends
    // its budget on both couriers; its claim to be someone else changes nothing.
    let env: Vec<_> = env_file("courier.env");
    let burst: usize = env
        .iter()
        .find(|(k, _)| k == "COURIER_HANDSHAKE_BURST_PER_IP")
        .and_then(|(_, v)| v.parse().ok())
        .expect("the documented burst");
    let limited = Ipv4Addr::new(127, 0, 0, 3);
    let spoof = [("X-Forwarded-For", "198.51.100.1")];
    let mut open = Vec::new();
    let refused_at = loop {
        let n = open.len();
        assert!(
            n <= 3 * burst,
            "no 429 after {n} handshakes from one client"
        );
        match dep
            .wss_from(limited, &ws_path(100 + n as u64), &spoof)
            .await
        {
            Ok(ws) => open.push(ws),
            Err(status) => {
                assert_eq!(status, 429, "refused with {status}");
                break n;
            }
        }
    };
    // At least one courier's burst first; at most both bursts plus what refilled meanwhile.
    assert!(
        (burst..=2 * burst + 10).contains(&refused_at),
        "429 after {refused_at} handshakes (burst {burst} per courier)"
    );
    // Another client through the same nginx has its own budget; so does the spoofed address.
    let other = Ipv4Addr::new(127, 0, 0, 4);
    let mut ws_other = dep
        .wss_from(other, &ws_path(200), &[])
        .await
        .expect("other client");
    assert_eq!(
        next_json(&mut ws_other).await["type"],
        "connection_established"
    );
    assert_eq!(
        counter(&dep, "courier_handshake_refusals_total{reason=\"ip_rate\"}").await,
        1.0
    );
    assert_eq!(counter(&dep, "courier_forwarded_invalid_total").await, 0.0);
    // The refusal is logged with the forwarded client's address, not nginx's or the spoofed one.
    let logs = dep.courier_logs();
    let refusal = logs
        .lines()
        .find(|l| l.contains("websocket handshake refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{logs}"));
    assert!(refusal.contains(r#""client":"127.0.0.3""#), "{refusal}");
    // Clients that stop reading would hold the stop for --close-linger; these leave first.
    drop(open);
    drop(ws_other);

    // SIGTERM (systemd's stop): the client through nginx is told 1001 going away.
    let stop = tokio::spawn(dep.stop());
    let closed = loop {
        match next_message(&mut ws).await {
            Message::Close(frame) => break frame,
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                assert!(
                    v["type"].as_str().is_some_and(|t| t.starts_with("from_")),
                    "{v}"
                );
            }
            other => panic!("unexpected frame {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    drop(ws);
    tokio::time::timeout(Duration::from_secs(30), stop)
        .await
        .expect("deployment stopped")
        .expect("stop did not panic");
}

/// The value of `key` in a `key value;`-style or `key=value` line of a documented file.
fn setting(file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(deploy_dir().join(file)).expect(file);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let rest = l.strip_prefix(key)?;
            let rest = rest.trim_start_matches([' ', '=']);
            Some(rest.trim_end_matches(';').trim().to_owned())
        })
        .unwrap_or_else(|| panic!("docs/deploy/{file} has no {key}"))
}

fn seconds(value: &str) -> Duration {
    humantime::parse_duration(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

#[test]
fn the_documented_timeouts_and_limits_agree_with_courier() {
    use courier::config::{DEFAULT_CLOSE_LINGER, DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT};
    // nginx must not close a healthy idle WebSocket: courier's ping and the pong cross it first.
    let read = seconds(&setting("nginx.conf", "proxy_read_timeout"));
    assert!(
        read > DEFAULT_PING_INTERVAL + DEFAULT_PONG_TIMEOUT,
        "{read:?}"
    );
    // systemd must not SIGKILL a courier that is still inside its own shutdown bound.
    let stop = Duration::from_secs(
        setting("courier@.service", "TimeoutStopSec")
            .parse()
            .expect("s"),
    );
    let bound = courier::config::DEFAULT_SHUTDOWN_TIMEOUT + DEFAULT_CLOSE_LINGER;
    assert!(
        stop > bound + Duration::from_secs(2),
        "{stop:?} vs {bound:?}"
    );
    // Descriptors: the unit's limit covers the connection limit plus courier's reserve, and
    // nginx's worker limit covers its worker_connections.
    let nofile: u64 = setting("courier@.service", "LimitNOFILE")
        .parse()
        .expect("n");
    let max_conn: u64 = env_file("courier.env")
        .into_iter()
        .find(|(k, _)| k == "COURIER_MAX_CONNECTIONS")
        .and_then(|(_, v)| v.parse().ok())
        .expect("documented --max-connections");
    assert!(nofile >= max_conn + courier::server::RESERVED_DESCRIPTORS as u64);
    let worker_conns: u64 = setting("nginx.conf", "worker_connections")
        .parse()
        .expect("n");
    let worker_files: u64 = setting("nginx.conf", "worker_rlimit_nofile")
        .parse()
        .expect("n");
    assert!(worker_files >= worker_conns);
    // The kernel must not cap courier's listen backlog below what it asks for.
    let somaxconn: u32 = setting("sysctl.conf", "net.core.somaxconn")
        .parse()
        .expect("n");
    assert!(somaxconn >= courier::server::LISTEN_BACKLOG);
    let nr_open: u64 = setting("sysctl.conf", "fs.nr_open").parse().expect("n");
    assert!(
        nr_open >= nofile,
        "LimitNOFILE above fs.nr_open fails to apply"
    );
}

#[test]
fn the_deploy_guide_quotes_the_tested_files_exactly() {
    let guide = std::fs::read_to_string(deploy_dir().join("../deploy.md")).expect("docs/deploy.md");
    let mut quoted = 0;
    for (at, _) in guide.match_indices("<!-- quoted: docs/deploy/") {
        let rest = &guide[at + "<!-- quoted: docs/deploy/".len()..];
        let (name, rest) = rest
            .split_once(" -->\n```")
            .expect("a fenced block follows");
        let body = rest.split_once('\n').expect("fence line").1;
        let body = &body[..body.find("```\n").expect("closing fence")];
        let file = std::fs::read_to_string(deploy_dir().join(name)).expect(name);
        assert_eq!(
            body, file,
            "docs/deploy.md quotes an old docs/deploy/{name}"
        );
        quoted += 1;
    }
    let files = std::fs::read_dir(deploy_dir())
        .expect("docs/deploy")
        .count();
    assert_eq!(
        quoted, files,
        "every file in docs/deploy/ is quoted in docs/deploy.md"
    );
}

/// The load tester over `wss://` through nginx, trusting the deployment's CA with `--ca-cert`,
/// publishing to the first courier's own API (`--publish-url`: the API is not proxied), which
/// reaches clients on both couriers over Redis: every event reaches every connection, none lost. Its client addresses are spread over 127.0.0.x, so the per-IP
/// budget (per forwarded client) lets its connections through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_tester_runs_over_wss_through_nginx() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let why = missing();
    if !services::available("nginx", why.is_none(), &why.unwrap_or_default()) {
        return;
    }
    let Some(loadtest) = common::loadtest::binary() else {
        services::available("the loadtest binary", false, common::loadtest::HINT);
        return;
    };
    let prefix = services::unique_prefix();
    let dep = Deployment::start(&url, &prefix).await;
    let (target, ca) = (dep.wss_url(), dep.ca_file());
    let publish = format!("http://{}", dep.couriers[0].addr);
    let args = [
        "--target",
        &target,
        "--ca-cert",
        ca.to_str().expect("utf-8"),
        "--jwt-secret",
        common::SECRET,
        "--api-key",
        common::API_KEY,
        "--publish-url",
        &publish,
        "-c",
        "40",
        "-u",
        "10",
        "--source-addrs",
        "8",
        "--bursts",
        "3",
        "--events-per-burst",
        "5",
        "-t",
        "lost==0",
        "-t",
        "failed==0",
    ];
    let run = common::loadtest::run(&loadtest, &dep.dir, &args).await;
    let r = &run.report;
    let logs = dep.courier_logs();
    assert_eq!(run.code, Some(0), "{}\n{}\n{logs}", run.stdout, run.stderr);
    assert_eq!(r["deliveries"]["lost"], 0, "{r}");
    assert_eq!(
        r["deliveries"]["received"],
        40 * 3 * 5,
        "every connection got every event"
    );
    assert_eq!(
        r["tls"]["insecure"], false,
        "verified against the CA: {}",
        r["tls"]
    );
    dep.stop().await;
}
