//! The Django side of resume (README "Resume and token lifetime"): events published with the
//! helper `integrations/django/courier_notify.py` (courier's publish script through redis-py, the
//! real channels_redis serializer, Fernet included) carry positions and are replayed to a client
//! that resumes on *another* courier process; an unchanged channels_redis `group_send` still
//! reaches a `recover=1` client, as a plain frame.

mod common;
mod services;

use std::time::Duration;

use common::*;
use courier::config::LayerKind;
use serde_json::{json, Value};
use services::python::{peer, python};

const FERNET_KEY: &str = "django-insecure-channels-key";

async fn server(url: &str, prefix: &str) -> TestServer {
    let mut config = config();
    config.layer = LayerKind::RedisPubsub;
    config.redis.urls = vec![url.into()];
    config.redis.prefix = prefix.into();
    config.redis.symmetric_keys = vec![FERNET_KEY.into()];
    spawn_server(config).await
}

/// Runs the peer in `mode` for user 4 with `args`; it must succeed.
async fn run_peer(python: &std::path::PathBuf, mode: &str, url: &str, prefix: &str, args: &[&str]) {
    let out = peer(
        python,
        mode,
        LayerKind::RedisPubsub,
        &[url.to_owned()],
        prefix,
    )
    .args(["--key", FERNET_KEY])
    .args(args)
    .output()
    .await
    .expect("run channels_peer.py");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "peer {mode} failed"
    );
}

async fn connect(srv: &TestServer, query: &str) -> (Ws, Value) {
    let url = format!("{}?token={}&{query}", srv.ws_url(), token_for(json!(4)));
    let mut ws = ws_connect_url(&url).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

#[tokio::test]
async fn django_helper_events_resume_on_another_process() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let Some(python) = python() else { return };
    let prefix = services::unique_prefix();
    let (s1, s2) = (server(&url, &prefix).await, server(&url, &prefix).await);
    let (mut ws, hello) = connect(&s1, "recover=1").await;
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    let notify = ["--users", "4-4", "--per-user", "3"];
    run_peer(&python, "notify", &url, &prefix, &notify).await;
    for seq in 0..3u64 {
        let f = next_json(&mut ws).await;
        assert_eq!(
            f,
            json!({"type":"seq_event","data":{"seq":seq},"offset":seq + 1,"epoch":epoch})
        );
    }
    drop(ws);
    let more = ["--users", "4-4", "--per-user", "5", "--first", "3"];
    run_peer(&python, "notify", &url, &prefix, &more).await;
    let (mut back, _) = connect(&s2, &format!("since=3&epoch={epoch}")).await;
    for seq in 3..8u64 {
        let f = next_json(&mut back).await;
        assert_eq!(
            (f["data"]["seq"].as_u64(), f["offset"].as_u64()),
            (Some(seq), Some(seq + 1))
        );
    }
    // An unchanged group_send (no position) still arrives, as the reference's frame.
    let messages = json!([{"type": "new_message", "data": {"id": 1}}]).to_string();
    let send = ["--group", "user_4", "--messages", messages.as_str()];
    run_peer(&python, "send", &url, &prefix, &send).await;
    let plain = tokio::time::timeout(Duration::from_secs(5), next_json(&mut back))
        .await
        .expect("group_send arrives");
    assert_eq!(plain, json!({"type":"new_message","data":{"id":1}}));
    s1.stop().await;
    s2.stop().await;
}
