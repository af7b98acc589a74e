//! Interop with the real Python channels_redis 4.3 (PyPI), unchanged: Django's `group_send` on both
//! layers reaches courier clients with the right frame, and courier's publisher reaches a
//! channels_redis consumer (`layer.receive`). The peer is `tests/peers/channels_peer.py`, run in
//! the venv `tests/peers/venv.sh` creates under target/. Without python3/PyPI the tests skip
//! visibly, unless `CI` or `COURIER_REQUIRE_REDIS=1` is set, which makes that a failure.

mod common;
mod services;

use std::path::PathBuf;
use std::time::Duration;

use common::{connect_user, spawn_server, TestServer, Ws};
use courier::config::LayerKind;
use courier::UserId;
use futures::StreamExt;
use serde_json::{json, Value};
use services::python::python;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const FERNET_KEY: &str = "django-insecure-channels-key";

/// The peer on one Redis, for `group`, with the test's Fernet key when `key`.
fn peer(
    python: &PathBuf,
    mode: &str,
    kind: LayerKind,
    url: &str,
    prefix: &str,
    group: &str,
    key: bool,
) -> Command {
    let mut cmd = services::python::peer(python, mode, kind, &[url.to_owned()], prefix);
    cmd.args(["--group", group]);
    if key {
        cmd.args(["--key", FERNET_KEY]);
    }
    cmd
}

async fn server(kind: LayerKind, url: &str, prefix: &str, key: bool) -> TestServer {
    let mut config = common::config();
    config.layer = kind;
    config.redis.urls = vec![url.into()];
    config.redis.prefix = prefix.into();
    config.redis.group_expiry = Duration::from_secs(120);
    if key {
        config.redis.symmetric_keys = vec![FERNET_KEY.into()];
    }
    spawn_server(config).await
}

async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(f)) => panic!("server closed the socket: {f:?}"),
            Ok(_) => {}
            Err(e) => panic!("socket error: {e}"),
        }
    }
}

/// Publishes probes through the server until the client sees one: courier's subscription is live.
async fn until_routed(s: &TestServer, user: i64, ws: &mut Ws) {
    for _ in 0..100 {
        let _ = s
            .state
            .hub()
            .notify_user(&UserId::Int(user), "probe", Value::Null)
            .await;
        if next_frame(ws, Duration::from_millis(100))
            .await
            .is_some_and(|v| v["type"] == "probe")
        {
            while next_frame(ws, Duration::from_millis(200)).await.is_some() {}
            return;
        }
    }
    panic!("user_{user} never became reachable");
}

async fn django_to_courier(kind: LayerKind, key: bool) {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let Some(python) = python() else { return };
    let prefix = services::unique_prefix();
    let s = server(kind, &url, &prefix, key).await;
    let mut ws = connect_user(s.addr, json!(42)).await;
    until_routed(&s, 42, &mut ws).await;

    // What the reference's notify_user and its helpers send through group_send.
    let messages = json!([
        {"type": "friend_request", "data": {"request_id": 5, "from_user": {"id": 7, "username": "ann", "first_name": "Ann", "last_name": "Lee"}}},
        {"type": "notification", "notification_type": "system_alert", "data": {"text": "hi", "n": 1.5}},
        {"type": "new_message", "data": {"id": 9, "body": "ünïcode"}},
    ]);
    let out = peer(&python, "send", kind, &url, &prefix, "user_42", key)
        .args(["--messages", &messages.to_string()])
        .output()
        .await
        .expect("run channels_peer.py");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "{kind:?}: python group_send failed"
    );

    let expected = [
        json!({"type": "friend_request", "data": {"request_id": 5, "from_user": {"id": 7, "username": "ann", "first_name": "Ann", "last_name": "Lee"}}}),
        json!({"type": "system_alert", "data": {"text": "hi", "n": 1.5}}),
        json!({"type": "new_message", "data": {"id": 9, "body": "ünïcode"}}),
    ];
    for want in expected {
        let got = next_frame(&mut ws, Duration::from_secs(5))
            .await
            .expect("frame from Django's group_send");
        assert_eq!(got, want, "{kind:?} key={key}");
    }
    s.stop().await;
}

async fn courier_to_django(kind: LayerKind, key: bool) {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let Some(python) = python() else { return };
    let prefix = services::unique_prefix();
    let s = server(kind, &url, &prefix, key).await;
    let mut child = peer(&python, "receive", kind, &url, &prefix, "user_43", key)
        .spawn()
        .expect("spawn channels_peer.py");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("peer ready in time");
    assert_eq!(ready.expect("read").as_deref(), Some("READY"));

    let data = json!({"request_id": 1, "from_user": {"id": 2, "username": "bo", "first_name": "", "last_name": ""}});
    s.state
        .hub()
        .notify_user(&UserId::Int(43), "friend-request", data.clone())
        .await
        .expect("publish");
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("peer answered")
        .expect("read");
    let line = line.unwrap_or_default();
    let received: Value = serde_json::from_str(
        line.strip_prefix("MESSAGE ")
            .unwrap_or_else(|| panic!("{kind:?}: peer said {line:?}")),
    )
    .expect("json");
    // notify_user replaces '-' with '_' in the type, like the reference.
    assert_eq!(
        received,
        json!({"type": "friend_request", "data": data}),
        "{kind:?} key={key}"
    );
    services::python::exits_ok(child).await;
    s.stop().await;
}

#[tokio::test]
async fn django_group_send_on_pubsub_layer_reaches_courier() {
    django_to_courier(LayerKind::RedisPubsub, false).await;
}

#[tokio::test]
async fn django_group_send_on_core_layer_reaches_courier() {
    django_to_courier(LayerKind::RedisCore, false).await;
}

#[tokio::test]
async fn django_encrypted_group_send_reaches_courier() {
    django_to_courier(LayerKind::RedisCore, true).await;
    django_to_courier(LayerKind::RedisPubsub, true).await;
}

#[tokio::test]
async fn courier_publish_reaches_channels_redis_pubsub_consumer() {
    courier_to_django(LayerKind::RedisPubsub, false).await;
}

#[tokio::test]
async fn courier_publish_reaches_channels_redis_core_consumer() {
    courier_to_django(LayerKind::RedisCore, false).await;
    courier_to_django(LayerKind::RedisCore, true).await;
}
